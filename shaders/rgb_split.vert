#version 330
// A full-screen quad; pixel = this fragment's position in show pixels, origin top-left, y down.
uniform vec2 frame_size;
in vec2 in_pos;
out vec2 pixel;
void main() {
    pixel = vec2(in_pos.x * 0.5 + 0.5, 0.5 - in_pos.y * 0.5) * frame_size;
    gl_Position = vec4(in_pos, 0.0, 1.0);
}

#version 330
// A textured rectangle: rect = (x, y, width, height) in show pixels, origin top-left.
uniform vec2 frame_size;
uniform vec4 rect;
in vec2 in_pos;  // 0..1
out vec2 uv;
void main() {
    uv = in_pos;
    vec2 pixel = rect.xy + in_pos * rect.zw;
    gl_Position = vec4(pixel.x / frame_size.x * 2.0 - 1.0, 1.0 - pixel.y / frame_size.y * 2.0, 0.0, 1.0);
}

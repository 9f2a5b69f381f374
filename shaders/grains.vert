#version 330
// One instanced rectangle per grain (or waveform column): in_rect = (x, y, width, height) in 0..1
// of the frame; across its width it glows brightest in the middle.
in vec2 in_corner;
in vec4 in_rect;
in vec4 in_color;
out vec4 color;
out float across;
void main() {
    vec2 p = in_rect.xy + in_corner * in_rect.zw;
    color = in_color;
    across = in_corner.x * 2.0 - 1.0;
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}

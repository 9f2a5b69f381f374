#version 330
// One instanced rectangle per bar: in_rect = (x, y, width, height) in 0..1 of the frame.
in vec2 in_corner;
in vec4 in_rect;
in vec4 in_color;
out vec4 color;
void main() {
    vec2 p = in_rect.xy + in_corner * in_rect.zw;
    color = vec4(in_color.rgb, in_color.a * (0.35 + 0.65 * in_corner.y));
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}

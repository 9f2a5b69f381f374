#version 330
uniform float point_size;
in vec4 color;
out vec4 out_color;
void main() {
    float r = length(gl_PointCoord - 0.5) * point_size;
    float coverage = clamp(point_size * 0.5 + 0.5 - r, 0.0, 1.0);
    if (coverage <= 0.0) discard;
    out_color = vec4(color.rgb, color.a * coverage);
}

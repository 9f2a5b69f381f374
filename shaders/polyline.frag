#version 330
// A capsule around the segment: full inside half_width, a one-pixel linear fall-off at the edge.
uniform float half_width;
in vec4 color;
in vec2 pixel;
flat in vec2 a;
flat in vec2 b;
out vec4 out_color;
void main() {
    vec2 ab = b - a;
    float t = clamp(dot(pixel - a, ab) / max(dot(ab, ab), 1e-12), 0.0, 1.0);
    float distance_to_line = length(pixel - (a + t * ab));
    float coverage = clamp(half_width + 0.5 - distance_to_line, 0.0, 1.0);
    if (coverage <= 0.0) discard;
    out_color = vec4(color.rgb, color.a * coverage);
}

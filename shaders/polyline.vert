#version 330
// One instanced quad per segment, built around the segment in screen space so the line keeps its
// width in pixels whatever the projection. in_corner.x: 0 at p0, 1 at p1; in_corner.y: -1 / +1 side.
uniform mat4 mvp;
uniform vec2 frame_size;   // pixels
uniform float half_width;  // pixels
in vec2 in_corner;
in vec3 in_p0;
in vec4 in_c0;
in vec3 in_p1;
in vec4 in_c1;
out vec4 color;
out vec2 pixel;
flat out vec2 a;
flat out vec2 b;
void main() {
    vec4 clip0 = mvp * vec4(in_p0, 1.0);
    vec4 clip1 = mvp * vec4(in_p1, 1.0);
    a = (clip0.xy / clip0.w * 0.5 + 0.5) * frame_size;
    b = (clip1.xy / clip1.w * 0.5 + 0.5) * frame_size;
    vec2 along = b - a;
    float len = length(along);
    vec2 dir = len > 1e-6 ? along / len : vec2(1.0, 0.0);
    vec2 normal = vec2(-dir.y, dir.x);
    float reach = half_width + 1.0;  // one more pixel for the anti-aliased edge
    vec2 base = mix(a, b, in_corner.x) + dir * reach * (in_corner.x * 2.0 - 1.0);
    pixel = base + normal * reach * in_corner.y;
    color = mix(in_c0, in_c1, in_corner.x);
    vec4 clip = mix(clip0, clip1, in_corner.x);
    gl_Position = vec4((pixel / frame_size * 2.0 - 1.0) * clip.w, clip.z, clip.w);
}

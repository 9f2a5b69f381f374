#version 330
// Distortion 2: inside each bubble the video is read at displaced coordinates.
// formula 0 (the original's shader): offset = amplitude * (cos(5 g.x t + u / 300), sin(5 g.y t + u / 300))
//   with g clamped to [-0.1, 0.1] and u the pixel's x at 720 lines;
// formula 1 (the paper's): offset = amplitude * (cos(g.x), cos(g.y)).
#include "video.glsl"
uniform vec2 gradient;
uniform float time;
uniform float amplitude;  // show pixels
uniform float scale;      // show lines / 720
uniform int formula;
in vec2 pixel;
flat in vec3 bubble;
flat in float alpha;
out vec4 color;
void main() {
    float distance_to_centre = length(pixel - bubble.xy);
    float edge = clamp(bubble.z - distance_to_centre + 0.5, 0.0, 1.0);  // 1 px anti-aliased rim
    if (edge <= 0.0) discard;
    vec2 offset;
    if (formula == 0) {
        vec2 g = clamp(gradient, -0.1, 0.1);
        float u = pixel.x / scale;
        offset = amplitude * vec2(cos(5.0 * g.x * time + u / 300.0), sin(5.0 * g.y * time + u / 300.0));
    } else {
        offset = amplitude * cos(gradient);
    }
    color = vec4(video_at(pixel + offset), alpha * edge);
}

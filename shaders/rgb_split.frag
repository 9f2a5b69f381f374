#version 330
// Distortion 1: the video's R, G and B each translated by its own offset (show pixels, +x right,
// +y down). With all offsets 0 this is exactly the plain video.
#include "video.glsl"
uniform vec2 offset_r;
uniform vec2 offset_g;
uniform vec2 offset_b;
in vec2 pixel;
out vec4 color;
void main() {
    color = vec4(video_at(pixel - offset_r).r, video_at(pixel - offset_g).g, video_at(pixel - offset_b).b, 1.0);
}

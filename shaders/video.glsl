// The video placed in the show frame. video_rect = (x, y, width, height) in show pixels (origin
// top-left) where the video's image lies (cover or fit); outside it, and outside the image, black.
uniform sampler2D video;
uniform vec4 video_rect;
uniform float level;  // 1 live, fading to 0 while the camera is lost

vec3 video_at(vec2 pixel) {
    vec2 t = (pixel - video_rect.xy) / video_rect.zw;
    if (any(lessThan(t, vec2(0.0))) || any(greaterThanEqual(t, vec2(1.0)))) return vec3(0.0);
    return texture(video, t).rgb * level;
}

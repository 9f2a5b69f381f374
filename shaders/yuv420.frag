#version 330
// The recorder's colour conversion (engine/yuv420.py): the show frame into a yuv420p picture,
// BT.601 at limited range (Y 16..235, U and V 16..240), as FFmpeg's swscale converts RGB by
// default. Drawn into W/2 x H/2 pixels, one per 2 x 2 block of the frame, output row r holding
// the picture's rows 2r and 2r + 1 counted from the top (GL counts rows from the bottom): read
// back row 0 first, the targets are the Y of the even rows, the Y of the odd rows, the U plane
// and the V plane. U and V are the mean of their block.
uniform sampler2D frame;  // the show frame, through a sampler without filtering
layout(location = 0) out vec2 upper_luma;
layout(location = 1) out vec2 lower_luma;
layout(location = 2) out float blue_difference;  // U (Cb)
layout(location = 3) out float red_difference;  // V (Cr)

const vec3 TO_Y = vec3(65.481, 128.553, 24.966);
const vec3 TO_U = vec3(-37.797, -74.203, 112.0);
const vec3 TO_V = vec3(112.0, -93.786, -18.214);

void main() {
    vec2 size = vec2(textureSize(frame, 0));
    // The centre of the block's lower left pixel; constant offsets reach the others (cheaper than
    // texelFetch on Mesa's software rasteriser).
    vec2 at = vec2(floor(gl_FragCoord.x) * 2.0 + 0.5, size.y - 1.5 - floor(gl_FragCoord.y) * 2.0) / size;
    vec3 upper_left = textureLodOffset(frame, at, 0.0, ivec2(0, 1)).rgb;
    vec3 upper_right = textureLodOffset(frame, at, 0.0, ivec2(1, 1)).rgb;
    vec3 lower_left = textureLod(frame, at, 0.0).rgb;
    vec3 lower_right = textureLodOffset(frame, at, 0.0, ivec2(1, 0)).rgb;
    upper_luma = (16.0 + vec2(dot(upper_left, TO_Y), dot(upper_right, TO_Y))) / 255.0;
    lower_luma = (16.0 + vec2(dot(lower_left, TO_Y), dot(lower_right, TO_Y))) / 255.0;
    vec3 mean = 0.25 * (upper_left + upper_right + lower_left + lower_right);
    blue_difference = (128.0 + dot(mean, TO_U)) / 255.0;
    red_difference = (128.0 + dot(mean, TO_V)) / 255.0;
}

#version 330
// One instanced square per bubble, around its circle: bubble = (centre x, centre y, radius) in show
// pixels (origin top-left), alpha its opacity.
uniform vec2 frame_size;
in vec2 in_corner;  // -1..1
in vec3 in_bubble;
in float in_alpha;
out vec2 pixel;
flat out vec3 bubble;
flat out float alpha;
void main() {
    bubble = in_bubble;
    alpha = in_alpha;
    pixel = in_bubble.xy + in_corner * (in_bubble.z + 1.0);
    gl_Position = vec4(pixel.x / frame_size.x * 2.0 - 1.0, 1.0 - pixel.y / frame_size.y * 2.0, 0.0, 1.0);
}

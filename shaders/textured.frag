#version 330
// Texture rows are top first (as uploaded from images and text), so uv.y = 0 is the top.
uniform sampler2D image;
uniform vec4 tint;
in vec2 uv;
out vec4 color;
void main() { color = texture(image, uv) * tint; }

#version 330
in vec4 color;
in float across;
out vec4 frag_color;
uniform float softness;  // 0: flat; 1: falls to nothing at the rectangle's sides
void main() {
    float glow = 1.0 - softness * across * across;
    frag_color = vec4(color.rgb, color.a * glow);
}

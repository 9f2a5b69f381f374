#version 330
// The recorder's colour conversion (yuv420.frag): one quad over the whole target.
in vec2 in_pos;  // -1..1
void main() { gl_Position = vec4(in_pos, 0.0, 1.0); }

#version 330
// Round points of a size in pixels.
uniform mat4 mvp;
uniform float point_size;
in vec3 in_position;
in vec4 in_color;
out vec4 color;
void main() {
    color = in_color;
    gl_Position = mvp * vec4(in_position, 1.0);
    gl_PointSize = point_size;
}

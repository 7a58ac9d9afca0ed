#version 330 core
// A full-screen quad from four vertices; texture coordinates with v = 0 at the top of the picture
// (pictures are uploaded top row first, as decoders and numpy hold them).
in vec2 position;
out vec2 uv;

void main() {
    uv = vec2(position.x * 0.5 + 0.5, 0.5 - position.y * 0.5);
    gl_Position = vec4(position, 0.0, 1.0);
}

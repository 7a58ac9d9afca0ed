#version 330 core
// The crossfade livejpp draws live, and the one `render` computes in numpy (livejpp/render/compose.py):
// (1 - w) * outgoing + w * incoming, with w quantised to 1/256 as the numpy path does, then
// master brightness and blackout.
in vec2 uv;
out vec4 colour;

uniform sampler2D outgoing;
uniform sampler2D incoming;
uniform float weight;      // 0: outgoing only, 1: incoming only
uniform float brightness;  // master brightness, 1 = as recorded
uniform float blackout;    // 1 = black

void main() {
    float w = round(clamp(weight, 0.0, 1.0) * 256.0) / 256.0;
    vec3 a = texture(outgoing, uv).rgb;
    vec3 b = texture(incoming, uv).rgb;
    vec3 mixed = mix(a, b, w) * brightness;
    colour = vec4(mixed * (1.0 - blackout), 1.0);
}

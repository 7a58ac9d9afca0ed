#version 330 core
// The transitions livejpp draws live, and the ones `render` computes in numpy
// (livejpp/render/compose.py): the weight w is quantised to 1/256 as the numpy path does.
//   transition 0  crossfade:    (1 - w) * outgoing + w * incoming
//   transition 1  dip to black: outgoing fades out over the first half, incoming in over the second
//   transition 2  wipe:         incoming from the left edge, its border at x = w
// Then an effect (live only): 0 none, 1 mirror, 2 invert, 3 pixelate; master brightness; blackout.
in vec2 uv;
out vec4 colour;

uniform sampler2D outgoing;
uniform sampler2D incoming;
uniform float weight;      // 0: outgoing only, 1: incoming only
uniform int transition;
uniform int effect;
uniform float amount;      // effect intensity, 0..1
uniform float brightness;  // master brightness, 1 = as recorded
uniform float blackout;    // 1 = black
uniform vec2 size;         // picture size in pixels

vec3 layers(vec2 at, float w) {
    vec3 a = texture(outgoing, at).rgb;
    vec3 b = texture(incoming, at).rgb;
    if (transition == 1) {
        return w < 0.5 ? a * (1.0 - 2.0 * w) : b * (2.0 * w - 1.0);
    }
    if (transition == 2) {
        return (at.x < w) ? b : a;
    }
    return mix(a, b, w);
}

void main() {
    float w = round(clamp(weight, 0.0, 1.0) * 256.0) / 256.0;
    vec2 at = uv;
    if (effect == 1) {
        at.x = 0.5 - abs(at.x - 0.5);
    } else if (effect == 3) {
        vec2 cell = vec2(max(1.0, floor(1.0 + 31.0 * amount)));
        at = (floor(at * size / cell) * cell + 0.5 * cell) / size;
    }
    vec3 c = layers(at, w);
    if (effect == 2) {
        c = mix(c, 1.0 - c, amount);
    }
    colour = vec4(c * brightness * (1.0 - blackout), 1.0);
}

#version 330 core
// The transitions livejpp draws live, and the ones `render` computes in numpy
// (livejpp/media/compose.py): the weight w is quantised to 1/256 as the numpy path does.
//   transition 0  crossfade:    (1 - w) * outgoing + w * incoming
//   transition 1  dip to black: outgoing fades out over the first half, incoming in over the second
//   transition 2  wipe:         incoming from the left edge, its border at x = w
// Then the extra layers, each over what is below it with its opacity and blend mode (alpha, add,
// screen, multiply), each result quantised to 8 bits as livejpp/media/compose.py::blend does;
// livejpp/render/gl.py writes their uniforms and calls where the LAYERS markers are, one per layer.
// Then an effect (live only): 0 none, 1 mirror, 2 invert, 3 pixelate; master brightness; blackout.
in vec2 uv;
out vec4 colour;

uniform float weight;      // 0: outgoing only, 1: incoming only
uniform int transition;
uniform int effect;
uniform float amount;      // effect intensity, 0..1
uniform float brightness;  // master brightness, 1 = as recorded
uniform float blackout;    // 1 = black
uniform vec2 size;         // picture size in pixels

vec3 quantised(vec3 c) {
    return floor(clamp(c, 0.0, 1.0) * 255.0 + 0.5) / 255.0;
}

// `top` over `base`: blend 0 alpha, 1 add, 2 screen, 3 multiply; opacity already quantised to 1/256
vec3 blended(vec3 base, vec3 top, float opacity, int blend) {
    vec3 r = top;
    if (blend == 1) {
        r = min(base + top, 1.0);
    } else if (blend == 2) {
        r = 1.0 - (1.0 - base) * (1.0 - top);
    } else if (blend == 3) {
        r = base * top;
    }
    return quantised(base + (r - base) * opacity);
}

// One slot's picture at output coordinate `at`, by how the slot holds it: an RGB texture at the output
// size (fetch_rgb; HAP's RGB DXT too), the decoder's Y, U, V planes at their native size (fetch_planes),
// scaled and cover-cropped (crop: the output's rectangle in the picture, x, y, w, h in 0..1) and
// converted to RGB (rows: the matrix with range and bit depth folded in, plus offset; chroma: where the
// chroma planes end, as a fraction of the luma's), or HAP Q's scaled YCoCg DXT5 blocks (fetch_ycocg).
// livejpp/render/gl.py picks one per slot when it writes the shader: llvmpipe runs both sides of every
// `if` (a uniform's too) and pays for every texture read in them, so a choice made per pixel cost 5 reads.
vec3 fetch_rgb(sampler2D main, vec4 crop, vec2 at) {
    return texture(main, crop.xy + at * crop.zw).rgb;
}

vec3 fetch_ycocg(sampler2D main, vec4 crop, vec2 at) {
    // HAP Q: DXT5 holding Co, Cg (offset 128/255, multiplied by a per-block scale), the scale, Y
    vec4 c = texture(main, crop.xy + at * crop.zw) - vec4(0.50196078, 0.50196078, 0.0, 0.0);
    float scale = c.b * (255.0 / 8.0) + 1.0;
    float co = c.r / scale, cg = c.g / scale;
    return clamp(vec3(c.a + co - cg, c.a + cg, c.a - co - cg), 0.0, 1.0);
}

vec3 fetch_planes(sampler2D y, sampler2D u, sampler2D v, vec4 crop, vec2 chroma,
                  vec3 r, vec3 g, vec3 b, vec3 offset, vec2 at) {
    vec2 p = crop.xy + at * crop.zw;
    vec3 s = vec3(texture(y, p).r, texture(u, p * chroma).r, texture(v, p * chroma).r);
    return clamp(vec3(dot(r, s), dot(g, s), dot(b, s)) + offset, 0.0, 1.0);
}

// LAYERS: uniforms

// MATCHER (written by gl.py): 0 the outgoing picture only, 1 the incoming only (weight 0 or 1, outside a
// transition: every transition starts at the outgoing picture and ends at the incoming one), 2 both
vec3 layers(vec2 at, float w) {
#if MATCHER == 0
    return picture0(at);
#elif MATCHER == 1
    return picture1(at);
#else
    if (w <= 0.0) {
        return picture0(at);
    }
    if (w >= 1.0) {
        return picture1(at);
    }
    vec3 a = picture0(at);
    vec3 b = picture1(at);
    if (transition == 1) {
        return w < 0.5 ? a * (1.0 - 2.0 * w) : b * (2.0 * w - 1.0);
    }
    if (transition == 2) {
        return (at.x < w) ? b : a;
    }
    return mix(a, b, w);
#endif
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
    vec3 c = quantised(layers(at, w));
    // LAYERS: calls
    if (effect == 2) {
        c = mix(c, 1.0 - c, amount);
    }
    colour = vec4(c * brightness * (1.0 - blackout), 1.0);
}

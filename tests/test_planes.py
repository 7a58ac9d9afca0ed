"""GPU-ready frames: the decoder's Y, U, V planes go to the GPU at their native size and the shader converts
them to RGB (BT.601/709, limited/full range, 8/10 bits, 4:2:0/4:2:2, odd widths) as the reference formula
and FFmpeg's own converter do; real footage drawn from planes looks as the CPU path's RGB does."""

import numpy as np
from headless_gl import run_gl_script

# (format, width, height, colorspace (1 BT.709, 5 BT.601), color_range (1 limited, 2 full))
CASES = [
    ("yuv420p", 160, 96, 1, 1),
    ("yuv420p", 160, 96, 5, 2),
    ("yuv420p", 161, 96, 5, 1),  # odd width: the chroma plane is 81 wide
    ("yuv422p", 160, 96, 1, 2),
    ("yuv420p10le", 160, 96, 1, 1),
    ("yuv422p10le", 160, 96, 5, 2),
]
BLOCK = 8  # chroma samples a block: inside a block the chroma is constant, wherever a converter samples it

CODE = r"""
import json, sys
import av
import numpy as np
from livejpp.render.gl import offscreen
from livejpp.media.player import ClipFrames, planes_of
cases, out, media = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = np.random.default_rng(7)
for i, (fmt, w, h, spc, rng_) in enumerate(cases):
    frame = av.VideoFrame(w, h, fmt)
    frame.colorspace, frame.color_range = spc, rng_
    wide = "10le" in fmt
    dtype = np.dtype("<u2") if wide else np.uint8
    top = 1023 if wide else 255
    arrays = []
    for p, plane in enumerate(frame.planes):
        rows = plane.buffer_size // plane.line_size
        view = np.frombuffer(plane, dtype).reshape(rows, -1)
        ph, pw = (h, w) if p == 0 else (h // (2 if "420" in fmt else 1), -(-w // 2))
        ph = -(-h // 2) if p and "420" in fmt else ph
        if p == 0:
            data = rng.integers(0, top + 1, (ph, pw))
        else:  # constant over BLOCK x BLOCK chroma samples
            blocks = rng.integers(0, top + 1, (-(-ph // 8), -(-pw // 8)))
            data = np.kron(blocks, np.ones((8, 8), int))[:ph, :pw]
        view[:ph, :pw] = data
        arrays.append(data)
    for p, a in enumerate(arrays):
        np.save(out + f"/case{i}_plane{p}.npy", a)
    window, gl = offscreen(w, h)
    gl.upload(0, planes_of(frame))
    gl.draw(0.0)
    np.save(out + f"/case{i}_gl.npy", gl.read_pixels())
    reference = frame.reformat(format="rgb24", src_colorspace=spc, src_color_range=rng_,
                               interpolation="POINT").to_ndarray()
    np.save(out + f"/case{i}_ffmpeg.npy", reference)
    window.close()
size = (320, 180)
window, gl = offscreen(*size)
for name, path, t in (("bunny", "/av/big_buck_bunny_0_30.webm", 12.0), ("tree", "/footage/tree.avi", 1.0)):
    reader = ClipFrames(media + path, size)
    gl.upload(0, reader.planes_at(t))
    reader.planes_at(t + 0.5)  # a second odd picture: no second line
    gl.draw(0.0)
    np.save(out + f"/{name}_gl.npy", gl.read_pixels())
    np.save(out + f"/{name}_cpu.npy", reader.frame_at(t))
window.close()
window, gl = offscreen(*size, max_texture_size=512)  # as a GL whose limit is below the 1280x720 bunny
reader = ClipFrames(media + "/av/big_buck_bunny_0_30.webm", size)
for t in (12.0, 12.5):
    gl.upload(0, reader.planes_at(t))
gl.draw(0.0)
np.save(out + "/small_gl.npy", gl.read_pixels())
np.save(out + "/small_cpu.npy", reader.frame_at(12.5))
window.close()
"""


def reference(y, u, v, fmt, spc, full):
    """RGB from planes by the textbook formulas (ITU-R BT.601/709), chroma repeated over its samples."""
    bits = 10 if "10le" in fmt else 8
    sy = 2 if "420" in fmt else 1
    u = np.repeat(np.repeat(u, sy, 0), 2, 1)[: y.shape[0], : y.shape[1]]
    v = np.repeat(np.repeat(v, sy, 0), 2, 1)[: y.shape[0], : y.shape[1]]
    unit = 2 ** (bits - 8)
    if full:
        yn, un, vn = y / (2**bits - 1), (u - 2 ** (bits - 1)) / (2**bits - 1), (v - 2 ** (bits - 1)) / (2**bits - 1)
    else:
        yn, un, vn = (y - 16 * unit) / (219 * unit), (u - 128 * unit) / (224 * unit), (v - 128 * unit) / (224 * unit)
    kr, kb = (0.2126, 0.0722) if spc == 1 else (0.299, 0.114)
    kg = 1 - kr - kb
    r = yn + 2 * (1 - kr) * vn
    g = yn - 2 * (1 - kb) * kb / kg * un - 2 * (1 - kr) * kr / kg * vn
    b = yn + 2 * (1 - kb) * un
    return np.clip(np.round(np.stack([r, g, b], -1) * 255), 0, 255).astype(int)


def test_planes_convert_in_the_shader_as_the_formulas_say(media, tmp_path, caplog):
    import json

    run = run_gl_script(CODE, json.dumps(CASES), str(tmp_path), str(media), timeout=180)
    matrices = []
    for i, (fmt, w, h, spc, rng) in enumerate(CASES):
        y, u, v = (np.load(tmp_path / f"case{i}_plane{p}.npy") for p in range(3))
        drawn = np.load(tmp_path / f"case{i}_gl.npy").astype(int)
        assert drawn.shape == (h, w, 3)
        expected = reference(y, u, v, fmt, spc, rng == 2)
        # compare inside the chroma blocks (a luma pixel's chroma is the same whichever way it is sited
        # and interpolated): to one level in 255, float32 in the shader against float64 here
        sy = 2 if "420" in fmt else 1
        inner = np.zeros((h, w), bool)
        inner[2 : -2 or None, 2 : -2 or None] = True
        rows, cols = np.arange(h) % (BLOCK * sy), np.arange(w) % (BLOCK * 2)
        inner &= ((rows >= 2) & (rows < BLOCK * sy - 2))[:, None] & ((cols >= 2) & (cols < BLOCK * 2 - 2))[None, :]
        assert np.abs(drawn - expected)[inner].max() <= 1, (fmt, spc, rng)
        # FFmpeg's converter (swscale): fixed-point tables, within 3 levels; from 10 bits it first drops the two
        # low bits (one 8-bit level of Y, times the matrix's gain of up to 1.16 * 1.86 in R or B): within 5
        ffmpeg = np.load(tmp_path / f"case{i}_ffmpeg.npy").astype(int)
        assert np.abs(drawn - ffmpeg)[inner].max() <= (5 if "10le" in fmt else 3), (fmt, spc, rng)
        matrices.append(expected)
    # the cases differ: the matrix and range really change the picture (the test cannot pass by ignoring them)
    assert np.abs(reference(y, u, v, "yuv420p", 1, False) - reference(y, u, v, "yuv420p", 5, True)).mean() > 5
    for name in ("bunny", "tree"):  # real footage: the shader's bilinear scaling against the CPU's
        drawn, cpu = (np.load(tmp_path / f"{name}_{kind}.npy").astype(int) for kind in ("gl", "cpu"))
        assert np.abs(drawn - cpu).mean() < 4, name
    # a picture larger than the GL's limit: shown at a lower resolution, one line, the show goes on
    drawn, cpu = (np.load(tmp_path / f"small_{kind}.npy").astype(int) for kind in ("gl", "cpu"))
    assert np.abs(drawn - cpu).mean() < 6 and drawn.std() > 20
    larger = [line for line in run.stderr.splitlines() if "larger than this GL draws" in line]
    assert len(larger) == 1 and "1280x720" in larger[0] and "(512)" in larger[0], run.stderr
    odd = [line for line in run.stderr.splitlines() if "rgb24 pictures are converted" in line]
    assert len(odd) == 1 and "tree.avi" in odd[0]

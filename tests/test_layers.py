"""Extra layers over the matcher's picture: the GL compositor (headless EGL) draws what the numpy
compositor (`compose.blend`) computes, for every blend mode, and an empty or transparent layer draws nothing;
the live show draws layers set by hand (bus, OSC, presets, MIDI) and `render --layer` the same."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from headless_gl import run_gl_script
from test_live import recorded

CODE = r"""
import sys
import numpy as np
from livejpp.errors import LivejppError
from livejpp.media.compose import BLENDS, LayerDraw
from livejpp.render.gl import GLCompositor, offscreen
from livejpp.media.player import ClipFrames
media, out = sys.argv[1], sys.argv[2]
size = (320, 180)
pictures = {
    "a": ClipFrames(media + "/av/big_buck_bunny_0_30.webm", size).frame_at(12.0),
    "b": ClipFrames(media + "/footage/earth.mp4", size).frame_at(3.0),
    "c": ClipFrames(media + "/footage/mdn_flower.mp4", size).frame_at(1.0),
    "d": ClipFrames(media + "/footage/tree.avi", size).frame_at(1.0),
}
window, gl = offscreen(*size, layers=4)
for slot, name in enumerate("abcd"):
    gl.upload(slot, pictures[name])  # slot 4 (extra layer 3) is never uploaded
for mode in BLENDS:
    gl.draw(0.5, extra=[LayerDraw(0.6, mode)])
    np.save(out + f"/one_{mode}.npy", gl.read_pixels())
gl.draw(0.3, extra=[LayerDraw(0.5, "screen"), LayerDraw(0.7, "multiply")])
np.save(out + "/two.npy", gl.read_pixels())
gl.draw(0.5, extra=[LayerDraw(0.0, "add"), LayerDraw(0.0, "alpha"), LayerDraw(1.0, "alpha")])
np.save(out + "/none.npy", gl.read_pixels())
for name, picture in pictures.items():
    np.save(out + f"/{name}.npy", picture)
try:
    GLCompositor(*size, layers=1000)
except LivejppError as error:
    print("refused:", error)
window.close()
"""


def test_gl_layers_equal_the_numpy_blend(media, tmp_path):
    run = run_gl_script(CODE, str(media), str(tmp_path), timeout=120)
    from livejpp.media.compose import BLENDS, blend, mix

    a, b, c, d = (np.load(tmp_path / f"{name}.npy") for name in "abcd")
    for x, y in ((a, b), (a, c), (b, c), (c, d), (a, d)):
        assert np.abs(x.astype(int) - y).mean() > 20  # four really different pictures
    matcher = mix(a, b, 0.5)
    for mode in BLENDS:
        drawn = np.load(tmp_path / f"one_{mode}.npy").astype(int)
        expected = blend(matcher, c, 0.6, mode).astype(int)
        assert np.abs(expected - matcher).mean() > 5, mode  # the layer really changes the picture
        assert np.abs(drawn - expected).max() <= 1, mode  # the same picture, to one level in 255
    results = [blend(matcher, c, 0.6, mode) for mode in BLENDS]
    for i in range(len(results)):
        for j in range(i):
            assert np.abs(results[i].astype(int) - results[j]).mean() > 5  # four different blends
    expected = blend(blend(mix(a, b, 0.3), c, 0.5, "screen"), d, 0.7, "multiply").astype(int)
    assert np.abs(np.load(tmp_path / "two.npy").astype(int) - expected).max() <= 1  # layers in order
    # opacity 0 and a slot never uploaded (at opacity 1) draw nothing: not a black layer
    assert np.abs(np.load(tmp_path / "none.npy").astype(int) - matcher).max() <= 1
    refused = [line for line in run.stdout.splitlines() if line.startswith("refused:")]
    assert len(refused) == 1 and "1000 layers" in refused[0] and "texture units" in refused[0]


SEQUENCE = r"""
import sys
import numpy as np
from livejpp.media.compose import LayerDraw
from livejpp.render.gl import offscreen
media, out = sys.argv[1], sys.argv[2]
window, gl = offscreen(320, 180, layers=4)
for slot in range(4):
    gl.upload(slot, np.load(out + f"/{slot}.npy"))
steps = [
    (0.5, [LayerDraw(0.5, "screen"), LayerDraw(0.7, "multiply")]),
    (1.0, [LayerDraw(0.0, "add"), LayerDraw(0.7, "multiply")]),
    (0.0, [LayerDraw(0.4, "alpha")]),
    (0.5, [LayerDraw(0.5, "add"), LayerDraw(0.3, "screen")]),
    (1.0, []),
    (0.25, [LayerDraw(0.0, "add"), LayerDraw(0.0, "add")]),
    (0.5, [LayerDraw(0.5, "screen"), LayerDraw(0.7, "multiply")]),
]
for n, (weight, extra) in enumerate(steps):
    gl.draw(weight, extra=extra)
    np.save(out + f"/step{n}.npy", gl.read_pixels())
window.close()
"""


def test_gl_layers_stay_right_as_crossfades_and_layers_come_and_go(media, tmp_path):
    """The GL draws each frame with a shader written for what it shows (matcher crossfading or not, which layers
    are seen): switching between them frame by frame, each frame is still the numpy compositor's picture, with
    the opacities and blends of that frame, not those a shader held from the last time it drew."""
    from livejpp.media.compose import blend, mix
    from livejpp.media.player import ClipFrames

    size = (320, 180)
    a = ClipFrames(media / "av/big_buck_bunny_0_30.webm", size).frame_at(12.0)
    b = ClipFrames(media / "footage/earth.mp4", size).frame_at(3.0)
    c = ClipFrames(media / "footage/mdn_flower.mp4", size).frame_at(1.0)
    d = ClipFrames(media / "footage/tree.avi", size).frame_at(1.0)
    for slot, picture in enumerate((a, b, c, d)):
        np.save(tmp_path / f"{slot}.npy", picture)
    run_gl_script(SEQUENCE, str(media), str(tmp_path), timeout=120)
    expected = [
        blend(blend(mix(a, b, 0.5), c, 0.5, "screen"), d, 0.7, "multiply"),
        blend(b, d, 0.7, "multiply"),
        blend(a, c, 0.4, "alpha"),
        blend(blend(mix(a, b, 0.5), c, 0.5, "add"), d, 0.3, "screen"),
        b,
        mix(a, b, 0.25),
        blend(blend(mix(a, b, 0.5), c, 0.5, "screen"), d, 0.7, "multiply"),
    ]
    for n, picture in enumerate(expected):
        drawn = np.load(tmp_path / f"step{n}.npy").astype(int)
        assert np.abs(drawn - picture.astype(int)).max() <= 1, n  # the same picture, to one level in 255
    assert np.abs(expected[3].astype(int) - expected[0]).mean() > 5  # the same layers, other settings: it shows


# --- the live show's layers ------------------------------------------------------------------------
def clip_length(lib, uid: str) -> float:
    import sqlite3

    with sqlite3.connect(lib / "library.sqlite") as db:
        rows = db.execute("SELECT c.idx, v.content_hash, c.start, c.end FROM clips c JOIN videos v ON v.id = video_id")
        return next(end - start for idx, h, start, end in rows if f"{h[:12]}-{idx:04d}" == uid)


class Pictures:
    """The matcher's picture (from the show's own cut list) and a layer's, as the decoder made them, for a
    recorded frame's time: the decoder works up to two frames ahead, and on a busy machine (2 cores, shared)
    it may fall some frames behind, so each is one of the frames around that time. Each clip is decoded
    once, every 1/30 s, every third pixel: enough to tell the pictures apart, fast enough to try each pair."""

    STEPS = range(-12, 3)  # frames around the frame's own time

    def __init__(self, lib, stats, size):
        self.lib, self.cuts, self.size = lib, stats["cuts"], size
        self.decoded: dict[str, np.ndarray] = {}

    def frames(self, uid: str) -> np.ndarray:
        from test_live import playback

        from livejpp.media.player import ClipFrames

        if uid not in self.decoded:
            reader, n = ClipFrames(playback(self.lib, uid), self.size), int(clip_length(self.lib, uid) * 30)
            self.decoded[uid] = np.stack([reader.frame_at(i / 30)[::3, ::3] for i in range(n)])
        return self.decoded[uid]

    def around(self, uid: str, clip_time: float, loop: bool = False) -> np.ndarray:
        frames = self.frames(uid)
        at = np.array([round(clip_time * 30) + d for d in self.STEPS])
        return frames[at % len(frames) if loop else np.clip(at, 0, len(frames) - 1)]

    def matcher(self, t: float) -> np.ndarray | None:
        """The candidates for the matcher's picture at t; None inside a crossfade (not what this checks)."""
        on = [c for c in self.cuts if c["time"] <= t + 1e-3]
        cut = on[-1]
        if len(on) > 1 and t < cut["time"] + cut["crossfade"] + 0.5:
            return None
        return self.around(cut["clip"], cut["offset"] + t - cut["time"])

    def layer(self, uid: str, set_at: float, t: float) -> np.ndarray:
        return self.around(uid, t - set_at, loop=True)


def nearest(frame: np.ndarray, candidates: np.ndarray) -> float:
    """How far (mean levels) the frame is from the nearest of the candidate pictures ([..., h, w, 3])."""
    return float(np.abs(candidates.astype(int) - frame).mean(axis=(-3, -2, -1)).min())


def wait_beats(show, beats: int) -> None:
    """Until the show's clock has moved on `beats` beats (its own time passing, read over OSC feedback)."""
    from waiting import wait_until

    seen: list = []

    def moved():
        beat = show.feedback.state.get("bar_beat")
        if not seen or seen[-1] != beat:
            seen.append(beat)
        return len(seen) > beats

    wait_until(moved, 30, f"{beats} beats")


def test_a_layer_set_over_osc_is_blended_over_the_matchers_picture_and_cleared(real_library, tmp_path):
    """`--layers 3`, no audio (the opening clip of earth.mp4 plays on): layer 2 set over real OSC to a video
    at blend add, opacity 0.5, then cleared. The recording shows compose.blend of the two pictures while it is
    set, the plain picture before and after; bad layer commands are refused, one line each; the show goes on."""
    from test_show_goes_on import Show

    from livejpp.media.compose import blend

    lib = real_library[0]
    (tmp_path / "dark.toml").write_text('[show]\nvideo = "earth.mp4"\n')  # a dark matcher: `add` shows plainly
    args = ("--layers", 3, "--max-clip", 60, "--presets", tmp_path, "--preset", "dark")
    show = Show(lib, tmp_path, "--play", tmp_path / "none.ogg", "--silent", *args)
    try:
        show.feedback.wait("clip", bool, timeout=60)
        wait_beats(show, 2)
        show.send("/livejpp/layer", 2, "clip", "mdn_flower.mp4")  # a video's name: its first clip
        show.send("/livejpp/layer/2/blend", "add")
        show.send("/livejpp/layer", 2, "opacity", 0.5)
        for bad in ((5, "opacity", 0.5), (4, "clip", "earth.mp4"), (2, "blend", "spin"), (3, "clip", "nosuch")):
            show.send("/livejpp/layer", *bad)
        show.feedback.wait("layer2_opacity", lambda v: v == 0.5)
        assert show.feedback.state["layer2_blend"] == "add"
        uid = show.feedback.state["layer2_clip"]
        wait_beats(show, 4)
        show.send("/livejpp/layer", 2, "clip", "")
        show.feedback.wait("layer2_clip", lambda v: v == "")
        wait_beats(show, 3)
        stats = show.finish()
    finally:
        show.kill()
    refused = [line for line in show.lines if "osc: layer" in line]
    assert len(refused) == 4, refused  # one line each
    assert "layer 5: hand-set layers are 2..4" in refused[0] and "layer 4: hand-set layers are 2..3" in refused[1]
    assert "spin" in refused[2] and "layer 3: no clip or video named 'nosuch'" in refused[3]
    changes = [c for c in stats["layers"]["changes"] if c["layer"] == 2]
    set_at, cleared_at = changes[0]["time"], changes[-1]["time"]
    assert changes[0]["clip"] == uid and changes[-1]["clip"] == ""
    assert (changes[-2]["opacity"], changes[-2]["blend"]) == (0.5, "add")
    frames = recorded(tmp_path / "show.mp4")
    times = stats["record"]["frame_show_times"][: len(frames)]
    pictures = Pictures(lib, stats, (320, 180))
    first_layered, layered, plain = None, 0, 0
    for frame, t in zip(frames, times, strict=True):
        base, frame = pictures.matcher(t), frame[::3, ::3]
        if base is None or t < 0.5:  # a crossfade, or the show's first frames (another test's)
            continue
        plain_near = nearest(frame, base)
        if set_at < t < cleared_at:
            expected = blend(base[:, None], pictures.layer(uid, set_at, t)[None, :], 0.5, "add")  # every pair
            near = nearest(frame, expected)
            if first_layered is None and plain_near < 8:
                continue  # the layer's first picture is still being decoded: the plain picture, never black
            first_layered = first_layered or t
            assert near < 8, (t, near, plain_near)  # the blend, within the recording's codec error (~5 levels)
            assert plain_near > near + 20, (t, near, plain_near)  # and far from the plain picture
            layered += 1
        elif t > cleared_at + 0.1:
            assert plain_near < 8, (t, plain_near)  # cleared: the matcher's picture alone
            plain += 1
        elif t < set_at:
            assert plain_near < 8, (t, plain_near)
    assert first_layered is not None and first_layered - set_at < 1.0  # the layer shows at once (~2 frames here)
    assert layered >= 10 and plain >= 10  # frames of each kind were checked (~60 and ~45 at 30 fps)


@pytest.fixture
def lib(real_library, tmp_path):
    copy = tmp_path / "lib"
    shutil.copytree(real_library[0], copy)
    return copy


def started_show(lib, layers: int, only: str = ""):
    """A real show without audio (no window: the test reads its snapshots), only `only`'s clips matched."""
    from livejpp.audio_io import DeviceSource
    from livejpp.engine.live import LiveShow

    show = LiveShow(lib, DeviceSource("no such device"), size=(320, 180), layers=layers)
    if only:
        show.engine.restrict(show.engine.records.matching(show.engine.video_paths, only))
    show.start()
    return show


def test_the_outgoing_clip_is_left_undecoded_once_its_crossfade_is_over(lib):
    """After a crossfade the shader reads only the incoming picture: the decoder stops decoding the outgoing clip
    (a whole layer's CPU each frame, held or waiting for the next cut) and the window has nothing new of it to
    upload, while the incoming clip plays on."""
    from waiting import wait_until

    show = started_show(lib, 1)
    try:
        show.set_hold(True)  # no cut but the forced one: the two clips stay the matcher's layers
        wait_until(lambda: show.snapshot().incoming is not None, 20, "the first picture")
        cut = show.next_clip()
        assert cut is not None
        wait_until(lambda: show.snapshot() and cut in show.layers, 20, "the forced cut on screen")
        over = cut.cut.time + cut.cut.crossfade + 0.2
        wait_until(lambda: show.picture_time() > over, 20, "the end of the crossfade")
        outgoing, incoming = [], []  # the pictures themselves, kept: a freed picture's id is reused

        def seen() -> bool:
            shot = show.snapshot()
            for kept, picture in ((outgoing, shot.outgoing), (incoming, shot.incoming)):
                if not any(picture is other for other in kept):
                    kept.append(picture)
            return len(incoming) >= 6

        wait_until(seen, 20, "six pictures of the incoming clip")
        assert len(show.layers) == 2  # the outgoing clip is still the matcher's layer below
    finally:
        show.stop()
    assert len(outgoing) == 1, f"{len(outgoing)} outgoing pictures"  # one at most (a candidate's first)


def first_clip(lib, video: str) -> str:
    import sqlite3

    with sqlite3.connect(lib / "library.sqlite") as db:
        rows = db.execute("SELECT v.path, v.content_hash FROM clips c JOIN videos v ON v.id = video_id WHERE idx = 0")
        return next(f"{h[:12]}-0000" for path, h in rows if Path(path).name == video)


def test_a_layer_clip_is_found_by_its_uid_or_one_line(real_library):
    """A clip uid (video hash prefix and clip number) names that clip, found through its video; an unknown
    video, or a clip number the video lacks, is the one line a video name the library lacks is."""
    from livejpp.engine.engine import Engine
    from livejpp.engine.layers import find_clip

    lib = real_library[0]
    engine = Engine(lib)
    earth = next(v for v, name in engine.video_names.items() if name == "earth.mp4")
    clips = engine.records.of_video(earth)
    assert len(clips) > 1
    for record in (clips[0], clips[-1]):
        assert find_clip(engine, record.uid) == record
        assert find_clip(engine, f"  {record.uid} ") == record  # as typed over OSC or in a preset
    prefix = clips[0].uid.split("-")[0]
    for unknown in (f"{prefix}-{len(clips) + 5:04d}", "0123456789ab-0000", "-0001", f"{prefix}-"):
        with pytest.raises(ValueError) as said:
            find_clip(engine, unknown)
        assert str(said.value) == f"no clip or video named {unknown!r} in {lib}"
    assert find_clip(engine, "EARTH.MP4") == clips[0]  # a video's name still plays its first clip


def test_a_preset_sets_a_layer_and_the_hud_names_it(lib, tmp_path):
    from test_live import playback
    from waiting import wait_until

    from livejpp.control.commands import CommandBus
    from livejpp.control.mapping import Presets
    from livejpp.engine.hud import hud_text
    from livejpp.media.compose import LayerDraw
    from livejpp.media.player import ClipFrames

    (tmp_path / "layered.toml").write_text(
        '[show]\nlayer2_clip = "earth.mp4"\nlayer2_opacity = 0.5\nlayer2_blend = "screen"\n'
    )
    show = started_show(lib, 2, only="tree")
    try:
        bus = CommandBus(show, Presets(tmp_path))
        (tmp_path / "too-many.toml").write_text('[show]\nlayer2_opacity = 0.2\nlayer3_clip = "tree.avi"\n')
        assert bus.run("preset", "too-many") is None  # layer 3 on a show of 2: refused whole, in a line
        assert "too-many.toml: layer 3: this show has one hand-set layer, 2 (--layers 2)" in bus.last_error
        assert show.hand[2].opacity == 1  # nothing of it applied
        assert bus.run("preset", "layered") is not None
        extra = wait_until(lambda: show.snapshot().extra[0][0] is not None and show.snapshot().extra, 20, "layer 2")
        hud = hud_text(show)
    finally:
        show.stop()
    picture, draw = extra[0]
    assert draw == LayerDraw(0.5, "screen")
    uid = first_clip(lib, "earth.mp4")
    reader = ClipFrames(playback(lib, uid), (320, 180))
    clip = np.stack([reader.frame_at(n / 30, rgba=True)[::3, ::3] for n in range(150)])
    assert nearest(picture[::3, ::3], clip) == 0  # a picture of earth's first clip, as it is (RGBA for the GL)
    assert f"layer 2: {uid} earth.mp4 50% screen" in hud
    assert bus.state()["layer2_clip"] == uid  # what OSC feedback sends


def test_a_layer_whose_clip_cannot_play_is_cleared_in_one_line(lib, caplog):
    from test_live import playback
    from waiting import wait_until

    from livejpp.control.commands import CommandBus

    uid = first_clip(lib, "mdn_flower.mp4")
    broken = playback(lib, uid)
    broken.write_bytes(np.random.default_rng(3).integers(0, 256, 5000, np.uint8).tobytes())
    show = started_show(lib, 3, only="tree")  # the matcher never touches the broken clip
    try:
        bus = CommandBus(show)
        bus.run("layer", "3 clip mdn_flower.mp4")
        wait_until(lambda: show.hand[3].record is None, 20, "layer 3 cleared")
        bus.run("layer", "2 clip earth.mp4")  # the other layers and the matcher play on
        wait_until(lambda: show.snapshot().extra[0][0] is not None, 20, "layer 2 shows earth")
        shot = show.snapshot()
    finally:
        show.stop()
    lines = [r.getMessage() for r in caplog.records if uid in r.getMessage()]
    assert len(lines) == 1 and str(broken) in lines[0] and "(layer 3 cleared)" in lines[0], lines
    assert shot.incoming is not None and shot.extra[1][0] is None  # layer 3 draws nothing, never black
    assert bus.run("layer", "3 clip mdn_flower.mp4") is None  # known broken: refused in a line
    assert "cannot play" in bus.last_error


def test_layer_opacity_is_a_continuous_midi_control_and_learnable():
    from livejpp.control.keys import learnable
    from livejpp.control.mapping import binding_from, translate

    binding = binding_from({"command": "layer3_opacity", "cc": 7}, "test")
    assert binding.mode == "absolute"
    assert translate(binding, "cc", 127) == ("run", "layer3_opacity", 1.0)
    assert translate(binding, "cc", 0) == ("run", "layer3_opacity", 0.0)
    assert translate(binding, "cc", 64)[2] == pytest.approx(64 / 127)  # a fader: every step in between
    assert {"layer2_opacity", "layer2_blend", "layer4_opacity"} <= set(learnable())


# --- render --layer ----------------------------------------------------------------------------------
def test_render_draws_its_layers_over_the_cuts_as_compose_does(real_library, media, tmp_path):
    """The same song rendered plain and with two layers: each layered frame is compose.composite of the plain
    frame and the layers' clips (looping from the start), within the codec's error, and far from the plain one."""
    from synth import write_audio
    from test_live import playback

    from livejpp.engine.music_video import render
    from livejpp.media.compose import LayerDraw, composite
    from livejpp.media.decode import AUDIO_RATE, read_audio_file
    from livejpp.media.player import ClipFrames

    lib, size, fps = real_library[0], (320, 180), 10
    song = tmp_path / "song.flac"
    write_audio(song, read_audio_file(media / "music" / "lmms_Skiessi-C64.ogg", 0, 12)[None, :], AUDIO_RATE, "mono")
    layers = ["3:earth.mp4:0.5:multiply", "2:mdn_flower.mp4:0.6:screen"]  # drawn by number, not as given
    plain = render(song, lib, tmp_path / "plain.mp4", size=size, fps=fps, progress=False)
    layered = render(song, lib, tmp_path / "layered.mp4", size=size, fps=fps, progress=False, layers=layers)
    assert [c["clip"] for c in plain.cuts] == [c["clip"] for c in layered.cuts]  # the same cuts under the layers
    flower, earth = (ClipFrames(playback(lib, first_clip(lib, v)), size) for v in ("mdn_flower.mp4", "earth.mp4"))
    lengths = {
        clip: clip_length(lib, first_clip(lib, v)) for clip, v in ((flower, "mdn_flower.mp4"), (earth, "earth.mp4"))
    }
    frames = list(zip(recorded(plain.video), recorded(layered.video), strict=True))
    assert len(frames) == plain.frames
    for n, (under, over) in enumerate(frames):
        t = n / fps
        tops = [
            (clip.frame_at(t % lengths[clip]), draw)
            for clip, draw in ((flower, LayerDraw(0.6, "screen")), (earth, LayerDraw(0.5, "multiply")))
        ]
        expected = composite(under.astype(np.uint8), tops).astype(int)
        assert np.abs(over - expected).mean() < 4, t  # the same picture, within two encodings' error (~2.5)
        assert np.abs(over - under).mean() > np.abs(over - expected).mean() + 15, t  # and not the plain one


def test_render_leaves_out_a_layer_whose_clip_is_damaged(lib, media, tmp_path, caplog):
    """A layer's clip found damaged when decoded: one line naming it, the layer left out (the cuts' pictures
    as the render without it drew them, not black), the render finished."""
    from synth import write_audio
    from test_live import playback

    from livejpp.engine.music_video import render
    from livejpp.media.decode import AUDIO_RATE, read_audio_file

    song = tmp_path / "song.flac"
    write_audio(song, read_audio_file(media / "music" / "lmms_Skiessi-C64.ogg", 0, 10)[None, :], AUDIO_RATE, "mono")
    plain = render(song, lib, tmp_path / "plain.mp4", size=(160, 90), fps=10, progress=False)
    cut = {c["clip"] for c in plain.cuts}
    uid = next(u for u in (first_clip(lib, v) for v in ("mdn_flower.mp4", "earth.mp4", "tree.avi")) if u not in cut)
    playback(lib, uid).write_bytes(b"\x00not a video" * 100)  # a clip no cut plays: only the layer opens it
    layered = render(song, lib, tmp_path / "layered.mp4", size=(160, 90), fps=10, progress=False, layers=[f"2:{uid}"])
    said = [r.getMessage() for r in caplog.records if "cannot play" in r.getMessage()]
    assert len(said) == 1 and f"layer clip {uid} cannot play" in said[0] and "the layer is left out" in said[0]
    frames = [np.stack(recorded(result.video)).astype(int) for result in (plain, layered)]
    assert frames[0].shape == frames[1].shape and len(frames[0]) == plain.frames
    assert np.abs(frames[1] - frames[0]).mean() < 1  # the cuts' pictures alone


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("5:earth.mp4", "layer 5: hand-set layers are 2..4"),
        ("1:earth.mp4", "layer 1: hand-set layers are 2..4"),
        ("2:earth.mp4:1.5", "opacity '1.5' is not a number 0..1"),
        ("2:earth.mp4:0.5:spin", "unknown blend 'spin'"),
        ("two:earth.mp4", "the layer number 'two' is not a whole number"),
        ("2", "expected N:CLIP_OR_VIDEO[:OPACITY[:BLEND]]"),
    ],
)
def test_a_bad_layer_spec_is_one_line(spec, said, tmp_path):
    from livejpp.engine.music_video import RenderError, render

    with pytest.raises(RenderError, match=re.escape(said)):
        render("song.ogg", "lib", tmp_path / "out.mp4", layers=[spec])


def test_render_names_a_layer_clip_the_library_lacks(real_library, media, tmp_path):
    import subprocess
    import sys

    song = media / "music" / "lmms_Skiessi-C64.ogg"
    command = [
        sys.executable,
        "-m",
        "livejpp",
        "render",
        str(song),
        "-l",
        str(real_library[0]),
        "-o",
        str(tmp_path / "o.mp4"),
    ]
    out = subprocess.run(
        [*command, "--layer", "2:nosuch.mp4:0.5:add", "-q"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"livejpp: error: --layer 2: no clip or video named 'nosuch.mp4' in {real_library[0]}"
    ]
    assert not (tmp_path / "o.mp4").exists()


def test_live_help_documents_layers():
    import subprocess
    import sys

    live = [sys.executable, "-m", "livejpp", "live"]
    out = subprocess.run([*live, "--help"], capture_output=True, text=True, timeout=60)
    assert "--layers N" in out.stdout and "layer N clip|opacity|blend" in " ".join(out.stdout.split())
    refused = subprocess.run([*live, "-l", "lib", "--layers", "5"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "argument --layers: invalid choice: 5" in refused.stderr

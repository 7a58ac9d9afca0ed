"""BeatNet's learned activation, live with numpy and onnxruntime alone: the shipped ONNX and livejpp's
features agree with the originals (torch, madmom), a stream gives what a whole song gives, and the
activation marks the beats and bars of real music."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from livejpp.features import beatnet, pretrained
from livejpp.features.audio import AudioAnalyser
from livejpp.media.decode import AUDIO_RATE, read_audio_file

FOLDER = Path(__file__).resolve().parent.parent / "models" / "beatnet"
#: reference.npz holds madmom's features of this excerpt (tools/convert_beatnet.py REFERENCE)
REFERENCE = ("lmms_Skiessi-C64.ogg", 10.0, 14.0)
#: Skiessi-C64.mmpz (Debian lmms-common): <head bpm="127" timesig_numerator="4">; its bar 1 starts at 0 s
SKIESSI_PERIOD = 60.0 / 127


def run_onnx(feats: np.ndarray, chunks: list[int]) -> np.ndarray:
    session = pretrained.session(beatnet.BEATNET_DIR)
    h = c = np.zeros((2, 1, beatnet.HIDDEN), np.float32)
    out, start = [], 0
    for size in chunks:
        probs, h, c = session.run(None, {"feats": feats[None, start : start + size], "h0": h, "c0": c})
        out.append(probs[0])
        start += size
    return np.concatenate(out)


def stream(audio: np.ndarray, sizes, keep_seconds: float | None = 8.0):
    """Push `audio` in blocks of the given sizes, asking BeatNetActivation for new frames after each."""
    analyser, source, got, pos = AudioAnalyser(keep_seconds), beatnet.BeatNetActivation(), [], 0
    for size in sizes:
        if pos >= len(audio):
            break
        analyser.push(audio[pos : pos + size])
        pos += size
        acts = source.advance(analyser)
        if acts is not None:
            got.append(acts)
    return got


def test_shipped_onnx_agrees_with_torch_in_one_call_and_in_chunks():
    reference = np.load(FOLDER / "reference.npz")
    feats = reference["feats"]
    whole = run_onnx(feats, [len(feats)])
    assert np.abs(whole - reference["probs"]).max() <= 1e-4
    chunked = run_onnx(feats, [1, 7, 25, 3, 60, len(feats) - 96])  # the LSTM state carried between calls
    assert np.abs(chunked - whole).max() <= 1e-5
    card = json.loads((FOLDER / "card.json").read_text())
    assert all(v <= 1e-4 for v in card["check"]["max_abs_difference"].values()), card["check"]
    licence = (FOLDER / card["licence"].split("see ")[1]).read_text()
    assert "Attribution 4.0 International" in licence and "Heydari" in licence


def test_numpy_features_reproduce_madmoms():
    song, start, end = REFERENCE
    audio = read_audio_file(Path(__file__).parent / "media" / "music" / song, start=start, end=end)
    analyser = AudioAnalyser(keep_seconds=None)
    analyser.push(audio)
    first, feats = beatnet.LogSpect().advance(analyser)
    want = np.load(FOLDER / "reference.npz")["feats"]
    # every frame whose window lies in the excerpt (madmom pads the last ones with zeros past the end)
    assert first == 0 and len(feats) == len(want) - 1
    assert np.abs(feats - want[: len(feats)]).max() <= 1e-4


def test_a_stream_in_random_blocks_gives_what_one_block_gives(media):
    audio = read_audio_file(media / "music" / "Kevin_MacLeod-Vibe_Ace.ogg", start=20.0, end=28.0)
    rng = np.random.default_rng(11)
    pieces = stream(audio, rng.integers(1, 2 * beatnet.HOP, size=len(audio)))
    (whole,) = stream(audio, [len(audio)])
    assert [p.first for p in pieces] == list(np.cumsum([0] + [len(p.beat) for p in pieces[:-1]]))
    assert whole.first == 0 and whole.fps == 50.0
    beat, down = np.concatenate([p.beat for p in pieces]), np.concatenate([p.down for p in pieces])
    assert len(beat) == len(whole.beat) == beatnet.LogSpect.complete(len(audio))
    assert np.abs(beat - whole.beat).max() <= 1e-5 and np.abs(down - whole.down).max() <= 1e-5
    assert ((0 <= whole.down) & (whole.down <= whole.beat) & (whole.beat <= 1.0 + 1e-6)).all()


def peak_near(x: np.ndarray, times: np.ndarray, frames: int = 2) -> np.ndarray:
    """The highest activation within ± `frames` of each time."""
    k = np.round(times * beatnet.FPS).astype(int)
    return np.array([x[max(0, i - frames) : i + frames + 1].max() for i in k])


def test_the_activation_marks_the_beats_and_the_bars_one_of_a_real_song(media):
    audio = read_audio_file(media / "music" / "lmms_Skiessi-C64.ogg", start=0.0, end=20.0)
    acts = stream(audio, [AUDIO_RATE // 2] * 40)  # half a second at a time, as the show's hop
    beat, down = np.concatenate([a.beat for a in acts]), np.concatenate([a.down for a in acts])
    end = len(beat) / beatnet.FPS
    k = np.arange(int(5.0 / SKIESSI_PERIOD) + 1, int((end - 0.5) / SKIESSI_PERIOD))  # beats after 5 s
    beats = k * SKIESSI_PERIOD
    on, off = peak_near(beat, beats), peak_near(beat, beats + SKIESSI_PERIOD / 2)
    # a strong peak on the beat, a weak one on the off-beat
    assert np.median(on) > 0.7 and np.median(off) < 0.4
    assert np.mean(on > off) >= 0.75
    # the peaks sit on the beat, not late: the tracker needs no lag for this activation
    frames = np.round(beats * beatnet.FPS).astype(int)
    offsets = [np.argmax(beat[i - 3 : i + 4]) - 3 for i in frames]
    assert abs(np.median(offsets)) <= 1
    # the bar's one is where the downbeat probability is highest
    per_beat = [peak_near(down, beats[k % 4 == b]).mean() for b in range(4)]
    assert per_beat[0] > 1.5 * max(per_beat[1:]), per_beat


def test_a_reader_that_stalled_longer_than_the_audio_kept_goes_on_with_the_newest(media):
    audio = read_audio_file(media / "music" / "lmms_Skiessi-C64.ogg", start=0.0, end=8.0)
    analyser, source = AudioAnalyser(keep_seconds=2.0), beatnet.BeatNetActivation()
    analyser.push(audio[: 6 * AUDIO_RATE])  # 6 s arrive while nobody reads; only 2 s are kept
    late = source.advance(analyser)
    assert late.first >= 4 * beatnet.FPS and late.first + len(late.beat) == beatnet.LogSpect.complete(6 * AUDIO_RATE)
    analyser.push(audio[6 * AUDIO_RATE : 7 * AUDIO_RATE])  # read in time again: nothing is skipped
    assert source.advance(analyser).first == late.first + len(late.beat)


def test_a_missing_model_names_its_converter():
    with pytest.raises(pretrained.ModelMissing, match=r"beatnet_elsewhere/model.onnx: .*tools/convert_beatnet.py"):
        beatnet.BeatNetActivation("models/beatnet_elsewhere")

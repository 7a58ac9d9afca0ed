"""The engine: beat clock, selector, and the same decisions for a file and a stream."""

import numpy as np
import pytest
from synth import click_track

from livejpp.engine.beat import BeatClock
from livejpp.engine.engine import Engine, EngineSettings
from livejpp.engine.selector import ClipInfo, Selector, SelectorSettings
from livejpp.features.audio import AudioAnalyser
from livejpp.media.decode import AUDIO_RATE, read_audio_file


def follow(clock, audio, hop=0.5):
    analyser = AudioAnalyser()
    predicted = []
    for start in range(0, len(audio), int(hop * AUDIO_RATE)):
        analyser.push(audio[start : start + int(hop * AUDIO_RATE)])
        now = analyser.seconds
        clock.update(analyser, now)
        predicted.append((now, clock.bpm, clock.next_beat(now)))
    return predicted


def test_the_clock_finds_tempo_and_phase_of_a_click_track():
    clicks = click_track(120, 20) + 0.0
    shifted = np.concatenate([np.zeros(int(0.2 * AUDIO_RATE), np.float32), clicks])  # beats at 0.2 + k/2 s
    clock = BeatClock(bpm=100)
    predicted = follow(clock, shifted)
    late = [(now, bpm, beat) for now, bpm, beat in predicted if now > 8]
    assert all(abs(bpm - 120) < 2.5 for _, bpm, _ in late)
    offsets = [((beat - 0.2 + 0.25) % 0.5) - 0.25 for _, _, beat in late]
    assert np.median(np.abs(offsets)) < 0.03  # predicted beats within 30 ms of the clicks


def test_the_clock_follows_a_tempo_change():
    audio = np.concatenate([click_track(100, 12), click_track(140, 14)])
    predicted = follow(BeatClock(), audio)
    assert abs(predicted[int(11 / 0.5)][1] - 100) < 3
    assert abs(predicted[-1][1] - 140) < 3


def test_tap_tempo_overrides_until_released_and_nudge_shifts():
    clock = BeatClock()
    for t in (10.0, 10.4, 10.8, 11.2):
        clock.tap(t)
    assert clock.bpm == pytest.approx(150) and clock.tapped
    analyser = AudioAnalyser()
    analyser.push(click_track(90, 10))
    clock.update(analyser, 10.0)
    assert clock.bpm == pytest.approx(150)  # the taps hold
    assert clock.next_beat(11.3) == pytest.approx(11.6)
    clock.nudge(0.1)
    assert clock.next_beat(11.3) == pytest.approx(11.3)
    clock.follow()
    clock.update(analyser, 10.0)
    assert abs(clock.bpm - 90) < 3


def clips(n=12, videos=3, length=10.0):
    return {i: ClipInfo(i, i % videos, length) for i in range(n)}


def run_selector(settings, beats=200, period=0.5, neighbours=None):
    selector = Selector(clips(), settings)
    neighbours = neighbours or [(i, 0.1 * i) for i in range(12)]
    cuts = []
    for b in range(beats):
        cut = selector.on_beat(b * period, b, period, neighbours)
        if cut:
            cuts.append(cut)
    return cuts


def test_cuts_land_on_bars_within_min_and_max():
    cuts = run_selector(SelectorSettings(bars_per_cut=2, min_seconds=2, max_seconds=16))
    assert cuts[0].reason == "start"
    assert all(c.beat % 8 == 0 for c in cuts[1:])
    gaps = np.diff([c.time for c in cuts])
    assert gaps.min() >= 2 and gaps.max() <= 16
    assert all(c.crossfade == pytest.approx(0.5) for c in cuts[1:])


def test_no_repeat_window_and_resuming_where_a_clip_left_off():
    cuts = run_selector(SelectorSettings(no_repeat_seconds=30, choices=1))
    shown: dict[int, float] = {}
    for c in cuts:
        assert c.clip not in shown or c.time - shown[c.clip] >= 30
        shown[c.clip] = c.time
    again = [c for c in cuts if sum(d.clip == c.clip for d in cuts[: cuts.index(c)])]
    assert again and all(c.offset > 0 for c in again)  # a clip comes back where it left off


def test_same_seed_same_cuts_other_seed_other_cuts():
    a = [(c.time, c.clip) for c in run_selector(SelectorSettings(seed=1))]
    b = [(c.time, c.clip) for c in run_selector(SelectorSettings(seed=1))]
    c = [(c.time, c.clip) for c in run_selector(SelectorSettings(seed=2))]
    assert a == b and a != c


def test_staying_with_the_video_on_screen():
    settings = SelectorSettings(stay_with_video=10.0, choices=1, no_repeat_seconds=0)
    cuts = run_selector(settings, beats=80)
    videos = [i % 3 for i in (c.clip for c in cuts)]
    assert len(set(videos)) == 1
    free = run_selector(SelectorSettings(choices=1, no_repeat_seconds=0), beats=80)
    assert len({c.clip % 3 for c in free}) > 1


def test_hold_keeps_the_clip():
    selector = Selector(clips(), SelectorSettings())
    selector.on_beat(0.0, 0, 0.5, [(1, 0.1), (2, 0.2)])
    selector.held = True
    assert all(selector.on_beat(b * 0.5, b, 0.5, [(3, 0.1)]) is None for b in range(1, 100))


def test_a_stream_and_a_file_give_the_same_cuts(real_library, media):
    lib, _ = real_library
    song = read_audio_file(media / "music" / "lmms_CapDan-ReggaeTry.ogg", 0, 30)
    whole = Engine(lib, "default", EngineSettings())
    whole.push(song)
    streamed = Engine(lib, "default", EngineSettings())
    rng = np.random.default_rng(0)
    at = 0
    while at < len(song):
        n = int(rng.integers(200, 6000))
        streamed.push(song[at : at + n])
        at += n
    key = [(round(c.time, 6), c.clip, c.offset) for c in whole.cuts]
    assert key == [(round(c.time, 6), c.clip, c.offset) for c in streamed.cuts]
    assert len(key) >= 3
    beats = np.array(whole.beats)
    assert all(np.min(np.abs(beats - c.time)) < 1e-6 for c in whole.cuts[1:])  # every cut on a beat


def test_analysis_that_falls_behind_drops_stale_hops(real_library, media):
    lib, _ = real_library
    song = read_audio_file(media / "music" / "lmms_CapDan-ReggaeTry.ogg", 0, 20)
    engine = Engine(lib, "default", EngineSettings())
    engine.push(song[: 10 * 22050])
    hops = len(engine.hops)
    engine.push(song[10 * 22050 :], latest_only=True)  # 10 s arrived at once: only the newest hop is decided
    assert len(engine.hops) == hops + 1 and engine.dropped_hops == 19
    assert engine.hops[-1].time == 20.0

"""Musical time: the clock's trackers and bars, phrase cuts, drop cuts, and a clock that holds
(never cuts at random) when the music gives no beat. Synthetic songs from tests/synth.py, the real
library for the engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synth import click_track, drums, pad

from livejpp.engine.beat import BeatClock
from livejpp.engine.engine import Engine, EngineSettings
from livejpp.engine.selector import Selector, SelectorSettings
from livejpp.engine.trackers import RECENT_SECONDS, TRACKERS, Estimate, TrackerError, make_tracker
from livejpp.features.audio import AudioAnalyser
from livejpp.media.decode import AUDIO_RATE

HOP = int(0.5 * AUDIO_RATE)


def follow(clock: BeatClock, audio: np.ndarray) -> list[tuple[float, float, float]]:
    """(now, bpm, confidence) after each hop, the clock fed as the engine feeds it."""
    analyser, seen = AudioAnalyser(), []
    for start in range(0, len(audio), HOP):
        analyser.push(audio[start : start + HOP])
        clock.advance(analyser)
        clock.update(analyser, analyser.seconds)
        seen.append((analyser.seconds, clock.bpm, clock.confidence))
    return seen


# --- the clock ----------------------------------------------------------------------------------
def test_an_unknown_or_missing_tracker_is_one_clear_line():
    assert make_tracker("today").name == "today"
    with pytest.raises(TrackerError, match=r"^beat tracker 'nope' is not available in this build \(available: "):
        make_tracker("nope")


def test_silence_holds_the_grid_and_drops_the_confidence():
    song = np.concatenate([click_track(120, 12) + pad(12), np.zeros(20 * AUDIO_RATE, np.float32)])
    song = np.concatenate([np.zeros(int(0.25 * AUDIO_RATE), np.float32), song])  # beats at 0.25 + k/2 s
    clock = BeatClock(bpm=100)
    seen = follow(clock, song)
    playing = [c for t, _, c in seen if 8 <= t <= 12]
    assert min(playing) >= 0.3  # sure while the drums play
    assert all(c < 0.3 for t, _, c in seen if t >= 16)  # unsure within 4 s of silence ...
    assert all(abs(bpm - 120) < 2 for t, bpm, _ in seen if t >= 8)  # ... and the tempo holds
    phase = ((clock.next_beat(14.0) - 0.25 + 0.25) % 0.5) - 0.25
    assert abs(phase) < 0.04  # the grid goes on where the kicks were ...
    grid = (clock.period, clock.anchor, clock.bar_anchor)
    follow(clock, np.zeros(5 * AUDIO_RATE, np.float32))
    assert (clock.period, clock.anchor, clock.bar_anchor) == grid  # ... and holds still, extrapolated


def test_follow_overrides_a_wrong_tapped_tempo():
    clock = BeatClock()
    song = click_track(120, 16)
    analyser = AudioAnalyser()
    analyser.push(song[: 8 * AUDIO_RATE])
    clock.update(analyser, 8.0)
    for t in (8.0, 9.0, 10.0, 11.0):  # tapped at half the tempo
        clock.tap(t)
    assert clock.bpm == pytest.approx(60) and clock.source == "tap" and clock.confidence == 1.0
    analyser.push(song[8 * AUDIO_RATE :])
    clock.update(analyser, 16.0)
    assert clock.bpm == pytest.approx(60)  # the tap holds ...
    clock.follow()
    clock.update(analyser, 16.0)
    assert abs(clock.bpm - 120) < 2.5  # ... until `follow`: the music's tempo, not the tap's octave


def test_the_one_stays_on_the_same_click_through_a_long_song():
    song = np.concatenate([np.zeros(int(0.2 * AUDIO_RATE), np.float32), click_track(120, 90)])  # beats at 0.2 + k/2
    clock, analyser, ones = BeatClock(), AudioAnalyser(), set()
    for start in range(0, len(song), HOP):
        analyser.push(song[start : start + HOP])
        clock.update(analyser, analyser.seconds)
        if analyser.seconds > 10:
            ones.add(round((clock.next_downbeat(analyser.seconds) - 0.2) / 0.5) % 4)
    assert len(ones) == 1  # the bars keep starting where they started, while tempo and phase are refined


def test_bars_count_on_through_tempo_refinements_and_resync_makes_a_one():
    clock = BeatClock()
    clock.external(0.5, 0.1, bar_at=0.6)  # a downbeat at 0.6
    assert clock.source == "midi" and clock.bar_position(0.6) == 0 and clock.bar_position(1.1) == 1
    assert clock.next_downbeat(0.7) == pytest.approx(2.6)
    before = clock.beat_index(20.1)
    clock.external(0.49, 20.1)  # a little faster, the phase kept: the count goes on
    assert clock.beat_index(20.1) == before and clock.bar_position(20.1) == before % 4
    clock.resync(20.59)  # the VJ: this is the one
    assert clock.next_beat(20.5) == pytest.approx(20.59) and clock.bar_position(20.59) == 0
    clock.av_offset = 0.1  # pictures later: the show draws them later (engine/latency.py); the beats stay
    assert clock.next_beat(20.5) == pytest.approx(20.59) and clock.next_downbeat(20.5) == pytest.approx(20.59)


# --- the selector: phrases, and a held grid -----------------------------------------------------
def clips(n=12):
    from livejpp.engine.selector import ClipInfo

    return {i: ClipInfo(i, i % 3, 10.0) for i in range(1, n + 1)}


def test_phrase_cuts_fall_on_every_phrase_start_even_where_bars_would_skip_it():
    neighbours = [(i, 0.1 * i) for i in range(1, 13)]
    selector = Selector(clips(), SelectorSettings(bars_per_cut=3, phrase_bars=4, no_repeat_seconds=0))
    cuts = [selector.on_beat(b * 0.5, b, 0.5, neighbours, beats_per_bar=4) for b in range(0, 130)]
    cuts = [c for c in cuts if c is not None]
    phrase_starts = range(16, 130, 16)
    assert {c.beat for c in cuts if c.reason == "phrase"} == set(phrase_starts)
    assert all(c.beat % 12 == 0 for c in cuts if c.reason == "bars")
    waltz = Selector(clips(), SelectorSettings(bars_per_cut=2))  # 3/4: a cut every 6 beats
    cuts = [waltz.on_beat(b * 0.5, b, 0.5, neighbours, beats_per_bar=3) for b in range(0, 40)]
    assert [c.beat for c in cuts if c is not None and c.reason == "bars"] == [6, 12, 18, 24, 30, 36]


def test_a_held_grid_cuts_only_at_the_longest_time():
    neighbours = [(i, 0.1 * i) for i in range(1, 13)]
    selector = Selector(clips(), SelectorSettings(max_seconds=8))
    cuts = [selector.on_beat(b * 0.5, b, 0.5, neighbours, grid=b < 1) for b in range(0, 80)]
    timed = [(c.reason, c.time) for c in cuts if c is not None]
    assert timed == [("start", 0.0), ("max", 8.0), ("max", 16.0), ("max", 24.0), ("max", 32.0)]


# --- the engine ---------------------------------------------------------------------------------
class KnownGrid:
    """A tracker that knows the song's grid (120 BPM, the one at 0.3 s, `per_bar` beats a bar): what
    the engine does with a tracker that hears the downbeat."""

    name = "known"

    def __init__(self, per_bar: int = 4):
        self.per_bar = per_bar

    def advance(self, analyser):
        pass

    def estimate(self, now):
        return Estimate(0.5, 0.3, 0.3 + 0.5 * self.per_bar * int(now // 4), self.per_bar, 0.9)

    def resync(self, downbeat):
        pass


@pytest.mark.parametrize(("per_bar", "bars", "phrase"), [(4, 2, 0), (3, 2, 0), (4, 3, 4)])
def test_cuts_fall_on_the_ones_the_tracker_hears(real_library, per_bar, bars, phrase):
    song = drums(120, 40, start=0.3) + pad(40)
    settings = EngineSettings(selector=SelectorSettings(bars_per_cut=bars, phrase_bars=phrase))
    engine = Engine(real_library[0], "default", settings)
    engine.clock = BeatClock(tracker=KnownGrid(per_bar))
    engine.push(song)
    timed = [c for c in engine.cuts if c.reason in ("bars", "phrase")]
    assert len(timed) >= 5
    beats = [(c, round((c.time - 0.3) / 0.5)) for c in timed]  # beats since the one the tracker heard
    assert all(abs((c.time - 0.3) / 0.5 - k) < 1e-6 for c, k in beats)  # on beats
    assert all(k % (bars * per_bar) == 0 for c, k in beats if c.reason == "bars")  # every N bars
    if phrase:  # and every phrase start, where the bars would skip it too
        assert {k for c, k in beats if c.reason == "phrase"} == set(range(16, 81, 16))


@pytest.mark.parametrize("quiet", ["silence", "pad"])
def test_no_beat_no_cuts_on_the_beat(real_library, quiet):
    """Music, then silence (or a beatless pad): the clip changes only when it has been on screen
    longest (--max-clip), never on a guessed beat. (The beat's absence is judged over the newest
    RECENT_SECONDS, so a bar cut may still fall within them after the drums stop.)"""
    after = np.zeros(30 * AUDIO_RATE, np.float32) if quiet == "silence" else pad(30)
    song = np.concatenate([drums(120, 12) + pad(12), after])
    settings = EngineSettings(selector=SelectorSettings(max_seconds=8))
    engine = Engine(real_library[0], "default", settings)
    engine.push(song)
    late = [c for c in engine.cuts if c.time > 12 + RECENT_SECONDS]
    assert late and all(c.reason == "max" for c in late), [(c.time, c.reason) for c in late]
    assert engine.clock.confidence < 0.3 and abs(engine.clock.bpm - 120) < 2


def test_a_midi_clock_keeps_the_cuts_on_its_beat_through_silence(real_library):
    engine = Engine(real_library[0], "default", EngineSettings(selector=SelectorSettings(max_seconds=8)))
    engine.push(drums(120, 12) + pad(12))
    engine.clock.external(0.5, 12.0, bar_at=12.0)  # the DJ's clock: the room's beat, whatever the input hears
    engine.push(np.zeros(20 * AUDIO_RATE, np.float32))
    late = [c for c in engine.cuts if c.time > 13]
    assert late and all(c.reason == "bars" and round((c.time - 12.0) / 0.5) % 8 == 0 for c in late)


def drop_song() -> np.ndarray:
    """16 s of a quiet pad, then loud drums over it from 16 s (a downbeat on the pad's grid)."""
    return np.concatenate([pad(16), drums(120, 16) + pad(16)])


def test_a_drop_is_cut_to_within_a_bar_with_clips_for_the_new_section(real_library):
    settings = EngineSettings(selector=SelectorSettings(choices=1, no_repeat_seconds=0))
    engine = Engine(real_library[0], "default", settings)
    song = drop_song()
    drop = None
    for start in range(0, len(song), HOP):
        before = engine.selector.current
        cuts = engine.push(song[start : start + HOP])
        drop = next((c for c in cuts if c.reason == "drop"), None)
        if drop is not None:
            break
    assert drop is not None, [(c.time, c.reason) for c in engine.cuts]
    assert engine.sections and abs(engine.sections[0] - 16.0) <= 0.5
    assert 16.0 <= drop.time <= 16.0 + 4 * 0.5 + 1e-6  # within one bar of the change
    now = engine.analyser.seconds
    full = engine.embedder.audio([engine.analyser.rows(now - engine.window, engine.window)])
    labels, _ = engine.index.query(full, settings.neighbours)
    full_choice = next(c for c in labels[0].tolist() if c != before.clip)
    assert drop.clip != full_choice  # the whole 10 s window would still choose for the pad


def test_a_steady_song_has_no_drops(real_library):
    engine = Engine(real_library[0], "default", EngineSettings())
    engine.push(drums(120, 40) + pad(40))
    assert engine.sections == [] and not any(c.reason == "drop" for c in engine.cuts)


def test_the_trackers_registry_names_only_what_loads():
    for name in TRACKERS:
        assert make_tracker(name).name == name


def test_a_tracker_that_is_not_there_is_one_line_on_the_command_line(tmp_path):
    song = Path(__file__).parent / "media" / "music" / "lmms_Skiessi-C64.ogg"
    command = ["render", str(song), "-l", str(tmp_path), "-o", str(tmp_path / "x.mp4"), "-q", "--beat-tracker", "nope"]
    out = subprocess.run([sys.executable, "-m", "livejpp", *command], capture_output=True, text=True, timeout=120)
    said = out.stderr.strip().splitlines()
    assert out.returncode != 0 and "Traceback" not in out.stderr and not (tmp_path / "x.mp4").exists()
    assert "argument --beat-tracker: invalid choice: 'nope'" in said[-1]

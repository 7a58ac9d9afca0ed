"""The beat clock: tempo, beat phase and the bar, followed from the music or set by hand.

Following the music, it asks its tracker (`livejpp.engine.trackers`) at every hop and takes the
grid it proposes, unless the tracker is unsure (confidence below HOLD_BELOW): then it holds the last
grid, extrapolated, rather than cut on a guess. A tap tempo or an external clock (MIDI, Link)
overrides the tracker until `follow`; a manual offset (`resync`, `nudge`) shifts the phase. The
clock keeps the show's `av_offset` too, but it does not move the beats: every time here is audio
time, and the show draws a beat's pictures where the latencies and the offset put it
(`engine/latency.py`).

Beats are counted from the bar grid's origin (`bar_anchor`, a downbeat), so `beat_index` is bar
aligned: a multiple of `beats_per_bar` falls on the one. A new grid comes with a recent downbeat;
the origin is put back from it by as many beats as the old grid counted up to it, so the count of a
running show stays continuous while tempo and phase are refined.
"""

from __future__ import annotations

import math

import numpy as np

from livejpp.engine.trackers import HISTORY_SECONDS, HOLD_BELOW, Tracker, make_tracker, rebar
from livejpp.features.audio import AudioAnalyser

__all__ = ["HISTORY_SECONDS", "HOLD_BELOW", "BeatClock"]

#: On locking (the first grid heard, or the first after holding), the downbeat heard starts a count of
#: this many bars (at least), so cuts every 1, 2, 4, 8 or 16 bars and phrases all count from it.
LOCK_BARS = 16


class BeatClock:
    def __init__(self, bpm: float = 120.0, tracker: str | Tracker = "today"):
        self.period = 60.0 / bpm
        self.anchor = 0.0  # a beat time; beats fall on anchor + k * period
        self.bar_anchor = 0.0  # the bar grid's origin: a downbeat on the same grid; beat_index counts from it
        self.beats_per_bar = 4
        self.offset = 0.0  # manual phase offset (seconds)
        self.av_offset = 0.0  # seconds the pictures are moved later than the sound (engine/latency.py)
        self.clarity = 0.0
        self.confidence = 0.0  # 0..1: how sure the grid is (1 for a tap tempo or an external clock)
        self.source = "music"  # where the tempo comes from: music | tap | midi | link
        self._taps: list[float] = []
        self._tracker = make_tracker(tracker) if isinstance(tracker, str) else tracker
        self._fed = -1  # analyser.samples_in when the tracker last read the audio
        self._locked = False  # the grid is the music's, heard with confidence since it was last unsure
        self.lock_bars = LOCK_BARS  # the engine adds its cut and phrase lengths, so they count from the lock

    @property
    def tracker(self) -> str:
        return self._tracker.name

    def set_tracker(self, name: str) -> None:
        """Follow the music with another tracker from now on (the grid holds until it has an opinion)."""
        self._tracker = make_tracker(name)
        self._fed = -1

    @property
    def tapped(self) -> bool:
        """The tempo is set by hand (taps) or by an external clock, not followed from the music."""
        return self.source != "music"

    @property
    def bpm(self) -> float:
        return 60.0 / self.period

    def advance(self, analyser: AudioAnalyser) -> None:
        """The tracker reads the audio just pushed (called after every push: cheap)."""
        self._tracker.advance(analyser)
        self._fed = analyser.samples_in

    def update(self, analyser: AudioAnalyser, now: float) -> None:
        """Follow the music: take the tracker's grid, or hold the last one while it is unsure. A tap
        tempo or an external clock holds; the tracker goes on listening, so `follow` returns at once
        to the music's tempo, whatever was tapped."""
        if analyser.samples_in != self._fed:
            self.advance(analyser)
        estimate = self._tracker.estimate(now)
        if estimate is None or self.tapped:
            return
        self.clarity = getattr(self._tracker, "clarity", estimate.confidence)
        self.confidence = estimate.confidence
        if estimate.confidence < HOLD_BELOW:
            self._locked = False
            return  # hold: the last grid goes on, extrapolated
        bars = 1 if self._locked else self.lock_bars
        self._adopt(estimate.period, estimate.anchor, estimate.bar_anchor, estimate.beats_per_bar, bars)
        self._locked = True

    def _adopt(self, period: float, anchor: float, downbeat: float, per_bar: int, bars: int = 1) -> None:
        """A new grid with a downbeat on it: the bar origin goes as many beats before that downbeat as
        the old grid counted up to it, rounded up to `bars` whole bars, so the count goes on."""
        counted = round((downbeat - self.bar_anchor) / self.period)
        counted += (-counted) % (per_bar * bars)
        self.period, self.anchor, self.beats_per_bar = period, anchor, per_bar
        self.bar_anchor = downbeat - counted * period

    def tap(self, t: float) -> None:
        """A tap on the beat: two or more taps set the tempo and the phase, and hold them."""
        if self._taps and t - self._taps[-1] > 2.0:
            self._taps = []
        self._taps.append(t)
        if len(self._taps) >= 2:
            period = float(np.median(np.diff(self._taps[-5:])))
            downbeat = rebar(self.bar_anchor, self.period, self.beats_per_bar, t, period, t)
            self._adopt(period, t, downbeat, self.beats_per_bar)
            self.source, self.confidence = "tap", 1.0

    def external(self, period: float, beat_at: float, bar_at: float | None = None, source: str = "midi") -> None:
        """Tempo and a beat time (and a downbeat, if known) from outside (MIDI clock, Link): held like
        a tap tempo until `follow`."""
        if period <= 0:
            return
        bars = 1
        if bar_at is None:
            bar_at = rebar(self.bar_anchor, self.period, self.beats_per_bar, beat_at, period, beat_at)
        elif source != self.source:
            bars = self.lock_bars  # a clock that says where its bars start: the cuts count from there
        self._adopt(period, beat_at, bar_at, self.beats_per_bar, bars)
        self.source, self.confidence = source, 1.0

    def follow(self) -> None:
        """Release a tap tempo or an external clock: follow the music again."""
        self.source = "music"
        self._taps = []
        self._locked = False

    def resync(self, t: float, cycle: int | None = None) -> None:
        """A downbeat falls at `t` (the VJ's word against the music's): the phase shifts to it, and
        keeps that shift while the clock goes on following the music; the beat at `t` becomes the one,
        counted as the next multiple of `cycle` beats (default: a bar)."""
        self.offset += t - self._nearest(t)
        cycle = cycle or self.beats_per_bar
        counted = self.beat_index(t)
        self.bar_anchor -= ((-counted) % cycle) * self.period
        self._tracker.resync(t - self.offset)

    def _nearest(self, t: float) -> float:
        after = self.next_beat(t)
        return after if after - t < self.period / 2 else after - self.period

    def nudge(self, seconds: float) -> None:
        self.offset += seconds

    def next_beat(self, t: float) -> float:
        """The first beat at or after t."""
        anchor = self.anchor + self.offset
        return anchor + math.ceil((t - anchor) / self.period - 1e-9) * self.period

    def beat_index(self, t: float) -> int:
        """The number of the beat nearest t, counted from the bar grid's origin (0 mod beats_per_bar: a one)."""
        return round((t - self.bar_anchor - self.offset) / self.period)

    def bar_position(self, t: float) -> int:
        """Where the beat nearest t falls in its bar: 0 is the one."""
        return self.beat_index(t) % self.beats_per_bar

    def next_downbeat(self, t: float) -> float:
        """The first downbeat (a bar's one) at or after t."""
        beat = self.next_beat(t)
        return beat + ((-self.beat_index(beat)) % self.beats_per_bar) * self.period

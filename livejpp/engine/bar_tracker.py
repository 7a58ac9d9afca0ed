"""The bar tracker: a beat activation → the forward filter → a published grid → the bar and meter.

Candidate B of issue 11 ("bar"): over the hand-made onset activation by default, or over any
`ActivationSource` (BeatNet's learned one: "beatnet"). Cheap per call: the filter steps once per new
frame; the meter once per beat, one beat behind (a beat's harmony change is known at the next beat).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from livejpp.engine.activation import ActivationSource, OnsetActivation
from livejpp.engine.bar_pointer import FORGET_SECONDS, BarPointer, Grid
from livejpp.engine.meter import Downbeatness, Meter
from livejpp.engine.trackers import Estimate
from livejpp.features.audio import FRAME_RATE, AudioAnalyser

#: The onset of a beat shows in the frames centred this long before it: a frame's window (±46 ms) rises
#: as soon as the hit enters it. Measured once on the synthetic grooves of tests/synth.py (with no lag,
#: the scheduled beats came 27–30 ms early at 100–120 BPM): a property of the analysis, not of a song.
#: Added to the frame times. A source may bring its own as `lag` (seconds); else 0.
ONSET_LAG = 0.03
#: Downbeat-ness from a learned `down` activation: its share of the beat activation within ± this
#: many frames of the beat.
DOWN_FRAMES = 2


class BarTracker:
    """Implements `livejpp.engine.trackers.Tracker` over `source` (default: the hand-made onset activation).
    Named after the source's `name` where it has one ("beatnet"), else "bar"."""

    def __init__(self, source: ActivationSource | None = None):
        self.source: ActivationSource = source if source is not None else OnsetActivation()
        self.name = getattr(self.source, "name", None) or (
            "beatnet" if "beatnet" in type(self.source).__name__.lower() else "bar"
        )
        self.lag = ONSET_LAG if source is None else getattr(self.source, "lag", 0.0)
        self.fps = float(self.source.fps)
        self.pointer = BarPointer(self.fps)
        self.grid = Grid(self.fps)
        self.meter = Meter()
        self.downbeatness = Downbeatness()
        self._beat: float | None = None  # the last beat the meter has seen (seconds)
        keep = int(4 * self.fps)
        self._recent: deque[tuple[int, float, float]] = deque(maxlen=keep)  # (frame, beat, down) activations

    def advance(self, analyser: AudioAnalyser) -> None:
        acts = self.source.advance(analyser)
        if acts is None or len(acts.beat) == 0:
            return
        down = acts.down if acts.down is not None else np.full(len(acts.beat), np.nan, np.float32)
        for i, (a, d) in enumerate(zip(acts.beat.tolist(), down.tolist(), strict=True)):
            frame = acts.first + i
            t = frame / acts.fps + self.lag
            informative = self.pointer.gate(a)
            g = self.grid
            if informative and g.period is not None and self.pointer.uninformed > self.fps * g.period:
                if g.confidence(t) > 0.0:  # back from a hold: resume from the grid held through it
                    self.pointer.seed(((t - g.anchor) / g.period) % 1.0, g.period * self.fps)
            self.grid.update(t, self.pointer.step(a, informative), self.pointer)
            self._recent.append((frame, a, d))
            if self.grid.informed_at is not None and t - self.grid.informed_at > FORGET_SECONDS:
                self._forget()
            else:  # frame by frame, so that the block sizes the audio came in make no difference
                self._count_beats(analyser, frame / acts.fps)

    def _forget(self) -> None:
        """Long without information (silence, an ambient piece): no opinion until the music is back."""
        self.grid = Grid(self.fps)
        self.meter = Meter()
        self.downbeatness = Downbeatness()
        self._beat = None

    def _count_beats(self, analyser: AudioAnalyser, heard: float) -> None:
        """Step the meter over each beat whose following beat has been heard by `heard` (the centre of
        the newest frame: the harmony change of a beat is known only then)."""
        period = self.grid.period
        if period is None or self.grid.informed_at is None:
            return
        beat = self._next_beat(self._beat + 0.5 * period if self._beat is not None else heard - 2 * period)
        while beat + period <= heard:
            self.meter.observe(self._downbeatness(analyser, beat, period))
            self._beat = beat
            beat = self._next_beat(beat + 0.5 * period)

    def _next_beat(self, t: float) -> float:
        g = self.grid
        return g.anchor + math.ceil((t - g.anchor) / g.period - 1e-9) * g.period

    def _downbeatness(self, analyser: AudioAnalyser, beat: float, period: float) -> float:
        downs = [(a, d) for f, a, d in self._recent if abs(f / self.fps + self.lag - beat) <= DOWN_FRAMES / self.fps]
        if downs and not np.isnan(downs[0][1]):
            beats, down = np.array(downs).T.sum(axis=1)
            return float(down / beats) if beats > 1e-6 else 0.5
        before = _frame_range(beat - period, beat)
        after = _frame_range(beat, beat + period)
        first, chroma = analyser.frames_since("chroma", before[0])
        _, mel = analyser.frames_since("mel_db", before[0])
        _, low = analyser.frames_since("onset_low", before[0])
        if first > before[0] or after[1] - first > len(chroma):
            return 0.5  # forgotten or not yet heard: no opinion
        a = slice(before[0] - first, before[1] - first)
        b = slice(after[0] - first, after[1] - first)
        c1, c2 = chroma[a].mean(axis=0), chroma[b].mean(axis=0)
        change = 1.0 - float(c1 @ c2) / (np.linalg.norm(c1) * np.linalg.norm(c2) + 1e-12)
        hit = int(round((beat - self.lag) * FRAME_RATE)) - first
        low_onset = float(low[max(hit - DOWN_FRAMES, 0) : hit + DOWN_FRAMES + 1].max(initial=0.0))
        step = float(mel[b].mean() - mel[a].mean())
        return self.downbeatness(change, low_onset, step)

    def estimate(self, now: float) -> Estimate | None:
        g = self.grid
        if g.period is None or g.informed_at is None:
            return None
        if self._beat is None:
            bar_anchor = g.anchor
        else:  # the beat the meter saw last, moved onto the current grid, minus its place in the bar
            last = g.anchor + round((self._beat - g.anchor) / g.period) * g.period
            bar_anchor = last - self.meter.position * g.period
        return Estimate(g.period, g.anchor, bar_anchor, self.meter.beats_per_bar, g.confidence(now))

    def resync(self, downbeat: float) -> None:
        """A downbeat falls at `downbeat`: the meter counts the bar from the grid's beat nearest it."""
        g = self.grid
        if g.period is None:
            return
        nearest = g.anchor + round((downbeat - g.anchor) / g.period) * g.period
        if self._beat is None:
            self._beat = nearest
        ahead = round((self._beat - nearest) / g.period)  # beats from the one to the last beat seen
        self.meter.force_one()
        for _ in range(ahead % self.meter.beats_per_bar):
            self.meter.posterior = self.meter.posterior @ self.meter.transition


def _frame_range(start: float, end: float) -> tuple[int, int]:
    """Analyser frames centred in [start, end) seconds."""
    return int(math.ceil(start * FRAME_RATE - 1e-9)), int(math.ceil(end * FRAME_RATE - 1e-9))

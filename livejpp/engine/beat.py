"""The beat clock: tempo and beat phase followed from the onsets of the music, or set by hand.

It re-estimates from the trailing seconds of onset strength at every hop, so it follows a song
that changes tempo; a tap tempo overrides it until released, and a manual offset shifts the phase.
"""

from __future__ import annotations

import math

import numpy as np

from livejpp.features.audio import FRAME_RATE, AudioAnalyser, tempo_of

HISTORY_SECONDS = 8.0
#: Below this pulse clarity the music gives no usable beat: the clock keeps its last tempo.
MIN_CLARITY = 0.1


class BeatClock:
    def __init__(self, bpm: float = 120.0):
        self.period = 60.0 / bpm
        self.anchor = 0.0  # a beat time; beats fall on anchor + k * period
        self.offset = 0.0  # manual phase offset (seconds)
        self.clarity = 0.0
        self.source = "music"  # where the tempo comes from: music | tap | midi
        self.av_offset = 0.0  # seconds the pictures are moved later than the sound (engine/latency.py)
        self._taps: list[float] = []

    @property
    def tapped(self) -> bool:
        """The tempo is set by hand (taps) or by MIDI clock, not followed from the music."""
        return self.source != "music"

    @property
    def bpm(self) -> float:
        return 60.0 / self.period

    def update(self, analyser: AudioAnalyser, now: float) -> None:
        """Follow the music: tempo by autocorrelation, phase by the comb that best fits the onsets."""
        if self.tapped:
            return
        start = max(0.0, now - HISTORY_SECONDS)
        env = analyser.onset_envelope(start, now)
        if len(env) < 2 * FRAME_RATE:
            return
        bpm, clarity = tempo_of(env, FRAME_RATE)
        self.clarity = clarity
        if clarity < MIN_CLARITY or bpm <= 0:
            return
        period = 60.0 / bpm
        # octave errors (half or double time) are not tempo changes: keep the octave already followed
        if abs(period / self.period - 1) >= 0.08:
            period = next((p for p in (period * 2, period / 2) if abs(p / self.period - 1) < 0.08), period)
        # smooth small drifts, jump to a real tempo change
        self.period = 0.7 * self.period + 0.3 * period if abs(period / self.period - 1) < 0.08 else period
        self.anchor = start + self._phase(env, self.period)

    @staticmethod
    def _phase(env: np.ndarray, period: float) -> float:
        """Offset (seconds, from the envelope's start) of the beat comb with the most onset energy."""
        step = period * FRAME_RATE
        beats = int(len(env) // step)
        best, best_offset = -1.0, 0.0
        for o in range(max(1, int(step))):
            idx = np.round(o + step * np.arange(beats)).astype(int)
            idx = idx[idx < len(env)]
            score = float(env[idx].sum()) if len(idx) else 0.0
            if score > best:
                best, best_offset = score, o / FRAME_RATE
        return best_offset

    def tap(self, t: float) -> None:
        """A tap on the beat: two or more taps set the tempo and the phase, and hold them."""
        if self._taps and t - self._taps[-1] > 2.0:
            self._taps = []
        self._taps.append(t)
        if len(self._taps) >= 2:
            self.period = float(np.median(np.diff(self._taps[-5:])))
            self.anchor = t
            self.source = "tap"

    def external(self, period: float, beat_at: float, bar_at: float | None = None, source: str = "midi") -> None:
        """Tempo and a beat time from outside (MIDI clock, Link): held like a tap tempo until `follow`."""
        if period > 0:
            self.period, self.anchor, self.source = period, beat_at, source

    def follow(self) -> None:
        """Release a tap tempo: follow the music again."""
        self.source = "music"
        self._taps = []

    def resync(self, t: float) -> None:
        """A beat falls at `t` (the VJ's word against the music's): the phase shifts to it, and keeps
        that shift while the clock goes on following the music."""
        self.offset += t - self._nearest(t)

    def _nearest(self, t: float) -> float:
        after = self.next_beat(t)
        return after if after - t < self.period / 2 else after - self.period

    def nudge(self, seconds: float) -> None:
        self.offset += seconds

    def next_beat(self, t: float) -> float:
        """The first beat at or after t."""
        anchor = self.anchor + self.offset
        return anchor + math.ceil((t - anchor) / self.period - 1e-9) * self.period

"""The "auto" tracker: two listeners side by side, the clock follows the one the music bears out.

BeatNet's bar tracker (`beatnet`) finds the bar's one and locks fast, but its learned activation
misreads some music (a chiptune's 127 BPM heard as 169 in 3/4); the autocorrelation clock (`today`)
holds a steady pulse well but has no idea where bars start. Each says how sure it is from what it
hears, so the clock follows BeatNet's grid while the music bears it out, else the pulse's while
that is borne out, else holds. The pulse's grid is judged by BeatNet's activation as well as by its
own onsets: an autocorrelation locks as happily on the off-beat of syncopated music, where a learned
activation has no beats. The bars go with either grid: where both hear the same beat, BeatNet's bar;
else the bar BeatNet last heard, carried on.

Measured (tools/bench.py beats, README): on the truth set more cuts on the beat than either alone
and the fastest lock; on the held-out syncopated songs level with `beatnet`.
"""

from __future__ import annotations

import dataclasses

from livejpp.engine.bar_tracker import CONTRAST_FULL, BarTracker
from livejpp.engine.trackers import HOLD_BELOW, Estimate, TodayTracker, Tracker, _beatnet, rebar
from livejpp.features.audio import AudioAnalyser

#: Two grids are the same beat when their periods differ by less than this (relative) and their beats by
#: less than this share of a beat.
SAME_TEMPO, SAME_PHASE = 0.04, 0.15


class EnsembleTracker:
    """Implements `livejpp.engine.trackers.Tracker` over BeatNet's bar tracker and the pulse clock."""

    name = "auto"

    def __init__(self, bar: BarTracker | None = None, pulse: Tracker | None = None) -> None:
        self.bar: BarTracker = bar if bar is not None else _beatnet()
        self.pulse = pulse if pulse is not None else TodayTracker()
        self.following: Tracker = self.bar
        self._bar: Estimate | None = None  # BeatNet's last grid followed: where the bars start
        self.clarity = 0.0

    def advance(self, analyser: AudioAnalyser) -> None:
        self.bar.advance(analyser)
        self.pulse.advance(analyser)

    def estimate(self, now: float) -> Estimate | None:
        bar, pulse = self.bar.estimate(now), self.pulse.estimate(now)
        self.clarity = getattr(self.pulse, "clarity", 0.0)
        if pulse is not None:  # the pulse's grid judged by the learned activation too: the off-beat has none
            contrast = self.bar.contrast_on(pulse.period, pulse.anchor)
            evidence = min(1.0, max(0.0, (contrast - 1.0) / (CONTRAST_FULL - 1.0)))
            pulse = dataclasses.replace(pulse, confidence=pulse.confidence * evidence)
        self.following = self._choose(bar, pulse)
        if self.following is self.bar or pulse is None:
            if bar is not None and self.following is self.bar:
                self._bar = bar
            return bar if self.following is self.bar else None
        if bar is not None and _same_beat(bar, pulse):  # the pulse's grid, with the bar where BeatNet hears it
            one, per_bar = bar.bar_anchor, bar.beats_per_bar
        elif self._bar is not None:  # the bar BeatNet last heard, carried onto the pulse's grid
            last = self._bar
            one, per_bar = (
                rebar(last.bar_anchor, last.period, last.beats_per_bar, pulse.anchor, pulse.period, now),
                last.beats_per_bar,
            )
        else:
            return pulse
        one = pulse.anchor + round((one - pulse.anchor) / pulse.period) * pulse.period
        return Estimate(pulse.period, pulse.anchor, one, per_bar, pulse.confidence, pulse.follow)

    def _choose(self, bar: Estimate | None, pulse: Estimate | None) -> Tracker:
        """BeatNet's grid while the music bears it out (it knows the bar); else the pulse's, if that is
        borne out; else whichever was followed (the clock holds it)."""
        if bar is not None and bar.confidence >= HOLD_BELOW:
            return self.bar
        if pulse is not None and pulse.confidence >= HOLD_BELOW:
            return self.pulse
        return self.following

    def resync(self, downbeat: float) -> None:
        self.bar.resync(downbeat)
        self.pulse.resync(downbeat)


def _same_beat(a: Estimate, b: Estimate) -> bool:
    if abs(a.period / b.period - 1.0) > SAME_TEMPO:
        return False
    shift = (a.anchor - b.anchor) / b.period
    return abs(shift - round(shift)) <= SAME_PHASE

"""Beat trackers: what the beat clock follows when it follows the music.

A tracker reads the audio as it arrives (`advance`, after every push: cheap) and gives, when asked,
its best idea of the musical grid (`estimate`): the beat period, a beat time, a downbeat on the same
grid, the metre, and how sure it is. The clock (`livejpp.engine.beat.BeatClock`) decides what to do
with it (follow it, or hold the last grid when confidence is low). Trackers are built by name from
`TRACKERS`, each imported only when asked for, so a heavy one costs nothing until chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from livejpp.errors import LivejppError
from livejpp.features.audio import FRAME_RATE, AudioAnalyser, tempo_of

HISTORY_SECONDS = 8.0
#: Below this pulse clarity the music gives no usable beat: the "today" tracker keeps its last tempo.
MIN_CLARITY = 0.1
#: Onset strength (dB rise per frame, the mean over the mel bands: so it does not depend on the level)
#: on the beats below which there is no beat to hear: a pad swelling, a held chord.
MIN_PULSE_DB = 1.0
#: How much stronger the onsets on the beats must be than those between them: noise has no beat.
MIN_CONTRAST = 1.5
#: Pulse and contrast are measured on the newest seconds: when the beat stops, the clock holds at once.
RECENT_SECONDS = 3.0
#: Below this confidence an estimate is not trusted: the clock holds its last grid.
HOLD_BELOW = 0.3


class TrackerError(LivejppError):
    """A beat tracker that does not exist or cannot run here."""


@dataclass(frozen=True)
class Estimate:
    period: float  # seconds per beat
    anchor: float  # a beat time (seconds on the show's audio clock: samples_in / AUDIO_RATE)
    bar_anchor: float  # a downbeat time on the same grid (bar_anchor - anchor is a multiple of period)
    beats_per_bar: int  # 4 or 3
    confidence: float  # 0..1; < 0.3 means "do not trust me": the clock holds its last grid


class Tracker(Protocol):
    name: str

    def advance(self, analyser: AudioAnalyser) -> None: ...  # consume newly pushed audio; cheap

    def estimate(self, now: float) -> Estimate | None: ...  # None: no opinion (the clock holds)

    def resync(self, downbeat: float) -> None: ...  # the VJ says: a downbeat falls here


def rebar(bar: float, period: float, beats_per_bar: int, anchor: float, new_period: float, now: float) -> float:
    """A downbeat of the old grid (`bar`, `period`) moved onto a new beat grid (`anchor`, `new_period`):
    the old grid's downbeat nearest `now`, snapped to the nearest new beat. So the bars keep starting
    where they started while the tempo and phase are refined."""
    bar_length = period * beats_per_bar
    downbeat = bar + round((now - bar) / bar_length) * bar_length
    return anchor + round((downbeat - anchor) / new_period) * new_period


class TodayTracker:
    """The clock livejpp had before issue 11: tempo by autocorrelation of the last 8 s of onsets,
    phase by the comb that best fits them; no idea of the downbeat (the first beat it finds is the
    one, and bars count on from there)."""

    name = "today"

    def __init__(self, bpm: float = 120.0):
        self.period = 60.0 / bpm
        self.anchor = 0.0
        self.bar: float | None = None  # a downbeat, kept near the newest audio; None until the first estimate
        self.confidence = 0.0
        self.clarity = 0.0
        self._analyser: AudioAnalyser | None = None

    def advance(self, analyser: AudioAnalyser) -> None:
        self._analyser = analyser  # all the work is done on demand, from the frames the analyser keeps

    def estimate(self, now: float) -> Estimate | None:
        analyser = self._analyser
        if analyser is None:
            return None
        start = max(0.0, now - HISTORY_SECONDS)
        env = analyser.onset_envelope(start, now)
        if len(env) < 2 * FRAME_RATE:
            return None
        bpm, clarity = tempo_of(env, FRAME_RATE)
        self.clarity = clarity
        if clarity >= MIN_CLARITY and bpm > 0:
            old_period = self.period
            period = 60.0 / bpm
            # octave errors (half or double time) are not tempo changes: keep the octave already followed
            if abs(period / self.period - 1) >= 0.08:
                period = next((p for p in (period * 2, period / 2) if abs(p / self.period - 1) < 0.08), period)
            # smooth small drifts, jump to a real tempo change
            self.period = 0.7 * self.period + 0.3 * period if abs(period / self.period - 1) < 0.08 else period
            offset, pulse = _phase(env, self.period)
            self.anchor = start + offset
            if self.bar is None:
                self.bar = self.anchor
            else:
                self.bar = rebar(self.bar, old_period, 4, self.anchor, self.period, now)
        else:
            pulse = 0.0
        # each of the three at its threshold gives the clock's hold threshold: the weakest one decides
        contrast = pulse / max(float(env[-int(RECENT_SECONDS * FRAME_RATE) :].mean()), 1e-9)
        self.confidence = max(
            0.0,
            min(
                1.0,
                HOLD_BELOW * clarity / MIN_CLARITY,
                HOLD_BELOW * pulse / MIN_PULSE_DB,
                HOLD_BELOW * (contrast - 1) / (MIN_CONTRAST - 1),
            ),
        )
        if self.bar is None:
            return None
        return Estimate(self.period, self.anchor, self.bar, 4, self.confidence)

    def resync(self, downbeat: float) -> None:
        self.bar = downbeat


def _phase(env: np.ndarray, period: float) -> tuple[float, float]:
    """Offset (seconds, from the envelope's start) of the beat comb with the most onset energy, and
    the mean onset strength on its teeth in the newest RECENT_SECONDS."""
    step = period * FRAME_RATE
    beats = int(len(env) // step)
    best, best_offset, best_mean = -1.0, 0.0, 0.0
    for o in range(max(1, int(step))):
        idx = np.round(o + step * np.arange(beats)).astype(int)
        idx = idx[idx < len(env)]
        score = float(env[idx].sum()) if len(idx) else 0.0
        if score > best:
            recent = idx[idx >= len(env) - RECENT_SECONDS * FRAME_RATE]
            best, best_offset = score, o / FRAME_RATE
            best_mean = float(env[recent].mean()) if len(recent) else 0.0
    return best_offset, best_mean


def _load(module: str, name: str) -> Tracker:
    """A tracker class from its own module, imported only now (its dependencies may be heavy)."""
    return getattr(importlib.import_module(module), name)()


def _beatnet() -> Tracker:
    """The bar tracker over BeatNet's learned beat and downbeat activation (features/beatnet.py)."""
    from livejpp.engine.bar_tracker import BarTracker
    from livejpp.features.beatnet import BeatNetActivation

    return BarTracker(BeatNetActivation())


#: Every tracker this build has, by name (the CLI's --beat-tracker and the bus's beat_tracker).
TRACKERS: dict[str, Callable[[], Tracker]] = {
    "today": TodayTracker,
    "bar": lambda: _load("livejpp.engine.bar_tracker", "BarTracker"),
    "beatnet": _beatnet,
}
#: The names the CLI and the bus offer (those not in TRACKERS are refused with one line).
NAMES = ("today", "bar", "beatnet")


def make_tracker(name: str) -> Tracker:
    """The tracker called `name`; one clear line if there is none or it cannot run here."""
    factory = TRACKERS.get(name)
    if factory is None:
        known = ", ".join(TRACKERS)
        raise TrackerError(f"beat tracker {name!r} is not available in this build (available: {known})")
    try:
        return factory()
    except (ImportError, OSError) as exc:
        raise TrackerError(f"beat tracker {name!r} cannot run here: {exc}") from exc

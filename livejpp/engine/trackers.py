"""Beat trackers behind the beat clock: each turns the audio heard so far into a beat and bar grid.

MINIMAL STAND-IN written on the filter branch so BarTracker can be tested; the clock branch owns this
file (the merge keeps its version plus the "bar" line below).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from livejpp.features.audio import AudioAnalyser


@dataclass(frozen=True)
class Estimate:
    period: float  # seconds per beat
    anchor: float  # a beat time (seconds on the show's audio clock: samples_in / AUDIO_RATE)
    bar_anchor: float  # a downbeat time on the same grid (bar_anchor - anchor is a multiple of period)
    beats_per_bar: int  # 4 or 3
    confidence: float  # 0..1; < 0.3 means "do not trust me": the clock holds its last grid


class Tracker(Protocol):
    name: str

    def advance(self, analyser: AudioAnalyser) -> None: ...

    def estimate(self, now: float) -> Estimate | None: ...

    def resync(self, downbeat: float) -> None: ...


def _load(module: str, name: str) -> Tracker:
    return getattr(importlib.import_module(module), name)()


TRACKERS: dict[str, Callable[[], Tracker]] = {
    "bar": lambda: _load("livejpp.engine.bar_tracker", "BarTracker"),
}


def make_tracker(name: str) -> Tracker:
    return TRACKERS[name]()

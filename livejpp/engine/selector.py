"""The selector: neighbour lists in, a cut list a VJ would accept out.

Cuts land on the bar's first beat, every N bars (and on every phrase start, if asked); a clip
stays on screen between a minimum and a maximum time;
a clip is not shown again within a window; a clip comes back where it left off; optionally the
show stays with one source video. Random choices come from one seeded generator: the same music
and seed give the same cuts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class SelectorSettings:
    bars_per_cut: int = 2
    beats_per_bar: int = 4  # when the clock does not say (it does in the engine)
    phrase_bars: int = 0  # also cut at every phrase start, a phrase being this many bars (0: off)
    min_seconds: float = 2.0
    max_seconds: float = 16.0
    no_repeat_seconds: float = 45.0
    crossfade_beats: float = 1.0
    stay_with_video: float = 0.0  # added to the closeness of clips from the video on screen (0: off)
    continue_clips: bool = True
    choices: int = 3  # pick among this many best candidates (1: always the best)
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClipInfo:
    id: int
    video_id: int
    length: float
    uid: str = ""
    source: str = ""


@dataclass
class Cut:
    time: float  # when the new clip starts (a beat time)
    clip: int
    offset: float  # where in the clip it starts
    crossfade: float  # seconds
    distance: float
    beat: int  # beat number, bar-aligned: a multiple of the beats per bar on the one
    reason: str  # "start", "bars", "phrase", "max", "drop", "forced", ...
    extra: dict = field(default_factory=dict)


class Selector:
    def __init__(self, clips: dict[int, ClipInfo], settings: SelectorSettings | None = None):
        self.clips = clips
        self.settings = settings or SelectorSettings()
        self.rng = np.random.default_rng(self.settings.seed)
        self.current: Cut | None = None
        self.last_shown: dict[int, float] = {}  # clip → time it was last on screen
        self.resume_at: dict[int, float] = {}  # clip → where it left off
        self.held = False
        self.synced = False  # the show plays the song's own video in sync (live.py): no content cuts, hold kept
        self.broken: set[int] = set()  # clips whose files cannot play (missing, damaged): never chosen
        #: asked once per clip the first time it is a candidate; False marks it broken (a render: its file is
        #: gone). Lazily, so a library of a million clips is not checked whole before the first cut.
        self.check: Callable[[int], bool] | None = None
        self._checked: set[int] = set()

    def _due(self, time: float, beat: int, period: float, per_bar: int, grid: bool) -> str | None:
        s = self.settings
        if self.current is None:
            return "start"
        if self.held or self.synced:
            return None
        on_screen = time - self.current.time
        if on_screen >= s.max_seconds:
            return "max"
        if not grid:
            return None
        phrase_start = s.phrase_bars and beat % (s.phrase_bars * per_bar) == 0
        if phrase_start and on_screen >= min(s.min_seconds, period * per_bar) - 1e-6:  # a bar at least
            return "phrase"
        if beat % (s.bars_per_cut * per_bar) == 0 and on_screen >= s.min_seconds:
            return "bars"
        return None

    def on_beat(
        self,
        time: float,
        beat: int,
        period: float,
        neighbours: list[tuple[int, float]],
        force: bool = False,
        why: str = "forced",
        beats_per_bar: int | None = None,
        grid: bool = True,
    ) -> Cut | None:
        """Called at each beat with the current neighbour list (closest first); returns a cut or None.
        `force` cuts now (for reason `why`); `grid` False says the beats are only held, not heard: then
        only the longest time on one clip cuts."""
        per_bar = beats_per_bar or self.settings.beats_per_bar
        reason = why if force else self._due(time, beat, period, per_bar, grid)
        if reason is None or not neighbours:
            return None
        choice = self._choose(time, neighbours)
        if choice is None:
            return None
        clip, distance = choice
        info = self.clips[clip]
        offset = self.resume_at.get(clip, 0.0) if self.settings.continue_clips else 0.0
        if offset > info.length - 1.0:
            offset = 0.0
        if self.current is not None:
            left = self.current
            shown = time - left.time
            self.resume_at[left.clip] = (left.offset + shown) % max(self.clips[left.clip].length, 1e-3)
            self.last_shown[left.clip] = time
        cut = Cut(
            time,
            clip,
            round(offset, 4),
            self.settings.crossfade_beats * period if self.current else 0.0,
            float(distance),
            beat,
            reason,
        )
        self.current = cut
        self.last_shown[clip] = time
        return cut

    def candidates(self, time: float, neighbours: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """The clips the next cut at `time` picks from: the live player decodes their first pictures
        ahead, so whichever is drawn shows on the first frame."""
        s = self.settings
        current = self.current.clip if self.current else None
        playable = [(c, d) for c, d in neighbours if c != current and c in self.clips and self._playable(c)]
        fresh = [(c, d) for c, d in playable if time - self.last_shown.get(c, -1e9) >= s.no_repeat_seconds]
        if not fresh:  # everything was shown lately: the one seen longest ago
            others = playable
            if not others:
                return []
            fresh = [min(others, key=lambda cd: self.last_shown.get(cd[0], -1e9))]
        if s.stay_with_video and current is not None:
            video = self.clips[current].video_id
            fresh = sorted(
                fresh, key=lambda cd: cd[1] - (s.stay_with_video if self.clips[cd[0]].video_id == video else 0)
            )
        return fresh[: max(1, s.choices)]

    def _playable(self, clip: int) -> bool:
        if clip in self.broken:
            return False
        if self.check is not None and clip not in self._checked:
            self._checked.add(clip)
            if not self.check(clip):
                self.broken.add(clip)
                return False
        return True

    def _choose(self, time: float, neighbours: list[tuple[int, float]]) -> tuple[int, float] | None:
        top = self.candidates(time, neighbours)
        if not top:
            return None
        weights = 1.0 / np.arange(1, len(top) + 1)
        return top[int(self.rng.choice(len(top), p=weights / weights.sum()))]

"""The window's own account of the frames it drew: counted where they are drawn, not written into the show.

Data flows one way: the show hands the window a snapshot each frame (engine/live.py ShowFrame); the window
keeps these figures itself and adds them to the show's summary at the end (render/window.py ShowWindow.summary),
and lays the HUD's frame figures out from them.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field

import numpy as np

MEMORY_EVERY = 1.0  # seconds between resident-memory samples (a 5-minute show: 300 of them)
LATE = 1.5  # a frame later than this many intervals stood in for the frames it skipped: they count as dropped


@dataclass
class FrameStats:
    """Frames drawn, frames dropped (with when and how late), frame times, and resident memory once a second."""

    fps: float  # the rate the window draws at
    frames: int = 0  # frames drawn
    dropped: int = 0  # frames a late frame stood in for
    drops: list[tuple[float, float]] = field(default_factory=list)  # (show time, late frame's interval ms)
    frame_times: list[float] = field(default_factory=list)  # time.monotonic() of each frame drawn
    memory: list[tuple[float, float]] = field(default_factory=list)  # (show time, resident MB), every MEMORY_EVERY
    _memory_at: float | None = None  # time.monotonic() of the last memory sample

    def count(self, now: float, show_time: float) -> None:
        """A frame drawn at `now` (time.monotonic()), at `show_time` on the show clock."""
        if self.frame_times:
            interval = now - self.frame_times[-1]
            if interval > LATE / self.fps:
                self.dropped += int(round(interval * self.fps)) - 1
                self.drops.append((show_time, interval * 1000))
        self.frame_times.append(now)
        self.frames += 1
        if self._memory_at is None:  # the first sample a second in, as the show has settled
            self._memory_at = now
        elif now - self._memory_at >= MEMORY_EVERY:
            self._memory_at = now
            self.memory.append((round(show_time, 1), round(resident_mb(), 1)))

    def hud_figures(self, show_time: float) -> str:
        """The HUD's frame figures, ahead of the show's own first line."""
        return f"{self.frames / max(1e-3, show_time):5.1f} fps   dropped {self.dropped}   "

    def report(self, seconds: float) -> dict:
        """The --stats keys these figures fill, for a show that ran `seconds`."""
        intervals = np.diff(self.frame_times)
        return {
            "frames_drawn": self.frames,
            "frames_dropped": self.dropped,
            "drops": [(round(t, 2), round(ms, 1)) for t, ms in self.drops],
            "fps": round(self.frames / seconds, 2) if seconds else 0.0,
            "frame_interval_ms": {"p50": _ms(intervals, 50), "p99": _ms(intervals, 99)},
            "memory_mb": {"peak": round(peak_resident_mb(), 1), "over_time": self.memory},
        }


def _ms(seconds: np.ndarray, percentile: float) -> float | None:
    return round(float(np.percentile(seconds, percentile)) * 1000, 2) if len(seconds) else None


def resident_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def peak_resident_mb() -> float:
    """This process's own high-water mark (VmHWM). Not ru_maxrss: Linux keeps that across fork and
    exec, so a show started by a large parent (the benchmark holding an hour of audio) reports the
    parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1e3  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3

"""Hand-crafted per-second visual features, in numpy, from small RGB frames (160×90).

Colour (hue, saturation, brightness histograms), brightness, contrast, colourfulness, edge
density, motion, cut rate and flash rate: what a VJ means by "this clip is dark, red, busy".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av
    from av.video.reformatter import VideoReformatter

#: Size frames are reduced to before analysis: cheap (~1 ms a frame) and enough for these features.
ANALYSIS_SIZE = (160, 90)
HUE_BINS, SAT_BINS, VAL_BINS = 12, 4, 4
#: Mean absolute change of the 64-bin luma histogram that counts as a cut.
CUT_THRESHOLD = 0.5
#: Rise of mean brightness (0..1) from one frame to the next that counts as a flash.
FLASH_THRESHOLD = 0.12
EDGE_THRESHOLD = 0.1

NAMES: tuple[str, ...] = (
    *(f"hue{i:02d}" for i in range(HUE_BINS)),
    *(f"saturation{i}" for i in range(SAT_BINS)),
    *(f"value{i}" for i in range(VAL_BINS)),
    "brightness",
    "contrast",
    "colourfulness",
    "edge_density",
    "motion_mean",
    "motion_max",
    "cut_rate",
    "flash_rate",
)
DIM = len(NAMES)
_PER_FRAME = HUE_BINS + SAT_BINS + VAL_BINS + 4  # histograms, brightness, contrast, colour, edges


def small_picture(scaler: VideoReformatter, frame: av.VideoFrame, rotation: int = 0) -> np.ndarray:
    """`frame` at ANALYSIS_SIZE as RGB, turned upright. Area averaging: a third cheaper than the default
    bilinear filter at 720p and the picture a feature sees is the same (0.14 of 255 apart on average)."""
    w, h = ANALYSIS_SIZE[::-1] if rotation in (90, 270) else ANALYSIS_SIZE
    rgb = scaler.reformat(frame, width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
    return np.rot90(rgb, k=rotation // 90) if rotation else rgb


def frame_stats(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame statistics [_PER_FRAME] and the luma plane (for motion and cuts).

    Runs on every decoded frame of a build, so each step is done once: one division for the hue (the
    channel that is brightest picks its numerator and offset), one pass for each mean and variance."""
    # planar float copies: reductions over a trailing axis of 3 are slow in numpy, elementwise ops are not
    r, g, b = np.moveaxis(rgb, 2, 0).astype(np.float32) * np.float32(1.0 / 255.0)
    value = np.maximum(np.maximum(r, g), b)
    chroma = value - np.minimum(np.minimum(r, g), b)
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), np.float32(0.0))
    red_top, green_top = value == r, value == g
    numerator = np.where(red_top, g - b, np.where(green_top, b - r, r - g))
    offset = np.where(red_top, np.float32(0.0), np.where(green_top, np.float32(2.0), np.float32(4.0)))
    hue = ((numerator / np.maximum(chroma, 1e-6) + offset) % 6.0) / 6.0
    n = float(value.size)
    # hue histogram weighted by saturation: grey pixels have no hue to speak of
    hue_hist = np.bincount(_bins(hue, HUE_BINS), weights=saturation.ravel(), minlength=HUE_BINS)
    sat_hist = np.bincount(_bins(saturation, SAT_BINS), minlength=SAT_BINS)
    val_hist = np.bincount(_bins(value, VAL_BINS), minlength=VAL_BINS)
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = np.sqrt(_variance(rg) + _variance(yb)) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    gx = np.diff(luma, axis=1)[:-1, :]
    gy = np.diff(luma, axis=0)[:, :-1]
    edges = np.count_nonzero(gx * gx + gy * gy > EDGE_THRESHOLD * EDGE_THRESHOLD) / gx.size
    brightness = luma.mean()
    stats = np.concatenate(
        [hue_hist / n, sat_hist / n, val_hist / n, [brightness, np.sqrt(_variance(luma)), colourfulness, edges]]
    )
    return stats.astype(np.float32), luma


def _bins(x: np.ndarray, count: int) -> np.ndarray:
    """Which of `count` equal bins over [0, 1] each value falls in (1 itself in the last)."""
    return np.minimum((x * count).astype(np.intp), count - 1).ravel()


def _variance(x: np.ndarray) -> float:
    """Population variance in one dot product (numpy's var makes three passes)."""
    d = (x - x.mean()).ravel()
    return float(np.dot(d, d)) / d.size


class VisualFeatures:
    """Accumulates frames of one clip and returns its per-second rows.

    Frames are fed in time order with their time relative to the clip start; motion, cuts and
    flashes compare each frame with the one before it.
    """

    def __init__(self) -> None:
        self._sums: dict[int, np.ndarray] = {}
        self._counts: dict[int, int] = {}
        self._motion: dict[int, list[float]] = {}
        self._cuts: dict[int, int] = {}
        self._flashes: dict[int, int] = {}
        self._previous_luma: np.ndarray | None = None
        self._previous_hist: np.ndarray | None = None

    def add(self, t: float, rgb: np.ndarray) -> None:
        second = max(0, int(t))
        stats, luma = frame_stats(rgb)
        hist = np.bincount(np.minimum((luma * 64).astype(np.int64), 63).ravel(), minlength=64) / luma.size
        self._sums[second] = self._sums.get(second, np.zeros(_PER_FRAME, np.float64)) + stats
        self._counts[second] = self._counts.get(second, 0) + 1
        motion = self._motion.setdefault(second, [])
        if self._previous_luma is not None and self._previous_luma.shape == luma.shape:
            motion.append(float(np.mean(np.abs(luma - self._previous_luma))))
            if 0.5 * np.abs(hist - self._previous_hist).sum() > CUT_THRESHOLD:
                self._cuts[second] = self._cuts.get(second, 0) + 1
            if luma.mean() - self._previous_luma.mean() > FLASH_THRESHOLD:
                self._flashes[second] = self._flashes.get(second, 0) + 1
        self._previous_luma, self._previous_hist = luma, hist

    def rows(self, seconds: int) -> np.ndarray:
        """[seconds, DIM]; a second with no frame of its own repeats the one before it."""
        out = np.zeros((seconds, DIM), np.float32)
        last = np.zeros(DIM, np.float32)
        for s in range(seconds):
            if s in self._counts:
                motion = self._motion.get(s) or [0.0]
                last = np.concatenate(
                    [
                        self._sums[s] / self._counts[s],
                        [np.mean(motion), np.max(motion), self._cuts.get(s, 0), self._flashes.get(s, 0)],
                    ]
                ).astype(np.float32)
            out[s] = last
        return out

"""Hand-crafted per-second visual features, in numpy, from small RGB frames (160×90).

Colour (hue, saturation, brightness histograms), brightness, contrast, colourfulness, edge
density, motion, cut rate and flash rate: what a VJ means by "this clip is dark, red, busy".
"""

from __future__ import annotations

import numpy as np

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


def frame_stats(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame statistics [_PER_FRAME] and the luma plane (for motion and cuts)."""
    # planar float copies: reductions over a trailing axis of 3 are slow in numpy, elementwise ops are not
    r, g, b = np.moveaxis(rgb, 2, 0).astype(np.float32) * np.float32(1.0 / 255.0)
    value = np.maximum(np.maximum(r, g), b)
    low = np.minimum(np.minimum(r, g), b)
    chroma = value - low
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0)
    safe = np.maximum(chroma, 1e-6)
    hue = (
        np.where(
            value == r,
            ((g - b) / safe) % 6.0,
            np.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
        )
        / 6.0
    )
    n = float(value.size)
    # hue histogram weighted by saturation: grey pixels have no hue to speak of
    hue_hist = (
        np.bincount(
            np.minimum((hue * HUE_BINS).astype(np.int64), HUE_BINS - 1).ravel(),
            weights=saturation.ravel(),
            minlength=HUE_BINS,
        )
        / n
    )
    sat_hist = (
        np.bincount(np.minimum((saturation * SAT_BINS).astype(np.int64), SAT_BINS - 1).ravel(), minlength=SAT_BINS) / n
    )
    val_hist = (
        np.bincount(np.minimum((value * VAL_BINS).astype(np.int64), VAL_BINS - 1).ravel(), minlength=VAL_BINS) / n
    )
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    gx = np.abs(np.diff(luma, axis=1))[:-1, :]
    gy = np.abs(np.diff(luma, axis=0))[:, :-1]
    edges = float(np.mean(np.hypot(gx, gy) > EDGE_THRESHOLD))
    stats = np.concatenate([hue_hist, sat_hist, val_hist, [luma.mean(), luma.std(), colourfulness, edges]])
    return stats.astype(np.float32), luma


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

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
_BRIGHTNESS = HUE_BINS + SAT_BINS + VAL_BINS


def small_picture(scaler: VideoReformatter, frame: av.VideoFrame, rotation: int = 0) -> np.ndarray:
    """`frame` at ANALYSIS_SIZE as RGB, turned upright. Area averaging: a third cheaper than the default
    bilinear filter at 720p and the picture a feature sees is the same (0.14 of 255 apart on average)."""
    w, h = ANALYSIS_SIZE[::-1] if rotation in (90, 270) else ANALYSIS_SIZE
    rgb = scaler.reformat(frame, width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
    return np.rot90(rgb, k=rotation // 90) if rotation else rgb


#: What a byte of a channel means: the float32 the statistics are computed on (a level times 1/255).
_UNIT = np.float32(1.0 / 255.0)
_LEVELS = np.arange(256, dtype=np.float32) * _UNIT
#: The brightest channel's byte from which each value bin 1.. starts: the bins of the level each byte stands
#: for rise with the byte, so counting bytes at or above these gives the histogram with no float pass at all.
_VALUE_STEPS = np.searchsorted(np.minimum((_LEVELS * VAL_BINS).astype(np.intp), VAL_BINS - 1), np.arange(1, VAL_BINS))
#: The float32 saturation from which each saturation bin 1.. starts (×4 is exact in binary: no rounding at the edge).
_SATURATION_STEPS = np.arange(1, SAT_BINS, dtype=np.float32) / SAT_BINS
#: Accumulators the weighted hue histogram is spread over: neighbouring pixels mostly share a bin, and one
#: running sum per bin makes every add wait for the one before it.
_HUE_LANES = 4
_EDGE_SQUARED = np.float32(EDGE_THRESHOLD * EDGE_THRESHOLD)


def frame_stats(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame statistics [_PER_FRAME] and the luma plane (for motion and cuts).

    Runs on every decoded frame of a build (it was the biggest part of a copied source's build), so each step
    is done once and the cheap way: planar channels (numpy reduces a trailing axis of 3 slowly), the value and
    saturation histograms by counting at their bin edges, the hue's wrap-around folded into its offset (no float
    modulo), each mean reused by its variance. Every value is computed with the same float32 operations as the
    straightforward per-pixel formulas (tests/test_features.py keeps them and compares on real frames)."""
    planes = np.ascontiguousarray(np.moveaxis(rgb, 2, 0))
    r, g, b = (plane * _UNIT for plane in planes)  # one at a time: small arrays come from the heap, not the kernel
    value = np.maximum(np.maximum(r, g), b)
    chroma = value - np.minimum(np.minimum(r, g), b)
    saturation = chroma / np.maximum(value, np.float32(1e-6))  # 0 where black: chroma is 0 there too
    brightest = np.maximum(np.maximum(planes[0], planes[1]), planes[2])
    hue_bins = _hue_bins(planes, brightest, r, g, b, chroma)
    n = value.size
    hue_hist = np.bincount(hue_bins, weights=saturation.ravel(), minlength=HUE_BINS * _HUE_LANES)
    stats = np.empty(_PER_FRAME, np.float64)
    stats[:HUE_BINS] = hue_hist.reshape(HUE_BINS, _HUE_LANES).sum(axis=1)  # grey has no hue: weighted by saturation
    stats[HUE_BINS:_BRIGHTNESS] = [
        *_from_edges(n, [np.count_nonzero(saturation >= step) for step in _SATURATION_STEPS]),
        *_from_edges(n, [np.count_nonzero(brightest >= step) for step in _VALUE_STEPS]),
    ]
    stats[:_BRIGHTNESS] /= n
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    rg, yb = r - g, 0.5 * (r + g) - b
    rg_mean, rg_variance = _mean_variance(rg)
    yb_mean, yb_variance = _mean_variance(yb)
    colourfulness = np.sqrt(rg_variance + yb_variance) + 0.3 * np.sqrt(rg_mean**2 + yb_mean**2)
    gx = luma[:-1, 1:] - luma[:-1, :-1]
    gy = luma[1:, :-1] - luma[:-1, :-1]
    gx *= gx
    gy *= gy
    gx += gy
    edges = np.count_nonzero(gx > _EDGE_SQUARED) / gx.size
    brightness, luma_variance = _mean_variance(luma)
    stats[_BRIGHTNESS:] = brightness, np.sqrt(luma_variance), colourfulness, edges
    return stats.astype(np.float32), luma


def _hue_bins(planes: np.ndarray, top: np.ndarray, r: np.ndarray, g: np.ndarray, b: np.ndarray, chroma: np.ndarray):
    """Each pixel's hue bin, spread over _HUE_LANES accumulators (bin × lanes + lane). One division: the channel
    that is brightest (`top`, as bytes: the same pixels as in float) picks the numerator and the offset, and a
    red leaning to blue, whose hue would be below 0, gets 6 more (what `% 6` did, with no float modulo)."""
    r8, g8, b8 = planes
    red_top, green_top = top == r8, top == g8
    numerator = r - g  # blue on top
    np.copyto(numerator, b - r, where=green_top)
    np.copyto(numerator, g - b, where=red_top)  # red wins a tie, then green
    not_red = ~red_top
    sextants = not_red.view(np.uint8) + (not_red & ~green_top).view(np.uint8)  # 0 red, 1 green, 2 blue on top
    sextants += (red_top & (g8 < b8)).view(np.uint8) * np.uint8(3)
    hue = numerator / np.maximum(chroma, np.float32(1e-6))
    hue += sextants * np.float32(2.0)  # the offset: 0, 2, 4 or 6
    hue /= np.float32(6.0)
    hue *= np.float32(HUE_BINS)
    bins = hue.astype(np.int32).ravel()
    np.minimum(bins, HUE_BINS - 1, out=bins)  # a hue of exactly 1 is in the last bin
    bins *= _HUE_LANES
    bins += _lanes(bins.size)
    return bins


def _lanes(size: int) -> np.ndarray:
    """0, 1, .., _HUE_LANES-1, 0, 1, ..: which accumulator each pixel adds to."""
    cached = _LANE_CACHE.get(size)
    if cached is None:
        cached = _LANE_CACHE[size] = np.arange(size, dtype=np.int32) % _HUE_LANES
    return cached


_LANE_CACHE: dict[int, np.ndarray] = {}


def _from_edges(n: int, at_least: list[int]) -> list[int]:
    """A histogram from the count of samples at or above each inner bin edge (of n in all)."""
    edges = [n, *at_least, 0]
    return [above - next_up for above, next_up in zip(edges, edges[1:], strict=False)]


def _mean_variance(x: np.ndarray) -> tuple[np.floating, float]:
    """Mean and population variance, one pass each (numpy's var makes three passes)."""
    mean = np.add.reduce(x, axis=None) / np.float32(x.size)  # x.mean() without its wrapper: the same float32
    d = (x - mean).ravel()
    return mean, float(np.dot(d, d)) / d.size


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
        self._previous_brightness = np.float32(0.0)

    def add(self, t: float, rgb: np.ndarray) -> None:
        second = max(0, int(t))
        stats, luma = frame_stats(rgb)
        levels = (luma * 64).astype(np.intp).ravel()
        hist = np.bincount(np.minimum(levels, 63, out=levels), minlength=64) / luma.size
        brightness = stats[_BRIGHTNESS]  # luma's mean, as float32 as luma.mean() is
        self._sums[second] = self._sums.get(second, np.zeros(_PER_FRAME, np.float64)) + stats
        self._counts[second] = self._counts.get(second, 0) + 1
        motion = self._motion.setdefault(second, [])
        if self._previous_luma is not None and self._previous_luma.shape == luma.shape:
            change = luma - self._previous_luma
            motion.append(float(np.abs(change, out=change).mean()))
            if 0.5 * np.abs(hist - self._previous_hist).sum() > CUT_THRESHOLD:
                self._cuts[second] = self._cuts.get(second, 0) + 1
            if brightness - self._previous_brightness > FLASH_THRESHOLD:
                self._flashes[second] = self._flashes.get(second, 0) + 1
        self._previous_luma, self._previous_hist, self._previous_brightness = luma, hist, brightness

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

"""Landmarks: spectral peaks of a song, paired and hashed with their time difference (Wang 2003).

The recipe is the one dejavu and audfprint use, in plain numpy so it runs on any window of live audio
within a hop's budget:

1. STFT of mono float32 at AUDIO_RATE (22050 Hz): 2048-sample Hann window, 512 hop (23.2 ms frames,
   10.8 Hz bins), power in dB. The 75 % overlap matters: a window of live audio starts anywhere between
   two frames of the stored analysis, and with 1024-sample windows only 20-60 % of a query's hashes
   were reproduced depending on that phase; with 2048, 48-73 %.
2. Peaks: a bin is a peak where it is the maximum of its neighbourhood (+-PEAK_DT frames, +-PEAK_DF bins),
   stands PEAK_MIN_DB over its frame's median, and is among the PEAKS_PER_FRAME strongest of its frame.
   Every test is local, so a 5 s window finds the same peaks as the whole song does there. Peak
   positions are refined to a fraction of a frame and a bin (parabola through the neighbours), which
   is what lets the matcher rescale a query's peaks for a changed playback speed (match.py).
3. Pairs: each peak (the anchor) pairs with the FANOUT next peaks in its target zone:
   1 <= dt <= 63 frames (1.46 s) later, |df| <= 127 bins (1.37 kHz), anchor below 512 bins (5.5 kHz).
4. Hash (23 bits in a uint32): anchor bin (9 bits) << 14 | (df + 128) (8 bits) << 6 | dt (6 bits).
   The hash is stored with the anchor's frame: matching votes on (reference frame - query frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livejpp.media.decode import AUDIO_RATE

FFT = 2048
HOP = 512
FRAME_SECONDS = HOP / AUDIO_RATE
# peaks are searched up to 600 bins (6.5 kHz): a query played 8 % slow still has its anchors below 512 bins
MAX_BIN = 600
PEAK_DT = 4  # frames either side (+-93 ms)
PEAK_DF = 16  # bins either side (+-172 Hz)
PEAK_MIN_DB = 10.0
PEAKS_PER_FRAME = 3
FANOUT = 3
LOOKAHEAD = 12  # later peaks looked at for each anchor's FANOUT partners (24: the same rates, 0.5 s later locks)
MAX_DT = 63
MAX_DF = 127
ANCHOR_BINS = 512
HASH_BITS = 23
# what a library's stored fingerprints were made with: rows of another version are recomputed by the next
# `library add`/`build` (bump the leading number when the hash layout changes; the parameters are in it anyway)
FINGERPRINT_VERSION = (
    f"pairs1-fft{FFT}-hop{HOP}-peaks{PEAK_DT}x{PEAK_DF}x{PEAK_MIN_DB:g}x{PEAKS_PER_FRAME}-bins{MAX_BIN}"
    f"-fan{FANOUT}of{LOOKAHEAD}-dt{MAX_DT}-df{MAX_DF}-anchor{ANCHOR_BINS}"
)

_WINDOW = np.hanning(FFT).astype(np.float32)


@dataclass(frozen=True)
class Peaks:
    """Spectral peaks, sorted by time: frame and bin as floats (refined between grid points)."""

    t: np.ndarray  # float64 frames from the start of the audio
    f: np.ndarray  # float64 FFT bins


@dataclass(frozen=True)
class Landmarks:
    """Hashed peak pairs: hash[i] was seen with its anchor at frame t[i]."""

    hashes: np.ndarray  # uint32
    t: np.ndarray  # float64 frames (reference frames when a query was rescaled)
    pair: np.ndarray  # int64: which two peaks made the hash, the same at every rescaling of one query


def spectrogram_db(samples: np.ndarray) -> np.ndarray:
    """Power in dB, frames x bins (bins 0..MAX_BIN-1); frame i starts at sample i * HOP."""
    samples = np.asarray(samples, dtype=np.float32)
    if len(samples) < FFT:
        return np.zeros((0, MAX_BIN), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, FFT)[::HOP]
    spectrum = np.fft.rfft(frames * _WINDOW, axis=1)[:, :MAX_BIN]
    power = spectrum.real**2 + spectrum.imag**2
    return (10.0 * np.log10(power + 1e-10)).astype(np.float32)


def _running_max(a: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Maximum over +-radius along one axis (edges see a shorter neighbourhood), by doubling: the max over
    2**k samples from each point takes k np.maximum calls, and two overlapping such spans cover any width."""
    a = np.moveaxis(a, axis, 0)
    n, width = a.shape[0], 2 * radius + 1
    padded = np.concatenate(
        [np.full((radius, *a.shape[1:]), -np.inf, a.dtype), a, np.full((radius, *a.shape[1:]), -np.inf, a.dtype)]
    )
    span, run = 1, padded
    while span * 2 <= width:
        run = np.maximum(run[:-span], run[span:])  # run[i] = max(padded[i : i + 2 * span])
        span *= 2
    out = np.maximum(run[:n], run[width - span : width - span + n])
    return np.moveaxis(out, 0, axis)


def _refine(db: np.ndarray, ti: np.ndarray, fi: np.ndarray, axis: int) -> np.ndarray:
    """Sub-grid peak position along one axis: the vertex of the parabola through the peak and its neighbours."""
    n = db.shape[axis]
    idx = ti if axis == 0 else fi
    inner = (idx > 0) & (idx < n - 1)
    offset = np.zeros(len(idx))
    i, j = ti[inner], fi[inner]
    centre = db[i, j].astype(np.float64)
    if axis == 0:
        before, after = db[i - 1, j], db[i + 1, j]
    else:
        before, after = db[i, j - 1], db[i, j + 1]
    curvature = before - 2.0 * centre + after
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(curvature < 0, 0.5 * (before - after) / curvature, 0.0)
    offset[inner] = np.clip(step, -0.5, 0.5)
    return idx + offset


def peaks(samples: np.ndarray) -> Peaks:
    """The spectral peaks of mono float32 audio at AUDIO_RATE."""
    db = spectrogram_db(samples)
    return peaks_in(db, 0, len(db))


def peaks_in(db: np.ndarray, lo: int, hi: int) -> Peaks:
    """The peaks of frames lo..hi-1 of a spectrogram, the other frames serving as their neighbourhood
    (a stream finds a frame's peaks once PEAK_DT later frames exist). t counts from db's first frame."""
    if hi <= lo:
        empty = np.zeros(0)
        return Peaks(empty, empty)
    context = db[max(0, lo - PEAK_DT) : hi + PEAK_DT]
    local = _running_max(_running_max(context, PEAK_DF, axis=1), PEAK_DT, axis=0)
    first_row = lo - max(0, lo - PEAK_DT)
    rows = slice(first_row, first_row + hi - lo)
    part = context[rows]
    floor = np.median(part[:, ::4], axis=1, keepdims=True) + PEAK_MIN_DB  # a frame's noise floor (every 4th bin)
    candidate = (part == local[rows]) & (part > floor)
    candidate[:, :4] = False  # below 43 Hz: rumble, not music
    ti, fi = np.nonzero(candidate)
    # at most PEAKS_PER_FRAME per frame, the strongest: rank the candidates within their frame
    order = np.lexsort((-part[ti, fi], ti))
    ti, fi = ti[order] + lo, fi[order]
    first = np.searchsorted(ti, ti, side="left")
    keep = np.arange(len(ti)) - first < PEAKS_PER_FRAME
    ti, fi = ti[keep], fi[keep]
    return Peaks(_refine(db, ti, fi, axis=0), _refine(db, ti, fi, axis=1))


def pair_hashes(t: np.ndarray, f: np.ndarray, anchors: int | None = None, first_index: int = 0) -> Landmarks:
    """Hash each peak with its FANOUT next peaks in the target zone.

    t, f: peaks in the order peaks() gives (by frame; t and f at any scale). Only the first `anchors` peaks
    anchor pairs (a stream hashes a peak once LOOKAHEAD later ones exist); first_index numbers the first
    peak, so a pair has one id (pair) however the query was rescaled and whenever it was hashed."""
    n = len(t)
    anchors = n if anchors is None else min(anchors, n)
    if n < 2 or anchors <= 0:
        return Landmarks(np.zeros(0, np.uint32), np.zeros(0), np.zeros(0, np.int64))
    later = np.arange(anchors)[:, None] + np.arange(1, LOOKAHEAD + 1)[None, :]
    exists = later < n
    later = np.minimum(later, n - 1)
    t0, f0 = t[:anchors, None], f[:anchors, None]
    dt = np.rint(t[later] - t0).astype(np.int64)
    df = np.rint(f[later] - f0).astype(np.int64)
    anchor = np.rint(f0).astype(np.int64)
    ok = exists & (dt >= 1) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF) & (anchor >= 0) & (anchor < ANCHOR_BINS)
    ok &= np.cumsum(ok, axis=1) <= FANOUT
    rows, cols = np.nonzero(ok)
    hashes = (anchor[rows, 0] << 14) | ((df[rows, cols] + 128) << 6) | dt[rows, cols]
    return Landmarks(hashes.astype(np.uint32), t[rows], (rows + first_index) * LOOKAHEAD + cols)


def fingerprint(samples: np.ndarray) -> Landmarks:
    """A song's landmarks, as stored in the library: hashes with their anchor frames."""
    p = peaks(samples)
    return pair_hashes(p.t, p.f)

"""Hand-crafted per-second audio features, in numpy.

One row per second of audio: log-mel bands, chroma, loudness, onset strength and spectral flux,
spectral shape, tempo and pulse clarity. The same function serves the library build, `render`
and `live`, so a song file and a live stream are described the same way.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from livejpp.features import whole_seconds
from livejpp.media.decode import AUDIO_RATE

N_FFT = 2048
HOP = 512
N_MELS = 40
#: Below this level (dBFS, whole clip) a soundtrack is silence, not music.
SILENCE_DBFS = -60.0
#: Onset history used for tempo and pulse clarity (trailing, so a live stream can do the same).
TEMPO_WINDOW_SECONDS = 4.0
TEMPO_RANGE_BPM = (60.0, 200.0)

NAMES: tuple[str, ...] = (
    *(f"mel{i:02d}" for i in range(N_MELS)),
    *(f"chroma_{p}" for p in ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")),
    "loudness_db",
    "loudness_peak_db",
    "onset_mean",
    "onset_max",
    "flux",
    "centroid",
    "bandwidth",
    "rolloff",
    "flatness",
    "zero_crossings",
    "tempo",
    "pulse_clarity",
)
DIM = len(NAMES)


@lru_cache(maxsize=4)
def mel_filters(sr: int = AUDIO_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular mel filterbank [n_mels, n_fft//2+1] (Slaney-style area normalisation)."""

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(30.0), hz_to_mel(min(11000.0, sr / 2)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank *= 2.0 / (upper - lower)
    return bank.astype(np.float32)


@lru_cache(maxsize=4)
def chroma_filters(sr: int = AUDIO_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Maps spectrum bins between 55 Hz and 5 kHz onto the 12 pitch classes [12, n_fft//2+1]."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    bank = np.zeros((12, freqs.size), np.float32)
    valid = (freqs >= 55.0) & (freqs <= 5000.0)
    pitch = np.round(12 * np.log2(freqs[valid] / 440.0) + 69).astype(int) % 12  # MIDI note → class
    bank[pitch, np.flatnonzero(valid)] = 1.0
    return bank


def _frames(samples: np.ndarray) -> np.ndarray:
    """Centred, Hann-windowed frames [n_frames, N_FFT] (zero-padded at both ends)."""
    padded = np.pad(samples, (N_FFT // 2, N_FFT // 2))
    n = 1 + (len(padded) - N_FFT) // HOP
    view = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n]
    return view * np.hanning(N_FFT).astype(np.float32)


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-inf for digital silence)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def is_silent(samples: np.ndarray) -> bool:
    """A soundtrack too quiet to describe: its features would be noise, not music."""
    return level_dbfs(samples) < SILENCE_DBFS


def _tempo(onset: np.ndarray, frame_rate: float) -> tuple[float, float]:
    """Tempo (BPM) and pulse clarity (0..1) from an onset-strength envelope by autocorrelation."""
    env = onset - onset.mean()
    energy = float(np.dot(env, env))
    lo = int(np.floor(60.0 * frame_rate / TEMPO_RANGE_BPM[1]))
    hi = int(np.ceil(60.0 * frame_rate / TEMPO_RANGE_BPM[0]))
    if energy <= 1e-12 or len(env) <= hi + 1:
        return 0.0, 0.0
    spectrum = np.fft.rfft(env, n=2 * len(env))
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[: len(env)]
    ac /= ac[0]
    lags = np.arange(lo, hi + 1)
    # a log-normal prior around 120 BPM settles the octave (60 vs 120 vs 240) as listeners do
    prior = np.exp(-0.5 * (np.log2(60.0 * frame_rate / lags / 120.0)) ** 2)
    lag = int(lags[np.argmax(ac[lo : hi + 1] * prior)])
    # parabolic interpolation between lags: tempo resolution finer than one onset frame
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
    denominator = a - 2 * b + c
    shift = 0.5 * (a - c) / denominator if denominator < 0 else 0.0
    return 60.0 * frame_rate / (lag + float(np.clip(shift, -0.5, 0.5))), float(max(b, 0.0))


def audio_features(samples: np.ndarray, sr: int = AUDIO_RATE) -> np.ndarray:
    """Per-second features [seconds, DIM] of mono float32 audio at `sr` (a partial last second counts
    when it is at least half a second long)."""
    if sr != AUDIO_RATE:
        raise ValueError(f"audio must be resampled to {AUDIO_RATE} Hz, got {sr}")
    samples = np.asarray(samples, np.float32)
    seconds = whole_seconds(len(samples) / sr)
    if seconds == 0:
        return np.zeros((0, DIM), np.float32)
    frames = _frames(samples)
    power = np.abs(np.fft.rfft(frames, axis=1)).astype(np.float32) ** 2
    magnitude = np.sqrt(power)
    freqs = np.linspace(0, sr / 2, power.shape[1], dtype=np.float32)
    mel_db = 10.0 * np.log10(power @ mel_filters().T + 1e-10)
    chroma = power @ chroma_filters().T
    onset = np.concatenate([[0.0], np.maximum(0.0, np.diff(mel_db, axis=0)).mean(axis=1)])
    norm_mag = magnitude / (magnitude.sum(axis=1, keepdims=True) + 1e-10)
    flux = np.concatenate([[0.0], np.sqrt((np.maximum(0.0, np.diff(norm_mag, axis=0)) ** 2).sum(axis=1))])
    total = power.sum(axis=1) + 1e-10
    centroid = (power * freqs).sum(axis=1) / total
    bandwidth = np.sqrt((power * (freqs - centroid[:, None]) ** 2).sum(axis=1) / total)
    rolloff = freqs[np.minimum((np.cumsum(power, axis=1) < 0.85 * total[:, None]).sum(axis=1), len(freqs) - 1)]
    flatness = np.exp(np.log(power + 1e-10).mean(axis=1)) / (power.mean(axis=1) + 1e-10)

    frame_rate = sr / HOP
    frame_second = np.minimum((np.arange(len(frames)) * HOP / sr).astype(int), seconds - 1)
    rows = np.zeros((seconds, DIM), np.float32)
    tempo_frames = int(TEMPO_WINDOW_SECONDS * frame_rate)
    for s in range(seconds):
        idx = np.flatnonzero(frame_second == s)
        chunk = samples[s * sr : (s + 1) * sr]
        rms = np.sqrt(np.mean(chunk.astype(np.float64) ** 2)) if chunk.size else 0.0
        peak = float(np.max(np.abs(chunk))) if chunk.size else 0.0
        c = chroma[idx].mean(axis=0)
        crossings = np.count_nonzero(np.diff(np.signbit(chunk))) / max(len(chunk), 1)
        history = onset[max(0, idx[-1] + 1 - tempo_frames) : idx[-1] + 1]
        bpm, clarity = _tempo(history, frame_rate)
        rows[s] = np.concatenate(
            [
                mel_db[idx].mean(axis=0),
                c / (c.max() + 1e-10),
                [
                    20 * np.log10(rms + 1e-10),
                    20 * np.log10(peak + 1e-10),
                    onset[idx].mean(),
                    onset[idx].max(),
                    flux[idx].mean(),
                    centroid[idx].mean() / (sr / 2),
                    bandwidth[idx].mean() / (sr / 2),
                    rolloff[idx].mean() / (sr / 2),
                    flatness[idx].mean(),
                    crossings,
                    bpm / TEMPO_RANGE_BPM[1],
                    clarity,
                ],
            ]
        )
    return rows

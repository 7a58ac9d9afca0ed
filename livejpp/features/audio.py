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
#: The lowest mel bands (centres 81, 136 and 194 Hz): where kick drum and bass land.
LOW_MELS = 3
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


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-inf for digital silence)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def is_silent(samples: np.ndarray) -> bool:
    """A soundtrack too quiet to describe: its features would be noise, not music."""
    return level_dbfs(samples) < SILENCE_DBFS


def tempo_of(onset: np.ndarray, frame_rate: float) -> tuple[float, float]:
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


_WINDOW = np.hanning(N_FFT).astype(np.float32)
_FREQS = np.linspace(0, AUDIO_RATE / 2, N_FFT // 2 + 1, dtype=np.float32)
FRAME_RATE = AUDIO_RATE / HOP


class AudioAnalyser:
    """Audio analysed as it arrives: each STFT frame is computed once, from the newest samples only;
    per-second rows are then summarised over any span of the frames kept.

    Frames are centred on multiples of HOP from the stream's start, with silence before it, so a clip
    analysed whole (`audio_features`) and a live stream give the same rows for the same audio.
    `keep_seconds` bounds memory on an endless stream (None keeps everything).
    """

    _PER_FRAME = ("mel_db", "chroma", "onset", "onset_low", "flux", "centroid", "bandwidth", "rolloff", "flatness")

    def __init__(self, keep_seconds: float | None = 30.0):
        self.keep = None if keep_seconds is None else int(keep_seconds * AUDIO_RATE)
        self._buffer = np.zeros(N_FFT // 2, np.float32)  # silence before the stream starts
        self._buffer_start = -(N_FFT // 2)  # absolute sample index of _buffer[0]
        self.samples_in = 0  # real samples pushed so far
        self._next_frame = 0  # absolute index of the next frame to compute
        self._frame_start = 0  # absolute index of the first frame kept
        self._frames = {name: np.zeros((0,) + shape, np.float32) for name, shape in self._frame_shapes().items()}
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # last frame's mel_db, normalised magnitude

    @staticmethod
    def _frame_shapes() -> dict[str, tuple[int, ...]]:
        return {
            "mel_db": (N_MELS,),
            "chroma": (12,),
            "onset": (),
            "onset_low": (),
            "flux": (),
            "centroid": (),
            "bandwidth": (),
            "rolloff": (),
            "flatness": (),
        }

    @property
    def seconds(self) -> float:
        return self.samples_in / AUDIO_RATE

    def push(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, np.float32).reshape(-1)
        self.samples_in += len(samples)
        self._append(samples)

    def finish(self) -> None:
        """The stream has ended: silence after it completes the last frames (as centring pads them)."""
        self._append(np.zeros(N_FFT // 2, np.float32))

    def _append(self, samples: np.ndarray) -> None:
        self._buffer = np.concatenate([self._buffer, samples])
        buffer_end = self._buffer_start + len(self._buffer)
        last = (buffer_end - N_FFT // 2) // HOP  # frames whose window lies inside the buffer
        if last >= self._next_frame:
            starts = np.arange(self._next_frame, last + 1) * HOP - N_FFT // 2 - self._buffer_start
            view = np.lib.stride_tricks.sliding_window_view(self._buffer, N_FFT)[starts]
            self._analyse(view * _WINDOW)
            self._next_frame = last + 1
        self._trim()

    def _analyse(self, frames: np.ndarray) -> None:
        power = np.abs(np.fft.rfft(frames, axis=1)).astype(np.float32) ** 2
        magnitude = np.sqrt(power)
        mel_db = 10.0 * np.log10(power @ mel_filters().T + 1e-10)
        norm_mag = magnitude / (magnitude.sum(axis=1, keepdims=True) + 1e-10)
        prev_mel, prev_norm = self._previous if self._previous is not None else (mel_db[:1], norm_mag[:1])
        rise = np.maximum(0.0, np.diff(np.concatenate([prev_mel, mel_db]), axis=0))
        onset = rise.mean(axis=1)
        onset_low = rise[:, :LOW_MELS].mean(axis=1)  # kick and bass: they mark the beat, hats the off-beat
        flux = np.sqrt((np.maximum(0.0, np.diff(np.concatenate([prev_norm, norm_mag]), axis=0)) ** 2).sum(axis=1))
        self._previous = (mel_db[-1:], norm_mag[-1:])
        total = power.sum(axis=1) + 1e-10
        centroid = (power * _FREQS).sum(axis=1) / total
        new = {
            "mel_db": mel_db,
            "chroma": power @ chroma_filters().T,
            "onset": onset,
            "onset_low": onset_low,
            "flux": flux,
            "centroid": centroid,
            "bandwidth": np.sqrt((power * (_FREQS - centroid[:, None]) ** 2).sum(axis=1) / total),
            "rolloff": _FREQS[
                np.minimum((np.cumsum(power, axis=1) < 0.85 * total[:, None]).sum(axis=1), len(_FREQS) - 1)
            ],
            "flatness": np.exp(np.log(power + 1e-10).mean(axis=1)) / (power.mean(axis=1) + 1e-10),
        }
        for name, values in new.items():
            self._frames[name] = np.concatenate([self._frames[name], values.astype(np.float32)])

    def _trim(self) -> None:
        """Forget what lies more than `keep` before the newest audio (plus one frame's window)."""
        if self.keep is None:
            return
        drop = len(self._buffer) - (self.keep + N_FFT)
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop
        first_frame = self._next_frame - int(self.keep / HOP)
        if first_frame > self._frame_start:
            for name in self._frames:
                self._frames[name] = self._frames[name][first_frame - self._frame_start :]
            self._frame_start = first_frame

    def onset_envelope(self, start: float, end: float) -> np.ndarray:
        """Onset strength of the frames centred in [start, end) seconds (what the beat clock follows)."""
        a, b = self._frame_span(start, end)
        return self._frames["onset"][a:b]

    def frames_since(self, name: str, index: int) -> tuple[int, np.ndarray]:
        """(first, values): the per-frame `name` of every kept frame from absolute frame `index` on
        (frame k is centred at k * HOP samples). `first` is later than `index` where those are forgotten."""
        first = max(index, self._frame_start)
        return first, self._frames[name][first - self._frame_start :]

    def samples(self, start_sample: int, end_sample: int) -> np.ndarray:
        """The raw mono audio in [start_sample, end_sample) (absolute indices; before the stream's
        start is silence). Raises ValueError for audio not yet pushed or already forgotten."""
        if end_sample > self.samples_in or max(start_sample, 0) < self._buffer_start:
            raise ValueError(f"samples [{start_sample}, {end_sample}) not kept (have up to {self.samples_in})")
        lead = max(0, min(end_sample, 0) - start_sample)  # silence before the stream
        kept = self._buffer[max(start_sample, 0) - self._buffer_start : max(end_sample, 0) - self._buffer_start]
        return np.concatenate([np.zeros(lead, np.float32), kept]) if lead else kept.copy()

    def _frame_span(self, start: float, end: float) -> tuple[int, int]:
        first = int(np.ceil(start * AUDIO_RATE / HOP - 1e-9))
        last = int(np.ceil(end * AUDIO_RATE / HOP - 1e-9))  # exclusive
        first = max(first, self._frame_start)
        last = min(last, self._next_frame)
        return first - self._frame_start, max(first, last) - self._frame_start

    def row(self, start: float, end: float) -> np.ndarray:
        """One row of features for the audio in [start, end) seconds (normally one second)."""
        a, b = self._frame_span(start, end)
        if b <= a:
            raise ValueError(f"no analysed audio in [{start:.2f}, {end:.2f}) s")
        f = self._frames
        lo = max(int(round(start * AUDIO_RATE)), 0) - self._buffer_start
        hi = min(int(round(end * AUDIO_RATE)), self.samples_in) - self._buffer_start
        chunk = self._buffer[max(lo, 0) : max(hi, 0)].astype(np.float64)
        rms = np.sqrt(np.mean(chunk**2)) if chunk.size else 0.0
        peak = float(np.max(np.abs(chunk))) if chunk.size else 0.0
        crossings = np.count_nonzero(np.diff(np.signbit(chunk))) / max(len(chunk), 1)
        c = f["chroma"][a:b].mean(axis=0)
        history = f["onset"][max(0, b - int(TEMPO_WINDOW_SECONDS * FRAME_RATE)) : b]
        bpm, clarity = tempo_of(history, FRAME_RATE)
        nyquist = AUDIO_RATE / 2
        return np.concatenate(
            [
                f["mel_db"][a:b].mean(axis=0),
                c / (c.max() + 1e-10),
                [
                    20 * np.log10(rms + 1e-10),
                    20 * np.log10(peak + 1e-10),
                    f["onset"][a:b].mean(),
                    f["onset"][a:b].max(),
                    f["flux"][a:b].mean(),
                    f["centroid"][a:b].mean() / nyquist,
                    f["bandwidth"][a:b].mean() / nyquist,
                    f["rolloff"][a:b].mean() / nyquist,
                    f["flatness"][a:b].mean(),
                    crossings,
                    bpm / TEMPO_RANGE_BPM[1],
                    clarity,
                ],
            ]
        ).astype(np.float32)

    def rows(self, start: float, seconds: int) -> np.ndarray:
        """[seconds, DIM]: one row per second from `start`."""
        return (
            np.stack([self.row(start + i, start + i + 1) for i in range(seconds)])
            if seconds
            else np.zeros((0, DIM), np.float32)
        )


def audio_features(samples: np.ndarray, sr: int = AUDIO_RATE) -> np.ndarray:
    """Per-second features [seconds, DIM] of mono float32 audio at `sr` (a partial last second counts
    when it is at least half a second long)."""
    if sr != AUDIO_RATE:
        raise ValueError(f"audio must be resampled to {AUDIO_RATE} Hz, got {sr}")
    samples = np.asarray(samples, np.float32)
    seconds = whole_seconds(len(samples) / sr)
    analyser = AudioAnalyser(keep_seconds=None)
    analyser.push(samples)
    analyser.finish()
    return analyser.rows(0.0, seconds)

"""What happens to a song between the DJ's deck and the show's microphone, done to a numpy signal.

Room noise at a given SNR, a lossy codec pass (real encoder and decoder, via PyAV), an EQ tilt and a
pitch-fader speed change. Used by tests/test_fingerprint.py and tools/bench.py sync (tools/sync_bench.py).
"""

from __future__ import annotations

import io

import av
import numpy as np

from livejpp.media.decode import AUDIO_RATE


def _pink(n: int, seed: int) -> np.ndarray:
    """n samples of pink noise (the spectrum of a crowd and its room), float64, unit RMS."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / AUDIO_RATE)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise**2))


def pink_noise(n: int, seed: int = 0, rms: float = 1.0) -> np.ndarray:
    """A room with no music: n samples of pink noise at the given RMS."""
    return (_pink(n, seed) * rms).astype(np.float32)


def room_noise(samples: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """Add pink noise at snr_db below the signal's power."""
    rms = np.sqrt(np.mean(samples**2) / 10 ** (snr_db / 10))
    return (samples + rms * _pink(len(samples), seed)).astype(np.float32)


def eq_tilt(samples: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Tilt the spectrum around 1 kHz (a bass-heavy PA or a thin phone speaker), capped at +-12 dB."""
    spectrum = np.fft.rfft(samples)
    freqs = np.maximum(np.fft.rfftfreq(len(samples), 1 / AUDIO_RATE), 1.0)
    gain_db = np.clip(db_per_octave * np.log2(freqs / 1000.0), -12.0, 12.0)
    return np.fft.irfft(spectrum * 10 ** (gain_db / 20), len(samples)).astype(np.float32)


def speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster, pitch and tempo together (a turntable's or CDJ's pitch fader)."""
    n_out = int(len(samples) / factor)
    return np.interp(np.arange(n_out) * factor, np.arange(len(samples)), samples).astype(np.float32)


def codec_pass(samples: np.ndarray, codec: str = "mp3", bitrate: int = 128_000) -> np.ndarray:
    """Encode with a real lossy encoder at `bitrate` and decode back to mono float32 at AUDIO_RATE."""
    buffer = io.BytesIO()
    fmt = {"mp3": "mp3", "aac": "adts"}[codec]
    codec_name = {"mp3": "libmp3lame", "aac": "aac"}[codec]
    rate = 44100
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream(codec_name, rate=rate, layout="mono")
        stream.bit_rate = bitrate
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        frame = av.AudioFrame.from_ndarray(samples[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = AUDIO_RATE
        for part in (*resampler.resample(frame), *resampler.resample(None)):
            for packet in stream.encode(part):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buffer.seek(0)
    decoded = []
    back = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
    with av.open(buffer, "r", format=fmt) as inp:
        for frame in inp.decode(audio=0):
            decoded.extend(f.to_ndarray()[0] for f in back.resample(frame))
        decoded.extend(f.to_ndarray()[0] for f in back.resample(None))
    return np.concatenate(decoded).astype(np.float32)

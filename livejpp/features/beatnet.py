"""BeatNet's learned beat and downbeat activation, live, with numpy and onnxruntime only.

BeatNet (Heydari, Cwitkowitz & Duan, ISMIR 2021; PyPI `BeatNet` 1.1.3, CC BY 4.0) is a small causal
CRNN: per 20 ms frame of a log-filtered spectrogram it gives P(beat), P(downbeat), P(no beat). Its
weights were converted offline to ONNX (tools/convert_beatnet.py) and ship in models/beatnet/.

Its input features were computed by madmom, which is not a dependency: `LogSpect` recomputes them
(madmom's `LOG_SPECT` as BeatNet builds it, checked to 1e-4 at conversion and by the tests). The
frame grid is madmom's: frame k is centred at sample 441·k (k / 50 s) with silence before sample 0,
and is computed as soon as its 1411-sample window has arrived (32 ms after its centre), so a stream
gives the same frames, whatever the block sizes, as a whole song analysed offline.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from livejpp.engine.activation import Activations
from livejpp.features import pretrained
from livejpp.features.audio import AudioAnalyser
from livejpp.media.decode import AUDIO_RATE

BEATNET_DIR = "models/beatnet"
HOP = int(20e-3 * AUDIO_RATE)  # 441 samples: 50 frames per second (BeatNet.py:62)
FRAME = int(64e-3 * AUDIO_RATE)  # 1411 samples (BeatNet.py:63)
FPS = AUDIO_RATE / HOP
BINS = FRAME >> 1  # 705 FFT bins kept: madmom drops the last (there is no Nyquist bin for an odd size)
#: madmom's LogarithmicFilterbank as BeatNet asks for it: 24 bands per octave from 30 Hz to 17 kHz, A4 = 440 Hz
BANDS_PER_OCTAVE, FMIN, FMAX, FREF = 24, 30.0, 17000.0, 440.0
HIDDEN = 150  # LSTM cells per layer (2 layers)


@lru_cache(maxsize=1)
def log_filterbank() -> np.ndarray:
    """[705, 136] float32: madmom's overlapping triangular filters, one per unique log-spaced bin, area 1."""
    # madmom's bin frequencies use 2 * 705 = 1410 points, not the frame size 1411
    bin_freqs = np.fft.fftfreq(2 * BINS, 1.0 / AUDIO_RATE)[:BINS]
    left = np.floor(np.log2(FMIN / FREF) * BANDS_PER_OCTAVE)
    right = np.ceil(np.log2(FMAX / FREF) * BANDS_PER_OCTAVE)
    freqs = FREF * 2.0 ** (np.arange(left, right) / BANDS_PER_OCTAVE)
    freqs = freqs[np.searchsorted(freqs, FMIN) :]
    freqs = freqs[: np.searchsorted(freqs, FMAX, "right")]
    index = np.clip(bin_freqs.searchsorted(freqs), 1, BINS - 1)
    index -= freqs - bin_freqs[index - 1] < bin_freqs[index] - freqs  # the nearer bin
    bins = np.unique(index)
    bank = np.zeros((BINS, len(bins) - 2), np.float32)
    for band, (start, centre, stop) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:], strict=True)):
        if stop - start < 2:
            centre, stop = start, start + 1
        rise = np.linspace(0.0, 1.0, centre - start, endpoint=False)
        fall = np.linspace(1.0, 0.0, stop - centre, endpoint=False)
        triangle = np.concatenate([rise, fall]).astype(np.float32)  # madmom normalises in float32
        bank[start:stop, band] = triangle / triangle.sum()
    return bank


@lru_cache(maxsize=1)
def _sparse_filterbank() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bins, weights, band starts) of the filterbank's 1257 non-zero weights, band by band. Applied
    with a gather and np.add.reduceat, which costs what the matrix product costs on an idle machine but
    starts no BLAS threads: those wait for a core on a loaded one (34 ms p99 per product, measured)."""
    bank = log_filterbank()
    band, bins = np.nonzero(bank.T)
    return bins, bank[bins, band], np.flatnonzero(np.r_[True, np.diff(band) > 0])


_WINDOW = np.hanning(FRAME)  # float64, unscaled, as madmom applies it to float audio


def log_bands(frames: np.ndarray) -> np.ndarray:
    """[n, FRAME] windows of audio → [n, 136] log10(1 + filtered magnitude spectrum), float32."""
    spectrum = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)[:, :BINS]).astype(np.float32)
    bins, weights, starts = _sparse_filterbank()
    return np.log10(np.add.reduceat(spectrum[:, bins] * weights, starts, axis=1) + 1.0, dtype=np.float32)


class LogSpect:
    """BeatNet's input features as the audio arrives: per frame, the 136 log bands and their positive
    change since the previous frame (272 values; the first frame's change is 0, as in madmom)."""

    DIM = 2 * 136

    def __init__(self) -> None:
        self.next_frame = 0  # absolute index of the next frame to compute
        self._previous: np.ndarray | None = None  # the log bands of frame next_frame - 1

    @staticmethod
    def complete(samples_in: int) -> int:
        """How many frames have their whole window within the first `samples_in` samples."""
        return max(0, (samples_in - (FRAME - FRAME // 2)) // HOP + 1)

    def advance(self, analyser: AudioAnalyser) -> tuple[int, np.ndarray]:
        """(first, [n, 272]): the frames completed since the last call; `first` is their absolute index."""
        end = self.complete(analyser.samples_in)
        oldest = 0 if analyser.keep is None else analyser.samples_in - analyser.keep  # surely still kept
        if oldest > 0:  # a reader that stalled for longer than the analyser keeps audio: skip ahead
            held = -(-(oldest + FRAME // 2) // HOP)  # the first frame whose window starts at `oldest` or later
            if held > self.next_frame:
                self.next_frame, self._previous = held, None
        first = self.next_frame
        if end <= first:
            return first, np.zeros((0, self.DIM), np.float32)
        audio = analyser.samples(first * HOP - FRAME // 2, (end - 1) * HOP - FRAME // 2 + FRAME)
        bands = log_bands(np.lib.stride_tricks.sliding_window_view(audio, FRAME)[::HOP])
        previous = bands[:1] if self._previous is None else self._previous
        rise = np.maximum(np.diff(np.concatenate([previous, bands]), axis=0), 0.0)
        self._previous, self.next_frame = bands[-1:], end
        return first, np.hstack([bands, rise]).astype(np.float32)


class BeatNetActivation:
    """BeatNet model 1 (trained with GTZAN held out) as an `ActivationSource`: `beat` is P(beat) +
    P(downbeat), `down` is P(downbeat), per 20 ms frame. The LSTM state runs on across calls, so the
    frames completed since the last call go through the network in one batch, exactly as if one by one."""

    name = "beatnet"
    fps = FPS
    #: frame k's probabilities are about the beat at k / fps seconds: the median peak lies 0 ms from the true
    #: beat on each of 6 real songs (4 Frets on Fire metal charts, 2 LMMS demos), measured at 20 ms resolution
    lag = 0.0

    def __init__(self, folder: str = BEATNET_DIR) -> None:
        self._session = pretrained.session(folder, made_by="tools/convert_beatnet.py")
        self._features = LogSpect()
        self._h = np.zeros((2, 1, HIDDEN), np.float32)
        self._c = np.zeros((2, 1, HIDDEN), np.float32)

    def advance(self, analyser: AudioAnalyser) -> Activations | None:
        first, feats = self._features.advance(analyser)
        if len(feats) == 0:
            return None
        probs, self._h, self._c = self._session.run(None, {"feats": feats[None], "h0": self._h, "c0": self._c})
        beat, down = probs[0, :, 0], probs[0, :, 1]  # classes: beat (not a downbeat), downbeat, no beat
        return Activations(self.fps, first, (beat + down).astype(np.float32), down.astype(np.float32))

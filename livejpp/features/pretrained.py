"""Pretrained extractors, converted to ONNX offline (tools/convert_pretrained.py), run with onnxruntime.

- musicnn (MSD, ISC licence): a 200-d embedding per second of music, from a 3 s log-mel patch
  centred on that second.
- EfficientNet-Lite0 (ImageNet, Apache-2.0): a 1280-d embedding per second of pictures, from the
  frame in the middle of that second.

Neither TensorFlow nor PyTorch is imported here: the models load from models/ on disk.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from livejpp.errors import LivejppError
from livejpp.features import FeatureSet
from livejpp.media.decode import AUDIO_RATE
from livejpp.paths import MODELS_ROOT

MUSICNN_DIR = "models/musicnn_msd"
EFFNET_DIR = "models/efficientnet_lite0"

MUSICNN_RATE = 16000
MUSICNN_FFT = 512
MUSICNN_HOP = 256
MUSICNN_MELS = 96
MUSICNN_FRAMES = 187  # 3 s: the patch length the model was trained on
EFFNET_SIZE = 224

MUSICNN = FeatureSet("musicnn", "audio", 200, "msd-1", tuple(f"musicnn{i:03d}" for i in range(200)))
EFFNET = FeatureSet("effnet", "visual", 1280, "lite0-1", tuple(f"effnet{i:04d}" for i in range(1280)))


class ModelMissing(LivejppError):
    """A pretrained model file is not where it should be."""


def model_path(folder: str, made_by: str = "tools/convert_pretrained.py") -> Path:
    path = MODELS_ROOT / Path(folder).name / "model.onnx"
    if not path.is_file():
        raise ModelMissing(f"{path}: pretrained model missing (convert it with {made_by})")
    return path


@lru_cache(maxsize=4)
def session(folder: str, threads: int = 1, made_by: str = "tools/convert_pretrained.py"):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path(folder, made_by)), options, providers=["CPUExecutionProvider"])


def feature_sets() -> tuple[FeatureSet, ...]:
    for folder in (MUSICNN_DIR, EFFNET_DIR):
        model_path(folder)  # fail before any work when a model is missing
    return MUSICNN, EFFNET


# --- musicnn front end -------------------------------------------------------------------------
def _slaney_mel_hz(mels: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def _slaney_hz_mel(hz: float) -> float:
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    return min_log_mel + np.log(hz / min_log_hz) / logstep if hz >= min_log_hz else hz / f_sp


@lru_cache(maxsize=1)
def musicnn_mel_filters() -> np.ndarray:
    """librosa's default mel filterbank (Slaney scale and area normalisation), as musicnn was trained with."""
    fft_freqs = np.linspace(0, MUSICNN_RATE / 2, MUSICNN_FFT // 2 + 1)
    mel_f = _slaney_mel_hz(np.linspace(0.0, _slaney_hz_mel(MUSICNN_RATE / 2), MUSICNN_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float32 resampling with FFmpeg's swresample (the same resampler the decoder uses)."""
    if rate == target or samples.size == 0:
        return np.asarray(samples, np.float32)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32)[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    parts = [f.to_ndarray()[0] for f in resampler.resample(frame)]
    parts += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def musicnn_logmel(samples: np.ndarray, rate: int = AUDIO_RATE) -> np.ndarray:
    """[frames, 96] log-mel at 62.5 frames/s: librosa's centred STFT (reflect padding), power 2,
    log10(10000 x + 1) computed in float32 (musicnn's float16 overflows)."""
    audio = resample(samples, rate, MUSICNN_RATE)
    if audio.size < MUSICNN_FFT:
        audio = np.pad(audio, (0, MUSICNN_FFT - audio.size))
    padded = np.pad(audio, MUSICNN_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, MUSICNN_FFT)[::MUSICNN_HOP]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MUSICNN_FFT) / MUSICNN_FFT)).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = power.astype(np.float32) @ musicnn_mel_filters().T
    return np.log10(10000.0 * mel + 1.0).astype(np.float32)


def musicnn_rows(samples: np.ndarray, seconds: int, threads: int = 1) -> np.ndarray:
    """[seconds, 200]: for each second, the embedding of the 3 s patch centred on it (kept inside the audio)."""
    logmel = musicnn_logmel(samples)
    if len(logmel) < MUSICNN_FRAMES:  # shorter than 3 s: repeat it, as musicnn's training did
        logmel = np.tile(logmel, (int(np.ceil(MUSICNN_FRAMES / len(logmel))), 1))
    rate = MUSICNN_RATE / MUSICNN_HOP
    starts = [
        int(np.clip(round((s + 0.5) * rate) - MUSICNN_FRAMES // 2, 0, len(logmel) - MUSICNN_FRAMES))
        for s in range(seconds)
    ]
    if not starts:
        return np.zeros((0, MUSICNN.dim), np.float32)
    patches = np.stack([logmel[s : s + MUSICNN_FRAMES] for s in starts])
    sess = session(MUSICNN_DIR, threads)
    embedding = sess.run([sess.get_outputs()[0].name], {sess.get_inputs()[0].name: patches})[0]
    return embedding.astype(np.float32)


def effnet_rows(frames: np.ndarray, threads: int = 1) -> np.ndarray:
    """[n, 1280] from uint8 RGB frames [n, 224, 224, 3]."""
    sess = session(EFFNET_DIR, threads)
    return sess.run(["features"], {"frames": np.ascontiguousarray(frames, np.uint8)})[0].astype(np.float32)


class PretrainedExtractor:
    """The worker's view of one pretrained feature set: frames in as they decode, rows out per clip."""

    def __init__(self, feature_set: FeatureSet, rotation: int = 0, threads: int = 1):
        self.feature_set = feature_set
        self.rotation = rotation
        self.threads = threads
        self._scaler = VideoReformatter()
        self._picked: dict[int, dict[int, np.ndarray]] = {}

    def add_frame(self, clip_index: int, t: float, frame: av.VideoFrame) -> None:
        """Keep the first frame at or after the middle of each second (one frame a second is enough)."""
        if self.feature_set.modality != "visual":
            return
        second = int(t)
        picked = self._picked.setdefault(clip_index, {})
        if t - second < 0.5 - 1e-6 or second in picked:
            return
        rgb = self._scaler.reformat(frame, width=EFFNET_SIZE, height=EFFNET_SIZE, format="rgb24").to_ndarray()
        picked[second] = np.rot90(rgb, k=self.rotation // 90) if self.rotation else rgb

    def visual_rows(self, clip_index: int, seconds: int) -> np.ndarray:
        picked = self._picked.pop(clip_index, {})
        if not picked:
            return np.zeros((seconds, self.feature_set.dim), np.float32)
        order = sorted(picked)
        rows = effnet_rows(np.stack([picked[s] for s in order]), self.threads)
        by_second = dict(zip(order, rows, strict=True))
        out, last = [], rows[0]
        for s in range(seconds):  # a second without its own frame (a short tail) repeats the one before
            last = by_second.get(s, last)
            out.append(last)
        return np.stack(out)

    def audio_rows(self, samples: np.ndarray, seconds: int) -> np.ndarray:
        return musicnn_rows(samples, seconds, self.threads)


def extractor_for(fs: FeatureSet, rotation: int = 0, threads: int = 1) -> PretrainedExtractor:
    if fs.name not in (MUSICNN.name, EFFNET.name):
        raise ValueError(f"no pretrained extractor for feature set {fs.name}")
    return PretrainedExtractor(fs, rotation, threads)

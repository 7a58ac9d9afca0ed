"""Decoding with PyAV: probe a file, walk its frames, read its audio as mono float32.

Every failure surfaces as a `MediaError` naming the file and the reason in one line, so the
library builder can report it and carry on with the next video.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from livejpp.errors import LivejppError

log = logging.getLogger("livejpp.media")

#: The rate every audio feature is computed at; the same for library, render and live.
AUDIO_RATE = 22050
#: Output frame rates above this are capped (a 120 fps phone clip plays at 60).
MAX_FPS = Fraction(60)


#: Why a song with its cover picture (an attached-picture video stream) is not a video.
COVER_ART_ONLY = "an audio file: its only picture is cover art"


class MediaError(LivejppError):
    """A file that cannot be used, with a reason a user can act on."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """What the builder needs to know about a video before decoding it."""

    path: str
    duration: float  # seconds, from the container; refined while decoding
    width: int  # as displayed (after rotation)
    height: int
    fps: Fraction  # output frame rate for the playback clips (constant)
    rotation: int  # degrees counter-clockwise to apply to decoded frames (0, 90, 180, 270)
    codec: str
    has_audio: bool
    audio_codec: str | None
    start: float  # the video stream's first timestamp, taken as time zero


def _short(exc: BaseException) -> str:
    """One line of an FFmpeg error, without the errno prefix and the path PyAV repeats."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.splitlines()[0].strip() if text else type(exc).__name__


def probe(path: str | os.PathLike) -> VideoInfo:
    """Open `path` and describe its first video stream, or raise MediaError saying why not."""
    path = str(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise MediaError(path, f"cannot read ({exc.strerror})") from exc
    if size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise MediaError(path, "cannot read (permission denied)")
    try:
        container = av.open(path)
    except PermissionError as exc:
        raise MediaError(path, "cannot read (permission denied)") from exc
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(path, f"not a readable video ({_short(exc)})") from exc
    with container:
        if not container.streams.video:
            raise MediaError(path, "has no video stream")
        stream = video_stream(container)
        if stream is None:
            raise MediaError(path, COVER_ART_ONLY)
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise MediaError(path, "video stream has no frame size (corrupt header?)")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise MediaError(path, "video stream has no frame rate")
        fps = output_rate(Fraction(rate))
        duration = _duration(container, stream)
        if duration <= 0:
            raise MediaError(path, "video has no duration (no frames?)")
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        rotation = _rotation(container, stream)
        width, height = ctx.width, ctx.height
        if rotation in (90, 270):
            width, height = height, width
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=path,
            duration=duration,
            width=width,
            height=height,
            fps=fps,
            rotation=rotation,
            codec=ctx.name,
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            start=start,
        )


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first stream of moving pictures: an attached picture (a song's cover art) is not one."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


#: Rates a variable-frame-rate source is snapped to for its constant-rate playback clips.
STANDARD_RATES = tuple(
    Fraction(r) for r in ("12", "15", "24000/1001", "24", "25", "30000/1001", "30", "50", "60000/1001", "60")
)


def output_rate(rate: Fraction) -> Fraction:
    """The constant frame rate of a source's playback clips: its own when it is a clean rate
    (integer or NTSC x/1001), else the nearest standard rate (variable-rate phone footage)."""
    clean = Fraction(rate).limit_denominator(1001)
    if clean.denominator not in (1, 1001) or abs(clean - rate) > Fraction(1, 1000):
        clean = min(STANDARD_RATES, key=lambda r: abs(r - rate))
    return min(clean, MAX_FPS)


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    if stream.frames and stream.average_rate:
        return float(stream.frames / stream.average_rate)
    return 0.0


def _rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Rotation from the display matrix, read from the first frame (where FFmpeg exposes it)."""
    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation or 0)) % 360 // 90 * 90
    except av.FFmpegError:
        return 0
    return 0


def iter_video_frames(
    path: str, start: float = 0.0, origin: float = 0.0, threads: int = 1
) -> Iterator[tuple[float, av.VideoFrame]]:
    """Yield (time, frame) from `start` seconds on, with time measured from `origin`.

    Seeks to the keyframe before `start` and drops what comes before it, so a resumed build starts
    where it stopped. A damaged packet is skipped (the pictures after it decode again from the next
    keyframe; decoding stopped at the first one, and a file damaged at 30 % lost the rest); a read
    error ends the walk early (a truncated file) instead of raising: the caller sees the shorter
    duration. Skipped packets are said in one line at the end.
    """
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(path, f"not a readable video ({_short(exc)})") from exc
    with container:
        stream = video_stream(container)
        if stream is None:
            raise MediaError(path, COVER_ART_ONLY)
        stream.thread_count = max(1, threads)
        stream.thread_type = "AUTO" if threads > 1 else "SLICE"
        if start > 0:
            target = int((start + origin) / stream.time_base) - 1
            try:
                container.seek(max(target, 0), stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0, stream=stream)
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        index = 0
        frames = DecodedFrames(container, stream)
        try:
            for frame in frames:
                t = frame.time - origin if frame.time is not None else index / fps
                index += 1
                if t >= start - 1e-3:
                    yield t, frame
        except (av.FFmpegError, OSError):
            return
        finally:
            if frames.damaged:
                log.warning("%s: skipped %d damaged video packets", path, frames.damaged)


class DecodedFrames:
    """The decoded frames of one stream (audio or video), packet by packet: a damaged packet is
    skipped and counted, not the end of the file (decoding stopped at the first one: a mostly good
    MP3 was "silent", a video damaged at 30 % lost the rest; a video decodes again from its next
    keyframe)."""

    def __init__(self, container: av.container.InputContainer, stream: av.stream.Stream):
        self.damaged = 0
        self._frames = self._decode(container, stream)

    def _decode(self, container, stream) -> Iterator[av.AudioFrame | av.VideoFrame]:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                self.damaged += 1
                continue
            yield from frames

    def __iter__(self) -> Iterator[av.AudioFrame | av.VideoFrame]:
        return self

    def __next__(self) -> av.AudioFrame | av.VideoFrame:
        return next(self._frames)


#: Downmix gains (left, right) by channel name, as ITU-R BS.775 and FFmpeg's default: the front
#: pair as it is, the centre and surrounds at -3 dB, the LFE left out.
_FRONT = {"FL": (1.0, 0.0), "FR": (0.0, 1.0)}
_MINUS_3DB = float(np.sqrt(0.5))


def _gains(channel: str) -> tuple[float, float]:
    if channel in _FRONT:
        return _FRONT[channel]
    if channel.startswith("LFE"):
        return 0.0, 0.0
    if channel.endswith("L"):  # BL, SL, FLC, TFL, WL, ...
        return _MINUS_3DB, 0.0
    if channel.endswith("R"):
        return 0.0, _MINUS_3DB
    return _MINUS_3DB, _MINUS_3DB  # FC, BC, TC and channels without a place


def downmix_matrix(channels: list[str]) -> np.ndarray:
    """Stereo from any layout (2 × len(channels)), scaled so no output can exceed the loudest input:
    libswresample left alone sums 8 channels into peaks of 1.85 × full scale (8 dB too loud)."""
    matrix = np.array([_gains(c) for c in channels], np.float64).T
    return (matrix / max(1.0, matrix.sum(axis=1).max())).astype(np.float32)


class Downmixer:
    """Frames of any layout to float32 arrays (channels × samples) in `layout` ('mono' or 'stereo')
    at `rate`. Mono and stereo go through libswresample as they always have (libraries were built
    so); more channels are downmixed to stereo by `downmix_matrix` first."""

    def __init__(self, layout: str, rate: int):
        self.layout, self.rate = layout, rate
        self._resampler: av.AudioResampler | None = None
        self._matrix: np.ndarray | None = None
        self._channels = 0

    def _start(self, frame: av.AudioFrame) -> None:
        names = [c.name for c in frame.layout.channels]
        self._channels = len(names)
        if self._channels > 2:
            self._matrix = downmix_matrix(names)
            # packed samples, every channel kept: PyAV's planar arrays stop at 8 channels
            self._resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=self.rate)
        else:
            self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)

    def resample(self, frame: av.AudioFrame | None) -> list[np.ndarray]:
        if self._resampler is None:
            if frame is None:
                return []
            self._start(frame)
        out = []
        for resampled in self._resampler.resample(frame):
            samples = resampled.to_ndarray()
            if self._matrix is not None:
                samples = self._matrix @ samples.reshape(-1, self._channels).T
                if self.layout == "mono":  # as libswresample makes mono of stereo
                    samples = (_MINUS_3DB * (samples[0] + samples[1]))[None, :]
            out.append(np.ascontiguousarray(samples, np.float32))
        return out


class AudioReader:
    """Sequential mono float32 audio at AUDIO_RATE, read in time windows from one stream.

    Samples are placed by their timestamps (not by counting), so encoder padding and gaps do not
    shift the audio against the pictures.
    """

    def __init__(self, path: str, start: float = 0.0, origin: float = 0.0):
        self.path = path
        self.origin = origin
        self._container = av.open(path)
        self._stream = self._container.streams.audio[0]
        self._resampler = Downmixer("mono", AUDIO_RATE)
        self._store = np.zeros(0, np.float32)  # grows geometrically: appending stays linear in time
        self._length = 0  # samples of _store in use
        self._buffer_start = start  # time of _buffer[0]
        self._next_time: float | None = None  # where the next decoded sample lands
        self._frames = DecodedFrames(self._container, self._stream)
        self._done = False
        if start > 0:
            try:
                self._container.seek(int((start + origin) * av.time_base), backward=True)
                self._frames = DecodedFrames(self._container, self._stream)
            except av.FFmpegError:
                pass

    @property
    def damaged(self) -> int:
        return self._frames.damaged

    def close(self) -> None:
        self._container.close()

    @property
    def _buffer(self) -> np.ndarray:
        return self._store[: self._length]

    def _append(self, t: float, samples: np.ndarray) -> None:
        if self._next_time is None:
            self._next_time = t
        # keep continuity unless the timestamp jumps by more than 50 ms (a real gap or overlap)
        if abs(t - self._next_time) > 0.05:
            self._next_time = t
        begin = int(round((self._next_time - self._buffer_start) * AUDIO_RATE))
        self._next_time += len(samples) / AUDIO_RATE
        if begin < 0:
            samples = samples[-begin:]
            begin = 0
        end = begin + len(samples)
        if end > len(self._store):  # a copy per doubling, not per frame (a 15 min song took 80 s)
            grown = np.zeros(max(end, 2 * len(self._store), 1 << 16), np.float32)
            grown[: self._length] = self._store[: self._length]
            self._store = grown
        if end > self._length:
            self._store[self._length : end] = 0.0  # a gap the stream skipped stays silent
            self._length = end
        self._store[begin:end] = samples

    def _decode_more(self) -> bool:
        try:
            frame = next(self._frames)
        except (StopIteration, av.FFmpegError, OSError):
            self._done = True
            for out in self._resampler.resample(None):
                if self._next_time is not None:
                    self._append(self._next_time, out[0])
            return False
        if frame.time is None:
            t = self._next_time if self._next_time is not None else self._buffer_start
        else:
            t = frame.time - self.origin
        for out in self._resampler.resample(frame):
            self._append(t, out[0])
            t += out.shape[1] / AUDIO_RATE
        return True

    def read(self, start: float, end: float) -> np.ndarray:
        """Samples of [start, end): zeros where the stream has none (before it starts, after it ends)."""
        need = int(round((end - self._buffer_start) * AUDIO_RATE))
        while not self._done and len(self._buffer) < need:
            self._decode_more()
        a = int(round((start - self._buffer_start) * AUDIO_RATE))
        n = int(round((end - start) * AUDIO_RATE))
        out = np.zeros(n, np.float32)
        lo, hi = max(a, 0), min(a + n, len(self._buffer))
        if hi > lo:
            out[lo - a : hi - a] = self._buffer[lo:hi]
        return out

    def discard_before(self, t: float) -> None:
        """Free what lies before `t`: memory stays bounded on hour-long videos."""
        drop = int(round((t - self._buffer_start) * AUDIO_RATE))
        if drop > 0:
            drop = min(drop, self._length)
            self._store = self._store[drop:]
            self._length -= drop
            self._buffer_start += drop / AUDIO_RATE


def read_audio_file(path: str | os.PathLike, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """A whole song (or part of one) as mono float32 at AUDIO_RATE: any file with an audio stream."""
    path = str(path)
    if not Path(path).is_file():
        raise MediaError(path, "no such file")
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(path, f"not a readable audio file ({_short(exc)})") from exc
    with container:
        if not container.streams.audio:
            raise MediaError(path, "has no audio stream")
        stream = container.streams.audio[0]
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        header_end = _stream_seconds(container, stream) if end is None else None
    reader = AudioReader(path, start=start, origin=origin)
    try:
        if end is None:  # the whole song: as long as its audio, whatever the header says (a truncated file)
            while reader._decode_more():
                pass
            end = reader._buffer_start + len(reader._buffer) / AUDIO_RATE
            if header_end is not None:
                end = min(end, header_end)  # the encoder's padding after the last sample is not the song
        samples = reader.read(start, end)
    finally:
        reader.close()
    if reader.damaged:
        log.warning("%s: skipped %d damaged audio packets", path, reader.damaged)
    return samples


def _stream_seconds(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None

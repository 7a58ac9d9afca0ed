"""Frame sources: a clip's pictures at any time, fitted to the output size.

Kept behind one small interface (`frame_at`) so another codec (HAP, GPU-compressed frames) can be
added without touching the engine or the compositor.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from livejpp.media.decode import DecodedFrames, MediaError


def cover(width: int, height: int, out_w: int, out_h: int) -> tuple[int, int, int, int]:
    """Scale (w, h) to cover the output, then the crop offsets: (scaled w, scaled h, x0, y0)."""
    scale = max(out_w / width, out_h / height)
    sw, sh = max(out_w, int(np.ceil(width * scale))), max(out_h, int(np.ceil(height * scale)))
    sw, sh = sw + sw % 2, sh + sh % 2
    return sw, sh, (sw - out_w) // 2, (sh - out_h) // 2


class ClipFrames:
    """Sequential reading of one clip file (or a span of a source video), seeking only when asked
    for an earlier time or a jump ahead; returns RGB uint8 frames covering the output size."""

    def __init__(self, path: str | Path, size: tuple[int, int], base: float = 0.0, length: float | None = None):
        self.path = str(path)
        self.size = size
        self.base = base  # where the clip starts in the file (0 for playback clips)
        try:
            self._container = av.open(self.path)
        except (av.FFmpegError, OSError) as exc:
            why = getattr(exc, "strerror", None) or exc  # without the path: the message names it once
            raise MediaError(self.path, f"cannot play ({why})") from exc
        self._stream = self._container.streams.video[0]
        # slice threads only: frame-threaded decoders kept ~50 KB each after closing (measured), and a
        # live show opens thousands of readers over a night
        self._stream.thread_type = "SLICE"
        start = self._stream.start_time
        self._origin = float(start * self._stream.time_base) if start is not None else 0.0
        self.length = length if length is not None else float(self._container.duration or 0) / av.time_base
        self._scaler = VideoReformatter()
        self._frames = None
        self._current: tuple[float, av.VideoFrame] | None = None
        self._next: tuple[float, av.VideoFrame] | None = None
        self._out: tuple[float, np.ndarray] | None = None

    def close(self) -> None:
        self._container.close()

    def _seek(self, t: float) -> None:
        target = int((self.base + t + self._origin) / self._stream.time_base)
        self._container.seek(max(target, 0), stream=self._stream, backward=True)
        self._frames = DecodedFrames(self._container, self._stream)
        self._current, self._next = None, None

    def _advance(self) -> bool:
        try:
            frame = next(self._frames)
        except (StopIteration, av.FFmpegError):
            return False
        t = (frame.time or 0.0) - self._origin - self.base
        self._current, self._next = self._next, (t, frame)
        return True

    def frame_at(self, t: float) -> np.ndarray:
        """The picture shown at `t` seconds into the clip: the latest frame at or before it."""
        t = max(0.0, t)
        if (
            self._frames is None
            or (self._current is not None and t < self._current[0] - 1e-6)
            or (self._next is not None and t > self._next[0] + 2.0)
        ):
            self._seek(t)
        while self._next is None or self._next[0] <= t + 1e-6:
            if not self._advance():
                break
        chosen = self._current if self._next is None or self._next[0] > t + 1e-6 else self._next
        chosen = chosen or self._next
        if chosen is None:
            raise MediaError(self.path, f"no picture at {t:.2f} s")
        if self._out is not None and self._out[0] == chosen[0]:
            return self._out[1]
        frame = chosen[1]
        out_w, out_h = self.size
        sw, sh, x0, y0 = cover(frame.width, frame.height, out_w, out_h)
        rgb = self._scaler.reformat(frame, width=sw, height=sh, format="rgb24").to_ndarray()
        picture = np.ascontiguousarray(rgb[y0 : y0 + out_h, x0 : x0 + out_w])
        self._out = (chosen[0], picture)
        return picture


class FramePool:
    """Open clip readers, the most recently used kept (a crossfade needs two, a cut back a third)."""

    def __init__(self, size: tuple[int, int], keep: int = 4):
        self.size = size
        self.keep = keep
        self._open: OrderedDict[tuple[str, float], ClipFrames] = OrderedDict()

    def get(self, path: str, base: float = 0.0, length: float | None = None) -> ClipFrames:
        """The open reader of a clip: its file and where it starts there (clips of one source read
        without transcoding share the file), whichever library it belongs to."""
        key = (str(path), base)
        if key in self._open:
            self._open.move_to_end(key)
            return self._open[key]
        reader = ClipFrames(path, self.size, base, length)
        self._open[key] = reader
        while len(self._open) > self.keep:
            self._open.popitem(last=False)[1].close()
        return reader

    def close(self) -> None:
        for reader in self._open.values():
            reader.close()
        self._open.clear()

"""Frame sources: a clip's pictures at any time, fitted to the output size.

Kept behind one small interface (`frame_at`) so another codec (HAP, GPU-compressed frames) can be
added without touching the engine or the compositor.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from livejpp.media import dxv, hap
from livejpp.media.decode import DecodedFrames, MediaError
from livejpp.media.hap import CompressedPicture, HapFrames, Unpackable, texture_size

log = logging.getLogger("livejpp")

# planar YUV formats the compositor takes as they are: name -> (chroma subsampling x, y, bits)
PLANAR = {
    "yuv420p": (2, 2, 8),
    "yuvj420p": (2, 2, 8),
    "yuv422p": (2, 1, 8),
    "yuvj422p": (2, 1, 8),
    "yuv444p": (1, 1, 8),
    "yuvj444p": (1, 1, 8),
    "yuv420p10le": (2, 2, 10),
    "yuv422p10le": (2, 1, 10),
    "yuv444p10le": (1, 1, 10),
    "yuv420p12le": (2, 2, 12),
    "yuv422p12le": (2, 1, 12),
    "yuv444p12le": (1, 1, 12),
}
BT709, BT601 = (0.2126, 0.0722), (0.299, 0.114)  # (Kr, Kb)
#: Codecs of DXT blocks, handed to the GL as they are: each one's frame parser and name (for its one line)
BLOCK_CODECS = {"hap": (hap.parse_frame, "HAP"), "dxv": (dxv.parse_frame, "DXV")}
SAID: set[tuple[str, str]] = set()  # (file, problem) said once: a file's clips open many readers over a show


@dataclass(frozen=True)
class Planes:
    """A decoded picture as the GPU takes it: Y, U, V at their native sizes (uint8, or uint16 holding
    `bits`-bit samples), and how to turn them into RGB. The shader converts, scales and crops."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bits: int
    matrix: tuple[float, float]  # (Kr, Kb): BT709 or BT601
    full_range: bool

    @property
    def width(self) -> int:
        return self.y.shape[1]

    @property
    def height(self) -> int:
        return self.y.shape[0]

    def yuv_to_rgb(self) -> tuple[np.ndarray, np.ndarray]:
        """(M, offset) with rgb = M @ sample + offset, the sample normalised as GL reads the texture
        (code / 255 for 8 bits, code / 65535 for 16-bit words), range and matrix folded in."""
        kr, kb = self.matrix
        kg = 1 - kr - kb
        unit = 2 ** (self.bits - 8)
        top = 255.0 if self.bits == 8 else 65535.0
        if self.full_range:
            scale = np.array([top / (2**self.bits - 1)] * 3)
            offset = np.array([0.0, -(2 ** (self.bits - 1)), -(2 ** (self.bits - 1))]) / (2**self.bits - 1)
        else:
            scale = np.array([top / (219 * unit), top / (224 * unit), top / (224 * unit)])
            offset = np.array([-16 / 219, -128 / 224, -128 / 224])
        m = np.array(
            [
                [1.0, 0.0, 2 * (1 - kr)],
                [1.0, -2 * (1 - kb) * kb / kg, -2 * (1 - kr) * kr / kg],
                [1.0, 2 * (1 - kb), 0.0],
            ]
        )
        return m * scale[None, :], m @ offset


Picture = np.ndarray | Planes | CompressedPicture  # a layer's: RGB or RGBA at the output size, or as decoded


def fit_planes(planes: Planes, limit: int) -> Planes:
    """Planes no larger than `limit` on either side: every n-th sample kept (the GL cannot hold a larger
    texture; decimating keeps the show going at a little less sharpness)."""
    n = -(-max(planes.width, planes.height) // limit)
    y, u, v = (np.ascontiguousarray(plane[::n, ::n]) for plane in (planes.y, planes.u, planes.v))
    return replace(planes, y=y, u=u, v=v)


def planes_of(frame: av.VideoFrame, path: str = "", warned: set | None = None) -> Planes:
    """The frame's planes as views of its own buffers (no copy, no conversion); a format the compositor
    cannot take as planes (RGB, NV12, alpha, palette) is converted once to yuv444p, with one log line."""
    name = frame.format.name
    if name not in PLANAR:
        if warned is not None and (path, name) not in warned:
            warned.add((path, name))
            log.warning("%s: %s pictures are converted on the CPU (not planar YUV)", path, name)
        frame = frame.reformat(format="yuv444p")
        name = "yuv444p"
    sx, sy, bits = PLANAR[name]
    dtype = np.uint8 if bits == 8 else np.dtype("<u2")
    w, h = frame.width, frame.height
    sizes = ((w, h), (-(-w // sx), -(-h // sy)), (-(-w // sx), -(-h // sy)))
    arrays = []
    for plane, (pw, ph) in zip(frame.planes[:3], sizes, strict=True):
        stride = plane.line_size // dtype.itemsize if bits > 8 else plane.line_size
        arrays.append(np.frombuffer(plane, dtype).reshape(-1, stride)[:ph, :pw])
    spc = int(frame.colorspace)
    matrix = BT709 if spc == 1 else BT601 if spc in (5, 6) else (BT709 if h >= 720 else BT601)
    full = name.startswith("yuvj") or int(frame.color_range) == 2
    return Planes(*arrays, bits=bits, matrix=matrix, full_range=full)


def cover(width: int, height: int, out_w: int, out_h: int) -> tuple[int, int, int, int]:
    """Scale (w, h) to cover the output, then the crop offsets: (scaled w, scaled h, x0, y0)."""
    scale = max(out_w / width, out_h / height)
    sw, sh = max(out_w, int(np.ceil(width * scale))), max(out_h, int(np.ceil(height * scale)))
    sw, sh = sw + sw % 2, sh + sh % 2
    return sw, sh, (sw - out_w) // 2, (sh - out_h) // 2


def cover_rect(width: int, height: int, out_w: int, out_h: int) -> tuple[float, float, float, float]:
    """`cover` for the shader: the output's rectangle in the picture (x, y, w, h as fractions), the
    picture scaled to cover the output and centred; exact, without the CPU scaler's even sizes."""
    scale = max(out_w / width, out_h / height)
    w, h = out_w / (width * scale), out_h / (height * scale)
    return (1 - w) / 2, (1 - h) / 2, w, h


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
        self._planes: tuple[float, Planes] | None = None
        self._hap: HapFrames | None = None  # HAP and DXV clips: packets to the GPU as they are, opened on first use
        self._decode_blocks = False  # a DXV HQ clip: decoded by FFmpeg

    def close(self) -> None:
        self._container.close()
        if self._hap is not None:
            self._hap.close()

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

    def frame_at(self, t: float, rgba: bool = False) -> np.ndarray:
        """The picture shown at `t` seconds into the clip, RGB at the output size (scaled on the CPU); `rgba`:
        [h, w, 4] RGBA, as the live window takes it: swscale writes 4-byte pixels twice as fast as 3-byte
        ones (1080p to 720p: 3.3 against 7 ms), and a software GL's RGBA texture takes them with a copy
        (0.1 ms) where RGB is repacked (1.2 ms). The same picture to a level or two (rounding of its path)."""
        chosen = self._chosen(t)
        if self._out is not None and self._out[0] == (chosen[0], rgba):
            return self._out[1]
        frame = chosen[1]
        out_w, out_h = self.size
        sw, sh, x0, y0 = cover(frame.width, frame.height, out_w, out_h)
        rgb = self._scaler.reformat(frame, width=sw, height=sh, format="rgba" if rgba else "rgb24").to_ndarray()
        picture = np.ascontiguousarray(rgb[y0 : y0 + out_h, x0 : x0 + out_w])
        self._out = ((chosen[0], rgba), picture)
        return picture

    def planes_at(self, t: float, limit: int | None = None) -> Planes | CompressedPicture | np.ndarray:
        """The picture shown at `t` seconds into the clip, as the decoder made it: the GPU converts,
        scales and crops it (GLCompositor.upload), the CPU only decodes; HAP and DXV: the DXT blocks, not decoded.
        The same object while the frame is the same (the window uploads a picture once). A picture larger
        than `limit` (the GL's texture limit) is decimated, or for HAP decoded to RGB at the output size
        (frame_at), with one line for the file: the GL could not hold it."""
        codec = self._stream.codec_context.name
        if codec in BLOCK_CODECS and not self._decode_blocks:
            if self._hap is None:
                self._hap = HapFrames(self.path, self.base, *BLOCK_CODECS[codec])
            if limit is not None and max(texture_size(self._hap.width, self._hap.height)) > limit:
                self._too_large(self._hap.width, self._hap.height, limit, "decoded to RGB on the CPU")
                return self.frame_at(t)
            try:
                return self._hap.picture_at(t)
            except Unpackable as exc:  # DXV HQ: FFmpeg decodes it, as any other codec
                if (self.path, "unpackable") not in SAID:  # once a file: its clips open many readers over a show
                    SAID.add((self.path, "unpackable"))
                    log.info("%s: %s, decoded by FFmpeg (its blocks are not uploaded as they are)", self.path, exc)
                self._decode_blocks = True
                self._hap.close()
                self._hap = None
        chosen = self._chosen(t)
        if self._planes is not None and self._planes[0] == chosen[0]:
            return self._planes[1]
        planes = planes_of(chosen[1], self.path, SAID)
        if limit is not None and max(planes.width, planes.height) > limit:
            self._too_large(planes.width, planes.height, limit, "shown at a lower resolution")
            planes = fit_planes(planes, limit)
        self._planes = (chosen[0], planes)
        return planes

    def _too_large(self, width: int, height: int, limit: int, how: str) -> None:
        if (self.path, "too large") not in SAID:
            SAID.add((self.path, "too large"))
            log.warning(
                "%s: %dx%d pictures are larger than this GL draws (%d): %s", self.path, width, height, limit, how
            )

    def _chosen(self, t: float) -> tuple[float, av.VideoFrame]:
        """The latest frame at or before `t` seconds into the clip."""
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
        return chosen


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

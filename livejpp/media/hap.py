"""HAP video: frames the GPU takes as they are (DXT1 / DXT5 / scaled-YCoCg DXT5 blocks, Snappy-compressed).

The player demuxes packets with PyAV, undoes the Snappy stage here and hands the blocks to
`GLCompositor.upload` (glCompressedTexImage2D): no decoding, no colour conversion on the CPU. Every frame
is a keyframe, so seeking is free. The format, from the HAP spec (Vidvox/hap, HapVideoDRAFT.md):

- a section: 3-byte little-endian size + 1-byte type; size 0 means a 4-byte size follows (8-byte header);
- the frame's type: high nibble the second-stage compressor (0xA none, 0xB Snappy, 0xC "complex": chunks),
  low nibble the texture (0xB DXT1 RGB, 0xE DXT5 RGBA, 0xF scaled YCoCg DXT5 = HAP Q); 0x0D holds several
  such sections (HAP Q Alpha: colour, then alpha; the colour is shown);
- a complex section starts with a Decode Instructions Container (0x01) holding the chunks' compressors (0x02,
  one byte each), sizes (0x03, uint32 each) and optionally offsets (0x04, uint32, from the end of the
  container); the chunks, decompressed and joined, are the texture.

The encoder (`HapWriter`) is FFmpeg's HAP encoder in imageio-ffmpeg's binary (PyAV's FFmpeg has none).
"""

from __future__ import annotations

import logging
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cramjam
import numpy as np
from av.video.reformatter import VideoReformatter

from livejpp.media.clips import ClipEncoder
from livejpp.media.decode import MediaError

log = logging.getLogger("livejpp")

# texture nibble -> (our name, bytes per 4x4 block)
TEXTURES = {0xB: ("dxt1", 8), 0xE: ("dxt5", 16), 0xF: ("ycocg_dxt5", 16)}
NONE, SNAPPY, COMPLEX = 0xA, 0xB, 0xC


class HapError(ValueError):
    """A HAP frame that cannot be read: damaged or of a kind this player does not show."""


class Unpackable(HapError):
    """A frame of a kind whose blocks are not unpacked here (DXV HQ): FFmpeg decodes the clip instead."""


@dataclass(frozen=True)
class CompressedPicture:
    """A picture as DXT/BC blocks, top block row first: `format` dxt1, dxt5 or ycocg_dxt5 (HAP Q);
    `width` x `height` the picture, the blocks covering it rounded up to 4 each way."""

    format: str
    width: int
    height: int
    data: bytes | bytearray  # written once, by the parser

    @property
    def texture_size(self) -> tuple[int, int]:
        return texture_size(self.width, self.height)


def texture_size(width: int, height: int) -> tuple[int, int]:
    """The texture of a `width` x `height` picture's 4x4 blocks: both sides rounded up to 4 (what the GL holds)."""
    return -(-width // 4) * 4, -(-height // 4) * 4


def texture_bytes(fmt: str, width: int, height: int) -> int:
    block = 8 if fmt == "dxt1" else 16
    texture_width, texture_height = texture_size(width, height)
    return texture_width * texture_height // 16 * block


def _section(buf: memoryview, pos: int) -> tuple[int, int, int]:
    """(data start, data size, type) of the section at `pos`."""
    if pos + 4 > len(buf):
        raise HapError("truncated section header")
    size = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
    kind, start = buf[pos + 3], pos + 4
    if size == 0:
        if pos + 8 > len(buf):
            raise HapError("truncated section header")
        (size,) = struct.unpack_from("<I", buf, pos + 4)
        start = pos + 8
    if start + size > len(buf):
        raise HapError(f"section of {size} bytes runs past the frame's end")
    return start, size, kind


def _snappy(data: memoryview, out: memoryview) -> int:
    """Snappy data decompressed into `out` (no copies: a 1080p frame is 1 MB of blocks); its length."""
    try:
        if cramjam.snappy.decompress_raw_len(data) > len(out):
            raise HapError("a chunk holds more than the picture's blocks")
        return cramjam.snappy.decompress_raw_into(data, out)
    except HapError:
        raise
    except Exception as exc:  # cramjam raises its own DecompressionError for every damaged stream
        raise HapError(f"damaged Snappy data ({exc})") from exc


def _complex(buf: memoryview, out: memoryview) -> int:
    """The texture of a chunked section, decompressed into `out`: the instructions container, then the
    chunks; the bytes written."""
    start, size, kind = _section(buf, 0)
    if kind != 0x01:
        raise HapError(f"complex section without decode instructions (type 0x{kind:02x})")
    compressors, sizes, offsets = b"", (), None
    pos = start
    while pos < start + size:
        s, n, k = _section(buf, pos)
        if k == 0x02:
            compressors = bytes(buf[s : s + n])
        elif k == 0x03:
            sizes = struct.unpack_from(f"<{n // 4}I", buf, s)
        elif k == 0x04:
            offsets = struct.unpack_from(f"<{n // 4}I", buf, s)
        pos = s + n
    if not compressors or len(compressors) != len(sizes) or (offsets is not None and len(offsets) != len(sizes)):
        raise HapError("the chunk tables disagree")
    data = buf[start + size :]
    if offsets is None:
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    written = 0
    for compressor, offset, length in zip(compressors, offsets, sizes, strict=True):
        if offset + length > len(data):
            raise HapError("a chunk runs past the frame's end")
        chunk = data[offset : offset + length]
        if compressor == SNAPPY:
            written += _snappy(chunk, out[written:])
        elif compressor == NONE:
            if written + length > len(out):
                raise HapError("a chunk holds more than the picture's blocks")
            out[written : written + length] = chunk
            written += length
        else:
            raise HapError(f"unknown chunk compressor 0x{compressor:02x}")
    return written


def parse_frame(packet: bytes | av.Packet, width: int, height: int) -> CompressedPicture:
    """A HAP frame's blocks; HapError if it is damaged (sizes that do not add up, bad Snappy data)."""
    buf = memoryview(packet)
    start, size, kind = _section(buf, 0)
    if kind == 0x0D:  # several textures (HAP Q Alpha): the first is the colour
        start, size, kind = _section(buf, start)
    compressor, nibble = kind >> 4, kind & 0xF
    if nibble not in TEXTURES:
        raise HapError(f"texture type 0x{nibble:x} is not shown (DXT1, DXT5 and HAP Q are)")
    fmt = TEXTURES[nibble][0]
    body = buf[start : start + size]
    expected = texture_bytes(fmt, width, height)
    data = bytearray(expected)
    if compressor == NONE:
        written = len(body)
        if written == expected:
            data[:] = body
    elif compressor == SNAPPY:
        written = _snappy(body, memoryview(data))
    elif compressor == COMPLEX:
        written = _complex(body, memoryview(data))
    else:
        raise HapError(f"unknown compressor 0x{compressor:x}")
    if written != expected:
        raise HapError(f"{written} bytes of blocks, a {width}x{height} {fmt} picture has {expected}")
    return CompressedPicture(fmt, width, height, data)


def is_hap(stream: av.video.stream.VideoStream) -> bool:
    return stream.codec_context.name == "hap"


class HapFrames:
    """One HAP clip's pictures by time: packets demuxed (no decoder), blocks handed out as they are.
    A damaged frame is skipped with one line naming the file; the previous picture stays. `parse` and `kind`:
    another codec of DXT blocks (DXV: media/dxv.py); a clip whose first frame it cannot unpack raises
    (`Unpackable`: FFmpeg decodes the clip); after one that unpacked, such a frame is damage (a changed byte
    in a DXV frame's tag reads as DXV 2's LZF), skipped as any other."""

    def __init__(
        self,
        path: str | Path,
        base: float = 0.0,
        parse: Callable[[av.Packet, int, int], CompressedPicture] | None = None,
        kind: str = "HAP",
    ):
        self.path = str(path)
        self.base = base
        self._parse_frame = parse or parse_frame
        self._kind = kind
        try:
            self._container = av.open(self.path)
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(self.path, f"cannot play ({getattr(exc, 'strerror', None) or exc})") from exc
        self._stream = self._container.streams.video[0]
        self.width, self.height = self._stream.codec_context.width, self._stream.codec_context.height
        if self.width <= 0 or self.height <= 0:  # a damaged header: a 0x0 picture would reach the GL's arithmetic
            self._container.close()
            raise MediaError(self.path, f"cannot play (its pictures are {self.width}x{self.height})")
        start = self._stream.start_time
        self._origin = float(start * self._stream.time_base) if start is not None else 0.0
        self._packets = None
        self._current: tuple[float, CompressedPicture | None] | None = None
        self._next: tuple[float, av.Packet] | None = None
        self._warned = False
        self._unpacked = False  # a frame of this file has unpacked: Unpackable after it is damage

    def close(self) -> None:
        self._container.close()

    def _seek(self, t: float) -> None:
        target = int((self.base + t + self._origin) / self._stream.time_base)
        self._container.seek(max(target, 0), stream=self._stream, backward=True)
        self._packets = self._container.demux(self._stream)
        self._next = None

    def _read(self) -> bool:
        for packet in self._packets:
            if packet.size and packet.pts is not None:
                t = float(packet.pts * self._stream.time_base) - self._origin - self.base
                self._next = (t, packet)  # read in place: av.Packet is a buffer
                return True
        return False

    def picture_at(self, t: float) -> CompressedPicture:
        """The picture shown at `t` seconds into the clip (the latest frame at or before it)."""
        t = max(0.0, t)
        current = self._current
        if (
            self._packets is None
            or (current is not None and t < current[0] - 1e-6)
            or (self._next is not None and t > self._next[0] + 2.0)
        ):
            self._seek(t)
        chosen: tuple[float, av.Packet] | None = None
        while True:
            if self._next is None and not self._read():
                break
            if self._next[0] > t + 1e-6 and (chosen is not None or current is not None):
                break
            chosen, self._next = self._next, None
        if chosen is not None:
            self._current = (chosen[0], self._parse(chosen, current))
        if self._current is None or self._current[1] is None:
            raise MediaError(self.path, f"no readable {self._kind} picture at {t:.2f} s")
        return self._current[1]

    def _parse(
        self, chosen: tuple[float, av.Packet], current: tuple[float, CompressedPicture | None] | None
    ) -> CompressedPicture | None:
        """The chosen frame's blocks; a damaged one is skipped (one line for the file): the previous picture
        stays, or with none yet (the clip's first frame), the next good frame shows from this one's time."""
        while True:
            try:
                picture = self._parse_frame(chosen[1], self.width, self.height)
                self._unpacked = True
                return picture
            except HapError as exc:
                if isinstance(exc, Unpackable) and not self._unpacked:
                    raise  # the clip's own kind (DXV HQ): FFmpeg decodes it
                if not self._warned:
                    log.warning("%s: damaged %s frame at %.2f s skipped (%s)", self.path, self._kind, chosen[0], exc)
                    self._warned = True
            if current is not None or (self._next is None and not self._read()):
                return current[1] if current else None
            chosen, self._next = self._next, None


# --- encoding ---------------------------------------------------------------------------------------------


class HapWriter:
    """A .mov of HAP frames from RGB pictures, written by FFmpeg's own HAP encoder (the ffmpeg binary of
    imageio-ffmpeg: PyAV's FFmpeg has no HAP encoder). Measured at 1080p against etcpak DXT1 with this
    module's framing muxed by PyAV: the same CPU (16 ms a frame), half the error (mean 0.36 levels, not
    0.85), and HAP Q, which PyAV's muxer could not tag (it writes every 'hap' stream as Hap1)."""

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        rate: Fraction | int = 30,
        fmt: str = "dxt1",
        chunks: int = 1,
        threads: int = 1,
    ):
        import imageio_ffmpeg  # only `library build --codec hap` and the bench encode

        if width % 4 or height % 4:
            raise ValueError(f"HAP pictures are whole 4x4 blocks: {width}x{height} is not")
        self.path, self.width, self.height = str(path), width, height
        rate = Fraction(rate)
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
        command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(rate), "-i", "pipe:"]
        command += ["-c:v", "hap", "-format", {"dxt1": "hap", "dxt5": "hap_alpha", "ycocg_dxt5": "hap_q"}[fmt]]
        command += ["-chunks", str(chunks), "-threads", str(threads), "-f", "mov", self.path]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def add(self, rgb: np.ndarray) -> None:
        """One picture, uint8 RGB [height, width, 3], top row first."""
        try:
            self._process.stdin.write(np.ascontiguousarray(rgb, np.uint8).data)
        except BrokenPipeError:
            self.close()  # raises with FFmpeg's own words

    def close(self) -> None:
        _, err = self._process.communicate()
        if self._process.returncode:
            lines = err.decode(errors="replace").strip().splitlines() or ["no message"]
            raise MediaError(self.path, f"the HAP encoder failed ({lines[-1]})")

    def abort(self) -> None:
        self._process.kill()
        self._process.communicate()


class HapClipEncoder(ClipEncoder):
    """`library build --codec hap`: a playback clip as HAP (DXT1) in .mov, the source frames placed in
    constant-rate slots as ClipEncoder does; sides rounded down to whole 4x4 blocks."""

    def __init__(
        self, path: str, start: float, fps: Fraction, size: tuple[int, int], rotation: int = 0, threads: int = 1
    ):
        self.path, self.start, self.fps, self.rotation = path, start, fps, rotation
        self.width, self.height = size[0] // 4 * 4, size[1] // 4 * 4
        self._writer = HapWriter(path, self.width, self.height, rate=fps, threads=threads)
        self._scaler = VideoReformatter()
        self._held: np.ndarray | None = None
        self.frames = 0

    def _prepare(self, frame: av.VideoFrame) -> np.ndarray:
        if not self.rotation:
            return self._scaler.reformat(frame, width=self.width, height=self.height, format="rgb24").to_ndarray()
        turned = self.rotation in (90, 270)
        stored_w, stored_h = (self.height, self.width) if turned else (self.width, self.height)
        rgb = self._scaler.reformat(frame, width=stored_w, height=stored_h, format="rgb24").to_ndarray()
        return np.ascontiguousarray(np.rot90(rgb, k=self.rotation // 90))

    def _emit(self, frame: np.ndarray) -> None:
        self._writer.add(frame)
        self.frames += 1

    def _close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        self._writer.abort()
        Path(self.path).unlink(missing_ok=True)

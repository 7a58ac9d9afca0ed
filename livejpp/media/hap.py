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

The encoder (`HapWriter`) compresses RGB with etcpak (DXT1, DXT5) or its own YCoCg step (HAP Q) and muxes
the packets as a 'hap' stream with PyAV: FFmpeg in PyAV and in imageio-ffmpeg has no HAP encoder.
"""

from __future__ import annotations

import logging
import struct
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
NAME_TO_NIBBLE = {name: nibble for nibble, (name, _) in TEXTURES.items()}
NONE, SNAPPY, COMPLEX = 0xA, 0xB, 0xC


class HapError(ValueError):
    """A HAP frame that cannot be read: damaged or of a kind this player does not show."""


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
        return -(-self.width // 4) * 4, -(-self.height // 4) * 4


def texture_bytes(fmt: str, width: int, height: int) -> int:
    block = 8 if fmt == "dxt1" else 16
    return -(-width // 4) * -(-height // 4) * block


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
    A damaged frame is skipped with one line naming the file; the previous picture stays."""

    def __init__(self, path: str | Path, base: float = 0.0):
        self.path = str(path)
        self.base = base
        try:
            self._container = av.open(self.path)
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(self.path, f"cannot play ({getattr(exc, 'strerror', None) or exc})") from exc
        self._stream = self._container.streams.video[0]
        self.width, self.height = self._stream.codec_context.width, self._stream.codec_context.height
        start = self._stream.start_time
        self._origin = float(start * self._stream.time_base) if start is not None else 0.0
        self._packets = None
        self._current: tuple[float, CompressedPicture | None] | None = None
        self._next: tuple[float, av.Packet] | None = None
        self._warned = False

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
            try:
                self._current = (chosen[0], parse_frame(chosen[1], self.width, self.height))
            except HapError as exc:
                if not self._warned:
                    log.warning("livejpp: %s: damaged HAP frame at %.2f s skipped (%s)", self.path, chosen[0], exc)
                    self._warned = True
                self._current = (chosen[0], current[1] if current else None)
        if self._current is None or self._current[1] is None:
            raise MediaError(self.path, f"no readable HAP picture at {t:.2f} s")
        return self._current[1]


# --- encoding ---------------------------------------------------------------------------------------------


def _header(size: int, kind: int) -> bytes:
    if size < 1 << 24:
        return bytes((size & 0xFF, size >> 8 & 0xFF, size >> 16 & 0xFF, kind))
    return bytes((0, 0, 0, kind)) + struct.pack("<I", size)


def ycocg_scaled(rgba: np.ndarray) -> np.ndarray:
    """RGB -> the scaled YCoCg HAP Q stores in DXT5 (R Co, G Cg, B (scale - 1) * 8, A Y), the scale
    (1, 2 or 4) chosen per 4x4 block from its largest chroma: small chroma keeps more precision."""
    r, g, b = (rgba[..., k].astype(np.int32) for k in range(3))
    y = (r + 2 * g + b + 2) >> 2
    co, cg = (r - b + 1) >> 1, (-r + 2 * g - b + 2) >> 2
    h, w = y.shape
    biggest = np.maximum(np.abs(co), np.abs(cg)).reshape(h // 4, 4, w // 4, 4).max(axis=(1, 3))
    scale = np.where(biggest < 32, 4, np.where(biggest < 64, 2, 1))
    scale = np.repeat(np.repeat(scale, 4, axis=0), 4, axis=1)
    out = np.empty((h, w, 4), np.uint8)
    out[..., 0] = np.clip(co * scale + 128, 0, 255)
    out[..., 1] = np.clip(cg * scale + 128, 0, 255)
    out[..., 2] = (scale - 1) * 8
    out[..., 3] = np.clip(y, 0, 255)
    return out


def compress_blocks(rgb: np.ndarray, fmt: str) -> bytes:
    """uint8 RGB [h, w, 3] (sides multiples of 4) as DXT blocks with etcpak."""
    import etcpak  # imported here: only `library build --codec hap` and the bench encode

    h, w = rgb.shape[:2]
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = rgb, 255
    if fmt == "dxt1":
        return etcpak.compress_bc1(rgba, w, h)
    if fmt == "ycocg_dxt5":
        return etcpak.compress_bc3(ycocg_scaled(rgba), w, h)
    return etcpak.compress_bc3(rgba, w, h)


def frame_packet(blocks: bytes, fmt: str, chunks: int = 1) -> bytes:
    """One HAP frame: the blocks Snappy-compressed, in `chunks` chunks (a complex section) or one."""
    nibble = NAME_TO_NIBBLE[fmt]
    if chunks <= 1:
        body = bytes(cramjam.snappy.compress_raw(blocks))
        return _header(len(body), SNAPPY << 4 | nibble) + body
    step = -(-len(blocks) // chunks)
    parts = [bytes(cramjam.snappy.compress_raw(blocks[k : k + step])) for k in range(0, len(blocks), step)]
    tables = (
        _header(len(parts), 0x02)
        + bytes([SNAPPY] * len(parts))
        + _header(4 * len(parts), 0x03)
        + struct.pack(f"<{len(parts)}I", *(len(p) for p in parts))
    )
    body = _header(len(tables), 0x01) + tables + b"".join(parts)
    return _header(len(body), COMPLEX << 4 | nibble) + body


class HapWriter:
    """A .mov of HAP frames: RGB pictures in, DXT blocks with HAP framing muxed as a 'hap' stream."""

    def __init__(
        self, path: str | Path, width: int, height: int, rate: Fraction | int = 30, fmt: str = "dxt1", chunks: int = 1
    ):
        if fmt != "dxt1":
            # PyAV's muxer tags every 'hap' stream Hap1 (DXT1) and cannot be told otherwise
            raise ValueError(f"HAP files are written as DXT1 only, not {fmt}")
        if width % 4 or height % 4:
            raise ValueError(f"HAP pictures are whole 4x4 blocks: {width}x{height} is not")
        self.path, self.width, self.height, self.fmt, self.chunks = str(path), width, height, fmt, chunks
        self._container = av.open(self.path, "w", format="mov")
        # a stream without an encoder: PyAV writes the packets as they are (the mov muxer tags them Hap1)
        self._stream = self._container.add_mux_stream("hap", rate=rate, width=width, height=height)
        self._time_base = Fraction(1, 1) / Fraction(rate)  # the muxer picks the stream's own later
        self._n = 0

    def add(self, rgb: np.ndarray) -> None:
        packet = av.Packet(frame_packet(compress_blocks(rgb, self.fmt), self.fmt, self.chunks))
        packet.stream = self._stream
        packet.pts = packet.dts = self._n
        packet.time_base = self._time_base
        packet.duration = 1
        packet.is_keyframe = True
        self._container.mux(packet)
        self._n += 1

    def close(self) -> None:
        self._container.close()


class HapClipEncoder(ClipEncoder):
    """`library build --codec hap`: a playback clip as HAP (DXT1) in .mov, the source frames placed in
    constant-rate slots as ClipEncoder does; sides rounded down to whole 4x4 blocks."""

    def __init__(self, path: str, start: float, fps: Fraction, size: tuple[int, int], rotation: int = 0):
        self.path, self.start, self.fps, self.rotation = path, start, fps, rotation
        self.width, self.height = size[0] // 4 * 4, size[1] // 4 * 4
        self._writer = HapWriter(path, self.width, self.height, rate=fps)
        self._scaler = VideoReformatter()
        self._held: np.ndarray | None = None
        self._container = self._writer._container  # ClipEncoder.abort closes it
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

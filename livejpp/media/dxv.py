"""Resolume DXV: frames the GPU takes as they are. A DXV frame is DXT1 or DXT5 blocks packed by DXV's own
dictionary coder; undoing that coder here gives the blocks, which `GLCompositor.upload` takes as HAP's
(glCompressedTexImage2D): no texture decode, no colour conversion on the CPU.

The format, as FFmpeg's decoder (libavcodec/dxv.c) reads it:

- a 12-byte header: the texture's tag ("DXT1", "DXT5"; "YCG6" and "YG10" are DXV HQ), the version, a byte
  that says the blocks are stored as they are, one unused byte, and the size of the rest (little-endian);
  DXV 2's 4-byte header (a size and a type) is older still;
- the texture covers the picture rounded up to 4 pixels each way, 4x4 blocks row by row, as HAP's does
  (FFmpeg 7 and later; FFmpeg 6's decoder rounded up to 16, and FFmpeg had no DXV encoder before 7);
- the coder writes 32-bit words, steered by 2-bit opcodes taken from a 32-bit word read whenever the last
  one's 16 are spent. DXT1: per block (two words) an opcode copies the whole block from an earlier place, or,
  when 0, each word is copied or read as it is by its own opcode; back references are 2 words (opcode 1), a
  byte's worth (2) or a 16-bit value's worth (3) of blocks back. DXT5 (four words a block): its alpha half
  is a copy of the block before (opcode 1, then as many more as a count says), a copy from 2 + a 16-bit
  value blocks back (2), two words as they are (3), or a run of whole blocks copied from the one before (0);
  its colour half is coded as DXT1's, in units of four words. DXV's DXT5 colour is premultiplied by its
  alpha (FFmpeg decodes it as DXT4); the window draws no alpha, so such a clip shows as over black.

Undoing the coder is a loop over every word (130,000 blocks in a 1080p frame: 0.2-0.5 s in Python), compiled
with Numba (LLVM, the same loop at C speed: 0.7-2 ms, more for a detailed picture; it lets go of the GIL while it
runs). The first call compiles it, once per install: the result is cached beside this file. DXV HQ (YCoCg in two
textures) and DXV 2's LZF frames are decoded by FFmpeg instead (the player falls back: `Unpackable`).
"""

from __future__ import annotations

import struct

import numpy as np

from livejpp.media.hap import CompressedPicture, HapError, Unpackable, texture_bytes

_TAGS = {b"1TXD": "dxt1", b"5TXD": "dxt5"}  # the tag is a big-endian FOURCC read little-endian: stored reversed
_HQ_TAGS = {b"6GCY", b"01GY"}

_ERRORS = {-1: "the data ends before the picture does", -2: "a copy reaches back before the picture's start"}


def parse_frame(packet: bytes | memoryview, width: int, height: int) -> CompressedPicture:
    """A DXV frame's blocks (the picture rounded up to 4 each way, as HAP's); HapError if it is damaged,
    Unpackable if it is DXV HQ or DXV 2's LZF."""
    buf = memoryview(packet).cast("B")
    if len(buf) < 4:
        raise HapError("truncated DXV header")
    tag = bytes(buf[:4])
    if tag in _HQ_TAGS:
        raise Unpackable("DXV HQ (YCoCg)")
    if tag in _TAGS:
        if len(buf) < 12:
            raise HapError("truncated DXV header")
        fmt, stored, (size,), start = _TAGS[tag], bool(buf[6]), struct.unpack_from("<I", buf, 8), 12
    else:  # DXV 2: 24-bit size, then a type byte (0x80: stored, 0x40: DXT5, 0x20 or version 2: DXT1)
        size, kind, start = int.from_bytes(buf[:3], "little"), buf[3], 4
        if kind & 0x40:
            fmt = "dxt5"
        elif kind & 0x20 or (kind & 0x0F) == 2:
            fmt = "dxt1"
        else:
            raise HapError(f"not a DXV frame (header {tag.hex()})")
        stored = bool(kind & 0x80)
        if not stored:
            raise Unpackable("DXV 2 (LZF)")
    if size != len(buf) - start:
        raise HapError(f"the header says {size} bytes, the frame holds {len(buf) - start}")
    words = np.empty(texture_bytes(fmt, width, height) // 4, np.uint32)
    body = np.frombuffer(buf, np.uint8, offset=start)
    if stored:
        if len(body) < words.nbytes:
            raise HapError(f"{len(body)} bytes of blocks, a {width}x{height} {fmt} picture has {words.nbytes}")
        words.view(np.uint8)[:] = body[: words.nbytes]
    else:
        error = _unpack(fmt, body, words)
        if error:
            raise HapError(f"damaged DXV data ({_ERRORS[error]})")
    return CompressedPicture(fmt, width, height, memoryview(words).cast("B"))


def _unpack(fmt: str, body: np.ndarray, words: np.ndarray) -> int:
    from livejpp.media import dxv_coder  # compiled on first use (Numba), not when the player is imported

    return int(dxv_coder.unpack(body, words, fmt == "dxt5"))


def prepare() -> None:
    """Compile the coder now (about a second, once per install; then its cache loads in 0.3 s), so a show's first
    DXV clip does not hold the decoder thread's GIL for it: `Engine.warm_up` calls this before the window opens."""
    _unpack("dxt1", np.zeros(8, np.uint8), np.zeros(2, np.uint32))
    _unpack("dxt5", np.zeros(16, np.uint8), np.zeros(4, np.uint32))

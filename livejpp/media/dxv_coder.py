"""DXV's dictionary coder undone: 32-bit words of DXT blocks from the coded stream (see media/dxv.py for the
format). Compiled by Numba on first use and cached beside this file; `unpack` returns 0, or -1 where the
data ends before the texture does, -2 where a copy reaches back before the texture's start (a damaged frame).

One flat loop for both formats (DXT1's block and DXT5's colour half are coded alike), every value an int64: a
helper for that shared half (its state passed in a tuple, or in an array; inlined or not) made a 1080p frame
4.2-5.9 ms against 0.7-0.8 ms, and Numba turns a mix of signed and unsigned integers into floats."""

from __future__ import annotations

import numba
import numpy as np

_OK, _SHORT, _BEFORE_START = 0, -1, -2


@numba.njit(cache=True, nogil=True)
def _word(src: np.ndarray, at: int) -> int:
    """The little-endian 32-bit word at `at`."""
    return np.int64(src[at]) | np.int64(src[at + 1]) << 8 | np.int64(src[at + 2]) << 16 | np.int64(src[at + 3]) << 24


@numba.njit(cache=True, nogil=True)
def unpack(src: np.ndarray, out: np.ndarray, dxt5: bool) -> int:
    """DXT1 (two words a block) or DXT5 (four: alpha, then colour) blocks into `out` (uint32, the whole texture)
    from `src` (uint8).

    DXT1's block and DXT5's colour half: an opcode; non-zero, both words are copies from 1, 2 + a byte or
    0x102 + a 16-bit value blocks back; zero, each word has an opcode of its own: a copy from as far back, or
    the word as it is. DXT5's alpha half before it: a run of whole blocks each a copy of the one before (opcode
    0 and a count), a copy of the block before's alpha and as many more blocks' after it as a count says (1), a
    copy from 2 + a 16-bit value blocks back (2), or two words as they are (3)."""
    size, n, unit = src.size, out.size, 4 if dxt5 else 2
    if size < 4 * unit or n < unit:
        return _SHORT
    for k in range(unit):
        out[k] = _word(src, 4 * k)
    at, pos, bits, left, run = 4 * unit, unit, np.int64(0), 0, 0
    while pos + 2 <= n:
        if dxt5:
            if run:  # the alpha of the block before, again
                run -= 1
                out[pos], out[pos + 1] = out[pos - 4], out[pos - 3]
                pos += 2
            else:
                if left == 0:
                    if at + 4 > size:
                        return _SHORT
                    bits = _word(src, at)
                    at, left = at + 4, 16
                opcode, bits, left = bits & 3, bits >> 2, left - 1
                if opcode <= 1:  # a count: a byte, and where it is full, 16-bit values added while each is 0xFFFF
                    if at + 1 > size:
                        return _SHORT
                    count, at = np.int64(src[at]), at + 1
                    if count == 255:
                        while True:
                            if at + 2 > size:
                                return _SHORT
                            probe, at = np.int64(src[at]) | np.int64(src[at + 1]) << 8, at + 2
                            count += probe
                            if probe != 0xFFFF:
                                break
                    if opcode == 0:  # count + 1 whole blocks, each a copy of the one before
                        count += 1
                        while count and pos + 4 <= n:
                            for k in range(4):
                                out[pos + k] = out[pos + k - 4]
                            pos += 4
                            count -= 1
                        continue
                    run = count
                    out[pos], out[pos + 1] = out[pos - 4], out[pos - 3]
                elif opcode == 2:
                    if at + 2 > size:
                        return _SHORT
                    back, at = 8 + 4 * (np.int64(src[at]) | np.int64(src[at + 1]) << 8), at + 2
                    if back > pos:
                        return _BEFORE_START
                    out[pos], out[pos + 1] = out[pos - back], out[pos + 1 - back]
                else:
                    if at + 8 > size:
                        return _SHORT
                    for k in range(2):
                        a = at + 4 * k
                        out[pos + k] = _word(src, a)
                    at += 8
                pos += 2
            if pos + 2 > n:
                return _SHORT
        whole = True  # DXT1's block, DXT5's colour half: its opcode first, then (when it is 0) one for each word
        words = 2
        while words:
            if left == 0:
                if at + 4 > size:
                    return _SHORT
                bits = _word(src, at)
                at, left = at + 4, 16
            opcode, bits, left = bits & 3, bits >> 2, left - 1
            if opcode == 0 and whole:
                whole = False
                continue
            if opcode == 0:
                if at + 4 > size:
                    return _SHORT
                out[pos] = _word(src, at)
                at += 4
                pos, words = pos + 1, words - 1
                continue
            if opcode == 1:
                back = unit
            elif opcode == 2:
                if at + 1 > size:
                    return _SHORT
                back, at = (np.int64(src[at]) + 2) * unit, at + 1
            else:
                if at + 2 > size:
                    return _SHORT
                back, at = ((np.int64(src[at]) | np.int64(src[at + 1]) << 8) + 0x102) * unit, at + 2
            if back > pos:
                return _BEFORE_START
            copies = 2 if whole else 1
            for _ in range(copies):
                out[pos] = out[pos - back]
                pos += 1
            words -= copies
    return _OK

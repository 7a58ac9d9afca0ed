"""DXV playback: Resolume's codec is played as HAP is, its DXT blocks handed to the GL as they are. The blocks
unpacked here are checked against FFmpeg's own DXV decoder: FFmpeg's picture of a coded frame is the same,
pixel for pixel, as its picture of a frame that stores our blocks as they are. DXT1 frames come from FFmpeg's
DXV encoder; DXT5 (which it cannot write) from a small encoder here that uses every opcode of the format."""

import logging
import os
import struct
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from livejpp.media import dxv, player
from livejpp.media.decode import MediaError
from livejpp.media.hap import CompressedPicture, HapError, HapFrames, Unpackable
from livejpp.media.player import ClipFrames, Planes, planes_of

MEDIA = Path(__file__).parent / "media"
FRAMES = 6


def ffmpeg_picture(packet: bytes, width: int, height: int) -> np.ndarray:
    """FFmpeg's DXV decoder's RGBA picture of one frame."""
    decoder = av.CodecContext.create("dxv", "r")
    decoder.width, decoder.height = width, height
    (frame,) = decoder.decode(av.Packet(packet))
    return frame.to_ndarray(format="rgba")


def stored(tag: bytes, blocks: bytes) -> bytes:
    """A DXV frame that stores `blocks` as they are (the header's third byte set): FFmpeg copies them."""
    return tag + bytes((4, 0, 1, 0)) + struct.pack("<I", len(blocks)) + blocks


def dxv_file(path: Path, width: int, height: int) -> Path:
    """The first frames of earth.mp4 as DXV (DXT1) by FFmpeg's encoder."""
    with av.open(str(MEDIA / "footage/earth.mp4")) as src, av.open(str(path), "w") as out:
        stream = out.add_stream("dxv", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgba"
        for n, frame in enumerate(src.decode(video=0)):
            picture = frame.reformat(width=width, height=height, format="rgba")
            picture.pts, picture.time_base = n, Fraction(1, 25)
            for packet in stream.encode(picture):
                out.mux(packet)
            if n + 1 == FRAMES:
                break
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def earth_dxv(tmp_path_factory):
    return dxv_file(tmp_path_factory.mktemp("dxv") / "earth.mov", 480, 268)


def _packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


@pytest.mark.parametrize("size", [(480, 268), (330, 190)])
def test_dxt1_blocks_draw_as_ffmpeg_decodes_the_frame(size, tmp_path):
    """330x190: sides that are not whole 16s (the texture is the picture rounded up to 4, as HAP's)."""
    width, height = size
    packets = _packets(dxv_file(tmp_path / "earth.mov", width, height))
    assert len(packets) == FRAMES and all(p[:4] == b"1TXD" for p in packets)
    shown = []
    for packet in packets:
        picture = dxv.parse_frame(packet, width, height)
        assert picture.format == "dxt1" and len(picture.data) == (width + 3) // 4 * ((height + 3) // 4) * 8
        expected = ffmpeg_picture(packet, width, height)
        assert expected[..., :3].std() > 20  # a real picture
        assert np.array_equal(ffmpeg_picture(stored(b"1TXD", bytes(picture.data)), width, height), expected)
        shown.append(bytes(picture.data))
    assert len(set(shown)) == FRAMES  # the footage moves: each frame its own blocks


class Dxt5Writer:
    """DXV's DXT5 coding of given blocks (uint32 words, 4 a block), greedy, counting the opcodes it uses."""

    def __init__(self, words: np.ndarray):
        self.blocks = [tuple(int(w) for w in block) for block in words.reshape(-1, 4)]
        self.out = bytearray(struct.pack("<4I", *self.blocks[0]))
        self._word_at, self._used = 0, 16
        self.used: Counter[str] = Counter()

    def _op(self, code: int, name: str) -> None:
        if self._used == 16:  # the decoder reads an opcodes word where it needs one: here
            self._word_at, self._used = len(self.out), 0
            self.out += bytes(4)
        (word,) = struct.unpack_from("<I", self.out, self._word_at)
        struct.pack_into("<I", self.out, self._word_at, word | code << (2 * self._used))
        self._used += 1
        self.used[name] += 1

    def _count(self, count: int, name: str) -> None:
        self.out.append(min(count, 255))
        if count >= 255:
            self.used[name + " (long count)"] += 1
            rest = count - 255
            while rest >= 0xFFFF:
                self.out += struct.pack("<H", 0xFFFF)
                rest -= 0xFFFF
            self.out += struct.pack("<H", rest)

    def _back(self, i: int, match) -> int | None:
        return next((i - j for j in range(i - 1, -1, -1) if match(self.blocks[j])), None)

    def encode(self) -> bytes:
        b, i, run = self.blocks, 1, 0
        while i < len(b):
            if run:
                run -= 1
            else:
                same = 0
                while i + same < len(b) and b[i + same] == b[i + same - 1]:
                    same += 1
                if same:
                    self._op(0, "blocks copied")
                    self._count(same - 1, "blocks copied")
                    i += same
                    continue
                if b[i][:2] == b[i - 1][:2]:
                    run = 0
                    while i + 1 + run < len(b) and b[i + 1 + run][:2] == b[i + run][:2]:
                        run += 1
                    self._op(1, "alpha run")
                    self._count(run, "alpha run")
                else:
                    back = self._back(i, lambda block, alpha=b[i][:2]: block[:2] == alpha)
                    if back is not None and back >= 2:
                        self._op(2, "alpha from back")
                        self.out += struct.pack("<H", back - 2)
                    else:
                        self._op(3, "alpha as it is")
                        self.out += struct.pack("<2I", *b[i][:2])
            back = self._back(i, lambda block, colour=b[i][2:]: block[2:] == colour)
            if back is not None and back - 0x102 <= 0xFFFF:
                self._reference(back, "colour")
            else:
                self._op(0, "colour word by word")
                for slot in (2, 3):
                    back = self._back(i, lambda block, word=b[i][slot], slot=slot: block[slot] == word)
                    if back is None:
                        self._op(0, "word as it is")
                        self.out += struct.pack("<I", b[i][slot])
                    else:
                        self._reference(back, "word")
            i += 1
        return bytes(self.out)

    def _reference(self, back: int, name: str) -> None:
        if back == 1:
            self._op(1, f"{name} from the block before")
        elif back - 2 <= 255:
            self._op(2, f"{name} from a byte back")
            self.out.append(back - 2)
        else:
            self._op(3, f"{name} from a 16-bit value back")
            self.out += struct.pack("<H", back - 0x102)


def test_dxt5_frames_coded_with_every_opcode_unpack_to_their_blocks():
    width, height = 256, 128  # 2,048 blocks
    rng = np.random.default_rng(5)
    alphas = rng.integers(0, 2**32, (6, 2), dtype=np.uint64)
    colours = rng.integers(0, 2**32, (60, 2), dtype=np.uint64)
    n = width * height // 16
    words = np.empty((n, 4), np.uint64)
    words[:, :2] = alphas[rng.integers(0, len(alphas), n)]
    words[:, 2] = colours[rng.integers(0, len(colours), n), 0]
    words[:, 3] = colours[rng.integers(0, len(colours), n), 1]
    words[100:400] = words[100]  # 299 blocks copied (a long count)
    words[500:800, :2] = words[500, :2]  # an alpha run of 299 more (a long count)
    words[1000:1040, 2:] = rng.integers(0, 2**32, (40, 2), dtype=np.uint64)  # colours seen nowhere else
    words = words.astype(np.uint32).reshape(-1)
    writer = Dxt5Writer(words)
    body = writer.encode()
    assert set(writer.used) == {
        "blocks copied",
        "blocks copied (long count)",
        "alpha run",
        "alpha run (long count)",
        "alpha from back",
        "alpha as it is",
        "colour from the block before",
        "colour from a byte back",
        "colour from a 16-bit value back",
        "colour word by word",
        "word as it is",
        "word from the block before",
        "word from a byte back",
        "word from a 16-bit value back",
    }, writer.used
    packet = b"5TXD" + bytes((4, 0, 0, 0)) + struct.pack("<I", len(body)) + body
    picture = dxv.parse_frame(packet, width, height)
    assert picture.format == "dxt5" and bytes(picture.data) == words.tobytes()
    # FFmpeg reads the coded frame as the blocks stored: the writer (and so the test) speaks DXV as FFmpeg does
    expected = ffmpeg_picture(stored(b"5TXD", words.tobytes()), width, height)
    assert np.array_equal(ffmpeg_picture(packet, width, height), expected)


def test_damaged_and_unpackable_frames():
    picture = np.random.default_rng(2).integers(0, 2**32, 16, dtype=np.uint32)  # 16x8 DXT1: 8 blocks, 16 words
    # the first block, an opcodes word of zeros (each block's words as they are), the second block: then nothing
    body = struct.pack("<2I", *picture[:2]) + bytes(4) + struct.pack("<2I", *picture[2:4])
    good = dxv.parse_frame(stored(b"1TXD", picture.tobytes()), 16, 8)
    assert bytes(good.data) == picture.tobytes()
    with pytest.raises(HapError, match="the header says"):
        dxv.parse_frame(stored(b"1TXD", picture.tobytes())[:-3], 16, 8)
    coded = b"1TXD" + bytes(4) + struct.pack("<I", len(body)) + body
    with pytest.raises(HapError, match="ends before the picture"):
        dxv.parse_frame(coded, 16, 8)
    # the first block's opcode copies from 0x102 blocks back: before the picture's start
    reaching = struct.pack("<2I", 1, 2) + struct.pack("<I", 3) + struct.pack("<H", 5) + bytes(8)
    with pytest.raises(HapError, match="before the picture's start"):
        dxv.parse_frame(b"1TXD" + bytes(4) + struct.pack("<I", len(reaching)) + reaching, 16, 8)
    with pytest.raises(Unpackable, match="HQ"):
        dxv.parse_frame(b"6GCY" + bytes(12), 16, 8)
    with pytest.raises(HapError, match="not a DXV frame"):
        dxv.parse_frame(b"\x10\x00\x00\x01" + bytes(16), 16, 8)


def test_the_player_hands_dxv_blocks_to_the_gl_and_skips_a_damaged_frame(earth_dxv, tmp_path, caplog):
    played = ClipFrames(earth_dxv, (320, 180))
    pictures = [played.planes_at(n / 25) for n in range(FRAMES)]
    assert all(isinstance(p, CompressedPicture) and p.format == "dxt1" for p in pictures)
    assert [bytes(p.data) for p in pictures] == [bytes(dxv.parse_frame(p, 480, 268).data) for p in _packets(earth_dxv)]
    played.close()
    damaged = tmp_path / "damaged.mov"
    data = bytearray(earth_dxv.read_bytes())
    with av.open(str(earth_dxv)) as container:
        where = [p.pos for p in container.demux(video=0) if p.size]
    for frame in (2, 4):  # the header's size no longer matches: two damaged frames, one line for the file
        data[where[frame] + 8] ^= 0x55
    damaged.write_bytes(bytes(data))
    reader = HapFrames(damaged, parse=dxv.parse_frame, kind="DXV")
    with caplog.at_level(logging.WARNING, logger="livejpp"):
        shown = [reader.picture_at(n / 25) for n in range(FRAMES)]
    lines = [r.getMessage() for r in caplog.records if "damaged DXV frame" in r.getMessage()]
    assert len(lines) == 1 and str(damaged) in lines[0], lines
    assert shown[2] is shown[1] and shown[4] is shown[3] and bytes(shown[5].data) != bytes(shown[3].data)
    reader.close()


def test_a_dxv_clip_whose_blocks_are_not_unpacked_is_decoded_by_ffmpeg(earth_dxv, monkeypatch):
    """DXV HQ (no encoder here writes it): its frames raise Unpackable, and the clip is decoded by FFmpeg."""

    def hq(packet, width, height):
        raise Unpackable("DXV HQ (YCoCg)")

    monkeypatch.setitem(player.BLOCK_CODECS, "dxv", (hq, "DXV"))
    played = ClipFrames(earth_dxv, (320, 180))
    pictures = [played.planes_at(n / 25) for n in (0, 3)]
    assert not any(isinstance(p, CompressedPicture) for p in pictures)
    with av.open(str(earth_dxv)) as container:
        decoded = [planes_of(frame) for frame in container.decode(video=0)]
    for picture, expected in zip(pictures, (decoded[0], decoded[3]), strict=True):
        assert isinstance(picture, Planes) and picture.y.shape == (268, 480)
        assert all(np.array_equal(getattr(picture, k), getattr(expected, k)) for k in "yuv")
    assert not np.array_equal(pictures[0].y, pictures[1].y)
    played.close()


def _changed(path: Path, out: Path, frames: dict[int, tuple[int, int]]) -> Path:
    """A copy of `path` with byte `at` of each frame n's packet XORed with `mask` ({n: (at, mask)})."""
    data = bytearray(path.read_bytes())
    with av.open(str(path)) as container:
        where = [p.pos for p in container.demux(video=0) if p.size]
    for frame, (at, mask) in frames.items():
        data[where[frame] + at] ^= mask
    out.write_bytes(bytes(data))
    return out


def test_a_damaged_tag_midway_is_a_skipped_frame_not_a_switch_to_ffmpeg(earth_dxv, tmp_path, caplog):
    """A changed byte in a frame's tag reads as DXV 2's LZF (Unpackable): after frames that unpacked, that is
    damage. The clip went on decoded by FFmpeg (planes converted on the CPU, 8x the CPU, a DXT5 clip's colour
    no longer premultiplied) for as long as its reader lived."""
    damaged = _changed(earth_dxv, tmp_path / "tag.mov", {3: (1, 0x01)})  # "1TXD" -> "1UXD"
    played = ClipFrames(damaged, (320, 180))
    with caplog.at_level(logging.INFO, logger="livejpp"):
        pictures = [played.planes_at(n / 25) for n in range(FRAMES)] + [played.planes_at(0.0)]
    assert all(isinstance(p, CompressedPicture) for p in pictures), [type(p).__name__ for p in pictures]
    assert pictures[3] is pictures[2] and bytes(pictures[4].data) != bytes(pictures[2].data)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "damaged DXV frame at 0.12 s" in lines[0] and str(damaged) in lines[0], lines
    played.close()


def test_a_dxv_clip_without_a_readable_frame_is_refused_naming_dxv(earth_dxv, tmp_path):
    damaged = _changed(earth_dxv, tmp_path / "all.mov", {n: (8, 0x55) for n in range(FRAMES)})  # sizes all wrong
    played = ClipFrames(damaged, (320, 180))
    with pytest.raises(MediaError, match="no readable DXV picture"):
        played.planes_at(0.0)
    played.close()


def test_a_dxv_file_whose_pictures_have_no_size_is_refused_not_handed_to_the_gl(earth_dxv, tmp_path):
    """A damaged sample description (width and height 0) with stored frames: every frame "unpacked" to a 0x0
    picture, which the GL's cover arithmetic divides by (ZeroDivisionError in GLCompositor.upload, which the
    window's draw does not catch)."""
    copy = tmp_path / "stored.mov"
    with av.open(str(earth_dxv)) as src, av.open(str(copy), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.size:
                blocks = stored(b"1TXD", bytes(dxv.parse_frame(packet, 480, 268).data))
                kept = av.Packet(blocks)
                kept.pts, kept.dts, kept.time_base, kept.stream = packet.pts, packet.dts, packet.time_base, stream
                out.mux(kept)
    data = bytearray(copy.read_bytes())
    # the visual sample entry after "stsd": version and count (8), size and format (8), 6 + 2 + 16 bytes, then
    # width and height (16-bit big-endian each)
    size_at = data.index(b"stsd") + 4 + 8 + 8 + 24
    assert struct.unpack_from(">2H", data, size_at) == (480, 268)
    data[size_at : size_at + 4] = bytes(4)
    (zero := tmp_path / "zero.mov").write_bytes(bytes(data))
    with av.open(str(zero)) as container:
        context = container.streams.video[0].codec_context
        assert (context.width, context.height) == (0, 0)  # what the player reads
    assert isinstance(ClipFrames(copy, (320, 180)).planes_at(0.0), CompressedPicture)  # the file before damage
    played = ClipFrames(zero, (320, 180))
    with pytest.raises(MediaError, match=r"zero.mov: cannot play \(its pictures are 0x0\)"):
        played.planes_at(0.0)
    played.close()


GL_CODE = r"""
import sys
import numpy as np
from livejpp.media.hap import HapFrames
from livejpp.media.dxv import parse_frame
from livejpp.render.gl import offscreen
path, out = sys.argv[1:3]
expected = np.load(out + "/ffmpeg.npy")
window, gl = offscreen(480, 268)
reader = HapFrames(path, parse=parse_frame, kind="DXV")
for n in (0, 5):
    gl.upload(1, np.ascontiguousarray(expected[n][..., :3]))
    gl.draw(1.0)
    np.save(f"{out}/rgb_{n}.npy", gl.read_pixels())
    gl.upload(1, reader.picture_at(n / 25))
    gl.draw(1.0)
    np.save(f"{out}/blocks_{n}.npy", gl.read_pixels())
window.close()
"""


def test_dxv_blocks_draw_in_the_gl_as_ffmpeg_decodes_them(earth_dxv, tmp_path):
    """A real GL (headless EGL) samples the blocks: its picture is FFmpeg's decode of the same frame drawn as RGB."""
    np.save(tmp_path / "ffmpeg.npy", np.stack([ffmpeg_picture(p, 480, 268) for p in _packets(earth_dxv)]))
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    command = [sys.executable, "-c", GL_CODE, str(earth_dxv), str(tmp_path)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    for n in (0, 5):
        rgb, blocks = (np.load(tmp_path / f"{kind}_{n}.npy").astype(int) for kind in ("rgb", "blocks"))
        assert rgb.std() > 20  # a real picture on both sides, not black
        # the same DXT1 blocks decoded by llvmpipe and by FFmpeg (their rounding of the 1/3 and 2/3 colours may
        # differ by a level or two); upside down the picture is 4.9 levels off on average, a block row off 3.3
        assert np.abs(blocks - rgb).mean() < 0.5 and np.abs(blocks - rgb).max() <= 4, n  # measured 0.07 and 2
    assert np.abs(np.load(tmp_path / "blocks_0.npy").astype(int) - np.load(tmp_path / "blocks_5.npy")).mean() > 1


def test_no_damage_to_a_frame_does_more_than_raise_one_clear_error(tmp_path):
    """The coder is compiled code without bounds checks of its own: 4,000 damaged frames (bytes changed, frames
    cut short) each unpack or raise HapError; none reads or writes outside its arrays (that would crash the show)."""
    rng = np.random.default_rng(0)
    dxt1 = _packets(dxv_file(tmp_path / "small.mov", 128, 64))[0]
    words = rng.integers(0, 2**32, 128 * 64 // 4, dtype=np.uint64).astype(np.uint32)
    words.reshape(-1, 4)[10:40] = words.reshape(-1, 4)[10]
    body = Dxt5Writer(words).encode()
    dxt5 = b"5TXD" + bytes((4, 0, 0, 0)) + struct.pack("<I", len(body)) + body
    outcomes = Counter()
    for packet in (dxt1, dxt5):
        for _ in range(2000):
            damaged = bytearray(packet)
            for _ in range(rng.integers(1, 8)):
                damaged[rng.integers(12, len(damaged))] = rng.integers(0, 256)
            if rng.random() < 0.3:  # cut short, the header's size told
                damaged = damaged[: rng.integers(12, len(damaged))]
                damaged[8:12] = struct.pack("<I", len(damaged) - 12)
            try:
                picture = dxv.parse_frame(bytes(damaged), 128, 64)
                assert len(picture.data) == len(words.tobytes()) // (2 if packet is dxt1 else 1)
                outcomes["shown"] += 1
            except HapError:
                outcomes["refused"] += 1
    assert outcomes["shown"] > 500 and outcomes["refused"] > 500, outcomes  # both kinds of damage were met


@pytest.mark.skipif(os.environ.get("NUMBA_BOUNDSCHECK") == "1", reason="this is the run with the checks")
def test_the_damaged_frames_stay_inside_their_arrays_under_numbas_bounds_checks(tmp_path):
    """The same damaged frames, the coder compiled with Numba's bounds checks (an access outside an array raises
    IndexError instead of reading memory that happens to be there): an out-of-bounds read fails this test even
    where it would not crash. Its own compile cache, so the checked build never replaces the shipped one."""
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    test = f"{__file__}::test_no_damage_to_a_frame_does_more_than_raise_one_clear_error"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test, "--basetemp", str(tmp_path / "t")]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]


def test_a_block_texture_over_the_gl_limit_is_decoded_to_rgb_not_left_blank(tmp_path):
    """330x190 is held as a 332x192 texture of blocks: a GL limit of 331 cannot take it (GLCompositor refuses it
    and the layer stays blank), so the player decodes that clip to RGB at the output size instead."""
    played = ClipFrames(dxv_file(tmp_path / "odd.mov", 330, 190), (320, 180))
    assert isinstance(played.planes_at(0.0, limit=332), CompressedPicture)
    picture = played.planes_at(0.0, limit=331)
    assert isinstance(picture, np.ndarray) and picture.shape == (180, 320, 3) and picture.std() > 20
    played.close()

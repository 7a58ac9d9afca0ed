"""HAP playback: a HAP file made from the bundled footage demuxes without a decoder, its DXT blocks go to the
GPU as they are (glCompressedTexImage2D) and draw as the H.264 decode of the same frames does; a damaged
chunk skips that frame with one line and the show goes on; HAP Q's scaled YCoCg converts in the shader."""

import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import av
import cramjam
import numpy as np
import pytest

from livejpp.media.hap import HapError, HapFrames, HapWriter, parse_frame

FRAMES = 8
MEDIA = Path(__file__).parent / "media"


def earth_as(path, fmt: str, chunks: int):
    """The first frames of earth.mp4 (480x270 H.264) as HAP (480x268: whole 4x4 blocks) by FFmpeg's encoder."""
    with av.open(str(MEDIA / "footage/earth.mp4")) as src:
        writer = HapWriter(path, 480, 268, rate=src.streams.video[0].average_rate, fmt=fmt, chunks=chunks)
        for n, frame in enumerate(src.decode(video=0)):
            writer.add(frame.to_ndarray(format="rgb24")[:268])
            if n + 1 == FRAMES:
                break
        writer.close()
    return path


@pytest.fixture(scope="module")
def earth_hap(tmp_path_factory):
    """HAP (DXT1) in 4 chunks: "complex" sections with chunk tables."""
    return earth_as(tmp_path_factory.mktemp("hap") / "earth.mov", "dxt1", 4)


@pytest.fixture(scope="module")
def earth_hap_q(tmp_path_factory):
    """HAP Q (scaled YCoCg in DXT5), one Snappy section a frame."""
    return earth_as(tmp_path_factory.mktemp("hapq") / "earth_q.mov", "ycocg_dxt5", 1)


CODE = r"""
import sys
from dataclasses import replace
import av
import numpy as np
from livejpp.media.hap import HapFrames
from livejpp.render.gl import offscreen
from livejpp.media.player import planes_of
hap, hap_q, media, out = sys.argv[1:5]
window, gl = offscreen(320, 180)
reader, reader_q = HapFrames(hap), HapFrames(hap_q)
with av.open(media + "/footage/earth.mp4") as src:
    for n, frame in enumerate(src.decode(video=0)):
        if n in (0, 4, 7):
            planes = planes_of(frame)  # the H.264 decode, cut to the HAP's 268 lines
            gl.upload(1, replace(planes, y=planes.y[:268], u=planes.u[:134], v=planes.v[:134]))
            gl.draw(1.0)
            np.save(f"{out}/h264_{n}.npy", gl.read_pixels())
            gl.upload(1, reader.picture_at(frame.time))
            gl.draw(1.0)
            np.save(f"{out}/hap_{n}.npy", gl.read_pixels())
            gl.upload(1, reader_q.picture_at(frame.time))
            gl.draw(1.0)
            np.save(f"{out}/hapq_{n}.npy", gl.read_pixels())
            if n == 7:
                break
window.close()
"""


def test_hap_draws_as_the_h264_decode_of_the_same_frames(earth_hap, earth_hap_q, media, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    run = subprocess.run(
        [sys.executable, "-c", CODE, str(earth_hap), str(earth_hap_q), str(media), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    for n in (0, 4, 7):
        h264, hap = (np.load(tmp_path / f"{kind}_{n}.npy").astype(int) for kind in ("h264", "hap"))
        assert h264.std() > 20  # a real picture, not black on both sides
        # DXT1 keeps two RGB565 colours a 4x4 block and 2-bit weights between them: 565 alone is up to 4
        # levels off (5 bits: steps of 8.2), a block's detail more; the same bilinear scaling on both sides.
        # Measured 0.65 (HAP Q 0.5) on this smooth footage; the same picture upside down is 5.3 off: hence 3
        assert np.abs(hap - h264).mean() < 3, n
        # HAP Q: scaled YCoCg in DXT5, converted in the shader
        hapq = np.load(tmp_path / f"hapq_{n}.npy").astype(int)
        assert np.abs(hapq - h264).mean() < 3, n
    assert np.abs(np.load(tmp_path / "hap_0.npy").astype(int) - np.load(tmp_path / "hap_7.npy")).mean() > 1


def test_a_damaged_chunk_skips_that_frame_with_one_line(earth_hap, tmp_path, caplog):
    damaged = tmp_path / "damaged.mov"
    data = bytearray(earth_hap.read_bytes())
    with av.open(str(earth_hap)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    for frame in (3, 5):  # two damaged frames: still one line for the file
        pos, size = packets[frame]
        data[pos + size // 2 : pos + size // 2 + 64] = b"\xff" * 64  # inside the chunks, past the tables
    damaged.write_bytes(bytes(data))
    reader = HapFrames(damaged)
    with caplog.at_level(logging.WARNING, logger="livejpp"):
        shown = [reader.picture_at(n / 30) for n in range(FRAMES)]
    lines = [r.getMessage() for r in caplog.records if "damaged HAP frame" in r.getMessage()]
    assert len(lines) == 1 and str(damaged) in lines[0], lines
    assert shown[3] is shown[2] and shown[5] is shown[4]  # the previous picture stays
    assert shown[6].data != shown[4].data  # and the show goes on
    assert all(not r.exc_info for r in caplog.records)


def section(kind: int, data: bytes) -> bytes:
    return bytes((len(data) & 0xFF, len(data) >> 8 & 0xFF, len(data) >> 16, kind)) + data


def test_section_headers_and_damage():
    blocks = np.random.default_rng(1).integers(0, 256, 6 * 8, dtype=np.uint8).tobytes()  # 12x8 DXT1: 6 blocks
    # 8-byte header (size 0 in the first 3 bytes), no second-stage compressor
    long = bytes((0, 0, 0, 0xAB)) + struct.pack("<I", len(blocks)) + blocks
    assert parse_frame(long, 12, 8).data == blocks
    # chunked, with an offset table: one chunk stored, one Snappy-compressed, written in the other order
    first, second = blocks[:16], bytes(cramjam.snappy.compress_raw(blocks[16:]))
    tables = section(0x02, bytes((0x0A, 0x0B))) + section(0x03, struct.pack("<2I", 16, len(second)))
    tables += section(0x04, struct.pack("<2I", len(second), 0))
    chunked = section(0xCB, section(0x01, tables) + second + first)
    assert parse_frame(chunked, 12, 8).data == blocks
    with pytest.raises(HapError, match="bytes of blocks"):
        parse_frame(section(0xAB, blocks[:-8]), 12, 8)
    with pytest.raises(HapError, match="past the frame"):
        parse_frame(chunked[:-5], 12, 8)
    with pytest.raises(HapError, match="Snappy"):
        parse_frame(section(0xBB, b"\xff" * 40), 12, 8)


def test_library_build_codec_hap_writes_clips_the_player_uploads_as_blocks(media, tmp_path):
    import shutil
    import sqlite3

    from livejpp.media.hap import CompressedPicture
    from livejpp.media.player import ClipFrames

    footage = tmp_path / "in"
    footage.mkdir()
    shutil.copy(media / "footage/mdn_bug.mp4", footage)
    lib = tmp_path / "lib"
    run = subprocess.run(
        [sys.executable, "-m", "livejpp", "library", "build", str(footage), "--out", str(lib), "--codec", "hap", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(lib / "library.sqlite") as db:
        (playback,) = db.execute("SELECT playback FROM clips").fetchone()
        (settings,) = db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
    assert '"codec": "hap"' in settings  # the library says how its clips are stored
    assert playback.endswith(".mov")
    with av.open(str(lib / playback)) as clip:
        assert clip.streams.video[0].codec_context.name == "hap"
    reader = ClipFrames(lib / playback, (320, 180))
    picture = reader.planes_at(2.0)
    assert isinstance(picture, CompressedPicture) and (picture.width, picture.height) == (640, 360)
    with av.open(str(media / "footage/mdn_bug.mp4")) as src:  # the right picture: the source's at 2 s
        source = next(f for f in src.decode(video=0) if f.time >= 2.0 - 1e-3).to_ndarray(format="rgb24")
    with av.open(str(lib / playback)) as clip:  # FFmpeg's own HAP decoder reads our framing too
        shown = next(f for f in clip.decode(video=0) if f.time >= 2.0 - 1e-3).to_ndarray(format="rgb24")
    assert np.abs(shown.astype(int) - source).mean() < 4
    reader.close()


def test_hap_q_alpha_shows_its_colour_texture():
    blocks = bytes(range(64))  # 8x8 DXT5: 4 blocks of 16 bytes
    colour = section(0xBF, bytes(cramjam.snappy.compress_raw(blocks)))
    alpha = section(0xA1, bytes(16))  # an RGTC1 alpha texture: not drawn
    picture = parse_frame(section(0x0D, colour + alpha), 8, 8)
    assert picture.format == "ycocg_dxt5" and picture.data == blocks


def damage_frames(source: Path, out: Path, frames: tuple[int, ...]) -> Path:
    """A copy of a HAP file with bytes inside the chunks of `frames` overwritten (a disk error, a cut copy)."""
    data = bytearray(source.read_bytes())
    with av.open(str(source)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    for frame in frames:
        pos, size = packets[frame]
        data[pos + size // 2 : pos + size // 2 + 64] = b"\xff" * 64  # inside the chunks, past the tables
    out.write_bytes(bytes(data))
    return out


def test_a_damaged_first_frame_shows_the_next_good_one_with_one_line(earth_hap, tmp_path, caplog):
    damaged = damage_frames(earth_hap, tmp_path / "first.mov", (0,))
    good = HapFrames(earth_hap)
    reader = HapFrames(damaged)
    with caplog.at_level(logging.WARNING, logger="livejpp"):
        first = reader.picture_at(0.0)  # raised MediaError "no readable HAP picture" before
        later = [reader.picture_at(n / 30) for n in range(1, FRAMES)]
    lines = [r.getMessage() for r in caplog.records if "damaged HAP frame" in r.getMessage()]
    assert len(lines) == 1 and str(damaged) in lines[0], lines
    assert first.data == good.picture_at(1 / 30).data  # the next good frame, from the first moment
    assert [p.data for p in later] == [good.picture_at(n / 30).data for n in range(1, FRAMES)]

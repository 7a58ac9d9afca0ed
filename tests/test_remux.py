"""Playback-ready sources are copied once into the library (no re-encode) and their clips play spans of the copy."""

from __future__ import annotations

import sqlite3
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from livejpp.library.build import build_library
from livejpp.library.check import check_clips
from livejpp.library.store import LibraryStore
from livejpp.library.worker import BuildSettings
from livejpp.media.hap import HapFrames, HapWriter
from livejpp.media.player import ClipFrames
from tests.synth import frame_picture, mux_audio, tone

FPS = 24
SECONDS = 20.0
SIZE = (320, 180)
READY = BuildSettings(clip_seconds=4.0, features="hand", playback_height=180)


def _moving_pictures(seconds: float):
    """A bar that sweeps across and a brightness that rises, as RGB pictures: pictures a few seconds apart differ
    everywhere."""
    w, h = SIZE
    for n in range(int(seconds * FPS)):
        img = frame_picture(w, h, int(200 * n / (seconds * FPS)))
        x = (n * 7) % (w - 20)
        img[:, x : x + 20] = (0, 255, 0)
        yield n, img


def _moving_video(path: Path, gop_seconds: float) -> Path:
    """H.264 as a camera or an editor writes it (B-frames, CABAC) with a keyframe every `gop_seconds`, of
    _moving_pictures."""
    w, h = SIZE
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        gop = str(int(gop_seconds * FPS))
        stream.options = {"preset": "veryfast", "g": gop, "keyint_min": gop, "sc_threshold": "0"}
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "mono"
        for n, img in _moving_pictures(SECONDS):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        mux_audio(out, audio, tone(440.0, SECONDS, 44100), 44100)
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("remux-sources")
    for name in ("ready", "long"):
        (folder / name).mkdir()
    return {
        "ready": _moving_video(folder / "ready" / "short_gop.mp4", 0.5),
        "long_gop": _moving_video(folder / "long" / "long_gop.mp4", 5.0),
    }


def _clips(lib: Path) -> list[tuple]:
    with sqlite3.connect(lib / "library.sqlite") as db:
        return db.execute("SELECT idx, start, end, playback, playback_start FROM clips ORDER BY idx").fetchall()


def _features(lib: Path) -> dict:
    with sqlite3.connect(lib / "library.sqlite") as db:
        sql = "SELECT c.idx || f.feature_set, f.data FROM features f JOIN clips c ON c.id = f.clip_id"
        return dict(db.execute(sql))


def _first_pictures(lib: Path) -> list[np.ndarray]:
    """Each clip's first picture as the player shows it, through the one place that says where it is."""
    with LibraryStore(lib, readonly=True) as store:
        records = sorted(store.clip_table().values(), key=lambda r: r.index)
        pictures = []
        for record in records:
            path, base, length = record.pictures(lib)
            frames = ClipFrames(path, SIZE, base, length)
            pictures.append(frames.frame_at(0.0).astype(np.int16))
            frames.close()
    return pictures


def test_ready_source_is_copied_once_and_clips_play_spans_of_it(sources, tmp_path):
    remuxed, encoded = tmp_path / "remuxed", tmp_path / "encoded"
    build_library([sources["ready"]], remuxed, READY, jobs=1, progress=False)
    build_library([sources["ready"]], encoded, BuildSettings(**{**READY.__dict__, "remux": False}), jobs=1,
                  progress=False)  # fmt: skip
    clips = _clips(remuxed)
    assert len(clips) == 5
    files = {playback for _, _, _, playback, _ in clips}
    assert len(files) == 1, files  # one copy for the whole video, not a file per clip
    (copy,) = files
    assert [f.relative_to(remuxed).as_posix() for f in (remuxed / "clips").rglob("*") if f.is_file()] == [copy]
    assert [round(s, 3) for *_, s in clips] == [round(start, 3) for _, start, *_ in clips] == [0, 4, 8, 12, 16]
    with av.open(str(remuxed / copy)) as c:
        assert c.streams.video[0].codec_context.name == "h264" and not c.streams.audio  # copied, sound left out
    assert len({p for *_, p, _ in _clips(encoded)}) == 5  # the forced re-encode: a file per clip

    copied, reencoded = _first_pictures(remuxed), _first_pictures(encoded)
    assert len(copied) == len(reencoded) == 5
    for a, b in zip(copied, reencoded, strict=True):
        assert np.abs(a - b).mean() < 1.5  # the same picture (two encodes differ by ~0.05; a frame off: ~5)
    for a, b in zip(copied, copied[1:], strict=False):
        assert np.abs(a - b).mean() > 20.0  # and different clips show different pictures

    assert _features(remuxed) == _features(encoded)  # the same features as the re-encoded build
    with LibraryStore(remuxed, readonly=True) as store:
        assert check_clips(store) == []  # `library info --check` opens each clip's span of the copy


def test_resumed_build_keeps_the_copy(sources, tmp_path):
    """A build killed after two clips (rows committed, the video partial) resumes: the missing clips point at the
    copy already in the library, which is not made again."""
    lib = tmp_path / "lib"
    build_library([sources["ready"]], lib, READY, jobs=1, progress=False)
    whole = _clips(lib)
    copy = lib / whole[0][3]
    inode = copy.stat().st_ino
    with sqlite3.connect(lib / "library.sqlite") as db:
        db.execute("DELETE FROM clips WHERE idx >= 2")
        db.execute("UPDATE videos SET status = 'partial'")
    report = build_library([sources["ready"]], lib, None, jobs=1, progress=False, create=False)
    assert report.videos_resumed == 1 and report.clips_added == 3 and report.copied == 0
    assert _clips(lib) == whole and copy.stat().st_ino == inode


def test_sources_not_ready_are_encoded_per_clip(sources, tmp_path):
    """A keyframe every 5 s (a cut's first picture would decode up to 5 s of frames), or a source twice the
    library's playback height: a playback file per clip, as before."""
    long_gop = build_library([sources["long_gop"]], tmp_path / "long", READY, jobs=1, progress=False)
    assert long_gop.clips_added == 5
    assert len({p for *_, p, _ in _clips(tmp_path / "long")}) == 5
    small = BuildSettings(**{**READY.__dict__, "playback_height": 90})
    build_library([sources["ready"]], tmp_path / "small", small, jobs=1, progress=False)
    clips = _clips(tmp_path / "small")
    assert len({p for *_, p, _ in clips}) == 5 and all(s in (None, 0) for *_, s in clips)
    with av.open(str(tmp_path / "small" / clips[0][3])) as c:
        assert c.streams.video[0].height == 90


def test_library_without_the_column_still_opens(sources, tmp_path, capsys):
    """A library written before playback copies (schema 1, no `playback_start`) reads, plays and takes new videos."""
    lib = tmp_path / "old"
    build_library([sources["long_gop"]], lib, READY, jobs=1, progress=False)
    with sqlite3.connect(lib / "library.sqlite") as db:
        db.execute("ALTER TABLE clips DROP COLUMN playback_start")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    old = _first_pictures(lib)  # read-only: nothing migrated
    assert len(old) == 5
    report = build_library([sources["ready"]], lib, None, jobs=1, progress=False, create=False)
    assert report.videos_added == 1 and report.clips_added == 5
    assert len(_first_pictures(lib)) == 10
    with sqlite3.connect(lib / "library.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"


@pytest.fixture(scope="module")
def gpu_sources(tmp_path_factory) -> dict[str, Path]:
    """A VJ's GPU-codec loops, 12 s each: HAP Q (scaled YCoCg in DXT5, by FFmpeg's encoder) and DXV (Resolume's
    codec, by FFmpeg's DXV encoder)."""
    folder = tmp_path_factory.mktemp("gpu-sources")
    hap_q = folder / "loop_hap_q.mov"
    writer = HapWriter(hap_q, *SIZE, rate=FPS, fmt="ycocg_dxt5")
    for _, img in _moving_pictures(12.0):
        writer.add(img)
    writer.close()
    dxv = folder / "loop_dxv.mov"
    with av.open(str(dxv), "w") as out:
        stream = out.add_stream("dxv", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "rgba"
        for n, img in _moving_pictures(12.0):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="rgba")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return {"hap": hap_q, "dxv": dxv}


def _packets(path: Path) -> tuple[str, list[bytes]]:
    with av.open(str(path)) as c:
        return c.streams.video[0].codec_context.codec_tag, [bytes(p) for p in c.demux(video=0) if p.size]


def test_gpu_codec_sources_are_copied_as_they_are_into_any_library(gpu_sources, tmp_path):
    """HAP Q and DXV sources are not encoded again, into an H.264 library or a HAP one: each is copied packet for
    packet (HAP Q keeps its tag, so other players read the copy as HAP Q too), and its clips play spans of the
    copy: HAP's and DXV's DXT blocks exactly as the source has them, DXV's pictures as FFmpeg decodes the source."""
    for codec in ("h264", "hap"):
        lib = tmp_path / codec
        settings = BuildSettings(**{**READY.__dict__, "codec": codec})
        report = build_library(list(gpu_sources.values()), lib, settings, jobs=1, progress=False)
        assert report.copied == 2 and report.clips_added == 6
        with LibraryStore(lib, readonly=True) as store:
            records = sorted(store.clip_table().values(), key=lambda r: (r.source, r.index))
            assert check_clips(store) == []
            assert store.video_codecs() == {"hap", "dxv"}  # a show prepares DXV's coder before its window opens
        copies = {record.source: lib / record.playback for record in records}
        assert sorted(p.name for p in copies.values()) == ["video.mov", "video.mov"]
        assert [f for f in (lib / "clips").rglob("*") if f.is_file() and f not in copies.values()] == []
        for source, copy in copies.items():
            assert _packets(Path(source)) == _packets(copy)  # as they are: the same packets, the same tag
        shown = []
        for record in records:
            path, base, length = record.pictures(lib)
            assert base == record.start and Path(path) == copies[record.source]
            played = ClipFrames(path, SIZE, base, length)
            for t in (0.0, 1.3, 3.9):
                if record.source == str(gpu_sources["hap"]):
                    blocks = played.planes_at(t)
                    source = HapFrames(record.source)
                    expected = source.picture_at(record.start + t)
                    source.close()
                    assert blocks.format == "ycocg_dxt5" and bytes(blocks.data) == bytes(expected.data)
                    shown.append(bytes(blocks.data))
                else:
                    source = ClipFrames(record.source, SIZE, record.start, length)
                    picture = played.frame_at(t)
                    assert np.array_equal(picture, source.frame_at(t))
                    blocks = played.planes_at(t)  # and to the GPU: its DXT blocks as the source's
                    assert blocks.format == "dxt1" and bytes(blocks.data) == bytes(source.planes_at(t).data)
                    source.close()
                    shown.append(picture.tobytes())
            played.close()
        assert len(set(shown)) == len(shown) == 18  # each moment its own picture: the spans are where they should be

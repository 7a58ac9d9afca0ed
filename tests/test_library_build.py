"""A real library from the project's real footage: clips, playback files, features, summary."""

import json
import sqlite3
import subprocess
import sys

import av
import numpy as np
import pytest

from livejpp.features import audio, visual
from livejpp.library.store import LibraryStore
from livejpp.media.decode import probe


def rows(lib, sql, *args):
    with sqlite3.connect(lib / "library.sqlite") as db:
        return db.execute(sql, args).fetchall()


def test_every_video_is_cut_into_clips(real_library, media):
    lib, report = real_library
    assert report.skipped == [] and report.videos_added == 8
    per_video = dict(
        rows(lib, "SELECT v.path, COUNT(c.id) FROM videos v JOIN clips c ON c.video_id = v.id GROUP BY v.id")
    )
    named = {p.split("/")[-1]: n for p, n in per_video.items()}
    # 30 s → 3 clips; 5.3 s and 7.6 s → one short clip each (≥ half a clip); 29.6 s → 2 + a 9.6 s tail
    assert named == {
        "big_buck_bunny_0_30.webm": 3,
        "bigbuckbunny_5s.mp4": 1,
        "sintel_clip.mp4": 1,
        "cityCC0.mpg": 1,
        "earth.mp4": 3,
        "mdn_bug.mp4": 1,
        "mdn_flower.mp4": 1,
        "tree.avi": 3,
    }
    ids = rows(
        lib,
        "SELECT video_id, idx, start, end FROM clips "
        "WHERE video_id = (SELECT id FROM videos WHERE path LIKE '%earth.mp4')",
    )
    assert [(i, s, round(e, 2)) for _, i, s, e in ids] == [(0, 0, 10), (1, 10, 20), (2, 20, 30)]
    assert len({v for v, *_ in ids}) == 1


def test_playback_clips_start_anywhere(real_library):
    lib, _ = real_library
    for path, start, end, fps, frames in rows(lib, "SELECT playback, start, end, fps, frames FROM clips"):
        with av.open(str(lib / path)) as c:
            stream = c.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert stream.height <= 720 and stream.width % 2 == 0 and stream.height % 2 == 0
            packets = [p for p in c.demux(stream) if p.size]
        times = sorted(float(p.pts * p.time_base) for p in packets)
        keys = sorted(float(p.pts * p.time_base) for p in packets if p.is_keyframe)
        assert len(packets) == frames == round((end - start) * fps)
        gaps = np.diff(times)
        assert np.allclose(gaps, 1 / fps, atol=1e-3), "constant frame rate"
        assert max(np.diff(keys + [times[-1]])) <= 1.0 + 1e-6, "a keyframe at least every second"


def test_720p_source_is_kept_and_smaller_sources_are_not_upscaled(real_library):
    lib, _ = real_library
    sizes = dict(
        (p.split("/")[-1], (w, h))
        for p, w, h in rows(lib, "SELECT v.path, c.width, c.height FROM clips c JOIN videos v ON v.id = c.video_id")
    )
    assert sizes["big_buck_bunny_0_30.webm"] == (1280, 720)
    assert sizes["tree.avi"] == (320, 240)
    assert sizes["earth.mp4"] == (480, 270)


def test_playback_clip_shows_the_source_frames(real_library, media):
    """tree.avi repeats frames by leaving them out (68 pictures for 444 frame slots): each slot of
    the constant-rate clip shows the latest source picture at or before its time."""
    lib, _ = real_library
    (path,) = rows(
        lib,
        "SELECT playback FROM clips c JOIN videos v ON v.id = c.video_id WHERE v.path LIKE '%tree.avi' AND c.idx = 1",
    )[0]
    with av.open(str(media / "footage" / "tree.avi")) as src:
        source = [(f.time, f.to_ndarray(format="rgb24").astype(int)) for f in src.decode(video=0)]
    with av.open(str(lib / path)) as clip:
        played = [(f.time, f.to_ndarray(format="rgb24").astype(int)) for f in clip.decode(video=0)]
    assert len(played) == 150
    changes = 0
    for t, picture in played:
        expected = [p for s, p in source if s <= 10.0 + t + 1e-3][-1]
        other = [p for s, p in source if s > 10.0 + t + 1e-3][:1]
        error = np.abs(picture - expected).mean()
        assert error < 6, f"frame at {t:.2f} s"  # same picture, after one lossy encode
        if other and np.abs(picture - other[0]).mean() > error + 1:
            changes += 1
    assert changes > 100  # the pictures really differ from their neighbours: the test can tell


def test_soundtracks_are_classified(real_library):
    lib, _ = real_library
    audio_of = {p.split("/")[-1]: set() for (p,) in rows(lib, "SELECT path FROM videos")}
    for path, status in rows(lib, "SELECT v.path, c.audio FROM clips c JOIN videos v ON v.id = c.video_id"):
        audio_of[path.split("/")[-1]].add(status)
    assert audio_of["big_buck_bunny_0_30.webm"] == {"ok"}
    assert audio_of["sintel_clip.mp4"] == {"ok"}
    assert audio_of["earth.mp4"] == {"silent"}  # a silent AAC track is not music
    assert audio_of["mdn_flower.mp4"] == {"silent"}
    assert audio_of["tree.avi"] == {"absent"}


def test_features_are_stored_per_second(real_library):
    lib, _ = real_library
    with LibraryStore(lib) as store:
        sets = store.feature_sets()
        assert sets["hand_audio"].dim == audio.DIM and sets["hand_visual"].dim == visual.DIM
        clips = {c.id: c for c in store.clips()}
        vis = store.features("hand_visual")
        aud = store.features("hand_audio")
        assert set(vis) == set(clips)
        assert set(aud) == {i for i, c in clips.items() if c.audio == "ok"}  # silent clips: no audio features
        for clip_id, x in vis.items():
            c = clips[clip_id]
            assert x.shape[0] == round(c.end - c.start) and np.isfinite(x).all()
        mean, std = store.normalisation("hand_visual")
        stacked = np.concatenate(list(vis.values()))
        assert np.allclose(mean, stacked.mean(axis=0), atol=1e-4)
        assert (std > 0).all()
        # the bright 3-D cartoon and the dim street scene differ where a viewer would say so
        bunny = next(x for i, x in vis.items() if "bunny_0_30" in clips[i].source and clips[i].index == 1)
        street = next(x for i, x in vis.items() if "cityCC0" in clips[i].source)
        bright = visual.NAMES.index("colourfulness")
        assert bunny[:, bright].mean() > street[:, bright].mean()


def test_info_prints_the_summary(real_library):
    lib, report = real_library
    out = subprocess.run(
        [sys.executable, "-m", "livejpp", "library", "info", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    assert "videos   8" in out
    assert "clips    14: 5 with music, 4 silent, 5 without audio" in out
    assert "hand_visual: visual, 28-d" in out and "per hour of footage" in out
    data = json.loads(
        subprocess.run(
            [sys.executable, "-m", "livejpp", "library", "info", str(lib), "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert data["clips"] == 14 and data["footage_hours"] == pytest.approx(report.seconds_added / 3600, rel=1e-6)


def test_probe_reads_display_size_rate_and_audio(media):
    info = probe(media / "footage" / "cityCC0.mpg")
    assert (info.width, info.height, float(info.fps), info.has_audio) == (720, 405, 25.0, False)
    assert info.start == pytest.approx(0.54)  # MPEG timestamps start late; clips count from here

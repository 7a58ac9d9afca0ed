"""`render` and `query` on real media: the pictures are the chosen clips, the sound is the song."""

import csv
import json
import subprocess
import sys
from fractions import Fraction

import av
import degrade
import numpy as np
import pytest
from synth import write_audio

from livejpp.engine.engine import EngineSettings
from livejpp.engine.music_video import render
from livejpp.library.build import build_library
from livejpp.media.compose import mix
from livejpp.media.decode import read_audio_file
from livejpp.media.player import ClipFrames, FramePool

SIZE, FPS = (320, 180), 15


def cli(*args):
    return subprocess.run([sys.executable, "-m", "livejpp", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def rendered(real_library, media, tmp_path_factory):
    lib, _ = real_library
    out = tmp_path_factory.mktemp("render") / "c64.mp4"
    result = render(media / "music" / "lmms_Skiessi-C64.ogg", lib, out, size=SIZE, fps=FPS, progress=False)
    return lib, result


def decode_video(path):
    with av.open(str(path)) as c:
        return [(f.time, f.to_ndarray(format="rgb24").astype(int)) for f in c.decode(video=0)]


def test_the_video_has_the_song_and_its_length(rendered, media):
    _, result = rendered
    with av.open(str(result.video)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, v.width, v.height, v.average_rate) == ("h264", 320, 180, FPS)
        assert a.codec_context.name == "aac" and a.rate == 48000
    assert result.frames == int(np.ceil(result.song_seconds * FPS))
    song = read_audio_file(media / "music" / "lmms_Skiessi-C64.ogg")
    muxed = read_audio_file(result.video)
    assert abs(len(muxed) - len(song)) < 0.01 * 22050
    n = min(len(song), len(muxed))
    assert np.corrcoef(song[:n], muxed[:n])[0, 1] > 0.95  # the song itself, sample-aligned (after AAC)


def test_each_frame_shows_its_cut_and_crossfades_mix(rendered):
    lib, result = rendered
    frames = decode_video(result.video)
    cuts = result.cuts
    assert cuts[0]["time"] == 0 and len(cuts) >= 3
    checked_plain = checked_mix = 0
    for i, cut in enumerate(cuts):
        end = cuts[i + 1]["time"] if i + 1 < len(cuts) else result.song_seconds
        reader = ClipFrames(lib / next(p for p in _playback(lib, cut["clip_id"])), SIZE)
        prev = None
        if i > 0:
            prev = ClipFrames(lib / next(p for p in _playback(lib, cuts[i - 1]["clip_id"])), SIZE)
        for t, picture in frames:
            if not cut["time"] <= t < end:
                continue
            expected = reader.frame_at((cut["offset"] + t - cut["time"]) % _length(lib, cut["clip_id"])).astype(int)
            w = (t - cut["time"]) / cut["crossfade"] if cut["crossfade"] else 1.0
            if w >= 1.0 and checked_plain < 40:
                assert np.abs(picture - expected).mean() < 6, f"cut {i} at {t:.2f} s"
                checked_plain += 1
            elif 0.3 < w < 0.7 and prev is not None:
                before = cuts[i - 1]
                outgoing = prev.frame_at((before["offset"] + t - before["time"]) % _length(lib, before["clip_id"]))
                blended = mix(outgoing, expected.astype(np.uint8), w).astype(int)
                assert np.abs(picture - blended).mean() < 6
                if np.abs(outgoing.astype(int) - expected).mean() > 12:  # two pictures alike show no mix
                    assert np.abs(picture - expected).mean() > 2 * np.abs(picture - blended).mean()
                    checked_mix += 1
    assert checked_plain >= 20 and checked_mix >= 2


def _playback(lib, clip_id):
    import sqlite3

    with sqlite3.connect(lib / "library.sqlite") as db:
        return [r[0] for r in db.execute("SELECT playback FROM clips WHERE id = ?", (clip_id,))]


def _length(lib, clip_id) -> float:
    """The clip's length: a cut that outlasts its clip plays it again from the start."""
    import sqlite3

    with sqlite3.connect(lib / "library.sqlite") as db:
        return db.execute('SELECT "end" - start FROM clips WHERE id = ?', (clip_id,)).fetchone()[0]


SPEED = 1.04  # the DJ's pitch fader


def test_a_song_whose_video_is_in_the_library_renders_in_sync(real_library, media, tmp_path, rendered):
    """Big Buck Bunny's soundtrack, through a noisy room (10 dB) at +4 % speed: every rendered picture is
    the video's own frame at the song's position, within one frame of the 24 fps source. A song that is not
    in the library (the C64 render) has no sync cut."""
    lib, _ = real_library
    song = read_audio_file(media / "av" / "big_buck_bunny_0_30.webm")
    write_audio(tmp_path / "song.flac", degrade.room_noise(degrade.speed(song, SPEED), 10.0)[None], 22050, "mono")
    result = render(tmp_path / "song.flac", lib, tmp_path / "sync.mp4", size=SIZE, fps=FPS, progress=False)
    assert all(c["reason"] != "sync" for c in rendered[1].cuts)
    synced = [c for c in result.cuts if c["reason"] == "sync"]
    assert synced and synced[0]["time"] == 0.0, result.cuts[:3]  # offline, the lock reaches back to the start
    assert all(abs(c["rate"] / SPEED - 1) <= 0.005 for c in synced if c["rate"]), [c["rate"] for c in synced]
    times = [c["time"] for c in result.cuts]
    source_frame = 1 / 24
    readers = {}  # (video, frames off the audio's position) -> sequential reader
    moving = closest = 0
    for t, picture in decode_video(result.video):
        cut = result.cuts[int(np.searchsorted(times, t, side="right")) - 1]
        truth = t * SPEED
        if cut["reason"] != "sync" or truth > 29.5:
            continue
        shown = cut["source_time"] + (t - cut["time"]) * cut["rate"]
        assert abs(shown - truth) <= source_frame, f"at {t:.2f} s the cut list shows {shown:.3f} s of the video"
        near = {}
        for k in (-1, 0, 1):
            if (cut["video"], k) not in readers:
                readers[cut["video"], k] = ClipFrames(cut["video"], SIZE)
            near[k] = readers[cut["video"], k].frame_at(max(0.0, truth + k * source_frame)).astype(int)
        off = {k: np.abs(picture - frame).mean() for k, frame in near.items()}
        assert min(off.values()) < 6, f"at {t:.2f} s the picture is not the video's at {truth:.2f} s +-1 frame"
        if np.abs(near[-1] - near[1]).mean() > 6:  # the film moves here: a frame early or late would show
            moving += 1
            closest += off[0] < min(off[-1], off[1])
    assert moving >= 20 and closest >= 0.9 * moving, f"closest to the true frame at {closest} of {moving}"


def test_a_mix_out_of_a_library_song_goes_back_to_matching_by_content(real_library, media, tmp_path):
    """Big Buck Bunny's soundtrack for 15 s, then C64 (not in the library): in sync from the start, back to
    content-matched clips on a beat within one match window (5 s: while it still holds a second of the
    bunny, the bunny is matched) and a beat after the mix."""
    lib, _ = real_library
    bunny = read_audio_file(media / "av" / "big_buck_bunny_0_30.webm", 0, 15)
    c64 = read_audio_file(media / "music" / "lmms_Skiessi-C64.ogg", 0, 12)
    write_audio(tmp_path / "mix.flac", np.concatenate([bunny, c64])[None], 22050, "mono")
    result = render(tmp_path / "mix.flac", lib, tmp_path / "mix.mp4", size=SIZE, fps=5, progress=False)
    synced = [c for c in result.cuts if c["reason"] == "sync"]
    back = [c for c in result.cuts if c["reason"] == "sync end"]
    assert synced and synced[0]["time"] == 0.0 and len(back) == 1, result.cuts
    assert 15.0 < back[0]["time"] <= 21.0 and np.min(np.abs(np.array(result.beats) - back[0]["time"])) < 1e-3
    assert all(c["time"] < back[0]["time"] for c in synced)
    assert all(c["reason"] not in ("sync", "sync end") for c in result.cuts if c["time"] > back[0]["time"])


def test_the_cut_list_is_written_for_editors(rendered):
    _, result = rendered
    meta = json.loads(result.cut_list_json.read_text())
    assert meta["cuts"] == result.cuts and meta["fps"] == FPS
    with open(result.cut_list_csv) as f:
        rows = list(csv.DictReader(f))
    assert [r["clip"] for r in rows] == [c["clip"] for c in result.cuts]
    assert set(rows[0]) >= {"time", "clip", "video", "source_time", "distance", "beat"}
    beats = np.array(result.beats)
    assert all(np.min(np.abs(beats - c["time"])) < 1e-3 for c in result.cuts[1:])


def test_any_audio_format_and_a_videos_soundtrack(real_library, media, tmp_path):
    lib, _ = real_library
    song = read_audio_file(media / "music" / "Kevin_MacLeod-Vibe_Ace.ogg", 0, 12)
    for name, codec, rate, layout in (
        ("s.wav", "pcm_s16le", 44100, "stereo"),
        ("s.mp3", "libmp3lame", 48000, "mono"),
        ("s.m4a", "aac", 32000, "5.1"),
        ("s.flac", "flac", 22050, "mono"),
    ):
        with av.open(str(tmp_path / name), "w") as out:
            stream = out.add_stream(codec, rate=rate)
            stream.layout = layout
            resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
            frame = av.AudioFrame.from_ndarray(song[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 22050, 0, Fraction(1, 22050)
            for f in resampler.resample(frame) + resampler.resample(None):
                for packet in stream.encode(f):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        result = render(tmp_path / name, lib, tmp_path / f"{name}.mp4", size=SIZE, fps=10, progress=False)
        assert abs(result.song_seconds - 12) < 0.2 and len(result.cuts) >= 1, name
    result = render(
        media / "av" / "big_buck_bunny_0_30.webm", lib, tmp_path / "bunny.mp4", size=SIZE, fps=10, progress=False
    )
    assert abs(result.song_seconds - 30) < 0.2


def test_bad_songs_libraries_and_paths(real_library, media, tmp_path):
    lib, _ = real_library
    short = cli("render", media / "music" / "loop_amen.flac", "--library", lib, "-o", tmp_path / "a.mp4")
    assert short.returncode == 1
    assert short.stderr.strip() == (
        f"livejpp: error: {media / 'music' / 'loop_amen.flac'}: 1.8 s long; a song needs at least one 10 s window"
    )
    with av.open(str(tmp_path / "silence.wav"), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=22050)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 22050 * 12), np.int16), format="s16", layout="mono")
        frame.sample_rate = 22050
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(packet)
    silent = cli("render", tmp_path / "silence.wav", "--library", lib, "-o", tmp_path / "b.mp4")
    assert "silent (below -60 dBFS): there is no music to match" in silent.stderr
    nowhere = cli("render", media / "music" / "lmms_Skiessi-C64.ogg", "--library", lib, "-o", tmp_path / "no" / "c.mp4")
    assert (
        nowhere.stderr.strip()
        == f"livejpp: error: {tmp_path / 'no' / 'c.mp4'}: cannot write here (no folder {tmp_path / 'no'})"
    )
    (tmp_path / "junk.mp4").write_text("not a video")
    empty = tmp_path / "empty-lib"
    build_library([tmp_path / "junk.mp4"], empty, progress=False)
    with pytest.raises(Exception, match="has no clips"):
        render(media / "music" / "lmms_Skiessi-C64.ogg", empty, tmp_path / "d.mp4", size=SIZE, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "empty-lib",
        "junk.mp4",
        "silence.wav",
    ]  # nothing half-written


def test_an_index_of_another_model_is_rebuilt_not_used(real_library, media, tmp_path):
    import shutil

    lib = tmp_path / "lib"
    shutil.copytree(real_library[0], lib)
    meta_path = lib / "index" / "default.json"
    cli("library", "embed", lib)
    meta = json.loads(meta_path.read_text())
    meta["model_fingerprint"] = "another-model"
    meta_path.write_text(json.dumps(meta))
    result = render(
        media / "music" / "lmms_Skiessi-C64.ogg",
        lib,
        tmp_path / "x.mp4",
        size=SIZE,
        fps=5,
        settings=EngineSettings(),
        progress=False,
    )
    assert result.cuts and json.loads(meta_path.read_text())["model_fingerprint"] != "another-model"


def test_query_lists_nearest_and_farthest_with_a_contact_sheet(real_library, media, tmp_path):
    lib, _ = real_library
    out = cli(
        "query",
        media / "music" / "sintel_trailer_audio.ogg",
        "--library",
        lib,
        "--start",
        "20",
        "-k",
        "3",
        "--sheet",
        tmp_path / "sheet.png",
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].endswith("(audio → video)") and "nearest:" in lines and "farthest:" in lines
    ranks = [int(line.split()[0]) for line in lines if line.strip()[:2].strip().isdigit()]
    assert ranks == [1, 2, 3, 14, 13, 12]
    from PIL import Image

    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 600 and sheet.height > 300
        pixels = np.asarray(sheet)
    assert pixels.std() > 20  # thumbnails, not a blank page
    video = cli("query", media / "footage" / "earth.mp4", "--library", lib, "-k", "3", "--sheet", tmp_path / "v.png")
    nearest = [line for line in video.stdout.splitlines() if line.strip()[:1].isdigit()][:3]
    assert video.stdout.splitlines()[0].endswith("(video → video)")
    assert all("earth.mp4" in line for line in nearest)  # its own clips first


def test_the_reader_pool_keeps_clips_of_one_source_apart(media):
    """Clips read from their source (--no-transcode) share the file: each keeps its own start."""
    source = media / "av" / "big_buck_bunny_0_30.webm"
    pool = FramePool((160, 90))
    first = pool.get(str(source), 0.0, 10.0).frame_at(1.0)
    second = pool.get(str(source), 10.0, 10.0).frame_at(1.0)
    assert np.abs(second.astype(int) - ClipFrames(source, (160, 90), 10.0).frame_at(1.0)).max() == 0
    assert np.abs(first.astype(int) - second).mean() > 5  # 10 s apart in the film: other pictures
    pool.close()


def test_render_sync_on_the_command_line(real_library, media, tmp_path):
    """`--sync off` renders a library video's own soundtrack by content alone; by default the command says
    which video it played in sync."""
    lib, _ = real_library
    song = media / "av" / "sintel_clip.mp4"
    synced = cli("render", song, "-l", lib, "-o", tmp_path / "a.mp4", "--size", "160x90", "--quiet")
    assert synced.returncode == 0, synced.stderr
    assert "in sync with the song's own video: sintel_clip.mp4" in synced.stdout
    off = cli("render", song, "-l", lib, "-o", tmp_path / "b.mp4", "--size", "160x90", "--quiet", "--sync", "off")
    assert off.returncode == 0, off.stderr
    assert "in sync" not in off.stdout
    cuts = json.loads((tmp_path / "b.cuts.json").read_text())["cuts"]
    assert cuts and all(c["reason"] != "sync" for c in cuts)

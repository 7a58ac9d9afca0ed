"""The live show locks to a song's own video (issue 12): Big Buck Bunny's soundtrack through a noisy room at
+4 % speed, played as if live, is shown with the film's own frames at the audio's position; a song that is
not in the library never locks."""

import json

import degrade
import numpy as np
import pytest
from synth import write_audio
from test_live import SIZE, live, recorded

from livejpp.media.decode import read_audio_file
from livejpp.render.player import ClipFrames

SPEED = 1.04  # the DJ's pitch fader
SOURCE_FRAME = 1 / 24  # the film's frame


@pytest.fixture(scope="module")
def bunny_in_a_room(tmp_path_factory, media):
    song = read_audio_file(media / "av" / "big_buck_bunny_0_30.webm", 0, 20)
    path = tmp_path_factory.mktemp("sync") / "bunny_room.flac"
    write_audio(path, degrade.room_noise(degrade.speed(song, SPEED), 10.0)[None], 22050, "mono")
    return path


def show(lib, song, tmp_path, *args):
    record, stats = tmp_path / "show.mp4", tmp_path / "stats.json"
    out = live(lib, "--play", song, "--silent", "--record", record, "--stats", stats, *args)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out, json.loads(stats.read_text())


def test_the_song_s_own_video_plays_in_sync(real_library, media, bunny_in_a_room, tmp_path):
    out, stats = show(real_library[0], bunny_in_a_room, tmp_path)
    sync = stats["sync"]
    assert sync["locks"] >= 1 and sync["first_lock"] <= 5.0, sync
    assert [e[2] for e in sync["events"] if e[0] == "enter"] == ["big_buck_bunny_0_30.webm"] * sync["locks"]
    cut = next(c for c in stats["cuts"] if c["reason"] == "sync")
    assert cut["beat_offset"] == 0  # on a beat
    times, positions = stats["record"]["frame_show_times"], stats["record"]["sync_positions"]
    frames = recorded(tmp_path / "show.mp4")
    assert len(frames) == len(times) == len(positions)
    film = {k: ClipFrames(media / "av" / "big_buck_bunny_0_30.webm", SIZE) for k in (-2, -1, 0, 1, 2)}
    start = max(sync["first_lock"] + 1.0, cut["time"] + cut["crossfade"])
    checked = moving = closest = stalled = 0
    for n, (t, position, picture) in enumerate(zip(times, positions, frames, strict=True)):
        truth = t * SPEED
        if t < start or truth > 20 - 0.5:
            continue
        if t - times[n - 1] > 0.1:  # after a stall (a dropped frame) the frame is stamped later than it was drawn
            stalled += 1
            continue
        assert position is not None, f"at {t:.2f} s the show left sync"
        assert abs(position - truth) <= SOURCE_FRAME, f"at {t:.2f} s the show played {position:.3f} s, not {truth:.3f}"
        near = {k: film[k].frame_at(max(0.0, truth + k * SOURCE_FRAME)).astype(int) for k in film}
        off = {k: np.abs(picture - frame).mean() for k, frame in near.items()}
        assert min(off[k] for k in (-1, 0, 1)) < 8, f"at {t:.2f} s the picture is not the film's at {truth:.2f} s"
        checked += 1
        if np.abs(near[-2] - near[2]).mean() > 6:  # the film moves here: two frames early or late would show
            moving += 1
            closest += min(off, key=off.get) in (-1, 0, 1)
    assert moving >= 20 and closest >= 0.9 * moving, (moving, closest)  # within one film frame, not two


def test_a_song_not_in_the_library_never_locks(real_library, media, tmp_path):
    out, stats = show(real_library[0], media / "music" / "lmms_Skiessi-C64.ogg", tmp_path, "--duration", 15)
    assert stats["sync"]["locks"] == 0 and stats["sync"]["events"] == []
    assert all(c["reason"] not in ("sync", "sync end") for c in stats["cuts"])
    assert set(stats["record"]["sync_positions"]) == {None}

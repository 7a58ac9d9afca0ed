"""The live show locks to a song's own video (issue 12): Big Buck Bunny's soundtrack through a noisy room at
+4 % speed, played as if live, is shown with the film's own frames at the audio's position; a song that is
not in the library never locks."""

import json
import re
import shutil
import subprocess
import sys

import degrade
import numpy as np
import pytest
from sync_check import check_frames, song_start
from synth import write_audio
from test_live import (
    live,
    live_from_sink,
    pulse,  # noqa: F401 - the PulseAudio null sink fixture
    recorded,
)

from livejpp.engine.sync import SILENCE_SECONDS
from livejpp.media.decode import read_audio_file

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
    start = max(sync["first_lock"] + 1.0, cut["time"] + cut["crossfade"])
    film = media / "av" / "big_buck_bunny_0_30.webm"
    check = check_frames(film, 24, times, positions, recorded(tmp_path / "show.mp4"), lambda t: t * SPEED, start, 19)
    assert_in_sync(check)


def assert_in_sync(check) -> None:
    """Every frame checked is in sync within one film frame and (99 % or more) is the film's own picture; where
    the film moves, nearly all are its frame at the song's position (+-1), not two frames early or late."""
    assert not check.unsynced, f"at {check.unsynced[0]:.2f} s the show was out of sync"
    assert check.errors_ms and max(np.abs(check.errors_ms)) <= SOURCE_FRAME * 1000, max(np.abs(check.errors_ms))
    # the target is one frame p95; a decoder a frame behind on a loaded machine may show one stale picture
    assert len(check.off) <= 0.01 * len(check.errors_ms), f"at {check.off[0]:.2f} s the picture is not the film's"
    assert check.moving >= 20 and check.closest >= 0.9 * check.moving, (check.moving, check.closest)


def test_a_song_not_in_the_library_never_locks(real_library, media, tmp_path):
    out, stats = show(real_library[0], media / "music" / "lmms_Skiessi-C64.ogg", tmp_path, "--duration", 15)
    assert stats["sync"]["locks"] == 0 and stats["sync"]["events"] == []
    assert all(c["reason"] not in ("sync", "sync end") for c in stats["cuts"])
    assert set(stats["record"]["sync_positions"]) == {None}


SWITCH = r"""
import json, sys
import pyglet
pyglet.options["headless"] = True
from livejpp.audio_io import FileSource
from livejpp.control.commands import CommandBus
from livejpp.control.osc import OscFeedback
from livejpp.engine.live import LiveShow
from livejpp.engine import hud
from livejpp.render import window
lib, other, song, out = sys.argv[1:5]
show = LiveShow(lib, FileSource(song, play=False), size=(320, 180), fps=30)
bus = CommandBus(show)
log = {}
def script(win):
    def watch(dt):  # readiness: the lock, then the switch's end; no fixed waits
        if "hud" not in log and show.sync_state.lock is not None:
            log["hud"] = hud.hud_text(show)
            log["next_refused"] = bus.run("next") is None and "sync off" in bus.last_error  # it would cover the film
            log["still_locked"] = show.sync_state.lock is not None
            log["osc"] = {k: v for k, v in OscFeedback(bus, None).state().items() if k.startswith("sync")}
            bus.run("library", other)
            log["switched_at"] = show.show_time()
        elif "hud" in log and show.switching is None and "after" not in log:
            log["after"] = show.engine.library.name == "other"
        elif "after" in log and any(c["reason"] == "sync end" for c in show.stats.cuts):
            show.quit.set()  # the content cut is on screen: all there is to see
    pyglet.clock.schedule_interval(watch, 0.05)
summary = window.run(show, duration=40, headless=True, on_start=script)
log["sync"], log["cuts"] = summary["sync"], [(c["time"], c["reason"]) for c in summary["cuts"]]
print(json.dumps(log))
"""


def test_sync_shows_on_the_hud_and_osc_and_a_library_switch_leaves_it(real_library, bunny_in_a_room, tmp_path):
    """Locked: the HUD names the video and OSC feedback says where in it; a switch to another library (its
    video ids mean other videos) leaves sync at once, on the next beat, without a traceback."""
    other = tmp_path / "other"
    shutil.copytree(real_library[0], other)
    command = [sys.executable, "-c", SWITCH, str(real_library[0]), str(other), str(bunny_in_a_room), str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    log = json.loads(out.stdout.strip().splitlines()[-1])
    assert re.search(r"SYNC big_buck_bunny_0_30\.webm  \d+\.\d s  \+\d\.\d %", log["hud"]), log["hud"]
    assert log["osc"]["sync"] == "auto" and log["osc"]["sync_video"] == "big_buck_bunny_0_30.webm", log["osc"]
    assert 0 < log["osc"]["sync_position"] < 30 and round(log["osc"]["sync_position"], 1) == log["osc"]["sync_position"]
    assert log["next_refused"] and log["still_locked"], log
    assert log["after"], log
    kinds = [e[0] for e in log["sync"]["events"]]
    assert kinds[:2] == ["enter", "leave"], log["sync"]
    left = log["sync"]["events"][1][1]
    assert left - log["switched_at"] < 2.0  # at once: no waiting for the match to fade
    ends = [t for t, reason in log["cuts"] if reason == "sync end"]
    assert ends and ends[0] - left < 1.5, log["cuts"]


# --- bad input (issue 12): what a VJ expects when the room does not play a library song cleanly ---------------
def test_a_live_input_of_pure_noise_never_locks_and_clips_play(real_library, tmp_path):
    """A crowd and no music (pink noise): no lock, no sync cut, content clips play."""
    path = tmp_path / "crowd.flac"
    write_audio(path, degrade.pink_noise(12 * 22050, seed=3, rms=0.1)[None], 22050, "mono")
    out, stats = show(real_library[0], path, tmp_path, "--duration", 12)
    assert stats["sync"]["locks"] == 0 and stats["sync"]["events"] == [], stats["sync"]
    assert stats["cuts"] and all(c["reason"] not in ("sync", "sync end") for c in stats["cuts"])


def test_a_song_cut_short_mid_sync_goes_back_to_clips_without_a_black_frame(real_library, media, tmp_path):
    """The DJ stops Big Buck Bunny's soundtrack after 9 s; the crowd goes on. Only the room is heard, as in a
    break of the song, so the film plays on (it left 3 s after the last note, and a break cut away and back);
    once nothing of the song has been heard for SILENCE_SECONDS the show leaves sync (a song stopped), cuts back
    to content clips on a beat, and no recorded frame is black."""
    stop = 9.0
    song = read_audio_file(media / "av" / "big_buck_bunny_0_30.webm", 0, stop)
    level = float(np.sqrt(np.mean(song**2)))
    crowd = degrade.pink_noise(14 * 22050, seed=4, rms=level / np.sqrt(10))  # as loud as the noise over the song
    audio = np.concatenate([degrade.room_noise(song, 10.0), crowd])
    path = tmp_path / "cut_short.flac"
    write_audio(path, audio[None], 22050, "mono")
    out, stats = show(real_library[0], path, tmp_path)
    kinds = [(e[0], e[1]) for e in stats["sync"]["events"]]
    assert [k for k, _ in kinds] == ["enter", "leave"], kinds
    left = kinds[1][1]
    # 18.9 s here: the next hop after SILENCE_SECONDS; a loaded machine may decide a hop later
    assert stop + 6.0 <= left <= stop + SILENCE_SECONDS + 1.1, f"left sync at {left:.2f} s; the song stopped at {stop}"
    ends = [c for c in stats["cuts"] if c["reason"] == "sync end"]
    assert len(ends) == 1 and ends[0]["beat_offset"] == 0 and ends[0]["time"] - left < 1.5, ends
    frames = recorded(tmp_path / "show.mp4")
    darkest = min(int(frame.max()) for frame in frames)
    assert darkest > 40, f"a recorded frame is black (brightest pixel {darkest})"


@pytest.fixture(scope="module")
def bunny_twice(tmp_path_factory, media):
    """A library holding Big Buck Bunny twice (the same film under two names: the same soundtrack)."""
    from livejpp.library.build import BuildSettings, build_library

    folder = tmp_path_factory.mktemp("twice") / "videos"
    folder.mkdir()
    for name in ("bunny.webm", "bunny_again.webm"):
        shutil.copy(media / "av" / "big_buck_bunny_0_30.webm", folder / name)
    lib = folder.parent / "lib"
    build_library([folder], lib, BuildSettings(), jobs=2, progress=False)
    return lib


def test_a_song_in_the_library_twice_locks_to_one_video_without_flicker(bunny_twice, bunny_in_a_room, tmp_path):
    """Two videos with the same soundtrack: the show locks to one of them and stays on it (no cut between the
    two), at the song's position."""
    out, stats = show(bunny_twice, bunny_in_a_room, tmp_path, "--duration", 14)
    events = stats["sync"]["events"]
    assert [e[0] for e in events] == ["enter"], events
    assert events[0][2] in ("bunny.webm", "bunny_again.webm") and events[0][1] <= 5.0, events
    assert [c["reason"] for c in stats["cuts"]].count("sync") == 1, stats["cuts"]
    times, positions = stats["record"]["frame_show_times"], stats["record"]["sync_positions"]
    locked = [(t, p) for t, p in zip(times, positions, strict=True) if p is not None and t > events[0][1] + 1.0]
    assert locked and max(abs(p - t * SPEED) for t, p in locked) <= SOURCE_FRAME


def test_a_song_recognised_before_the_first_cut_is_shown_in_sync(real_library, media, tmp_path):
    """Clean audio locks within a second, in the same hop as the show's first content cut: the sync cut must
    replace it (it once came after it in the queue, so the content clip covered the locked video all song)."""
    path = tmp_path / "clean.flac"
    write_audio(path, read_audio_file(media / "av" / "big_buck_bunny_0_30.webm", 8, 10)[None], 22050, "mono")
    out, stats = show(real_library[0], path, tmp_path, "--duration", 8)
    first_lock = stats["sync"]["first_lock"]
    assert first_lock is not None and first_lock <= 2.0, stats["sync"]
    times, positions = stats["record"]["frame_show_times"], stats["record"]["sync_positions"]
    after = [(t, p) for t, p in zip(times, positions, strict=True) if first_lock + 1.5 <= t <= 7.5]
    assert after and all(p is not None and abs(p - (8 + t)) <= SOURCE_FRAME for t, p in after), after[:5]


def test_played_into_a_pulseaudio_sink_the_show_plays_the_film_in_sync(real_library, media, tmp_path, pulse):  # noqa: F811
    """The real capture path: the soundtrack from 5 s, at -5 % (a pitch fader), through a -4 dB/octave EQ tilt
    and a 128 kb/s mp3 pass, played with paplay into a PulseAudio null sink that `live --input pulse` captures.
    Where the song starts in the capture is read from the recording's own audio; from then on, every recorded
    frame is the film's at the song's position."""
    speed, begin_in_film, seconds = 0.95, 5.0, 14.0
    song = read_audio_file(media / "av" / "big_buck_bunny_0_30.webm", begin_in_film)
    room = degrade.codec_pass(degrade.eq_tilt(degrade.speed(song, speed), -4.0), "mp3")
    played = room[: int(seconds * 22050)]
    path = tmp_path / "played.flac"
    write_audio(path, played[None], 22050, "mono")
    record, stats_path = tmp_path / "show.mp4", tmp_path / "stats.json"
    show = live_from_sink(real_library[0], pulse, "--duration", seconds + 5, "--record", record, "--stats", stats_path)
    show.wait_for("capturing from")  # the capture is open: the whole song is heard
    player = subprocess.Popen(["paplay", str(path)], env=pulse)
    out, err = show.communicate(timeout=90)
    player.kill()
    assert show.proc.returncode == 0 and "Traceback" not in err, err
    stats = json.loads(stats_path.read_text())
    begin = song_start(record, played)
    sync = stats["sync"]
    assert sync["first_lock"] is not None and sync["first_lock"] - begin <= 5.0, (sync, begin)
    cut = next(c for c in stats["cuts"] if c["reason"] == "sync")
    times, positions = stats["record"]["frame_show_times"], stats["record"]["sync_positions"]
    film = media / "av" / "big_buck_bunny_0_30.webm"
    check = check_frames(
        film,
        24,
        times,
        positions,
        recorded(record),
        lambda t: begin_in_film + (t - begin) * speed,
        max(sync["first_lock"] + 1.0, cut["time"] + cut["crossfade"]),
        begin + seconds - 0.5,
    )
    assert_in_sync(check)

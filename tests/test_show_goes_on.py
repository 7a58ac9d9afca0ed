"""The show goes on: a picture from the first frame whatever the audio and the clip files do, one line
(and the HUD) saying what is wrong, and the controls obeyed without audio. Real parts: the bundled
library, headless EGL shows read back through their recordings, OSC over UDP on 127.0.0.1, a device
name that does not exist, a PulseAudio server that is not there yet, damaged clip files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from test_control import Feedback, free_port
from test_live import check_pictures, live, live_command, playback, recorded
from waiting import Watched, wait_until

from livejpp.audio_io import DeviceSource
from livejpp.engine.hud import hud_text as _hud_text
from livejpp.engine.live import LiveShow
from livejpp.media.compose import crossfade_weight, mix
from livejpp.media.player import ClipFrames
from tools.pulse_sink import PulseSink

ROOT = Path(__file__).resolve().parent.parent
SONG = ROOT / "tests" / "media" / "music" / "lmms_Skiessi-C64.ogg"
SIZE = (320, 180)


@pytest.fixture
def lib(real_library, tmp_path):
    copy = tmp_path / "lib"
    shutil.copytree(real_library[0], copy)
    return copy


class Show:
    """`livejpp live` in the background, recorded, steered over OSC, its log lines read as they come."""

    def __init__(self, lib: Path, tmp_path: Path, *args, env=None):
        self.tmp_path = tmp_path
        self.port = free_port()
        self.feedback = Feedback()
        command = live_command(
            lib,
            "--record",
            tmp_path / "show.mp4",
            "--stats",
            tmp_path / "stats.json",
            "--osc-port",
            self.port,
            "--osc-feedback",
            f"127.0.0.1:{self.feedback.port}",
            *args,
        )
        self.watched = Watched(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
        self.process = self.watched.proc

    @property
    def lines(self) -> list[str]:
        return [line.rstrip("\n") for line in self.watched.err]

    def wait_line(self, text: str, timeout: float = 30.0) -> str:
        """The first log line holding `text`, once it has come."""
        seen = self.watched.wait_for(text, timeout=timeout)
        return self.lines[seen - 1]

    def send(self, address: str, *args) -> None:
        builder = OscMessageBuilder(address)
        for a in args:
            builder.add_arg(a)
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(builder.build().dgram, ("127.0.0.1", self.port))

    def finish(self, quit: bool = True) -> dict:
        """Quit (over OSC) or let it run its --duration; the stats, after checking it ended cleanly."""
        if quit and self.process.poll() is None:
            self.send("/livejpp/quit")
        _, err = self.watched.communicate(timeout=60)
        self.feedback.close()
        assert self.process.returncode == 0, err
        assert "Traceback" not in err
        return json.loads((self.tmp_path / "stats.json").read_text())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.feedback.close()


def assert_never_black(lib: Path, stats: dict, frames: list[np.ndarray]) -> None:
    """Every recorded frame, from the first, shows a picture: a dark frame only where what is on
    screen is itself dark there (the bundled Big Buck Bunny opens on black), crossfades included."""
    times = stats["record"]["frame_show_times"][: len(frames)]
    cuts = stats["cuts"]
    assert frames and cuts and cuts[0]["time"] <= times[0] + 1e-3  # a clip is on screen at the first frame
    readers: dict[str, ClipFrames] = {}

    def picture(cut: dict, t: float) -> np.ndarray:
        if cut["clip"] not in readers:
            readers[cut["clip"]] = ClipFrames(playback(lib, cut["clip"]), SIZE)
        return readers[cut["clip"]].frame_at(max(0.0, cut["offset"] + t - cut["time"]))

    for frame, t in zip(frames, times, strict=True):
        if frame.max() > 12:
            continue
        on = [c for c in cuts if c["time"] <= t + 1e-3]
        assert on, f"black frame at {t:.2f} s before any clip"
        expected = []
        for dt in (-0.1, -0.067, -0.033, 0.0, 0.033):  # the decoder works up to two frames ahead
            incoming = picture(on[-1], t + dt)
            weight = crossfade_weight(t, on[-1]["time"], on[-1]["crossfade"]) if len(on) > 1 else 1.0
            expected.append(mix(picture(on[-2], t + dt), incoming, weight).max() if weight < 1 else incoming.max())
        assert min(expected) <= 20, f"black frame at {t:.2f} s while {on[-1]['clip']} shows a picture"


def clip_files(lib: Path) -> list[Path]:
    return sorted((lib / "clips").rglob("*.mp4"))


def damage(files: list[Path]) -> None:
    """Half the files vanish, the others are cut to a third (a copy interrupted, a disk error)."""
    for i, path in enumerate(files):
        if i % 2:
            path.unlink()
        else:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 3])


# --- no audio --------------------------------------------------------------------------------------
def test_a_device_that_does_not_exist_shows_clips_says_why_and_obeys_the_controls(lib, media, tmp_path):
    show = Show(lib, tmp_path, "--input", "no such device", "--duration", 8)
    try:
        line = show.wait_line("hearing nothing")
        assert 'device "no such device" not found' in line
        assert "no such device" in show.feedback.wait("hearing", bool, timeout=30)
        first = show.feedback.wait("clip", bool)  # a clip plays without audio
        show.send("/livejpp/next")
        show.feedback.wait("clip", lambda v: v != first)  # `next` cuts without audio
        show.send("/livejpp/video", "earth")
        show.feedback.wait("source", lambda v: v == "earth.mp4")
        show.send("/livejpp/video", "")
        show.send("/livejpp/tag", "av")
        show.feedback.wait("source", lambda v: v in os.listdir(media / "av"))
        stats = show.finish(quit=False)  # the show runs its 8 s, looking for the device every second
    finally:
        show.kill()
    assert sum("hearing nothing" in line for line in show.lines) == 1  # retried every second, said once
    assert stats["audio"]["open_failures"] >= 4 and "not found" in stats["audio"]["hearing_nothing"]
    assert [c["reason"] for c in stats["cuts"]].count("forced") >= 3
    frames = recorded(tmp_path / "show.mp4")
    assert_never_black(lib, stats, frames)
    check_pictures(lib, stats, frames, crossfades=False)  # each clip plays on, in time


def test_an_unreadable_song_shows_clips_and_says_why(lib, tmp_path):
    garbage = tmp_path / "song.mp3"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 20000, np.uint8).tobytes())
    show = Show(lib, tmp_path, "--play", garbage, "--silent", "--duration", 60)
    try:
        line = show.wait_line("hearing nothing")
        assert f"cannot read {garbage}" in line
        first = show.feedback.wait("clip", bool, timeout=30)
        show.send("/livejpp/next")
        show.feedback.wait("clip", lambda v: v != first)
        stats = show.finish()
    finally:
        show.kill()
    assert "cannot read" in stats["audio"]["hearing_nothing"]
    assert_never_black(lib, stats, recorded(tmp_path / "show.mp4"))


def test_hearing_nothing_the_clips_still_change(lib, tmp_path):
    """Without audio the clip on screen gives way after --max-clip seconds, as it would with music."""
    missing = tmp_path / "gone.ogg"
    out = live(lib, "--play", missing, "--silent", "--duration", 5, "--min-clip", 1, "--max-clip", 1.5, "--no-osc",
               "--record", tmp_path / "show.mp4", "--stats", tmp_path / "stats.json")  # fmt: skip
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert f"hearing nothing: cannot read {missing}: no such file" in out.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert [c["reason"] for c in stats["cuts"]].count("no audio") >= 2
    assert_never_black(lib, stats, recorded(tmp_path / "show.mp4"))


@pytest.fixture
def pulse_later(tmp_path):
    """The environment of a PulseAudio null sink that is not started yet: until it is, the machine has no
    capture device at all; `start()` brings it."""
    sink = PulseSink(tmp_path / "pulse-run")
    yield sink.env, sink.start
    sink.stop()


def test_no_capture_device_then_a_silent_one_then_music(lib, tmp_path, pulse_later):
    env, start_pulse = pulse_later
    show = Show(lib, tmp_path, "--duration", 90, env=env)
    player = None
    try:
        assert "no capture device" in show.wait_line("hearing nothing")
        first = show.feedback.wait("clip", bool, timeout=30)
        show.send("/livejpp/next")
        show.feedback.wait("clip", lambda v: v != first)
        start_pulse()  # the device appears: the show picks it up, and hears that it is silent
        assert "the input is silent" in show.wait_line("hearing nothing: the input is silent", timeout=30)
        player = subprocess.Popen(["paplay", str(SONG)], env=env)
        show.wait_line("hearing music", timeout=30)
        show.feedback.wait("hearing", lambda v: v == "", timeout=10)
        counted: set[int] = set()  # the beat count moves on with the music (it jumps where the clock locks)
        wait_until(lambda: counted.add(show.feedback.state.get("beat")) or len(counted) > 8, 30, "beats counted")
        stats = show.finish()
    finally:
        show.kill()
        if player is not None:
            player.kill()
    assert stats["audio"]["device_opens"] >= 1 and stats["audio"]["seconds_analysed"] > 3
    assert stats["audio"]["hearing_nothing"] == ""
    assert_never_black(lib, stats, recorded(tmp_path / "show.mp4"))


# --- broken clip files -----------------------------------------------------------------------------
def test_broken_clips_are_replaced_at_once(lib, tmp_path):
    files = clip_files(lib)
    keep = [f for f in files if f.parent.name == "eb45e84d0aad988d"]  # tree.avi's three clips stay whole
    broken = [f for f in files if f not in keep]
    damage(broken)
    show = Show(lib, tmp_path, "--play", SONG, "--silent", "--duration", 10, "--bars", 1, "--min-clip", 1)
    try:
        stats = show.finish()
    finally:
        show.kill()
    warned = [line for line in show.lines if "skipping clip" in line]
    assert warned and all(sum(str(f) in line for line in warned) <= 1 for f in broken)  # one line a file
    assert all(any(str(f) in line for f in broken) for line in warned)  # naming the file
    assert all(c["picture_ready"] for c in stats["cuts"])
    assert {c["video"] for c in stats["cuts"]} == {"tree.avi"}
    assert_never_black(lib, stats, recorded(tmp_path / "show.mp4"))


def test_a_library_whose_clips_all_fail_shows_the_standby_picture(lib, tmp_path):
    damage(clip_files(lib))
    show = Show(lib, tmp_path, "--play", SONG, "--silent", "--duration", 4)
    try:
        line = show.wait_line("standby picture")
        stats = show.finish()
    finally:
        show.kill()
    assert f"no clip of {lib} can play" in line
    assert sum("standby picture" in line for line in show.lines) == 1
    assert "can play" in stats["standby"]
    frames = recorded(tmp_path / "show.mp4")
    assert frames and min(f.mean() for f in frames) > 40  # the standby picture, from the first frame


def test_no_display_is_one_line(lib):
    """A machine without a display (or DISPLAY pointing nowhere), without --headless: why, in a line."""
    command = [c for c in live_command(lib, "--duration", 3, "--no-osc") if c != "--headless"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=90, env={**os.environ, "DISPLAY": ":12345"})
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("livejpp: error: cannot open the show's window")
    assert "--headless" in out.stderr and "Traceback" not in out.stderr


def test_the_hud_says_what_is_wrong(lib):
    damage(clip_files(lib))
    show = LiveShow(lib, DeviceSource("no such device"), size=SIZE)
    show.start()
    try:
        wait_until(lambda: show.hearing and show.standby, 20, "the show says it hears nothing and stands by")
        hud = _hud_text(show)
    finally:
        show.stop()
    assert 'HEARING NOTHING: device "no such device" not found' in hud
    assert f"STANDBY: no clip of {lib} can play" in hud


def test_stats_into_a_folder_that_is_not_there_is_one_line_before_the_show(lib, tmp_path):
    stats = tmp_path / "gone" / "stats.json"
    command = [*map(str, live_command(lib, "--input", "no such device", "--duration", 30, "--stats", stats))]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"--stats {stats}: cannot write there" in run.stderr
    assert "show over" not in run.stdout  # refused before the show, not after 30 s of it


def test_with_nothing_heard_next_plays_a_seeded_sample_of_a_large_library(lib, monkeypatch):
    """With nothing heard the show plays from a seeded sample of at most FALLBACK_CLIPS clips (the order of
    a whole million-clip library took a second to build and held a million entries): `next` stays within
    it, and the same seed gives the same sample."""
    import livejpp.engine.live as live
    from livejpp.audio_io import DeviceSource

    monkeypatch.setattr(live, "FALLBACK_CLIPS", 3)
    played = []
    for _ in range(2):
        show = live.LiveShow(lib, DeviceSource("no such device"), size=(320, 180))
        assert len(show.engine.records) > 3
        show.start()
        try:
            layers = [show.next_clip() for _ in range(8)]
        finally:
            show.stop()
        played.append({layer.cut.clip for layer in layers if layer is not None})
    assert 2 <= len(played[0]) <= 3, played
    assert played[0] == played[1]

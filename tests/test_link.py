"""Ableton Link with real peers: another Link app in its own process on this machine (the peers find
each other over the network interface's multicast, as on a stage's LAN), and livejpp following its
tempo and bar, telling it the tempo of the music, and going back to the music when it leaves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from synth import click_track, write_audio
from waiting import Watched, wait_until

from livejpp.control.link import LinkClock
from livejpp.engine.beat import BeatClock
from livejpp.engine.latency import Latency
from livejpp.features.audio import AudioAnalyser

QUANTUM = 4

PEER = r"""
import json, sys, link
peer = link.Link(float(sys.argv[1]))
peer.enabled = True
print("ready", flush=True)
for line in sys.stdin:  # "state": its session now; "tempo BPM": its user sets the tempo; "quit": it leaves
    if line.strip() == "quit":
        break
    state, now = peer.captureAppSessionState(), peer.clock().micros()
    if line.startswith("tempo"):
        state.setTempo(float(line.split()[1]), now)
        peer.commitAppSessionState(state)
    print(json.dumps({"peers": peer.numPeers(), "tempo": state.tempo(), "micros": now,
                      "beat": state.beatAtTime(now, 4)}), flush=True)
peer.enabled = False
"""


class Peer:
    """Another Link app (Ableton Live, Resolume, a lighting desk), in its own process."""

    def __init__(self, bpm: float):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PEER, str(bpm)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def state(self, command: str = "state") -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def beat_at(self, micros: int) -> float:
        """The peer's beat at a time of the machine's Link clock (shared by every process)."""
        s = self.state()
        return s["beat"] + (micros - s["micros"]) / 1e6 * s["tempo"] / 60.0

    def leave(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)


@pytest.fixture
def peer():
    peer = Peer(128.0)
    yield peer
    peer.leave()


def off_grid(beat: float, every: float = 1.0) -> float:
    """How far (in beats) `beat` is from a multiple of `every`."""
    return abs((beat + every / 2) % every - every / 2)


def test_follows_a_sessions_tempo_and_bar_and_falls_back_to_the_music_when_it_vanishes(peer):
    t0 = time.monotonic()
    show_now = lambda: time.monotonic() - t0  # noqa: E731 - the show's clock
    latency = Latency(input=0.02, output=0.0)  # the sound reached the analysis 20 ms after the room heard it
    clock = BeatClock(120.0)
    ours = LinkClock(follow=True)
    try:
        wait_until(lambda: ours.peers() == 1, 10, "livejpp joins the peer's session")
        # an older session's tempo wins when two meet (measured: 1 s older is enough); here both start
        # together, so the peer's user sets the tempo, as in a DAW, and livejpp follows it
        peer.state("tempo 128")
        wait_until(lambda: abs(ours.grid(show_now()).period - 60 / 128) < 1e-6, 5, "the session's tempo arrives")
        now = show_now()
        ours.step(clock, latency, now)
        link_now = ours.link.clock().micros()
        assert clock.source == "link" and clock.bpm == pytest.approx(128.0, abs=1e-6)
        assert "following the session" in ours.status

        def link_time(audio_time):  # the room's time of a beat on the show's clock → the Link clock
            return link_now + int((latency.room(audio_time) - now) * 1e6)

        # the show's beats fall on the peer's beats, in the room (the 20 ms of input latency taken out)
        beat = clock.next_beat(latency.heard(now) + 0.1)
        for k in range(4):
            assert off_grid(peer.beat_at(link_time(beat + k * clock.period))) < 0.01  # 5 ms at 128 BPM
        # and the bar starts where the peer's does: its beat 0 of 4
        grid = ours.grid(now)
        assert off_grid(peer.beat_at(link_now + int((grid.bar_at - now) * 1e6)), QUANTUM) < 0.01
        assert off_grid(peer.beat_at(link_now + int((grid.beat_at - now) * 1e6))) < 0.01

        peer.leave()  # the session vanishes: back to the music, said in one line
        wait_until(lambda: ours.peers() == 0, 10, "livejpp sees the peer leave")
        ours.step(clock, latency, show_now())
        assert clock.source == "music" and ours.status == "Link session gone: following the music"
    finally:
        ours.close()


def test_publishes_the_tempo_it_hears_to_the_session(peer):
    analyser = AudioAnalyser(keep_seconds=12)
    analyser.push(click_track(132, 10))  # the music heard: 132 BPM
    clock = BeatClock()
    clock.update(analyser, 10.0)
    assert clock.bpm == pytest.approx(132, abs=1)
    ours = LinkClock(follow=False)
    try:
        wait_until(lambda: ours.peers() == 1, 10, "livejpp joins the peer's session")
        t0 = time.monotonic() - 10.0
        ours.step(clock, Latency(), time.monotonic() - t0)
        assert ours.published == 1
        ours.step(clock, Latency(), time.monotonic() - t0)
        assert ours.published == 1  # at most once a bar
        wait_until(lambda: abs(peer.state()["tempo"] - clock.bpm) < 0.01, 5, "the peer takes the music's tempo")
        clock.confidence = 0.2  # music the clock is unsure of is not told
        ours._published_at = -1e9
        ours.step(clock, Latency(), time.monotonic() - t0)
        assert ours.published == 1
    finally:
        ours.close()


def test_a_live_show_follows_link_and_goes_back_to_the_music(real_library, tmp_path, peer):
    lib = tmp_path / "lib"
    shutil.copytree(real_library[0], lib)
    song = tmp_path / "click120.flac"
    write_audio(song, np.stack([click_track(120, 12)] * 2), rate=22050)
    command = [sys.executable, "-m", "livejpp", "live", "--library", lib, "--headless", "--size", "320x180"]
    command += ["--osc-port", 0, "--play", song, "--silent", "--duration", 9, "--clock", "link"]
    command += ["--stats", tmp_path / "stats.json"]
    show = Watched(subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        seen = show.wait_for("Link: following the session (1 peers)", timeout=30)
        peer.state("tempo 128")  # (whichever session won when they met) the peer's user sets the tempo
        seen = show.wait_for("following the session (1 peers) at 128.0 BPM", timeout=10)  # at once, or now
        peer.leave()
        show.wait_for("Link session gone: following the music", after=seen, timeout=15)
        _, err = show.communicate(timeout=40)
        assert show.proc.returncode == 0, err
    finally:
        if show.proc.poll() is None:
            show.proc.kill()
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["bpm"] == pytest.approx(120, abs=2)  # the music's tempo once the session has gone
    assert stats["link"]["mode"] == "follow" and not stats["link"]["following"]


def test_without_the_link_extra_one_line_says_how_to_get_it(tmp_path):
    code = (
        "import sys; sys.modules['link'] = None\n"  # as if LinkPython-extern were not installed
        "from livejpp.cli import main\n"
        f"sys.exit(main(['live', '--library', {str(tmp_path)!r}, '--clock', 'link', '--headless']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == "livejpp: error: Ableton Link needs the link extra: pip install 'livejpp[link]'"


def test_a_live_show_tells_the_session_the_tempo_it_hears(real_library, tmp_path, peer):
    lib = tmp_path / "lib"
    shutil.copytree(real_library[0], lib)
    song = tmp_path / "click132.flac"
    write_audio(song, np.stack([click_track(132, 12)] * 2), rate=22050)
    command = [sys.executable, "-m", "livejpp", "live", "--library", lib, "--headless", "--size", "320x180"]
    command += ["--osc-port", 0, "--play", song, "--silent", "--duration", 10, "--link", "--stats", tmp_path / "s.json"]
    show = Watched(subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:  # the peer (at 128 BPM) takes the tempo of the music the show hears
        wait_until(lambda: abs(peer.state()["tempo"] - 132) < 1.5, 30, "the peer follows the show's music")
        _, err = show.communicate(timeout=40)
        assert show.proc.returncode == 0, err
    finally:
        if show.proc.poll() is None:
            show.proc.kill()
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["link"]["mode"] == "publish" and stats["link"]["published"] >= 2
    assert stats["link"]["published"] <= stats["seconds"] / (4 * 60 / 132) + 1  # at most once a bar
    assert peer.state()["peers"] == 0  # the show left the session when it ended

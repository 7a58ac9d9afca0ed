"""Ableton Link with real peers: another Link app in its own process on this machine (the peers find
each other over the network interface's multicast, as on a stage's LAN), and livejpp following its
tempo and bar, telling it the tempo of the music, and going back to the music when it leaves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from synth import click_track, write_audio
from waiting import Watched, wait_until

from livejpp.audio_io import FileSource
from livejpp.control.commands import CommandBus
from livejpp.control.link import LinkClock
from livejpp.control.mapping import Presets
from livejpp.engine.beat import BeatClock
from livejpp.engine.latency import Latency
from livejpp.engine.live import LiveShow
from livejpp.features.audio import AudioAnalyser

SONG = Path(__file__).resolve().parent / "media" / "music" / "lmms_Skiessi-C64.ogg"

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


def test_follows_a_sessions_tempo_and_bar_through_the_bus_and_falls_back_to_the_music_when_it_vanishes(
    real_library, tmp_path, peer
):
    """Link steers the show's clock as every control does, through the command bus: its tempo and bar
    drive the beat and the one (in the room: the input latency taken out), the event log keeps the
    join and each tempo change (not the reads, every 20 ms all night), and when the session vanishes
    the show says so in one line and a `follow` in the log hands the beat back to the music."""
    lib = tmp_path / "lib"
    shutil.copytree(real_library[0], lib)
    show = LiveShow(lib, FileSource(SONG), size=(320, 180))
    show.latency.input = 0.02  # the sound reached the analysis 20 ms after the room heard it
    bus = CommandBus(show, Presets())
    ours = LinkClock(follow=True)
    ours.bus = bus
    reads = 0

    def session_beat() -> float:
        return ours.link.captureAppSessionState().beatAtTime(ours.link.clock().micros(), QUANTUM)

    def read_until(condition, what: str, timeout: float = 10.0):
        """The analysis thread's reads (each 50 ms here) until `condition()` holds."""

        def read_then_check():
            nonlocal reads
            reads += 1
            ours.step(show.engine.clock_state, show.latency, show.show_time())
            return condition()

        return wait_until(read_then_check, timeout, what)

    def links(command: str) -> list:
        return [e for e in bus.events if e.command == command and e.origin == "link"]

    try:
        wait_until(lambda: ours.peers() == 1, 10, "livejpp joins the peer's session")
        peer.state("tempo 128")
        wait_until(lambda: abs(ours.grid(show.show_time()).period - 60 / 128) < 1e-6, 5, "the session's tempo arrives")
        start = session_beat()
        read_until(lambda: session_beat() > start + 4, "four beats of the session")
        clock = show.engine.clock
        assert show.engine.clock_state.source == "link" and clock.bpm == pytest.approx(128.0, abs=1e-6)
        assert "following the session (1 peers) at 128.0 BPM" in ours.status
        # the show's beats fall on the peer's beats in the room, and its one on the peer's bar
        now, link_now = show.show_time(), ours.link.clock().micros()
        beat = clock.next_beat(show.latency.heard(now) + 0.1)
        for k in range(QUANTUM + 1):
            at = beat + k * clock.period
            peers_beat = peer.beat_at(link_now + int((show.latency.room(at) - now) * 1e6))
            assert off_grid(peers_beat) < 0.01  # 5 ms at 128 BPM
            assert round(peers_beat) % QUANTUM == clock.bar_position(at)
        now, link_now = show.show_time(), ours.link.clock().micros()
        grid = ours.grid(now)  # the session as read (beside the show's clock): a beat and the bar's start on the peer's
        assert off_grid(peer.beat_at(link_now + int((grid.bar_at - now) * 1e6)), QUANTUM) < 0.01
        assert off_grid(peer.beat_at(link_now + int((grid.beat_at - now) * 1e6))) < 0.01
        # in the event log: the join, once, not each of the reads
        assert [e.value.bpm for e in links("clock")] == [pytest.approx(128.0)]
        assert reads >= 20 and bus.counts["link"].applied + bus.counts["link"].repeated <= 4 + 2  # once a beat

        peer.state("tempo 140")  # the peer's user changes the tempo: one more line (Link keeps whole µs a beat)
        read_until(lambda: abs(show.engine.clock_state.bpm - 140) < 0.01, "the new tempo reaches the clock")
        start = session_beat()
        read_until(lambda: session_beat() > start + 4, "four beats at the new tempo")
        assert [e.value.bpm for e in links("clock")] == [pytest.approx(128.0), pytest.approx(140.0, abs=0.01)]
        assert all(1 <= e.value.bar_beat < QUANTUM + 1 for e in links("clock"))  # where in the bar it was read

        peer.leave()  # the session vanishes: the music drives the clock again, through the bus
        read_until(lambda: show.engine.clock_state.source == "music", "back to the music")
        assert len(links("follow")) == 1 and bus.events[-1].command == "follow"
        assert ours.status == "Link session gone: following the music"
        read_until(lambda: reads % 10 == 0, "a few more reads")
        assert len(links("follow")) == 1  # said once
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
    # through the bus: the join and the peer's tempo (one line, if it already was the session's), then `follow`
    linked = [e[1] for e in stats["control"]["events"] if e[0] == "link"]
    assert linked in (["clock", "follow"], ["clock", "clock", "follow"])


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

"""Controls with real parts: the command bus on a real show, OSC over UDP on 127.0.0.1, MIDI through
JACK's dummy driver (real virtual ports), presets on disk, fuzzed inputs."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from waiting import Watched, wait_until

from livejpp.audio_io import FileSource
from livejpp.control.commands import COMMANDS, CommandBus, table
from livejpp.control.mapping import PresetError, Presets, binding_from
from livejpp.engine.live import LiveShow
from livejpp.engine.trackers import TRACKERS
from livejpp.media.decode import read_audio_file

ROOT = Path(__file__).resolve().parent.parent
SONG = ROOT / "tests" / "media" / "music" / "lmms_Skiessi-C64.ogg"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def library(real_library, tmp_path_factory):
    copy = tmp_path_factory.mktemp("control") / "lib"
    shutil.copytree(real_library[0], copy)
    return copy


@pytest.fixture
def show(library):
    """A real show on the real library, listening: 12 s of the song pushed through its engine."""
    show = LiveShow(library, FileSource(SONG), size=(320, 180))
    show.engine.push(read_audio_file(SONG, 0, 12))
    return show


# --- the bus on a real show ------------------------------------------------------------------------
def test_every_value_command_changes_what_the_show_does(show):
    bus = CommandBus(show, Presets())
    bus.run("crossfade", 2.5)
    bus.run("transition", "wipe")
    bus.run("effect", 3)
    bus.run("intensity", "0.8")
    bus.run("brightness", 0.25)
    bus.run("blackout", 1)
    bus.run("bars", 3.4)  # a whole number of bars
    bus.run("hold", "on")
    bus.run("hud", 0)
    assert show.engine.selector.settings.crossfade_beats == 2.5
    assert (show.transition, show.effect, show.effect_amount, show.brightness) == (2, 3, 0.8, 0.25)
    assert show.blackout and show.engine.selector.held and not show.hud
    assert show.engine.selector.settings.bars_per_cut == 3
    bus.run("hold")  # no value: toggles
    bus.step("crossfade", -1)  # a key or an encoder: one step of half a beat
    bus.step("effect", 1)  # choices wrap around
    bus.run("brightness", 7)  # a fader past its end stays at the end
    assert not show.engine.selector.held
    assert show.engine.selector.settings.crossfade_beats == 2.0
    assert show.effect == 0 and show.brightness == 1.0
    assert bus.counts["api"].applied == 11 and bus.counts["keys"].applied == 2


def test_bad_values_are_refused_counted_and_change_nothing(show):
    bus = CommandBus(show, Presets())
    before = bus.state()
    for name, value in [
        ("crossfade", "abc"),
        ("crossfade", float("nan")),
        ("transition", 7),
        ("transition", "spin"),
        ("hold", "maybe"),
        ("bars", None),
        ("video", 3.0),
        ("nonsense", 1),
        ("brightness", b"\x00\x01"),
    ]:
        assert bus.run(name, value, "osc") is None
    assert bus.counts["osc"].refused == 9 and bus.counts["osc"].applied == 0
    assert bus.state() == before
    assert "brightness" in bus.last_error
    assert bus.run("next", 0.0, "osc") is None  # a button's release: nothing, and not an error
    assert bus.counts["osc"].ignored == 1


def test_next_video_and_tag_cut_to_the_clips_asked_for(show, library):
    bus = CommandBus(show, Presets())
    event = bus.run("next")
    assert event.layer is not None and event.layer.cut.reason == "forced" and show.pending[0] is event.layer
    event = bus.run("video", "EARTH")  # a part of the file name, any case
    assert Path(event.layer.record.source).name == "earth.mp4"
    assert {Path(show.engine.records[c].source).name for c, _ in show.engine.neighbours} == {"earth.mp4"}
    bus.run("video", "")  # let go
    event = bus.run("tag", "av")  # the folder the video came from
    assert Path(event.layer.record.source).parent.name == "av"
    assert {Path(show.engine.records[c].source).parent.name for c, _ in show.engine.neighbours} == {"av"}
    assert bus.run("tag", "no-such-folder") is None and show.forced == {"tag": "av"}  # refused, kept
    bus.run("tag", "")
    assert show.engine.allowed is None and len(show.engine.neighbours) == 14


def test_resync_puts_a_beat_and_the_bar_start_now(show):
    bus = CommandBus(show, Presets())
    show._t0 = time.monotonic() - 11.3  # the show has run 11.3 s, between two of its beats
    clock = show.engine.clock
    bus.run("resync")
    now = show.show_time()
    assert abs(clock.next_beat(now - 0.05) - now) < 0.06
    per_cut = show.engine.selector.settings.bars_per_cut * 4
    beats_ahead = round((show.engine.last_beat - now) / clock.period)
    assert (show.engine.beat_count - beats_ahead) % per_cut == 0  # the beat now starts a bar


def test_presets_set_the_show_and_a_bad_one_sets_nothing(show, tmp_path):
    bus = CommandBus(show, Presets(tmp_path))
    bus.run("preset", "peak")
    assert (show.bars, show.crossfade_beats, show.transition, show.effect) == (1, 0.5, 2, 1)
    bus.run("preset", "chill")
    assert (show.bars, show.crossfade_beats, show.transition, show.effect, show.brightness) == (4, 4.0, 0, 0, 0.9)
    (tmp_path / "broken.toml").write_text('[show]\nbars = 2\ncrossfade = "long"\n')
    (tmp_path / "unknown.toml").write_text("[show]\nbars = 2\nsparkle = 1\n")
    (tmp_path / "garbage.toml").write_text("[show\nbars = = 2\n")
    for name, problem in [
        ("broken", "broken.toml: crossfade: expects a number, got 'long'"),
        ("unknown", "unknown.toml: unknown setting 'sparkle'"),
        ("garbage", "garbage.toml: not a readable preset"),
        ("missing", "no preset 'missing' (presets: akai-apc-mini, broken, chill"),
    ]:
        assert bus.run("preset", name) is None
        assert show.bars == 4  # nothing of a bad preset is applied
        assert problem in bus.last_error
    assert bus.counts["api"].refused == 4


def test_switching_library_keeps_the_clock_and_plays_the_new_clips(show, library, tmp_path, media):
    from livejpp.library.build import build_library

    other = tmp_path / "other"
    build_library([media / "footage" / "mdn_flower.mp4"], other, progress=False)
    bus = CommandBus(show, Presets())
    beats, heard = show.engine.beat_count, show.engine.analyser.seconds
    bus.run("library", str(other))
    deadline = time.monotonic() + 30
    while show.engine.library != other and time.monotonic() < deadline:
        time.sleep(0.1)
    assert show.engine.library == other
    assert show.engine.beat_count == beats and show.engine.analyser.seconds == heard
    show.engine.push(read_audio_file(SONG, 12, 13))
    assert {Path(show.engine.records[c].source).name for c, _ in show.engine.neighbours} == {"mdn_flower.mp4"}
    assert bus.run("library", str(tmp_path / "nowhere")) is None  # refused; the show stays as it is


def test_the_readme_documents_every_command():
    readme = (ROOT / "README.md").read_text()
    assert table() in readme
    for name in COMMANDS:
        assert f"/livejpp/{name}" in readme or f"`{name}`" in readme


# --- MIDI mappings ---------------------------------------------------------------------------------
def test_controller_presets_map_their_controls():
    presets = Presets()
    nano = presets.midi_map("korg-nanokontrol2")
    assert nano.actions("cc", 0, 0, 127) == [("run", "brightness", 1.0)]  # fader 1 at the top
    assert nano.actions("cc", 0, 2, 127) == [("run", "crossfade", 4.0)]  # its own range
    assert nano.actions("cc", 1, 0, 127) == []  # another channel
    assert nano.actions("cc", 0, 33, 127) == [("run", "transition", "dip")]  # S2 pressed ...
    assert nano.actions("cc", 0, 33, 0) == []  # ... and let go
    assert nano.actions("cc", 0, 46, 127) == [("run", "hold", None)]  # cycle: toggles
    assert nano.actions("cc", 0, 44, 127) == [("run", "blackout", 1)]  # momentary
    assert nano.actions("cc", 0, 44, 0) == [("run", "blackout", 0)]
    apc = presets.midi_map("akai-apc-mini")
    assert apc.actions("note_on", 0, 0, 127) == [("run", "next", 1)]
    assert apc.actions("note_on", 0, 83, 127) == [("run", "preset", "peak")]
    assert apc.actions("cc", 0, 56, 0) == [("run", "brightness", 0.0)]
    generic = presets.midi_map("generic")
    assert generic.actions("cc", 5, 73, 1) == [("step", "crossfade", 1)]  # relative encoder, any channel
    assert generic.actions("cc", 5, 73, 126) == [("step", "crossfade", -2)]
    assert generic.actions("note_on", 9, 43, 100) == [("run", "effect", "next")]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"command": "sparkle", "cc": 1}, "unknown command"),
        ({"command": "next"}, "exactly one of note"),
        ({"command": "next", "cc": 130}, "0..127"),
        ({"command": "next", "note": 1, "channel": 17}, "channel must be 1..16"),
        ({"command": "crossfade", "note": 1, "mode": "relative"}, "must be a CC"),
        ({"command": "brightness", "cc": 1, "mode": "toggle"}, "on/off"),
        ({"command": "video", "note": 1}, "needs value"),
        ({"command": "brightness", "cc": 1, "range": "wide"}, "range must be"),
    ],
)
def test_a_bad_binding_names_the_file_and_the_problem(entry, problem):
    with pytest.raises(PresetError, match=problem) as info:
        binding_from(entry, "mine.toml [[midi]] #3")
    assert str(info.value).startswith("mine.toml [[midi]] #3")


# --- OSC over UDP ----------------------------------------------------------------------------------
class Feedback:
    """An OSC client's socket: what the show reports (/livejpp/state/KEY VALUE), newest value per key."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.state: dict = {}
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            message = OscMessage(data)
            self.state[message.address.rsplit("/", 1)[-1]] = message.params[0]

    def wait(self, key, test, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if key in self.state and test(self.state[key]):
                return self.state[key]
            time.sleep(0.02)
        raise AssertionError(f"feedback {key} = {self.state.get(key)!r} after {timeout} s")

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def start_show(library, tmp_path, *args, env=None):
    command = [
        sys.executable,
        "-m",
        "livejpp",
        "live",
        "--library",
        str(library),
        "--play",
        str(SONG),
        "--silent",
        "--headless",
        "--size",
        "320x180",
        "--stats",
        str(tmp_path / "stats.json"),
        *map(str, args),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def osc(address, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for a in args:
        builder.add_arg(a)
    return builder.build().dgram


def random_osc(rng: random.Random) -> bytes:
    """A well-formed message to a random address with random arguments: types a command may not take."""
    names = [n for n in COMMANDS if n not in ("quit", "library", "model", "fullscreen")] + ["state", "nope"]
    address = "/livejpp/" + rng.choice(names)
    if rng.random() < 0.3:
        address += "/" + rng.choice(["wipe", "step", "1", "", "x/y", "peak"])
    if rng.random() < 0.1:
        address = rng.choice(["/", "/other/next", "/livejpp", "//livejpp/next"])
    args = []
    for _ in range(rng.choice([0, 1, 1, 1, 2])):
        args.append(
            rng.choice(
                [
                    rng.uniform(-1e6, 1e6),
                    rng.randint(-(2**31), 2**31 - 1),
                    "".join(rng.choice("abc /\\é01") for _ in range(rng.randint(0, 12))),
                    bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))),
                    rng.choice([True, False]),
                    float("nan"),
                ]
            )
        )
    return osc(address, *args)


def test_osc_steers_the_show_reports_it_and_survives_fuzzing(library, tmp_path):
    port, feedback = free_port(), Feedback()
    show = start_show(
        library, tmp_path, "--duration", 25, "--osc-port", port, "--osc-feedback", f"127.0.0.1:{feedback.port}"
    )
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", port)
    try:
        feedback.wait("clip", bool, timeout=30)  # the show plays a clip
        sender.sendto(osc("/livejpp/crossfade", 2.5), target)
        assert feedback.wait("crossfade", lambda v: v == 2.5) == 2.5
        sender.sendto(osc("/livejpp/transition/wipe", 1.0), target)  # a TouchOSC button ...
        sender.sendto(osc("/livejpp/transition/wipe", 0.0), target)  # ... and its release
        assert feedback.wait("transition", lambda v: v == "wipe")
        sender.sendto(osc("/livejpp/video", "earth"), target)
        assert feedback.wait("source", lambda v: v == "earth.mp4")
        sender.sendto(osc("/livejpp/hold", 1), target)
        assert feedback.wait("hold", lambda v: v == 1)

        rng = random.Random(7)
        for i in range(400):  # fuzz: random bytes, then random messages, paced a little
            sender.sendto(bytes([rng.randrange(1, 256)]) + rng.randbytes(rng.randrange(0, 64)), target)
            sender.sendto(random_osc(rng), target)
            if i % 50 == 0:
                time.sleep(0.01)
        for _ in range(2000):  # an unpaced burst
            sender.sendto(osc("/livejpp/intensity", 0.3), target)

        sender.sendto(osc("/livejpp/blackout", 0), target)
        sender.sendto(osc("/livejpp/hold", 0), target)
        sender.sendto(osc("/livejpp/video", ""), target)
        sender.sendto(osc("/livejpp/brightness", 0.625), target)  # still listening after all that
        assert feedback.wait("brightness", lambda v: abs(v - 0.625) < 1e-6)
        assert feedback.wait("hold", lambda v: v == 0) == 0
        asked = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        asked.bind(("127.0.0.1", 0))
        asked.settimeout(2)
        asked.sendto(osc("/livejpp/state"), target)  # a surface that asks for everything at once
        replies = set()
        try:
            while True:
                replies.add(OscMessage(asked.recv(4096)).address)
        except TimeoutError:
            pass
        assert {"/livejpp/state/brightness", "/livejpp/state/clip", "/livejpp/state/bpm"} <= replies
        asked.close()
        sender.sendto(osc("/livejpp/quit"), target)
        out, err = show.communicate(timeout=60)
    finally:
        if show.poll() is None:
            show.kill()
        feedback.close()
        sender.close()
    assert show.returncode == 0, err
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["seconds"] < 24  # /livejpp/quit ended it
    counts = stats["control"]["inputs"]["osc"]
    assert counts["malformed"] >= 390  # random bytes (a few may parse as OSC by chance)
    assert counts["refused"] > 50 and counts["applied"] > 100  # what the burst left in the socket buffer
    assert 0 < counts["to_state_ms"]["n"] <= counts["applied"] and counts["to_frame_ms"]["n"] > 0
    assert any(c["reason"] == "forced" and c["video"] == "earth.mp4" for c in stats["cuts"])


def test_osc_listens_only_on_loopback_by_default(library, tmp_path):
    port = free_port()
    show = start_show(library, tmp_path, "--duration", 4, "--osc-port", port)
    try:
        deadline = time.monotonic() + 30
        listening = ""
        while time.monotonic() < deadline and f":{port:04X}" not in listening:
            listening = Path("/proc/net/udp").read_text()
            time.sleep(0.1)
        # 0100007F is 127.0.0.1 as /proc/net/udp writes it: nobody on the network reaches the show
        assert f"0100007F:{port:04X}" in listening
        (tmp_path / "x").mkdir()  # its own stats file: the second show fails on the port, not on where it writes
        busy = start_show(library, tmp_path / "x", "--duration", 4, "--osc-port", port)  # the port is taken
        out, err = busy.communicate(timeout=60)
        assert busy.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in err
        assert len(err.strip().splitlines()[-1]) < 200
    finally:
        show.communicate(timeout=60)


def ask_state(sock, target, timeout=30.0) -> set[str]:
    """Ask for /livejpp/state until the show answers (its OSC server is up): the addresses heard."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        sock.sendto(osc("/livejpp/state"), target)
        try:
            heard = {OscMessage(sock.recv(4096)).address}
        except TimeoutError:
            continue
        try:
            while True:
                heard.add(OscMessage(sock.recv(4096)).address)
        except TimeoutError:
            return heard
    raise AssertionError(f"no /livejpp/state reply from {target} in {timeout} s")


def malformed_packets():
    """What python-osc cannot read: a bundle holding neither message nor bundle (python-osc logs its raw
    bytes), a message with a type it does not know (it logs that, and applied what was left), raw bytes."""
    bundle = b"#bundle\0" + bytes(8) + (16).to_bytes(4, "big") + b"\x01" * 16
    unknown_type = b"/livejpp/next\0\0\0,X\0\0"
    return [bundle, unknown_type, b"\x07garbage"]


def test_an_osc_flood_of_malformed_packets_is_counted_and_summed_up_in_a_line(library, tmp_path):
    port = free_port()
    show = start_show(library, tmp_path, "--duration", 25, "--osc-port", port)
    target = ("127.0.0.1", port)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ask_state(sender, target)
        packets, sent = [*malformed_packets(), osc("/livejpp/no-such-command", 1)], 0  # and well-formed nonsense
        flood_until = time.monotonic() + 3.0  # the flood's length, not a wait
        while time.monotonic() < flood_until:
            sender.sendto(packets[sent % 4], target)
            sent += 1
        assert "/livejpp/state/clip" in ask_state(sender, target)  # still answering after the flood
        sender.sendto(osc("/livejpp/quit"), target)
        out, err = show.communicate(timeout=60)
    finally:
        if show.poll() is None:
            show.kill()
        sender.close()
    assert show.returncode == 0, err[-2000:]
    stats = json.loads((tmp_path / "stats.json").read_text())
    counts = stats["control"]["inputs"]["osc"]
    said = [line for line in err.splitlines() if "malformed" in line]
    assert said and all(line.startswith("livejpp: OSC: ignored ") and line.endswith(" from 127.0.0.1") for line in said)
    # every malformed packet the show read is in a summary line, none in a line of its own
    assert sum(int(line.split()[3]) for line in said) == counts["malformed"] > 1000
    assert len(said) <= 2 + stats["seconds"] / 5  # a line at once, then at most one every 5 s and one at the end
    assert counts["refused"] > 1000  # the unknown command, each one counted ...
    refusals = [line for line in err.splitlines() if line.startswith("livejpp: osc: ")]
    summed = [int(line.split()[2]) for line in refusals if line.endswith(" s") and "more commands refused" in line]
    assert summed and len(refusals) - len(summed) + sum(summed) == counts["refused"]  # said or summed up, all
    assert len(err) < 4000, err[:2000]  # ... but said a few times; python-osc printed each packet's bytes: megabytes
    assert not any(c["reason"] == "next" for c in stats["cuts"])  # the message with an unknown type was not applied


def lan_address() -> str:
    """An address of this machine that is not loopback, as a sender on the network would have."""
    found = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout.split()
    addresses = [found[i + 1].split("/")[0] for i, word in enumerate(found) if word == "inet"]
    lan = [a for a in addresses if not a.startswith("127.")]
    if not lan:
        pytest.skip("this machine has no network address but loopback")
    return lan[0]


@pytest.mark.parametrize("with_feedback", [False, True])
def test_osc_state_is_answered_only_on_this_machine_or_to_the_feedback_client(library, tmp_path, with_feedback):
    port, feedback = free_port(), Feedback()
    args = ["--osc-feedback", f"127.0.0.1:{feedback.port}"] if with_feedback else []
    show = start_show(library, tmp_path, "--duration", 25, "--osc-host", "0.0.0.0", "--osc-port", port, *args)
    local = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    remote = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    remote.bind((lan_address(), 0))  # a sender from the network (it could forge its address)
    remote.setblocking(False)
    try:
        ask_state(local, ("127.0.0.1", port))  # the show is up and answers this machine
        if with_feedback:
            feedback.wait("tempo_source", bool)
            feedback.state.clear()
        remote.sendto(osc("/livejpp/state"), (lan_address(), port))
        if with_feedback:  # the request is answered, to the feedback client
            feedback.wait("tempo_source", bool)
        assert ask_state(local, ("127.0.0.1", port))  # asked after the remote request: that one is handled
        with pytest.raises(BlockingIOError):
            remote.recv(4096)  # ... and the remote sender heard nothing
        local.sendto(osc("/livejpp/quit"), ("127.0.0.1", port))
        out, err = show.communicate(timeout=60)
    finally:
        if show.poll() is None:
            show.kill()
        feedback.close()
        local.close()
        remote.close()
    assert show.returncode == 0, err[-2000:]
    warned = [line for line in err.splitlines() if "every network interface" in line]
    assert len(warned) == 1 and warned[0].startswith(f"livejpp: OSC: listening on 0.0.0.0:{port}: every network")
    ignored = [line for line in err.splitlines() if "/livejpp/state request" in line]
    if with_feedback:
        assert not ignored, err
    else:
        assert ignored == [f"livejpp: OSC: ignored 1 /livejpp/state request (answered only on this machine, or to"
                           f" --osc-feedback) from {lan_address()}"]  # fmt: skip


# --- MIDI through JACK's dummy driver --------------------------------------------------------------
@pytest.fixture
def jack(tmp_path, monkeypatch):
    """A JACK server with no sound card, for real virtual MIDI ports (DESIGN.md)."""
    if not shutil.which("jackd"):
        pytest.fail("jackd is not installed (tools/install-system-deps.sh installs jackd2)")
    name = f"livejpp-test-{os.getpid()}"
    env = {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1", "LIVEJPP_MIDI_API": "jack"}
    server = subprocess.Popen(
        ["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER"):  # this test's own ports use it too
        monkeypatch.setenv(key, env[key])
    import rtmidi

    deadline = time.monotonic() + 20
    while True:
        try:
            rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "probe").delete()
            break
        except rtmidi.SystemError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield env
    server.terminate()
    server.wait(timeout=10)


def controller(name="nanoKONTROL2 test"):
    import rtmidi

    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "controller")
    out.open_virtual_port(name)
    return out


def send_until(device, message: list[int], feedback: Feedback, key: str, value) -> None:
    """Sends `message` until the show reports `key` = `value`: JACK carries a port's messages only a
    moment after the show has opened it."""

    def arrived() -> bool:
        device.send_message(message)
        return feedback.state.get(key) == value

    wait_until(arrived, timeout=10, what=f"MIDI {message} -> {key} = {value}")


def all_midi_handled(device, feedback: Feedback) -> None:
    """Every message sent to the show so far has been handled: MIDI keeps its order, so fader 1 is
    moved to a new value (again, if JACK lost it) until the show reports the last value sent."""
    for value in range(1, 21):
        device.send_message([0xB0, 0, value])
        try:
            wait_until(lambda v=value: abs(feedback.state.get("brightness", -1) - v / 127) < 1e-3, 1.0, "")
            return
        except AssertionError:
            continue
    raise AssertionError("MIDI: the show handled none of 20 fader moves")


def test_midi_controls_learn_clock_and_a_port_that_comes_back(library, tmp_path, jack):
    port, feedback = free_port(), Feedback()
    learned = tmp_path / "learned.toml"
    device = controller()
    show = start_show(
        library,
        tmp_path,
        "--duration",
        40,
        "--osc-port",
        port,
        "--osc-feedback",
        f"127.0.0.1:{feedback.port}",
        "--midi-in",
        "nanoKONTROL2*",
        "--midi-map",
        "korg-nanokontrol2",
        "--midi-clock",
        "--learn",
        learned,
        env=jack,
    )
    lines = Watched(show)  # its log lines, read as they come
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        lines.wait_for("MIDI in: ")
        send_until(device, [0xB0, 0, 0], feedback, "brightness", 0.0)  # fader 1 down: brightness 0
        # S2: the dip transition (pressed again if JACK's dummy cycle, starved on a loaded machine, lost it)
        send_until(device, [0xB0, 33, 127], feedback, "transition", "dip")
        device.send_message([0xB0, 33, 0])
        all_midi_handled(device, feedback)  # no press of S2 is still on its way when learn is armed

        sender.sendto(osc("/livejpp/learn", "bars"), ("127.0.0.1", port))  # learn: the next control ...
        lines.wait_for("MIDI learn: move a control for bars")
        device.send_message([0xB0, 20, 127])  # ... knob 5, turned
        lines.wait_for("bound to bars; saved")
        saved = Presets().midi_map(str(learned))  # a preset file that loads like any other
        assert any(b.command == "bars" and b.control == "cc" and b.number == 20 for b in saved.bindings)
        assert len(saved.bindings) == len(Presets().midi_map("korg-nanokontrol2").bindings) + 1
        device.send_message([0xB0, 20, 0])  # the learned knob now sets the bars
        feedback.wait("bars", lambda v: v == 1)

        rng = random.Random(3)
        for _ in range(300):  # fuzz: random bytes as MIDI messages
            device.send_message([rng.randrange(256) for _ in range(rng.randint(1, 3))])
        start, sent = time.monotonic(), []
        for i in range(24 * 12):  # MIDI clock at 125 BPM: 24 pulses a beat, 20 ms apart
            time.sleep(max(0.0, start + 0.02 * i - time.monotonic()))
            device.send_message([0xF8])
            sent.append(time.monotonic())
        # the tempo the pulses were sent at (a starved machine sends them a little late), over the two
        # beats the show measured last: the 49 pulses up to the last beat's first pulse (pulse 264)
        window = sent[264 - 48 : 265]
        played = 60 / ((window[-1] - window[0]) / 48 * 24)
        bpm = feedback.wait("bpm", lambda v: abs(v - played) < 4)
        assert feedback.wait("tempo_source", lambda v: v == "midi")

        device.close_port()  # the controller is unplugged ...
        device.delete()
        lost = lines.wait_for("vanished: reopening it when it comes back")
        device = controller()  # ... and plugged in again
        lines.wait_for("MIDI in: ", after=lost)
        send_until(device, [0xB0, 0, 127], feedback, "brightness", 1.0)  # fader 1 up: brightness 1
        sender.sendto(osc("/livejpp/quit"), ("127.0.0.1", port))
        out, err = lines.communicate(timeout=60)
    finally:
        if show.poll() is None:
            show.kill()
        feedback.close()
        sender.close()
        device.delete()
    assert show.returncode == 0, err
    stats = json.loads((tmp_path / "stats.json").read_text())
    midi = stats["control"]["midi"]
    assert midi["opens"] == 2 and midi["lost"] == 1  # reopened when it came back
    counts = stats["control"]["inputs"]["midi"]
    assert counts["malformed"] > 20 and counts["applied"] >= 4
    assert stats["control"]["learned"] and "bars" in stats["control"]["learned"][0]
    assert 110 < played < 130 and abs(bpm - played) < 4 and counts["to_state_ms"]["n"] == counts["applied"]
    # the clock went through the bus: its tempo in the event log, as the MIDI input's, not once a pulse
    clocks = [e for e in stats["control"]["events"] if e[1] == "clock"]
    assert clocks and all(e[0] == "midi" for e in clocks) and len(clocks) <= 11  # 288 pulses, 11 measured beats


def test_midi_clock_beats_go_through_the_bus_and_its_log_keeps_the_tempo_changes(show):
    """The beats a MIDI clock's pulses make are `clock` commands (received = the beat's pulse); the event
    log holds one per tempo, not one per beat (2 a second all night) nor per pulse."""
    from livejpp.control.midi import ClockFollower

    bus = CommandBus(show, Presets())
    follower, start = ClockFollower(bus), time.monotonic()
    at = start

    def pulses(n: int, apart: float) -> None:
        nonlocal at
        for _ in range(n):
            follower.pulse(at)
            at += apart

    pulses(24 * 12, 0.02)  # 12 beats at 125 BPM
    clock = show.engine.clock_state
    assert clock.source == "midi" and clock.bpm == pytest.approx(125)
    beat = show.latency.heard(start + 264 * 0.02 - show.start_time)  # the last beat: the 265th pulse
    assert show.engine.clock.next_beat(beat - 0.1) == pytest.approx(beat, abs=1e-6)  # the beat is on its pulse
    pulses(24 * 8, 0.025)  # then 8 beats at 100 BPM
    assert show.engine.clock_state.bpm == pytest.approx(100)
    clocks = [e for e in bus.events if e.command == "clock"]
    assert [e.origin for e in clocks] == ["midi"] * len(clocks)
    assert clocks[0].value.bpm == pytest.approx(125) and clocks[-1].value.bpm == pytest.approx(100)
    assert len(clocks) <= 4  # 125, the change (one or two beats between), 100: not 18 beats
    assert bus.counts["midi"].applied + bus.counts["midi"].repeated == 11 + 8  # every beat reached the show
    follower.stop()  # stop: the music's beat again, in the log too ...
    assert show.engine.clock_state.source == "music" and bus.events[-1].command == "follow"
    pulses(24 * 3, 0.025)
    assert bus.events[-1].command == "clock" and show.engine.clock_state.source == "midi"  # ... and back


def test_a_clock_that_says_where_in_the_bar_it_is_sets_the_one(show, caplog):
    """`clock BPM BEAT` (Link sends it; an OSC app may, as two numbers): the tempo, and where in the bar the
    moment it was received falls, so the show's one is the sender's one; a beat outside a bar is refused in one
    line."""
    bus = CommandBus(show, Presets())
    received = time.monotonic()
    assert bus.run("clock", "120 3.5", "osc", received) is not None  # half way from beat 3 to beat 4
    clock, heard = show.engine.clock, show.latency.heard(received - show.start_time)
    assert show.engine.clock_state.source == "osc" and clock.bpm == pytest.approx(120)
    assert clock.next_beat(heard) == pytest.approx(heard + 0.25)  # beat 4, a quarter second on
    assert clock.bar_position(heard + 0.25) == 3 and clock.bar_position(heard + 0.75) == 0  # then the one
    with caplog.at_level("WARNING", logger="livejpp.control"):
        assert bus.run("clock", "120 0", "osc") is None
    assert caplog.messages == ["osc: clock: the beat in the bar is 1 <= BEAT < 17, got 0"]
    assert clock.bar_position(heard + 0.75) == 0 and bus.counts["osc"].refused == 1  # the clock as it was
    # an OSC app sends the two as numbers over UDP (refused before: "takes one value, got 2")
    from pythonosc.udp_client import SimpleUDPClient

    from livejpp.control.osc import OscServer

    server = OscServer(bus, port=0)
    server.start()
    try:
        SimpleUDPClient(*server.address[:2]).send_message("/livejpp/clock", [90.0, 2.5])
        wait_until(lambda: clock.bpm == pytest.approx(90) or bus.counts["osc"].refused > 1, 5.0, "the OSC clock")
    finally:
        server.stop()
    assert bus.counts["osc"].refused == 1 and bus.events[-1].command == "clock"
    heard = show.latency.heard(bus.events[-1].received - show.start_time)
    assert clock.bar_position(heard + 1 / 3) == 2  # beat 3 a third of a second on (90 BPM), as the text form


def test_keys_walk_through_the_videos_folders_and_presets(show):
    bus = CommandBus(show, Presets())
    videos = bus.options("video")
    assert "earth.mp4" in videos and len(videos) == 8
    seen = [Path(bus.cycle("video").layer.record.source).name for _ in videos]
    assert seen == videos  # each video of the library in turn, cutting to it ...
    bus.cycle("video")
    assert show.forced == {} and show.engine.allowed is None  # ... then all of them again
    assert bus.options("tag") == ["av", "footage"]
    bus.cycle("tag")
    assert show.forced == {"tag": "av"}
    assert bus.options("preset") == ["chill", "peak"]  # the presets with [show] settings
    bus.cycle("preset")
    bus.cycle("preset")
    assert show.bars == 1  # peak
    bus.cycle("preset")
    assert show.bars == 4  # chill again


def test_a_missing_midi_system_or_map_is_one_clear_line(library, tmp_path):
    env = {**os.environ, "JACK_DEFAULT_SERVER": f"nobody-{os.getpid()}", "JACK_NO_START_SERVER": "1"}
    for args, problem in [
        (["--midi-in", "x", "--midi-api", "jack"], "MIDI: cannot reach the jack MIDI system"),
        (["--midi-in", "x", "--midi-map", "no-such-controller"], "no preset 'no-such-controller' (presets: "),
    ]:
        show = start_show(library, tmp_path, "--duration", 3, "--osc-port", free_port(), *args, env=env)
        _, err = show.communicate(timeout=60)
        assert show.returncode == 1
        assert err.strip().splitlines()[-1].startswith(f"livejpp: error: {problem}")


# --- musical time: phrase, beat tracker, and the clock on the HUD and in OSC feedback ----------------
def test_phrase_and_beat_tracker_are_commands_and_preset_settings(show, tmp_path):
    bus = CommandBus(show, Presets(tmp_path))
    bus.run("phrase", 8)
    assert show.engine.selector.settings.phrase_bars == 8 and bus.state()["phrase"] == 8
    bus.run("beat_tracker", "today")
    assert show.engine.clock.tracker == "today" and bus.state()["beat_tracker"] == "today"
    missing = next((n for n in COMMANDS["beat_tracker"].choices if n not in TRACKERS), None)
    if missing is not None:  # one the build lacks: refused in one line, the clock keeps its tracker
        assert bus.run("beat_tracker", missing) is None
        assert f"beat tracker {missing!r} is not available in this build" in bus.last_error
        assert show.engine.clock.tracker == "today"
        (tmp_path / "elsewhere.toml").write_text(f'[show]\nbars = 3\nbeat_tracker = "{missing}"\n')
        assert bus.run("preset", "elsewhere") is None and show.bars != 3  # nothing of it is applied
    (tmp_path / "phrases.toml").write_text('[show]\nbars = 1\nphrase = 16\nbeat_tracker = "today"\n')
    bus.run("preset", "phrases")
    assert (show.bars, show.phrase, show.beat_tracker) == (1, 16, "today")


def test_the_window_draws_one_frozen_snapshot_of_what_the_bus_set(show):
    """The window reads one snapshot per frame: the bus's changes land in the next one, never mid-frame."""
    import dataclasses

    bus = CommandBus(show, Presets())
    bus.run("transition", "wipe")
    bus.run("blackout")
    before = show.snapshot()
    bus.run("blackout")
    after = show.snapshot()
    assert before.blackout and not after.blackout  # the earlier frame kept what it was given
    assert before.transition == after.transition == show.transition != 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.blackout = False
    bus.run("help", None, "keys")  # the window's own toggles are bus commands, in its event log
    bus.run("hud", False, "cli")  # and so are the command line's start-up flags
    shot = show.snapshot()
    assert shot.help and not shot.hud
    assert [(e.command, e.origin) for e in list(bus.events)[-2:]] == [("help", "keys"), ("hud", "cli")]


HUD_WINDOW = r"""
import json, sys, time
from livejpp.audio_io import DeviceSource
from livejpp.control.inputs import ControlOptions, Controls
from livejpp.engine.live import LiveShow
from livejpp.render.window import ShowWindow

show = LiveShow(sys.argv[1], DeviceSource("no such device"), size=(320, 180))
controls = Controls(show, ControlOptions(osc=False))
taken, shot = show.snapshot, []
show.snapshot = lambda: shot.append(taken()) or shot[-1]  # the snapshot each frame drew, kept to compare


class Watched(ShowWindow):
    seen = []

    def draw_frame(self):
        if 1.0 < time.monotonic() - started < 2.5:  # a fader moved over OSC: a command every frame
            self.bus.run("intensity", 0.5, "osc")
        if time.monotonic() - started > 2.5 and not self.bus.last_error:
            self.bus.run("transition", "spin", "osc")  # refused: the controls' line says so
        super().draw_frame()
        hud = self.hud_lines
        self.seen.append((time.monotonic(), shot[-1].hud_text, "\n".join(hud.wanted), hud.text))


window = Watched(show, show.size, show.fps, show.layers_count, controls, headless=True)
window.open()
started = time.monotonic()
window.play(3.5)
print(json.dumps(Watched.seen))
"""


def lines_apart(before: str, after: str) -> int:
    """How many lines of a HUD text differ from another's (lines added or taken away count too)."""
    old, new = before.split("\n") if before else [], after.split("\n") if after else []
    return sum(a != b for a, b in zip(old, new, strict=False)) + abs(len(old) - len(new))


def test_the_window_shows_the_hud_text_of_the_frame_it_draws_laid_out_once_per_refresh(library):
    """The show lays the HUD out every HUD_REFRESH; the window takes that text on the frame that carries it
    (no second timer of its own to lag it), with its controls' line, and shows it whole within as many frames
    as lines changed (a line a frame); it takes a new text no more often, even while an OSC fader changes the
    controls' line every frame."""
    from headless_gl import run_gl_script

    from livejpp.engine.hud import HUD_REFRESH

    run = run_gl_script(HUD_WINDOW, str(library), timeout=120)
    frames = json.loads(run.stdout.splitlines()[-1])
    assert len(frames) > 30
    for at, hud, wanted, _ in frames:
        own = re.match(r" *\d+\.\d fps   dropped \d+   ", wanted)  # the window's own frame figures, then the show's
        assert own, (at, wanted)
        taken = wanted[own.end() :]
        assert taken == hud or taken.startswith(hud + "\n"), (at, hud, wanted)  # this frame's text, not older
    for (_, _, _, before), (at, _, _, shown) in zip(frames, frames[1:], strict=False):
        assert lines_apart(before, shown) <= 1, (at, before, shown)  # a line a frame
    changes = [n for n in range(1, len(frames)) if frames[n][2] != frames[n - 1][2]]
    for n, after in zip(changes, [*changes[1:], len(frames)], strict=True):
        lines = lines_apart(frames[n - 1][3], frames[n][2])
        if n + lines - 1 < after:  # (unless a newer text came first)
            assert frames[n + lines - 1][3] == frames[n][2], frames[n : n + lines]  # whole within N frames
    assert len(changes) >= 5  # the HUD is alive (its fps figure changes)
    gaps = [frames[b][0] - frames[a][0] for a, b in zip(changes, changes[1:], strict=False)]
    assert min(gaps) > HUD_REFRESH / 2, gaps  # once per refresh, fader or not (not each frame, 1/30 s); slow frames
    assert any("osc 0 ok 0 bad" not in shown and "osc " in shown for *_, shown in frames)  # the fader counted
    assert "last refused: osc: transition: expects one of" in frames[-1][2]


HUD_LINES = r"""
import dataclasses, json, sys
import numpy as np
import pyglet
from livejpp.audio_io import DeviceSource
from livejpp.engine.live import LiveShow
from livejpp.render.window import ShowWindow

W, H, HOLD = 640, 360, 8  # each text held 8 frames
texts = json.loads(sys.argv[2])
show = LiveShow(sys.argv[1], DeviceSource("no such device"), size=(W, H))
given = [None]
taken = show.snapshot
show.snapshot = lambda: dataclasses.replace(taken(), hud=True, hud_text=given[0], blackout=True)  # our text on black
frames, wanted, refs = [], [], []


class Probe(ShowWindow):
    n = 0

    def draw_frame(self):
        if self.n % HOLD == 0:
            given[0] = texts[self.n // HOLD]  # a new string: as the show lays one out each refresh
        super().draw_frame()
        buffer = np.empty((H, W, 4), np.uint8)
        self.compositor.read_bgra_into(buffer)
        frames.append(buffer[::-1, :, :3][:200].copy())  # top row first: the HUD's part
        self.n += 1
        if self.n == len(texts) * HOLD:  # each text as one multiline label, as the HUD was drawn before
            for _, text in wanted:
                self.window.clear()
                label = pyglet.text.Label(text, x=12, y=H - 12, anchor_y="top", multiline=True, width=W - 24,
                                          font_size=12, color=(255, 255, 255, 230))
                label.draw()
                self.compositor.read_bgra_into(buffer)
                refs.append(buffer[::-1, :, :3][:200].copy())
            line = pyglet.text.Label("X", multiline=True, width=W - 24, font_size=12)
            meta["line_height"] = line.content_height
            pyglet.app.exit()


meta = {}
window = Probe(show, show.size, show.fps, show.layers_count, headless=True)
window.open()
figures = window.frame_stats.hud_figures
def hud_figures(show_time):  # the window's own figures lead the text: what it was given to show, and when
    text = figures(show_time)
    wanted.append((window.n, text + given[0]))
    return text
window.frame_stats.hud_figures = hud_figures
window.play(60)
np.savez(sys.argv[3] + "/hud.npz", frames=np.array(frames), refs=np.array(refs))
json.dump(meta | {"wanted": wanted}, open(sys.argv[3] + "/hud.json", "w"))
"""


def test_the_hud_changes_one_line_a_frame_and_draws_what_its_one_label_drew(library, tmp_path):
    """A new HUD text of N changed lines is drawn whole within N frames, and no frame changes more than one line
    on screen (laying a line out is the cost: never the whole text on one frame); once drawn, the HUD is pixel
    for pixel what one multiline label of that text drew at the same place: every line, a long one wrapped."""
    import numpy as np
    from headless_gl import run_gl_script

    base = [
        "analysis   5.2 ms   stale hops 0",
        "131.8 BPM music/auto  beat 2/4  conf 35%   every 2 bars   HOLD  tag=main",
        "now  4b4fdf4c7165-0000  earth.mp4",
        "next 6b4188afa9b7-0000  big_buck_bunny_0_30.webm  d=0.358",
        "sync: searching",
    ]
    texts = [
        base,  # from nothing: every line new
        [base[0].replace("5.2", "6.1"), base[1].replace("2/4", "3/4"), *base[2:]],  # a refresh: two lines
        [*base, 'HEARING NOTHING: device "x" not found'],  # a line more
        [*base[:3], base[4], 'HEARING NOTHING: device "x" not found'],  # one gone from the middle: the rest move up
        [*base[:3]],  # two lines gone from the end
        [*base, "layer 2: 456e6eaef8d3-0000 mdn_bug.mp4 50% alpha   " * 3],  # and one that wraps
    ]
    run_gl_script(HUD_LINES, str(library), json.dumps(["\n".join(t) for t in texts]), str(tmp_path), timeout=120)
    data, meta = np.load(tmp_path / "hud.npz"), json.loads((tmp_path / "hud.json").read_text())
    frames, refs, wanted, height = data["frames"], data["refs"], meta["wanted"], meta["line_height"]
    assert [n for n, _ in wanted] == [8 * k for k in range(len(texts))]  # each text given once, when new
    lit = frames[-1].max(axis=-1) > 0
    assert all(lit[12 + k * height : 12 + (k + 1) * height].any() for k in range(len(texts[-1]) + 2))  # all lines
    before = [""]
    for k, ((start, text), ref) in enumerate(zip(wanted, refs, strict=True)):
        changed = lines_apart(before[-1], text)
        for n in range(start, start + 8):
            if n and k < len(texts) - 1:  # (the last text's long line wraps: two lines' height)
                moved = (frames[n] != frames[n - 1]).any(axis=(1, 2))  # rows that changed since the frame before
                lines = {(row - 12) // height for row in np.flatnonzero(moved)}
                assert len(lines) <= 1, (n, sorted(lines), text)  # one line a frame, never the whole text
            if n >= start + changed - 1:
                assert np.array_equal(frames[n], ref), (n, changed, text)  # whole within N frames, as one label drew it
        before.append(text)


def test_the_hud_and_osc_feedback_show_the_clock(show):
    from livejpp.control.osc import OscFeedback
    from livejpp.engine.hud import hud_text as _hud_text

    bus = CommandBus(show, Presets())
    clock = show.engine.clock
    show._t0 = time.monotonic() - 11.3
    hud = f"BPM music/{clock.tracker}  beat {clock.bar_position(show.show_time()) + 1}/{clock.beats_per_bar}  conf "
    assert hud in _hud_text(show)
    listener = Feedback()
    feedback = OscFeedback(bus, ("127.0.0.1", listener.port))
    try:
        feedback.send_all()
        assert listener.wait("clock_source", lambda v: v == "music")
        assert listener.wait("beats_per_bar", lambda v: v == 4)
        assert listener.wait("bar_beat", lambda v: v in (1, 2, 3, 4))
        assert listener.wait(
            "confidence", lambda v: abs(v - round(clock.confidence, 2)) < 1e-6 and 0 <= v <= 1
        )  # float32
        for _ in range(3):  # taps half a second apart
            show._t0 -= 0.5
            bus.run("tap")
        feedback.send_changes()
        assert listener.wait("clock_source", lambda v: v == "tap") and listener.wait("confidence", lambda v: v == 1)
        assert listener.wait("tempo_source", lambda v: v == "tap")  # the old name stays
    finally:
        feedback.stop()
        listener.close()
    assert f"BPM tap/{clock.tracker}  beat " in _hud_text(show) and "conf 100%" in _hud_text(show)


def test_osc_feedback_corrects_a_value_a_state_request_sent_that_changed_back(show):
    """A surface asked for the whole state while hold was on; hold went off before the next check:
    the client must hear that it is off (it once kept showing HOLD for the rest of the show)."""
    from livejpp.control.osc import OscFeedback

    bus = CommandBus(show, Presets())
    listener = Feedback()
    feedback = OscFeedback(bus, ("127.0.0.1", listener.port))
    try:
        feedback.send_changes()
        assert listener.wait("hold", lambda v: v == 0) == 0
        bus.run("hold", 1)
        feedback.send_all(reply_to=None)  # a /livejpp/state request, between two checks
        assert listener.wait("hold", lambda v: v == 1) == 1
        bus.run("hold", 0)
        feedback.send_changes()
        assert listener.wait("hold", lambda v: v == 0) == 0
    finally:
        feedback.stop()
        listener.close()


def test_the_hud_and_osc_feedback_never_show_half_a_new_grid(show):
    """The analysis thread changes the clock under the engine lock, one attribute after another; the
    window and the OSC feedback read without that lock, so they read the grid published whole."""
    from livejpp.control.osc import OscFeedback
    from livejpp.engine.hud import hud_text as _hud_text

    bus = CommandBus(show, Presets())
    feedback = OscFeedback(bus, ("127.0.0.1", free_port()))
    clock = show.engine.clock
    before = (f"{clock.bpm:5.1f} BPM", f"/{clock.beats_per_bar}  conf", round(clock.bpm, 2))
    assert clock.period != 0.4 and clock.beats_per_bar == 4
    halfway, finish = threading.Event(), threading.Event()

    def new_grid():  # a hop adopting a 3/4 grid at 150 BPM: the tempo and the meter are in, the bar origin not yet
        with show.engine_lock:
            clock.period, clock.beats_per_bar = 0.4, 3
            halfway.set()
            finish.wait(10)
            clock.bar_anchor = clock.anchor
            show.engine.publish_clock()

    writer = threading.Thread(target=new_grid)
    writer.start()
    try:
        assert halfway.wait(10)
        hud, state = _hud_text(show), feedback.state()
        assert before[0] in hud and before[1] in hud, hud  # the grid published last, whole
        assert (state["bpm"], state["beats_per_bar"]) == (before[2], 4)
    finally:
        finish.set()
        writer.join()
        feedback.stop()
    hud = _hud_text(show)
    assert "150.0 BPM" in hud and "/3  conf" in hud, hud  # the new grid, once published


def test_a_new_beat_tracker_is_built_while_the_show_goes_on(show, monkeypatch):
    """A learned tracker loads its model when chosen (BeatNet: an ONNX session, a stall of its own);
    the analysis must not wait for it: it is built outside the engine lock, then swapped in."""
    from livejpp.engine.trackers import TodayTracker

    lock_free = []

    def hop_could_run() -> bool:  # what the analysis thread would find: the engine lock, free or held
        got = []

        def hop():
            got.append(show.engine_lock.acquire(timeout=0.5))
            if got[0]:
                show.engine_lock.release()

        thread = threading.Thread(target=hop)
        thread.start()
        thread.join()
        return got[0]

    class Loaded(TodayTracker):
        name = "bar"

        def __init__(self):  # a slow load: the analysis goes on meanwhile
            lock_free.append(hop_could_run())
            super().__init__()

    monkeypatch.setitem(TRACKERS, "bar", Loaded)
    old = show.engine.clock._tracker
    bus = CommandBus(show, Presets())
    assert bus.run("beat_tracker", "bar") is not None
    assert lock_free == [True]  # built while the engine lock was free
    assert show.engine.clock.tracker == "bar" and show.engine.clock._tracker is not old  # swapped in
    show.engine.push(read_audio_file(SONG, 12, 14))  # and it follows the music from the next hop
    assert show.engine.clock_state.tracker == "bar"


def test_the_calibration_line_holds_only_while_its_offset_does(show):
    """The HUD says what a tap calibration found while that offset holds; once the VJ moves the offset
    it says the new one, not the stale result. Taps that measure nothing are said while calibrating."""
    bus = CommandBus(show, Presets())
    beats = show.engine.beats[-10:-2]

    def tap_at(t: float) -> None:
        show._t0 = time.monotonic() - t  # the show's clock reads `t` as the VJ taps
        bus.run("tap")

    show.calibrate()
    for i, beat in enumerate(beats):  # scattered taps: nothing measured, the calibration goes on
        tap_at(show.latency.room(beat) + (0.2 if i % 2 else -0.15))
    assert show.calibration == [] and "CALIBRATING" in show.sync_line() and "apart" in show.sync_line(), (
        show.calibrated,
        show.engine.clock.period,
        beats,
    )
    for beat in beats:  # 30 ms after each beat heard
        tap_at(show.latency.room(beat) + 0.03)
    assert show.sync_line().startswith("calibrated: A/V offset +30 ms"), show.sync_line()
    bus.run("av_offset", 80)
    assert show.sync_line() == "A/V offset +80 ms"
    assert show.summary()["latency"]["calibration"].startswith("calibrated: A/V offset +30 ms")  # the stats keep it

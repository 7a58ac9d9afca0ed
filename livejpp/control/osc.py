"""OSC in and out (python-osc over UDP): another program or a TouchOSC-like surface steers the show
and sees what plays.

Address space (every command of control/commands.py):

    /livejpp/COMMAND [VALUE]      /livejpp/next   /livejpp/crossfade 1.5   /livejpp/hold 1
    /livejpp/COMMAND/WORD [1]     /livejpp/transition/wipe   /livejpp/preset/peak   (buttons)
    /livejpp/COMMAND/step [N]     /livejpp/crossfade/step -1   (encoders: N steps, default 1)
    /livejpp/state                replies with every /livejpp/state/... value at once
    /livejpp/layer N WHAT VALUE   /livejpp/layer 2 opacity 0.5   /livejpp/layer/2/blend add   (layers set by hand)
    /livejpp/clock BPM [BEAT]     /livejpp/clock 128.0 1   (an external clock: two numbers, or one string)

A button's release (a lone 0 after a press) does nothing. Packets that do not parse, unknown
addresses and values a command cannot take are counted and ignored; the server never stops for them.
Malformed packets are summed up in one line at most every MALFORMED_REPORT seconds, per sender.
Feedback goes to one client as /livejpp/state/KEY VALUE whenever a value changes.

Who hears back: /livejpp/state is answered to the --osc-feedback client, and to a sender on this
machine (loopback) itself; never to another sender: a UDP source address can be forged, and an
answer many times the request's size would make the show a reflector. Listening on every interface
(--osc-host 0.0.0.0) lets anyone on the network steer the show: it is said in one line.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from livejpp.control.commands import COMMANDS, CommandBus
from livejpp.errors import LivejppError

log = logging.getLogger("livejpp.osc")
PREFIX = "/livejpp/"
RECEIVE_BUFFER = 4 * 1024 * 1024  # bytes: a burst of small messages waits here, not on the wire
MALFORMED_REPORT = 5.0  # seconds between two lines about malformed packets: a flood is one line, not megabytes
MALFORMED = "malformed packet{s}"
STATE_REQUEST = "/livejpp/state request{s} (answered only on this machine, or to --osc-feedback)"
_parsing = threading.local()  # set while this module parses a packet: python-osc's warnings then mark it malformed


class _PythonOscWarnings(logging.Filter):
    """python-osc warns on the root logger with each odd packet's raw bytes (a 5 s flood: 5 MB of
    stderr). While a packet is parsed here, such a warning marks it malformed and prints nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_parsing, "active", False) and "pythonosc" in record.pathname:
            _parsing.warned = True
            return False
        return True


_PYTHON_OSC_WARNINGS = _PythonOscWarnings()


def parse_packet(data: bytes) -> list | None:
    """The messages of one packet (bundles flattened), or None where it is malformed."""
    _parsing.active, _parsing.warned = True, False
    try:
        messages = [timed.message for timed in OscPacket(data).messages]
    except (ParseError, ValueError, IndexError, TypeError, UnicodeDecodeError, OverflowError):
        return None
    finally:
        _parsing.active = False
    return None if _parsing.warned else messages


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class OscError(LivejppError):
    """An OSC address or port that cannot be used."""


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'HOST:PORT' or 'PORT' → (host, port), with one clear error."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise OscError(f"OSC: expected HOST:PORT or PORT, not {text!r}") from None
    if not 0 < number < 65536:
        raise OscError(f"OSC: port {number} is not 1..65535")
    return host or default_host, number


# commands whose value is several words: `learn` a control and its command, `clock` BPM and the beat in the bar
SEVERAL_VALUES = ("learn", "clock")


class OscServer:
    """A UDP server for /livejpp/... messages, on its own thread; it applies each at once."""

    def __init__(self, bus: CommandBus, host: str = "127.0.0.1", port: int = 9000, feedback: OscFeedback | None = None):
        self.bus = bus
        self.feedback = feedback or OscFeedback(bus, None)  # without a client: replies to /livejpp/state only
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise OscError(f"OSC: cannot listen on {host}:{port} ({exc.strerror or exc}); try --osc-port") from exc
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.packets = 0
        self.unreported: dict[tuple[str, str], int] = {}  # packets ignored, by (what, sender host), not yet said
        self.reported_at = -MALFORMED_REPORT
        if _PYTHON_OSC_WARNINGS not in logging.getLogger().filters:
            logging.getLogger().addFilter(_PYTHON_OSC_WARNINGS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="osc", daemon=True)

    def start(self) -> None:
        host, port = self.address[:2]
        if not is_loopback(host):  # 0.0.0.0, or a LAN or public address of this machine
            reach = "every network interface" if host in ("0.0.0.0", "::", "") else "a network interface"
            log.warning(
                "OSC: listening on %s:%d: %s, anyone who reaches this machine can steer the show"
                " (--osc-host 127.0.0.1 keeps it to this machine)",
                host,
                port,
                reach,
            )
        else:
            log.info("OSC: listening on %s:%d (/livejpp/...)", host, port)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.sock.close()
        self._report_ignored(final=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65536)
            except TimeoutError:
                self._report_ignored()
                continue
            except OSError:
                return
            received = time.monotonic()
            self.packets += 1
            messages = parse_packet(data)
            if messages is None:
                self.bus.count("osc").malformed += 1
                self._ignore(MALFORMED, sender[0])
                continue
            for message in messages:
                try:
                    self.handle(message.address, list(message.params), received, sender)
                except Exception as exc:  # noqa: BLE001 - one message must never stop the server
                    self.bus.refuse("osc", f"{message.address}: {exc}")

    def _ignore(self, what: str, host: str) -> None:
        self.unreported[what, host] = self.unreported.get((what, host), 0) + 1
        self._report_ignored()

    def _report_ignored(self, final: bool = False) -> None:
        """One line per sender for the packets ignored since the last line, at most every MALFORMED_REPORT s."""
        now = time.monotonic()
        if not self.unreported or (not final and now - self.reported_at < MALFORMED_REPORT):
            return
        worst = sorted(self.unreported.items(), key=lambda item: -item[1])
        for (what, host), count in worst[:3]:
            log.warning("OSC: ignored %d %s from %s", count, what.format(s="" if count == 1 else "s"), host)
        if len(worst) > 3:
            others = sum(c for _, c in worst[3:])
            log.warning("OSC: and %d more packets ignored from %d other hosts", others, len(worst) - 3)
        self.unreported.clear()
        self.reported_at = now

    def handle(self, address: str, args: list[Any], received: float, sender: tuple[str, int]) -> None:
        if not address.startswith(PREFIX):
            self.bus.refuse("osc", f"unknown address {address!r} (addresses start with {PREFIX})")
            return
        parts = address[len(PREFIX) :].split("/")
        name = parts[0]
        if name == "state" and len(parts) == 1:
            local = is_loopback(sender[0])
            if not local and self.feedback.target is None:  # a forged sender would make the show a reflector
                self.bus.count("osc").refused += 1
                self._ignore(STATE_REQUEST, sender[0])
                return
            self.feedback.send_all(reply_to=sender if local else None)
            self.bus.count("osc").applied += 1
            return
        if name == "layer" and len(parts) in (1, 3):  # /livejpp/layer 2 opacity 0.5, /livejpp/layer/2/opacity 0.5
            words = args if len(parts) == 1 else [parts[1], parts[2], *(args or [""])]
            self.bus.run("layer", words, "osc", received)
            return
        if name not in COMMANDS or len(parts) > 2:
            self.bus.refuse("osc", f"unknown address {address!r}")
            return
        if len(args) > 1 and name not in SEVERAL_VALUES:
            self.bus.refuse("osc", f"{address}: takes one value, got {len(args)}")
            return
        value = args[0] if args else None
        if name == "learn" and len(args) > 1:
            value = " ".join(str(a) for a in args)
        elif len(args) > 1:
            value = list(args)  # `/livejpp/clock 128.0 1`: two numbers, as an OSC app sends them
        if len(parts) == 2:
            word = parts[1]
            if value is not None and isinstance(value, (int, float)) and value == 0:
                self.bus.count("osc").ignored += 1  # the button's release
                return
            if word == "step":
                self.bus.step(name, 1 if value is None else value, "osc", received)
                return
            value = word
        self.bus.run(name, value, "osc", received)


class OscFeedback:
    """What plays, sent to one OSC client whenever it changes (checked 20 times a second)."""

    def __init__(self, bus: CommandBus, target: tuple[str, int] | None, period: float = 0.05):
        self.bus = bus
        self.target = target
        self.period = period
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sent: dict[str, Any] = {}  # what the client was last told, per key
        self._sending = threading.Lock()  # changes (this thread) and whole states (the server's) tell one story
        self.messages = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="osc-feedback", daemon=True)

    def start(self) -> None:
        log.info("OSC feedback to %s:%d", *self.target)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.sock.close()

    def state(self) -> dict[str, Any]:
        show = self.bus.show
        out = self.bus.state()
        engine = show.engine
        clock = engine.clock_state  # published whole at each hop: never half a new grid
        layer = show.layers[-1] if show.layers else None
        sync = show.sync_state  # published whole at each hop, like the clock
        position = sync.position(show.picture_time())
        out.update(
            {
                "clip": layer.record.uid if layer else "",
                "source": layer.record.source.rsplit("/", 1)[-1] if layer else "",
                "bpm": round(clock.bpm, 2),
                "beat": engine.beat_count,
                "bar_beat": clock.bar_position(show.show_time()) + 1,  # 1 is the one
                "beats_per_bar": clock.beats_per_bar,
                "confidence": round(clock.confidence, 2),
                "clock_source": clock.source,
                "tempo_source": clock.source,
                "hearing": show.hearing,  # why the show hears nothing ("" while it hears)
                "standby": show.standby,  # why the standby picture shows ("" while clips play)
                "sync_video": sync.video if sync.lock else "",  # the song's own video, locked to it
                "sync_position": -1.0 if position is None else position,  # its seconds (0.1 s); -1: not in sync
            }
        )
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.send_changes()
            except OSError as exc:  # the client's host may be unreachable for a while
                log.debug("OSC feedback not sent: %s", exc)

    def send_changes(self) -> None:
        with self._sending:
            for key, value in self.state().items():
                if self.sent.get(key, object()) != value:
                    self._send(key, value, self.target)
                    self.sent[key] = value

    def send_all(self, reply_to: tuple[str, int] | None = None) -> None:
        """Every value, to the feedback client and the asker: what the client is told is remembered, or a
        value sent here and changed back before the next check would never be corrected."""
        with self._sending:
            for key, value in self.state().items():
                for target in {self.target, reply_to} - {None}:
                    self._send(key, value, target)
                if self.target is not None:
                    self.sent[key] = value

    def _send(self, key: str, value: Any, target: tuple[str, int]) -> None:
        builder = OscMessageBuilder(f"{PREFIX}state/{key}")
        if isinstance(value, bool):
            value = int(value)
        builder.add_arg(value)
        self.sock.sendto(builder.build().dgram, target)
        self.messages += 1

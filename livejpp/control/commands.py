"""The command bus: every way of steering a show (keys, OSC, MIDI, presets) ends here.

Each command is declared once below, with what it takes and what it does to the show; the inputs
only translate their messages into `bus.run(name, value)` (or `bus.step(name, steps)` for keys and
relative encoders). A bad value is refused with one line and counted for its input; the show goes
on. `livejpp commands` prints the table the README shows.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livejpp.engine.layers import HAND_LAYERS, check_number
from livejpp.engine.sync import SYNC_MODES
from livejpp.engine.trackers import NAMES as TRACKER_NAMES
from livejpp.engine.trackers import TRACKERS
from livejpp.errors import LivejppError
from livejpp.media.compose import BLENDS, EFFECTS, TRANSITIONS

REFUSALS_SAID = 5  # refusal lines per input and REFUSAL_WINDOW: a flood of bad commands is a few lines, not megabytes
REFUSAL_WINDOW = 5.0  # seconds
BEATS_IN_BAR = 16  # the most beats a `clock` command's bar may have
CLOCK_LOGGED_BPM = 1.0  # a clock beat goes in the event log when its tempo moved this much: tempo changes, not beats

log = logging.getLogger("livejpp.control")

TRIGGER, TOGGLE, NUMBER, CHOICE, TEXT = "trigger", "toggle", "number", "choice", "text"


class CommandError(LivejppError):
    """A command that does not exist or a value it cannot take."""


@dataclass(frozen=True)
class Command:
    name: str
    kind: str  # trigger | toggle | number | choice | text
    doc: str
    apply: Callable[[Any, Any], Any] | None = None  # (show, value) → a cut's layer or None; None: the bus's own
    read: Callable[[Any], Any] | None = None  # the show's current value (toggle, number, choice, text)
    low: float = 0.0
    high: float = 1.0
    step: float = 0.1  # one key press or encoder detent
    integer: bool = False
    choices: tuple[str, ...] = ()
    relative: bool = False  # a number: text with a sign ("+5", "-5") changes it by that much
    check: Callable[[Any], None] | None = None  # raises CommandError for a choice this show cannot take
    logged_change: float = 0.0  # > 0: logged only when the value moved this much since the last logged (0: always)
    layer: int = 0  # the hand-set layer it sets (2..): a preset naming one the show does not draw sets nothing

    def usage(self) -> str:
        """What the command takes, for the help table."""
        if self.kind == TRIGGER:
            return "-"
        if self.kind == TOGGLE:
            return "0/1 (none: toggle)"
        if self.name == "clock":
            return f"number {self.low:g}..{self.high:g}, optional BEAT (1 <= BEAT < {BEATS_IN_BAR + 1}; 1: the one)"
        if self.kind == NUMBER:
            kind = "whole number" if self.integer else "number"
            return f"{kind} {self.low:g}..{self.high:g}" + (" (text +N / -N: by N)" if self.relative else "")
        if self.kind == CHOICE:
            return ", ".join(self.choices) + " (or index, next, prev)"
        if self.name.endswith("_clip"):
            return "clip uid or video file name (empty: clear)"
        return "text (empty: let go)" if self.name in ("video", "tag", "learn") else "name or path"


@dataclass(frozen=True)
class ClockBeat:
    """`clock BPM [BEAT]`: an external clock's tempo, and where in its bar the moment the command was
    received falls (1 <= BEAT < BEATS_IN_BAR + 1; None: that moment is a beat, the bar count goes on)."""

    bpm: float
    bar_beat: float | None = None

    def __float__(self) -> float:
        """The tempo: what the event log compares (logged_change), the bar position moves every read."""
        return self.bpm


@dataclass(frozen=True)
class Relative:
    """A change to a number command's value (text "+5", "-5"), applied to its value at the time."""

    delta: float


def _set_flag(attr: str) -> Callable[[Any, Any], None]:
    return lambda show, on: setattr(show, attr, bool(on))


def _tracker_here(index: int) -> None:
    """A tracker the command line names but this build lacks is refused before a preset applies anything."""
    if TRACKER_NAMES[index] not in TRACKERS:
        known = ", ".join(TRACKERS)
        raise CommandError(f"beat tracker {TRACKER_NAMES[index]!r} is not available in this build (available: {known})")


def layer_commands(n: int) -> tuple[Command, ...]:
    """Layer n's clip, opacity and blend: commands of their own, so MIDI, presets and OSC feedback take them
    like any other (`layer N WHAT VALUE` is another spelling of `layerN_WHAT VALUE`, see `spelled_layer`)."""
    return (
        Command(
            f"layer{n}_clip",
            TEXT,
            f"play a clip on layer {n} from now, looping (a video's name: its first clip; empty: clear the layer)",
            lambda show, name: show.set_layer_clip(n, name),
            lambda show: show.hand_layer(n).clip,
            layer=n,
        ),
        Command(
            f"layer{n}_opacity",
            NUMBER,
            f"layer {n}'s opacity over the layers below it",
            lambda show, x: show.set_layer_opacity(n, x),
            lambda show: show.hand_layer(n).opacity,
            layer=n,
        ),
        Command(
            f"layer{n}_blend",
            CHOICE,
            f"how layer {n} blends over the layers below it",
            lambda show, i: show.set_layer_blend(n, i),
            lambda show: BLENDS.index(show.hand_layer(n).blend),
            choices=BLENDS,
            layer=n,
        ),
    )


LAYER_WHATS = ("clip", "opacity", "blend")


def spelled_layer(value: Any) -> tuple[str, Any]:
    """`layer N WHAT VALUE` ("2 opacity 0.5", or [2, "opacity", 0.5] from OSC) → ("layer2_opacity", 0.5)."""
    words = value.split(None, 2) if isinstance(value, str) else list(value) if isinstance(value, list) else [value]
    if len(words) == 2 and words[1] == "clip":
        words.append("")  # `layer 2 clip` alone clears it, as `layer 2 clip ""` does
    if len(words) != 3 or str(words[1]).lower() not in LAYER_WHATS:
        raise CommandError(f"layer: expects N clip|opacity|blend VALUE, got {value!r}")
    try:
        number = int(words[0])
    except (TypeError, ValueError):
        raise CommandError(f"layer: {words[0]!r} is not a layer number") from None
    if number not in HAND_LAYERS:
        raise CommandError(f"layer {number}: hand-set layers are 2..{HAND_LAYERS[-1]} (layer 1 is the matcher's)")
    text = words[2]
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]  # `layer 2 clip ""` as typed
    return f"layer{number}_{str(words[1]).lower()}", text


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("next", TRIGGER, "cut to the best fresh clip now", lambda show, _: show.next_clip()),
        Command(
            "hold",
            TOGGLE,
            "keep the clip on screen (no automatic cuts) / let go",
            lambda show, on: show.set_hold(bool(on)),
            lambda show: show.held,
        ),
        Command(
            "video",
            TEXT,
            "play only clips of videos whose file name contains TEXT (cuts to one now)",
            lambda show, text: show.force("video", text),
            lambda show: show.forced.get("video", ""),
        ),
        Command(
            "tag",
            TEXT,
            "play only clips of videos in a folder named TEXT (cuts to one now)",
            lambda show, text: show.force("tag", text),
            lambda show: show.forced.get("tag", ""),
        ),
        Command(
            "crossfade",
            NUMBER,
            "crossfade length in beats (0: hard cuts)",
            lambda show, beats: show.set_crossfade(beats),
            lambda show: show.crossfade_beats,
            low=0.0,
            high=8.0,
            step=0.5,
        ),
        Command(
            "transition",
            CHOICE,
            "how one clip gives way to the next",
            lambda show, i: setattr(show, "transition", i),
            lambda show: show.transition,
            choices=TRANSITIONS,
        ),
        Command(
            "effect",
            CHOICE,
            "an effect over the pictures",
            lambda show, i: setattr(show, "effect", i),
            lambda show: show.effect,
            choices=EFFECTS,
        ),
        Command(
            "intensity",
            NUMBER,
            "the effect's amount",
            lambda show, x: setattr(show, "effect_amount", x),
            lambda show: show.effect_amount,
        ),
        Command("blackout", TOGGLE, "black screen on / off", _set_flag("blackout"), lambda show: show.blackout),
        Command(
            "brightness",
            NUMBER,
            "master brightness",
            lambda show, x: setattr(show, "brightness", x),
            lambda show: show.brightness,
        ),
        Command("tap", TRIGGER, "tap tempo: tap on the beat, twice or more", lambda show, _: show.tap()),
        Command("follow", TRIGGER, "let go of the tap tempo: follow the music again", lambda show, _: show.follow()),
        Command(
            "resync",
            TRIGGER,
            "the beat is now, and bars count from here until the tempo changes",
            lambda show, _: show.resync(),
        ),
        Command(
            "clock",
            NUMBER,
            "an external clock's tempo (BPM) and a beat now; with BEAT, where in its bar now falls (1: the one, "
            "2.5: half way from beat 2 to 3). MIDI clock sends one a beat, Link one a beat and on each tempo "
            "change; `follow` lets go",
            low=20.0,
            high=400.0,
            step=1.0,
            logged_change=CLOCK_LOGGED_BPM,
        ),
        Command(
            "bars",
            NUMBER,
            "cut every N bars",
            lambda show, n: show.set_bars(n),
            lambda show: show.bars,
            low=1,
            high=16,
            step=1,
            integer=True,
        ),
        Command(
            "av_offset",
            NUMBER,
            "move the pictures later (ms; negative: earlier) against the sound in the room",
            lambda show, ms: show.set_av_offset(ms / 1000.0),
            lambda show: round(show.engine.clock.av_offset * 1000.0, 3),
            low=-1000.0,
            high=1000.0,
            step=5.0,
            relative=True,
        ),
        Command(
            "phrase",
            NUMBER,
            "also cut at every phrase start, a phrase being N bars (0: off)",
            lambda show, n: show.set_phrase(n),
            lambda show: show.phrase,
            low=0,
            high=16,
            step=4,
            integer=True,
        ),
        Command(
            "beat_tracker",
            CHOICE,
            "what follows the beat and the bar in the music",
            lambda show, i: show.set_beat_tracker(TRACKER_NAMES[i]),
            lambda show: TRACKER_NAMES.index(show.beat_tracker),
            choices=TRACKER_NAMES,
            check=_tracker_here,
        ),
        Command(
            "sync",
            CHOICE,
            "lock to a song's own video when the music is one of the library's (auto: whenever one is "
            "recognised; on: also keep it through 4 s of doubt; off)",
            lambda show, i: show.set_sync(SYNC_MODES[i]),
            lambda show: SYNC_MODES.index(show.sync_mode),
            choices=SYNC_MODES,
        ),
        Command(
            "library",
            TEXT,
            "switch to another library (a folder); the clips on screen play on",
            lambda show, path: show.switch(library=path),
            lambda show: str(show.engine.library),
        ),
        Command(
            "model",
            TEXT,
            "switch to another model (a name in models/ or a folder)",
            lambda show, name: show.switch(model=name),
            lambda show: show.model,
        ),
        Command("preset", TEXT, "load a show preset (presets/NAME.toml, its [show] table)"),
        Command("learn", TEXT, "MIDI learn: bind the next MIDI message to COMMAND [VALUE] (empty: stop)"),
        Command("hud", TOGGLE, "the HUD on / off", _set_flag("hud"), lambda show: show.hud),
        Command("help", TOGGLE, "the key help on / off", _set_flag("help"), lambda show: show.help),
        Command("fullscreen", TOGGLE, "fullscreen on / off", _set_flag("fullscreen"), lambda show: show.fullscreen),
        Command("quit", TRIGGER, "end the show", lambda show, _: show.quit.set()),
        *(c for n in HAND_LAYERS for c in layer_commands(n)),
    )
}


def parse(command: Command, value: Any) -> Any:
    """The value a command gets from what an input sent; None means "nothing to do" (a button's
    release). Raises CommandError naming the command and what it expected."""
    if isinstance(value, bytes):
        raise CommandError(f"{command.name}: expects {command.usage()}, got bytes")
    if command.kind == TRIGGER:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
            return None  # a button's release
        return True
    if command.kind == TOGGLE:
        if value is None:
            return "toggle"
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if word in ("1", "on", "true", "yes"):
                return True
            if word in ("0", "off", "false", "no"):
                return False
            if word == "toggle":
                return "toggle"
            raise CommandError(f"{command.name}: expects {command.usage()}, got {value!r}")
        return _number(command, value) >= 0.5
    if command.name == "clock":
        return _clock_beat(command, value)
    if command.kind == NUMBER:
        if command.relative and isinstance(value, str) and value.strip()[:1] in ("+", "-"):
            return Relative(_number(command, value))
        number = _number(command, value)
        number = min(command.high, max(command.low, number))
        return int(round(number)) if command.integer else number
    if command.kind == CHOICE:
        if isinstance(value, str):
            word = value.strip().lower()
            if word in ("next", "prev"):
                return word
            try:
                value = command.choices.index(word) if word in command.choices else float(word)
            except ValueError:
                raise CommandError(
                    f"{command.name}: expects one of {', '.join(command.choices)}, got {value!r}"
                ) from None
        index = _number(command, value)
        if index != int(index) or not 0 <= index < len(command.choices):
            raise CommandError(f"{command.name}: index {index:g} is not 0..{len(command.choices) - 1}")
        if command.check is not None:
            command.check(int(index))
        return int(index)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CommandError(f"{command.name}: expects {command.usage()}, got {value!r}")
    return value.strip()


def _clock_beat(command: Command, value: Any) -> ClockBeat:
    """`clock BPM` or `clock BPM BEAT` (text, or two values from OSC or the Link follower)."""
    words = value.split() if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
    if not 1 <= len(words) <= 2:
        raise CommandError(f"{command.name}: expects {command.usage()}, got {value!r}")
    bpm = min(command.high, max(command.low, _number(command, words[0])))
    if len(words) == 1:
        return ClockBeat(bpm)
    bar_beat = _number(command, words[1])
    if not 1.0 <= bar_beat < BEATS_IN_BAR + 1:
        raise CommandError(f"{command.name}: the beat in the bar is 1 <= BEAT < {BEATS_IN_BAR + 1}, got {bar_beat:g}")
    return ClockBeat(bpm, bar_beat)


def _number(command: Command, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise CommandError(f"{command.name}: expects a number, got {value!r}") from None
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError(f"{command.name}: expects a number, got {value!r}")
    if not math.isfinite(value):
        raise CommandError(f"{command.name}: expects a finite number, got {value!r}")
    return float(value)


@dataclass
class Event:
    """One command from one input, timed: received → applied (state changed) → shown (first frame)."""

    command: str
    value: Any
    origin: str  # keys, osc, midi, preset
    received: float  # time.monotonic()
    applied: float = 0.0
    shown: float | None = None
    layer: Any = None  # a cut the command asked for: shown once its clip is on screen


@dataclass
class InputCounts:
    applied: int = 0
    ignored: int = 0  # button releases and the like
    refused: int = 0  # bad values, unknown commands
    malformed: int = 0  # not even a message (counted by the input that parsed it)
    repeated: int = 0  # applied but kept out of the event log: clock beats at the tempo last logged

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class CommandBus:
    """Runs commands on a show, one at a time, whichever thread they come from."""

    show: Any
    presets: Any = None  # control.mapping.Presets: where `preset NAME` looks
    learner: Any = None  # control.midi.Learner while MIDI input is on
    events: deque = field(default_factory=lambda: deque(maxlen=20000))
    counts: dict[str, InputCounts] = field(default_factory=dict)
    last_error: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._last_preset = ""
        self._refusals: dict[str, list[float]] = {}  # origin -> [window start, lines said, lines held back]
        self._logged: dict[str, Any] = {}  # command -> the value last put in the event log (see logged_change)

    def count(self, origin: str) -> InputCounts:
        return self.counts.setdefault(origin, InputCounts())

    def run(self, name: str, value: Any = None, origin: str = "api", received: float | None = None) -> Event | None:
        """Parse and apply one command; a refused one is logged and counted, never raised."""
        received = time.monotonic() if received is None else received
        try:
            if name == "layer":
                name, value = spelled_layer(value)
            command = COMMANDS.get(name)
            if command is None:
                raise CommandError(f"unknown command {name!r} (livejpp commands lists them)")
            parsed = parse(command, value)
            if parsed is None:
                self.count(origin).ignored += 1
                return None
            with self._lock:
                event = Event(name, parsed, origin, received)
                self._apply(command, parsed, event)
                logged = self._logs(command, event.value)
        except (CommandError, ValueError) as exc:
            self.refuse(origin, str(exc))
            return None
        event.applied = time.monotonic()
        if not logged:  # a clock's 2 beats a second would flood the log: its tempo changes are what a VJ reads
            self.count(origin).repeated += 1
            return event
        self.count(origin).applied += 1
        self.events.append(event)
        with self.show.lock:
            self.show.awaiting.append(event)
        return event

    def _logs(self, command: Command, value: Any) -> bool:
        """Whether this event goes in the event log (see Command.logged_change)."""
        if command.name in ("tap", "follow", "resync"):  # the clock changed hands: its next beat is news
            self._logged.pop("clock", None)
        if not command.logged_change:
            return True
        last, value = self._logged.get(command.name), float(value)
        if last is not None and abs(value - last) < command.logged_change:
            return False
        self._logged[command.name] = value
        return True

    def step(self, name: str, steps: float, origin: str = "keys", received: float | None = None) -> Event | None:
        """Move a number by `steps` of its step, a choice by one, or flip a toggle (keys, encoders)."""
        command = COMMANDS.get(name)
        if command is None or command.read is None:
            self.refuse(origin, f"{name}: cannot be stepped")
            return None
        if command.kind == NUMBER:
            return self.run(name, command.read(self.show) + steps * command.step, origin, received)
        if command.kind == CHOICE:
            return self.run(name, "next" if steps > 0 else "prev", origin, received)
        if command.kind == TOGGLE:
            return self.run(name, None, origin, received)
        self.refuse(origin, f"{name}: cannot be stepped")
        return None

    def refuse(self, origin: str, why: str) -> None:
        """Counted always; said in a line for the first REFUSALS_SAID of each window, then summed up."""
        self.count(origin).refused += 1
        self.last_error = f"{origin}: {why}"
        now = time.monotonic()
        window = self._refusals.setdefault(origin, [now, 0, 0])
        if now - window[0] >= REFUSAL_WINDOW:
            self._say_held_back(origin, now)
        if window[1] < REFUSALS_SAID:
            window[1] += 1
            log.warning("%s: %s", origin, why)
        else:
            window[2] += 1

    def _say_held_back(self, origin: str, now: float) -> None:
        window = self._refusals[origin]
        if window[2]:
            log.warning("%s: %d more commands refused in %.0f s", origin, window[2], now - window[0])
        window[:] = [now, 0, 0]

    def flush_refusals(self) -> None:
        """At the end: the refusals held back are said too."""
        for origin in list(self._refusals):
            self._say_held_back(origin, time.monotonic())

    def _apply(self, command: Command, value: Any, event: Event) -> None:
        show = self.show
        if command.kind == TOGGLE and value == "toggle":
            value = not command.read(show)
        elif command.kind == CHOICE and value in ("next", "prev"):
            value = (command.read(show) + (1 if value == "next" else -1)) % len(command.choices)
        elif isinstance(value, Relative):
            value = parse(command, command.read(show) + value.delta)
        event.value = value
        if command.name == "preset":
            self._preset(value, event)
        elif command.name == "clock":  # the beat is when it was received, not when it is applied
            at = event.received - show.start_time
            show.clock_sync(60.0 / value.bpm, at, value.bar_beat, source=event.origin)
        elif command.name == "learn":
            if self.learner is None:
                raise CommandError("learn: needs MIDI input (--midi-in)")
            self.learner.arm(value)
        else:
            event.layer = command.apply(show, value)

    def _preset(self, name: str, event: Event) -> None:
        """A show preset's settings, each through its own command (so each is checked the same way)."""
        if self.presets is None:
            raise CommandError("preset: no presets folder")
        path, settings = self.presets.show_settings(name)
        self._last_preset = name
        for key, value in settings.items():
            command = COMMANDS.get(key)
            if command is None:
                raise CommandError(f"{path}: unknown setting {key!r}")
            if command.kind == TRIGGER or key in ("preset", "learn", "clock"):
                raise CommandError(f"{path}: {key!r} cannot be set by a preset")
            try:
                parse(command, value)  # every value is checked before any is applied
                if command.layer:
                    check_number(command.layer, self.show.layers_count)
            except (CommandError, ValueError) as exc:
                raise CommandError(f"{path}: {exc}") from None
        for key, value in settings.items():
            command = COMMANDS[key]
            parsed = parse(command, value)
            if parsed is not None:
                self._apply(command, parsed, Event(key, parsed, "preset", event.received))

    def options(self, name: str) -> list[str]:
        """The values a text command knows of (the library's videos and folders, the show presets)."""
        show = self.show
        if name in ("video", "tag"):
            sources = [Path(source) for source in show.engine.video_paths.values()]  # per video, not per clip
            return sorted({p.name if name == "video" else p.parent.name for p in sources})
        if name == "preset" and self.presets is not None:
            return self.presets.show_names()
        return []

    def cycle(self, name: str, origin: str = "keys", received: float | None = None) -> Event | None:
        """The next of a text command's options: videos and folders walk to none (all) and round
        again; presets go round."""
        options = self.options(name)
        if not options:
            self.refuse(origin, f"{name}: nothing to walk through")
            return None
        current = self._last_preset if name == "preset" else COMMANDS[name].read(self.show)
        ring = options if name == "preset" else ["", *options]
        following = ring[(ring.index(current) + 1) % len(ring)] if current in ring else options[0]
        return self.run(name, following, origin, received)

    def state(self) -> dict:
        """What a control surface shows: every readable command's value."""
        out = {}
        for command in COMMANDS.values():
            if command.read is None:
                continue
            value = command.read(self.show)
            out[command.name] = command.choices[value] if command.kind == CHOICE else value
        return out

    def event_log(self, started: float = 0.0) -> list[list]:
        """The newest events: [input, command, received (show seconds), to state ms, to frame ms]."""
        return [
            [
                e.origin,
                e.command,
                round(e.received - started, 5),
                round((e.applied - e.received) * 1000, 3),
                None if e.shown is None else round((e.shown - e.received) * 1000, 3),
            ]
            for e in self.events
        ]

    def summary(self) -> dict:
        """Per input: counts, and latency (ms) from receipt to the state change and to the first frame."""
        out: dict = {}
        for origin, counts in self.counts.items():
            events = [e for e in self.events if e.origin == origin]
            applied = [e.applied - e.received for e in events]
            shown = [e.shown - e.received for e in events if e.shown is not None]
            out[origin] = counts.as_dict() | {
                "to_state_ms": _percentiles(applied),
                "to_frame_ms": _percentiles(shown),
            }
        return out


def _percentiles(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0}
    ordered = sorted(xs)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000, 3)

    return {"n": len(xs), "p50": q(50), "p99": q(99), "max": q(100)}


def table() -> str:
    """The command table, as the README shows it."""
    rows = ["| command | takes | what |", "|---|---|---|"]
    for command in COMMANDS.values():
        rows.append(f"| `{command.name}` | {command.usage()} | {command.doc} |")
    return "\n".join(rows)

"""Presets (TOML files): show settings, and how a MIDI controller's notes and CCs map to commands.

A preset file may hold either or both:

    name = "Korg nanoKONTROL2"
    [show]                      # what `preset NAME` sets: any command that takes a value
    bars = 2
    crossfade = 1.0
    [[midi]]                    # one binding per control
    command = "brightness"
    cc = 0                      # or note = 36
    channel = 1                 # 1-16 (omitted: any channel)
    mode = "absolute"           # see MODES
    range = [0.0, 1.0]          # what CC 0..127 maps onto (omitted: the command's own range)
    value = "wipe"              # a note's fixed value (transition, preset, video, ...)

Presets are read with tomllib and written with tomli-w (MIDI learn): never evaluated.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from livejpp.control.commands import CHOICE, COMMANDS, NUMBER, TEXT, TOGGLE, TRIGGER, CommandError
from livejpp.paths import PRESETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


MODES = {
    "absolute": "a CC's 0..127 spans the range (a fader or knob); a note's velocity does",
    "relative": "an endless encoder in two's complement: 1..63 steps up, 127..65 steps down",
    "offset": "an endless encoder around 64: 65.. steps up, ..63 steps down",
    "toggle": "each press (note on, or CC >= 64) flips it",
    "momentary": "on while held: note on / CC >= 64 sets 1, note off / CC < 64 sets 0",
    "trigger": "each press (note on, or CC >= 64) runs the command (with `value`, if given)",
}


class PresetError(CommandError):
    """A preset that cannot be found or read, or holds a binding that cannot work."""


@dataclass(frozen=True)
class Binding:
    command: str
    control: str  # "note" or "cc"
    number: int  # 0..127
    channel: int | None = None  # 0..15 (MIDI's 1..16 in files); None: any
    mode: str = "absolute"
    low: float | None = None
    high: float | None = None
    value: Any = None

    def matches(self, kind: str, channel: int, number: int) -> bool:
        return kind == self.control and number == self.number and self.channel in (None, channel)

    def as_toml(self) -> dict:
        out: dict[str, Any] = {"command": self.command, self.control: self.number}
        if self.channel is not None:
            out["channel"] = self.channel + 1
        out["mode"] = self.mode
        if self.low is not None:
            out["range"] = [self.low, self.high]
        if self.value is not None:
            out["value"] = self.value
        return out


def default_mode(command: str, control: str) -> str:
    kind = COMMANDS[command].kind
    if kind == TOGGLE:
        return "toggle"
    if kind in (TRIGGER, TEXT) or (control == "note" and kind == CHOICE):
        return "trigger"
    return "absolute"


def binding_from(entry: dict, where: str) -> Binding:
    """One [[midi]] table, checked: every problem names the file and the binding."""
    if not isinstance(entry, dict):
        raise PresetError(f"{where}: a [[midi]] entry must be a table")
    command = entry.get("command")
    if command not in COMMANDS:
        raise PresetError(f"{where}: unknown command {command!r}")
    controls = [c for c in ("note", "cc") if c in entry]
    if len(controls) != 1:
        raise PresetError(f"{where}: {command} needs exactly one of note = N or cc = N")
    control = controls[0]
    number = entry[control]
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 127:
        raise PresetError(f"{where}: {command}: {control} must be 0..127, not {number!r}")
    channel = entry.get("channel")
    if channel is not None and (not isinstance(channel, int) or not 1 <= channel <= 16):
        raise PresetError(f"{where}: {command}: channel must be 1..16, not {channel!r}")
    mode = entry.get("mode", default_mode(command, control))
    if mode not in MODES:
        raise PresetError(f"{where}: {command}: mode must be one of {', '.join(MODES)}, not {mode!r}")
    kind = COMMANDS[command].kind
    if mode in ("relative", "offset") and (control != "cc" or kind not in (NUMBER, CHOICE)):
        raise PresetError(f"{where}: {command}: a {mode} encoder must be a CC bound to a number or a choice")
    if mode in ("toggle", "momentary") and kind != TOGGLE:
        raise PresetError(f"{where}: {command}: mode {mode} is for on/off commands")
    if kind == TEXT and entry.get("value") is None:
        raise PresetError(f'{where}: {command}: needs value = "..." (what to set)')
    low = high = None
    if "range" in entry:
        span = entry["range"]
        if (
            not isinstance(span, list)
            or len(span) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in span)
        ):
            raise PresetError(f"{where}: {command}: range must be [low, high]")
        low, high = float(span[0]), float(span[1])
    return Binding(
        command, control, number, None if channel is None else channel - 1, mode, low, high, entry.get("value")
    )


@dataclass
class MidiMap:
    """The bindings of one preset, and what a message means under them."""

    bindings: list[Binding]
    path: Path | None = None
    name: str = ""

    def actions(self, kind: str, channel: int, number: int, value: int) -> list[tuple[str, str, Any]]:
        """("run", command, value) or ("step", command, steps) for each binding this message hits.
        `kind` is "note_on", "note_off" or "cc"; `value` the velocity or the CC value."""
        control = "cc" if kind == "cc" else "note"
        out = []
        for b in self.bindings:
            if b.matches(control, channel, number):
                action = translate(b, kind, value)
                if action is not None:
                    out.append(action)
        return out

    def add(self, binding: Binding) -> None:
        """A learned binding replaces whatever the same control did before."""
        self.bindings = [
            b
            for b in self.bindings
            if not (
                b.control == binding.control and b.number == binding.number and b.channel in (None, binding.channel)
            )
        ] + [binding]

    def save(self, path: str | os.PathLike, show: dict | None = None) -> Path:
        """Write the map (and any [show] table) as a preset file, beside and then renamed in."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"name": self.name or path.stem}
        if show:
            data["show"] = show
        data["midi"] = [b.as_toml() for b in self.bindings]
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_bytes(tomli_w.dumps(data).encode())
        os.replace(tmp, path)
        self.path = path
        return path


def save_show_setting(path: str | os.PathLike, key: str, value: Any) -> Path:
    """Set one [show] setting in a preset file (made if missing; its other settings and bindings kept),
    written beside and then renamed in. A file that is not a readable preset is left as it is."""
    path = Path(path)
    data: dict[str, Any] = {"name": path.stem}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PresetError(f"{path}: not a readable preset ({exc}); not changed") from exc
    show = data.setdefault("show", {})
    if not isinstance(show, dict):
        raise PresetError(f"{path}: its show settings are not a table; not changed")
    show[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(tomli_w.dumps(data).encode())
    os.replace(tmp, path)
    return path


def translate(b: Binding, kind: str, value: int) -> tuple[str, str, Any] | None:
    command = COMMANDS[b.command]
    pressed = value >= 64 if kind == "cc" else kind == "note_on" and value > 0
    if b.mode == "relative":
        steps = value if value < 64 else value - 128
        return ("step", b.command, steps) if steps else None
    if b.mode == "offset":
        return ("step", b.command, value - 64) if value != 64 else None
    if b.mode == "momentary":
        return ("run", b.command, 1 if pressed else 0)
    if b.mode == "toggle":
        return ("run", b.command, None) if pressed else None
    if b.mode == "trigger":
        if not pressed:
            return None
        if b.value is not None:
            return ("run", b.command, b.value)
        if command.kind == CHOICE:
            return ("run", b.command, "next")
        if command.kind == NUMBER:
            return ("run", b.command, command.high if b.high is None else b.high)
        return ("run", b.command, 1)
    # absolute
    if kind == "note_off":
        return None
    if b.value is not None:
        return ("run", b.command, b.value) if pressed or kind == "cc" else None
    fraction = value / 127
    if command.kind == NUMBER:
        low = command.low if b.low is None else b.low
        high = command.high if b.high is None else b.high
        return ("run", b.command, low + fraction * (high - low))
    if command.kind == CHOICE:
        return ("run", b.command, min(len(command.choices) - 1, int(fraction * len(command.choices))))
    if command.kind == TOGGLE:
        return ("run", b.command, 1 if pressed else 0)
    return ("run", b.command, 1) if pressed else None


class Presets:
    """Where presets are found: a user folder first (if given), then the ones livejpp ships."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folders = [Path(folder)] if folder else []
        self.folders.append(PRESETS)

    def find(self, name: str) -> Path:
        candidate = Path(name).expanduser()
        if candidate.suffix == ".toml" and candidate.is_file():
            return candidate
        for folder in self.folders:
            path = folder / f"{name}.toml"
            if path.is_file():
                return path
        names = ", ".join(self.names()) or "none"
        raise PresetError(f"no preset {name!r} (presets: {names})")

    def names(self) -> list[str]:
        found = {p.stem for folder in self.folders if folder.is_dir() for p in folder.glob("*.toml")}
        return sorted(found)

    def show_names(self) -> list[str]:
        """The presets that hold [show] settings."""
        names = []
        for name in self.names():
            try:
                self.show_settings(name)
            except PresetError:
                continue
            names.append(name)
        return names

    def read(self, name: str) -> tuple[Path, dict]:
        path = self.find(name)
        try:
            return path, tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PresetError(f"{path}: not a readable preset ({exc})") from exc

    def show_settings(self, name: str) -> tuple[Path, dict]:
        path, data = self.read(name)
        show = data.get("show")
        if not isinstance(show, dict) or not show:
            raise PresetError(f"{path}: has no [show] settings")
        return path, show

    def midi_map(self, name: str) -> MidiMap:
        path, data = self.read(name)
        entries = data.get("midi", [])
        if not isinstance(entries, list):
            raise PresetError(f"{path}: midi must be a list of [[midi]] tables")
        bindings = [binding_from(e, f"{path} [[midi]] #{i + 1}") for i, e in enumerate(entries)]
        return MidiMap(bindings, path, str(data.get("name", path.stem)))


def learned_binding(command: str, value: Any, kind: str, channel: int, number: int) -> Binding:
    """The binding MIDI learn makes from the first message after it was armed."""
    control = "cc" if kind == "cc" else "note"
    c = COMMANDS[command]
    if c.kind == TEXT and value is None:
        raise PresetError(f"learn: {command} needs a value to bind (learn {command} VALUE)")
    mode = default_mode(command, control)
    if value is not None and c.kind in (NUMBER, CHOICE):
        mode = "trigger"
    return Binding(command, control, number, channel, mode, value=value)

"""The window's keys: each is a command of the bus (run with a value, or stepped), and `?` shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livejpp.control.commands import COMMANDS


@dataclass(frozen=True)
class Key:
    keys: tuple[str, ...]  # pyglet key names (pyglet.window.key.NAME)
    label: str  # as the help shows it
    command: str
    value: Any = None  # run with this value ...
    steps: float | None = None  # ... or step by this much ...
    cycle: bool = False  # ... or walk through the command's options (videos, folders, presets)

    def doc(self) -> str:
        if self.cycle:
            return {"video": "next video of the library", "tag": "next folder", "preset": "next show preset"}[
                self.command
            ] + ", then all again"
        if self.steps is not None:
            return f"{self.command} {'up' if self.steps > 0 else 'down'}"
        if self.value is not None:
            return f"{self.command} {self.value}"
        return COMMANDS[self.command].doc


KEYS: tuple[Key, ...] = (
    Key(("SPACE",), "space", "next"),
    Key(("H",), "h", "hold"),
    Key(("B",), "b", "blackout"),
    Key(("T",), "t", "tap"),
    Key(("R",), "r", "follow"),
    Key(("Y",), "y", "resync"),
    Key(("BRACKETLEFT",), "[", "crossfade", steps=-1),
    Key(("BRACKETRIGHT",), "]", "crossfade", steps=1),
    Key(("_1",), "1", "transition", "crossfade"),
    Key(("_2",), "2", "transition", "dip"),
    Key(("_3",), "3", "transition", "wipe"),
    Key(("E",), "e", "effect", "next"),
    Key(("COMMA",), ",", "intensity", steps=-1),
    Key(("PERIOD",), ".", "intensity", steps=1),
    Key(("MINUS",), "-", "brightness", steps=-1),
    Key(("EQUAL",), "=", "brightness", steps=1),
    Key(("SEMICOLON",), ";", "av_offset", steps=-1),
    Key(("APOSTROPHE",), "'", "av_offset", steps=1),
    Key(("DOWN",), "down", "bars", steps=-1),
    Key(("UP",), "up", "bars", steps=1),
    Key(("V",), "v", "video", cycle=True),
    Key(("G",), "g", "tag", cycle=True),
    Key(("P",), "p", "preset", cycle=True),
    Key(("S",), "s", "sync", "next"),
    Key(("TAB",), "tab", "hud"),
    Key(("F",), "f", "fullscreen"),
    Key(("Q", "ESCAPE"), "q, esc", "quit"),
)
LEARN_KEY = ("L", "l", "MIDI learn: pick a command with left / right, move a control; l again stops")


def help_text() -> str:
    lines = ["keys"]
    for key in KEYS:
        lines.append(f"  {key.label:<8}  {key.doc()}")
    lines.append(f"  {LEARN_KEY[1]:<8}  {LEARN_KEY[2]}")
    lines.append(f"  {'?':<8}  this help")
    return "\n".join(lines)


def by_symbol(pyglet_key) -> dict[int, Key]:
    """pyglet key symbol → Key."""
    table = {}
    for key in KEYS:
        for name in key.keys:
            table[getattr(pyglet_key, name)] = key
    return table


def learnable() -> list[str]:
    """The commands MIDI learn can bind without a value, in the order the learn key cycles them."""
    return [name for name, c in COMMANDS.items() if c.kind != "text" and name not in ("learn", "clock")]

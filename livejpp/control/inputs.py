"""The controls of one show: the bus, and the OSC and MIDI inputs the VJ asked for, started and
stopped together (and the show's Link session, which follows through the same bus)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from livejpp.control.commands import CommandBus
from livejpp.control.mapping import Presets
from livejpp.control.midi import Learner, MidiInputs
from livejpp.control.osc import OscFeedback, OscServer, parse_host_port

log = logging.getLogger("livejpp.control")


@dataclass
class ControlOptions:
    osc: bool = True
    osc_host: str = "127.0.0.1"
    osc_port: int = 9000
    osc_feedback: str | None = None  # HOST:PORT
    midi_in: list[str] = field(default_factory=list)  # port names or patterns
    midi_map: str = "generic"
    midi_api: str | None = None
    midi_clock: bool = False
    learn: str | None = None  # preset file MIDI learn writes
    presets: str | None = None  # a folder searched before the bundled presets
    preset: str | None = None  # a show preset loaded at the start


class Controls:
    def __init__(self, show, options: ControlOptions):
        self.options = options
        self.presets = Presets(options.presets)
        self.bus = CommandBus(show, self.presets)
        if getattr(show, "link", None) is not None:  # a followed Link session steers the clock through the bus
            show.link.bus = self.bus
        self.osc: OscServer | None = None
        self.feedback: OscFeedback | None = None
        self.midi: MidiInputs | None = None
        self.learner: Learner | None = None
        if options.osc_feedback:
            self.feedback = OscFeedback(self.bus, parse_host_port(options.osc_feedback))
        if options.osc:
            self.osc = OscServer(self.bus, options.osc_host, options.osc_port, self.feedback)
        if options.midi_in or options.learn:
            midi_map = self.presets.midi_map(options.midi_map)
            if options.learn:
                self.learner = Learner(midi_map, Path(options.learn))
                self.bus.learner = self.learner
            self.midi = MidiInputs(
                self.bus, options.midi_in or ["*"], midi_map, options.midi_api, options.midi_clock, self.learner
            )

    def start(self) -> None:
        if self.options.preset:
            self.bus.run("preset", self.options.preset, "preset")
        for part in (self.osc, self.feedback, self.midi):
            if part is not None:
                part.start()

    def stop(self) -> None:
        for part in (self.midi, self.osc, self.feedback):
            if part is not None:
                part.stop()
        self.bus.flush_refusals()

    def summary(self) -> dict:
        out = {"inputs": self.bus.summary(), "events": self.bus.event_log(self.bus.show.start_time)}
        if self.osc is not None:
            out["osc"] = {"address": f"{self.osc.address[0]}:{self.osc.address[1]}", "packets": self.osc.packets}
        if self.feedback is not None:
            out["osc_feedback_messages"] = self.feedback.messages
        if self.midi is not None:
            out["midi"] = {
                "ports": sorted(self.midi.ports),
                "opens": self.midi.opens,
                "lost": self.midi.lost,
                "messages": self.midi.received,
                "map": str(self.midi.map.path),
            }
        if self.learner is not None:
            out["learned"] = self.learner.learned
        return out

    def hud_line(self) -> str:
        parts = []
        for origin in ("osc", "midi"):
            c = self.bus.counts.get(origin)
            if c is not None:
                parts.append(f"{origin} {c.applied} ok {c.refused + c.malformed} bad")
        if self.learner is not None and self.learner.armed:
            command, value = self.learner.armed
            parts.append(f"LEARN {command}{' ' + value if value else ''}: move a control")
        elif self.learner is not None and self.learner.learned:
            parts.append(f"learned {self.learner.learned[-1]}")
        if self.bus.last_error:
            parts.append(f"last refused: {self.bus.last_error[:60]}")
        return "   ".join(parts)

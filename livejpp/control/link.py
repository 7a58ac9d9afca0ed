"""Ableton Link: the show follows a session's tempo and bar (`--clock link`), or tells the session the
tempo and bar it hears (`--link`), so other apps (Resolume, Ableton Live, lighting desks) follow the room.

Link comes from the optional extra `livejpp[link]` (LinkPython-extern, `import link`; the Link library
inside it is GPL-2.0+, livejpp stays MIT and only imports it when asked). Times in a Link session
mean "the sound at the speaker": they are the room's times, turned into the engine's audio time
through the show's latencies (engine/latency.py). Link's clock is the system's monotonic clock;
it is read beside the show's at every step, so the two never drift apart.

Following, the session steers the clock as every control does, through the command bus: a `clock
BPM BEAT` command (BEAT: where in the bar the read fell) once a beat and at once when the tempo
changes, whose event log keeps the join and the tempo changes; `follow` when the session is gone.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from livejpp.errors import LivejppError

log = logging.getLogger("livejpp.link")
#: Below this confidence the music's tempo is not worth telling the session.
PUBLISH_CONFIDENCE = 0.5
#: Tempo changes smaller than this (BPM) are not sent: the music's estimate jitters a little.
TEMPO_STEP = 0.05


class LinkError(LivejppError):
    """Ableton Link cannot be used (the extra is not installed)."""


def _link_module():
    try:
        import link
    except ImportError:
        raise LinkError("Ableton Link needs the link extra: pip install 'livejpp[link]'") from None
    return link


@dataclass(frozen=True)
class Grid:
    """The session's grid at one moment, in the room's show time (seconds)."""

    period: float
    beat_at: float  # a beat
    bar_at: float  # the bar's first beat (phase 0 of the quantum), on the same grid
    peers: int
    beat: float = 0.0  # the session's beat count at that moment


class LinkClock:
    """One show's Link session. `follow`: the session's tempo and bar drive the beat clock while it
    has peers; without them the music does, and the show says so. Otherwise it publishes."""

    def __init__(self, follow: bool, bpm: float = 120.0, quantum: int = 4):
        self.link = _link_module().Link(bpm)
        self.link.enabled = True
        self.following = follow
        self.quantum = quantum
        self.status = "Link: waiting for a session" if follow else "Link: publishing"
        self.published = 0  # tempo/phase updates sent to the session
        self.followed = False  # whether the session drives the clock now
        self.bus = None  # control.commands.CommandBus: following steers the show's clock through it
        self._published_at = -1e9
        self._bpm_said = 0.0  # the session tempo last said in the log
        self._sent: tuple[float, int] | None = None  # (tempo, beat) of the last `clock` command sent

    def peers(self) -> int:
        return int(self.link.numPeers())

    def _micros(self, show_t: float, show_now: float, link_now: int) -> int:
        return link_now + int(round((show_t - show_now) * 1e6))

    def grid(self, show_now: float) -> Grid:
        """The session's tempo, a beat and a bar start near `show_now` (room time, on whichever clock
        `show_now` was read from just before)."""
        link_now = self.link.clock().micros()
        state = self.link.captureAppSessionState()
        period = 60.0 / state.tempo()
        phase = state.phaseAtTime(link_now, self.quantum)  # beats into the bar, [0, quantum)
        bar_at = show_now - phase * period
        beat_at = show_now - (phase % 1.0) * period
        return Grid(period, beat_at, bar_at, self.peers(), state.beatAtTime(link_now, self.quantum))

    def step(self, clock, latency, show_now: float) -> None:
        """Follow the session or publish to it (the analysis thread calls this at every read).
        Following, `clock` is only read (the engine's published ClockState will do): the bus changes it."""
        if self.following:
            self._follow(clock)
        else:
            self._publish(clock, latency, show_now)

    def _follow(self, clock) -> None:
        if clock.source not in ("music", "link"):  # the VJ's tap (or a MIDI clock) wins until `follow`
            return
        if self.bus is None:
            raise LinkError("following a Link session needs the show's command bus (control.inputs.Controls)")
        received = time.monotonic()  # the bus times its commands on this clock; grid() reads Link's beside it
        grid = self.grid(received)
        if grid.peers == 0:
            if self.followed:  # the session vanished: the music drives the clock again
                self.followed, self._sent = False, None
                if clock.source == "link":
                    self.bus.run("follow", None, "link")
                self.status = "Link session gone: following the music"
                log.warning("%s", self.status)
            return
        bpm = 60.0 / grid.period
        if not self.followed or abs(bpm - self._bpm_said) >= 0.5:  # joined, or the session's tempo changed
            self.followed, self._bpm_said = True, bpm
            self.status = f"Link: following the session ({grid.peers} peers) at {bpm:.1f} BPM"
            log.info("%s", self.status)
        # once a beat, and at once for a new tempo or a clock that is not (or no longer) the session's
        sent = (grid.period, math.floor(grid.beat))
        if sent == self._sent and clock.source == "link":
            return
        self._sent = sent
        bar_beat = 1.0 + (received - grid.bar_at) / grid.period
        self.bus.run("clock", [bpm, bar_beat], "link", received)

    def _publish(self, clock, latency, show_now: float) -> None:
        """The tempo and bar the show hears, at most once a bar, when it is sure enough of them."""
        period = clock.period
        beats_per_bar = getattr(clock, "beats_per_bar", self.quantum)
        if show_now - self._published_at < beats_per_bar * period or confidence(clock) < PUBLISH_CONFIDENCE:
            return
        self._published_at = show_now
        link_now = self.link.clock().micros()
        state = self.link.captureAppSessionState()
        if abs(state.tempo() - 60.0 / period) > TEMPO_STEP:
            state.setTempo(60.0 / period, link_now)
        audio_now = latency.heard(show_now)
        downbeat = getattr(clock, "next_downbeat", clock.next_beat)(audio_now)
        # alone, the session's bar starts there; with peers, Link keeps their phase (it is polite)
        state.requestBeatAtTime(0.0, self._micros(latency.room(downbeat), show_now, link_now), self.quantum)
        self.link.commitAppSessionState(state)
        self.published += 1
        self.status = f"Link: publishing {60.0 / period:.1f} BPM ({self.peers()} peers)"

    def close(self) -> None:
        self.link.enabled = False  # the peers hear it leave now, not after a time-out

    def summary(self) -> dict:
        return {
            "mode": "follow" if self.following else "publish",
            "peers": self.peers(),
            "following": self.followed,
            "published": self.published,
            "status": self.status,
        }


def confidence(clock) -> float:
    """How sure the clock is of its tempo and phase: the tracker's confidence where it has one;
    a tempo set by hand or by another clock is sure."""
    if clock.source != "music":
        return 1.0
    return float(getattr(clock, "confidence", clock.clarity))

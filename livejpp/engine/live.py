"""`livejpp live`: the show. Three kinds of work on their own threads:

- audio: the device callback (or the file's clock) only delivers samples;
- analysis: at every hop, the engine decides (dropping stale hops when it falls behind);
- decoding: a worker keeps the pictures of the clips on screen ready for the next frame, and the
  first picture of the next candidates decoded ahead, so a cut shows at once;

and the window's thread only uploads the ready pictures and draws (render/window.py).

The show goes on: a clip chosen without audio is on screen from the first frame (the music's first
cut replaces it); hearing nothing (no device, a device not found, a silent input, an unreadable song)
is said once, in the log and the HUD, and the controls still cut to clips; a clip whose file cannot
play gives way at once to the next; with no clip that plays, a standby picture shows.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livejpp.audio_io import Source
from livejpp.engine.calibrate import CALIBRATION_TAPS, FLASH_SECONDS, LOOP_BPM, MAX_TAP_SPREAD, ClickTrack, tap_offset
from livejpp.engine.engine import Engine, EngineSettings
from livejpp.engine.hud import HUD_REFRESH, hud_text
from livejpp.engine.latency import Latency
from livejpp.engine.layers import MAX_LAYERS, HandLayer, check_number, find_clip
from livejpp.engine.selector import Cut
from livejpp.engine.sync import SyncEvent, SyncLock, SyncMode, SyncSnapshot, SyncTracker
from livejpp.engine.sync_cuts import clip_at
from livejpp.engine.trackers import TrackerError, make_tracker
from livejpp.features.audio import SILENCE_DBFS
from livejpp.library.store import ClipRecord, ClipTable
from livejpp.media.compose import BLENDS, LayerDraw, crossfade_weight
from livejpp.media.decode import AUDIO_RATE, MediaError
from livejpp.media.player import FramePool, Picture
from livejpp.media.standby import standby_picture

log = logging.getLogger("livejpp.live")
MAX_PICTURE_WAIT = 0.5  # seconds a due cut waits for its first picture before it shows without it
SILENT_AFTER = 2.0  # seconds without audio above the silence floor before the show says it hears nothing
NAMED_BROKEN = 10  # broken clip files named one by one in the log; the rest are counted in the stats
#: The fallback order (a show with nothing heard yet) holds at most this many clips, a seeded sample: plenty
#: for `next` without audio, and built in milliseconds at a million clips (the whole library: ~2 s, ~100 MB).
FALLBACK_CLIPS = 1000


@dataclass
class Layer:
    cut: Cut
    record: ClipRecord  # the clip, of the library it was decided in: a switch keeps it playing
    library: Path
    decided_at: float  # wall time the engine decided it
    shown_at: float | None = None  # wall time its first picture was drawn
    late: float = 0.0  # show seconds from its beat to the frame that first showed it
    first_frame: bool = False  # shown on the first frame composed at or after its beat
    replaced: bool = False  # its clip cannot play: another took its place
    sync: SyncLock | None = None  # a clip of the song's own video, played on this line (the newest fit)
    sync_clips: list[ClipRecord] = field(default_factory=list)  # that video's clips, back to back


@dataclass(frozen=True)
class ShowFrame:
    """Everything the window needs to draw one frame, taken at once: the window reads no show attribute.
    The one message back is `LiveShow.drawn` (what the frame showed: the cuts' stats and their first frames).

    Frozen so a control changing the show mid-draw cannot leave a frame half old, half new."""

    outgoing: Picture | None  # RGB at the output size, or (--frames gpu) planes or HAP blocks as decoded
    incoming: Picture | None
    weight: float  # crossfade weight of the incoming picture
    newly: tuple[Layer, ...]  # layers whose first picture this frame shows
    transition: int
    effect: int
    effect_amount: float
    brightness: float
    blackout: bool
    picture_time: float  # the audio time the pictures belong to (the recorder stamps frames with it)
    hud: bool
    fullscreen: bool
    help: bool
    sync_position: float | None = None  # the locked video's position these pictures show (None: not in sync)
    extra: tuple[tuple[Picture | None, LayerDraw], ...] = ()  # layers 2..N: picture (None: draws nothing), how
    # the HUD's lines, laid out every HUD_REFRESH seconds while the HUD shows ("" while hidden): the same string
    # until then, so the window takes a new text only when this is new (the one HUD throttle; render/hud_lines.py)
    hud_text: str = ""
    show_time: float = 0.0  # the show clock when this was taken (the window stamps its frame statistics with it)
    closing: bool = False  # the show was told to quit: this is its last frame
    ended: bool = False  # the played file has ended: the window closes half a second later


@dataclass
class ShowStats:
    """What the show itself saw; the window counts its own frames (render/frame_stats.py)."""

    started: float = field(default_factory=time.monotonic)
    analysis_latency: list[float] = field(default_factory=list)  # newest audio arrival → decision
    cut_latency: list[float] = field(default_factory=list)  # beat → the frame that first shows the cut (show time)
    cuts: list[dict] = field(default_factory=list)
    missing_pictures: int = 0
    waited_for_picture: int = 0  # frames a due cut waited because its first picture was not ready
    skipped_clips: list[str] = field(default_factory=list)
    hearing: list[tuple[float, str]] = field(default_factory=list)  # (show time, why it hears nothing; "": hears)
    sync_events: list[tuple[str, float, str]] = field(default_factory=list)  # (enter/move/leave, time, video)
    locked_seconds: float = 0.0  # in sync, the spans that ended
    layer_changes: list[dict] = field(default_factory=list)  # hand-set layers: each change, with its audio time


def bound_heap_growth() -> None:
    """Keep big picture buffers out of glibc's heap. Decoded and converted frames (megabytes each,
    allocated on one thread, freed on another) otherwise raise malloc's dynamic mmap threshold and
    fragment the heap: a 5-minute show grew 120 MB with it, and stays flat without it (measured)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 128 * 1024)


def matching_clips(engine: Engine, video: str = "", tag: str = "") -> set[int]:
    """Clips whose source file name contains `video` and one of whose folders is named `tag` (both
    case-insensitive; VJs sort loops into folders: abstract/, city/, faces/): judged per video, not per clip."""
    return engine.records.matching(engine.video_paths, video, tag)


class LiveShow:
    """The state the window draws, fed by the analysis and decoding threads and changed by the
    controls (keys, OSC, MIDI), which all come through the command bus (control/commands.py)."""

    def __init__(
        self,
        library: str | Path,
        source: Source,
        model: str | Path = "default",
        settings: EngineSettings | None = None,
        size: tuple[int, int] = (1280, 720),
        fps: float = 30.0,
        layers: int = 2,
    ):
        if not 1 <= layers <= MAX_LAYERS:
            raise ValueError(f"a show has 1..{MAX_LAYERS} layers, not {layers}")
        bound_heap_growth()
        self.engine = Engine(library, model, settings)
        self.engine.warm_up()
        self.model = str(model)
        self.source = source
        self.size = size
        self.fps = fps
        self.stats = ShowStats()
        self.latency = Latency(output=1.0 / fps)  # one frame: the flip waits for the next refresh (--output-latency)
        self.link = None  # control.link.LinkClock: --clock link follows a session, --link publishes to it
        self.calibration: list[float] | None = None  # show times of the taps while calibrating
        self.calibrated = ""  # what the last calibration found (the stats keep it)
        self._calibrated_offset: float | None = None  # the offset it set: the HUD says it while it holds
        self.on_calibrated = None  # called with the offset (s) a calibration found (--calibrate-save)
        self.loop = False  # flash and click on a fixed grid (--calibrate loop)
        self._clicks: ClickTrack | None = None
        self._flash_pictures: dict[bool, np.ndarray] = {}
        self.lock = threading.Lock()  # layers, pending cuts
        self.engine_lock = threading.RLock()  # the engine: analysis at each hop, controls that steer it
        self.layers: list[Layer] = []  # [outgoing, incoming] at most
        self.pending: list[Layer] = []  # decided, waiting for their beat
        self.pictures: dict[str, tuple[float, Picture]] = {}  # clip uid → (clip time, picture for the next frame)
        self.frames = "rgb"  # what the decoder hands the window: "rgb" (converted on the CPU) or "gpu" (as decoded)
        self.max_texture: int | None = None  # the GL's texture limit: larger pictures are scaled before the window
        self.blackout = False
        self.brightness = 1.0
        self.transition = 0  # index into compose.TRANSITIONS
        self.effect = 0  # index into compose.EFFECTS
        self.effect_amount = 0.5
        self.hud = True
        self.fullscreen = False
        self.help = False  # the window's key help (a bus command, like the HUD)
        self.quit = threading.Event()
        self.forced: dict[str, str] = {}  # "video" / "tag" → what the VJ forced
        self.switching: str | None = None  # a library or model being loaded
        self.awaiting: list = []  # applied control events whose first frame is still to come
        self.stop_event = threading.Event()
        self.audio_seen = 0.0  # seconds of audio analysed
        self.keep_audio = None  # given by start() when the show is recorded: it takes the input audio, for the file
        self._last_frame = -1.0  # show time of the last frame composed
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self.hearing = ""  # why the show hears nothing (no device, silent input, ...); "" while it hears
        self.standby = ""  # why the standby picture shows (no clip can play); "" while clips play
        self._hud_text, self._hud_at = "", -1.0  # the HUD's lines as last laid out, and when
        self._heard_at = self._loud_at = 0.0  # wall time audio last arrived / was above the silence floor
        self._source_problem = ""
        self._pool: FramePool | None = None  # the decoder's open clips (the opening picture is decoded first)
        self._shown: Picture | None = None  # the picture on screen, held while the next is not ready
        self._incoming_ready = False
        self._standby_picture: np.ndarray | None = None
        self._fallback: tuple[Engine, set[int] | None, list[tuple[int, float]]] | None = None  # for that engine
        self.sync = SyncTracker("auto")  # known-track sync: the song's own video, locked to the audio
        self.sync_state = SyncSnapshot()  # what the HUD and OSC read: published whole under the engine lock
        self.shown_sync_position: float | None = None  # the video position the last frame showed in sync
        self._locked_at: float | None = None  # engine time the current lock began
        self.layers_count = layers  # layer 1 the matcher's, 2..N set by hand (the window draws N)
        self.hand: dict[int, HandLayer] = {n: HandLayer() for n in range(2, layers + 1)}  # replaced whole, under lock
        self.hand_pictures: dict[int, tuple[tuple, Picture]] = {}  # layer → ((clip, set_at), decoded picture)

    # --- clocks --------------------------------------------------------------------------------
    def show_time(self) -> float:
        """Seconds since the show started: the audio clock's time base."""
        return time.monotonic() - self._t0

    def picture_time(self) -> float:
        """The audio time whose pictures the frame drawn now shows: ahead of the show clock by the
        latencies, so the picture is seen when its beat sounds in the room (engine/latency.py)."""
        return self.show_time() - self.latency.shift(self.engine.clock.av_offset)

    def heard_time(self) -> float:
        """The audio time of what the room hears now (the VJ taps on the beat they hear)."""
        return self.latency.heard(self.show_time())

    # --- threads -------------------------------------------------------------------------------
    def start(self, frames: str = "rgb", max_texture: int | None = None, keep_audio=None) -> None:
        """Start the threads. The window says what its GL takes: `frames` "gpu" (the decoder hands it planes
        or HAP blocks as decoded: the shader converts and scales) or "rgb" (converted on the CPU), and its
        largest texture side, before the decoder's first picture; `keep_audio(samples)`, when it records,
        takes the input audio as it is analysed (until stop())."""
        self.frames, self.max_texture, self.keep_audio = frames, max_texture, keep_audio
        self._pool = FramePool(self.size, keep=10 + len(self.hand))  # a reader for each hand-set layer too
        self._t0 = time.monotonic()  # show_time() is used while the opening clip is chosen ...
        self._open_with_a_clip()
        self._t0 = self._heard_at = self._loud_at = time.monotonic()  # ... but the show starts with its audio
        self.source.start()
        if self.loop:
            try:
                self._clicks = ClickTrack(self._room_beat(), self._t0)
            except Exception as exc:  # noqa: BLE001 - no output device: the flashes go on without clicks
                log.warning("no audio output for the clicks (%s): flashing only", exc)
        for target, name in ((self._analyse, "analysis"), (self._decode, "decoder")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.keep_audio = None  # an analysis thread still finishing its hop writes no more audio
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self.source.stop()
        if self._clicks is not None:
            self._clicks.stop()
        if self.link is not None:
            self.link.close()

    def sync_line(self) -> str:
        """The HUD's line on the room's sync: the A/V offset when one is set, the Link session."""
        parts = []
        offset = self.engine.clock_state.av_offset
        if self.calibration is not None:
            parts.append(f"CALIBRATING: tap on the beat you hear ({len(self.calibration)}/{CALIBRATION_TAPS})")
            if self.calibrated:  # why the last taps measured nothing
                parts.append(self.calibrated)
        elif self.calibrated and offset == self._calibrated_offset:  # not once the offset moved on
            parts.append(self.calibrated)
        elif offset:
            parts.append(f"A/V offset {offset * 1000:+.0f} ms")
        if self.link is not None:
            parts.append(self.link.status)
        return "   ".join(parts)

    def _keep_going(self, name: str, step, interval: float) -> None:
        """Run `step` every `interval` seconds until the show stops. An unexpected error is said in one
        line (once per kind; -vv shows where) and the thread goes on: no traceback reaches the VJ."""
        said: set[str] = set()
        while not self.stop_event.wait(interval):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the show goes on
                message = f"{type(exc).__name__}: {exc}"
                if message not in said:
                    said.add(message)
                    log.error("%s: %s (the show goes on)", name, message)
                    log.debug("%s failed here:", name, exc_info=True)

    def _analyse(self) -> None:
        hop = self.engine.settings.hop
        self._keep_going("analysis", self._analyse_once, min(hop / 4, 0.02))  # audio reaches the engine in 20 ms

    def _step_link(self) -> None:
        """Follow the Link session, through the command bus (without the engine lock: the bus takes
        its own lock, then the engine's; taken the other way round, a control could deadlock it), or
        publish the clock to the session (read under the engine lock)."""
        if self.link.following:
            self.link.step(self.engine.clock_state, self.latency, self.show_time())
            return
        with self.engine_lock:
            self.link.step(self.engine.clock, self.latency, self.show_time())

    def _analyse_once(self) -> None:
        if self.link is not None:
            self._step_link()
        if self._clicks is not None:  # the clicks follow the latencies as they are measured
            self._clicks.beat_at = self._room_beat()
        samples, arrival = self.source.read()
        self._listen(samples)
        if self.hearing:
            self._change_without_audio()
        if not len(samples):
            return
        if self.keep_audio is not None:
            self.keep_audio(samples)
        self.latency.input = getattr(self.source, "latency", 0.0)
        with self.engine_lock:
            engine = self.engine
            # the cuts are decided as far ahead as their pictures are drawn before their audio arrives
            engine.latency_lead = self.latency.ahead(engine.clock.av_offset)
            hops = len(engine.hops)
            cuts = engine.push(samples, latest_only=True)
            decided = time.monotonic()
            with self.lock:
                for cut in cuts:
                    self.pending.append(Layer(cut, engine.records[cut.clip], engine.library, decided))
            if len(engine.hops) > hops:  # after the hop's content cuts: a sync cut replaces those from its beat on
                self._follow_sync(engine)
        self.latency.observe(arrival - self._t0, engine.analyser.samples_in / AUDIO_RATE)
        if len(engine.hops) and engine.hops[-1].time > self.audio_seen:
            self.stats.analysis_latency.append(decided - arrival)
            self.audio_seen = engine.hops[-1].time

    # --- known-track sync -------------------------------------------------------------------------
    @property
    def sync_mode(self) -> SyncMode:
        return self.sync.mode

    def set_sync(self, mode: SyncMode) -> None:
        """auto / on / off: turning it off while locked leaves at the next hop, on a beat."""
        with self.engine_lock:
            self.sync.set_mode(mode)
            if mode != "off":  # turned off, the matcher goes at the next hop, when the tracker has seen it
                self.engine.set_matching(True)
            self._publish_sync(self.engine)

    def _publish_sync(self, engine: Engine) -> None:
        lock = self.sync.lock
        self.sync_state = SyncSnapshot(self.sync.mode, lock, engine.video_names.get(lock.video, "") if lock else "")

    def _follow_sync(self, engine: Engine) -> None:
        """One decided hop of the tracker (engine_lock held): a lock's refit is followed by the clips that play
        it (continuously: the line moves, never the picture); enter, move and leave cut on the next beat."""
        now = engine.match_time
        before = self.sync.lock
        verified = engine.verify(self.sync.verifying)
        event = self.sync.update(engine.heard, now, now, level_db=engine.hop_level_db, verified=verified)  # as render
        lock = self.sync.lock
        if self.sync.mode == "off":  # off as the tracker saw it (on -> off -> auto within a hop keeps the window)
            engine.set_matching(False)
        if event is None and lock is not None:
            with self.lock:  # the layers on this lock's line follow its refit; a layer a move left keeps its line
                for layer in self.layers + self.pending:
                    if layer.sync is not None and layer.sync is before:
                        layer.sync = lock
        if event is not None:
            self._sync_cut(engine, event)
        self._publish_sync(engine)

    def _sync_cut(self, engine: Engine, event: SyncEvent) -> None:
        """The cut an event asks for, on the next beat after its lead (engine_lock held); it replaces what was
        planned from that beat on, a content cut the engine decided there included."""
        beat = engine.clock.next_beat(max(event.at + engine.settings.lead + engine.latency_lead, engine.last_beat))
        lock = event.lock
        name = engine.video_names.get(lock.video, "") if lock else ""
        self.stats.sync_events.append((event.kind, round(event.at, 3), name))
        if self._locked_at is not None and (lock is None or event.kind == "enter"):
            self.stats.locked_seconds += event.at - self._locked_at
            self._locked_at = None
        if lock is None:
            engine.selector.synced = False
            cut = self._forced_cut(engine, beat)
            if cut is None:
                return
            cut.reason = "sync end"
            layer = Layer(cut, engine.records[cut.clip], engine.library, time.monotonic())
            log.info("sync: left %s", self.sync_state.video)
        else:
            clips = engine.records.of_video(lock.video)
            if not clips:
                return
            record, offset = clip_at(clips, lock.position_at(beat))
            fade = engine.selector.settings.crossfade_beats * engine.clock.period
            extra = {"rate": lock.rate, "video_position": round(lock.position_at(beat), 4)}
            cut = Cut(beat, record.id, offset, fade, 0.0, engine.clock.beat_index(beat), "sync", extra)
            layer = Layer(cut, record, engine.library, time.monotonic(), sync=lock, sync_clips=clips)
            engine.selector.synced = True
            if self._locked_at is None:
                self._locked_at = event.at
            if event.kind == "enter":
                log.info("sync: %s at %.1f s (%+.1f %%)", name, lock.position_at(beat), (lock.rate - 1) * 100)
        with self.lock:  # it replaces what was planned from its beat on
            self.pending = [p for p in self.pending if p.cut.time < beat] + [layer]

    def _leave_sync_now(self, engine: Engine, at: float) -> None:
        """A library switch: the locked video's ids mean nothing in the new library; content cuts from now."""
        self.sync = SyncTracker(self.sync.mode)
        self._sync_cut(engine, SyncEvent("leave", at, None))
        self._publish_sync(engine)

    def _picture_at(self, layer: Layer, t: float) -> tuple[ClipRecord, float]:
        """The clip and clip time a layer shows at audio time t: a sync layer follows its lock's line across
        its video's back-to-back clips; any other plays its clip from the cut's offset."""
        if layer.sync is not None:
            return clip_at(layer.sync_clips, layer.sync.position_at(max(t, layer.cut.time)))
        return layer.record, layer.cut.offset + max(t - layer.cut.time, 0.0)

    # --- hearing ---------------------------------------------------------------------------------
    def _listen(self, samples: np.ndarray) -> None:
        """Whether the show hears anything, and if not why: said once per change, in the log and the HUD."""
        now = time.monotonic()
        problem = self.source.problem
        if (self._source_problem and not problem) or self.source.opening:  # a device opens: its audio gets its time
            self._heard_at = self._loud_at = now
        self._source_problem = problem
        if len(samples):
            self._heard_at = now
            if 10 * np.log10(float(np.mean(np.square(samples, dtype=np.float64))) + 1e-20) > SILENCE_DBFS:
                self._loud_at = now
        why = problem
        if not why and not self.source.finished:
            if now - self._heard_at > SILENT_AFTER:
                why = "no audio arrives from the input"
            elif now - self._loud_at > SILENT_AFTER:
                why = "the input is silent"
        if why == self.hearing:
            return
        self.hearing = why
        self.stats.hearing.append((round(self.show_time(), 2), why))
        if why:
            retry = "; retrying the device every second" if problem and hasattr(self.source, "open_failures") else ""
            log.warning("hearing nothing: %s; clips are chosen without audio%s", why, retry)
        else:
            log.info("hearing music: the cuts follow it")

    def _change_without_audio(self) -> None:
        """Hearing nothing, the clip on screen still gives way after the longest time one may stay."""
        with self.lock:
            on_screen = self.layers[-1].cut.time if self.layers and not self.pending else None
        longest = self.engine.selector.settings.max_seconds
        if on_screen is not None and not self.held and self.picture_time() - on_screen >= longest:
            self.next_clip(reason="no audio")

    # --- clips that play, and those that cannot ------------------------------------------------
    def _fallback_neighbours(self, engine: Engine) -> list[tuple[int, float]]:
        """With nothing heard yet: the clips (of a forced video or tag, if one is), in an order shuffled
        by the seed, so a show without audio still plays and obeys `next`; at most FALLBACK_CLIPS of them."""
        cached = self._fallback
        if cached is None or cached[0] is not engine or cached[1] is not engine.allowed:
            pool = engine.records if engine.allowed is None else engine.allowed
            ids = pool.ids if isinstance(pool, ClipTable) else np.sort(np.fromiter(pool, np.int64, count=len(pool)))
            rng = np.random.default_rng(engine.selector.settings.seed)
            if len(ids) <= FALLBACK_CLIPS:
                order = rng.permutation(len(ids))
            else:
                order = rng.choice(len(ids), FALLBACK_CLIPS, replace=False)
            cached = self._fallback = (engine, engine.allowed, [(int(ids[i]), 1.0) for i in order])
        return cached[2]

    def _neighbours(self, engine: Engine) -> list[tuple[int, float]]:
        """What the selector chooses from: the music's nearest clips, or the fallback order."""
        return engine.neighbours or self._fallback_neighbours(engine)

    def _forced_cut(self, engine: Engine, at: float) -> Cut | None:
        """A cut at `at` to the best fresh clip that may play (engine_lock held)."""
        selector, clock = engine.selector, engine.clock
        cut = selector.on_beat(at, engine.beat_count, clock.period, engine.neighbours, force=True)
        if cut is None:  # nothing heard, or every neighbour is broken: any clip that plays
            cut = selector.on_beat(at, engine.beat_count, clock.period, self._fallback_neighbours(engine), force=True)
        return cut

    def _open_with_a_clip(self) -> None:
        """Before the first frame: the first clip of the fallback order that plays, decoded, on screen
        (the music's first cut replaces it); the standby picture if none plays."""
        engine = self.engine
        for clip, _ in self._fallback_neighbours(engine):
            record = engine.records[clip]
            if clip not in engine.selector.broken and self._prepare(self._pool, record, engine.library, 0.0):
                cut = Cut(0.0, clip, 0.0, 0.0, float("nan"), 0, "opening")
                engine.selector.last_shown[clip] = 0.0  # not the first one `next` picks
                self.pending = [Layer(cut, record, engine.library, time.monotonic())]  # due at the first frame
                return
        self._nothing_plays(engine)

    def _playable_layer(self, at: float, reason: str) -> Layer | None:
        """A cut at `at` to the next candidate whose first picture decodes (decoder thread)."""
        engine = self.engine
        for _ in range(len(engine.records) + 1):
            with self.engine_lock:
                cut = self._forced_cut(engine, at)
            if cut is None:
                break
            record = engine.records[cut.clip]
            if self._prepare(self._pool, record, engine.library, cut.offset):
                cut.reason = reason
                return Layer(cut, record, engine.library, time.monotonic())
        self._nothing_plays(engine)
        return None

    def _replace(self, broken: Layer) -> None:
        """A clip that cannot play gives way at once: a pending one to another at its beat, the one on
        screen to another now (the last picture stays on screen meanwhile)."""
        broken.replaced = True
        with self.lock:
            pending = broken in self.pending
        layer = self._playable_layer(broken.cut.time if pending else self.picture_time(), "replacement")
        with self.lock:  # the render thread may have put the broken one on screen meanwhile
            if broken in self.pending:
                i = self.pending.index(broken)
                self.pending[i : i + 1] = [layer] if layer else []
            elif layer is not None:
                self.pending.insert(0, layer)
            for event in self.awaiting:  # a forced cut is shown once its replacement is
                if getattr(event, "layer", None) is broken:
                    event.layer = layer

    def _nothing_plays(self, engine: Engine) -> None:
        if not self.standby and engine.records and set(engine.records) <= engine.selector.broken:
            self.standby = f"no clip of {engine.library} can play"
            log.warning("%s: showing the standby picture", self.standby)

    def _mark_broken(self, record: ClipRecord, exc: Exception | None = None, then: str = "") -> None:
        """Never chosen again; said once, naming the file (the first few; the stats list them all), with
        `then`: what the show does about it (a hand-set layer is cleared)."""
        engine = self.engine
        if engine.records.get(record.id) is record:
            engine.selector.broken.add(record.id)
        if exc is None or record.uid in self.stats.skipped_clips:
            return
        self.stats.skipped_clips.append(record.uid)
        skipped = len(self.stats.skipped_clips)
        if skipped <= NAMED_BROKEN:
            why = f"{exc.path}: {exc.reason}" if isinstance(exc, MediaError) else str(exc)
            log.warning("skipping clip %s: %s%s", record.uid, why, f" ({then})" if then else "")
        elif skipped == NAMED_BROKEN + 1:
            log.warning("more clips cannot play: skipped without a word (--stats lists them)")

    def _decode(self) -> None:
        """Pictures for the next frame of every clip on screen or due; the first pictures of the clips
        the selector would pick at the next cut, decoded ahead."""
        try:
            self._keep_going("decoder", self._decode_once, 1.0 / self.fps / 3)
        finally:
            self._pool.close()

    def _decode_once(self) -> None:
        pool = self._pool
        t = self.picture_time() + 1.0 / self.fps
        with self.lock:
            wanted = [(layer, *self._picture_at(layer, t)) for layer in self._decoded_layers(t) + self.pending[:2]]
            due = set(map(id, self.layers[-1:] + self.pending[:2]))  # the outgoing clip may fail: it goes
        for layer, record, clip_time in wanted:
            playing = self._prepare(pool, record, layer.library, clip_time)
            if not playing and not layer.replaced and id(layer) in due:
                self._replace(layer)
        engine = self.engine
        selector = engine.selector
        ahead = selector.candidates(t + 0.5, list(self._neighbours(engine)))
        on_screen = {r.uid for _, r, _ in wanted} | {layer.record.uid for layer, _, _ in wanted}  # decoded above
        candidates = [engine.records[c] for c, _ in ahead if engine.records[c].uid not in on_screen]
        for record in candidates:  # whichever the next cut picks: its first picture is ready
            self._prepare(pool, record, engine.library, selector.resume_at.get(record.id, 0.0))
        keep = on_screen | {r.uid for r in candidates}
        for uid in [u for u in self.pictures if u not in keep]:  # memory stays bounded
            self.pictures.pop(uid, None)
        self._decode_hand_layers(pool, t)

    def _decoded_layers(self, t: float) -> list[Layer]:
        """The matcher's layers whose pictures the frames about `t` draw: the outgoing clip only until its
        crossfade has ended (a frame's margin). After it, the shader reads only the incoming picture: decoding,
        converting and uploading the outgoing one each frame cost a layer's CPU for nothing (held by `hold`,
        or waiting for the next cut, it stayed decoded for the whole show). Call with the lock held."""
        incoming = self.layers[-1] if self.layers else None
        if incoming is not None and len(self.layers) > 1:
            if t - 2.0 / self.fps >= incoming.cut.time + incoming.cut.crossfade:
                return [incoming]
        return list(self.layers)

    def _decode_hand_layers(self, pool: FramePool, t: float) -> None:
        """The hand-set layers' pictures for the next frame: each clip loops from when it was set; one that
        cannot play clears its layer (one line), the others and the matcher play on."""
        with self.lock:
            hand = dict(self.hand)
        for n, layer in hand.items():
            if layer.record is None:
                self.hand_pictures.pop(n, None)
                continue
            then = f"layer {n} cleared"
            picture = self._decode_picture(pool, layer.record, layer.library, max(t - layer.set_at, 0.0), then)
            if picture is not None:
                self.hand_pictures[n] = ((layer.clip, layer.set_at), picture)
                continue
            with self.lock:
                if self.hand.get(n) is layer:  # unless the VJ changed it meanwhile
                    self.hand[n] = HandLayer(None, None, layer.opacity, layer.blend, self.picture_time())
            self.hand_pictures.pop(n, None)
            self._log_layer(n, self.hand[n])

    def _decode_picture(
        self, pool: FramePool, record: ClipRecord, library: Path, clip_time: float, then: str = ""
    ) -> Picture | None:
        """The clip's picture at `clip_time` (looping), as the window takes it (RGB, or --frames gpu: planes or
        HAP blocks as decoded); None if the clip cannot play (said once, with `then`)."""
        if record.uid in self.stats.skipped_clips:
            self._mark_broken(record)  # known broken (in this library or the one before a switch)
            if then:
                log.warning("layer: clip %s cannot play (%s)", record.uid, then)
            return None
        try:  # pictures() refuses a path outside the library, or a source that has gone (a pulled stick)
            path, base, length = record.pictures(library)
            reader, at = pool.get(path, base, length), clip_time % max(length, 1e-3)
            return reader.planes_at(at, self.max_texture) if self.frames == "gpu" else reader.frame_at(at, rgba=True)
        except Exception as exc:  # noqa: BLE001 - a missing or corrupt clip is skipped, the show goes on
            self._mark_broken(record, exc, then)
            return None

    def _prepare(self, pool: FramePool, record: ClipRecord, library: Path, clip_time: float) -> bool:
        """The clip's picture at `clip_time`, ready for the next frame; False if the clip cannot play."""
        picture = self._decode_picture(pool, record, library, clip_time)
        if picture is None:
            return False
        held = self.pictures.get(record.uid)
        if held is None or held[1] is not picture:
            self.pictures[record.uid] = (clip_time, picture)
        return True

    def _ready(self, layer: Layer, now: float) -> bool:
        """Whether the due cut's first picture (its clip at the cut's offset) is decoded."""
        record, clip_time = self._picture_at(layer, now)
        first, offset = self._picture_at(layer, layer.cut.time)
        held = self.pictures.get(record.uid)
        latest = clip_time + 2.0 / self.fps  # the decoder works ahead
        return held is not None and (offset if first is record else 0.0) - 1e-3 <= held[0] <= latest

    # --- what the window asks each frame -------------------------------------------------------
    def snapshot(self) -> ShowFrame:
        """This frame's pictures and settings, frozen (see ShowFrame)."""
        outgoing, incoming, weight, newly = self.frame()
        return ShowFrame(
            outgoing,
            incoming,
            weight,
            tuple(newly),
            self.transition,
            self.effect,
            self.effect_amount,
            self.brightness,
            self.blackout,
            self._last_frame,  # the time frame() chose the pictures for, not a moment later
            self.hud,
            self.fullscreen,
            self.help,
            self.shown_sync_position,
            self._extra_layers(),
            self._hud_lines(),
            self.show_time(),
            self.quit.is_set(),
            self.source.finished,
        )

    def _hud_lines(self) -> str:
        """The HUD text, laid out again every HUD_REFRESH seconds (every frame churns memory, measured)."""
        if not self.hud:
            return ""
        now = time.monotonic()
        if now - self._hud_at >= HUD_REFRESH:
            self._hud_text, self._hud_at = hud_text(self), now
        return self._hud_text

    def _extra_layers(self) -> tuple[tuple[Picture | None, LayerDraw], ...]:
        """Layers 2..N for this frame: each one's picture of the clip it plays now (None until decoded)."""
        with self.lock:
            hand = [self.hand[n] for n in sorted(self.hand)]
        out = []
        for n, layer in enumerate(hand, start=2):
            held = self.hand_pictures.get(n)  # a picture of the clip as set now, not of the one before
            picture = held[1] if held is not None and held[0] == (layer.clip, layer.set_at) and layer.clip else None
            out.append((picture, layer.draw))
        return tuple(out)

    def frame(self) -> tuple[Picture | None, Picture | None, float, list[Layer]]:
        """(outgoing picture, incoming picture, crossfade weight, layers newly on screen)."""
        now = self.picture_time()
        if self.loop:
            self._last_frame = now
            return None, self._flash(now), 1.0, []
        newly = []
        with self.lock:
            while self.pending and self.pending[0].cut.time <= now:
                layer = self.pending[0]
                if not self._ready(layer, now) and now - layer.cut.time < MAX_PICTURE_WAIT:
                    self.stats.waited_for_picture += 1  # the clip on screen stays one frame longer
                    break
                self.pending.pop(0)
                layer.late = now - layer.cut.time
                layer.first_frame = self._last_frame < layer.cut.time
                self.stats.cut_latency.append(layer.late)
                self.layers = (self.layers + [layer])[-2:]
                newly.append(layer)
            for layer in self.layers:  # in sync: the next clip of the video follows at its start, no crossfade
                if layer.sync is not None:
                    record = self._picture_at(layer, now)[0]
                    if record is not layer.record and record.uid in self.pictures:
                        layer.record = record
            layers = list(self.layers)
            self._stamp_events(now, newly)
        top = layers[-1] if layers else None
        self.shown_sync_position = round(top.sync.position_at(now), 4) if top and top.sync else None
        self._last_frame = now
        a = b = None
        weight = 1.0
        if layers:
            incoming = layers[-1]
            weight = crossfade_weight(now, incoming.cut.time, incoming.cut.crossfade) if len(layers) > 1 else 1.0
            a = self.pictures.get(layers[0].record.uid) if len(layers) > 1 else None
            b = self.pictures.get(incoming.record.uid)
            if b is None:
                self.stats.missing_pictures += 1
        self._incoming_ready = b is not None
        if b is not None:
            self._shown = b[1]
        elif a is None:  # nothing to show: the last picture stays, or the standby picture before any
            return None, self._shown if self._shown is not None else self._standby(), 1.0, newly
        return (a[1] if a else None), (b[1] if b else None), weight, newly

    def _standby(self) -> np.ndarray:
        if self._standby_picture is None:
            self._standby_picture = standby_picture(self.size)
        return self._standby_picture

    def _stamp_events(self, now: float, newly: list[Layer]) -> None:
        """Control events applied before this frame are shown by it (a forced cut: once its clip is)."""
        still = []
        wall = time.monotonic()
        for event in self.awaiting:
            layer = getattr(event, "layer", None)
            if layer is None or layer in newly or layer in self.layers:
                event.shown = wall
            elif layer in self.pending:
                still.append(event)
        self.awaiting = still

    def drawn(self, layers: list[Layer], has_picture: bool) -> None:
        has_picture = has_picture and self._incoming_ready  # not the held or standby picture
        now = time.monotonic()
        for layer in layers:
            layer.shown_at = now
            beats = np.array(self.engine.beats) if self.engine.beats else np.array([layer.cut.time])
            self.stats.cuts.append(
                {
                    "time": round(layer.cut.time, 4),
                    "clip": layer.record.uid,
                    "video": Path(layer.record.source).name,
                    "offset": layer.cut.offset,
                    "crossfade": round(layer.cut.crossfade, 4),
                    "reason": layer.cut.reason,
                    "beat_offset": round(float(np.min(np.abs(beats - layer.cut.time))), 4),
                    "shown_late": round(layer.late, 4),
                    "drawn_at": round(now - self._t0, 4),  # show clock: its audio time shifted by the latencies
                    "first_frame": layer.first_frame,
                    "picture_ready": has_picture,
                }
            )

    # --- controls: the command bus calls these (control/commands.py) ----------------------------
    def next_clip(self, reason: str = "forced") -> Layer | None:
        """Cut now to the best fresh clip (a forced cut; with nothing heard, any clip); the layer, to
        follow until it shows."""
        with self.engine_lock:
            engine = self.engine
            if self.sync.lock is not None:  # the song's own video plays: a content clip would cover it till the end
                if reason == "forced":
                    raise ValueError(f"in sync with {self.sync_state.video}: `sync off` first to cut by content")
                return None
            cut = self._forced_cut(engine, self.picture_time())
            if cut is None:
                return None
            cut.reason = reason
            layer = Layer(cut, engine.records[cut.clip], engine.library, time.monotonic())
        with self.lock:
            self.pending = [layer]  # it replaces whatever the engine had planned
        return layer

    # --- hand-set layers (2..N) ------------------------------------------------------------------
    def hand_layer(self, n: int) -> HandLayer:
        """Layer n as set now (an empty one for a number this show does not draw: what OSC feedback reads)."""
        return self.hand.get(n) or HandLayer()

    def _change_layer(self, n: int, **changes) -> None:
        from dataclasses import replace

        check_number(n, self.layers_count)
        with self.lock:
            self.hand[n] = layer = replace(self.hand[n], **changes)
        self._log_layer(n, layer)

    def _log_layer(self, n: int, layer: HandLayer) -> None:
        change = {"time": round(layer.set_at, 4), "at": round(self.picture_time(), 4), "layer": n}
        self.stats.layer_changes.append(change | {"clip": layer.clip, "opacity": layer.opacity, "blend": layer.blend})

    def set_layer_clip(self, n: int, name: str) -> None:
        """Play a clip (uid, or a video's file name: its first clip) on layer n from now, looping; "" clears it."""
        check_number(n, self.layers_count)
        if not name:
            self._change_layer(n, record=None, library=None, set_at=self.picture_time())
            return
        with self.engine_lock:
            try:
                record, library = find_clip(self.engine, name), self.engine.library
            except ValueError as exc:
                raise ValueError(f"layer {n}: {exc}") from None
        if record.uid in self.stats.skipped_clips:
            raise ValueError(f"layer {n}: clip {record.uid} cannot play (its file was skipped)")
        self._change_layer(n, record=record, library=library, set_at=self.picture_time())

    def set_layer_opacity(self, n: int, opacity: float) -> None:
        self._change_layer(n, opacity=min(1.0, max(0.0, float(opacity))))

    def set_layer_blend(self, n: int, blend: int | str) -> None:
        name = BLENDS[blend] if isinstance(blend, int) else blend
        if name not in BLENDS:
            raise ValueError(f"layer {n}: unknown blend {name!r} (choose from {', '.join(BLENDS)})")
        self._change_layer(n, blend=name)

    @property
    def held(self) -> bool:
        return self.engine.selector.held

    def set_hold(self, held: bool) -> None:
        self.engine.selector.held = held

    def tap(self) -> None:
        if self.calibration is not None:
            self._calibration_tap(self.show_time())
        else:
            with self.engine_lock:
                self.engine.clock.tap(self.heard_time())
                self.engine.publish_clock()

    def calibrate(self) -> None:
        """Tap along: the next CALIBRATION_TAPS taps, on the beats the VJ hears in the room, measure
        the A/V offset (instead of setting a tempo). The taps fall where the beat sounds; the pictures
        are seen where the latencies put it (engine/latency.py); the median difference is the offset."""
        self.calibration, self.calibrated = [], ""
        log.info("calibrating: tap (t or space) on the beat you hear, %d times", CALIBRATION_TAPS)

    def calibrate_loop(self) -> None:
        """Flash white and click on each beat of a fixed grid, both timed to meet in the room; film
        them (or --record them heard through a microphone) and `livejpp calibrate FILM` measures."""
        self.loop = True
        with self.engine_lock:
            self.engine.clock.external(60.0 / LOOP_BPM, 0.0, source="tap")
            self.engine.publish_clock()
        log.info("calibration loop: flashes and clicks at %.0f BPM; film them, then: livejpp calibrate FILM", LOOP_BPM)

    def _room_beat(self) -> float:
        """The room time (show clock) of one of the clock's beats: where the loop's clicks fall."""
        return self.latency.room(self.engine.clock.next_beat(0.0))

    def _flash(self, now: float) -> np.ndarray:
        """The loop's picture: white for FLASH_SECONDS from each beat, black between."""
        clock = self.engine.clock
        beat = clock.next_beat(now)
        last = beat if beat <= now + 1e-9 else beat - clock.period
        white = now - last < FLASH_SECONDS
        if white not in self._flash_pictures:
            self._flash_pictures[white] = np.full((self.size[1], self.size[0], 3), 255 if white else 0, np.uint8)
        return self._flash_pictures[white]

    def _calibration_tap(self, at: float) -> None:
        taps = self.calibration
        taps.append(at)
        if len(taps) < CALIBRATION_TAPS:
            return
        with self.engine_lock:
            clock, beats = self.engine.clock, list(self.engine.beats)
            heard = [self.latency.room(b) for b in beats]
            try:
                offset, spread = tap_offset(taps, heard, clock.period)
            except ValueError as exc:
                self.calibrated = f"calibration: {exc}"
                log.warning("%s; tap again", self.calibrated)
                self.calibration = []
                return
            if spread > MAX_TAP_SPREAD * clock.period:
                self.calibrated = f"calibration: the taps were {spread * 1000:.0f} ms apart from their beats"
                log.warning("%s, too scattered to measure: tap again", self.calibrated)
                self.calibration = []
                return
            self.calibration = None
            self.set_av_offset(offset)
            self._calibrated_offset = self.engine.clock.av_offset
        self.calibrated = f"calibrated: A/V offset {offset * 1000:+.0f} ms (taps within {spread * 1000:.0f} ms)"
        ms = offset * 1000
        log.info("%s: keep it with --av-offset %.0f, or av_offset = %.0f in a show preset", self.calibrated, ms, ms)
        if self.on_calibrated is not None:
            self.on_calibrated(offset)

    @property
    def start_time(self) -> float:
        """time.monotonic() when the show started: show time 0."""
        return self._t0

    def clock_sync(self, period: float, at: float, bar_beat: float | None = None, source: str = "midi") -> None:
        """An external clock (MIDI clock, Link: `source`) at show time `at`, its beats `period` seconds
        apart: `at` is a beat, or, with `bar_beat`, that far into its bar (1: the one). Its times are
        the room's, as the sending app plays them; on the audio clock they fall where the room's sound
        is heard."""
        with self.engine_lock:
            heard = self.latency.heard(at)
            if bar_beat is None:
                self.engine.clock.external(period, heard, source=source)
            else:
                one = heard - (bar_beat - 1.0) * period  # the bar's first beat: a beat on the grid too
                self.engine.clock.external(period, one, one, source=source)
            self.engine.publish_clock()

    def follow(self) -> None:
        with self.engine_lock:
            self.engine.clock.follow()
            self.engine.publish_clock()

    def set_av_offset(self, seconds: float) -> None:
        """The VJ's A/V offset (positive: pictures later); the cuts already decided move with it."""
        with self.engine_lock:
            self.engine.clock.av_offset = seconds
            self.engine.publish_clock()

    def resync(self) -> None:
        """Now is the one: a beat falls here, and bars count from it."""
        with self.engine_lock:
            self.engine.resync(self.heard_time())
            self.engine.publish_clock()

    def _set_selector(self, **changes) -> None:
        from dataclasses import replace

        with self.engine_lock:
            selector = self.engine.selector
            selector.settings = replace(selector.settings, **changes)

    @property
    def crossfade_beats(self) -> float:
        return self.engine.selector.settings.crossfade_beats

    def set_crossfade(self, beats: float) -> None:
        self._set_selector(crossfade_beats=max(0.0, beats))

    @property
    def bars(self) -> int:
        return self.engine.selector.settings.bars_per_cut

    def set_bars(self, bars: int) -> None:
        self._set_selector(bars_per_cut=max(1, int(bars)))

    @property
    def phrase(self) -> int:
        return self.engine.selector.settings.phrase_bars

    def set_phrase(self, bars: int) -> None:
        self._set_selector(phrase_bars=max(0, int(bars)))

    @property
    def beat_tracker(self) -> str:
        return self.engine.clock.tracker

    def set_beat_tracker(self, name: str) -> None:
        """Follow the music with another tracker; one that this build lacks is refused, the clock stays.
        It is built before the engine lock is taken (a learned one loads its model: the analysis goes
        on meanwhile), then swapped in; the old one is closed if it holds anything to close."""
        try:
            tracker = make_tracker(name)
        except TrackerError as exc:
            raise ValueError(str(exc)) from None
        with self.engine_lock:
            old = self.engine.clock.set_tracker(tracker)
            self.engine.publish_clock()
        close = getattr(old, "close", None)
        if close is not None:
            close()

    def force(self, kind: str, pattern: str) -> Layer | None:
        """Play only clips of the videos named like `pattern` (kind "video") or in folders named
        `pattern` (kind "tag"), cutting to one at once; an empty pattern lets go."""
        with self.engine_lock:
            engine = self.engine
            forced = {k: v for k, v in self.forced.items() if k != kind} | ({kind: pattern} if pattern else {})
            allowed = matching_clips(engine, **forced) if forced else None
            if allowed is not None and not allowed:  # refused: what was forced stays
                raise ValueError(f"no clip in {engine.library} has a {kind} like {pattern!r}")
            self.forced = forced
            engine.restrict(allowed)
            if pattern and self.sync.lock is not None:
                log.info("sync: %s plays on; the %s %r plays once it ends", self.sync_state.video, kind, pattern)
                return None
            return self.next_clip() if pattern else None

    def switch(self, library: str | Path | None = None, model: str | Path | None = None) -> None:
        """Load another library or model beside the show, then swap it in: the clips on screen play
        on, the beat clock and the audio heard so far carry over, the next cut is from the new one."""
        library = Path(library).expanduser() if library else self.engine.library
        model = model or self.model
        if not library.exists():
            raise ValueError(f"{library}: no such library")
        self.switching = f"{library.name} / {Path(str(model)).name}"

        def load() -> None:
            try:
                engine = Engine(library, model, self.engine.settings)
                engine.warm_up()
            except Exception as exc:  # noqa: BLE001 - a bad library or model leaves the show as it was
                log.error("cannot switch to %s: %s", self.switching, exc)
                self.switching = None
                return
            with self.engine_lock:
                old = self.engine
                engine.carry_over(old)
                engine.set_matching(self.sync.mode != "off")
                engine.selector.settings = old.selector.settings
                engine.selector.held = old.selector.held
                self.engine, self.model = engine, str(model)
                self.forced.clear()
                if engine.matcher is not None and engine.matcher is old.matcher:  # the same videos: sync goes on
                    engine.selector.synced = old.selector.synced
                    engine.selector.current = old.selector.current  # no 'start' cut over the locked video
                elif self.sync.lock is not None:
                    self._leave_sync_now(engine, old.match_time)
                else:
                    self.sync = SyncTracker(self.sync.mode)
            log.info("now playing %s with model %s", library, Path(str(model)).name)
            self.switching = None

        threading.Thread(target=load, name="switch", daemon=True).start()

    def _sync_summary(self) -> dict:
        s = self.stats
        locks = [e for e in s.sync_events if e[0] == "enter"]
        ongoing = self.engine.match_time - self._locked_at if self._locked_at is not None else 0.0
        return {
            "mode": self.sync.mode,
            "locks": len(locks),
            "first_lock": locks[0][1] if locks else None,  # audio time of the lock (its cut is on the next beat)
            "locked_seconds": round(s.locked_seconds + ongoing, 2),
            "events": s.sync_events,
        }

    def summary(self) -> dict:
        s = self.stats
        elapsed = time.monotonic() - s.started

        def q(xs, p):
            return round(float(np.percentile(xs, p)) * 1000, 2) if len(xs) else None

        return {  # the window adds its frame figures (render/frame_stats.py FrameStats.report)
            "started_monotonic": self._t0,  # show time 0 on the machine's monotonic clock
            "seconds": round(elapsed, 2),
            "frames_handed": self.frames,  # what the decoder handed the window: rgb, or gpu (planes, HAP blocks)
            "analysis_latency_ms": {
                "p50": q(s.analysis_latency, 50),
                "p99": q(s.analysis_latency, 99),
                "hops": len(s.analysis_latency),
                "dropped_hops": self.engine.dropped_hops,
            },
            "cut_latency_ms": {
                "p50": q(s.cut_latency, 50),
                "p99": q(s.cut_latency, 99),
                "max": q(s.cut_latency, 100),
                "on_first_frame": sum(c["first_frame"] for c in s.cuts),
                "waited_frames": s.waited_for_picture,
            },
            "cuts": s.cuts,
            "bpm": round(self.engine.clock.bpm, 2),
            "latency": self.latency.budget(self.engine.clock.av_offset) | {"calibration": self.calibrated},
            "link": self.link.summary() if self.link is not None else None,
            "missing_pictures": s.missing_pictures,
            "audio": {
                "device_opens": getattr(self.source, "opens", None),
                "open_failures": getattr(self.source, "open_failures", None),
                "dropped_blocks": getattr(self.source, "dropped_blocks", None),
                "seconds_analysed": round(self.engine.analyser.seconds, 2),
                "hearing_nothing": self.hearing,  # why, at the end of the show ("": it heard)
                "hearing_changes": s.hearing,
            },
            "skipped_clips": s.skipped_clips,
            "sync": self._sync_summary(),
            "standby": self.standby,
            "layers": {"count": self.layers_count, "changes": self.stats.layer_changes},
        }

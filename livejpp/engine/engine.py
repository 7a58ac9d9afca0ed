"""The engine: audio in, cuts out. One code path for a song file (render) and a live stream.

Every hop (0.5 s) it summarises the newest audio into the rolling window's per-second rows (only
the new audio is analysed), embeds the window, asks the index for the nearest clips, updates the
beat clock and lets the selector decide the cuts that fall on the beats of the coming hop
(`lead` seconds ahead, so a live show has time to get the picture ready). Beats are counted bar by
bar, so cuts fall on the bar's one; a section change (a drop) is cut to at once, with clips chosen
for the new section's audio only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livejpp import index as clip_index
from livejpp.engine.beat import HISTORY_SECONDS, HOLD_BELOW, LOCK_BARS, BeatClock, ClockState
from livejpp.engine.sections import RECENT_SECONDS, SectionDetector
from livejpp.engine.selector import ClipInfo, Cut, Selector, SelectorSettings
from livejpp.engine.sync import VERIFY_SECONDS, SyncLock, Verified, verify
from livejpp.engine.trackers import DEFAULT_TRACKER
from livejpp.errors import LivejppError
from livejpp.features.audio import NAMES as AUDIO_NAMES
from livejpp.features.audio import SILENCE_DBFS, AudioAnalyser, level_dbfs
from livejpp.fingerprint import Match, MemoryHashStore, StreamMatcher
from livejpp.library.store import ClipTable, LibraryStore
from livejpp.media import dxv
from livejpp.media.decode import AUDIO_RATE
from livejpp.model.card import resolve
from livejpp.model.embed import Embedder

log = logging.getLogger("livejpp.engine")
LOUDNESS = AUDIO_NAMES.index("loudness_db")


class EngineError(LivejppError):
    """The engine cannot run on this library or model."""


@dataclass(frozen=True)
class EngineSettings:
    hop: float = 0.5
    neighbours: int = 20
    # cuts are decided for the beats from `lead` to `lead + hop` seconds after the newest audio: live
    # audio reaches the analysis a little late, and the incoming clip's first picture needs decoding
    lead: float = 0.25
    selector: SelectorSettings = field(default_factory=SelectorSettings)
    beat_tracker: str = DEFAULT_TRACKER  # what the clock follows the music with (livejpp.engine.trackers.TRACKERS)
    match_window: float = 5.0  # seconds of audio the known-track match votes over


@dataclass
class Hop:
    time: float
    level_db: float
    bpm: float
    neighbours: list[tuple[int, float]]
    seconds: float  # analysis time of this hop (wall)
    sync_video: int | None = None  # the library video this hop's audio confidently is (known-track sync)


class ClipInfos(Mapping):
    """What the selector knows of a clip, built from its record when first asked for."""

    def __init__(self, records: ClipTable):
        self.records = records
        self._infos: dict[int, ClipInfo] = {}

    def __getitem__(self, clip_id: int) -> ClipInfo:
        info = self._infos.get(clip_id)
        if info is None:
            c = self.records[clip_id]
            info = self._infos[clip_id] = ClipInfo(c.id, c.video_id, c.end - c.start, c.uid, c.source)
        return info

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self.records

    def __iter__(self) -> Iterator[int]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


class Engine:
    def __init__(self, library: str | Path, model: str | Path = "default", settings: EngineSettings | None = None):
        self.settings = settings or EngineSettings()
        self.library = Path(library)
        folder = resolve(model)
        self.embedder = Embedder(folder)
        if self.embedder.card["audio"]["feature_set"] != "hand_audio":
            raise EngineError(
                f"{folder}: live analysis computes hand_audio features; model needs "
                f"{self.embedder.card['audio']['feature_set']}"
            )
        self.index, rebuilt = clip_index.open_index(library, folder)
        if rebuilt:
            log.info("indexed %d clips of %s under model %s", self.index.meta["count"], library, folder.name)
        with LibraryStore(library, readonly=True) as store:
            # read lazily: ids now, a clip's record when the show asks for it (a million clips start in seconds)
            self.records = store.clip_table()
            playable = set(np.unique(self.records.video_ids).tolist())
            self.video_paths = {v: p for v, p in store.video_paths().items() if v in playable}
            self.video_names = {v: Path(p).name for v, p in self.video_paths.items()}
            self.video_hashes = {v: h for v, h in store.video_hashes().items() if v in playable}  # finds a clip uid
            self.video_codecs = store.video_codecs()
            # only videos whose clips may be played: a match must be something the show can put on screen
            self.fingerprints: MemoryHashStore | None = store.load_fingerprints(set(self.video_names))
        self.index.keep_only(self.records.ids)
        self.clips = ClipInfos(self.records)
        self.window = self.embedder.seconds
        self.analyser = AudioAnalyser(keep_seconds=self.window + HISTORY_SECONDS + 2)
        self.clock = BeatClock(tracker=self.settings.beat_tracker)
        self.clock_state: ClockState = self.clock.state()  # what other threads read (publish_clock)
        self.sections: list[float] = []  # times of the section changes heard (drops), for measurement
        self._sections = SectionDetector()
        self._drop: float | None = None  # a section change heard and not cut to yet
        self._drop_at: float | None = None  # the beat its cut falls on, on the newest grid
        self.selector = Selector(self.clips, self.settings.selector)
        self.neighbours: list[tuple[int, float]] = []
        self.next_hop = self.settings.hop
        self.last_beat = -1e9
        self.beat_count = 0
        self.cuts: list[Cut] = []
        self.beats: list[float] = []
        self.hops: list[Hop] = []
        self.dropped_hops = 0
        self.allowed: set[int] | None = None  # only these clips (a forced video or tag); None: all
        self._embedding: np.ndarray | None = None  # the newest window's embedding
        self.latency_lead = 0.0  # seconds more lead: a live show draws pictures ahead of their audio (Latency.ahead)
        # known-track sync: the matcher hears what the analyser hears, buffered until the next decided hop
        # (one vote per hop, none for stale hops); its stream time 0 is engine time `_matcher_origin`
        self.matcher = StreamMatcher(self.fingerprints, self.settings.match_window) if self.fingerprints else None
        self._matcher_origin = 0.0
        self._unmatched: list[np.ndarray] = []
        self.heard: Match | None = None  # the newest match, confident or not (the sync tracker weighs weak ones)
        self.match_time = 0.0  # the engine time its window ends at
        # the newest hop's own audio, RMS dBFS: the sync tracker tells a quiet passage from other music by it
        self.hop_level_db = -np.inf

    def warm_up(self) -> None:
        """One embedding and one search of silence: onnxruntime and hnswlib allocate on their first
        call, which otherwise lands on the first hop of a live show (a dropped frame, measured). A library with
        DXV sources has DXV's coder compiled (or loaded from its cache) now, not in the decoder thread, where it
        would hold the GIL for up to a second on the show's first DXV clip."""
        embedding = self.embedder.audio([np.zeros((self.window, len(AUDIO_NAMES)), np.float32)])
        self.index.query(embedding, self.settings.neighbours)
        if "dxv" in self.video_codecs:
            dxv.prepare()

    def restrict(self, allowed: set[int] | None) -> None:
        """Search only `allowed` clips from now on (None: all), starting with the newest window."""
        self.allowed = allowed
        if self._embedding is not None:
            self._search(self._embedding)

    def _search(self, embedding: np.ndarray) -> None:
        labels, distances = self.index.query(embedding, self.settings.neighbours, self.allowed)
        self.neighbours = list(zip(labels[0].tolist(), distances[0].tolist(), strict=True))

    def resync(self, now: float) -> None:
        """Now is the one: a beat falls here (the clock's phase shifts to it), and the bars that
        decide the cuts count from it, the beats already decided ahead of now included."""
        s = self.selector.settings
        bars = math.lcm(s.bars_per_cut, s.phrase_bars or 1)  # now starts a bar, a cut's bars and a phrase
        self.clock.resync(now, bars * self.clock.beats_per_bar)
        # the beats already decided ahead of now keep their place in the new count
        self.beat_count = self.clock.beat_index(self.last_beat) if self.beats else self.clock.beat_index(now) - 1

    def publish_clock(self) -> None:
        """The clock's state for the HUD and OSC feedback, whole: call it where the clock was changed
        (each hop; each control that steers the clock), under the live show's engine lock."""
        self.clock_state = self.clock.state()

    def carry_over(self, other: Engine) -> None:
        """Take the listening state of the engine this one replaces (a library or model switch): the
        audio heard so far, the beat clock and the beat count, so the show keeps its time and tempo."""
        self.analyser, self.clock = other.analyser, other.clock
        self.sections, self._sections, self._drop = other.sections, other._sections, other._drop
        self.next_hop, self.last_beat, self.beat_count = other.next_hop, other.last_beat, other.beat_count
        self.beats, self.dropped_hops, self.latency_lead = other.beats, other.dropped_hops, other.latency_lead
        self.publish_clock()
        if self.matcher is not None and other.matcher is not None and self._same_videos(other):
            self.matcher, self._matcher_origin, self._unmatched = other.matcher, other._matcher_origin, other._unmatched
            self.heard, self.match_time = other.heard, other.match_time
        else:  # another library: its video ids mean other videos; the new matcher starts listening now
            self._matcher_origin = self.analyser.samples_in / AUDIO_RATE

    @property
    def match(self) -> Match | None:
        """The newest match if it is confident (its position_at(t) at engine time t): the hop's sync_video."""
        return self.heard if self.heard is not None and self.heard.confident else None

    def set_matching(self, on: bool) -> None:
        """Known-track matching on or off: it costs 2 ms a hop on a small library and up to 16 ms at 10,000
        songs, for nothing while sync is off. Turned on again, it listens afresh from now (a match needs
        match_window seconds), placed on engine time as after a library switch."""
        if not on:
            self.matcher, self._unmatched, self.heard = None, [], None
        elif self.matcher is None and self.fingerprints is not None:
            self.matcher = StreamMatcher(self.fingerprints, self.settings.match_window)
            self._matcher_origin = self.analyser.samples_in / AUDIO_RATE

    def verify(self, lock: SyncLock | None) -> Verified | None:
        """The newest audio's landmarks that say `lock`'s video plays where the lock has it (sync.verify), in
        engine time: fresher evidence that the song still plays than the window's vote, for SyncTracker.update."""
        if self.matcher is None or lock is None:
            return None
        return verify(lock, self.matcher.recent(VERIFY_SECONDS), self.matcher.store, self._matcher_origin)

    def _same_videos(self, other: Engine) -> bool:
        """Whether a match of `other`'s means the same video here (a model switch on the same library)."""
        return self.library.resolve() == other.library.resolve() and self.video_names == other.video_names

    def push(self, samples: np.ndarray, latest_only: bool = False) -> list[Cut]:
        """Feed audio (mono float32, 22 050 Hz) in blocks of any size; returns the cuts decided by
        the hops it completed. Each hop sees exactly the audio up to its time, however it arrived.
        `latest_only` (live, when analysis fell behind): only the newest completed hop is decided;
        the stale ones are counted in `dropped_hops`, not worked through late."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        hop_samples = int(round(self.settings.hop * AUDIO_RATE))
        last_due = (self.analyser.samples_in + len(samples)) // hop_samples * self.settings.hop
        cuts: list[Cut] = []
        while len(samples):
            room = int(round(self.next_hop * AUDIO_RATE)) - self.analyser.samples_in
            take, samples = samples[: max(room, 0)], samples[max(room, 0) :]
            self.analyser.push(take)
            if self.matcher is not None:
                self._unmatched.append(take)
            self.clock.advance(self.analyser)
            if self.analyser.samples_in >= int(round(self.next_hop * AUDIO_RATE)):
                if latest_only and self.next_hop < last_due - 1e-9:
                    self.dropped_hops += 1
                else:
                    cuts += self._hop(self.next_hop)
                self.next_hop += self.settings.hop
        return cuts

    def _hop(self, now: float) -> list[Cut]:
        started = time.perf_counter()
        seconds = min(self.window, int(now))
        level, hearing, change = -np.inf, False, None
        end = int(round(now * AUDIO_RATE))
        self.hop_level_db = level_dbfs(self.analyser.samples(end - int(round(self.settings.hop * AUDIO_RATE)), end))
        if seconds >= 1:
            rows = self.analyser.rows(now - seconds, seconds)
            level = float(rows[:, LOUDNESS].max())
            hearing = bool(rows[-1, LOUDNESS] > SILENCE_DBFS)
            change = self._sections.update(self.analyser, rows, now)
            if change is not None:
                self.sections.append(change)
                self._drop = change
            if level > SILENCE_DBFS:  # silence keeps what plays: it matches nothing
                self._embedding = self.embedder.audio([self._section(rows, now)])
                self._search(self._embedding)
        clock, s = self.clock, self.selector.settings
        clock.lock_bars = math.lcm(LOCK_BARS, s.bars_per_cut, s.phrase_bars or 1)  # all count from a lock
        clock.update(self.analyser, now)
        cuts: list[Cut] = []
        if self.neighbours:
            period, per_bar = clock.period, clock.beats_per_bar
            # beats of a grid the clock only holds (unsure, or silence) are no reason to cut: max-clip only;
            # a tempo from outside (taps, MIDI clock, Link) is the room's beat, heard or not
            grid = clock.tapped or (clock.confidence >= HOLD_BELOW and hearing)
            if self.selector.current is None:
                cuts.append(self.selector.on_beat(now, 0, period, self.neighbours))
            ahead = now + self.settings.lead + self.latency_lead
            beat = clock.next_beat(max(ahead, self.last_beat + 0.5 * period))
            # placed again at every hop: the grid may have moved since the change was heard
            self._drop_at = None if self._drop is None else self._drop_beat(beat, self._drop)
            while beat < ahead + self.settings.hop:
                counted = clock.beat_index(beat)
                following = self.beat_count + 1
                self.beat_count = counted if counted >= following else following + (counted - following) % per_bar
                self.last_beat = beat
                self.beats.append(beat)
                cut = self._on_beat(beat, period, per_bar, grid)
                if cut is not None:
                    cuts.append(cut)
                beat = clock.next_beat(beat + 0.5 * period)
        cuts = [c for c in cuts if c is not None]
        self.cuts += cuts
        self._match()  # after the cuts: identification never delays them
        sync_video = self.match.video if self.match is not None else None
        self.hops.append(
            Hop(now, level, self.clock.bpm, self.neighbours[:5], time.perf_counter() - started, sync_video)
        )
        self.publish_clock()
        return cuts

    def _match(self) -> None:
        """Which library video the newest `match_window` seconds are, and where: `self.heard` (the best match,
        None if no hash agreed) and `self.match` (the same, None unless confident), rebased to engine time so
        that match.position_at(t) is the video's position at time t."""
        if self.matcher is None:
            return
        found = self.matcher.push(np.concatenate(self._unmatched) if self._unmatched else np.zeros(0, np.float32))
        self._unmatched = []
        self.match_time = self._matcher_origin + self.matcher.seconds
        self.heard = None
        if found is not None:
            heard_until = None if found.heard_until is None else found.heard_until + self._matcher_origin
            position = found.position - self._matcher_origin * found.speed
            self.heard = dataclasses.replace(found, position=position, heard_until=heard_until)

    def _section(self, rows: np.ndarray, now: float) -> np.ndarray:
        """The window's rows of the current section only (at least RECENT_SECONDS): after a drop the
        clips are chosen for what plays now, not for the breakdown still in the window. The embedder
        pads a short window (it repeats the last second)."""
        keep = max(RECENT_SECONDS, math.ceil(now - self._sections.start - 1e-9))
        return rows[-keep:] if keep < len(rows) else rows

    def _drop_beat(self, beat: float, change: float) -> float:
        """Where a drop heard at `change` is cut: the next downbeat if it comes within a bar of the
        change (drops land on the one), else the first beat not yet decided."""
        clock = self.clock
        downbeat = clock.next_downbeat(beat)
        bar = clock.period * clock.beats_per_bar
        return downbeat if downbeat - change <= bar + 1e-6 else beat

    def _on_beat(self, beat: float, period: float, per_bar: int, grid: bool) -> Cut | None:
        selector = self.selector
        if self._drop_at is not None and beat >= self._drop_at - 1e-6:
            self._drop = self._drop_at = None
            if not (selector.held or selector.synced):
                return selector.on_beat(
                    beat, self.beat_count, period, self.neighbours, force=True, why="drop", beats_per_bar=per_bar
                )
        cut = selector.on_beat(beat, self.beat_count, period, self.neighbours, beats_per_bar=per_bar, grid=grid)
        if cut is not None and self._drop is not None and beat >= self._drop:
            cut.reason, self._drop, self._drop_at = "drop", None, None  # a cut due anyway serves the drop
        return cut

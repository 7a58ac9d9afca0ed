"""Whether the show is locked to a library video that is playing in the room, where in it, how fast.

Every hop the engine's StreamMatcher names the video its newest window of audio most likely comes from
(a fingerprint Match). One window can be wrong: a loop-based song repeats its bars, a produced song copies
whole passages sample for sample, a noisy window scrapes past the vote's margin. So the show follows a
line fitted over many hops, never one hop (issue 12, sync12-design.md §4.3):

- enter: ENTER_HOPS consecutive hops naming one video at consistent positions (each where the one before
  predicts, +-CONSISTENT seconds, after advancing by the hop at the matched speed), the newest confident
  and the ones before it with at least SUPPORT_VOTES (a window just short of the vote's margin that
  already names the song at the right place is evidence: Vibe Ace at +3.5 %, 10 dB of noise and an mp3
  pass locks at 4.9 s instead of 5.4 s);
- locked: each confident hop of the locked video within AGREE seconds of the lock's line is kept, and
  position = a + rate * t is fitted by least squares over those of the last FIT_SECONDS (until they span
  FIT_MIN_SPAN the rate is the matches' mean speed: one window reads it only to +-0.5 %);
- continuity wins: a confident hop of the locked video somewhere else changes nothing (a repeated bar or
  passage sounds the same there) unless the song is consistently elsewhere for MOVE_SECONDS: the DJ
  jumped to a cue or looped, and the lock moves ("move", a cut);
- leave: DOUBT_SECONDS without a confident hop of the locked video (wherever it places the song) or a weak
  one (SUPPORT_VOTES) on the lock's line ("auto" 2 s, "on" 4 s), or ("auto") HEARD_DOUBT_SECONDS since the
  newest audio that voted for one: the 5 s window stays confident for up to 4 s after a mix into an unknown
  song (its older votes still outweigh the rest), so counting hops alone left it 5.9 s after the mix; or
  another video entering as above, which then replaces the lock ("enter"). In every mode, a run of hops
  whose newest voting audio is HEARD_DOUBT_SECONDS["auto"] old does not enter: the window remembers a song
  that stopped;
- verify ("auto"): the window's vote needs MIN_VOTES landmarks, so its newest voting audio lags the hop by up to
  2.2 s in a 10 dB room and the heard rule waits 3 s (a mix left after 2.4-4.4 s). A lock is a line known
  beforehand, so each hop the caller also looks the newest VERIFY_SECONDS of audio up in the locked video alone
  (verify(): its landmarks, the pairs not final yet included, that lie where the line puts them): while a song
  plays in the tests' 10 dB room with an mp3 pass 5-50 of them agree and the newest is 0.2-0.9 s old; after a
  hard mix none does. VERIFY_DOUBT_SECONDS of music with no agreeing landmark and no vote of the window's leave,
  1.4 s after a mix. Music only: a hop QUIET_DB under the level the song had where it was verified (a fade, a
  break in a noisy room) pauses that clock, and a song heard sparsely (under DENSE_VOTES agreeing landmarks:
  a quiet passage of Big Buck Bunny or the Sintel trailer in a 10 dB room has 1.5-2 s gaps) is left to the
  rules above. After a leave the window names the song for seconds more, so its video is entered again only
  once VERIFY_VOTES landmarks of the newest audio agree with the lock that left (one lands on a line by chance
  now and then), or after FORGET_SECONDS, when the window holds only audio heard since;
- quiet is no doubt: a hop QUIET_DB under the song's level (the median of the last LEVEL_SECONDS of hops that
  were not quiet) or under SILENCE_DBFS hears only the room, and its time does not count towards either rule
  above. A break, a fade or a quiet tail inside the song would otherwise cut away and back (a 4.5 s passage
  50 dB down left 2.9 s into it), and nothing but other music says the DJ changed the song. A song that has not
  been heard for SILENCE_SECONDS, quiet or not, has stopped: the lock leaves.

Pure logic, no clock of its own: the caller passes the show time of each hop, and schedules the cuts
(on the next beat) that the events ask for.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from livejpp.features.audio import SILENCE_DBFS
from livejpp.fingerprint.match import MAX_SPEED_CHANGE, MIN_VOTES, Match
from livejpp.fingerprint.store import TwoTierStore
from livejpp.fingerprint.stream import Recent

SyncMode = Literal["auto", "on", "off"]
SYNC_MODES: tuple[SyncMode, ...] = ("auto", "on", "off")
SyncState = Literal["off", "searching", "locked"]

ENTER_HOPS = 2
SUPPORT_VOTES = MIN_VOTES // 2
CONSISTENT = 0.1  # seconds: two hops' positions agree
AGREE = 0.15  # seconds: a hop agrees with the lock's line
FIT_SECONDS = 20.0
FIT_MIN_SPAN = 4.0  # seconds of kept hops before the rate is fitted rather than read from the matches
MOVE_SECONDS = 3.0  # a repeated passage misled 4 hops in a row (1.5 s) in Kevin_MacLeod-Vibe_Ace
DOUBT_SECONDS: dict[SyncMode, float] = {"auto": 2.0, "on": 4.0, "off": 0.0}
# "auto" also leaves once nothing of the song has been heard for this long, however confident the window
# still is: its newest voting landmark lags the hop by up to 2.2 s while a song plays in a 10 dB room
# (the 10 test streams of tests/test_sync_machine.py), so 3 s leaves a margin; "on" holds through doubt.
HEARD_DOUBT_SECONDS: dict[SyncMode, float] = {"auto": 3.0}
# A hop this far under the song's level is the room, not music: with 10 dB of room noise (the tests' and the
# bench's) a passage 50 dB down is 10-13 dB under the median hop (Vibe Ace, C64, ReggaeTry, through an mp3
# pass), while the songs' own hops fall 6 dB under it in 3-7 of 60-120 (their own quiet moments, which then
# pause the doubt clocks by a hop each, no more). Big Buck Bunny is too dynamic for a 10 dB room: its median
# hop is 1.5 dB over the noise, so a quiet passage in it still counts as doubt there.
QUIET_DB = 6.0
# A quiet run counts only once it lasts this long: a song the DJ mixes into may open with a quiet second
# (fof_muldjord's first second is 10 dB under Vibe Ace's level), and a leave 2.9 s after a hard mix must
# not wait for it; the quiet passages that matter last over 2.5 s (shorter ones never reach the doubts).
QUIET_MIN_SECONDS = 1.5
LEVEL_SECONDS = 20.0  # the song's level: the median of this many seconds of hops that were not quiet
# Nothing of the song heard for this long, quiet or not: it has stopped. A passage 50 dB down leaves the song
# unheard for its length + 0.5-0.8 s (4.5 s: 5.0-5.3 s in the three songs of tests/test_sync_machine.py), so a
# break of up to ~9 s (4 bars at 108 BPM) keeps the lock, and a song that ends leaves 10 s after its last note.
SILENCE_SECONDS = 10.0
# "auto" leaves once this many seconds of music (not soft: QUIET_DB under the verified level) had no landmark of
# the locked video where the lock says it plays (verify()) and no vote of the window's: in the songs of
# tests/test_sync_machine.py in a 10 dB room with an mp3 pass the newest agreeing landmark is 0.2-0.9 s old at a
# hop, after a hard mix none comes, so a mix leaves 1.4 s after it instead of the heard rule's 2.4-4.4 s
VERIFY_DOUBT_SECONDS: dict[SyncMode, float] = {"auto": 1.5}
VERIFY_SECONDS = 1.5  # the newest audio whose landmarks verify the lock each hop (longer than any hop)
# seconds: an agreeing landmark lies this close to the lock's line (the line is within a frame of the song, p95;
# the song's own landmarks within 20 ms of it): a chance landmark lands in it 2.5 times less often than in AGREE
VERIFY_TOLERANCE = 0.06
# the verify rule judges a lock only where its song was heard densely: DENSE_HOPS of the hops of DENSE_SECONDS up
# to its last verification verified it anew, with DENSE_VOTES agreeing landmarks (median). The tests' songs have
# 5-50 mostly; a quiet passage of the Sintel trailer at +4 % in a 10 dB room (the drift bench) 2-4, with a 2 s
# gap (it left and came back 2 s later); Big Buck Bunny's opening under a room set by a louder song 0-7.
DENSE_SECONDS = 1.75  # 4 hops
DENSE_HOPS = 3
DENSE_VOTES = 5
# after a leave the lock's video is entered again only once VERIFY_VOTES landmarks of the newest audio agree with
# the lock that left, or once the matcher's window (5 s: EngineSettings.match_window) holds nothing from before
VERIFY_VOTES = 2
FORGET_SECONDS = 5.0
HOP_JITTER = 0.05  # hops end on whole STFT frames: 0.49-0.51 s apart, so "2 s" is 4 hops, give or take a frame


@dataclass(frozen=True)
class SyncLock:
    """The locked video's position is `position` at show time `start` and advances `rate` s per second."""

    video: int
    start: float  # show/audio time the lock's line is anchored at
    position: float  # video seconds at `start`
    rate: float
    since: float  # when it locked

    def position_at(self, t: float) -> float:
        """Video seconds at show time t: the picture time of the locked video."""
        return self.position + (t - self.start) * self.rate


@dataclass(frozen=True)
class Verified:
    """The landmarks of the newest audio that say a lock's video plays where the lock has it (verify())."""

    newest: float  # show time of the newest
    count: int


def verify(lock: SyncLock | None, recent: Recent, store: TwoTierStore, origin: float = 0.0) -> Verified | None:
    """The landmarks of the newest audio (`recent`: StreamMatcher.recent(VERIFY_SECONDS)) that say the locked video
    plays on where the lock has it (or at one other place: a cue jump, Recent.agreeing); None if none does or
    nothing is locked. `origin` is the show time of the matcher's stream second 0."""
    if lock is None:
        return None
    agree = recent.agreeing(store, lock.video, lock.position_at(origin), lock.rate, VERIFY_TOLERANCE)
    return Verified(float(agree.max()) + origin, len(agree)) if len(agree) else None


@dataclass(frozen=True)
class SyncSnapshot:
    """The sync as the HUD and OSC feedback show it: published whole under the live show's engine lock at
    each hop, so a reader on another thread never sees a lock of one video with another's name."""

    mode: SyncMode = "auto"
    lock: SyncLock | None = None
    video: str = ""  # the locked video's file name

    def hud_line(self, t: float) -> str:
        """`SYNC video  12.3 s  +3.2 %` at show time t; `sync: searching`; `sync off`."""
        if self.mode == "off":
            return "sync off"
        if self.lock is None:
            return "sync: searching"
        return f"SYNC {self.video}  {self.lock.position_at(t):.1f} s  {(self.lock.rate - 1) * 100:+.1f} %"

    def position(self, t: float) -> float | None:
        """The locked video's position at show time t to 0.1 s (feedback is not a flood); None unlocked."""
        return None if self.lock is None else round(self.lock.position_at(t), 1)


@dataclass(frozen=True)
class SyncEvent:
    """A cut the show must make: into a lock (enter), within the locked video (move), back to content (leave)."""

    kind: Literal["enter", "move", "leave"]
    at: float
    lock: SyncLock | None  # the new lock; None when leaving


@dataclass(frozen=True)
class _Sighting:
    """A hop's match: at show time `time` the audio is `video` at `position`, playing at `speed`."""

    video: int
    time: float
    position: float
    speed: float
    confident: bool
    heard: float  # show time of the newest audio that voted for it (a window outlives the song by seconds)

    def leads_to(self, other: _Sighting) -> bool:
        expected = self.position + (other.time - self.time) * other.speed
        return other.video == self.video and abs(other.position - expected) <= CONSISTENT


class _QuietHops:
    """The recent hops too quiet to judge the song by. A run of them counts only once it lasts QUIET_MIN_SECONDS
    (a song mixed into may open with a quiet second); until then `now` says the newest hop is quiet."""

    def __init__(self) -> None:
        self.hops: deque[tuple[float, float]] = deque()  # (show time, seconds) of the counted quiet hops
        self._run: list[tuple[float, float]] = []  # the current run of quiet hops, until it counts
        self._counting = False  # the current run lasts QUIET_MIN_SECONDS: each quiet hop counts
        self.now = False  # the newest hop is quiet

    def hear(self, quiet: bool, now: float, seconds: float) -> None:
        """One hop of `seconds` of audio ending at show time `now`."""
        self.now = quiet
        while self.hops and self.hops[0][0] < now - SILENCE_SECONDS - 1.0:  # older than any doubt clock
            self.hops.popleft()
        if not quiet:
            self._run, self._counting = [], False
        elif self._counting:
            self.hops.append((now, seconds))
        else:
            self._run.append((now, seconds))
            if sum(s for _, s in self._run) >= QUIET_MIN_SECONDS - HOP_JITTER:
                self.hops.extend(self._run)
                self._run, self._counting = [], True

    def loud_since(self, since: float, now: float) -> float:
        """Seconds from `since` to `now` that were not counted quiet (a hop's time is the audio it ends)."""
        return now - since - sum(seconds for t, seconds in self.hops if t > since)


class SyncTracker:
    """Turns the matcher's per-hop answers into a steady lock; update() once per hop."""

    def __init__(self, mode: SyncMode = "auto"):
        self.mode: SyncMode = mode
        self._lock: SyncLock | None = None
        self._kept: deque[_Sighting] = deque()  # the lock's agreeing hops, newest last
        self._run: list[_Sighting] = []  # consecutive consistent hops off the lock's line
        self._last_seen = 0.0  # show time of the locked video's last confident hop, or weak one on the line
        self._last_heard = 0.0  # show time of the newest audio that voted for one (the window outlives the song)
        self._levels: deque[tuple[float, float]] = deque()  # (show time, dBFS) of the recent hops that were not quiet
        self._quiet = _QuietHops()  # hops QUIET_DB under the song's level: the room
        self._last_hop: float | None = None  # show time of the previous update
        self._hop_seconds = 0.0  # audio the newest hop added
        self._last_level = -np.inf  # the newest hop's level (dBFS)
        self._last_verified = 0.0  # show time of the newest audio verified as the locked video (verify())
        # (show time, dBFS, agreeing landmarks) of the hops that verified the lock anew
        self._verified_hops: deque[tuple[float, float, int]] = deque()
        self._soft = _QuietHops()  # hops QUIET_DB under the level of the hops that verified the lock
        # the lock that left, still verified: its video is entered again only once the newest audio is verified
        # as it (the window names a song it no longer hears for seconds after a mix, and a lone landmark that
        # lands on its winning offset makes it "heard"), or once the window holds only audio heard since
        self._gone: SyncLock | None = None
        self._left_at = 0.0

    @property
    def state(self) -> SyncState:
        if self._lock is not None:
            return "locked"
        return "off" if self.mode == "off" else "searching"

    @property
    def lock(self) -> SyncLock | None:
        return self._lock

    @property
    def verifying(self) -> SyncLock | None:
        """The lock whose video the caller verifies against the newest audio each hop (verify()): the lock, or
        the one that left, for FORGET_SECONDS."""
        return self._lock if self._lock is not None else self._gone

    def set_mode(self, mode: SyncMode) -> None:
        """Takes effect at the next update: turning sync off while locked leaves there (a 'leave' event)."""
        self.mode = mode

    def update(
        self, match: Match | None, now: float, window_end: float, *, level_db: float, verified: Verified | None
    ) -> SyncEvent | None:
        """One hop: `match` is the matcher's answer for the window ending at stream time `window_end`
        (StreamMatcher.seconds), `now` the show time at which that audio was heard, `level_db` the RMS level of
        the hop's own audio (dBFS: Engine.hop_level_db), `verified` what the newest audio says of the video of
        `verifying` before this hop (verify(self.verifying, ...): Engine.verify)."""
        self._hear_level(level_db, now)
        if self._gone is not None and now - self._left_at >= FORGET_SECONDS:
            self._gone = None
        if verified is not None and verified.newest > self._last_verified:
            if self._lock is not None:
                self._last_verified = verified.newest
                self._verified_hops.append((now, level_db, verified.count))
            elif verified.count >= VERIFY_VOTES:  # one landmark lands on a line by chance now and then; two do not
                self._last_verified, self._gone = verified.newest, None  # the song that left is heard again
        self._hear_softness(level_db, now)
        if self.mode == "off":
            self._run = []
            return self._leave(now) if self._lock is not None else None
        seen = None
        if match is not None and (match.confident or match.votes >= SUPPORT_VOTES):
            lag = 0.0 if match.heard_until is None else max(0.0, window_end - match.heard_until)
            seen = _Sighting(match.video, now, match.position_at(window_end), match.speed, match.confident, now - lag)
        if self._lock is None:
            self._extend_run(seen)
            return self._enter("enter", now) if self._run_enters() else None
        return self._track(seen, now)

    def _track(self, seen: _Sighting | None, now: float) -> SyncEvent | None:
        lock = self._lock
        assert lock is not None
        ours = seen is not None and seen.video == lock.video
        agrees = ours and abs(seen.position - lock.position_at(now)) <= AGREE
        if ours and (seen.confident or agrees):
            # the song still plays: a confident hop wherever the window places it, or a weak one (a quiet
            # passage, SUPPORT_VOTES) on the lock's line; leaving there would cut away and back within a second
            self._last_seen = now
            self._last_heard = max(self._last_heard, seen.heard)
            if seen.confident and agrees:
                self._run = []
                self._kept.append(seen)
                self._lock = self._fit(now, lock.since)
                return self._leave(now) if self._doubted(now) else None
        self._extend_run(seen)
        run = self._run
        if run and run[0].video != lock.video and self._run_enters():
            return self._enter("enter", now)
        if run and run[0].video == lock.video and run[-1].confident and run[-1].time - run[0].time >= MOVE_SECONDS:
            return self._enter("move", now)
        return self._leave(now) if self._doubted(now) else None

    def _hear_level(self, level_db: float, now: float) -> None:
        """Whether this hop heard only the room (see QUIET_DB): its time is kept apart from the doubt clocks."""
        hop = 0.0 if self._last_hop is None else max(0.0, now - self._last_hop)
        self._last_hop, self._hop_seconds, self._last_level = now, hop, level_db
        while self._levels and self._levels[0][0] < now - LEVEL_SECONDS:
            self._levels.popleft()
        song_db = float(np.median([db for _, db in self._levels])) if self._levels else -np.inf
        quiet = not (level_db > SILENCE_DBFS and level_db > song_db - QUIET_DB)
        if not quiet:
            self._levels.append((now, level_db))
        self._quiet.hear(quiet, now, hop)

    def _hear_softness(self, level_db: float, now: float) -> None:
        """Whether this hop is QUIET_DB under the level of the hops that verified the lock (the song as it sounds
        where its landmarks are heard): a fade or a break in a noisy room hides them, and its time does not count
        towards the verify doubt (music as loud as the song does: a mix)."""
        while self._verified_hops and self._verified_hops[0][0] < now - LEVEL_SECONDS:
            self._verified_hops.popleft()
        levels = [db for _, db, _ in self._verified_hops]
        soft = level_db <= SILENCE_DBFS or (bool(levels) and level_db <= float(np.median(levels)) - QUIET_DB)
        self._soft.hear(soft, now, self._hop_seconds)

    def _heard_densely(self) -> bool:
        """Whether the song was heard densely up to its last verification: DENSE_HOPS of the hops of the
        DENSE_SECONDS before it verified it anew, with DENSE_VOTES agreeing landmarks (the median). Then a second
        and a half without one is news; a song heard sparsely over the room says nothing by its silence, and the
        window's rules judge it alone."""
        if not self._verified_hops:
            return False
        last = self._verified_hops[-1][0]
        counts = [count for t, _, count in self._verified_hops if t > last - DENSE_SECONDS]
        return len(counts) >= DENSE_HOPS and float(np.median(counts)) >= DENSE_VOTES

    def _doubted(self, now: float) -> bool:
        if now - self._last_heard >= SILENCE_SECONDS - HOP_JITTER:  # quiet or not: the song has stopped
            return True
        unheard = HEARD_DOUBT_SECONDS.get(self.mode)
        if unheard is not None and self._quiet.loud_since(self._last_heard, now) >= unheard:
            return True
        # judged on music only: a quiet run that does not count yet (QUIET_MIN_SECONDS) may be a mute or a break
        unverified = VERIFY_DOUBT_SECONDS.get(self.mode)
        if unverified is not None and not self._soft.now and self._heard_densely():
            since = max(self._last_verified, self._last_heard)
            if self._soft.loud_since(since, now) >= unverified - HOP_JITTER:
                return True
        return self._quiet.loud_since(self._last_seen, now) >= DOUBT_SECONDS[self.mode] - HOP_JITTER

    def _run_enters(self) -> bool:
        """Enough consistent hops, the newest confident and still hearing the song (after a mix out, the window
        names the song that stopped for seconds more: it must not be entered again)."""
        newest = self._run[-1] if self._run else None
        return (
            len(self._run) >= ENTER_HOPS
            and newest.confident
            and newest.time - newest.heard < HEARD_DOUBT_SECONDS["auto"]
            and not (self._gone is not None and newest.video == self._gone.video)
        )

    def _extend_run(self, seen: _Sighting | None) -> None:
        if seen is None:
            self._run = []
        elif self._run and self._run[-1].leads_to(seen):
            self._run.append(seen)
        else:
            self._run = [seen]

    def _enter(self, kind: Literal["enter", "move"], now: float) -> SyncEvent:
        since = self._lock.since if kind == "move" and self._lock is not None else now
        self._kept = deque(s for s in self._run if s.confident)
        # verified from the window's newest voting audio on: the landmarks after it are news
        self._last_verified = self._run[-1].heard
        self._run, self._gone = [], None
        self._last_seen = self._last_heard = now
        if kind == "enter":  # the song's level as the window heard it, until verified hops say
            self._verified_hops = deque([(now, self._last_level, 0)])
        self._lock = self._fit(now, since)
        return SyncEvent(kind, now, self._lock)

    def _leave(self, now: float) -> SyncEvent:
        self._gone, self._left_at = self._lock, now
        self._lock = None
        self._kept.clear()
        return SyncEvent("leave", now, None)

    def _fit(self, now: float, since: float) -> SyncLock:
        """The line through the kept hops of the last FIT_SECONDS, anchored at `now`."""
        while self._kept[0].time < now - FIT_SECONDS:
            self._kept.popleft()
        t = np.array([s.time for s in self._kept]) - now
        p = np.array([s.position for s in self._kept])
        if t[-1] - t[0] >= FIT_MIN_SPAN:
            rate, position = np.polyfit(t, p, 1)
        else:
            rate = float(np.mean([s.speed for s in self._kept]))
            position = float(np.mean(p - t * rate))
        rate = min(max(float(rate), 1.0 - MAX_SPEED_CHANGE), 1.0 + MAX_SPEED_CHANGE)  # what the matcher can hear
        return SyncLock(self._kept[-1].video, now, float(position), rate, since)

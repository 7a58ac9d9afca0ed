"""The sync state machine (issue 12) driven by real matches: bundled songs' fingerprints in a store, a
StreamMatcher fed degraded audio hop by hop (0.5 s) as the engine feeds it, a SyncTracker deciding.

What a VJ would notice: when the show locks, whether the locked video's picture time is the song's
position (one video frame: 40 ms), whether it jumps, and whether it lets go when the DJ mixes out."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import degrade
import numpy as np
import pytest
from test_fingerprint import MEDIA, SONGS, shares_content

from livejpp.engine.sync import (
    HEARD_DOUBT_SECONDS,
    SILENCE_SECONDS,
    VERIFY_SECONDS,
    SyncEvent,
    SyncLock,
    SyncMode,
    SyncTracker,
    verify,
)
from livejpp.features.audio import level_dbfs
from livejpp.fingerprint import Match, MemoryHashStore, StreamMatcher, fingerprint
from livejpp.fingerprint.stream import Recent
from livejpp.media.decode import AUDIO_RATE, read_audio_file

HOP = int(0.5 * AUDIO_RATE)
FRAME = 0.040  # one video frame at 25 fps
NAMES = [path.name for path in SONGS]
UNKNOWN = "fof_muldjord_internal_degeneration.ogg"  # a song that is not in the store
OTHER = "lmms_CapDan-ZeroSumGame-OriginalByZakarra.ogg"  # another
VIBE, C64, REGGAE, BUNNY = "Kevin_MacLeod-Vibe_Ace.ogg", "lmms_Skiessi-C64.ogg", "lmms_CapDan-ReggaeTry.ogg", NAMES[0]


@cache
def song(name: str) -> np.ndarray:
    folder = MEDIA / "beats" if name in (UNKNOWN, OTHER) else next(path.parent for path in SONGS if path.name == name)
    return read_audio_file(folder / name)


@cache
def store() -> MemoryHashStore:
    """Every bundled soundtrack, as tests/test_fingerprint.py stores them (video id = index in NAMES)."""
    hashes = MemoryHashStore()
    for video, name in enumerate(NAMES):
        landmarks = fingerprint(song(name))
        hashes.add(video, landmarks.hashes, landmarks.t)
    return hashes


def excerpt(name: str, start: float, seconds: float) -> np.ndarray:
    return song(name)[int(start * AUDIO_RATE) :][: int(seconds * AUDIO_RATE)]


@cache
def in_the_room(name: str, start: float, seconds: float, factor: float = 1.0) -> np.ndarray:
    """An excerpt as the show hears it: a pitch fader at `factor`, 10 dB of room noise (over the excerpt's own
    level) and a 128 kb/s mp3 pass (a streamed set)."""
    noisy = degrade.room_noise(degrade.speed(excerpt(name, start, seconds), factor), 10.0)
    return degrade.codec_pass(noisy, "mp3")[: len(noisy)]


@dataclass(frozen=True)
class Hop:
    now: float  # stream time the hop's window ends at (the engine passes this as both now and window_end)
    match: Match | None
    level_db: float  # the hop's own audio, RMS dBFS (the engine's hop_level_db)
    recent: Recent  # the newest audio's landmarks, which verify a lock (as Engine.verify)


@cache
def hops_of(signal_key: tuple) -> tuple[Hop, ...]:
    """The matcher's answer at every 0.5 s hop of a signal (cached: several trackers replay one stream)."""
    matcher, signal, hops = StreamMatcher(store()), SIGNALS[signal_key](), []
    for start in range(0, len(signal), HOP):
        match = matcher.push(signal[start : start + HOP])
        hops.append(
            Hop(matcher.seconds, match, level_dbfs(signal[start : start + HOP]), matcher.recent(VERIFY_SECONDS))
        )
    return tuple(hops)


def update(tracker: SyncTracker, hop: Hop) -> SyncEvent | None:
    """One hop of the tracker, as the engine drives it (the lock verified against the newest audio first)."""
    verified = verify(tracker.verifying, hop.recent, store())
    return tracker.update(hop.match, hop.now, hop.now, level_db=hop.level_db, verified=verified)


@dataclass
class Run:
    events: list[SyncEvent]
    locks: list[tuple[float, SyncLock | None]]  # (now, tracker.lock after the hop)


def track(signal_key: tuple, mode: SyncMode = "auto") -> Run:
    tracker, run = SyncTracker(mode), Run([], [])
    for hop in hops_of(signal_key):
        event = update(tracker, hop)
        if event is not None:
            run.events.append(event)
        run.locks.append((hop.now, tracker.lock))
    return run


def errors(run: Run, truth, video: str, after: float, until: float = np.inf) -> np.ndarray:
    """Picture time minus the song's true position, at five moments between each hop and the next (the show
    draws frames from the newest lock until the next hop), from `after` on."""
    out = []
    for now, lock in run.locks:
        if after <= now < until:
            assert lock is not None and NAMES[lock.video] == video, f"at {now:.2f} s: lock {lock}"
            out.extend(lock.position_at(t) - truth(t) for t in now + np.arange(5) * 0.1)
    return np.abs(np.array(out))


def confident_hops(signal_key: tuple, name: str) -> list[Hop]:
    return [h for h in hops_of(signal_key) if h.match and h.match.confident and NAMES[h.match.video] == name]


BEGIN = 3.3  # the streams start inside the songs (the Sintel trailer fades in from silence: see test_fingerprint)
MIX_AT = 20.0  # the DJ mixes (a hard cut) at this stream time
CUE_AT, CUE_TO = 12.0, 40.0  # the DJ jumps from 17 s into the song to a cue point at 40 s
MUTE_AT, MUTE = 12.0, 6.0  # the DJ kills the sound for 6 s while the record plays on
DROP_AT, DROP = 12.0, 3.5  # the DJ cuts to the other deck for 3.5 s and back


QUIET = 4.5  # seconds of a passage 50 dB down (a break, a fade), 10 s after the stream starts
STOP_AT = 12.0  # the song ends here, into the room's noise


def quieted(name: str, start: float, seconds: float, factor: float, at: float, length: float) -> np.ndarray:
    """A song in the room (as in_the_room) whose `length` s from stream time `at` are 50 dB down: only the
    room's noise is heard there (10 dB under the song's power: 7-12 dB under a hop's median level)."""
    signal = degrade.speed(excerpt(name, start, seconds), factor)
    signal[int(at * AUDIO_RATE) : int((at + length) * AUDIO_RATE)] *= 10 ** (-50 / 20)
    noisy = degrade.room_noise(signal, 10.0)
    return degrade.codec_pass(noisy, "mp3")[: len(noisy)]


def dropped_in(name: str, other: str) -> np.ndarray:
    """The song with DROP seconds of `other` (not in the library) in its place from stream time DROP_AT: the DJ
    cut to the other deck and back while the record played on."""
    signal = excerpt(name, 5.0, 30.0).copy()
    signal[int(DROP_AT * AUDIO_RATE) :][: int(DROP * AUDIO_RATE)] = excerpt(other, 10.0, DROP)
    return degrade.room_noise(signal, 10.0)


def mixed(name: str, start: float, factor: float, other: str, other_start: float) -> np.ndarray:
    """A hard mix at stream time MIX_AT from `name` (the pitch fader at `factor`) into 15 s of `other`, brought to
    the same loudness (the DJ's trim), in one room: 10 dB of noise and an mp3 pass."""
    song = degrade.speed(excerpt(name, start, MIX_AT * factor), factor)
    then = excerpt(other, other_start, 15.0)
    then = then * np.sqrt(np.mean(song**2) / np.mean(then**2))
    noisy = degrade.room_noise(np.concatenate([song, then]), 10.0)
    return degrade.codec_pass(noisy, "mp3")[: len(noisy)]


def muted(name: str) -> np.ndarray:
    signal = excerpt(name, 5.0, 30.0).copy()
    signal[int(MUTE_AT * AUDIO_RATE) : int((MUTE_AT + MUTE) * AUDIO_RATE)] = 0.0
    return degrade.room_noise(signal, 10.0)


SIGNALS = {
    ("song", VIBE, 1.0): lambda: in_the_room(VIBE, BEGIN, 20.0),
    ("song", C64, 1.05): lambda: in_the_room(C64, BEGIN, 21.0, 1.05),
    ("song", BUNNY, 0.95): lambda: in_the_room(BUNNY, BEGIN, 19.0, 0.95),
    ("song", VIBE, 1.035): lambda: in_the_room(VIBE, BEGIN, 21.0, 1.035),
    ("passage", VIBE): lambda: degrade.room_noise(excerpt(VIBE, 5.0, MIX_AT), 10.0),
    ("loop", REGGAE, 1.03): lambda: in_the_room(REGGAE, 0.0, 60.0, 1.03),
    ("mix", VIBE, C64): lambda: np.concatenate([in_the_room(VIBE, 5.0, MIX_AT), in_the_room(C64, 3.0, 15.0)]),
    ("mix", VIBE, UNKNOWN): lambda: np.concatenate([in_the_room(VIBE, 5.0, MIX_AT), in_the_room(UNKNOWN, 0.0, 30.0)]),
    ("mix", C64, UNKNOWN): lambda: mixed(C64, 3.0, 1.05, UNKNOWN, 0.0),
    ("mix", BUNNY, OTHER): lambda: mixed(BUNNY, BEGIN, 0.95, OTHER, 20.0),
    ("mix", REGGAE, OTHER): lambda: mixed(REGGAE, 0.0, 1.03, OTHER, 5.0),
    ("mute", VIBE): lambda: muted(VIBE),
    ("drop-in", VIBE, UNKNOWN): lambda: dropped_in(VIBE, UNKNOWN),
    ("twice", "sintel_clip.mp4"): lambda: degrade.room_noise(song("sintel_clip.mp4"), 10.0),
    ("quiet", VIBE, 1.0): lambda: quieted(VIBE, 5.0, 25.0, 1.0, 10.0, QUIET),
    ("quiet", C64, 1.05): lambda: quieted(C64, 3.0, 25.0, 1.05, 10.0, QUIET),
    ("quiet", REGGAE, 1.03): lambda: quieted(REGGAE, 0.0, 25.0, 1.03, 10.0, QUIET),
    ("stop", VIBE): lambda: quieted(VIBE, 5.0, STOP_AT + 16.0, 1.0, STOP_AT, 16.0),
    ("cue", VIBE): lambda: np.concatenate([in_the_room(VIBE, 5.0, CUE_AT), in_the_room(VIBE, CUE_TO, 15.0)]),
}


@pytest.mark.parametrize(("name", "factor"), [(VIBE, 1.0), (C64, 1.05), (BUNNY, 0.95), (VIBE, 1.035)])
def test_a_song_in_the_room_locks_within_5_s_and_the_picture_follows_it_within_a_frame(name, factor):
    """10 dB room noise, an mp3 pass and a pitch fader at up to +-5 % (1.035: between the matcher's 1 % speed
    steps): locked to the right video within 5 s; from 5 s after the lock the picture time is the song's
    position within one video frame (p95) and never jumps; the rate is the pitch fader's within 0.5 %."""
    key = ("song", name, factor)
    run = track(key)
    assert run.events, f"{name} at {factor}: never locked"
    enter = run.events[0]
    assert enter.kind == "enter" and shares_content(NAMES[enter.lock.video], name), f"{name}: {enter}"
    assert enter.at <= 5.0, f"{name} at {factor}: locked after {enter.at:.2f} s"
    assert [e.kind for e in run.events] == ["enter"], f"{name} at {factor}: {run.events[1:]}"
    error = errors(run, lambda t: BEGIN + t * factor, NAMES[enter.lock.video], enter.at + 5.0)
    assert len(error) >= 5 * 20, f"{name}: only {len(error) // 5} hops tracked"
    p95 = float(np.percentile(error, 95))
    assert p95 <= FRAME and error.max() <= 3 * FRAME, f"{name} at {factor}: p95 {p95 * 1e3:.1f} ms, max {error.max()}"
    rate = run.locks[-1][1].rate
    assert abs(rate / factor - 1.0) <= 0.005, f"{name} played at {factor}: rate {rate:.4f}"


def test_a_repeated_section_of_a_song_does_not_move_the_lock():
    """Vibe Ace plays its 15-25 s again at 44.5-54.5 s (waveform correlation 0.94-0.97 at +29.54 s): in this
    room's noise the matcher names the copy 4 hops in a row (2 s). Continuity wins: the lock stays where the
    song really is."""
    key = ("passage", VIBE)
    elsewhere = [h.now for h in confident_hops(key, VIBE) if abs(h.match.position_at(h.now) - (5.0 + h.now)) > 1]
    assert len(elsewhere) >= 2 and np.min(np.diff(elsewhere)) < 0.6, f"no run of misplaced hops: {elsewhere}"
    run = track(key)
    assert [e.kind for e in run.events] == ["enter"]
    assert errors(run, lambda t: 5.0 + t, VIBE, run.events[0].at).max() <= 3 * FRAME


def test_a_loop_based_song_never_jumps_a_bar_while_locked():
    """lmms_CapDan-ReggaeTry repeats its bars (1.333 s): single windows match a few bars off. Locked once,
    the picture stays on the song's own bar for the whole song."""
    key = ("loop", REGGAE, 1.03)
    raw = [abs(h.match.position_at(h.now) - h.now * 1.03) for h in confident_hops(key, REGGAE)]
    assert max(raw) > 1.3, "premise: the raw matches have a window a bar or more off"
    run = track(key)
    assert [e.kind for e in run.events] == ["enter"] and run.events[0].at <= 5.0, run.events
    error = errors(run, lambda t: t * 1.03, REGGAE, run.events[0].at)
    assert error.max() <= 3 * FRAME, f"picture {error.max():.3f} s off the song"


def test_a_mix_into_another_library_song_leaves_the_first_and_locks_the_second():
    """A hard cut from Vibe Ace to C64 (both in the library), in a noisy room: the lock lets go of Vibe Ace
    within 2 s of its last confident hop (the 5 s window keeps naming it until the new song outweighs it),
    and C64 is locked, at its position, within 5 s of the cut."""
    key = ("mix", VIBE, C64)
    run = track(key)
    first, *rest = run.events
    assert NAMES[first.lock.video] == VIBE and first.at <= 5.0, first
    last_vibe = max(h.now for h in confident_hops(key, VIBE))
    gone = next(e for e in rest if e.lock is None or NAMES[e.lock.video] != VIBE)
    assert all(e.kind != "move" for e in run.events), run.events
    # 4 hops (hops end on whole STFT frames: 2.02 s); the 5 s window names Vibe Ace until C64 outweighs it
    assert gone.at - last_vibe <= 2.05 and gone.at - MIX_AT <= 4.0, f"left Vibe Ace at {gone.at:.2f} s ({gone})"
    entered = next(e for e in rest if e.kind == "enter" and NAMES[e.lock.video] == C64)
    assert entered.at - MIX_AT <= 5.0, entered
    assert errors(run, lambda t: 3.0 + t - MIX_AT, C64, entered.at).max() <= FRAME
    assert NAMES[run.locks[-1][1].video] == C64


def test_a_mix_into_an_unknown_song_leaves_and_keeps_searching():
    """Vibe Ace, then a song that is not in the library: the lock lets go within 3 s of the mix, although the
    5 s window keeps naming Vibe Ace confidently for ~4 s after it (it once left 5.9 s after the mix), and
    nothing locks for the 30 s of unknown music, Vibe Ace's fading votes included."""
    key = ("mix", VIBE, UNKNOWN)
    run = track(key)
    assert [e.kind for e in run.events] == ["enter", "leave"], run.events
    last_vibe = max(h.now for h in confident_hops(key, VIBE))
    assert last_vibe - MIX_AT >= 3.5, "premise: the window outlives the song"
    assert run.events[1].at - MIX_AT <= 3.0, run.events[1]
    assert all(lock is None for now, lock in run.locks if now >= run.events[1].at)


@pytest.mark.parametrize(
    ("name", "other", "within"),
    [(VIBE, UNKNOWN, 2.0), (VIBE, C64, 2.0), (C64, UNKNOWN, 2.0), (REGGAE, OTHER, 2.0), (BUNNY, OTHER, 3.0)],
)
def test_a_hard_mix_leaves_within_2_s_or_3_s_where_the_song_was_heard_sparsely(name, other, within):
    """Issue 12: when the DJ mixes into another song, leave sync within 2 s. The 5 s window keeps naming the old
    song for ~4 s after the mix (its older votes); the newest audio's own landmarks stop agreeing with the lock at
    the mix: the lock lets go within 2 s of it (it took 2.4-2.9 s), and never while the song played (10 dB room,
    mp3, the pitch fader at -5..+5 %). Big Buck Bunny's last seconds before this mix are a quiet passage, heard
    2-3 landmarks at a time in this room: a song heard that sparsely is left by the window's rules, as before
    (3 s), since a gap of 1.5 s in it is no sign of a mix (the Sintel trailer has one at 10 dB and +4 %)."""
    key = ("mix", name, other)
    run = track(key)
    first, *rest = run.events
    assert first.kind == "enter" and shares_content(NAMES[first.lock.video], name) and first.at <= 5.0, first
    assert rest and rest[0].at > MIX_AT, f"{name}: let go while it played: {rest}"
    gone = rest[0]
    assert gone.kind == "leave" or NAMES[gone.lock.video] == other, gone
    assert gone.at - MIX_AT <= within, f"{name} into {other}: left {gone.at - MIX_AT:.2f} s after the mix"
    assert all(lock is None or NAMES[lock.video] == other for now, lock in run.locks if now >= gone.at)


def test_a_song_in_the_library_twice_locks_to_one_of_them_without_flicker():
    """The Sintel clip's soundtrack is 10 s of the Sintel trailer's: the matcher names one, then the other
    (hops: trailer x6, then clip). The show locks to that music, at its position, and cuts at most once."""
    key = ("twice", "sintel_clip.mp4")
    run = track(key)
    assert 1 <= len(run.events) <= 2 and all(e.kind == "enter" for e in run.events), run.events
    for now, lock in run.locks:
        if lock is not None:
            name = NAMES[lock.video]
            assert shares_content(name, "sintel_clip.mp4"), name
            if name == "sintel_clip.mp4":
                assert abs(lock.position_at(now) - now) <= FRAME


def test_mode_off_never_locks_and_turning_it_off_leaves():
    key = ("song", VIBE, 1.0)
    run = track(key, mode="off")
    assert run.events == [] and all(lock is None for _, lock in run.locks)
    tracker, kinds = SyncTracker("off"), []
    for i, hop in enumerate(hops_of(key)):
        if i == 10:
            tracker.set_mode("auto")
        if i == 30:
            assert tracker.state == "locked"
            tracker.set_mode("off")
        event = update(tracker, hop)
        kinds += [event.kind] if event else []
        if i < 10:
            assert tracker.state == "off"
    assert kinds == ["enter", "leave"] and tracker.state == "off" and tracker.lock is None


def test_mode_on_holds_the_lock_through_doubt_that_auto_leaves():
    """The DJ cuts to the other deck for 3.5 s (music that is not in the library) while the record plays on:
    other music is heard, so 'auto' lets go and locks again when the song is back; 'on' keeps the lock, and
    the picture is still on the song."""
    key = ("drop-in", VIBE, UNKNOWN)
    auto, on = track(key, "auto"), track(key, "on")
    assert [e.kind for e in auto.events] == ["enter", "leave", "enter"], auto.events
    assert DROP_AT < auto.events[1].at <= DROP_AT + 3.0, auto.events[1]
    assert [e.kind for e in on.events] == ["enter"], on.events
    assert errors(on, lambda t: 5.0 + t, VIBE, on.events[0].at).max() <= 3 * FRAME


def test_a_muted_record_keeps_the_lock_in_both_modes():
    """The DJ kills the sound for 6 s while the record plays on: ~3 s without a confident hop, but only the
    room is heard, no other music: 'auto' keeps the lock as 'on' does (it left and locked again 3.5 s later),
    and the picture is on the song when the sound is back."""
    key = ("mute", VIBE)
    seen = [h.now for h in hops_of(key) if h.match and h.match.confident and NAMES[h.match.video] == VIBE]
    gap = max(np.diff(seen))
    assert 2.5 <= gap <= 3.5, f"premise: the longest doubt is {gap:.2f} s"
    for mode in ("auto", "on"):
        run = track(key, mode)
        assert [e.kind for e in run.events] == ["enter"], f"{mode}: {run.events}"
        assert errors(run, lambda t: 5.0 + t, VIBE, run.events[0].at).max() <= 3 * FRAME


def test_a_cue_jump_in_the_song_moves_the_lock_there():
    """The DJ jumps from 17 s into Vibe Ace to a cue point at 40 s: the lock moves there (one "move" cut, no
    leave, no cut away to content and back), and the picture follows the song's new position. It takes ~7 s:
    the 5 s window names the old place until the new one outweighs it (~4 s), then MOVE_SECONDS more."""
    key = ("cue", VIBE)
    run = track(key)
    assert [e.kind for e in run.events] == ["enter", "move"], run.events
    moved = run.events[1]
    assert CUE_AT + 3.0 <= moved.at <= CUE_AT + 7.5, moved
    assert errors(run, lambda t: CUE_TO + t - CUE_AT, VIBE, moved.at).max() <= FRAME


@pytest.mark.parametrize(("name", "start", "factor"), [(VIBE, 5.0, 1.0), (C64, 3.0, 1.05), (REGGAE, 0.0, 1.03)])
def test_a_quiet_passage_inside_the_song_keeps_the_lock_and_the_picture_in_sync(name, start, factor):
    """4.5 s of the song 50 dB down (a break, a fade: only the room's noise is heard): silence is no sign that
    the DJ changed the song, so the film plays on through it, one lock, no cut away and back, and from the
    lock to the end (the quiet passage and after it) the picture is on the song's position."""
    key = ("quiet", name, factor)
    unheard = max(h.now - h.match.heard_until for h in hops_of(key) if h.match and NAMES[h.match.video] == name)
    assert unheard >= HEARD_DOUBT_SECONDS["auto"] + 0.5, f"premise: nothing of the song heard for {unheard:.2f} s"
    run = track(key)
    assert [e.kind for e in run.events] == ["enter"], f"{name}: {run.events}"
    assert run.events[0].at <= 5.0, run.events[0]
    error = errors(run, lambda t: start + t * factor, name, run.events[0].at)
    assert error.max() <= 3 * FRAME, f"{name}: picture {error.max():.3f} s off the song"
    after = errors(run, lambda t: start + t * factor, name, 10.0 + QUIET + 2.0)
    assert float(np.percentile(after, 95)) <= FRAME, f"{name}: after the quiet passage, p95 {np.percentile(after, 95)}"


def test_a_song_that_stops_into_silence_leaves_once_the_silence_is_long():
    """Vibe Ace stops at 12 s and only the room is heard: the lock holds through what could be a quiet passage,
    then lets go once nothing of the song has been heard for SILENCE_SECONDS (the song ended), and nothing
    locks again in the room's noise."""
    key = ("stop", VIBE)
    run = track(key)
    assert [e.kind for e in run.events] == ["enter", "leave"], run.events
    last_heard = max(h.match.heard_until for h in confident_hops(key, VIBE))
    left = run.events[1].at
    assert QUIET + 1.0 <= left - STOP_AT, f"left {left - STOP_AT:.2f} s after the song stopped: a break would cut"
    assert left - last_heard <= SILENCE_SECONDS + 0.55, f"left {left - last_heard:.2f} s after the song was last heard"

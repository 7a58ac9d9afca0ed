"""Identification of a live stream: each hop's new audio is analysed once, and the votes of the last
`window` seconds decide. The same front half (LandmarkStream) fingerprints a library video block by
block, so an hour-long soundtrack never sits in memory, with exactly the hashes of fingerprint().

A one-shot lookup of a 5 s window every 0.5 s would redo ten times the same STFT, peaks and lookups.
Here a hop computes only its new frames; a frame's peaks are final once PEAK_DT later frames exist
(93 ms), a peak's pairs once LOOKAHEAD later peaks exist or MAX_DT frames have passed (~0.35 s in
music), and only the new pairs are hashed (at every speed) and looked up. Their hits are kept, with
the stream time of their anchor, until they leave the window; the vote is match.decide over them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from livejpp.fingerprint.landmarks import (
    FFT,
    FRAME_SECONDS,
    HOP,
    LOOKAHEAD,
    MAX_DT,
    PEAK_DT,
    Landmarks,
    pair_hashes,
    peaks_in,
    spectrogram_db,
)
from livejpp.fingerprint.match import (
    CANDIDATES,
    HEARD_VOTES,
    MIN_VOTES,
    SMALL_LIBRARY,
    SPEED_STEP,
    SPEEDS,
    Match,
    _slot,
    decide,
    near_votes,
    top_videos,
    vote_keys,
)
from livejpp.fingerprint.store import HashStore, TwoTierStore
from livejpp.media.decode import AUDIO_RATE


class LandmarkStream:
    """The peaks of a stream, each frame analysed once, handed out as anchors once their pairs are final."""

    def __init__(self, slowest: float = 1.0):
        self.slowest = slowest  # the slowest speed pairs will be made at: a pair spans up to MAX_DT / slowest
        self.frames = 0  # frames computed so far
        self._tail = np.zeros(0, np.float32)  # samples not yet in a frame
        self._db = np.zeros((0, 1), np.float32)  # recent spectrogram rows; row 0 is frame _db_first
        self._db_first = 0
        self._peaks_done = 0  # frames whose peaks are found
        self._pt = np.zeros(0)  # peaks from LOOKAHEAD before the next anchor on, absolute frames
        self._pf = np.zeros(0)
        self._p_first = 0  # absolute index of _pt[0]
        self._anchored = 0  # absolute index of the next peak to anchor pairs

    def push(self, samples: np.ndarray) -> None:
        """Add audio (mono float32 at AUDIO_RATE): its frames' spectra, and the peaks that became final."""
        audio = np.concatenate([self._tail, np.asarray(samples, np.float32)])
        n_new = (len(audio) - FFT) // HOP + 1 if len(audio) >= FFT else 0
        if n_new <= 0:
            self._tail = audio
            return
        rows = spectrogram_db(audio[: (n_new - 1) * HOP + FFT])
        self._tail = audio[n_new * HOP :]
        self._db = rows if self.frames == 0 else np.concatenate([self._db, rows])
        self.frames += n_new
        self._find_peaks(self.frames - PEAK_DT)

    def _find_peaks(self, ready: int) -> None:
        if ready <= self._peaks_done:
            return
        found = peaks_in(self._db, self._peaks_done - self._db_first, ready - self._db_first)
        self._pt = np.concatenate([self._pt, found.t + self._db_first])
        self._pf = np.concatenate([self._pf, found.f])
        self._peaks_done = ready
        keep_from = max(0, self._peaks_done - PEAK_DT - 1 - self._db_first)  # the next peaks' neighbourhood
        self._db = self._db[keep_from:]
        self._db_first += keep_from

    def take_anchors(self, final: bool = False) -> tuple[np.ndarray, np.ndarray, int, int]:
        """(t, f, anchors, first_index) for pair_hashes: the peaks whose pairs are now final (all of them at
        the end of the audio: `final`) and the partners after them. Each anchor is handed out once."""
        if final:
            self._find_peaks(self.frames)
            end = self._p_first + len(self._pt)
        else:
            by_count = self._p_first + len(self._pt) - LOOKAHEAD
            limit = self._peaks_done - (MAX_DT + 1) / self.slowest - 1
            by_time = self._p_first + int(np.searchsorted(self._pt, limit))
            end = max(by_count, by_time)
        start, first = self._anchored - self._p_first, self._anchored
        t, f = self._pt[start:], self._pf[start:]
        anchors = max(0, end - self._anchored)
        self._anchored = max(end, self._anchored)
        drop = max(0, self._anchored - self._p_first - LOOKAHEAD)  # anchored peaks are only partners now
        self._pt, self._pf = self._pt[drop:], self._pf[drop:]
        self._p_first += drop
        return t, f, anchors, first

    def pending(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(t, f, first_index) for pair_hashes: the final peaks not yet handed out as anchors, paired with the
        partners found so far. Their hashes are the ones take_anchors will give (a peak's partners are the
        first FANOUT in its zone), only fewer; they reach the newest audio, where anchors lag it by up to
        (MAX_DT + 1) / slowest frames (1.6 s). A peek: it hands nothing out."""
        start = self._anchored - self._p_first
        return self._pt[start:], self._pf[start:], self._anchored


def fingerprint_blocks(blocks: Iterable[np.ndarray]) -> Landmarks:
    """fingerprint() of audio arriving in blocks (a library video's soundtrack read piece by piece)."""
    fingerprint = BlockFingerprint()
    for block in blocks:
        fingerprint.push(block)
    return fingerprint.finish()


class BlockFingerprint:
    """fingerprint_blocks() with the blocks pushed: a video's worker hands it the soundtrack it reads anyway."""

    def __init__(self) -> None:
        self._stream, self._parts = LandmarkStream(), []

    def push(self, block: np.ndarray) -> None:
        self._stream.push(block)
        t, f, anchors, first = self._stream.take_anchors()
        self._parts.append(pair_hashes(t, f, anchors, first))

    def finish(self) -> Landmarks:
        t, f, anchors, first = self._stream.take_anchors(final=True)
        parts = [*self._parts, pair_hashes(t, f, anchors, first)]
        return Landmarks(*(np.concatenate([getattr(lm, k) for lm in parts]) for k in ("hashes", "t", "pair")))


@dataclass(frozen=True)
class Recent:
    """The newest audio's landmarks at every speed (StreamMatcher.recent): what a lock is verified against."""

    hashes: np.ndarray  # uint32
    anchor: np.ndarray  # stream seconds of each pair's anchor
    speed: np.ndarray  # index into speeds
    pair: np.ndarray  # which two peaks made the hash (one id at every speed)
    speeds: tuple[float, ...]

    def agreeing(self, store: TwoTierStore, video: int, position: float, rate: float, tolerance: float) -> np.ndarray:
        """Stream seconds of the landmarks that say `video` is playing: found in it (hashed at the speeds next to
        `rate`) where a line puts it, at position + rate * s (+-tolerance) at stream second s, or where
        HEARD_VOTES of them put it at one other place on the same slope (the DJ jumped to a cue: the song plays on
        there). One video's postings and a line known beforehand: a landmark of the song still playing agrees on
        its own, where the window's vote needs MIN_VOTES of them, and its older votes outlive a mix by seconds."""
        near = np.abs(np.asarray(self.speeds)[self.speed] - rate) <= SPEED_STEP + 1e-9
        hits = store.lookup_in(self.hashes[near], np.array([video]))
        anchor, pair = self.anchor[near][hits.query], self.pair[near][hits.query]
        off = np.rint((hits.frame * FRAME_SECONDS - (position + rate * anchor)) / FRAME_SECONDS).astype(np.int64)
        _, first = np.unique(np.stack([pair, off]), axis=1, return_index=True)  # a pair hashed alike at two speeds
        anchor, off = anchor[first], off[first]
        agree = (np.abs(off) * FRAME_SECONDS <= tolerance) | (near_votes(off) >= HEARD_VOTES)
        return anchor[agree]


_RECENT_FIELDS = ("hashes", "anchor", "speed", "pair")  # what Recent keeps of each hop
SCORED_HOPS = 3  # tier 1 judges candidates on the votes of the newest hops' hits
# tier 1's count table, counted afresh each hop from the window's ~250k hits (10,000 songs): 1M slots
STREAM_TABLE_BITS = 20


@dataclass
class _Hop:
    """One hop's new query pairs (at every speed) and what the store said about them."""

    hashes: np.ndarray  # uint32
    scaled_t: np.ndarray  # anchor frame at the pair's speed (reference frames)
    speed: np.ndarray  # speed index
    pair: np.ndarray
    anchor: np.ndarray  # anchor frame in stream time
    # tier 1: its votes' count-table slots, of the vote's key and its neighbouring offsets' (3 rows)
    slots: np.ndarray = field(default_factory=lambda: np.zeros((3, 0), np.intp))
    videos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # tier 1: the voted videos


class StreamMatcher:
    """Feed audio as it arrives (push), get the match for the newest `window` seconds.

    Two tiers (match.py), for a large library: each hop's new pairs go through the capped whole-library
    lookup once (tier 1); the window's hits are counted in a hashed table and the CANDIDATES videos with
    most hits on a well-voted offset in the newest hops, and the recent winners (a song that is playing
    stays verified while noise hides it from tier 1), are verified with all their postings (tier 2: a
    video's postings are kept from hop to hop while it stays a candidate), and decide() votes over those.
    A small library (SMALL_LIBRARY videos) verifies every video every hop. candidates=None: the
    single-tier vote of the first prototype (for the bench)."""

    def __init__(
        self,
        store: HashStore,
        window: float = 5.0,
        speeds: tuple[float, ...] = SPEEDS,
        candidates: int | None = CANDIDATES,
    ):
        self.store = store
        self.speeds = tuple(speeds)
        self.window_frames = window * AUDIO_RATE / HOP
        self.landmarks = LandmarkStream(slowest=min(self.speeds))
        self._hits: deque[tuple[np.ndarray, ...]] = deque()  # per hop: anchor frame, exact, video, speed, pair
        self.candidates = candidates if hasattr(store, "lookup_in") else None
        self._hops: deque[_Hop] = deque()
        self._base = 0  # stream-wide index of the first pair of the window's first hop
        # candidate video -> (stream-wide index of the first pair not looked up, its postings: pair index, frame)
        self._verified: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        self._recent: dict[int, float] = {}  # video -> stream frame it last won a window with MIN_VOTES / 2

    @property
    def seconds(self) -> float:
        """Stream time of the newest analysed frame's start: Match.position_at(seconds) is 'now' in the video."""
        return self.landmarks.frames * HOP / AUDIO_RATE

    def push(self, samples: np.ndarray) -> Match | None:
        """Add the newest audio (mono float32 at AUDIO_RATE); the best match of the window, or None."""
        self.landmarks.push(samples)
        if self.candidates is not None:
            return self._push_two_tier()
        hop = self._new_hop()
        if hop is not None:
            self._look_up(hop)
            self._hops.append(hop)
        oldest = self._drop_old_hops()
        while self._hits and self._hits[0][0].size and self._hits[0][0].max() < oldest:
            self._hits.popleft()
        hits = [h for h in self._hits if h[0].size]
        if not hits:
            return None
        anchor, exact, video, speed, pair = (np.concatenate([h[i] for h in hits]) for i in range(5))
        keep = anchor >= oldest
        return decide(exact[keep], video[keep], speed[keep], pair[keep], self.speeds, anchor[keep])

    def _new_hop(self) -> _Hop | None:
        """The pairs that became final this hop, at every speed."""
        t, f, anchors, first = self.landmarks.take_anchors()
        if anchors == 0:
            return None
        return self._hashed(t, f, anchors, first)

    def _hashed(self, t: np.ndarray, f: np.ndarray, anchors: int | None, first: int) -> _Hop:
        """Peaks paired and hashed at every speed (pair_hashes' anchors: how many anchor pairs, None for all)."""
        parts = [pair_hashes(t * speed, f / speed, anchors, first) for speed in self.speeds]
        speed_index = np.concatenate([np.full(len(lm.hashes), i) for i, lm in enumerate(parts)])
        scaled_t = np.concatenate([lm.t for lm in parts])
        return _Hop(
            np.concatenate([lm.hashes for lm in parts]),
            scaled_t,
            speed_index,
            np.concatenate([lm.pair for lm in parts]),
            scaled_t / np.asarray(self.speeds)[speed_index],
        )

    def _drop_old_hops(self) -> float:
        """Forget the hops whose pairs all left the window; the window's first stream frame."""
        oldest = self.landmarks.frames - self.window_frames
        while self._hops and (not self._hops[0].anchor.size or self._hops[0].anchor.max() < oldest):
            self._base += len(self._hops.popleft().hashes)
        return oldest

    def _look_up(self, hop: _Hop) -> None:
        """The single-tier path: the hop's hits in the capped whole-library lookup, kept for the window's vote."""
        hits = self.store.lookup(hop.hashes)
        if len(hits.query):
            q = hits.query
            self._hits.append((hop.anchor[q], hits.frame - hop.scaled_t[q], hits.video, hop.speed[q], hop.pair[q]))

    def recent(self, seconds: float) -> Recent:
        """The landmarks anchored in the newest `seconds` of analysed audio, at every speed: the window's final
        pairs and the pending ones (partners found so far), which reach the newest audio (LandmarkStream.pending)."""
        since = self.landmarks.frames - seconds * AUDIO_RATE / HOP
        t, f, first = self.landmarks.pending()
        hops = [*self._hops, self._hashed(t, f, None, first)]
        hashes, anchor, speed, pair = (np.concatenate([getattr(h, k) for h in hops]) for k in _RECENT_FIELDS)
        keep = anchor >= since
        return Recent(hashes[keep], anchor[keep] * FRAME_SECONDS, speed[keep], pair[keep], self.speeds)

    def _push_two_tier(self) -> Match | None:
        store: TwoTierStore = self.store  # type: ignore[assignment]
        videos = store.videos
        large = len(videos) > SMALL_LIBRARY
        hop = self._new_hop()
        if hop is not None:
            if large:
                self._vote(hop)
            self._hops.append(hop)
        oldest = self._drop_old_hops()
        self._recent = {v: at for v, at in self._recent.items() if at >= oldest}
        if not self._hops:
            return None
        chosen = self._candidates() if large else videos
        parts = self._verify(store, [int(v) for v in chosen], oldest)
        if not parts:
            return None
        exact, video, speed, pair, anchor = (np.concatenate([p[i] for p in parts]) for i in range(5))
        if not len(exact):
            return None
        match = decide(exact, video, speed, pair, self.speeds, anchor)
        if match.votes >= MIN_VOTES // 2:
            self._recent[match.video] = float(self.landmarks.frames)
        return match

    def _verify(self, store: TwoTierStore, chosen: list[int], oldest: float) -> list[tuple[np.ndarray, ...]]:
        """Tier 2: every posting of the chosen videos for the window's pairs; a video's postings are kept
        from hop to hop (only the pairs new since are looked up) while it stays a candidate."""
        hops = list(self._hops)
        hashes = np.concatenate([hop.hashes for hop in hops])
        scaled_t = np.concatenate([hop.scaled_t for hop in hops])
        speed = np.concatenate([hop.speed for hop in hops])
        pair = np.concatenate([hop.pair for hop in hops])
        anchor = np.concatenate([hop.anchor for hop in hops])
        base, end = self._base, self._base + len(hashes)
        none = np.zeros(0, np.int64)
        known = {video: self._verified.get(video, (base, none, none)) for video in chosen}
        new: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for covered in {max(c, base) for c, _, _ in known.values() if c < end}:  # one lookup per start
            group = [video for video, (c, _, _) in known.items() if max(c, base) == covered]
            hits = store.lookup_in(hashes[covered - base :], np.asarray(group))
            for video in group:
                mine = hits.video == video
                new[video] = (hits.query[mine] + covered, hits.frame[mine])
        parts, verified = [], {}
        for video in chosen:
            _, index, frame = known[video]
            keep = index >= base
            index, frame = index[keep], frame[keep]
            if video in new:
                index, frame = np.r_[index, new[video][0]], np.r_[frame, new[video][1]]
            verified[video] = (end, index, frame)
            local = index - base
            keep = anchor[local] >= oldest
            local = local[keep]
            parts.append(
                (frame[keep] - scaled_t[local], np.full(len(local), video), speed[local], pair[local], anchor[local])
            )
        self._verified = verified
        return parts

    def _vote(self, hop: _Hop) -> None:
        """Tier 1: the hop's capped whole-library hits, counted into the table."""
        hits = self.store.lookup(hop.hashes)
        q = hits.query
        keys = vote_keys(hits.video, hits.frame - hop.scaled_t[q], hop.speed[q], len(self.speeds))
        hop.videos = hits.video
        hop.slots = np.stack([_slot(keys + d, STREAM_TABLE_BITS) for d in (-1, 0, 1)])

    def _candidates(self) -> np.ndarray:
        """The videos with most votes on one offset, judged on the newest hops' keys (a playing song's
        offset gets votes every hop; the table holds the whole window's), and the recent winners."""
        newest = list(self._hops)[-SCORED_HOPS:]
        counts = np.bincount(np.concatenate([hop.slots[1] for hop in self._hops]), minlength=1 << STREAM_TABLE_BITS)
        slots = np.concatenate([hop.slots for hop in newest], axis=1)
        videos = np.concatenate([hop.videos for hop in newest])
        top = top_videos(videos, counts[slots[0]] + counts[slots[1]] + counts[slots[2]], self.candidates, hits=2)
        return np.union1d(top, np.fromiter(self._recent, np.int64, len(self._recent)))

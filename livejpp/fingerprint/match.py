"""Which library video a window of audio comes from, where in it, and at what speed.

Every query hash found in the library votes for (video, speed, offset), the offset being where the
window's start lies in that video. The true video piles its votes on one offset; chance hits spread
over all of them. A match needs MIN_VOTES on one offset (+-1 frame) and MARGIN times the votes of the
best other video, so a song that is not in the library never locks. The other videos' votes count only
query landmarks that did not vote for the winner: a second video with the same soundtrack (a song in
the library twice) explains nothing the winner does not, so it does not block the lock.

Speed: a DJ's pitch fader plays the record s times faster, so its peaks sit at t/s and f*s. The
query's peaks are found once and rescaled to each candidate speed of SPEEDS before pairing and
hashing (searching a few resampling factors, without resampling the audio); the speed with the most
votes wins. One window gives the speed to +-SPEED_STEP; drift correction measures it to ~0.1 % from the
positions of successive matches (sync12-design.md).

Two tiers, for a library of thousands of songs: in 10,000 songs' worth of 23-bit pair hashes the average
hash has ~100 postings, and the stop-word cap that keeps a whole-library lookup cheap (store.MAX_POSTINGS)
drops 76 % of them, so a real song lost most of its votes (15 locked hops of 80 at 10 dB noise). So the
whole library is only asked which videos are CANDIDATES (tier 1: the capped lookup, votes on (video,
speed, offset), the videos with the most votes on one offset), and the vote that decides runs over every
posting of those few videos (tier 2: `lookup_in`, no library-wide cap), exactly as it runs over a small
library. A library of at most SMALL_LIBRARY videos skips tier 1: every video is a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livejpp.fingerprint.landmarks import FRAME_SECONDS, pair_hashes, peaks
from livejpp.fingerprint.store import HashStore

SPEED_STEP = 0.01
MAX_SPEED_CHANGE = 0.08
SPEEDS = tuple(np.round(np.arange(-MAX_SPEED_CHANGE, MAX_SPEED_CHANGE + 1e-9, SPEED_STEP) + 1.0, 4))
MIN_VOTES = 8
MARGIN = 2.0
CANDIDATES = 10  # videos verified with all their postings per window (tier 2), besides the recent winners
SMALL_LIBRARY = 16  # up to this many videos, every one is verified (tier 1 skipped: the vote of a small library)
_OFFSET_BIAS = 1 << 24  # offsets (frames) may be negative: the window may start before the song


@dataclass(frozen=True)
class Match:
    """The window's audio is `video` from `position` seconds (the window's start), played at `speed`."""

    video: int
    position: float
    speed: float
    votes: int
    runner_up: int  # votes of the best other video
    confident: bool
    # the matcher's stream seconds (Engine.heard: engine time) of the newest query landmark that voted for the
    # winning video (streams only): when the song was last actually heard. A 5 s window stays confident for
    # seconds after the song stops; this does not.
    heard_until: float | None = None

    @property
    def confidence(self) -> float:
        """0 (a tie with another video) to 1 (no other video got a vote)."""
        return 1.0 - self.runner_up / self.votes if self.votes else 0.0

    def position_at(self, seconds_into_window: float) -> float:
        """Position in the video of a moment of the window (its end, for a live lock)."""
        return self.position + seconds_into_window * self.speed


class Matcher:
    """Identify windows of audio against one store of library fingerprints."""

    def __init__(self, store: HashStore, speeds: tuple[float, ...] = SPEEDS, candidates: int | None = CANDIDATES):
        self.store = store
        self.speeds = tuple(speeds)
        # None: the single-tier vote over the capped whole-library lookup (the first prototype, for the bench)
        self.candidates = candidates if hasattr(store, "lookup_in") else None

    def _query(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The window's hashes at every candidate speed: hash, anchor time (reference frames), speed index, pair."""
        p = peaks(samples)
        parts = [pair_hashes(p.t * speed, p.f / speed) for speed in self.speeds]
        speed_index = np.concatenate([np.full(len(lm.hashes), i) for i, lm in enumerate(parts)])
        return (
            np.concatenate([lm.hashes for lm in parts]),
            np.concatenate([lm.t for lm in parts]),
            speed_index,
            np.concatenate([lm.pair for lm in parts]),
        )

    def identify(self, samples: np.ndarray) -> Match | None:
        """The best match for mono float32 audio at AUDIO_RATE (None: no library hash in it at all)."""
        hashes, times, speed_index, pair = self._query(samples)
        if self.candidates is None:
            hits = self.store.lookup(hashes)
        else:
            videos = self.store.videos
            if len(videos) > SMALL_LIBRARY:
                first = self.store.lookup(hashes)
                q = first.query
                keys = vote_keys(first.video, first.frame - times[q], speed_index[q], len(self.speeds))
                bits = max(16, int(len(keys) * 4).bit_length())
                counts = np.bincount(_slot(keys, bits), minlength=1 << bits)
                videos = top_videos(first.video, score(counts, keys), self.candidates)
            hits = self.store.lookup_in(hashes, videos)
        if len(hits.query) == 0:
            return None
        query = hits.query
        return decide(hits.frame - times[query], hits.video, speed_index[query], pair[query], self.speeds)


EXACT_KEYS = 1 << 17  # up to this many hits, the vote is counted exactly (a sort); above, hashed
TABLE_BITS = 22  # tier 1's vote table: 4M counters for the ~300k (video, speed, offset) keys of a window


def vote_keys(video: np.ndarray, exact: np.ndarray, speed_index: np.ndarray, n_speeds: int) -> np.ndarray:
    """One int64 per hit: (video, speed, offset in frames), as decide() counts them."""
    offset = np.rint(exact).astype(np.int64) + _OFFSET_BIAS
    return ((video * n_speeds + speed_index) << 26) | offset


def score(counts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each key's votes in a hashed count table, its neighbouring offsets included (as _best counts)."""
    bits = int(len(counts)).bit_length() - 1
    return counts[_slot(keys - 1, bits)] + counts[_slot(keys, bits)] + counts[_slot(keys + 1, bits)]


CANDIDATE_VOTES = 3  # tier 1 votes a video needs on one offset to be a candidate


def top_videos(video: np.ndarray, votes: np.ndarray, n: int, hits: int = 1) -> np.ndarray:
    """The n videos with the most hits that have CANDIDATE_VOTES or more on their offset (a playing song's
    offset collects a hit every few pairs; a chance collision in a hashed count table is one hit), at least
    `hits` of them, ties broken by the votes. At 10,000 songs ~10 % of a window's hits reach 3 through
    table collisions, so the number of hits, not the votes, tells a candidate from chance."""
    strong = votes >= CANDIDATE_VOTES
    video, votes = video[strong], votes[strong]
    if not len(video):
        return video
    order = np.lexsort((-votes, video))
    video, votes = video[order], votes[order]
    first = np.flatnonzero(np.r_[True, video[1:] != video[:-1]])
    count = np.diff(np.r_[first, len(video)])
    best_video, best_votes = video[first], votes[first]
    rank = np.lexsort((-best_votes, -count))
    rank = rank[count[rank] >= hits]
    return best_video[rank[:n]]


def decide(
    exact: np.ndarray,
    video: np.ndarray,
    speed_index: np.ndarray,
    pair: np.ndarray,
    speeds,
    anchor: np.ndarray | None = None,
) -> Match:
    """The vote over hits: per hit, the query's start in the video (frames, `exact`), the video, the speed
    index and the query pair that hit, and (streams) the stream frame of the pair's anchor. Shared by
    one-shot (Matcher) and streaming (stream.py) lookups."""
    n_speeds = len(speeds)
    keys = vote_keys(video, exact, speed_index, n_speeds)
    group, offset = keys >> 26, keys & ((1 << 26) - 1)
    best_key, top = _best(keys)
    best_group, best_offset = best_key >> 26, best_key & ((1 << 26) - 1)
    winner, speed_i = divmod(best_group, n_speeds)
    inliers = (group == best_group) & (np.abs(offset - best_offset) <= 1)
    # the winner's landmarks at its offset, at its speed and the neighbouring ones (a speed between grid steps)
    near = (video == winner) & (np.abs(offset - best_offset) <= 2) & (np.abs(speed_index - speed_i) <= 1)
    lowest = int(pair.min())
    winner_pairs = np.zeros(int(pair.max()) - lowest + 1, bool)
    winner_pairs[pair[near] - lowest] = True
    explained = winner_pairs[pair - lowest]
    rest = keys[(video != winner) & ~explained]
    runner_up = _best(rest)[1] if len(rest) else 0
    return Match(
        video=int(winner),
        position=float(np.median(exact[inliers])) * FRAME_SECONDS,
        speed=speeds[speed_i],
        votes=top,
        runner_up=runner_up,
        confident=top >= MIN_VOTES and top >= MARGIN * runner_up,
        heard_until=None if anchor is None else _heard_until(keys, anchor, video == winner),
    )


HEARD_VOTES = MIN_VOTES // 2  # votes on one offset that say the video is playing there (a cue jump: elsewhere)


def _heard_until(keys: np.ndarray, anchor: np.ndarray, mine: np.ndarray) -> float:
    """Stream seconds of the newest query landmark that voted for the winning video on an offset with
    HEARD_VOTES or more (+-1 frame): when the video was last heard, at the winning offset or at one a cue
    jump moved it to (the window's older votes keep the old offset winning for seconds after the jump)."""
    keys, anchor = keys[mine], anchor[mine]
    strong = near_votes(keys) >= HEARD_VOTES
    return float(anchor[strong].max() if strong.any() else anchor.max()) * FRAME_SECONDS


def near_votes(keys: np.ndarray) -> np.ndarray:
    """Each key's votes: the keys equal to it or one off (a peak's position wobbles by up to a frame)."""
    distinct, near = _near(keys)
    return near[np.searchsorted(distinct, keys)]


def _near(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys and the votes of each: the keys equal to it or one off."""
    distinct, counts = np.unique(keys, return_counts=True)
    total = np.r_[0, np.cumsum(counts)]
    upto, below = np.searchsorted(distinct, distinct + 1, "right"), np.searchsorted(distinct, distinct - 1)
    return distinct, total[upto] - total[below]


def _best(keys: np.ndarray) -> tuple[int, int]:
    """The (video, speed, offset) key with the most votes, counting its neighbouring offsets too (a peak's
    position wobbles by up to a frame), and its votes.

    Exact: the distinct keys are counted and each one's neighbours found by searchsorted. (The first
    prototype hashed the keys into a table ~4x their number to avoid the sort; a key sharing the winner's
    slot then scored as the winner and could be taken for it: a 1-vote 'winner' over a 53-vote runner-up.
    The sort is cheap now that the decisive vote runs over the candidate videos' hits only, two tiers.)
    Above EXACT_KEYS keys (the single-tier path at 10,000 songs) the hashed count picks the key."""
    if len(keys) > EXACT_KEYS:
        bits = max(16, int(len(keys) * 4).bit_length())
        counts = np.bincount(_slot(keys, bits), minlength=1 << bits)
        best = int(keys[int(np.argmax(score(counts, keys)))])
        return best, int(np.count_nonzero(np.abs(keys - best) <= 1))
    distinct, near = _near(keys)
    i = int(np.argmax(near))
    return int(distinct[i]), int(near[i])


def _slot(keys: np.ndarray, bits: int) -> np.ndarray:
    """Fibonacci hashing of int64 keys to `bits` bits."""
    return ((keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)).astype(np.intp)

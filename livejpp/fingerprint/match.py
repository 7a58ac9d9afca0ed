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

    @property
    def confidence(self) -> float:
        """0 (a tie with another video) to 1 (no other video got a vote)."""
        return 1.0 - self.runner_up / self.votes if self.votes else 0.0

    def position_at(self, seconds_into_window: float) -> float:
        """Position in the video of a moment of the window (its end, for a live lock)."""
        return self.position + seconds_into_window * self.speed


class Matcher:
    """Identify windows of audio against one store of library fingerprints."""

    def __init__(self, store: HashStore, speeds: tuple[float, ...] = SPEEDS):
        self.store = store
        self.speeds = tuple(speeds)

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
        hits = self.store.lookup(hashes)
        if len(hits.query) == 0:
            return None
        query = hits.query
        return decide(hits.frame - times[query], hits.video, speed_index[query], pair[query], self.speeds)


def decide(exact: np.ndarray, video: np.ndarray, speed_index: np.ndarray, pair: np.ndarray, speeds) -> Match:
    """The vote over hits: per hit, the query's start in the video (frames, `exact`), the video, the speed
    index and the query pair that hit. Shared by one-shot (Matcher) and streaming (stream.py) lookups."""
    offset = np.rint(exact).astype(np.int64) + _OFFSET_BIAS
    n_speeds = len(speeds)
    group = video * n_speeds + speed_index
    keys = (group << 26) | offset
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
    )


def _best(keys: np.ndarray) -> tuple[int, int]:
    """The (video, speed, offset) key with the most votes, counting its neighbouring offsets too (a peak's
    position wobbles by up to a frame), and its votes.

    No sort: the keys are hashed into a table ~4x their number and counted with bincount, which is linear
    in the hits of a 10,000-song library; the winner's votes are then counted exactly."""
    bits = max(16, int(len(keys) * 4).bit_length())
    counts = np.bincount(_slot(keys, bits), minlength=1 << bits)
    score = counts[_slot(keys - 1, bits)] + counts[_slot(keys, bits)] + counts[_slot(keys + 1, bits)]
    best = int(keys[int(np.argmax(score))])
    return best, int(np.count_nonzero(np.abs(keys - best) <= 1))


def _slot(keys: np.ndarray, bits: int) -> np.ndarray:
    """Fibonacci hashing of int64 keys to `bits` bits."""
    return ((keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)).astype(np.intp)

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
        exact = hits.frame - times[hits.query]  # the window's start in the video, in frames
        offset = np.rint(exact).astype(np.int64) + _OFFSET_BIAS
        n_speeds = len(self.speeds)
        group = hits.video * n_speeds + speed_index[hits.query]
        keys = (group << 26) | offset
        unique, votes = _votes(keys)
        best = int(np.argmax(votes))
        best_key = int(unique[best])
        best_group, best_offset = best_key >> 26, best_key & ((1 << 26) - 1)
        video, speed_i = divmod(best_group, n_speeds)
        inliers = (group == best_group) & (np.abs(offset - best_offset) <= 1)
        # the winner's landmarks at its offset, at its speed and the neighbouring ones (a speed between grid steps)
        near = (hits.video == video) & (np.abs(offset - best_offset) <= 2)
        near &= np.abs(speed_index[hits.query] - speed_i) <= 1
        explained = np.isin(pair[hits.query], pair[hits.query[near]])
        rest = keys[(hits.video != video) & ~explained]
        runner_up = int(_votes(rest)[1].max()) if len(rest) else 0
        speed, start = self.speeds[speed_i], float(np.median(exact[inliers]))
        top = int(votes[best])
        return Match(
            video=int(video),
            position=start * FRAME_SECONDS,
            speed=speed,
            votes=top,
            runner_up=runner_up,
            confident=top >= MIN_VOTES and top >= MARGIN * runner_up,
        )


def _votes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (video, speed, offset) keys and their votes, counting the neighbouring offsets too: a peak's
    position wobbles by up to a frame."""
    unique, counts = np.unique(keys, return_counts=True)
    votes = counts.copy()
    for step in (-1, 1):
        at = np.searchsorted(unique, unique + step)
        found = (at < len(unique)) & (unique[np.minimum(at, len(unique) - 1)] == unique + step)
        votes[found] += counts[at[found]]
    return unique, votes

"""The library's fingerprints: hash -> (video, anchor frame), looked up many hashes at a time.

In memory it is three parallel arrays sorted by hash, so a lookup is two searchsorted calls and one
gather, whatever the library's size. The on-disk form (SQLite, issue 12's build step) only has to load
into this: per video, its hashes and frames as raw little-endian uint32 blobs (never pickled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# a hash seen more often than this in the library is a stop word: it votes for everything, so for nothing
MAX_POSTINGS = 200


@dataclass(frozen=True)
class Hits:
    """Every library entry sharing a query hash: query[i] (an index into the query) hit video[i] at frame[i]."""

    query: np.ndarray  # int64
    video: np.ndarray  # int64
    frame: np.ndarray  # int64


class HashStore(Protocol):
    """What matching needs from a store (the SQLite-backed one loads into MemoryHashStore)."""

    def lookup(self, hashes: np.ndarray) -> Hits: ...


class MemoryHashStore:
    """Fingerprints of many videos in sorted numpy arrays."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._hash = np.zeros(0, np.uint32)
        self._video = np.zeros(0, np.uint32)
        self._frame = np.zeros(0, np.uint32)
        self._sorted = True

    def add(self, video: int, hashes: np.ndarray, frames: np.ndarray) -> None:
        """Add one video's landmarks (frames: anchor frames from the start of its soundtrack)."""
        frames = np.rint(np.asarray(frames)).astype(np.uint32)
        self._parts.append((np.asarray(hashes, np.uint32), np.full(len(hashes), video, np.uint32), frames))
        self._sorted = False

    def add_arrays(self, hashes: np.ndarray, videos: np.ndarray, frames: np.ndarray) -> None:
        """Add many videos at once (loading a library, or the synthetic scale benchmark)."""
        self._parts.append((hashes.astype(np.uint32), videos.astype(np.uint32), frames.astype(np.uint32)))
        self._sorted = False

    @classmethod
    def from_sorted(cls, hashes: np.ndarray, videos: np.ndarray, frames: np.ndarray) -> MemoryHashStore:
        """A store over arrays already sorted by hash, kept as they are (no copy, no sort: 10,000 songs)."""
        store = cls()
        store._hash, store._video, store._frame = hashes, videos, frames
        return store

    def _sort(self) -> None:
        if self._sorted:
            return
        parts = [(self._hash, self._video, self._frame), *self._parts]
        hashes = np.concatenate([p[0] for p in parts])
        order = np.argsort(hashes, kind="stable")
        self._hash = hashes[order]
        self._video = np.concatenate([p[1] for p in parts])[order]
        self._frame = np.concatenate([p[2] for p in parts])[order]
        self._parts = []
        self._sorted = True

    def __len__(self) -> int:
        self._sort()
        return len(self._hash)

    @property
    def nbytes(self) -> int:
        self._sort()
        return self._hash.nbytes + self._video.nbytes + self._frame.nbytes

    def lookup(self, hashes: np.ndarray) -> Hits:
        self._sort()
        hashes = np.asarray(hashes, np.uint32)
        lo = np.searchsorted(self._hash, hashes, side="left")
        hi = np.searchsorted(self._hash, hashes, side="right")
        count = hi - lo
        count[count > MAX_POSTINGS] = 0
        total = int(count.sum())
        query = np.repeat(np.arange(len(hashes)), count)
        first = np.cumsum(count) - count
        index = np.repeat(lo - first, count) + np.arange(total)
        return Hits(query, self._video[index].astype(np.int64), self._frame[index].astype(np.int64))

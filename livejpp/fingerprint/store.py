"""The library's fingerprints: hash -> (video, anchor frame), looked up many hashes at a time.

In memory it is kept twice, for the two tiers of matching (match.py):
- by hash (three parallel arrays: hash, video, frame), for `lookup`: which videos share a window's hashes,
  two searchsorted calls and one gather whatever the library's size. Hashes with more than MAX_POSTINGS
  postings are stop words here and are not kept at all: in 10,000 songs' worth of 23-bit pair hashes they
  are 12 % of the hashes but 76 % of the postings, so dropping them shrinks this copy four-fold.
- by video (hash and frame, sorted by hash within each video), for `lookup_in`: every posting of a few
  candidate videos, with no library-wide cap, so a song keeps all its votes however large the library
  (a hash common across 10,000 songs is still specific within one song).
The on-disk form (SQLite, issue 12's build step) only has to load into this: per video, its hashes and
frames as raw little-endian uint32 blobs (never pickled), unchanged by the two tiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# a hash seen more often than this in the library is a stop word: it votes for everything, so for nothing
MAX_POSTINGS = 200
# Below this many postings (~700 songs) lookup binary-searches the sorted hashes (0.2 ms a hop at 4M) rather than
# build the direct index (a 2**23 bincount: 0.2-0.4 s and 32 MB at every build's end and every show's start).
DIRECT_INDEX_POSTINGS = 1 << 22


@dataclass(frozen=True)
class Hits:
    """Every library entry sharing a query hash: query[i] (an index into the query) hit video[i] at frame[i]."""

    query: np.ndarray  # int64
    video: np.ndarray  # int64
    frame: np.ndarray  # int64


class HashStore(Protocol):
    """What matching needs from a store (the SQLite-backed one loads into MemoryHashStore)."""

    def lookup(self, hashes: np.ndarray) -> Hits: ...


class TwoTierStore(HashStore, Protocol):
    """A store that can also verify a few candidate videos with all their postings (MemoryHashStore)."""

    @property
    def videos(self) -> np.ndarray: ...

    def lookup_in(self, hashes: np.ndarray, videos: np.ndarray) -> Hits: ...


class MemoryHashStore:
    """Fingerprints of many videos in sorted numpy arrays."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._hash = np.zeros(0, np.uint32)
        self._video = np.zeros(0, np.uint32)
        self._frame = np.zeros(0, np.uint32)
        self._by_video = _ByVideo.of(self._hash, self._video, self._frame)
        self._start: np.ndarray | None = None  # _hash_index
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
        store._by_video = _ByVideo.of(hashes, videos, frames, _stable_order(videos))
        store._hash, store._video, store._frame = _without_stop_words(hashes, videos, frames)
        store._start = _hash_index(store._hash)
        return store

    def _sort(self) -> None:
        if self._sorted:
            return
        parts = [self._by_video.arrays(), *self._parts]  # by video: every posting, stop words included
        hashes = np.concatenate([p[0] for p in parts])
        videos = np.concatenate([p[1] for p in parts])
        frames = np.concatenate([p[2] for p in parts])
        order = np.argsort(hashes, kind="stable")
        hashes, videos, frames = hashes[order], videos[order], frames[order]
        self._by_video = _ByVideo.of(hashes, videos, frames, _stable_order(videos))
        self._hash, self._video, self._frame = _without_stop_words(hashes, videos, frames)
        self._start = _hash_index(self._hash)
        self._parts = []
        self._sorted = True

    def __len__(self) -> int:
        self._sort()
        return len(self._by_video.hash)

    @property
    def nbytes(self) -> int:
        self._sort()
        index = 0 if self._start is None else self._start.nbytes
        return self._hash.nbytes + self._video.nbytes + self._frame.nbytes + self._by_video.nbytes + index

    @property
    def videos(self) -> np.ndarray:
        """The ids of the videos that have hashes (sorted)."""
        self._sort()
        return self._by_video.ids

    def lookup(self, hashes: np.ndarray) -> Hits:
        self._sort()
        hashes = np.asarray(hashes, np.uint32)
        if self._start is not None:  # a direct index: no binary search through 59M postings (10,000 songs)
            inside = np.minimum(hashes, len(self._start) - 2).astype(np.intp)
            lo, hi = self._start[inside].astype(np.int64), self._start[inside + 1].astype(np.int64)
            hi[hashes > len(self._start) - 2] = lo[hashes > len(self._start) - 2]
        else:
            lo = np.searchsorted(self._hash, hashes, side="left")
            hi = np.searchsorted(self._hash, hashes, side="right")
        query, index = _gather(lo, hi)
        return Hits(query, self._video[index].astype(np.int64), self._frame[index].astype(np.int64))

    def lookup_in(self, hashes: np.ndarray, videos: np.ndarray) -> Hits:
        """Every posting of `hashes` in the given videos, with no library-wide stop words (a hash with more
        than MAX_POSTINGS postings within one video is still one there: a loop repeating all song long)."""
        self._sort()
        hashes = np.asarray(hashes, np.uint32)
        order = np.argsort(hashes)  # sorted needles: searchsorted walks each video's hashes in order, cache-warm
        ordered = hashes[order]
        parts = [self._by_video.lookup(ordered, int(v)) for v in np.unique(np.asarray(videos, np.int64))]
        parts = [p for p in parts if len(p.query)] or [Hits(*(np.zeros(0, np.int64),) * 3)]
        query, video, frame = (np.concatenate([getattr(p, k) for p in parts]) for k in ("query", "video", "frame"))
        return Hits(order[query], video, frame)


def _gather(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The postings lo[i]:hi[i] of each query hash i, skipping stop words (more than MAX_POSTINGS): each
    posting's query index and its position in the postings arrays."""
    count = hi - lo
    count[count > MAX_POSTINGS] = 0
    query = np.repeat(np.arange(len(count)), count)
    index = np.repeat(lo - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))
    return query, index


def _hash_index(hashes: np.ndarray) -> np.ndarray | None:
    """start[h]:start[h + 1] are hash h's postings (hashes sorted), for hashes below 2**24 (pair hashes have
    23 bits: 32 MB); None for other hashes and for fewer than DIRECT_INDEX_POSTINGS (lookup searches then)."""
    if len(hashes) < DIRECT_INDEX_POSTINGS or int(hashes[-1]) >= 1 << 24:
        return None
    counts = np.bincount(hashes, minlength=int(hashes[-1]) + 1)
    return np.r_[0, np.cumsum(counts)].astype(np.uint32 if len(hashes) < 1 << 32 else np.int64)


def _stable_order(values: np.ndarray) -> np.ndarray:
    """argsort(values, kind="stable") of uint32 ids, as two 16-bit radix passes (numpy's stable sort of
    16-bit keys is a radix sort, linear; of 32-bit keys a timsort: 5x slower on 244M ids, 10,000 songs)."""
    values = np.asarray(values, np.uint32)
    order = np.argsort((values & 0xFFFF).astype(np.uint16), kind="stable")
    high = (values[order] >> 16).astype(np.uint16)
    return order if not high.any() else order[np.argsort(high, kind="stable")]


def _without_stop_words(hashes: np.ndarray, videos: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, ...]:
    """The postings of hashes with at most MAX_POSTINGS of them (arrays sorted by hash): lookup would drop
    the others anyway. Kept as they are (no copy) when there are none to drop."""
    if len(hashes) <= MAX_POSTINGS:
        return hashes, videos, frames
    common = hashes[MAX_POSTINGS:] == hashes[:-MAX_POSTINGS]  # the same hash MAX_POSTINGS places later
    if not common.any():
        return hashes, videos, frames
    starts = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
    counts = np.diff(np.r_[starts, len(hashes)])
    keep = np.repeat(counts <= MAX_POSTINGS, counts)
    return hashes[keep], videos[keep], frames[keep]


@dataclass(frozen=True)
class _ByVideo:
    """All postings grouped by video, sorted by hash within a video: video ids[i] owns start[i]:start[i+1]."""

    ids: np.ndarray  # int64, sorted
    start: np.ndarray  # int64, len(ids) + 1
    hash: np.ndarray  # uint32
    frame: np.ndarray  # uint32

    @classmethod
    def of(cls, hashes, videos, frames, order: np.ndarray | None = None) -> _ByVideo:
        """From parallel arrays; `order` sorts them by video and then by hash."""
        if order is not None:
            hashes, videos, frames = hashes[order], videos[order], frames[order]
        starts = np.flatnonzero(np.r_[True, videos[1:] != videos[:-1]]) if len(videos) else np.zeros(0, np.int64)
        ids = videos[starts].astype(np.int64)
        return cls(ids, np.r_[starts, len(videos)].astype(np.int64), hashes, frames)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        videos = np.repeat(self.ids, np.diff(self.start)).astype(np.uint32)
        return self.hash, videos, self.frame

    @property
    def nbytes(self) -> int:
        return self.hash.nbytes + self.frame.nbytes + self.start.nbytes + self.ids.nbytes

    def lookup(self, hashes: np.ndarray, video: int) -> Hits:
        i = int(np.searchsorted(self.ids, video))
        if i == len(self.ids) or self.ids[i] != video:
            return Hits(*(np.zeros(0, np.int64),) * 3)
        lo_v, hi_v = self.start[i], self.start[i + 1]
        own = self.hash[lo_v:hi_v]
        lo = np.searchsorted(own, hashes, side="left")
        hi = np.searchsorted(own, hashes, side="right")
        query, index = _gather(lo + lo_v, hi + lo_v)
        return Hits(query, np.full(len(index), video, np.int64), self.frame[index].astype(np.int64))

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

import numpy as np

from livejpp.fingerprint.landmarks import (
    FFT,
    HOP,
    LOOKAHEAD,
    MAX_DT,
    PEAK_DT,
    Landmarks,
    pair_hashes,
    peaks_in,
    spectrogram_db,
)
from livejpp.fingerprint.match import SPEEDS, Match, decide
from livejpp.fingerprint.store import HashStore
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


def fingerprint_blocks(blocks: Iterable[np.ndarray]) -> Landmarks:
    """fingerprint() of audio arriving in blocks (a library video's soundtrack read piece by piece)."""
    stream, parts = LandmarkStream(), []
    for block in blocks:
        stream.push(block)
        t, f, anchors, first = stream.take_anchors()
        parts.append(pair_hashes(t, f, anchors, first))
    t, f, anchors, first = stream.take_anchors(final=True)
    parts.append(pair_hashes(t, f, anchors, first))
    return Landmarks(*(np.concatenate([getattr(lm, k) for lm in parts]) for k in ("hashes", "t", "pair")))


class StreamMatcher:
    """Feed audio as it arrives (push), get the match for the newest `window` seconds."""

    def __init__(self, store: HashStore, window: float = 5.0, speeds: tuple[float, ...] = SPEEDS):
        self.store = store
        self.speeds = tuple(speeds)
        self.window_frames = window * AUDIO_RATE / HOP
        self.landmarks = LandmarkStream(slowest=min(self.speeds))
        self._hits: deque[tuple[np.ndarray, ...]] = deque()  # per hop: anchor frame, exact, video, speed, pair

    @property
    def seconds(self) -> float:
        """Stream time of the newest analysed frame's start: Match.position_at(seconds) is 'now' in the video."""
        return self.landmarks.frames * HOP / AUDIO_RATE

    def push(self, samples: np.ndarray) -> Match | None:
        """Add the newest audio (mono float32 at AUDIO_RATE); the best match of the window, or None."""
        self.landmarks.push(samples)
        self._hash_and_look_up()
        oldest = self.landmarks.frames - self.window_frames
        while self._hits and self._hits[0][0].size and self._hits[0][0].max() < oldest:
            self._hits.popleft()
        hits = [h for h in self._hits if h[0].size]
        if not hits:
            return None
        exact, video, speed, pair = (np.concatenate([h[i] for h in hits]) for i in range(1, 5))
        keep = np.concatenate([h[0] for h in hits]) >= oldest
        return decide(exact[keep], video[keep], speed[keep], pair[keep], self.speeds)

    def _hash_and_look_up(self) -> None:
        t, f, anchors, first = self.landmarks.take_anchors()
        if anchors == 0:
            return
        parts = [pair_hashes(t * speed, f / speed, anchors, first) for speed in self.speeds]
        hits = self.store.lookup(np.concatenate([lm.hashes for lm in parts]))
        if len(hits.query):
            scaled_t = np.concatenate([lm.t for lm in parts])[hits.query]
            speed_index = np.concatenate([np.full(len(lm.hashes), i) for i, lm in enumerate(parts)])[hits.query]
            anchor_frame = scaled_t / np.asarray(self.speeds)[speed_index]
            pair = np.concatenate([lm.pair for lm in parts])[hits.query]
            self._hits.append((anchor_frame, hits.frame - scaled_t, hits.video, speed_index, pair))

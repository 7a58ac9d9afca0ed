"""Known-track identification: landmark fingerprints of library soundtracks and live lookup (issue 12).

landmarks.py turns audio into spectral peaks and peak-pair hashes; store.py keeps the library's hashes
(hash -> video, time); match.py finds the video and the position a window of live audio comes from,
by voting on time offsets, at a few playback speeds (a DJ's pitch fader); stream.py does the same for
live audio arriving hop by hop, analysing each hop's audio once.
"""

from livejpp.fingerprint.landmarks import Landmarks, fingerprint, peaks
from livejpp.fingerprint.match import Match, Matcher
from livejpp.fingerprint.store import MemoryHashStore
from livejpp.fingerprint.stream import StreamMatcher, fingerprint_blocks

__all__ = [
    "Landmarks",
    "Match",
    "Matcher",
    "MemoryHashStore",
    "StreamMatcher",
    "fingerprint",
    "fingerprint_blocks",
    "peaks",
]

"""The picture meets the sound in the room: where a cut decided on the audio clock is drawn.

All times are seconds on the show's clock (time.monotonic() - show start) unless said otherwise.

- Audio time t: the engine's clock, the samples counted so far / AUDIO_RATE. Cuts and beats are
  decided on it.
- Arrival: the sample of audio time t reached the analysis at show time t + `arrival`. `arrival` is
  measured, not assumed: the least (arrival - audio time) over the last reads. Delays only add, so
  the least is the truest. A file played as if live arrives on time (0); a capture device arrives
  late by its start-up and its buffers.
- Input latency: that sample sounded in the room `input` seconds before it arrived (what the capture
  device reports: converter and buffers). So the beat at audio time t sounded in the room at show time
      room(t) = t + arrival - input.
- Output latency: a picture drawn at show time w is seen `output` seconds later (the flip waits for
  the display's next refresh; a projector adds its own processing).
- av_offset: the VJ's own correction (positive: pictures later), from calibration or by ear and eye.

So a cut decided for the beat at audio time t is drawn at
      w = t + shift,   shift = arrival - input - output + av_offset,
and it is seen at w + output = room(t) + av_offset: on the beat, in the room. Equivalently, the frame
drawn at w shows the pictures of audio time w - shift (`picture_time`). The input latency moves the
pictures earlier, not later: the captured beat has already sounded by the time it is heard here;
with `arrival` measured, the part of it the device reports is taken out of the arrival once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

#: Reads (about 20 ms apart) over which the least arrival delay is taken: long enough that one
#: read without delay is among them, short enough that a device that restarts is re-measured soon.
ARRIVAL_READS = 250


@dataclass
class Latency:
    input: float = 0.0  # seconds, reported by the capture device
    output: float = 0.0  # seconds, display or projector
    _arrivals: deque = field(default_factory=lambda: deque(maxlen=ARRIVAL_READS))

    def observe(self, arrived: float, audio_time: float) -> None:
        """The newest sample, of audio time `audio_time`, arrived at show time `arrived`."""
        self._arrivals.append(arrived - audio_time)

    @property
    def arrival(self) -> float:
        return min(self._arrivals) if self._arrivals else 0.0

    def room(self, audio_time: float) -> float:
        """The show time at which the sound of `audio_time` was in the room."""
        return audio_time + self.arrival - self.input

    def heard(self, show_time: float) -> float:
        """The audio time of what the room hears at `show_time` (a tap on the beat, a Link beat)."""
        return show_time - self.arrival + self.input

    def shift(self, av_offset: float) -> float:
        """Show time a picture is drawn minus the audio time it shows."""
        return self.arrival - self.input - self.output + av_offset

    def budget(self, av_offset: float) -> dict:
        """The latency budget, part by part (ms), for --stats and the HUD."""
        return {
            "input_ms": round(self.input * 1000, 2),
            "output_ms": round(self.output * 1000, 2),
            "av_offset_ms": round(av_offset * 1000, 2),
            "arrival_ms": round(self.arrival * 1000, 2),
            "total_ms": round(self.shift(av_offset) * 1000, 2),  # drawn this long after the beat's audio time
        }

"""Generated media for edge cases the real media does not cover (odd sizes, rotation, VFR, tones).

Frames carry what a test needs to check: brightness tracks source time, and a red block marks the
top-left corner of the stored picture.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np


def frame_picture(width: int, height: int, level: int, marker: bool = True) -> np.ndarray:
    """Grey at `level` with a red block in the stored top-left corner."""
    img = np.full((height, width, 3), level, np.uint8)
    if marker:
        img[: max(2, height // 4), : max(2, width // 4)] = (255, 0, 0)
    return img


def write_video(
    path,
    width: int = 320,
    height: int = 180,
    fps: int = 25,
    seconds: float = 4.0,
    rotation: int = 0,
    frame_times: list[float] | None = None,
    audio: np.ndarray | None = None,
    audio_rate: int = 44100,
    codec: str = "libx264",
) -> None:
    """Write a small video whose brightness rises with time (0 → 250 over `seconds`).

    `frame_times` gives explicit (variable) frame times; `audio` a mono float32 soundtrack.
    """
    times = frame_times if frame_times is not None else [i / fps for i in range(int(round(seconds * fps)))]
    duration = seconds
    time_base = Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        astream = None
        if audio is not None:
            astream = out.add_stream("aac", rate=audio_rate)
            astream.layout = "mono"
        for t in times:
            level = int(250 * t / duration)
            frame = av.VideoFrame.from_ndarray(frame_picture(width, height, level), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = int(round(t / time_base))
            frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if astream is not None:
            chunk = 1024
            for i in range(0, len(audio), chunk):
                part = np.ascontiguousarray(audio[i : i + chunk], np.float32)[None, :]
                aframe = av.AudioFrame.from_ndarray(part, format="flt", layout="mono")
                aframe.sample_rate = audio_rate
                aframe.pts = i
                aframe.time_base = Fraction(1, audio_rate)
                for packet in astream.encode(aframe):
                    out.mux(packet)
            for packet in astream.encode(None):
                out.mux(packet)


def tone(freq: float, seconds: float, rate: int = 22050, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def click_track(bpm: float, seconds: float, rate: int = 22050) -> np.ndarray:
    """Short noise bursts on every beat: a known tempo."""
    out = np.zeros(int(seconds * rate), np.float32)
    rng = np.random.default_rng(0)
    burst = (rng.standard_normal(int(0.03 * rate)) * np.hanning(int(0.03 * rate)) * 0.5).astype(np.float32)
    period = 60.0 / bpm
    t = 0.0
    while t < seconds:
        i = int(t * rate)
        out[i : i + len(burst)] += burst[: len(out) - i]
        t += period
    return out


def write_audio(path, samples: np.ndarray, rate: int = 44100, layout: str = "stereo", codec: str = "flac") -> None:
    """Write float32 `samples` (channels × n, in the layout's channel order) as an audio file."""
    channels, n = samples.shape
    interleaved = np.ascontiguousarray(samples.T.reshape(1, -1), np.float32)  # packed: PyAV's planar import stops at 8
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        fmt = "flt" if codec != "flac" else "s16"
        data = interleaved if fmt == "flt" else (np.clip(interleaved, -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = Fraction(1, rate)
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(packet)


def write_still(path, seconds: int = 10, width: int = 320, height: int = 180) -> None:
    """A valid video of one picture shown for `seconds` (one frame, as slideshows and covers are made)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(1, seconds))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        frame = av.VideoFrame.from_ndarray(frame_picture(width, height, 128), format="rgb24").reformat(format="yuv420p")
        frame.pts = 0
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(packet)


def write_song_with_cover(path, seconds: float = 12.0, rate: int = 44100) -> None:
    """An MP3 with its cover picture (an attached-picture video stream of one PNG)."""
    with av.open(str(path), "w", format="mp3") as out:
        audio = out.add_stream("libmp3lame", rate=rate)
        audio.layout = "mono"
        cover = out.add_stream("png")
        cover.width, cover.height, cover.pix_fmt = 64, 64, "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(frame_picture(64, 64, 200), format="rgb24")
        picture.pts = 0
        for packet in list(cover.encode(picture)) + list(cover.encode(None)):
            out.mux(packet)
        frame = av.AudioFrame.from_ndarray(tone(440, seconds, rate)[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for packet in list(audio.encode(frame)) + list(audio.encode(None)):
            out.mux(packet)


def pad(seconds: float, rate: int = 22050, level: float = 0.05) -> np.ndarray:
    """A beatless pad: a held A minor chord, slowly swelling (no onsets to follow)."""
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t + i) for i, f in enumerate((220.0, 261.63, 329.63, 440.0)))
    swell = 0.75 + 0.25 * np.sin(2 * np.pi * t / 7.0)
    return (level / 4 * chord * swell).astype(np.float32)


def drums(bpm: float, seconds: float, rate: int = 22050, level: float = 0.5, start: float = 0.0) -> np.ndarray:
    """A kick on every beat and a noise hat between, the first kick at `start` seconds."""
    out = np.zeros(int(seconds * rate), np.float32)
    rng = np.random.default_rng(1)
    n = int(0.15 * rate)
    tk = np.arange(n) / rate
    kick = (np.sin(2 * np.pi * (50 + 100 * np.exp(-tk * 30)) * tk) * np.exp(-tk * 20) * level).astype(np.float32)
    hat = (rng.standard_normal(int(0.03 * rate)) * np.exp(-np.arange(int(0.03 * rate)) / 100) * level / 3).astype(
        np.float32
    )
    period = 60.0 / bpm
    t = start
    while t < seconds:
        for sound, at in ((kick, t), (hat, t + period / 2)):
            i = int(at * rate)
            if i < len(out):
                out[i : i + len(sound)] += sound[: len(out) - i]
        t += period
    return out


def _hit(out: np.ndarray, at: float, sound: np.ndarray, rate: int) -> None:
    i = int(round(at * rate))
    if 0 <= i < len(out):
        out[i : i + len(sound)] += sound[: len(out) - i]


def band_song(
    beats: np.ndarray, beats_per_bar: int, seconds: float, quiet: tuple[float, float] | None = None, rate: int = 22050
) -> np.ndarray:
    """A drum-and-bass groove on known beats, over a sustained pad: kick on the one (and on beat 3 of
    a 4/4 bar), snare on the other beats, hi-hats on the off-beats, a bass note on every beat. The
    chord changes on each bar's one. In `quiet` (a breakdown) only the pad plays; its end is a drop."""
    out = np.zeros(int(seconds * rate), np.float32)
    rng = np.random.default_rng(1)
    n = np.arange(int(0.25 * rate))
    decay = np.exp(-n / (0.05 * rate))
    kick = (0.8 * np.sin(2 * np.pi * (50 + 80 * np.exp(-n / (0.01 * rate))) * n / rate) * decay).astype(np.float32)
    snare = (0.35 * rng.standard_normal(len(n)) * np.exp(-n / (0.03 * rate))).astype(np.float32)
    hat = (0.12 * np.diff(rng.standard_normal(len(n) + 1)) * np.exp(-n / (0.008 * rate))).astype(np.float32)
    chords = ((110.0, 138.6, 164.8), (98.0, 123.5, 146.8), (87.3, 110.0, 130.8), (82.4, 103.8, 123.5))
    t = np.arange(len(out)) / rate
    bar_starts = beats[::beats_per_bar]
    for b, start in enumerate(bar_starts):  # the pad: a chord per bar, always on
        end = bar_starts[b + 1] if b + 1 < len(bar_starts) else seconds
        span = (t >= start) & (t < end)
        out[span] += sum(0.05 * np.sin(2 * np.pi * 2 * f * t[span]) for f in chords[b % len(chords)])
    for k, at in enumerate(beats):
        if quiet and quiet[0] <= at < quiet[1]:
            continue
        in_bar = k % beats_per_bar
        chord = chords[(k // beats_per_bar) % len(chords)]
        _hit(out, at, kick if in_bar == 0 or (beats_per_bar == 4 and in_bar == 2) else snare, rate)
        _hit(out, at, (0.3 * np.sin(2 * np.pi * chord[0] / 2 * n / rate) * decay * 2).astype(np.float32), rate)
        nxt = beats[k + 1] if k + 1 < len(beats) else at + (at - beats[k - 1])
        _hit(out, (at + nxt) / 2, hat, rate)
    return (out / max(1.0, float(np.abs(out).max()))).astype(np.float32)


# --- music with a known beat: drums, bass and pads placed on an exact beat grid -------------------------------


def beat_times(bpm_at, seconds: float) -> np.ndarray:
    """Beat times from 0 s up to `seconds`, the tempo at each beat given by `bpm_at(t)` (a number or a function)."""
    tempo = bpm_at if callable(bpm_at) else (lambda _t: float(bpm_at))
    times, t = [], 0.0
    while t < seconds:
        times.append(t)
        t += 60.0 / tempo(t)
    return np.array(times)


def _decay(seconds: float, tau: float, rate: int) -> np.ndarray:
    return np.exp(-np.arange(int(seconds * rate)) / (tau * rate))


def _kick(rate: int) -> np.ndarray:
    n = int(0.25 * rate)
    freq = 50.0 + 100.0 * np.exp(-np.arange(n) / (0.03 * rate))  # the pitch drop of a kick drum
    return np.sin(2 * np.pi * np.cumsum(freq) / rate) * _decay(0.25, 0.07, rate)


def _noise_hit(seconds: float, tau: float, rate: int, seed: int, highpass: bool) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(int(seconds * rate))
    if highpass:  # a hi-hat: first difference twice leaves mostly the top octaves
        noise = np.diff(noise, 2, prepend=[0.0, 0.0]) / 2.0
    return noise * _decay(seconds, tau, rate)


def _snare(rate: int) -> np.ndarray:
    body = np.sin(2 * np.pi * 190.0 * np.arange(int(0.15 * rate)) / rate) * _decay(0.15, 0.04, rate)
    return 0.5 * body + 0.5 * _noise_hit(0.15, 0.05, rate, 1, highpass=False)


def _note(freq: float, seconds: float, rate: int, attack: float = 0.005, partials: int = 3) -> np.ndarray:
    """A tone with a few harmonics, a linear attack and a release over the last 20 %."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, partials + 1))
    envelope = np.minimum(1.0, t / attack) * np.minimum(1.0, (seconds - t) / (0.2 * seconds))
    return wave * envelope


#: Bass roots of a four-bar progression (A, F, C, G): the pitch changes on every bar's one.
ROOTS_HZ = (55.0, 43.65, 65.41, 49.0)
#: The pad chord over each root (its fifth and a tenth up).
CHORD_RATIOS = (2.0, 3.0, 5.0)


def groove(
    beats: np.ndarray,
    seconds: float,
    beats_per_bar: int = 4,
    hats: str = "eighths",
    hat_level: float = 0.15,
    kick_level: float = 0.6,
    drums: np.ndarray | None = None,
    pads: bool = False,
    rate: int = 22050,
) -> np.ndarray:
    """Mono music on the beat grid `beats` (the first is a downbeat): a kick on the one (and on 3 in 4/4),
    snare on 2 and 4 (2 and 3 in 3/4), a bass note per beat whose root changes every bar, and hats:
    "eighths" (on and between the beats), "offbeat" (between only: the off-beat trap), "swing" (on the beat
    and two thirds through it), "sixteenths" with syncopated accents, or "none". `drums[i]` False leaves
    beat i to the pads alone (a breakdown); `pads` adds a chord held through each bar, slow attack.
    """
    # a room's noise floor at -60 dBFS: no real recording falls to digital silence between two hits
    out = np.random.default_rng(3).standard_normal(int(seconds * rate) + rate) * 1e-3
    kick, snare = _kick(rate), _snare(rate)
    hat = _noise_hit(0.05, 0.012, rate, 2, highpass=True)
    periods = np.diff(beats, append=beats[-1] + (beats[-1] - beats[-2] if len(beats) > 1 else 0.5))

    def add(t: float, sound: np.ndarray, level: float) -> None:
        i = int(round(t * rate))
        if 0 <= i < len(out):
            out[i : i + len(sound)] += level * sound[: len(out) - i]

    for i, (t, period) in enumerate(zip(beats, periods, strict=True)):
        pos, bar = i % beats_per_bar, i // beats_per_bar
        root = ROOTS_HZ[bar % len(ROOTS_HZ)]
        if pads and pos == 0:
            span = period * beats_per_bar
            for ratio in CHORD_RATIOS:
                add(t, _note(root * ratio, span, rate, attack=0.4 * span, partials=2), 0.06)
        if drums is not None and not drums[i]:
            continue
        add(t, _note(root, 0.8 * period, rate, partials=4), 0.25 if pos == 0 else 0.12)
        if pos == 0 or (beats_per_bar == 4 and pos == 2):
            add(t, kick, kick_level)
        if pos in ((1, 3) if beats_per_bar == 4 else (1, 2)):
            add(t, snare, 0.35)
        offsets = {
            "eighths": (0.0, 0.5),
            "offbeat": (0.5,),
            "swing": (0.0, 2.0 / 3.0),
            "sixteenths": (0.0, 0.25, 0.5, 0.75),
            "none": (),
        }[hats]
        for k, offset in enumerate(offsets):
            accent = 1.6 if hats == "sixteenths" and k == 3 else 1.0  # the accent falls before the next beat
            add(t + offset * period, hat, hat_level * accent)
    return (out[: int(seconds * rate)] / max(1.0, np.abs(out).max() / 0.9)).astype(np.float32)

"""Known-track identification benchmark (issue 12): how often, how fast, how big.

    PYTHONPATH=. python tools/sync_id_bench.py [--songs 10000] [--quick]

Prints, on the bundled media (tests/media/av soundtracks and tests/media/music):
- identification rate by excerpt length (1, 2, 5 s) and condition (room noise, codec, EQ, speed);
- false locks of one-shot windows and of a live stream on songs not in the store, per hour;
- a live stream's time to lock and its time per 0.5 s hop;
- fingerprint size per hour of audio;
- lookup time with N songs' worth of synthetic hashes (drawn from the real hashes' statistics).
To be folded into `tools/bench.py sync` with the rest of issue 12.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import degrade  # noqa: E402

from livejpp.fingerprint import Matcher, MemoryHashStore, StreamMatcher, fingerprint  # noqa: E402
from livejpp.fingerprint.landmarks import FRAME_SECONDS  # noqa: E402
from livejpp.media.decode import AUDIO_RATE, read_audio_file  # noqa: E402

MEDIA = ROOT / "tests" / "media"
SAME_CONTENT = [{"big_buck_bunny_0_30.webm", "bigbuckbunny_5s.mp4"}, {"sintel_clip.mp4", "sintel_trailer_audio.ogg"}]
HALVES = (
    ["big_buck_bunny_0_30.webm", "bigbuckbunny_5s.mp4", "Kevin_MacLeod-Vibe_Ace.ogg", "lmms_Skiessi-C64.ogg"],
    ["sintel_clip.mp4", "sintel_trailer_audio.ogg", "lmms_CapDan-ReggaeTry.ogg", "loop_amen.flac"],
)
CONDITIONS = {
    "clean": (1.0, lambda x: x),
    "noise 10dB": (1.0, lambda x: degrade.room_noise(x, 10.0)),
    "noise 5dB": (1.0, lambda x: degrade.room_noise(x, 5.0)),
    "mp3 128k": (1.0, lambda x: degrade.codec_pass(x, "mp3")),
    "aac 128k": (1.0, lambda x: degrade.codec_pass(x, "aac")),
    "EQ -4dB/oct": (1.0, lambda x: degrade.eq_tilt(x, -4.0)),
    "speed -5%": (0.95, lambda x: x),
    "speed +5%": (1.05, lambda x: x),
    "speed +8%": (1.08, lambda x: x),
    "+4%, noise, mp3": (1.04, lambda x: degrade.codec_pass(degrade.room_noise(x, 10.0))),
}


def same(a: str, b: str) -> bool:
    return a == b or any({a, b} <= g for g in SAME_CONTENT)


def load() -> dict[str, np.ndarray]:
    paths = sorted((MEDIA / "av").iterdir()) + sorted((MEDIA / "music").iterdir())
    return {p.name: read_audio_file(p) for p in paths}


def store_of(audio: dict[str, np.ndarray], names: list[str]) -> MemoryHashStore:
    store = MemoryHashStore()
    for i, name in enumerate(names):
        lm = fingerprint(audio[name])
        store.add(i, lm.hashes, lm.t)
    return store


def identification(audio, quick: bool) -> None:
    names = list(audio)
    matcher = Matcher(store_of(audio, names))
    print("\n== identification rate: one-shot excerpts, every 2 s of every song (right song / right song at +-50 ms)")
    print(f"{'condition':18s}" + "".join(f"{f'{n:g} s':>22s}" for n in (1, 2, 5)))
    conditions = list(CONDITIONS)[:3] if quick else list(CONDITIONS)
    for cond in conditions:
        factor, fn = CONDITIONS[cond]
        row = f"{cond:18s}"
        for length in (1.0, 2.0, 5.0):
            song_ok = pos_ok = total = 0
            for name in names:
                x = audio[name]
                for start in np.arange(0.5, len(x) / AUDIO_RATE - length * factor - 0.2, 2.0):
                    seg = x[int(start * AUDIO_RATE) :][: int(length * factor * AUDIO_RATE) + 1]
                    q = fn(degrade.speed(seg, factor) if factor != 1.0 else seg)[: int(length * AUDIO_RATE)]
                    m = matcher.identify(q)
                    total += 1
                    if m is not None and m.confident and same(names[m.video], name):
                        song_ok += 1
                        pos_ok += names[m.video] != name or abs(m.position - start) <= 0.05
            row += f"{song_ok:>6d}/{total:<4d}{100 * song_ok / total:4.0f}%/{100 * pos_ok / total:3.0f}%"
        print(row, flush=True)


def false_locks(audio, quick: bool) -> None:
    print("\n== false locks on music NOT in the store: each half of the bundled songs stored; played: the other")
    print("   half, forwards and time-reversed, clean and at 10 dB noise. (A stored song's own reversal is no")
    print("   'unknown music': it locks to the song, probably through rhythm patterns that read the same backwards.)")
    windows = locks = 0
    stream_hops = stream_locks = 0
    for stored in (0, 1):
        store = store_of(audio, HALVES[stored])
        matcher = Matcher(store)
        unknown = [audio[n] for n in HALVES[1 - stored]] + [audio[n][::-1].copy() for n in HALVES[1 - stored]]
        for noisy in (False, True):
            signal = np.concatenate(unknown)
            signal = degrade.room_noise(signal, 10.0, seed=3) if noisy else signal
            for length in (2.0, 5.0):
                for end in range(int(length * AUDIO_RATE), len(signal), AUDIO_RATE // 2 * (4 if quick else 1)):
                    m = matcher.identify(signal[end - int(length * AUDIO_RATE) : end])
                    windows += 1
                    locks += bool(m and m.confident)
            stream = StreamMatcher(store)
            for start in range(0, len(signal), AUDIO_RATE // 2):
                m = stream.push(signal[start : start + AUDIO_RATE // 2])
                stream_hops += 1
                stream_locks += bool(m and m.confident)
    hours = windows * 0.5 / 3600
    print(f"one-shot 2 s and 5 s windows: {locks} false locks in {windows} windows ({hours:.2f} h of hops)")
    hours = stream_hops * 0.5 / 3600
    print(f"live stream, 5 s window: {stream_locks} false locks in {stream_hops} hops ({hours:.2f} h)")


def streaming(audio) -> None:
    print("\n== live stream (0.5 s hops, 5 s window) from 3.3 s into each song: time to lock, time per hop")
    names = [n for n in audio if len(audio[n]) > 15 * AUDIO_RATE]
    store = store_of(audio, list(audio))
    lock_times, hop_times, errors, misses = [], [], [], 0
    for cond in ("clean", "noise 10dB", "speed -5%", "+4%, noise, mp3"):
        factor, fn = CONDITIONS[cond]
        for name in names:
            signal = fn(degrade.speed(audio[name][int(3.3 * AUDIO_RATE) :], factor))
            stream, locked = StreamMatcher(store), None
            for start in range(0, min(len(signal), 15 * AUDIO_RATE), AUDIO_RATE // 2):
                t0 = time.perf_counter()
                m = stream.push(signal[start : start + AUDIO_RATE // 2])
                hop_times.append(time.perf_counter() - t0)
                if m and m.confident and list(audio)[m.video] == name:
                    locked = stream.seconds if locked is None else locked
                    errors.append(abs(m.position_at(stream.seconds) - (3.3 + stream.seconds * factor)))
            if locked is None:
                misses += 1
            else:
                lock_times.append(locked)
    p = np.percentile
    print(f"time to lock: p50 {p(lock_times, 50):.1f} s, p95 {p(lock_times, 95):.1f} s, not locked in 15 s: {misses}")
    e = np.asarray(errors) * 1000
    print(
        f"position error while locked: p50 {p(e, 50):.1f} ms, p95 {p(e, 95):.1f} ms, hops off > 50 ms: "
        f"{np.count_nonzero(e > 50)}/{len(e)}"
    )
    h = np.asarray(hop_times) * 1000
    print(f"time per hop (bundled store): p50 {p(h, 50):.2f} ms, p95 {p(h, 95):.2f} ms, max {h.max():.2f} ms")


def one_shot_times(audio, store: MemoryHashStore, label: str) -> None:
    matcher = Matcher(store)
    x = audio["Kevin_MacLeod-Vibe_Ace.ogg"]
    row = []
    for length in (2.0, 5.0):
        ts = []
        for start in np.arange(1.0, 50.0, 2.5):
            q = x[int(start * AUDIO_RATE) :][: int(length * AUDIO_RATE)]
            t0 = time.perf_counter()
            matcher.identify(q)
            ts.append(time.perf_counter() - t0)
        row.append(f"{length:g} s window p50 {np.median(ts) * 1000:.1f} ms")
    print(f"one-shot lookup ({label}): " + ", ".join(row))


def size(audio) -> None:
    seconds = sum(len(x) for x in audio.values()) / AUDIO_RATE
    hashes = sum(len(fingerprint(x).hashes) for x in audio.values())
    per_hour = hashes / seconds * 3600
    print("\n== fingerprint size")
    print(
        f"{hashes / seconds:.0f} hashes per second of audio; per hour: {per_hour / 1e3:.0f}k hashes, "
        f"{per_hour * 8 / 1e6:.1f} MB stored (uint32 hash + uint32 frame), {per_hour * 12 / 1e6:.1f} MB in memory"
    )


def synthetic_store(audio, songs: int, seconds: float, real: list[str]) -> tuple[MemoryHashStore, float]:
    """`songs` songs of `seconds` with hashes drawn from the bundled songs' hash statistics (anchor bin,
    bin difference and time difference drawn independently), plus the real songs (videos 0..)."""
    real_lm = [fingerprint(audio[n]) for n in real]
    hashes = np.concatenate([lm.hashes for lm in real_lm]).astype(np.int64)
    rate = len(hashes) / (sum(len(audio[n]) for n in real) / AUDIO_RATE)
    total = int(songs * seconds * rate)
    parts = [
        np.bincount(v, minlength=m) / len(hashes)
        for v, m in ((hashes >> 14, 512), ((hashes >> 6) & 255, 256), (hashes & 63, 64))
    ]
    prob = (parts[0][:, None, None] * parts[1][None, :, None] * parts[2][None, None, :]).ravel()
    rng = np.random.default_rng(0)
    counts = rng.multinomial(total, prob)
    synth = np.repeat(np.arange(len(prob), dtype=np.uint32), counts)  # sorted by construction
    videos = rng.integers(len(real), len(real) + songs, total, dtype=np.uint32)
    frames = rng.integers(0, int(seconds / FRAME_SECONDS), total, dtype=np.uint32)
    real_h = np.concatenate([lm.hashes for lm in real_lm])
    real_v = np.concatenate([np.full(len(lm.hashes), i, np.uint32) for i, lm in enumerate(real_lm)])
    real_f = np.concatenate([np.rint(lm.t).astype(np.uint32) for lm in real_lm])
    at = np.searchsorted(synth, real_h)
    order = np.argsort(at, kind="stable")
    store = MemoryHashStore.from_sorted(
        np.insert(synth, at[order], real_h[order]),
        np.insert(videos, at[order], real_v[order]),
        np.insert(frames, at[order], real_f[order]),
    )
    return store, rate


def scale(audio, songs: int) -> None:
    print(f"\n== {songs} songs' worth of synthetic hashes (4 min each) + the bundled songs")
    real = HALVES[0]
    t0 = time.perf_counter()
    store, rate = synthetic_store(audio, songs, 240.0, real)
    print(
        f"{len(store) / 1e6:.0f}M hashes ({rate:.0f}/s), {store.nbytes / 1e9:.2f} GB in memory, "
        f"made in {time.perf_counter() - t0:.0f} s"
    )
    one_shot_times(audio, store, f"{songs} songs")
    hop_times, hits, wrong = [], 0, 0
    for name, played in [(n, True) for n in real[2:]] + [(n, False) for n in HALVES[1][1:3]]:
        stream = StreamMatcher(store)
        signal = degrade.room_noise(audio[name][int(2.0 * AUDIO_RATE) :], 10.0)
        for start in range(0, min(len(signal), 20 * AUDIO_RATE), AUDIO_RATE // 2):
            t0 = time.perf_counter()
            m = stream.push(signal[start : start + AUDIO_RATE // 2])
            hop_times.append(time.perf_counter() - t0)
            if m and m.confident:
                good = played and m.video < len(real) and same(real[m.video], name)
                hits += good
                wrong += not good
    h = np.asarray(hop_times) * 1000
    print(
        f"live stream per hop: p50 {np.median(h):.2f} ms, p95 {np.percentile(h, 95):.2f} ms, max {h.max():.2f} ms; "
        f"locked hops on stored songs {hits}, false-lock hops {wrong}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=10_000, help="songs' worth of synthetic hashes (0: skip)")
    parser.add_argument("--quick", action="store_true", help="fewer conditions and windows")
    parts = ("size", "rate", "false", "stream", "scale")
    parser.add_argument("--only", choices=parts, action="append", help="run only these parts (repeatable)")
    args = parser.parse_args()
    run = set(args.only or parts)
    audio = load()
    if "size" in run:
        size(audio)
    if "rate" in run:
        identification(audio, args.quick)
    if "false" in run:
        false_locks(audio, args.quick)
    if "stream" in run:
        streaming(audio)
        one_shot_times(audio, store_of(audio, list(audio)), "bundled songs")
    if "scale" in run and args.songs:
        scale(audio, args.songs)


if __name__ == "__main__":
    main()

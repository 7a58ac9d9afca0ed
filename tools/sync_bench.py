"""Known-track identification benchmark (issue 12): how often, how fast, how big. `tools/bench.py sync` runs it.

    python tools/bench.py sync [--songs 10000] [--quick] [--baseline] [--music DIR]
                               [--only size rate false stream scale live leave drift falselocks]

Prints tables to quote, on the bundled media (tests/media/av soundtracks and tests/media/music):
- identification rate by excerpt length (1, 2, 5 s) and condition (room noise, codec, EQ, speed);
- false locks of one-shot windows and of a live stream on music not in the store, and the hours of it;
- a live stream's time to lock, position error and time per 0.5 s hop;
- fingerprint size per hour of audio, stored and in memory;
- lookup per hop, time to lock and locked hops with N songs' worth of synthetic hashes (drawn from the
  real hashes' statistics) beside the real songs;
- the show's sync (tools/sync_live_bench.py): lock time and recorded-frame sync error through a PulseAudio
  sink, leaving after a mix, drift over a 5-minute song at +4 %, false locks per hour.
Two matching paths side by side: "pair-only" (the first prototype: one vote over the whole library's
capped lookup) and "two-tier" (today's: candidates from the capped lookup, the vote over all their
postings; match.py). The one-shot tables (rate, false) run on the two-tier path only unless --baseline.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tools"))

import degrade  # noqa: E402
from bench import table  # noqa: E402
from sync_live_bench import LIVE_PARTS, p, store_of  # noqa: E402

from livejpp.fingerprint import Matcher, MemoryHashStore, StreamMatcher, fingerprint  # noqa: E402
from livejpp.fingerprint.landmarks import FRAME_SECONDS  # noqa: E402
from livejpp.fingerprint.match import CANDIDATES  # noqa: E402
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
# the matching paths compared: candidates=None is the first prototype's single vote over the capped lookup
PATHS = {"pair-only": None, "two-tier": CANDIDATES}
HOP = AUDIO_RATE // 2


def same(a: str, b: str) -> bool:
    return a == b or any({a, b} <= g for g in SAME_CONTENT)


def load() -> dict[str, np.ndarray]:
    paths = sorted((MEDIA / "av").iterdir()) + sorted((MEDIA / "music").iterdir())
    return {p.name: read_audio_file(p) for p in paths}


def identification(audio, quick: bool, paths: list[str]) -> None:
    names = list(audio)
    store = store_of({n: audio[n] for n in names})
    print("\n== identification rate: one-shot excerpts every 2 s of every song: right song / right song at +-50 ms")
    conditions = list(CONDITIONS)[:3] if quick else list(CONDITIONS)
    rows = []
    for cond in conditions:
        factor, fn = CONDITIONS[cond]
        for path in paths:
            matcher = Matcher(store, candidates=PATHS[path])
            row = [cond, path]
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
                row.append(f"{100 * song_ok / total:.0f} % / {100 * pos_ok / total:.0f} % (n={total})")
            rows.append(row)
    print(table(["condition", "path", "1 s", "2 s", "5 s"], rows), flush=True)


def false_locks(audio, quick: bool, paths: list[str]) -> None:
    print("\n== false locks on music NOT in the store: each half of the bundled songs stored; played: the other")
    print("   half, forwards and time-reversed, clean and at 10 dB noise. (A stored song's own reversal is no")
    print("   'unknown music': it locks to the song, probably through rhythm patterns that read the same backwards.)")
    counts = {(path, kind): [0, 0] for path in paths for kind in ("one-shot 2 s + 5 s windows", "live stream")}
    for stored in (0, 1):
        store = store_of({n: audio[n] for n in HALVES[stored]})
        unknown = [audio[n] for n in HALVES[1 - stored]] + [audio[n][::-1].copy() for n in HALVES[1 - stored]]
        for noisy in (False, True):
            signal = np.concatenate(unknown)
            signal = degrade.room_noise(signal, 10.0, seed=3) if noisy else signal
            for path in paths:
                matcher, c = Matcher(store, candidates=PATHS[path]), counts[path, "one-shot 2 s + 5 s windows"]
                for length in (2.0, 5.0):
                    for end in range(int(length * AUDIO_RATE), len(signal), HOP * (4 if quick else 1)):
                        m = matcher.identify(signal[end - int(length * AUDIO_RATE) : end])
                        c[0] += bool(m and m.confident)
                        c[1] += 1
                stream, c = StreamMatcher(store, candidates=PATHS[path]), counts[path, "live stream"]
                for start in range(0, len(signal), HOP):
                    m = stream.push(signal[start : start + HOP])
                    c[0] += bool(m and m.confident)
                    c[1] += 1
    rows = [[kind, path, locks, f"{n} hops", f"{n * 0.5 / 3600:.2f} h"] for (path, kind), (locks, n) in counts.items()]
    print(table(["windows", "path", "false locks", "windows", "unknown music"], rows), flush=True)


def streaming(audio, paths: list[str]) -> None:
    print("\n== live stream (0.5 s hops, 5 s window) from 3.3 s into each song longer than 15 s; conditions: clean,")
    print("   noise 10 dB, -5 %, +4 % + noise + mp3; bundled store (all 8 songs)")
    names = [n for n in audio if len(audio[n]) > 15 * AUDIO_RATE]
    store, rows = store_of(audio), []
    signals = {}
    for cond in ("clean", "noise 10dB", "speed -5%", "+4%, noise, mp3"):
        factor, fn = CONDITIONS[cond]
        for name in names:
            signals[cond, name] = factor, fn(degrade.speed(audio[name][int(3.3 * AUDIO_RATE) :], factor))
    for path in paths:
        lock_times, hop_times, errors, misses = [], [], [], 0
        for (_, name), (factor, signal) in signals.items():
            stream, locked = StreamMatcher(store, candidates=PATHS[path]), None
            for start in range(0, min(len(signal), 15 * AUDIO_RATE), HOP):
                t0 = time.perf_counter()
                m = stream.push(signal[start : start + HOP])
                hop_times.append(time.perf_counter() - t0)
                if m and m.confident and list(audio)[m.video] == name:
                    locked = stream.seconds if locked is None else locked
                    errors.append(abs(m.position_at(stream.seconds) - (3.3 + stream.seconds * factor)))
            if locked is None:
                misses += 1
            else:
                lock_times.append(locked)
        e, h = np.asarray(errors) * 1000, np.asarray(hop_times) * 1000
        rows.append(
            [
                path,
                f"{p(lock_times, 50):.1f} s / {p(lock_times, 95):.1f} s",
                f"{misses} of {len(signals)}",
                f"{p(e, 50):.1f} ms / {p(e, 95):.1f} ms",
                f"{np.count_nonzero(e > 50)} of {len(e)}",
                f"{p(h, 50):.2f} / {p(h, 95):.2f} / {h.max():.2f} ms",
            ]
        )
    headers = ["path", "lock p50 / p95", "not locked in 15 s", "position error p50 / p95", "hops off > 50 ms"]
    print(table([*headers, "hop cost p50 / p95 / max"], rows))
    for path in paths:
        one_shot_times(audio, store, f"{path}, bundled songs", PATHS[path])


def one_shot_times(audio, store: MemoryHashStore, label: str, candidates: int | None) -> None:
    matcher = Matcher(store, candidates=candidates)
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
    print(f"one-shot lookup ({label}): " + ", ".join(row), flush=True)


def size(audio) -> None:
    seconds = sum(len(x) for x in audio.values()) / AUDIO_RATE
    hashes = sum(len(fingerprint(x).hashes) for x in audio.values())
    per_hour = hashes / seconds * 3600
    print("\n== fingerprint size (the 10,000-song memory is in the scale table)")
    rows = [
        ["hashes", f"{hashes / seconds:.0f} per second of audio", f"{per_hour / 1e3:.0f}k per hour"],
        ["stored (library row: uint32 hash + uint32 frame)", "8 B per hash", f"{per_hour * 8 / 1e6:.1f} MB per hour"],
    ]
    print(table(["what", "rate", "per hour of audio"], rows))


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


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def scale(audio, songs: int, paths: list[str]) -> None:
    print(f"\n== {songs} songs' worth of synthetic hashes (4 min each) + 4 bundled songs; streams at 10 dB room noise")
    print("   from 2 s into 2 stored songs (Vibe Ace, C64: lock time, locked hops) and 2 unknown ones (false hops)")
    real = HALVES[0]
    t0 = time.perf_counter()
    store, rate = synthetic_store(audio, songs, 240.0, real)
    made = time.perf_counter() - t0
    hashes = len(store)
    print(
        f"{hashes / 1e6:.0f}M hashes ({rate:.0f}/s); in memory {store.nbytes / 1e9:.2f} GB "
        f"({store.nbytes / hashes:.1f} B per hash: by video 8 B + by hash 12 B for the non-stop-word postings; "
        f"the pair-only store was 12 B per hash, {hashes * 12 / 1e9:.2f} GB); made in {made:.0f} s; "
        f"peak RSS {peak_rss_gb():.1f} GB",
        flush=True,
    )
    played = [(n, True) for n in real[2:]] + [(n, False) for n in HALVES[1][1:3]]
    signals = {n: degrade.room_noise(audio[n][int(2.0 * AUDIO_RATE) :], 10.0) for n, _ in played}
    rows = []
    for path in paths:
        hop_times, hits, wrong, lock_at = [], 0, 0, []
        for name, stored in played:
            stream, first = StreamMatcher(store, candidates=PATHS[path]), None
            for start in range(0, min(len(signals[name]), 20 * AUDIO_RATE), HOP):
                t0 = time.perf_counter()
                m = stream.push(signals[name][start : start + HOP])
                hop_times.append(time.perf_counter() - t0)
                if m and m.confident:
                    good = stored and m.video < len(real) and same(real[m.video], name)
                    hits += good
                    wrong += not good
                    first = stream.seconds if good and first is None else first
            if stored:
                lock_at.append(f"{first:.1f} s" if first is not None else "none in 20 s")
        h = np.asarray(hop_times) * 1000
        one_shot = Matcher(store, candidates=PATHS[path])
        x, ts = audio["Kevin_MacLeod-Vibe_Ace.ogg"], []
        for start in np.arange(1.0, 50.0, 2.5):
            t0 = time.perf_counter()
            one_shot.identify(x[int(start * AUDIO_RATE) :][: 5 * AUDIO_RATE])
            ts.append(time.perf_counter() - t0)
        rows.append(
            [
                path,
                f"{p(h, 50):.2f} / {p(h, 95):.2f} / {h.max():.2f} ms",
                f"{np.median(ts) * 1000:.1f} ms",
                ", ".join(lock_at),
                f"{hits} of {len(h) // 2}",
                wrong,
            ]
        )
    headers = ["path", "hop cost p50 / p95 / max", "one-shot 5 s p50", "first lock (Vibe Ace, C64)"]
    print(table([*headers, "locked hops, stored songs", "false-lock hops"], rows))
    print(f"peak RSS {peak_rss_gb():.1f} GB")


def load_line() -> str:
    with open("/proc/loadavg") as f:
        return f"load average {' '.join(f.read().split()[:3])} on {os.cpu_count()} cores"


def run(args: argparse.Namespace) -> None:
    """The parts asked for (all by default), each path side by side where it is cheap."""
    print(f"sync bench: {load_line()}")
    run_parts = set(args.only or PARTS)
    both = list(PATHS)
    one_shot_paths = both if args.baseline else ["two-tier"]
    audio = load()
    if "size" in run_parts:
        size(audio)
    if "rate" in run_parts:
        identification(audio, args.quick, one_shot_paths)
    if "false" in run_parts:
        false_locks(audio, args.quick, one_shot_paths)
    if "stream" in run_parts:
        streaming(audio, both)
    if "scale" in run_parts and args.songs:
        scale(audio, args.songs, both)
    for name, part in LIVE_PARTS.items():  # the show's sync: tools/sync_live_bench.py
        if name in run_parts:
            part(args)
    print(f"\nsync bench done: {load_line()}")


PARTS = ("size", "rate", "false", "stream", "scale", *LIVE_PARTS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--songs", type=int, default=10_000, help="songs' worth of synthetic hashes (0: skip)")
    parser.add_argument("--quick", action="store_true", help="fewer conditions and windows")
    parser.add_argument("--baseline", action="store_true", help="one-shot tables on the pair-only path too (slow)")
    parser.add_argument("--only", choices=PARTS, nargs="+", help="run only these parts")
    parser.add_argument("--music", type=Path, help="a folder of more music that is not in the library (false locks)")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(cli)
    run(cli.parse_args())

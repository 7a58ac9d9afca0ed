"""Known-track sync as the show does it (issue 12): `tools/bench.py sync --only live leave drift falselocks`.

- live: Big Buck Bunny's soundtrack, degraded (room noise, EQ tilt, a 128 kb/s mp3 pass, a DJ's pitch fader),
  played with paplay into a real PulseAudio null sink that `livejpp live --input pulse --record` captures.
  Where the song starts in the capture is found by correlating the recording's own audio with what was
  played; then per case: time to lock from the song's start, and per recorded frame the video position
  the show drew against the song's true position (ms), and whether the picture is the film's own frame.
- leave: the time from a mix into music that is not in the library to the show leaving sync, the tracker
  with the window's rules only, with the heard rule (the window's newest voting audio), and today's with the
  verify rule too (the newest audio's landmarks on the lock's line), side by side.
- drift: a 5-minute soundtrack (the bundled songs back to back) played at +4 % through a 10 dB room: the
  lock's position error over the whole song.
- falselocks: locks per hour of music that is not in the library (bundled, and `--music DIR` for more),
  at several speeds and conditions, through the stream matcher and the show's sync tracker.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import degrade  # noqa: E402
from bench import table  # noqa: E402
from pulse_sink import PulseSink  # noqa: E402
from sync_check import FrameCheck, check_frames, song_start  # noqa: E402
from synth import write_audio  # noqa: E402

from livejpp.engine import sync  # noqa: E402
from livejpp.engine.sync import VERIFY_SECONDS, SyncTracker, verify  # noqa: E402
from livejpp.features.audio import level_dbfs  # noqa: E402
from livejpp.fingerprint import MemoryHashStore, StreamMatcher, fingerprint  # noqa: E402
from livejpp.media.decode import AUDIO_RATE, read_audio_file  # noqa: E402

MEDIA = ROOT / "tests" / "media"
FILM = MEDIA / "av" / "big_buck_bunny_0_30.webm"
HOP = AUDIO_RATE // 2
PLAYED = 16.0  # seconds of each live case


def _mp3(x: np.ndarray) -> np.ndarray:
    return degrade.codec_pass(x, "mp3")[: len(x)]


# label, where in the film the DJ starts, pitch fader, what the room does to it
LIVE_CASES = [
    ("+4 %, noise 10 dB", 0.0, 1.04, lambda x: degrade.room_noise(x, 10.0)),
    ("-5 %, EQ -4 dB/oct, mp3", 5.0, 0.95, lambda x: _mp3(degrade.eq_tilt(x, -4.0))),
    ("+5 %, noise 10 dB, mp3", 3.0, 1.05, lambda x: _mp3(degrade.room_noise(x, 10.0))),
    ("1.0, noise 10 dB", 10.0, 1.0, lambda x: degrade.room_noise(x, 10.0)),
    ("1.0, clean", 8.0, 1.0, lambda x: x),
    ("+2 %, noise 5 dB", 2.0, 1.02, lambda x: degrade.room_noise(x, 5.0)),
]


def p(values, q: float) -> float:
    """The q-th percentile, NaN for no values (a table cell, not an error)."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


def live_case(lib: Path, pulse: PulseSink, folder: Path, case) -> dict:
    """One song played into the sink and recorded by the show: lock time, sync errors, picture check."""
    import av
    from waiting import Watched

    label, start, speed, room = case
    song = read_audio_file(FILM)[int(start * AUDIO_RATE) :]
    played = room(degrade.speed(song, speed))[: int(PLAYED * AUDIO_RATE)]
    wav, record, stats_path = folder / "played.flac", folder / "show.mp4", folder / "stats.json"
    write_audio(wav, played[None], AUDIO_RATE, "mono")
    command = [sys.executable, "-m", "livejpp", "live", "--library", str(lib), "--headless", "--size", "320x180"]
    command += ["--osc-port", "0", "--input", "pulse", "--duration", str(PLAYED + 6), "--record", str(record)]
    command += ["--stats", str(stats_path)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    show = Watched(subprocess.Popen(command, env=pulse.env, **pipes))
    show.wait_for("capturing from", timeout=120)  # the capture is open: the whole song is heard
    player = subprocess.Popen(["paplay", str(wav)], env=pulse.env)
    show.communicate(timeout=120)
    player.kill()
    stats = json.loads(stats_path.read_text())
    begin = song_start(record, played)
    first_lock = stats["sync"]["first_lock"]
    out = {"label": label, "lock": None if first_lock is None else first_lock - begin, "check": FrameCheck()}
    out["left"] = [e for e in stats["sync"]["events"] if e[0] == "leave" and e[1] < begin + PLAYED - 0.5]
    cut = next((c for c in stats["cuts"] if c["reason"] == "sync"), None)
    if cut is None:
        return out
    with av.open(str(record)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    times, positions = stats["record"]["frame_show_times"], stats["record"]["sync_positions"]
    since, until = max(first_lock + 1.0, cut["time"] + cut["crossfade"]), begin + PLAYED - 0.5
    out["check"] = check_frames(FILM, 24, times, positions, frames, lambda t: start + (t - begin) * speed, since, until)
    return out


def live(args) -> None:
    from livejpp.library.build import BuildSettings, build_library

    if not (shutil.which("pulseaudio") and shutil.which("paplay")):
        print("\n== live: skipped (needs pulseaudio and paplay: tools/install-system-deps.sh)")
        return
    print("\n== live show in sync: Big Buck Bunny's soundtrack played into a PulseAudio null sink, captured by")
    print(f"   `livejpp live --input pulse --record` ({PLAYED:.0f} s each); positions against the song's own")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        build_library([MEDIA / "av"], folder / "lib", BuildSettings(), jobs=2, progress=False)
        print(f"   library of tests/media/av built in {time.perf_counter() - t0:.0f} s")
        pulse, results = PulseSink(folder / "pulse").start(), []
        try:
            for case in LIVE_CASES:
                results.append(live_case(folder / "lib", pulse, folder, case))
        finally:
            pulse.stop()
    rows, locks, errors = [], [], []
    for r in results:
        c, e = r["check"], np.abs(r["check"].errors_ms)
        locks += [] if r["lock"] is None else [r["lock"]]
        errors += list(e)
        rows.append(
            [
                r["label"],
                "never" if r["lock"] is None else f"{r['lock']:.1f} s",
                f"{p(e, 50):.1f} / {p(e, 95):.1f} / {e.max() if len(e) else float('nan'):.1f}",
                f"{len(e)} ({c.stalled} stalled, {len(c.unsynced)} out of sync)",
                f"{c.closest} of {c.moving}",
                f"{len(c.off)}",
                str(len(r["left"])),
            ]
        )
    e = np.asarray(errors)
    checks = [r["check"] for r in results]
    rows.append(
        [
            "all",
            f"p50 {p(locks, 50):.1f} / p95 {p(locks, 95):.1f} s",
            f"{p(e, 50):.1f} / {p(e, 95):.1f} / {e.max() if len(e) else float('nan'):.1f}",
            str(len(e)),
            f"{sum(c.closest for c in checks)} of {sum(c.moving for c in checks)}",
            str(sum(len(c.off) for c in checks)),
            str(sum(len(r["left"]) for r in results)),
        ]
    )
    headers = ["case", "lock after the song starts", "sync error ms p50 / p95 / max", "frames checked"]
    headers += ["moving frames within 1 film frame", "not the film's picture", "leaves mid-song"]
    print(table(headers, rows))


def store_of(songs: dict[str, np.ndarray]) -> MemoryHashStore:
    """The songs' fingerprints in one store, video id = the song's place in `songs`."""
    store = MemoryHashStore()
    for i, audio in enumerate(songs.values()):
        lm = fingerprint(audio)
        store.add(i, lm.hashes, lm.t)
    return store


def track(store: MemoryHashStore, signal: np.ndarray, on_hop=None) -> list:
    """The show's sync tracker over a stream matcher fed 0.5 s hops: its events (and on_hop(now, lock))."""
    matcher, tracker, events = StreamMatcher(store), SyncTracker("auto"), []
    for start in range(0, len(signal), HOP):
        hop = signal[start : start + HOP]
        match = matcher.push(hop)
        verified = verify(tracker.verifying, matcher.recent(VERIFY_SECONDS), store)  # as Engine.verify
        event = tracker.update(match, matcher.seconds, matcher.seconds, level_db=level_dbfs(hop), verified=verified)
        if event is not None:
            events.append(event)
        if on_hop is not None:
            on_hop(matcher.seconds, tracker.lock)
    return events


def unknown_music(args) -> dict[str, np.ndarray]:
    """Music that is not in the library: the bundled songs without a video, and any under --music."""
    paths = [MEDIA / "music" / n for n in ("Kevin_MacLeod-Vibe_Ace.ogg", "lmms_CapDan-ReggaeTry.ogg")]
    paths += [MEDIA / "music" / "lmms_Skiessi-C64.ogg", *sorted((MEDIA / "beats").glob("*.ogg"))]
    if getattr(args, "music", None):
        paths += sorted(p for p in Path(args.music).rglob("*") if p.suffix in (".ogg", ".flac", ".wav", ".mp3"))
    songs = {}
    for path in paths:
        try:
            songs[path.name] = read_audio_file(path)
        except Exception as exc:  # noqa: BLE001 - a bad file in --music is left out, said once
            print(f"   left out {path}: {exc}")
    return songs


def library_songs() -> dict[str, np.ndarray]:
    return {p.name: read_audio_file(p) for p in sorted((MEDIA / "av").iterdir())}


def leave(args) -> None:
    print("\n== leaving sync: Big Buck Bunny (10 dB room) for 12 s, then a hard mix into a song not in the library;")
    print("   seconds from the mix to the leave event: the window's rules only (DOUBT_SECONDS without a confident")
    print("   hop), + the heard rule (HEARD_DOUBT_SECONDS), + the verify rule (VERIFY_DOUBT_SECONDS: today)")
    library = library_songs()
    store = store_of(library)
    film = library[FILM.name]
    rows = []
    off = {"auto": 1e9}  # a rule off: its doubt never reaches this
    rules = {  # (HEARD_DOUBT_SECONDS, VERIFY_DOUBT_SECONDS)
        "window only": (off, off),
        "+ last heard": (sync.HEARD_DOUBT_SECONDS, off),
        "+ verified (today)": (sync.HEARD_DOUBT_SECONDS, sync.VERIFY_DOUBT_SECONDS),
    }
    results: dict[str, list[float]] = {label: [] for label in rules}
    early = dict.fromkeys(rules, 0)  # leaves before the mix: the lock let go of the film while it played
    for name, song in unknown_music(args).items():
        signal = np.concatenate([film[: 12 * AUDIO_RATE], song[5 * AUDIO_RATE : 25 * AUDIO_RATE]])
        signal = degrade.room_noise(signal, 10.0)
        cells = [name]
        for label, (heard, verified) in rules.items():
            saved = sync.HEARD_DOUBT_SECONDS, sync.VERIFY_DOUBT_SECONDS
            sync.HEARD_DOUBT_SECONDS, sync.VERIFY_DOUBT_SECONDS = heard, verified
            try:
                events = track(store, signal)
            finally:
                sync.HEARD_DOUBT_SECONDS, sync.VERIFY_DOUBT_SECONDS = saved
            gone = next((e.at for e in events if e.kind == "leave" and e.at > 12.0), None)
            later_locks = sum(e.kind == "enter" and e.at > 12.0 for e in events)
            early[label] += sum(e.kind == "leave" and e.at <= 12.0 for e in events)
            results[label].append(np.nan if gone is None else gone - 12.0)
            locked_again = f", {later_locks} locks" if later_locks else ""
            cells.append(("never" if gone is None else f"{gone - 12.0:.1f} s") + locked_again)
        rows.append(cells)
    rows.append(["p50 / max", *(f"{np.nanmedian(v):.1f} / {np.nanmax(v):.1f} s" for v in results.values())])
    rows.append(["leaves before the mix (the film playing)", *(str(n) for n in early.values())])
    print(table(["mixed into", *results], rows))


def drift(args) -> None:
    print("\n== drift: a 5-minute soundtrack (the bundled songs back to back) at +4 % through a 10 dB room")
    parts = [read_audio_file(MEDIA / "music" / n) for n in ("Kevin_MacLeod-Vibe_Ace.ogg", "lmms_Skiessi-C64.ogg")]
    parts += [read_audio_file(p) for p in sorted((MEDIA / "beats").glob("*.ogg"))]
    parts += [read_audio_file(MEDIA / "music" / n) for n in ("lmms_CapDan-ReggaeTry.ogg", "sintel_trailer_audio.ogg")]
    parts += [read_audio_file(FILM), read_audio_file(MEDIA / "footage" / "earth.mp4")]  # 312 s: song edges at
    # 61, 95, 125, 155, 199, 251 and 281 s; some end or start in near silence (C64's tail, the trailer's fade-in)
    long = np.concatenate(parts)[: 300 * AUDIO_RATE]
    store = store_of({"set": long})  # alone: the film in it is also a library video (the song-twice case)
    speed = 1.04
    signal = degrade.room_noise(degrade.speed(long, speed), 10.0)
    errors: list[tuple[float, float]] = []
    rates: list[float] = []

    def follow(now: float, lock) -> None:
        if lock is not None and lock.video == 0:
            errors.append((now, (lock.position_at(now) - now * speed) * 1000))
            rates.append(lock.rate)

    events = track(store, signal, follow)
    t, e = np.array(errors).T if errors else (np.zeros(0), np.zeros(0))
    rows = []
    for a, b in ((0, 60), (60, 120), (120, 180), (180, 240), (240, 300)):
        part = np.abs(e[(t * speed >= a) & (t * speed < b)])
        rows.append([f"{a}-{b} s of the song", f"{p(part, 50):.1f} / {p(part, 95):.1f} / {part.max():.1f}"])
    kinds = [(ev.kind, round(ev.at * speed, 1)) for ev in events]  # at song seconds
    print(table(["part", "lock position error ms p50 / p95 / max"], rows))
    locked = len(t) * HOP / AUDIO_RATE
    print(f"   events {kinds}; locked {locked:.0f} of {len(signal) / AUDIO_RATE:.0f} s; final rate ", end="")
    print(f"{rates[-1] if rates else float('nan'):.4f} (true {speed})")


FALSE_CONDITIONS = {
    "clean": (1.0, lambda x: x),
    "noise 10 dB": (1.0, lambda x: degrade.room_noise(x, 10.0)),
    "mp3": (1.0, _mp3),
    "-8 %": (0.92, lambda x: x),
    "-4 %": (0.96, lambda x: x),
    "+4 %": (1.04, lambda x: x),
    "+8 %": (1.08, lambda x: x),
    "+4 %, noise, mp3": (1.04, lambda x: _mp3(degrade.room_noise(x, 10.0))),
}


def false_locks(args) -> None:
    print("\n== false locks: music not in the library (the bundled songs without a video, and --music), streamed")
    print("   through the stream matcher and the show's sync tracker against the library's soundtracks")
    store, songs = store_of(library_songs()), unknown_music(args)
    rows, total_hours, total_locks = [], 0.0, 0
    for label, (factor, room) in FALSE_CONDITIONS.items():
        hours, locks = 0.0, 0
        for song in songs.values():
            signal = room(degrade.speed(song, factor))
            hours += len(signal) / AUDIO_RATE / 3600
            locks += sum(e.kind == "enter" for e in track(store, signal))
        rows.append([label, f"{hours:.2f} h", str(locks)])
        total_hours, total_locks = total_hours + hours, total_locks + locks
    rows.append(["all", f"{total_hours:.2f} h", f"{total_locks} ({total_locks / total_hours:.1f} per hour)"])
    print(f"   {len(songs)} songs")
    print(table(["condition", "music", "locks"], rows))


LIVE_PARTS = {"live": live, "leave": leave, "drift": drift, "falselocks": false_locks}

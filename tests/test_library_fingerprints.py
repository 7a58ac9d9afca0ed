"""Fingerprints in the library (issue 12): a build stores every music video's soundtrack fingerprint in
one transaction per video, resumably; an old library gains them without its clips being made again."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from livejpp.fingerprint.landmarks import FINGERPRINT_VERSION
from livejpp.library.build import build_library
from livejpp.library.fingerprinting import SILENT
from livejpp.library.store import LibraryStore
from livejpp.library.worker import BuildSettings

MEDIA = Path(__file__).parent / "media"
WITH_MUSIC = {"big_buck_bunny_0_30.webm", "bigbuckbunny_5s.mp4", "sintel_clip.mp4"}
SILENT_SOUNDTRACK = {"earth.mp4", "mdn_flower.mp4"}  # an audio stream of silence: clips marked 'silent'


def cli(*args, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    cmd = [*prefix, sys.executable, "-m", "livejpp", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def rows(lib: Path) -> dict[str, tuple]:
    """Fingerprint rows by video file name: (version, count, hashes, frames, note)."""
    with sqlite3.connect(lib / "library.sqlite") as db:
        found = db.execute(
            "SELECT v.path, f.version, f.count, f.hashes, f.frames, f.note FROM fingerprints f "
            "JOIN videos v ON v.id = f.video_id"
        ).fetchall()
    return {Path(r[0]).name: r[1:] for r in found}


def clip_files(lib: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (lib / "clips").rglob("*") if p.is_file()}


def old_library(real_library, tmp_path) -> Path:
    """The real library as a livejpp from before fingerprints made it: no fingerprints table."""
    lib = tmp_path / "old"
    shutil.copytree(real_library[0], lib)
    with sqlite3.connect(lib / "library.sqlite") as db:
        db.execute("DROP TABLE fingerprints")
    return lib


def test_a_build_fingerprints_every_video_with_music(real_library):
    lib, report = real_library
    found = rows(lib)
    assert {name for name, r in found.items() if r[1] > 0} == WITH_MUSIC
    assert all(r[0] == FINGERPRINT_VERSION for r in found.values())
    for name in WITH_MUSIC:  # raw little-endian uint32 blobs, ~90 hashes a second, frames in order
        version, count, hashes, frames, note = found[name]
        assert len(hashes) == len(frames) == 4 * count and note is None
        assert np.all(np.diff(np.frombuffer(frames, "<u4").astype(np.int64)) >= 0)
    assert {name: (r[1], r[4]) for name, r in found.items() if r[1] == 0} == {n: (0, SILENT) for n in SILENT_SOUNDTRACK}
    assert report.fingerprinted == 3
    with LibraryStore(lib, readonly=True) as store:
        loaded = store.load_fingerprints()
        names = {vid: Path(p).name for vid, p in store.db.execute("SELECT id, path FROM videos")}
    stored = np.concatenate([np.frombuffer(found[name][2], "<u4") for name in WITH_MUSIC])
    assert {names[v] for v in np.unique(loaded.lookup(stored).video)} == WITH_MUSIC
    info = cli("library", "info", lib)
    assert info.returncode == 0
    assert "sync     fingerprinted 3 of 8 videos (2 silent soundtracks; 3 without audio)" in info.stdout


def test_an_old_library_is_read_as_having_none_and_gains_them_without_new_clips(real_library, tmp_path):
    lib = old_library(real_library, tmp_path)
    for p in [lib, *lib.rglob("*")]:  # a write-protected old library: read, never written
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        prefix = ()
        if os.geteuid() == 0 and shutil.which("setpriv"):  # root writes anyway: take the right away
            caps = "-dac_override,-dac_read_search,-fowner"
            prefix = ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")
        info = cli("library", "info", lib, prefix=prefix)
        assert info.returncode == 0 and "Traceback" not in info.stderr, info.stderr
        assert "fingerprinted 0 of 8 videos (3 without audio; 5 not yet: `library add`" in info.stdout
        with LibraryStore(lib, readonly=True) as store:
            assert store.load_fingerprints() is None and store.fingerprinted_video_ids() == set()
    finally:
        for p in [lib, *lib.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    clips_before = clip_files(lib)
    added = cli("library", "add", lib, MEDIA / "av", MEDIA / "footage", "-q")
    assert added.returncode == 0, added.stderr
    assert clip_files(lib) == clips_before  # not one clip made again
    assert rows(lib) == rows(real_library[0])  # the fingerprints a new build makes
    assert "fingerprinted 3 of 8 videos" in cli("library", "info", lib).stdout


def test_a_killed_fingerprinting_resumes_without_redoing_finished_videos(real_library, tmp_path):
    lib = old_library(real_library, tmp_path)
    with sqlite3.connect(lib / "library.sqlite") as db:
        first_log = db.execute("SELECT MAX(id) FROM build_log").fetchone()[0]
    cmd = [sys.executable, "-m", "livejpp", "library", "add", str(lib), str(MEDIA / "av"), str(MEDIA / "footage")]

    def done() -> int:
        try:
            with sqlite3.connect(f"file:{lib / 'library.sqlite'}?mode=ro", uri=True, timeout=5) as db:
                return db.execute("SELECT COUNT(*) FROM fingerprints").fetchone()[0]
        except sqlite3.Error:  # the table is not there yet
            return 0

    kills = 0
    for _ in range(10):
        before = done()
        proc = subprocess.Popen([*cmd, "-j", "2", "-q"], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while proc.poll() is None and done() <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)  # a real kill, mid-build: after a row, maybe mid-soundtrack
        proc.wait()
        kills += 1
    assert proc.returncode == 0, proc.stderr.read()
    assert kills >= 1
    with sqlite3.connect(lib / "library.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        logged = db.execute(
            "SELECT path FROM build_log WHERE id > ? AND message LIKE 'fingerprint:%'", (first_log,)
        ).fetchall()
    assert rows(lib) == rows(real_library[0])
    assert sorted(Path(p).name for (p,) in logged) == sorted(WITH_MUSIC | SILENT_SOUNDTRACK)  # each once


def test_a_song_in_the_library_twice_is_said_once(tmp_path, caplog):
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(MEDIA / "av" / "sintel_clip.mp4", folder / "sintel_clip.mp4")
    copy = folder / "sintel_clip_copy.mp4"  # another file (another content hash), the same soundtrack
    copy.write_bytes((MEDIA / "av" / "sintel_clip.mp4").read_bytes() + b"\0")
    with caplog.at_level(logging.INFO, logger="livejpp"):
        report = build_library([folder], tmp_path / "lib", BuildSettings(), jobs=1, progress=False)
    assert report.fingerprinted == 2
    assert [(Path(a).name, Path(b).name) for a, b in report.same_soundtrack] == [
        ("sintel_clip.mp4", "sintel_clip_copy.mp4")
    ]
    lines = [r.getMessage() for r in caplog.records if "same soundtrack" in r.getMessage()]
    assert lines == [f"{folder / 'sintel_clip.mp4'}: same soundtrack as sintel_clip_copy.mp4 (sync will pick one)"]


def test_a_damaged_fingerprint_row_is_left_out_with_one_line(real_library, tmp_path, caplog):
    lib = tmp_path / "lib"
    shutil.copytree(real_library[0], lib)
    with sqlite3.connect(lib / "library.sqlite") as db:
        db.execute(
            "UPDATE fingerprints SET hashes = x'0102' WHERE video_id = "
            "(SELECT id FROM videos WHERE path LIKE '%sintel_clip.mp4')"
        )
    with caplog.at_level(logging.WARNING, logger="livejpp"), LibraryStore(lib, readonly=True) as store:
        loaded = store.load_fingerprints()
        sintel = store.db.execute("SELECT id FROM videos WHERE path LIKE '%sintel_clip.mp4'").fetchone()[0]
    sintel_hashes = np.frombuffer(rows(real_library[0])["sintel_clip.mp4"][2], "<u4")
    bunny_hashes = np.frombuffer(rows(real_library[0])["big_buck_bunny_0_30.webm"][2], "<u4")
    assert sintel not in set(loaded.lookup(sintel_hashes).video.tolist())
    assert len(loaded.lookup(bunny_hashes).video) >= len(bunny_hashes)  # the other videos are all there
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(f"{lib}: {MEDIA.resolve() / 'av' / 'sintel_clip.mp4'}: ")
    assert lines[0].endswith("fingerprint row is not 888 hashes and frames: left out".split("888")[1])


def test_a_new_video_s_soundtrack_is_decoded_once_for_features_and_fingerprint(tmp_path, monkeypatch):
    """The clips' audio features and the fingerprint read the same soundtrack: a new video's own job makes both
    from one decode (each decode of a soundtrack took ~3 % of a build's CPU), and the fingerprint is the very one
    its own job makes (as for a resumed video or an old library)."""
    from livejpp.library.fingerprinting import FingerprintJob, fingerprint_video
    from livejpp.media.decode import AudioReader, probe

    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("av/big_buck_bunny_0_30.webm", "av/sintel_clip.mp4"):  # 30 s: a block ends where it does
        shutil.copy(MEDIA / name, folder)
    opened: list[str] = []
    init = AudioReader.__init__

    def counted(self, path, *args, **kwargs):
        opened.append(Path(path).name)
        init(self, path, *args, **kwargs)

    monkeypatch.setattr(AudioReader, "__init__", counted)
    lib = tmp_path / "lib"
    report = build_library([folder], lib, BuildSettings(), jobs=1, progress=False)
    assert report.fingerprinted == 2
    assert sorted(opened) == ["big_buck_bunny_0_30.webm", "sintel_clip.mp4"]  # once each
    with LibraryStore(lib, readonly=True) as store:
        videos = store.db.execute("SELECT id, path, duration FROM videos").fetchall()
    found = rows(lib)
    for video_id, path, duration in videos:
        info = probe(path)
        alone = fingerprint_video(FingerprintJob("key", video_id, path, info.start, duration)).landmarks
        count, hashes, frames = found[Path(path).name][1:4]
        stored = sorted(zip(np.frombuffer(frames, "<u4").tolist(), np.frombuffer(hashes, "<u4").tolist(), strict=True))
        assert count == len(alone.hashes) > 0
        assert stored == sorted(zip(np.rint(alone.t).astype(int).tolist(), alone.hashes.tolist(), strict=True))

"""Damaged, tampered and write-protected libraries: reading commands work, each bad clip is named in
one line and skipped, a damaged manifest is one line that says how to recover, and no path from a
library is ever opened outside its folder or as a URL."""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from livejpp import index as clip_index
from livejpp.engine.engine import Engine
from livejpp.library.store import LibraryStore, UnsafePath
from livejpp.model.data import load_library

SONG = Path(__file__).parent / "media" / "music" / "loop_amen.flac"


def cli(*args, prefix=(), **kwargs):
    return subprocess.run(
        [*prefix, sys.executable, "-m", "livejpp", *map(str, args)], capture_output=True, text=True, **kwargs
    )


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr, result.stderr


@pytest.fixture
def lib(real_library, tmp_path) -> Path:
    """A private copy of the shared library (without its index): this test may damage it."""
    copy = tmp_path / "lib"
    shutil.copytree(real_library[0], copy, ignore=shutil.ignore_patterns("index", ".lock"))
    # the shared library's write-ahead log, copied while another test still reads it, folded into the copy: a
    # snapshot must not see SQLite remove it when the next command closes the copy (test_info_only_reads)
    db = sqlite3.connect(copy / "library.sqlite")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return copy


def sql(lib: Path, statement: str, *params) -> list:
    with sqlite3.connect(lib / "library.sqlite") as db:
        rows = db.execute(statement, params).fetchall()
    db.close()
    return rows


def uid(lib: Path, clip_id: int) -> str:
    (video_hash, index), *_ = sql(
        lib, "SELECT v.content_hash, c.idx FROM clips c JOIN videos v ON v.id = c.video_id WHERE c.id = ?", clip_id
    )
    return f"{video_hash[:12]}-{index:04d}"


def without_write_rights() -> tuple[str, ...]:
    """Root writes anywhere: drop the capabilities that let it (as test_bad_input does for reading)."""
    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to take writing rights from root")
    caps = "-dac_override,-dac_read_search,-fowner"
    return ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. read-only ----------------------------------------------------------------------------------
def test_a_write_protected_library_can_be_read(lib, tmp_path):
    for p in [lib, *lib.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    before = snapshot(lib)
    try:
        prefix = without_write_rights()
        info = cli("library", "info", lib, prefix=prefix)
        no_traceback(info)
        assert info.returncode == 0 and "clips    14" in info.stdout
        query = cli("query", SONG, "--library", lib, "--sheet", tmp_path / "sheet.png", prefix=prefix)
        no_traceback(query)
        assert query.returncode == 0, query.stderr
        assert "cannot save the index" in query.stderr and "using it from memory" in query.stderr
        assert (tmp_path / "sheet.png").is_file()
        assert snapshot(lib) == before  # nothing written, nothing added
        embed = cli("library", "embed", lib, prefix=prefix)  # a command that must write says so in one line
        assert embed.returncode == 1
        assert embed.stderr.strip().count("\n") == 0 and "cannot write the index" in embed.stderr
    finally:
        for p in [lib, *lib.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


def test_info_only_reads(lib):
    """`library info` while a build holds the write lock: it used to queue for the lock (30 s) itself."""
    before = snapshot(lib)
    writer = sqlite3.connect(lib / "library.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        result = cli("library", "info", lib, "--log", "5", timeout=20)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    no_traceback(result)
    assert result.returncode == 0 and "clips    14" in result.stdout
    assert snapshot(lib) == before


def test_output_into_a_closed_pipe_is_quiet(lib):
    """`library info LIB | head -1`: the reader went away; no BrokenPipeError for the user to read."""
    child = subprocess.Popen(
        [sys.executable, "-m", "livejpp", "library", "info", str(lib), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child.stdout.close()  # before the child writes a byte: its first write meets a closed pipe
    stderr = child.stderr.read()
    assert child.wait(timeout=60) == 1
    assert stderr == ""


# --- 2. a damaged index ----------------------------------------------------------------------------
def test_a_damaged_index_file_is_rebuilt(lib):
    meta, _ = clip_index.embed_library(lib, "default")
    data = lib / "index" / "default.hnsw"
    size = data.stat().st_size
    data.write_bytes(np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes())
    engine = Engine(lib)
    assert engine.index.meta["count"] == meta["count"] == 14
    labels, distances = engine.index.query(np.zeros((1, meta["dim"]), np.float32) + 0.5, k=3)
    assert set(labels[0]) <= set(engine.records) and np.isfinite(distances).all()
    loaded = clip_index.load(lib, "default")  # the rebuilt file was saved and reads back
    assert loaded.index.get_current_count() == 14


# --- 3. a bad row, a damaged manifest --------------------------------------------------------------
def test_a_feature_row_of_the_wrong_length_is_named_and_skipped(lib):
    clip_id = sql(lib, "SELECT MIN(clip_id) FROM features")[0][0]
    sql(lib, "UPDATE features SET data = substr(data, 1, 10) WHERE clip_id = ?", clip_id)
    result = cli("library", "embed", lib)
    no_traceback(result)
    assert result.returncode == 0
    assert "index built: 13 clips" in result.stdout
    assert f"clip {uid(lib, clip_id)}: hand_visual features are 10 bytes" in result.stderr
    info = cli("library", "info", lib)
    assert info.returncode == 0, info.stderr


def damage_pages(manifest: Path) -> None:
    """Garbage over every page but the first (the schema): the tables themselves are gone."""
    with sqlite3.connect(manifest) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    size = manifest.stat().st_size
    with open(manifest, "r+b") as f:
        f.seek(page)
        f.write(np.random.default_rng(1).integers(0, 256, size - page, np.uint8).tobytes())


@pytest.mark.parametrize("command", [("library", "info"), ("library", "embed"), ("library", "add")])
def test_a_malformed_manifest_is_one_line_that_says_how_to_recover(lib, command, media):
    damage_pages(lib / "library.sqlite")
    extra = [media / "footage" / "mdn_bug.mp4"] if command[-1] == "add" else []
    result = cli(*command, lib, *extra)
    no_traceback(result)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "the manifest is damaged" in lines[0] and "rebuild the library from the same sources" in lines[0]


# --- 4. NaN and infinite features ------------------------------------------------------------------
def test_nan_features_never_reach_an_index_or_a_model(lib):
    music = [r[0] for r in sql(lib, "SELECT id FROM clips WHERE audio = 'ok' ORDER BY id")]
    nan_clip, inf_clip = music[0], music[1]
    for clip_id, value in ((nan_clip, np.nan), (inf_clip, np.inf)):
        for name in ("hand_audio", "hand_visual"):
            (seconds, blob), *_ = sql(
                lib, "SELECT seconds, data FROM features WHERE clip_id = ? AND feature_set = ?", clip_id, name
            )
            x = np.frombuffer(blob, np.float32).copy()
            x[::3] = value
            sql(lib, "UPDATE features SET data = ? WHERE clip_id = ? AND feature_set = ?", x.tobytes(), clip_id, name)
    embed = cli("library", "embed", lib)
    no_traceback(embed)
    assert "index built: 12 clips" in embed.stdout
    for clip_id in (nan_clip, inf_clip):
        assert f"clip {uid(lib, clip_id)}: hand_visual features have NaN or infinite values" in embed.stderr
    index = clip_index.load(lib, "default")
    labels, distances = index.query(np.ones((1, index.meta["dim"]), np.float32), k=12)
    assert np.isfinite(distances).all() and not {nan_clip, inf_clip} & set(labels[0].tolist())
    pairs = load_library(lib)  # what train and eval are given
    assert len(pairs) == len(music) - 2 and np.isfinite(pairs.audio).all() and np.isfinite(pairs.visual).all()
    with LibraryStore(lib) as store:
        store.update_normalisation()
        mean, std = store.normalisation("hand_visual")
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    result = cli("eval", "default", lib, "--out", lib.parent / "eval")
    no_traceback(result)
    assert result.returncode == 0 and f"clip {uid(lib, nan_clip)}" in result.stderr


# --- 5. paths from the manifest --------------------------------------------------------------------
def test_clip_paths_outside_the_library_or_urls_are_refused(lib, tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.mp4"
    ids = [r[0] for r in sql(lib, "SELECT id FROM clips ORDER BY id")]
    outside = tmp_path / "outside.mp4"
    shutil.copy(lib / sql(lib, "SELECT playback FROM clips WHERE id = ?", ids[3])[0][0], outside)
    sql(lib, "UPDATE clips SET playback = '/etc/passwd' WHERE id = ?", ids[0])
    sql(lib, "UPDATE clips SET playback = '../outside.mp4' WHERE id = ?", ids[1])
    sql(lib, "UPDATE clips SET playback = ? WHERE id = ?", url, ids[2])
    video = sql(lib, "SELECT video_id FROM clips WHERE id = ?", ids[13])[0][0]
    sql(lib, "UPDATE videos SET path = ? WHERE id = ?", url, video)  # a source-played clip: a URL
    sql(lib, "UPDATE clips SET playback = NULL WHERE id = ?", ids[13])
    refused = [ids[0], ids[1], ids[2], ids[13]]
    with LibraryStore(lib, readonly=True) as store:
        records = {c.id: c for c in store.all_clips()}
    for clip_id in refused:
        with pytest.raises(UnsafePath, match=f"clip {records[clip_id].uid}: .*refused"):
            records[clip_id].pictures(lib)
    query = cli("query", SONG, "--library", lib, "-k", "14", "--sheet", tmp_path / "sheet.png")
    no_traceback(query)
    assert query.returncode == 0, query.stderr
    for clip_id in refused:
        assert f"clip {records[clip_id].uid}: " in query.stderr
        assert records[clip_id].uid not in query.stdout
    engine = Engine(lib)
    assert set(engine.records) == set(ids) - set(refused)
    labels, _ = engine.index.query(np.ones((1, engine.index.meta["dim"]), np.float32), k=14)
    assert set(labels[0].tolist()) == set(ids) - set(refused)  # never handed out, though in the index
    with pytest.raises(TimeoutError):  # nothing ever fetched the URL
        listener.accept()
    listener.close()
    check = cli("library", "info", lib, "--check")
    assert check.returncode == 1
    assert "4 of 14 clips cannot play" in check.stdout
    assert "/etc/passwd" in check.stdout and "is outside the library: refused" in check.stdout


# --- 6, 7. checking clip files, repairing them -----------------------------------------------------
def test_info_check_names_missing_and_broken_clip_files_and_build_makes_them_again(lib, media):
    (first, first_file), (second, second_file), *_ = sql(lib, "SELECT id, playback FROM clips ORDER BY id")
    (lib / first_file).unlink()
    (lib / second_file).write_bytes(b"\0" * 4096)
    result = cli("library", "info", lib, "--check")
    no_traceback(result)
    assert result.returncode == 1
    assert "2 of 14 clips cannot play" in result.stdout
    assert f"{uid(lib, first)}  {(lib / first_file).resolve()}: missing" in result.stdout
    assert f"{uid(lib, second)}  {(lib / second_file).resolve()}: " in result.stdout
    (lib / second_file).unlink()  # a broken file removed by hand: build makes both again
    build = cli("library", "build", media / "av", media / "footage", "--out", lib, "-q", "-j", "1")
    no_traceback(build)
    assert build.returncode == 0, build.stderr
    assert "clip files missing from the library: making them again" in build.stderr
    assert sql(lib, "SELECT COUNT(*) FROM clips")[0][0] == 14
    again = cli("library", "info", lib, "--check")
    assert again.returncode == 0, again.stdout
    assert "all 14 clip files play" in again.stdout


def test_a_terminated_build_leaves_its_clips_in_the_manifest_itself(tmp_path, small_footage):
    out = tmp_path / "lib"
    build = subprocess.Popen(
        [sys.executable, "-m", "livejpp", "library", "build", str(small_footage), "--out", str(out), "-q", "-j", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    clips = 0
    while clips == 0 and time.monotonic() < deadline:  # the first committed clip is the readiness signal
        try:
            with sqlite3.connect(f"file:{out / 'library.sqlite'}?mode=ro", uri=True) as db:
                clips = db.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
            db.close()
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    assert clips > 0, "no clip committed within 60 s"
    build.send_signal(signal.SIGTERM)
    _, stderr = build.communicate(timeout=60)
    assert "Traceback" not in stderr
    assert build.returncode == 128 + signal.SIGTERM, stderr
    alone = tmp_path / "alone.sqlite"
    shutil.copy(out / "library.sqlite", alone)  # the manifest copied without its WAL has every clip
    with sqlite3.connect(alone) as db:
        assert db.execute("SELECT COUNT(*) FROM clips").fetchone()[0] >= clips
    db.close()


def test_an_extractor_that_returns_nan_is_repaired_at_the_build(tmp_path, media, monkeypatch, caplog):
    """The build boundary. No real extractor is known to return NaN (they guard their divisions), so
    this one fault is made by wrapping the real audio extractor."""
    from livejpp.library import worker
    from livejpp.library.build import build_library

    real = worker.audio_features

    def with_nan(samples):
        rows = real(samples).copy()
        rows[0, :5] = np.nan
        rows[1, 0] = np.inf
        return rows

    monkeypatch.setattr(worker, "audio_features", with_nan)
    source = media / "av" / "bigbuckbunny_5s.mp4"
    build_library([source], tmp_path / "lib", jobs=1, progress=False)
    assert f"{source.resolve()} clip 0 (hand_audio): 6 NaN or infinite feature values set to 0" in caplog.text
    with LibraryStore(tmp_path / "lib", readonly=True) as store:
        audio = store.features("hand_audio")
        assert len(audio) == 1 and all(np.isfinite(x).all() for x in audio.values())
        assert np.isfinite(store.normalisation("hand_audio")[0]).all()

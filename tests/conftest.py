"""Shared fixtures: the project's real media, generated edge cases, and one real library."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from livejpp.library.build import build_library
from livejpp.library.worker import BuildSettings

MEDIA = Path(__file__).parent / "media"


@pytest.fixture(scope="session")
def media() -> Path:
    return MEDIA


@pytest.fixture(scope="session")
def real_library(tmp_path_factory) -> tuple[Path, object]:
    """The real footage (with and without soundtracks) built once, two jobs, default settings."""
    lib = tmp_path_factory.mktemp("real") / "lib"
    report = build_library([MEDIA / "av", MEDIA / "footage"], lib, BuildSettings(), jobs=2, progress=False)
    return lib, report


@pytest.fixture
def small_footage(tmp_path) -> Path:
    """A folder of three real videos, copied so a test may rename, add or break files."""
    folder = tmp_path / "footage"
    folder.mkdir()
    for name in ("av/big_buck_bunny_0_30.webm", "footage/tree.avi", "footage/earth.mp4"):
        shutil.copy(MEDIA / name, folder / Path(name).name)
    return folder

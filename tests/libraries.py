"""Picking a folder's videos out of a larger library: a test that built those videos again compares with the
session's real library (default settings, two jobs) instead of building them a second time to compare with."""

from __future__ import annotations

from pathlib import Path

from livejpp.library.build import content_hash


def content_hashes(folder: Path) -> set[str]:
    """The content hashes of the videos in `folder` (how a library names its videos, whatever their path)."""
    return {content_hash(path) for path in folder.iterdir() if path.is_file()}

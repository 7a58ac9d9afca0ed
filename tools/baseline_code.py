"""The code of another commit, exported beside this tree, so a benchmark runs today's path and the new one
side by side in one run (`--baseline REV`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export(rev: str, into: Path) -> Path:
    """`git archive REV` unpacked into `into` (created); run it with PYTHONPATH and cwd set to it."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if commit.returncode:
        raise SystemExit(f"--baseline {rev}: not a commit of this repository")
    into.mkdir(parents=True)
    tree = subprocess.run(["git", "-C", str(ROOT), "archive", commit.stdout.strip()], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=tree.stdout, check=True)
    return into

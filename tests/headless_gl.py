"""A GL script run in its own process on headless EGL (no DISPLAY): the way the GL tests draw and read back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_gl_script(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `code` with `args`; a missing EGL fails with one line that says so, any other failure with its stderr."""
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=timeout)
    if run.returncode != 0 and "EGL" in run.stderr and "libEGL" in run.stderr:
        pytest.fail(f"headless OpenGL (EGL) is missing: {run.stderr.splitlines()[-1]}")
    assert run.returncode == 0, run.stderr
    return run

"""A PulseAudio null sink whose monitor is the default capture device (tools/fake-audio.sh): the real
sound server the live tests and the sync bench play music into, on a machine without a sound card."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "fake-audio.sh"


class PulseSink:
    """The sink's environment (`env`, for the show and `paplay`) in `folder`; `start()` brings the server up
    (again, after `pactl exit` took it away), `stop()` ends it."""

    def __init__(self, folder: str | os.PathLike):
        if not shutil.which("pulseaudio"):
            raise RuntimeError("pulseaudio is not installed (tools/install-system-deps.sh installs it)")
        folder = str(folder)
        self.env = {**os.environ, "FAKE_AUDIO_DIR": folder, "XDG_RUNTIME_DIR": folder}
        self.env["PULSE_RUNTIME_PATH"] = f"{folder}/pulse"
        self.env.pop("PULSE_SERVER", None)  # this sink, not a server the caller's environment names

    def _script(self, what: str, check: bool) -> None:
        subprocess.run(["bash", "-c", f"source {SCRIPT} {what}"], env=self.env, check=check, timeout=60)

    def start(self) -> PulseSink:
        self._script("start", check=True)
        return self

    def stop(self) -> None:
        self._script("stop", check=False)

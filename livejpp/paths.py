"""Where shipped files live: the default model, the pretrained extractors, shaders and presets.

The repository keeps them in top-level folders (models/, shaders/, presets/); a wheel carries them
inside the package as livejpp/assets/ (pyproject.toml maps the folders there at build time), so an
installed tool finds them from any folder. A checkout or an editable install has no assets/ in the
package and reads the top-level folders beside it. $LIVEJPP_MODELS points at another models folder.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def shipped(name: str) -> Path:
    """The shipped folder `name` (models, shaders, presets): the installed package's copy, else the checkout's."""
    packaged = Path(str(files("livejpp") / "assets" / name))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name


MODELS_ROOT = Path(os.environ.get("LIVEJPP_MODELS") or shipped("models"))
SHADERS = shipped("shaders")
PRESETS = shipped("presets")

"""Where shipped files live: models/ beside the package (a checkout) or $LIVEJPP_MODELS."""

import os
from pathlib import Path

MODELS_ROOT = Path(os.environ.get("LIVEJPP_MODELS", Path(__file__).resolve().parent.parent / "models"))

"""What runs on stage never pays for TensorFlow (2 s and ~500 MB at import)."""

import subprocess
import sys


def test_library_and_cli_do_not_import_tensorflow():
    code = (
        "import sys, livejpp.cli, livejpp.library.build, livejpp.library.worker, livejpp.features.sets,"
        " livejpp.index, livejpp.model.embed, livejpp.model.evaluate, livejpp.model.card,"
        " livejpp.engine.engine, livejpp.engine.music_video, livejpp.query;"
        "livejpp.cli.build_parser();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

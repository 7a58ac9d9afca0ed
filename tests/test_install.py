"""livejpp installed as a wheel works from any folder: its model, extractors, shaders and presets come with it.

The wheel is built from this checkout, installed into a fresh folder and run from outside the checkout,
as `pip install .` or `pipx install .` would leave it. An editable install must find the same files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "livejpp", "models", "shaders", "presets")
TEXT = {"capture_output": True, "text": True, "check": True}
SHOW_FILES = (
    "from livejpp.paths import MODELS_ROOT, SHADERS, PRESETS; from livejpp.control.mapping import Presets; "
    "print(MODELS_ROOT / 'default' / 'card.json'); print(SHADERS / 'crossfade.frag'); print(Presets().find('chill'))"
)


def pip(*args, cwd, python=sys.executable):
    subprocess.run([python, "-m", "pip", *args, "-q", "--no-deps", "--no-build-isolation"], cwd=cwd, check=True)


def outside_env(**extra) -> dict:
    """The environment without this checkout on the path or another models folder."""
    return {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LIVEJPP_MODELS")}, **extra}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A copy of the checkout's package sources: building writes build/ and *.egg-info beside them."""
    src = tmp_path_factory.mktemp("install") / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    return src


@pytest.fixture(scope="module")
def wheel(sources) -> Path:
    pip("wheel", ".", "--wheel-dir", str(sources.parent / "dist"), cwd=sources)
    return next((sources.parent / "dist").glob("livejpp-*.whl"))


def run(*args, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    """A command with only `site` (and the venv's dependencies) to import livejpp from."""
    done = subprocess.run(args, cwd=cwd, env=outside_env(PYTHONPATH=str(site)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_the_wheel_holds_every_package_and_shipped_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "livejpp").rglob("__init__.py")}
    assert {p for p in packages if f"{p}/__init__.py" not in names} == set()
    for folder in ("models", "shaders", "presets"):
        shipped = {p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file()}
        assert {f for f in shipped if f"livejpp/assets/{folder}/{f}" not in names} == set()


def test_an_installed_wheel_builds_embeds_and_renders_from_any_folder(wheel, tmp_path, media):
    site = tmp_path / "site"
    pip("install", "--target", str(site), str(wheel), cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    livejpp = str(site / "bin" / "livejpp")
    where = run(sys.executable, "-c", "import livejpp; print(livejpp.__file__)", site=site, cwd=work).stdout
    assert Path(where.strip()).is_relative_to(site)
    for path in run(sys.executable, "-c", SHOW_FILES, site=site, cwd=work).stdout.split():
        assert Path(path).is_relative_to(site / "livejpp" / "assets") and Path(path).is_file()

    video, song = media / "av" / "bigbuckbunny_5s.mp4", media / "music" / "lmms_Skiessi-C64.ogg"
    # --features all: the pretrained extractors run from the wheel too
    run(livejpp, "library", "build", str(video), "--out", "lib", "--features", "all", "--quiet", site=site, cwd=work)
    run(livejpp, "library", "embed", "lib", "--model", "default", site=site, cwd=work)
    render = ("render", str(song), "-l", "lib", "-o", "v.mp4", "--size", "160x90", "--fps", "10")
    run(livejpp, *render, site=site, cwd=work)
    assert (work / "v.mp4").stat().st_size > 1000 and (work / "v.cuts.json").is_file()


def test_an_editable_install_finds_the_checkout_files(sources, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], **TEXT)
    # the dependencies (and pip, setuptools) from this venv; its own .pth files, the checkout's livejpp, are not read
    Path(purelib.stdout.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip("install", "--editable", ".", cwd=sources, python=python)
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = "import livejpp; print(livejpp.__file__)\n" + SHOW_FILES
    done = subprocess.run([python, "-c", code], cwd=work, env=outside_env(), **TEXT)
    for path in done.stdout.split():
        assert Path(path).is_relative_to(sources) and Path(path).is_file()

#!/usr/bin/env bash
# System packages livejpp and its tests need on Debian/Ubuntu. As root it installs what is missing;
# otherwise it prints the one command to run. Nothing is downloaded outside the package manager.
set -euo pipefail

packages=(
  g++            # hnswlib builds from source
  python3-venv   # the project's virtual environment
  python3-dev
  procps         # pgrep: tests check that no worker outlives a killed build
  util-linux     # setpriv: tests take file-reading rights from root to make an unreadable file
  libportaudio2  # sounddevice (live audio capture)
  libegl1        # headless OpenGL for the live compositor and its tests (EGL, no display) ...
  libegl-mesa0   # ... on Mesa ...
  libgl1-mesa-dri  # ... with llvmpipe, the software renderer
  pulseaudio     # a real capture device without a sound card (a null sink: tools/fake-audio.sh) ...
  pulseaudio-utils  # ... paplay, pactl ...
  libasound2-plugins  # ... reached by PortAudio through ALSA's pulse plugin
  xvfb           # a real window on a virtual screen (xvfb-run): window tests and `bench.py live --xvfb`
  xauth          # ... which xvfb-run needs
  jackd2         # real virtual MIDI ports without a sound card (JACK's dummy driver): MIDI tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# a Python that is not Debian's (pyenv, a container image) brings its own venv and headers
if python3 -c 'import venv, sysconfig, os; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null; then
  missing=("${missing[@]/python3-venv}"); missing=("${missing[@]/python3-dev}")
fi
read -r -a missing <<< "${missing[*]:-}"
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "livejpp: please install these system packages: ${missing[*]}" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "livejpp: missing system packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "livejpp: installing system packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

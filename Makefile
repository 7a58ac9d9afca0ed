# livejpp: `make demo` builds the demo library from the project's own media; `make test` runs the checks.
# Both set up everything first: system packages (apt, when root), a virtual environment, pip installs.
# Point the demo at your own footage and song with:
#   make demo MEDIA=~/Videos/loops LIBRARY=~/vj/library SONG=~/Music/track.mp3 VIDEO=~/vj/track.mp4

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MEDIA ?= tests/media/av tests/media/footage
LIBRARY ?= demo/library
SONG ?= tests/media/music/Kevin_MacLeod-Vibe_Ace.ogg
VIDEO ?= demo/vibe_ace.mp4

.PHONY: demo test setup system bench clean

demo: setup
	$(BIN)/livejpp library build $(MEDIA) --out $(LIBRARY) --features all
	$(BIN)/livejpp library embed $(LIBRARY) --model default
	$(BIN)/livejpp render $(SONG) --library $(LIBRARY) --out $(VIDEO)
	@echo "demo library: $(LIBRARY)  (inspect it with: $(BIN)/livejpp library info $(LIBRARY))"
	@echo "demo music video: $(VIDEO)  (cut list beside it: $(basename $(VIDEO)).cuts.json)"
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  echo "live show of $(SONG): press ? in the window for the keys, q to quit"; \
	  $(BIN)/livejpp live --library $(LIBRARY) --play $(SONG); \
	else \
	  echo "no display here: the live show runs headless and is recorded to demo/live.mp4"; \
	  $(BIN)/livejpp live --library $(LIBRARY) --play $(SONG) --silent --headless --record demo/live.mp4 \
	    --stats demo/live.json; \
	fi

test: setup
	$(BIN)/ruff check livejpp tests tools
	$(BIN)/ruff format --check livejpp tests tools
	$(BIN)/python -m pytest

setup: system $(VENV)/.installed

system:
	@bash tools/install-system-deps.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	HNSWLIB_NO_NATIVE=1 $(BIN)/pip install --quiet -e ".[dev,train,link,cluster]"
	touch $@

bench: setup
	$(BIN)/python tools/bench.py library

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache build livejpp.egg-info

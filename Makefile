# showrunner: `make demo`, `make test`, `make bench`.
# Each target sets itself up on a fresh Debian 12 machine: system packages through apt (when root;
# otherwise the exact apt line is printed), then a .venv with the project installed. Idempotent:
# a second run installs nothing (stamp files).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := python3 python3-venv python3-dev gcc pkg-config portaudio19-dev libasound2 \
	jackd2 libjack-jackd2-0 libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgles2 ffmpeg \
	fluidsynth fluid-soundfont-gm xvfb
SYSTEM_STAMP := $(VENV)/.system-packages
# Only `make bench` needs these: scsynth, the peer the audio and granular benchmarks compare with;
# and pyproject's `bench` extra (pyo, the granular benchmark's other peer).
BENCH_APT_PACKAGES := supercollider-server
BENCH_STAMP := $(VENV)/.bench-packages
VENV_STAMP := $(VENV)/.installed
KERNELS_STAMP := $(VENV)/.kernels
# A tour of every piece (setlists/tour.toml: the concert, about 20 s a piece), recorded to video.
DEMO_SETLIST ?= setlists/tour.toml
DEMO_MIDI ?= assets/midi/performances/asap_Bach_Prelude_bwv846_Shi05M.mid
DEMO_ARGS ?= --duration 205 --record logs/tour.mkv
# The grain VAE rehearsed on the bundled recordings (setlists/granolar.toml's "rehearsed" and
# "trajectory" cues start from it): 1,000 steps, about 3 minutes on two cores.
VAE_CHECKPOINT := build/granolar-vae.ckpt
VAE_SOURCES := $(addprefix scenes/granolar/,vae.py learner.py data.py train.py) engine/learners/trainer.py
# The artificial ear (setlists/ear.toml) trained on the bundled recordings and the first two minutes
# of four piano performances rendered with fluidsynth: 600 steps, about 2 minutes on two cores; its
# neurons' layout is cached beside it (CKPT.layout.npz).
EAR_CHECKPOINT := build/ear.ckpt
EAR_SOURCES := $(addprefix scenes/ear/,network.py learner.py data.py train.py layout.py) \
	engine/learners/trainer.py $(wildcard assets/midi/performances/*.mid)

.PHONY: setup demo test bench clean

setup: $(VENV_STAMP) $(KERNELS_STAMP) $(VAE_CHECKPOINT) $(EAR_CHECKPOINT)

# $(call apt_install,PACKAGES,WHAT): install the missing Debian packages (apt when root; otherwise
# print the exact apt line and fail).
define apt_install
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $(2):" $$missing; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -q && apt-get install -y -q --no-install-recommends $$missing || exit 1; \
	  else \
	    echo "missing $(2); run as root:"; \
	    echo "  sudo apt-get install -y --no-install-recommends $$missing"; exit 1; \
	  fi; \
	fi
endef

$(SYSTEM_STAMP):
	$(call apt_install,$(APT_PACKAGES),system packages)
	@mkdir -p $(VENV) && touch $@

$(BENCH_STAMP): $(VENV_STAMP) pyproject.toml
	$(call apt_install,$(BENCH_APT_PACKAGES),benchmark packages)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	@touch $@

$(VENV_STAMP): $(SYSTEM_STAMP) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,farm]'  # farm: Ray, for the render farm and its tests
	$(BIN)/python -m engine.audio.hpss  # librosa's separation compiled once, which samples may ask for
	@touch $@

# The audio kernels compiled (cached by numba) after any change to their sources: the audio
# kernels' cache is stamped with all of engine/audio (engine/audio/kernel_cache.py), so the first
# audio process after a change would otherwise compile them all before its stream opens.
$(KERNELS_STAMP): $(VENV_STAMP) $(wildcard engine/audio/*.py) scenes/ldd/sound/kernels.py
	$(BIN)/python -m engine.audio.kernels
	$(BIN)/python -m scenes.ldd.sound.kernels  # the first piece's overtone voice's
	@touch $@

# Trained into a temporary file and renamed when done: an interrupted run leaves no checkpoint that
# make would take as finished.
$(VAE_CHECKPOINT): $(VENV_STAMP) $(VAE_SOURCES)
	@mkdir -p $(dir $@)
	$(BIN)/showrunner train vae --steps 1000 --seed 0 --out $(dir $@)training-$(notdir $@)
	@mv $(dir $@)training-$(notdir $@) $@

$(EAR_CHECKPOINT): $(VENV_STAMP) $(EAR_SOURCES)
	@mkdir -p $(dir $@)
	$(BIN)/showrunner train ear --steps 600 --seed 0 --out $(dir $@)training-$(notdir $@)
	@mv $(dir $@)training-$(notdir $@).layout.npz $@.layout.npz
	@mv $(dir $@)training-$(notdir $@) $@

demo: setup
	@mkdir -p logs
	$(BIN)/showrunner run $(DEMO_SETLIST) --midi-file $(DEMO_MIDI) $(DEMO_ARGS) $$( [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ] || echo --headless )
	@echo "the tour's recording: logs/tour.mkv; its show log and performance log: logs/ (showrunner replay LOG --out video.mkv)"

test: setup
	$(BIN)/python -m pytest -ra --durations=30 $(PYTEST_ARGS)

bench: setup $(BENCH_STAMP)
	$(BIN)/python -m bench

clean:  # the show logs in logs/ are the performer's: kept
	rm -rf $(VENV) .pytest_cache $(VAE_CHECKPOINT) $(EAR_CHECKPOINT) $(EAR_CHECKPOINT).layout.npz

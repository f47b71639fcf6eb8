# SpikeForge: set-up, demo and tests. Every target installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
APT_PACKAGES := iverilog g++ make ccache liblz4-dev chromium

.PHONY: all setup demo test test-system clean

all: test

setup: $(STAMP)

# System packages (Debian): only those missing are installed.
.apt-stamp:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@touch $@

# Python packages into the project venv. spikingjelly goes in without its declared dependencies,
# which would pull torchvision, torchaudio and a CUDA torch (checked with torch 2.13.0 CPU: the neuron module needs only loguru and tqdm).
$(STAMP): pyproject.toml .apt-stamp
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps spikingjelly==2.0.0
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/spikeforge demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q

# Only the whole accelerator through its host port on both simulators (also in `make test`).
test-system: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q tests/test_accelerator.py tests/test_report.py

clean:
	rm -rf sim_build build .pytest_cache

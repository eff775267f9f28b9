# One entry point for people and CI. `make demo` and `make test` set everything up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PIP := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: setup demo test test-all test-ui lint typecheck bench bench-defects bench-shots bench-colour bench-ops bench-seeds bench-upscale bench-interpolate bench-diffusion bench-gpu bench-throughput bench-scans train-sr clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/reel demo

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m "slow or not slow"

# The review gate in a real Prefect UI: a Prefect server and `reel serve` on loopback, headless chromium.
test-ui: setup
	$(PIP) -e ".[test,ui]"
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && apt-get install -y -q chromium; } || \
		{ echo "install Debian's chromium first: sudo apt-get install chromium"; exit 1; }
	$(PY) -m pytest -q -m ui

lint: setup
	$(VENV)/bin/ruff check models catalog infra tasks flows tests benchmarks

# mypy over the product code (settings and the modules not yet clean: [tool.mypy] in pyproject.toml)
typecheck: setup
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m benchmarks.pipeline

bench-defects: setup
	$(PY) -m benchmarks.defects

bench-shots: setup
	$(PY) -m benchmarks.shots

bench-colour: setup
	$(PY) -m benchmarks.colour

bench-seeds: setup
	$(PY) -m benchmarks.seeds

bench-ops: setup
	$(PY) -m benchmarks.ops

bench-upscale: setup
	$(PY) -m benchmarks.upscale

bench-interpolate: setup
	$(PY) -m benchmarks.interpolate

bench-diffusion: setup
	$(PY) -m benchmarks.diffusion

# where Reel's time goes at 1080p vs the plain ffmpeg jobs, fixed cost, feature-film estimate (~10-15 min on 2 cores)
bench-throughput: setup
	$(PY) -m benchmarks.throughput

# film scans: 2K 10-bit DPX ingest vs a plain OpenImageIO read of the same files (ratio side by side), memory vs
# frame count, 4K frames (~3 min on 2 cores; ~1.5 GB of temporary files)
bench-scans: setup
	$(PY) -m benchmarks.scans

# on a GPU machine: real-size SR and diffusion architectures, 1080p -> 4K throughput
bench-gpu: setup
	$(PY) -m benchmarks.gpu

# reproduces models/weights/reel-sr-x2.safetensors (about 12 minutes on 2 free cores)
train-sr: setup
	$(PY) -m benchmarks.train_sr --out models/weights/reel-sr-x2.safetensors --steps 12000 --seed 0 --minutes 14

clean:
	rm -rf $(VENV) reel-data reel-demo reel-out bench-out

# One entry point for people and CI. `make demo` and `make test` set everything up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PIP := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: setup demo test test-all lint bench bench-defects bench-shots bench-colour clean

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

lint: setup
	$(VENV)/bin/ruff check models catalog infra tasks flows tests benchmarks

bench: setup
	$(PY) -m benchmarks.pipeline

bench-defects: setup
	$(PY) -m benchmarks.defects

bench-shots: setup
	$(PY) -m benchmarks.shots

bench-colour: setup
	$(PY) -m benchmarks.colour

clean:
	rm -rf $(VENV) reel-data reel-demo reel-out bench-out

# The README's commands. `make run` and `make test` each set up everything they need first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.nnspec-installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: setup run test test-fast lint typecheck bench browser clean gpu-check

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The main job: every property on every backend available here, JSON + HTML + JUnit in reports/.
run: setup
	$(BIN)/nnspec run --json reports/latest.json --html reports/compliance.html --junitxml reports/junit.xml

## On an NVIDIA machine: install the GPU builds, run every CUDA/GPU target; results in reports/gpu/.
## Fails with "no GPU target ran" anywhere else.
gpu-check: setup
	$(BIN)/nnspec gpu-check --install --out reports/gpu

## The project's own tests (browser tests included when Chromium can be installed).
test: setup browser
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser"

## Debian's Chromium for the browser tests (Playwright cannot download browsers here).
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: $(CHROMIUM) is absent and cannot be installed here; browser tests will skip"; fi

lint: setup typecheck
	$(BIN)/ruff check .

## mypy sees the package as installed: nnspec = conformance/, with backends/, reports/, spec/ inside.
typecheck: setup
	rm -rf build/typecheck && mkdir -p build/typecheck/nnspec
	for entry in conformance/*; do ln -s "$$PWD/$$entry" build/typecheck/nnspec/; done
	for folder in backends reports spec; do ln -s "$$PWD/$$folder" build/typecheck/nnspec/$$folder; done
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p nnspec

bench: setup
	$(BIN)/python benchmarks/examples_per_second.py
	$(BIN)/python benchmarks/suite_time.py

clean:
	rm -rf $(VENV) .hypothesis reports/latest.* reports/*.html reports/junit.xml

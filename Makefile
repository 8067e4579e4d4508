# The README's commands. `make run` and `make test` each set up everything they need first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.nnspec-installed
CHROMIUM ?= /usr/bin/chromium
REPORTS ?= reports

.PHONY: setup run test test-fast lint typecheck bench browser gallery gpu-check ecosystem clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) with $$($(PYTHON) --version 2>&1)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --progress-bar on --upgrade pip
	@echo "==> installing nnspec[dev] (NumPy, PyTorch, JAX, Hypothesis, test tools): a few minutes on a fresh clone"
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)
	@echo
	@echo "nnspec is installed in $(VENV). Next:"
	@echo "  make run                # check every property on every backend available here"
	@echo "  make test               # nnspec's own tests"
	@echo "  $(BIN)/nnspec --help    # nnspec itself; or first '. $(BIN)/activate', then plain 'nnspec'"

## The main job: every property on every backend available here, JSON + HTML + JUnit in reports/.
run: setup
	@status=0; $(BIN)/nnspec run --json $(REPORTS)/latest.json --html $(REPORTS)/compliance.html \
		--junitxml $(REPORTS)/junit.xml || status=$$?; \
	echo; echo "Outputs:"; \
	for file in latest.json latest.jsonl compliance.html junit.xml; do \
		if [ -e $(REPORTS)/$$file ]; then echo "  $$PWD/$(REPORTS)/$$file"; fi; \
	done; \
	echo "Open the report: xdg-open $(REPORTS)/compliance.html (or any browser)"; \
	echo "Run nnspec yourself: $(BIN)/nnspec run --backend numpy   (or . $(BIN)/activate, then nnspec ...)"; \
	exit $$status

## On an NVIDIA machine: install the GPU builds, run every CUDA/GPU target; results in reports/gpu/.
## Fails with "no GPU target ran" anywhere else.
gpu-check: setup
	$(BIN)/nnspec gpu-check --install --out reports/gpu

## The ecosystem matrix (README, "What nnspec finds in the ecosystem"): the adapters' libraries at the
## versions they were checked with, every adapter run, the matrix written to ecosystem/MATRIX.md.
ecosystem: setup
	$(BIN)/python -m pip install -q -e '.[ecosystem]' -c constraints/ecosystem.txt
	$(BIN)/python -m nnspec.backends.ecosystem --output ecosystem/MATRIX.md

## The project's own tests (browser tests included when Chromium can be installed).
test: setup browser
	@status=0; NNSPEC_ARTIFACTS=$${NNSPEC_ARTIFACTS:-artifacts} $(BIN)/python -m pytest || status=$$?; \
	echo; echo "Browser screenshots (360, 768 and 1440 px): $$PWD/$${NNSPEC_ARTIFACTS:-artifacts}/"; \
	echo "Faster loop: make test-fast, or $(BIN)/python -m pytest -q tests/test_report.py -x"; \
	exit $$status

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser"

## Debian's Chromium for the browser tests (Playwright cannot download browsers here).
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: $(CHROMIUM) is absent and cannot be installed here; browser tests will skip"; fi

## The README's gallery (docs/gallery/*.png): a real run with one broken backend, screenshotted in Chromium.
gallery: setup browser
	$(BIN)/python benchmarks/gallery.py

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
	rm -rf $(VENV) .hypothesis artifacts reports/latest.* reports/*.html reports/junit.xml

# The README's commands. `make run` and `make test` each set up everything they need first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.nnspec-installed
CHROMIUM ?= /usr/bin/chromium
REPORTS ?= reports

.PHONY: setup run test test-fast lint typecheck bench browser gallery gpu-check ecosystem clean

setup: $(STAMP)
	@$(MAKE) --no-print-directory link-tree

# A strict editable install: site-packages sees the package through a tree of links to the
# checkout's files (build/__editable__.*), laid out as installed, so mypy and every other tool read
# the real package. A link follows edits, but a file added or removed needs a reinstall: link-tree
# reinstalls (without dependencies, seconds) whenever the package's list of files has changed.
EDITABLE := --config-settings editable_mode=strict -e
FILES := $(VENV)/.nnspec-files
LIST_FILES := { git ls-files --cached --others --exclude-standard conformance backends reports spec 2>/dev/null \
	|| find conformance backends reports spec -type f; } | grep -v '\.pyc$$' | sort

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) with $$($(PYTHON) --version 2>&1)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --progress-bar on --upgrade pip
	@echo "==> installing nnspec[dev] (NumPy, PyTorch, JAX, Hypothesis, test tools): a few minutes on a fresh clone"
	$(BIN)/python -m pip install --progress-bar on $(EDITABLE) '.[dev]'
	@$(LIST_FILES) > $(FILES)
	touch $(STAMP)
	@echo
	@echo "nnspec is installed in $(VENV). Next:"
	@echo "  make run                # check every property on every backend available here"
	@echo "  make test               # nnspec's own tests"
	@echo "  $(BIN)/nnspec --help    # nnspec itself; or first '. $(BIN)/activate', then plain 'nnspec'"

.PHONY: link-tree
link-tree:
	@$(LIST_FILES) > $(FILES).now
	@if ! cmp -s $(FILES).now $(FILES); then \
		if [ -e $(FILES) ]; then echo "==> the package's files changed: reinstalling the editable link tree"; fi; \
		rm -rf build/__editable__.nnspec-*; \
		$(BIN)/python -m pip install --quiet --no-deps $(EDITABLE) . && mv $(FILES).now $(FILES); \
	else rm -f $(FILES).now; fi

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

## mypy reads the package as installed (the strict editable install's link tree), strict throughout.
typecheck: setup
	$(BIN)/mypy -p nnspec

bench: setup
	$(BIN)/python benchmarks/examples_per_second.py
	$(BIN)/python benchmarks/suite_time.py

clean:
	rm -rf $(VENV) build/__editable__.nnspec-* .hypothesis artifacts reports/latest.* reports/*.html reports/junit.xml

# revoker: `make test` and `make demo` work on a fresh clone with only Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Four workers: the suite mostly waits on loopback servers (pytest-xdist).
# --dist loadscope keeps a module's emulator fixture on one worker.
PYTEST_ARGS ?= -n 4 --dist loadscope

.PHONY: help install test lint demo bench dist clean browser-test conformance

help:
	@echo "make test   - set up .venv and run the whole test suite"
	@echo "make lint   - ruff check, ruff format --check, mypy --strict, bandit, import-linter, hadolint"
	@echo "make demo   - start the emulator, revoke examples/keys.csv everywhere, verify"
	@echo "make bench  - benchmarks against the emulator (prints a table)"
	@echo "make dist   - build the wheel and sdist into dist/ and twine-check them"
	@echo "make browser-test - open report --format html in headless Chromium (installed if missing)"
	@echo "make conformance - revoker through Stoplight Prism serving Agora's OpenAPI file (npm)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[emulator,dev]'
	@touch $(STAMP)

install: $(STAMP)

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
test: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): failing" >&2; exit 1; fi; \
	exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check revoker tests bench action
	$(BIN)/ruff format --check revoker tests bench action
	$(BIN)/mypy --strict revoker action/run.py
	$(BIN)/bandit -q -c pyproject.toml -r revoker
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

demo: $(STAMP)
	@$(BIN)/python examples/demo.py

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Debian's chromium, installed if missing; skipped with a note where it cannot be installed.
SCREENSHOT ?= .browser/report-html.png
browser-test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { \
		echo "make browser-test: installing Debian's chromium (apt-get install -y chromium)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
			>/dev/null 2>&1 || true; }
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "make browser-test: SKIPPED: chromium is not installed and apt-get could not install it"; \
		exit 0; fi; \
	REVOKER_BROWSER_TEST=1 REVOKER_SCREENSHOT="$(SCREENSHOT)" \
		$(BIN)/python -m pytest tests/render/test_html_browser.py -q -rs; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make browser-test: no test collected (exit 5): failing" >&2; exit 1; fi; \
	if [ $$rc -eq 0 ]; then echo "make browser-test: screenshot in $(SCREENSHOT)"; fi; \
	exit $$rc

# --no-isolation: build with this venv's hatchling, nothing downloaded.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	$(BIN)/twine check --strict dist/*

# Stoplight Prism, pinned by conformance/package-lock.json, in conformance/node_modules.
PRISM := conformance/node_modules/.bin/prism

$(PRISM): conformance/package.json conformance/package-lock.json
	cd conformance && npm ci --no-audit --no-fund --loglevel=error
	@touch $(PRISM)

# Every command that talks to the API, through Prism serving Agora's OpenAPI file: as a
# validating mock (requests), then as a validating proxy in front of the emulator (answers).
conformance: $(STAMP) $(PRISM)
	REVOKER_PRISM=$(abspath $(PRISM)) $(BIN)/python -m pytest tests/conformance -m conformance -s -q

clean:
	rm -rf dist $(VENV) conformance/node_modules .pytest_cache .mypy_cache .ruff_cache .demo .bench .browser

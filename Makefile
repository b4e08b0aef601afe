# video-extract: `make demo` and `make test` work on a fresh machine (Debian/Ubuntu, Python 3.11).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed

.PHONY: install system-deps demo test bench lock clean

install: system-deps $(STAMP)

# espeak-ng speaks the sentences of the speech tests and the demo; Chromium (headless) opens
# report.html in the report's tests and benchmark.
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  echo "installing espeak-ng (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq espeak-ng >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# torch first and pinned: an unpinned torch (asked for by sentence-transformers or resemblyzer)
# would pull a multi-GB CUDA build; 2.13.0 is the CPU build.
$(STAMP): pyproject.toml requirements/lock.txt requirements/nodeps.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements/lock.txt
	$(PIP) install -q --no-deps -r requirements/nodeps.txt
	$(PIP) install -q --no-deps -e .
	touch $@

demo: install
	$(PY) -m video_extract.testing.demo demo-output

# Lint (ruff), format check, layer contracts (.importlinter: a back arrow between layers fails), then the tests.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/run.py

# Re-resolve requirements/base.in into requirements/lock.txt in a throwaway venv.
lock:
	rm -rf /tmp/video-extract-lock && $(PYTHON) -m venv /tmp/video-extract-lock
	/tmp/video-extract-lock/bin/pip install -q torch==2.13.0 && /tmp/video-extract-lock/bin/pip install -q -r requirements/base.in
	( head -2 requirements/lock.txt; /tmp/video-extract-lock/bin/pip freeze ) > requirements/lock.txt.new && mv requirements/lock.txt.new requirements/lock.txt

clean:
	rm -rf $(VENV) demo-output benchmarks/.media benchmarks/results .pytest_cache

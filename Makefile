# The two commands: `make demo` (a local farm rendering a sample job) and `make test`.
# Both set everything up on a fresh machine: a virtualenv in .venv, and for the
# tests Debian's blender, povray and ffmpeg (the end-to-end renders need them) and chromium
# (the web UI's end-to-end tests drive it with Playwright).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RENDERERS := blender povray ffmpeg
#: The browser tests/e2e/test_web.py drives (Playwright's own browser download is not used).
BROWSER := chromium
#: What PySide6's wheels need of the system to run Qt offscreen (the desktop GUI's tests).
QT_LIBS := libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3

.PHONY: demo test test-slow repeat bench lint renderers venv clean blender-addon

$(BIN)/drqueue: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/drqueue

## A local farm (master + 2 slaves) renders a sample job with a progress bar; Ctrl-C stops it.
demo: venv
	$(BIN)/drqueue up --slaves 2

## Installs the renderers the end-to-end tests use, chromium for the web UI's tests,
## iproute2 for the network-namespace test, ruby for docs/examples/session.rb's test and the
## libraries Qt needs for the desktop GUI's tests (Debian/Ubuntu), if missing.
renderers:
	@missing=""; for p in $(RENDERERS) $(BROWSER) ip ruby; do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	for p in $(QT_LIBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(RENDERERS) $(BROWSER) iproute2 ruby $(QT_LIBS) >/dev/null; \
	fi

## Sets up and runs the whole test suite (real controller, engines and renderers).
test: venv renderers
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: venv renderers
	$(BIN)/python -m pytest -m slow -q

## The rule for a new or changed integration test (docs/testing.md): 20 runs in a row under load.
## make repeat T=tests/integration/test_core_farm.py::test_name [N=20]
N ?= 20
repeat: venv renderers
	$(BIN)/python tests/tools/repeat.py -n $(N) $(T)

## The Blender add-on's zip, to install in Blender (docs/blender.md).
blender-addon:
	$(PYTHON) contrib/blender/make_zip.py build/drqueue_submit.zip

## Every benchmark, one table (docs/performance.md): under 15 minutes on 2 cores; the web UI's
## needs chromium, the renderers' rule installs it.  One: python bench/run_all.py --only NAME.
bench: venv renderers
	$(BIN)/python bench/run_all.py

lint: venv
	$(BIN)/ruff check src tests bench contrib
	$(BIN)/ruff format --check src tests bench contrib

clean:
	rm -rf $(VENV) build *.egg-info

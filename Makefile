# Every target sets itself up: a local virtualenv in .venv, and Debian's chromium for the
# browser tests. Nothing needs to be installed by hand first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench lint browser clean

demo: $(STAMP)
	$(BIN)/mailer build issues/2020-12-13.yaml
	$(BIN)/mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv

test: $(STAMP) browser
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python tests/bench/run_bench.py

lint: $(STAMP)
	$(BIN)/ruff check mailer tests

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Playwright cannot download its own browser here: the tests drive Debian's /usr/bin/chromium.
# The two font packages let screenshots show Chinese text and emoji instead of empty boxes.
BROWSER_PACKAGES := chromium fonts-wqy-microhei fonts-noto-color-emoji
browser:
	@if ! dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "Installing $(BROWSER_PACKAGES) for the browser tests"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; \
	fi

clean:
	rm -rf build site test-artifacts .pytest_cache

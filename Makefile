# Every target sets itself up: a local virtualenv in .venv, and Debian's chromium and
# spamassassin for the tests. Nothing needs to be installed by hand first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench lint test-packages clean

demo: $(STAMP)
	$(BIN)/mailer build issues/2020-12-13.yaml
	$(BIN)/mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv

test: $(STAMP) test-packages
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
# spamassassin scores the sample as a reader's server receives it (local rules, no network).
# dovecot-imapd is the real IMAP server `mailer suppressions pull` reads a mailbox from (tests/imap_server.py
# starts its own instance on loopback ports; the package's own service is not needed, running or not).
TEST_PACKAGES := chromium fonts-wqy-microhei fonts-noto-color-emoji spamassassin dovecot-imapd
test-packages:
	@if ! dpkg -s $(TEST_PACKAGES) >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "Installing $(TEST_PACKAGES) for the tests"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(TEST_PACKAGES) >/dev/null; \
	fi

clean:
	rm -rf build site test-artifacts .pytest_cache

"""Shared fixtures: an isolated workspace, environment and CLI runner for every test."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
# A certificate for 127.0.0.1 that nothing trusts unless told to: the TLS tests of SMTP and of --links.
SELF_SIGNED_CERT = REPO / "tests" / "selfsigned-127.0.0.1.pem"
CHROMIUM = "/usr/bin/chromium"
# Debian's chromium with everything that phones home switched off: this machine has no outside
# network, and Playwright cannot download a browser of its own here.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test can touch a real state directory, key or SMTP server."""
    monkeypatch.setenv("MAILER_STATE_DIR", str(tmp_path / "state"))
    for name in ("SENDGRID_API_KEY", "SENDGRID_API_HOST", "MAILER_SMTP_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's workspace (config, layouts, sample issues) as the current folder."""
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(REPO / "mailer.yaml", root / "mailer.yaml")
    shutil.copy(REPO / "subscribers.example.csv", root / "subscribers.example.csv")
    shutil.copytree(REPO / "layouts", root / "layouts")
    shutil.copytree(REPO / "issues", root / "issues")
    monkeypatch.chdir(root)
    return root


MINIMAL_ISSUE = """\
subject: "Weekly digest #1"
date: 2026-11-29
preheader: "Three links worth your Sunday"
sections:
  - heading: News
    body: |
      Hello -first_name-, here is [a link](https://example.com/a).
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run `mailer ARGS…` in-process through the real entry point; returns code and output."""
    from mailer.cli.main import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        captured = capsys.readouterr()
        code = exit_info.value.code
        return Result(code if isinstance(code, int) else 1, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make test`, which installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()

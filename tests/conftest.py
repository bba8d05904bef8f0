"""Shared fixtures: an isolated workspace, environment and CLI runner for every test; the local servers
(SendGrid-like, SMTP) and the helpers that write subscriber lists and read the ledger."""

from __future__ import annotations

import os
import shutil
import sqlite3
import textwrap
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailer.config import Config
from mailer.environment import Environment
from tests import fake_sendgrid
from tests.fake_sendgrid import API_KEY, FakeSendGrid
from tests.loopback_smtp import Recorder, start_smtp_server

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
# A certificate for 127.0.0.1 that nothing trusts unless told to: the TLS tests of SMTP and of --links.
SELF_SIGNED_CERT = REPO / "tests" / "selfsigned-127.0.0.1.pem"
SAMPLE_ISSUE = "issues/2020-12-13.yaml"  # in the workspace fixture
UNSUBSCRIBE_SECRET = "unsubscribe-secret-for-tests"
CHROMIUM = "/usr/bin/chromium"
# Debian's chromium with everything that phones home switched off: this machine has no outside
# network, and Playwright cannot download a browser of its own here.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(scope="session")
def sample_dns():
    """A DNS server on loopback serving the sample's domain (example.com) as SendGrid's Sender Authentication
    sets it up: what a live send's domain check and the README's `mailer doctor` ask, instead of the network."""
    from tests.dns_server import good_zone, start_dns

    server = start_dns(good_zone())
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sample_dns) -> None:
    """No test can touch a real state directory, key, SMTP server or DNS resolver."""
    monkeypatch.setenv("MAILER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MAILER_DNS", sample_dns.address)
    for name in ("SENDGRID_API_KEY", "SENDGRID_API_HOST", "MAILER_SMTP_URL", "MAILER_INBOUND_KEY",
                 "MAILER_MAILBOX_URL"):
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



@pytest.fixture
def pages():
    """The local web pages server (tests/pages_server.py) that `mailer cards` and `check --links` fetch from."""
    from tests.pages_server import start_pages_server

    server = start_pages_server()
    yield server
    server.shutdown()
    server.server_close()

@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """MAILER_STATE_DIR of every test (set by isolated_env): the ledger, suppression list and outbox."""
    return tmp_path / "state"


def config_of(workspace: Path) -> Config:
    """The workspace's settings, its state folder the tests' (state_dir), as the CLI loads them with
    MAILER_STATE_DIR set: for a test that calls the library itself."""
    from mailer.config import load_config

    return load_config(workspace, state_dir=workspace.parent / "state")


@pytest.fixture
def start_sendgrid(monkeypatch: pytest.MonkeyPatch):
    """Start a local SendGrid-like server (tests/fake_sendgrid.py); returns (fake, url).

    With environment=True (the default) the key, the API host and the unsubscribe secret a live send
    needs are set for this test; a test that runs `mailer` as a child process passes its own."""
    servers = []

    def start(fake: FakeSendGrid | None = None, *, environment: bool = True) -> tuple[FakeSendGrid, str]:
        fake = fake or FakeSendGrid()
        server, url = fake_sendgrid.start(fake)
        servers.append(server)
        if environment:
            monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
            monkeypatch.setenv("SENDGRID_API_HOST", url)
            monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
        return fake, url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sendgrid(start_sendgrid) -> FakeSendGrid:
    """A local SendGrid-like server that a live send in this test talks to."""
    return start_sendgrid()[0]


def sendgrid_environment(url: str, **settings: str) -> Environment:
    """The settings a live send through the fake at `url` is handed, for a test that calls the library itself
    (what sendgrid_env puts in a child process's environment); `settings` adds or replaces fields."""
    return Environment(**{"sendgrid_api_key": API_KEY, "sendgrid_api_host": url,
                          "unsubscribe_secret": UNSUBSCRIBE_SECRET, **settings})


def sendgrid_env(url: str, state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for a `mailer send` child process that talks to the fake at `url`."""
    return {**os.environ, "SENDGRID_API_KEY": API_KEY, "SENDGRID_API_HOST": url,
            "MAILER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET, "MAILER_STATE_DIR": str(state_dir), **extra}


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch):
    """A real SMTP server on loopback (aiosmtpd) that a live send with --backend smtp talks to."""
    recorder = Recorder()
    controller = start_smtp_server(recorder)
    monkeypatch.setenv("MAILER_SMTP_URL", f"smtp+insecure://127.0.0.1:{controller.port}")
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    yield recorder
    controller.stop()


def write_subscribers(folder: Path, rows: list[str], *, name: str = "subs.csv",
                      header: str = "email,first_name,last_name,status,tags") -> Path:
    path = folder / name
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def make_subscribers(folder: Path, count: int, *, extra: str = "") -> Path:
    """A list of `count` subscribed readers, reader00000@example.com on; `extra` is appended as written."""
    rows = [f"reader{i:05d}@example.com,Reader {i},Test,subscribed,weekly" for i in range(count)]
    path = write_subscribers(folder, rows, name=f"subscribers-{count}.csv")
    if extra:
        path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


def read_ledger(state_dir: Path, sql: str, *params: object) -> list[tuple]:
    """Rows of a query on the ledger file, read as a user with the sqlite3 shell would."""
    with closing(sqlite3.connect(state_dir / "ledger.sqlite3")) as db:
        return db.execute(sql, params).fetchall()


def mark_sent(state_dir: Path, slug: str) -> None:
    """What a live send leaves in the ledger: one reader accepted."""
    from mailer.deliver.ledger import Ledger

    with Ledger(state_dir / "ledger.sqlite3") as ledger:
        ledger.mark_sending(slug, [("ada@example.com", "ada@example.com")], "run:00001")
        ledger.mark(slug, ["ada@example.com"], "accepted")


def ledger_states(state_dir: Path, issue: str = "2020-12-13") -> Counter:
    """How many recipients of `issue` are in each state (accepted, failed, uncertain, …)."""
    return Counter(state for (state,) in read_ledger(state_dir, "SELECT state FROM deliveries WHERE issue=?", issue))


def approve(run_cli) -> None:
    """The live test send of the sample issue that a live send to the list requires first."""
    result = run_cli("send", SAMPLE_ISSUE, "--test-to", "editor@example.com", "--live")
    assert result.exit_code == 0, result.stderr


@pytest.fixture
def serve_zone(monkeypatch: pytest.MonkeyPatch):
    """Serve a zone (tests/dns_server.py) on a real DNS server on loopback, and point MAILER_DNS at it."""
    from tests.dns_server import start_dns

    running = []

    def serve(zone):
        server = start_dns(zone)
        running.append(server)
        monkeypatch.setenv("MAILER_DNS", server.address)
        return server

    yield serve
    for server in running:
        server.stop()

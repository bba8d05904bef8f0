"""The state folder failing under a send: a full disk, a folder that cannot be written, a damaged ledger.

Each is told as it is: before the first request, exit 1 and nothing was sent; after one, exit 3 and
exactly what may have left. Never a traceback, never a fresh start that mails everyone again.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_ISSUE, approve, ledger_states, make_subscribers, sendgrid_env
from tests.fake_sendgrid import FakeSendGrid


def run_with_file_size_limit(workspace: Path, env: dict[str, str], limit: int | None,
                             *args: str) -> subprocess.CompletedProcess:
    """`mailer ARGS` in a child process that cannot write files past `limit` bytes: a disk that fills up."""
    def limit_files() -> None:
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "mailer", *args], cwd=workspace, env=env, capture_output=True,
                          text=True, preexec_fn=limit_files, timeout=120)


def test_a_disk_that_fills_up_mid_send_is_told_as_it_is_and_nobody_gets_it_twice(
        workspace: Path, state_dir: Path, start_sendgrid) -> None:
    subscribers = make_subscribers(workspace, 4000)
    outcomes = set()
    # Before the first request, with a request on its way, and between two requests.
    for limit in (300_000, 1_200_000, 1_600_000):
        fake, url = start_sendgrid(FakeSendGrid(keep_bodies=False), environment=False)
        env = sendgrid_env(url, state_dir / str(limit))
        send = ("send", SAMPLE_ISSUE, "--subscribers", str(subscribers), "--live", "--yes", "--force",
                "--workers", "1")
        full = run_with_file_size_limit(workspace, env, limit, *send)
        in_flight = 0
        assert "Traceback" not in full.stderr
        assert "ledger.sqlite3: disk I/O error" in full.stderr or "is full" in full.stderr, full.stderr
        if not fake.accepted:
            outcomes.add("before")
            assert full.returncode == 1 and "nothing was sent" in full.stderr
        else:
            outcomes.add("after")
            assert full.returncode == 3, full.stderr
            told = re.search(r"(\d+) recipient\(s\) were in requests already on their way \(sendgrid accepted (\d+)\)",
                             full.stderr)
            if told:  # the ledger failed with a request on its way
                assert told.group(1) == told.group(2), full.stderr
                in_flight = int(told.group(1))
            else:  # it failed between requests: the ledger knows everything that left
                assert "no request was on its way: everyone recorded accepted got it" in full.stderr, full.stderr
            recorded = ledger_states(state_dir / str(limit))
            assert recorded["accepted"] + in_flight == len(fake.accepted)  # the rest is known to the ledger
            assert "no new request was made" in full.stderr
        # Space again: the rest is sent, those in flight are held back as uncertain, nobody gets it twice.
        again = run_with_file_size_limit(workspace, env, None, *send)
        received = Counter(fake.accepted)
        assert max(received.values()) == 1 and "Traceback" not in again.stderr
        states = ledger_states(state_dir / str(limit))
        assert states["accepted"] + states["uncertain"] == 4000 == len(received)
        assert states["uncertain"] == in_flight  # exactly those the message named are held back
    assert outcomes == {"before", "after"}


def test_a_test_send_is_never_delivered_and_then_lost(workspace: Path, state_dir: Path, start_sendgrid) -> None:
    fake, url = start_sendgrid(FakeSendGrid(), environment=False)
    result = run_with_file_size_limit(workspace, sendgrid_env(url, state_dir), 4096,
                                      "send", SAMPLE_ISSUE, "--test-to", "editor@example.com", "--live")
    assert result.returncode == 1 and fake.accepted == []
    assert "cannot write" in result.stderr and "nothing was sent" in result.stderr
    dry = run_with_file_size_limit(workspace, sendgrid_env(url, state_dir / "fresh"), 4096,
                                   "send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    assert dry.returncode == 1 and "Traceback" not in dry.stderr
    assert f"cannot write {state_dir / 'fresh' / 'outbox'}" in dry.stderr and "nothing was sent" in dry.stderr


def test_a_state_folder_that_cannot_be_created_stops_before_any_request(workspace: Path, tmp_path: Path, run_cli,
                                                                        sendgrid: FakeSendGrid,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n", encoding="utf-8")
    monkeypatch.setenv("MAILER_STATE_DIR", str(blocker / "state"))
    for args in (["--test-to", "editor@example.com", "--live"],
                 ["--subscribers", "subscribers.example.csv", "--live", "--yes", "--force"],
                 ["--subscribers", "subscribers.example.csv"]):
        result = run_cli("send", SAMPLE_ISSUE, *args)
        assert result.exit_code == 1, (args, result.stderr)
        assert "cannot write" in result.stderr and "Traceback" not in result.stderr
    assert sendgrid.paths == []


def _corrupt(ledger: Path, how: str) -> None:
    if how == "empty":
        ledger.write_bytes(b"")
    elif how == "not a database":
        ledger.write_bytes(os.urandom(8192))
    elif how == "half of it":
        ledger.write_bytes(ledger.read_bytes()[: ledger.stat().st_size // 2])
    elif how == "another program's database":
        ledger.unlink()
        with closing(sqlite3.connect(ledger)) as db:
            db.execute("CREATE TABLE notes (text TEXT)")
    elif how == "a folder":
        ledger.unlink()
        ledger.mkdir()


@pytest.mark.parametrize("how", ["empty", "not a database", "half of it", "another program's database", "a folder"])
def test_a_damaged_ledger_is_never_a_fresh_start(workspace: Path, sendgrid: FakeSendGrid, run_cli, state_dir: Path,
                                                  how: str) -> None:
    approve(run_cli)
    subscribers = str(make_subscribers(workspace, 300))
    assert run_cli("send", SAMPLE_ISSUE, "--subscribers", subscribers, "--live", "--yes").exit_code == 0
    requests = len(sendgrid.paths)
    _corrupt(state_dir / "ledger.sqlite3", how)
    for args in (["send", SAMPLE_ISSUE, "--subscribers", subscribers, "--live", "--yes"],
                 ["send", SAMPLE_ISSUE, "--subscribers", subscribers],
                 ["send", SAMPLE_ISSUE, "--test-to", "editor@example.com", "--live"],
                 ["status", SAMPLE_ISSUE], ["cancel", SAMPLE_ISSUE]):
        result = run_cli(*args)
        assert result.exit_code == 1, (args, result.stdout, result.stderr)
        assert "ledger.sqlite3 is damaged" in result.stderr and "mv " in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert len(sendgrid.paths) == requests  # nobody was mailed again


def test_two_newsletters_sharing_a_state_folder_never_mix_their_readers(workspace: Path, tmp_path: Path, run_cli,
                                                                        sendgrid: FakeSendGrid,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    approve(run_cli)
    assert run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes").exit_code == 0
    first = len(sendgrid.accepted)
    other = tmp_path / "other-newsletter"
    shutil.copytree(workspace, other, ignore=shutil.ignore_patterns(".mailer"))
    settings = other / "mailer.yaml"
    text = settings.read_text(encoding="utf-8").replace("name: The NLP Cypher\n", "name: Robotics Weekly\n", 1)
    settings.write_text(text, encoding="utf-8")
    monkeypatch.chdir(other)  # the same MAILER_STATE_DIR (set for every test), the same issue file name
    for args in (["send", SAMPLE_ISSUE, "--test-to", "editor@example.com", "--live"],
                 ["send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv"],
                 ["send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes", "--force"],
                 ["status", SAMPLE_ISSUE]):
        result = run_cli(*args)
        assert result.exit_code == 1, (args, result.stdout, result.stderr)
        assert ("records issue 2020-12-13 as sent by another newsletter, The NLP Cypher <the-nlp-cypher."
                "newsletter.example.com>") in result.stderr
        assert "own state folder" in result.stderr
    assert len(sendgrid.accepted) == first  # the second newsletter sent nothing, and was not told "0 left"
    monkeypatch.chdir(workspace)
    assert "accepted" in run_cli("status", SAMPLE_ISSUE).stdout  # the first newsletter's issue is unharmed


def test_a_ledger_from_before_owners_were_recorded_is_claimed_by_its_first_sender(
        workspace: Path, run_cli, sendgrid: FakeSendGrid, state_dir: Path) -> None:
    approve(run_cli)
    with closing(sqlite3.connect(state_dir / "ledger.sqlite3")) as db, db:
        db.execute("DELETE FROM newsletters")  # as an older release left it
    assert run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes").exit_code == 0
    with closing(sqlite3.connect(state_dir / "ledger.sqlite3")) as db:
        assert db.execute("SELECT issue, list_id FROM newsletters").fetchall() == [
            ("2020-12-13", "The NLP Cypher <the-nlp-cypher.newsletter.example.com>")]

"""A live send checks the sending domain first (tests/dns_server.py's zones): failures warn on the first screen,
DMARC p=reject that the mail would fail stops it, no DNS is a note, and a clean verdict is kept for a day."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from mailer.checks.dns import Resolver, parse_dns_server
from mailer.checks.domain import Sending
from mailer.checks.presend import CACHE_NAME, check_before_send
from tests.conftest import SAMPLE_ISSUE, approve, ledger_states, write_subscribers
from tests.dns_server import Zone, good_zone, silent_server, start_dns


def broken_zone(policy: str) -> Zone:
    """No SPF, no DKIM key: nothing can align; DMARC at `policy`."""
    return Zone().txt("_dmarc.example.com", f"v=DMARC1; p={policy}; rua=mailto:dmarc@example.com")


def live_send(run_cli, workspace: Path):
    csv = str(write_subscribers(workspace, ["ada@example.com,Ada,Lovelace,subscribed,"]))
    return run_cli("send", SAMPLE_ISSUE, "--subscribers", csv, "--live", "--yes", "--force")


def test_a_good_domain_sends_without_a_word_about_it(workspace: Path, sendgrid, run_cli, state_dir: Path) -> None:
    approve(run_cli)
    sent = live_send(run_cli, workspace)
    assert sent.exit_code == 0, sent.stderr
    assert "warning: example.com" not in sent.stderr and "was not checked" not in sent.stderr
    cache = state_dir / CACHE_NAME
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert json.loads(cache.read_text())  # the clean verdict, kept


def test_failures_are_warnings_on_the_first_screen(workspace: Path, sendgrid, run_cli, serve_zone,
                                                   state_dir: Path) -> None:
    serve_zone(broken_zone("quarantine"))
    approve(run_cli)
    sent = live_send(run_cli, workspace)
    assert sent.exit_code == 0, sent.stderr
    assert "warning: example.com: SPF record: example.com has no SPF record" in sent.stderr
    assert "fix: add a TXT record at example.com (name `@`): v=spf1 include:sendgrid.net ~all" in sent.stderr
    assert "`mailer doctor` shows every check of example.com" in sent.stderr
    assert ledger_states(state_dir)["accepted"] == 1
    assert not (state_dir / CACHE_NAME).exists()  # a failing verdict is asked again next time


def test_dmarc_reject_that_the_mail_would_fail_stops_the_send(workspace: Path, sendgrid, run_cli, serve_zone,
                                                               state_dir: Path) -> None:
    serve_zone(broken_zone("reject"))
    sent = run_cli("send", SAMPLE_ISSUE, "--test-to", "me@example.com", "--live")
    assert sent.exit_code == 1
    assert "publishes DMARC p=reject, and this mail could pass neither SPF nor DKIM aligned" in sent.stderr
    assert "Nothing was sent" in sent.stderr and "hint:" in sent.stderr and "mailer doctor" in sent.stderr
    assert sendgrid.requests == []


def test_no_dns_is_a_note_never_a_stop(workspace: Path, sendgrid, run_cli, monkeypatch) -> None:
    sock, address = silent_server()
    monkeypatch.setenv("MAILER_DNS", address)
    try:
        sent = run_cli("send", SAMPLE_ISSUE, "--test-to", "me@example.com", "--live")
    finally:
        sock.close()
    assert sent.exit_code == 0, sent.stderr
    assert "note: the sending domain example.com was not checked (DNS did not answer); sending anyway" in sent.stderr
    assert len(sendgrid.requests) == 1


def test_a_dry_run_asks_no_dns(workspace: Path, run_cli, monkeypatch, state_dir: Path) -> None:
    monkeypatch.setenv("MAILER_DNS", "not an address")  # any lookup would be an error
    csv = str(write_subscribers(workspace, ["ada@example.com,Ada,Lovelace,subscribed,"]))
    assert run_cli("send", SAMPLE_ISSUE, "--subscribers", csv).exit_code == 0
    assert not (state_dir / CACHE_NAME).exists()


def test_the_verdict_is_kept_for_a_day(tmp_path: Path) -> None:
    zone = good_zone()
    server = start_dns(zone)
    sending = Sending("example.com", return_path="em1234.example.com")
    try:
        first = check_before_send(sending, Resolver(parse_dns_server(server.address), timeout=1), tmp_path, now=1000)
    finally:
        server.stop()
    assert not first.failures and not first.from_cache and first.policy == "quarantine"
    nothing = Resolver(parse_dns_server("127.0.0.1:9"), timeout=0.1)  # would time out if asked
    again = check_before_send(sending, nothing, tmp_path, now=1000 + 23 * 3600)
    assert again.from_cache and again.policy == "quarantine" and not again.unknown
    later = check_before_send(sending, nothing, tmp_path, now=1000 + 25 * 3600)
    assert not later.from_cache and later.unknown


def test_a_fifo_or_garbage_where_the_cache_was_is_no_cache_never_a_hang(tmp_path: Path) -> None:
    import os

    sending = Sending("example.com", return_path="em1234.example.com")
    nothing = Resolver(parse_dns_server("127.0.0.1:9"), timeout=0.1)
    os.mkfifo(tmp_path / CACHE_NAME)  # would wait for a writer for ever if opened as a file
    assert check_before_send(sending, nothing, tmp_path, now=1000).unknown
    (tmp_path / CACHE_NAME).unlink()
    (tmp_path / CACHE_NAME).write_bytes(b"[" * 100_000)  # JSON nested past the parser's depth
    assert check_before_send(sending, nothing, tmp_path, now=1000).unknown

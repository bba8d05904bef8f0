"""The SMTP backend against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import socket
import sqlite3
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from mailer.deliver.backends.smtp import parse_url


class Recorder:
    """An aiosmtpd handler that keeps every message and can refuse or hang up on chosen ones."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes, list[str]]] = []
        self.sessions: set[int] = set()
        self.refuse: set[str] = set()
        self.refuse_at_data: set[str] = set()  # said 250 to RCPT, refused later (aiosmtpd: DATA gets 503)
        self.hang_up_after: int | None = None
        self.relay_denied = False  # refuse every recipient, the way a misconfigured relay does

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.relay_denied:
            return "550 5.7.1 Relaying denied"
        if address in self.refuse:
            return "550 5.1.1 no such user"
        if address in self.refuse_at_data:
            return "250 OK"  # not added to the envelope: the DATA command is then refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.sessions.add(id(session))
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or
                              envelope.content, list(envelope.mail_options)))
        if self.hang_up_after is not None and len(self.messages) == self.hang_up_after:
            server.transport.close()  # the connection drops; the client must reconnect
        return "250 Message accepted"


def free_port() -> int:
    """A free port on loopback: aiosmtpd's readiness check cannot use port 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch):
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True,
                            server_hostname="localhost")
    controller.start()
    monkeypatch.setenv("MAILER_SMTP_URL", f"smtp+insecure://127.0.0.1:{port}")
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", "smtp-test-secret")
    yield recorder
    controller.stop()


def parse(data: bytes):
    return BytesParser(policy=policy.default).parsebytes(data)


def subscribers_csv(folder: Path, rows: list[str]) -> str:
    path = folder / "subs.csv"
    path.write_text("email,first_name,last_name,status\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def test_test_send_over_smtp_has_proper_mime_and_utf8(workspace: Path, smtp_server: Recorder, run_cli) -> None:
    csv = subscribers_csv(workspace, ["zoe@example.com,Zoë,Müller,subscribed"])
    result = run_cli("send", "issues/2020-12-13-zh.yaml", "--backend", "smtp", "--subscribers", csv,
                     "--test-to", "editor@example.com", "--live")
    assert result.exit_code == 0, result.stderr
    ((sender, recipients, data, _),) = smtp_server.messages
    assert (sender, recipients) == ("newsletter@example.com", ["editor@example.com"])
    message = parse(data)
    assert str(message["Subject"]) == "[TEST] NLP 密码 | 12.13.20 🔥"
    assert message["Message-ID"] and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_payload()
    assert text.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    assert "嘿 Zoë，欢迎回来！" in text.get_content()
    assert "嘿 Zoë，欢迎回来！" in html.get_content()
    assert "👨‍💻" in html.get_content()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_list_send_reuses_one_connection_and_records_each_message(workspace: Path, smtp_server: Recorder, run_cli,
                                                                  tmp_path: Path) -> None:
    rows = [f"r{i}@example.com,R{i},,subscribed" for i in range(12)]
    csv = subscribers_csv(workspace, rows)
    run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--subscribers", csv,
            "--test-to", "editor@example.com", "--live")
    result = run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--subscribers", csv, "--live", "--yes")
    assert result.exit_code == 0, result.stderr
    assert [m[1] for m in smtp_server.messages[1:]] == [[f"r{i}@example.com"] for i in range(12)]
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    rows_db = db.execute("SELECT state, message_id FROM deliveries").fetchall()
    assert len(rows_db) == 12 and all(state == "accepted" and mid.startswith("<") for state, mid in rows_db)
    assert len(smtp_server.sessions) == 2  # one connection for the test send, one for the list


def test_reconnects_when_the_server_drops_the_connection(workspace: Path, smtp_server: Recorder, run_cli) -> None:
    smtp_server.hang_up_after = 3
    csv = subscribers_csv(workspace, [f"r{i}@example.com,R{i},,subscribed" for i in range(6)])
    result = run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--subscribers", csv, "--live",
                     "--yes", "--force")
    # The message whose reply was lost is uncertain (it was delivered!); the others went on a new connection.
    assert [m[1][0] for m in smtp_server.messages] == [f"r{i}@example.com" for i in range(6)]
    assert result.exit_code == 3
    assert "uncertain" in result.stdout


def test_refused_recipient_fails_without_stopping_the_others(workspace: Path, smtp_server: Recorder,
                                                            run_cli) -> None:
    smtp_server.refuse = {"gone@example.com"}
    csv = subscribers_csv(workspace, ["a@example.com,A,,subscribed", "gone@example.com,G,,subscribed",
                                      "b@example.com,B,,subscribed"])
    result = run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--subscribers", csv, "--live",
                     "--yes", "--force")
    assert result.exit_code == 3
    assert [m[1][0] for m in smtp_server.messages] == ["a@example.com", "b@example.com"]
    status = run_cli("status", "issues/2020-12-13.yaml")
    assert "gone@example.com: RCPT TO gone@example.com: the server answered 550" in status.stdout


def test_refused_data_command_fails_the_recipient_instead_of_uncertain(workspace: Path, smtp_server: Recorder,
                                                                     run_cli, tmp_path: Path) -> None:
    # Some servers accept RCPT and refuse at the DATA command (no valid recipients): the message
    # never left, so the recipient failed; `uncertain` would hold them back as maybe delivered.
    smtp_server.refuse_at_data = {"gone@example.com"}
    csv = subscribers_csv(workspace, ["a@example.com,A,,subscribed", "gone@example.com,G,,subscribed",
                                      "b@example.com,B,,subscribed"])
    result = run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--subscribers", csv, "--live",
                     "--yes", "--force")
    assert result.exit_code == 3
    assert [m[1][0] for m in smtp_server.messages] == ["a@example.com", "b@example.com"]
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    ledger = {email: (state, error) for email, state, error in db.execute("SELECT email, state, error FROM deliveries")}
    db.close()
    assert ledger["gone@example.com"][0] == "failed"
    assert "DATA: the server answered 503" in ledger["gone@example.com"][1]
    assert ledger["a@example.com"][0] == ledger["b@example.com"][0] == "accepted"
    assert len(smtp_server.sessions) == 1  # the refusal did not cost the connection


def test_many_dead_mailboxes_in_a_row_do_not_stop_the_send(workspace: Path, smtp_server: Recorder,
                                                            run_cli) -> None:
    # A list sorted by sign-up date can hold a run of long-gone addresses: each refusal is about
    # one mailbox, not a sign that the server is failing, so the readers after them still get it.
    smtp_server.refuse = {f"gone{i}@example.com" for i in range(7)}
    csv = subscribers_csv(workspace, [f"gone{i}@example.com,G,,subscribed" for i in range(7)]
                          + ["alive@example.com,A,,subscribed"])
    result = run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--subscribers", csv, "--live",
                     "--yes", "--force")
    assert result.exit_code == 3  # not everyone was accepted
    assert "in a row" not in result.stdout + result.stderr
    assert [m[1][0] for m in smtp_server.messages] == ["alive@example.com"]


def test_a_server_refusing_everyone_stops_the_send_after_five(workspace: Path, smtp_server: Recorder, run_cli,
                                                               tmp_path: Path) -> None:
    smtp_server.relay_denied = True
    csv = subscribers_csv(workspace, [f"r{i}@example.com,R{i},,subscribed" for i in range(40)])
    result = run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--subscribers", csv, "--live",
                     "--yes", "--force")
    assert result.exit_code == 3
    assert "stopped after 5 failed batches in a row" in result.stdout + result.stderr
    assert "Relaying denied" in result.stdout + result.stderr
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    counts = dict(db.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state").fetchall())
    db.close()
    assert counts == {"failed": 5, "queued": 35}


def test_non_ascii_address_uses_smtputf8(workspace: Path, smtp_server: Recorder, run_cli) -> None:
    csv = subscribers_csv(workspace, ["用户@例子.广告,用户,,subscribed"])
    result = run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--subscribers", csv, "--live",
                     "--yes", "--force")
    assert result.exit_code == 0, result.stderr
    ((_, recipients, data, options),) = smtp_server.messages
    assert recipients == ["用户@例子.广告"]
    assert "SMTPUTF8" in options
    assert str(parse(data)["To"]) == "用户 <用户@例子.广告>"


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://user:p%40ss@mail.example.com:587", ("mail.example.com", 587, False, True, "user", "p@ss")),
    ("smtps://u:p@mail.example.com", ("mail.example.com", 465, True, False, "u", "p")),
    ("smtp+insecure://127.0.0.1:2525", ("127.0.0.1", 2525, False, False, None, None)),
])
def test_smtp_url_forms(url: str, expected) -> None:
    s = parse_url(url)
    assert (s.host, s.port, s.implicit_tls, s.starttls, s.username, s.password) == expected
    assert "p@ss" not in repr(s) and ":p" not in repr(s)


def test_missing_smtp_url_is_a_clear_error(workspace: Path, run_cli, monkeypatch) -> None:
    monkeypatch.delenv("MAILER_SMTP_URL", raising=False)
    result = run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--test-to", "me@example.com", "--live")
    assert result.exit_code == 1
    assert "MAILER_SMTP_URL is not set" in result.stderr

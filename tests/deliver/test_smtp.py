"""The SMTP backend against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailer.deliver.backends.smtp import parse_url
from tests.conftest import SAMPLE_ISSUE, ledger_states, read_ledger, write_subscribers
from tests.loopback_smtp import Recorder, parse


def readers(folder: Path, *emails: str) -> str:
    """A subscribers CSV of these subscribed addresses (first name: the local part, capitalised)."""
    return str(write_subscribers(folder, [f"{email},{email.split('@')[0].capitalize()},,subscribed,"
                                          for email in emails]))


def send_to_list(run_cli, csv: str, *extra: str):
    """`mailer send` of the sample issue over SMTP to everyone in `csv`, confirmed, past the approval gate."""
    return run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--subscribers", csv, "--live", "--yes", "--force",
                   *extra)


def test_test_send_over_smtp_has_proper_mime_and_utf8(workspace: Path, smtp_server: Recorder, run_cli) -> None:
    csv = str(write_subscribers(workspace, ["zoe@example.com,Zoë,Müller,subscribed,"]))
    result = run_cli("send", "issues/2020-12-13-zh.yaml", "--backend", "smtp", "--subscribers", csv,
                     "--test-to", "editor@example.com", "--live")
    assert result.exit_code == 0, result.stderr
    ((sender, recipients, data, _),) = smtp_server.messages
    assert (sender, recipients) == ("newsletter@example.com", ["editor@example.com"])
    message = parse(data)
    assert str(message["Subject"]) == "[TEST] The NLP Cypher 中文版 | 12.13.20 🔥"
    assert message["Message-ID"] and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_payload()
    assert text.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    assert "嘿 Zoë，欢迎回来！" in text.get_content()
    assert "嘿 Zoë，欢迎回来！" in html.get_content()
    assert "👨‍💻" in html.get_content()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_list_send_reuses_one_connection_and_records_each_message(workspace: Path, smtp_server: Recorder, run_cli,
                                                                  state_dir: Path) -> None:
    csv = readers(workspace, *[f"r{i}@example.com" for i in range(12)])
    run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--subscribers", csv,
            "--test-to", "editor@example.com", "--live")
    result = run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--subscribers", csv, "--live", "--yes")
    assert result.exit_code == 0, result.stderr
    assert [m[1] for m in smtp_server.messages[1:]] == [[f"r{i}@example.com"] for i in range(12)]
    rows = read_ledger(state_dir, "SELECT state, message_id FROM deliveries")
    assert len(rows) == 12 and all(state == "accepted" and mid.startswith("<") for state, mid in rows)
    assert len(smtp_server.sessions) == 2  # one connection for the test send, one for the list


def test_workers_send_over_that_many_connections_each_message_once(workspace: Path, smtp_server: Recorder,
                                                                    run_cli, state_dir: Path) -> None:
    csv = readers(workspace, *[f"r{i}@example.com" for i in range(12)])
    run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--subscribers", csv, "--test-to", "editor@example.com",
            "--live")
    smtp_server.expect_at_once = 3  # each DATA waits until the three connections are sending at once
    result = run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--subscribers", csv, "--live", "--yes",
                     "--workers", "3")
    assert result.exit_code == 0, result.stderr
    assert sorted(m[1][0] for m in smtp_server.messages[1:]) == sorted(f"r{i}@example.com" for i in range(12))
    assert smtp_server.most_at_once == 3 and len(smtp_server.sessions) == 1 + 3  # the test send's, and three
    assert read_ledger(state_dir, "SELECT state, COUNT(*) FROM deliveries GROUP BY state") == [("accepted", 12)]


def test_a_dry_run_over_smtp_plans_every_message_and_sends_none(workspace: Path, smtp_server: Recorder, run_cli,
                                                                   state_dir: Path) -> None:
    # Six messages: the dry run's worker processes are for SendGrid's request bodies; SMTP's plan needs none.
    csv = readers(workspace, *[f"r{i}@example.com" for i in range(6)])
    result = run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--subscribers", csv)
    assert result.exit_code == 0, result.stderr
    manifest = (state_dir / "outbox" / "2020-12-13" / "manifest.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["email"] for line in manifest.splitlines()] == [f"r{i}@example.com" for i in range(6)]
    assert smtp_server.messages == []


def test_reconnects_when_the_server_drops_the_connection(workspace: Path, smtp_server: Recorder, run_cli) -> None:
    smtp_server.hang_up_after = 3
    csv = readers(workspace, *[f"r{i}@example.com" for i in range(6)])
    result = send_to_list(run_cli, csv)
    # The message whose reply was lost is uncertain (it was delivered!); the others went on a new connection.
    assert [m[1][0] for m in smtp_server.messages] == [f"r{i}@example.com" for i in range(6)]
    assert result.exit_code == 3
    assert "uncertain" in result.stdout


@pytest.mark.parametrize(("refuse_at", "reason"), [
    ("refuse", "RCPT TO gone@example.com: the server answered 550"),
    # Some servers accept RCPT and refuse at the DATA command (no valid recipients): the message
    # never left, so the recipient failed; `uncertain` would hold them back as maybe delivered.
    ("refuse_at_data", "DATA: the server answered 503"),
])
def test_a_refused_recipient_fails_alone_and_the_others_get_it_on_the_same_connection(
        workspace: Path, smtp_server: Recorder, run_cli, state_dir: Path, refuse_at: str, reason: str) -> None:
    setattr(smtp_server, refuse_at, {"gone@example.com"})
    result = send_to_list(run_cli, readers(workspace, "a@example.com", "gone@example.com", "b@example.com"))
    assert result.exit_code == 3
    assert [m[1][0] for m in smtp_server.messages] == ["a@example.com", "b@example.com"]
    rows = read_ledger(state_dir, "SELECT email, state, error FROM deliveries")
    ledger = {email: (state, error) for email, state, error in rows}
    assert ledger["gone@example.com"][0] == "failed"
    assert ledger["a@example.com"][0] == ledger["b@example.com"][0] == "accepted"
    assert len(smtp_server.sessions) == 1  # the refusal did not cost the connection
    assert f"gone@example.com: {reason}" in run_cli("status", SAMPLE_ISSUE).stdout


def test_a_servers_reply_with_terminal_escapes_is_recorded_and_shown_as_text(workspace: Path, smtp_server: Recorder,
                                                                             run_cli, state_dir: Path) -> None:
    # The server's words reach the ledger and every `mailer status`: an escape there cleared the screen.
    smtp_server.refuse = {"gone@example.com"}
    smtp_server.refusal = "550 5.1.1 no such user \x1b[2J\x1b]0;owned\x07"
    result = send_to_list(run_cli, readers(workspace, "a@example.com", "gone@example.com"))
    assert result.exit_code == 3 and "\x1b" not in result.stderr
    (error,) = [error for (error,) in read_ledger(state_dir, "SELECT error FROM deliveries WHERE error IS NOT NULL")]
    assert error.endswith("550 5.1.1 no such user \\x1b[2J\\x1b]0;owned\\x07")
    status = run_cli("status", SAMPLE_ISSUE).stdout
    assert "no such user \\x1b[2J" in status and "\x1b" not in status


def test_many_dead_mailboxes_in_a_row_do_not_stop_the_send(workspace: Path, smtp_server: Recorder,
                                                            run_cli) -> None:
    # A list sorted by sign-up date can hold a run of long-gone addresses: each refusal is about
    # one mailbox, not a sign that the server is failing, so the readers after them still get it.
    smtp_server.refuse = {f"gone{i}@example.com" for i in range(7)}
    csv = readers(workspace, *[f"gone{i}@example.com" for i in range(7)], "alive@example.com")
    result = send_to_list(run_cli, csv)
    assert result.exit_code == 3  # not everyone was accepted
    assert "in a row" not in result.stdout + result.stderr
    assert [m[1][0] for m in smtp_server.messages] == ["alive@example.com"]


def test_a_server_refusing_everyone_stops_the_send_after_five(workspace: Path, smtp_server: Recorder, run_cli,
                                                               state_dir: Path) -> None:
    smtp_server.relay_denied = True
    csv = readers(workspace, *[f"r{i}@example.com" for i in range(40)])
    result = send_to_list(run_cli, csv)
    assert result.exit_code == 3
    assert "stopped after 5 failed batches in a row" in result.stdout + result.stderr
    assert "Relaying denied" in result.stdout + result.stderr
    assert ledger_states(state_dir) == {"failed": 5, "queued": 35}


def test_non_ascii_address_uses_smtputf8(workspace: Path, smtp_server: Recorder, run_cli) -> None:
    csv = readers(workspace, "用户@例子.广告")
    result = send_to_list(run_cli, csv)
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
    result = run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--test-to", "me@example.com", "--live")
    assert result.exit_code == 1
    assert "MAILER_SMTP_URL is not set" in result.stderr


def test_only_exactly_validated_addresses_reach_the_envelope(workspace: Path, smtp_server: Recorder, run_cli) -> None:
    # smtplib keeps only what follows a ':' in an address: these would be mailed to ada@ (twice) and victim@.
    csv = readers(workspace, "ada@example.org", "x:ada@example.org", "news:victim@example.net")
    refused = send_to_list(run_cli, csv)
    assert refused.exit_code == 1 and smtp_server.messages == []
    assert "subs.csv:3: invalid email address 'x:ada@example.org'" in refused.stderr
    assert "subs.csv:4: invalid email address 'news:victim@example.net'" in refused.stderr
    skipped = send_to_list(run_cli, csv, "--skip-invalid")
    assert skipped.exit_code == 0, skipped.stderr
    assert [recipients for _, recipients, _, _ in smtp_server.messages] == [["ada@example.org"]]
    test_send = run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--test-to", "news:victim@example.net", "--live")
    assert test_send.exit_code == 2 and "--test-to: invalid email address" in test_send.stderr
    assert len(smtp_server.messages) == 1


def test_a_name_that_would_inject_a_header_never_reaches_a_message(workspace: Path, smtp_server: Recorder, run_cli,
                                                                   state_dir: Path) -> None:
    rows = ["evil@example.com,=?utf-8?q?X=0D=0ABcc:_x@evil.example?=,,subscribed,",
            'crlf@example.com,"Ada\r\nBcc: x@evil.example",,subscribed,',
            "sep@example.com,Ada\u2028Bcc: x@evil.example,,subscribed,",
            "last@example.com,Ok,=?utf-8?b?QQ0KQmNjOiB4QGV2aWwuZXhhbXBsZQ==?=,subscribed,",
            "ok@example.com,Ok,,subscribed,"]
    csv = str(write_subscribers(workspace, rows))
    refused = send_to_list(run_cli, csv)
    assert refused.exit_code == 1 and smtp_server.messages == []
    for line, column in ((2, "first_name"), (3, "first_name"), (5, "first_name"), (6, "last_name")):
        assert f"subs.csv:{line}: {column} contains" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    # The dry run first: after the live send, ok@ is already served and the dry run writes no sample.
    dry_run = run_cli("send", SAMPLE_ISSUE, "--subscribers", csv, "--skip-invalid", "--backend", "sendgrid")
    assert dry_run.exit_code == 0, dry_run.stderr
    skipped = send_to_list(run_cli, csv, "--skip-invalid")
    assert skipped.exit_code == 0, skipped.stderr
    assert [recipients for _, recipients, _, _ in smtp_server.messages] == [["ok@example.com"]]
    outbox = state_dir / "outbox" / "2020-12-13"
    messages = [data for _, _, data, _ in smtp_server.messages] + [p.read_bytes() for p in outbox.glob("eml/*")]
    requests = [p.read_bytes() for p in outbox.glob("sendgrid/*.json")]
    assert len(messages) > 1 and requests
    for data in messages + requests:
        assert b"evil.example" not in data and b"Bcc" not in data
    for data in messages:
        assert parse(data)["Bcc"] is None


def test_message_lines_fit_smtp_and_long_ones_are_encoded_not_cut(workspace: Path, smtp_server: Recorder,
                                                                  run_cli) -> None:
    # A paragraph of 400 Chinese characters is 1,200 bytes on one line: over SMTP's 998-octet limit.
    paragraph = "自然语言处理" * 66 + "。"
    issue = workspace / "issues" / "2020-12-13-zh.yaml"
    source = issue.read_text(encoding="utf-8")
    issue.write_text(source.replace("intro: |\n", f"intro: |\n  {paragraph}\n\n", 1), encoding="utf-8")
    csv = readers(workspace, "zoe@example.com")
    assert run_cli("send", "issues/2020-12-13-zh.yaml", "--backend", "smtp", "--subscribers", csv,
                   "--test-to", "editor@example.com", "--live").exit_code == 0
    assert run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--subscribers", csv,
                   "--test-to", "editor@example.com", "--live").exit_code == 0
    (*_, long_data, _), (*_, sample_data, _) = smtp_server.messages
    for data in (long_data, sample_data):
        assert max(len(line) for line in data.splitlines()) <= 998
        assert parse(data)["MIME-Version"] == "1.0"

    text, html = parse(long_data).get_payload()
    # The HTML part carries the paragraph on one line: encoded, folded at 76, and the same text once decoded.
    assert html["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert max(len(line) for line in html.get_payload().splitlines()) <= 76
    assert paragraph in html.get_content()
    # The sample's parts fit as they are: unencoded 8bit, readable in the raw message.
    assert [part["Content-Transfer-Encoding"] for part in parse(sample_data).get_payload()] == ["8bit", "8bit"]
    assert "Hey Zoe, welcome back!" in sample_data.decode("utf-8")


def test_a_long_first_name_is_wrapped_in_the_text_part_as_received(workspace: Path, smtp_server: Recorder,
                                                                   run_cli) -> None:
    csv = str(write_subscribers(workspace, ["maria@example.com,Maria-Magdalena Wilhelmina Alexandrina,,subscribed,"]))
    assert send_to_list(run_cli, csv).exit_code == 0
    ((*_, data, _),) = smtp_server.messages
    text = parse(data).get_payload()[0].get_content()
    assert max(len(line) for line in text.splitlines() if "://" not in line) <= 72
    assert "Hey Maria-Magdalena Wilhelmina Alexandrina, welcome back!" in " ".join(text.split())


def test_lines_starting_with_a_dot_arrive_as_written(workspace: Path, smtp_server: Recorder, run_cli) -> None:
    # SMTP ends a message with a line holding only a dot, so a sender doubles the dot of every line
    # that starts with one and the server removes it again (RFC 5321 4.5.2). Every HTML part has such
    # lines: its CSS rules (".mj-column-per-100 {"); an undoubled one arrives without its dot.
    from mailer.compose.build import build_issue
    from mailer.config import load_config

    csv = readers(workspace, "ada@example.com", "bob@example.com")
    assert send_to_list(run_cli, csv, "--workers", "2").exit_code == 0
    rendered = build_issue(workspace / SAMPLE_ISSUE, load_config(workspace))
    dotted = [line for line in rendered.html.splitlines() if line.startswith(".")]
    assert dotted
    for *_, data, _ in smtp_server.messages:
        html = parse(data).get_payload()[1].get_content()
        assert [line for line in html.splitlines() if line.startswith(".")] == dotted


def test_east_asian_names_arrive_family_name_first_in_an_encoded_to_header(workspace: Path, smtp_server: Recorder,
                                                                            run_cli) -> None:
    csv = str(write_subscribers(workspace, ["han@example.org,梅梅,韩,subscribed,",
                                            "kim@example.org,민준,김,subscribed,",
                                            "ada@example.org,Ada,Lovelace,subscribed,"]))
    result = send_to_list(run_cli, csv)
    assert result.exit_code == 0, result.stderr
    received = {recipients[0]: data for _, recipients, data, _ in smtp_server.messages}
    for address, name in (("han@example.org", "韩梅梅"), ("kim@example.org", "김민준"),
                          ("ada@example.org", "Ada Lovelace")):
        data = received[address]
        head = data.split(b"\r\n\r\n", 1)[0]
        assert head.isascii()  # an ASCII address: the name goes as an RFC 2047 word, no SMTPUTF8 needed
        message = parse(data)
        assert message["To"].addresses[0].display_name == name
        assert data.count(b"MIME-Version:") == 1
        assert [part["MIME-Version"] for part in message.iter_parts()] == [None, None]

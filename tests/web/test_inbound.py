"""SendGrid's Inbound Parse into `mailer serve`, a running process: mail that comes back, posted as SendGrid does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.deliver.message import TEST_COPY
from tests.conftest import SAMPLE_ISSUE
from tests.fake_sendgrid import FakeSendGrid
from tests.inbound_mail import arf, dsn, form_data, parse_post, unsubscribe_mail
from tests.web.test_service import ADA, Running, serving, token_for
from tests.web.test_webhook import sent  # noqa: F401 - the fixture: the sample issue sent live to the list

KEY = "k" * 8 + "inbound-key-for-the-tests-0123456789"
INBOUND = f"/webhooks/sendgrid-inbound/{KEY}"
ALAN, NEVER = "alan.turing@example.com", "never.mailed@example.net"
BY_EMAIL = "unsubscribed (by email, to the List-Unsubscribe address)"


@pytest.fixture
def service(workspace: Path, state_dir: Path) -> Iterator[Running]:
    with serving(workspace, state_dir, MAILER_INBOUND_KEY=KEY) as running:
        yield running


def post(service: Running, raw: bytes, *, send_raw: bool, target: str = INBOUND) -> tuple[int, dict]:
    body, content_type = parse_post(raw, send_raw=send_raw)
    status, _, text = service.request("POST", target, body, {"Content-Type": content_type})
    return status, json.loads(text) if status == 200 else {"text": text}


def dry_run(run_cli, issue: str = SAMPLE_ISSUE) -> str:
    result = run_cli("send", issue, "--subscribers", "subscribers.example.csv")
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("send_raw", [False, True], ids=["parsed", "send-raw"])
def test_a_mailed_unsubscribe_keeps_the_reader_out_of_the_next_send(service: Running, run_cli, send_raw: bool) -> None:
    mail = unsubscribe_mail(f"unsubscribe {token_for(ADA)}")
    for _ in range(2):  # SendGrid may post one mail twice: the second changes nothing
        status, answer = post(service, mail, send_raw=send_raw)
        assert status == 200 and answer["unsubscribed"] == 1 and answer["kinds"] == {"unsubscribe": 1}
    assert service.reasons(ADA) == [BY_EMAIL]
    stdout = dry_run(run_cli)
    assert f"skip {ADA} (line 2): suppressed: {BY_EMAIL}" in stdout
    assert ADA not in stdout.split("would send to:")[1].splitlines()[0]


def test_the_log_line_says_what_was_done_and_names_nobody(workspace: Path, state_dir: Path) -> None:
    with serving(workspace, state_dir, MAILER_INBOUND_KEY=KEY) as running:
        assert post(running, unsubscribe_mail(f"unsubscribe {token_for(ADA)}"), send_raw=False)[0] == 200
        assert post(running, dsn(NEVER), send_raw=True)[0] == 200
    assert "inbound mail: 1 unsubscribe(s), 0 hard bounce(s), 0 complaint(s) recorded" in running.logs
    assert "ignored: 1 never sent to" in running.logs
    assert KEY not in running.logs and NEVER not in running.logs  # (serving checks Ada's address and token)


@pytest.mark.parametrize("send_raw", [False, True], ids=["parsed", "send-raw"])
def test_a_bounce_and_a_complaint_by_email_keep_readers_out_only_if_they_were_mailed(
        service: Running, sent: FakeSendGrid, run_cli, send_raw: bool) -> None:  # noqa: F811
    status, answer = post(service, dsn(ALAN), send_raw=send_raw)  # Postfix's bounce, no token in what it returns
    assert status == 200 and answer["bounced"] == 1
    assert service.reasons(ALAN) == ["bounce (5.1.1 550 5.1.1 <alan.turing@example.com>: Recipient address "
                                     "rejected: User unknown, by email)"]
    # A complaint whose recipient is redacted: the returned message's token says who.
    status, answer = post(service, arf(recipient=None, token=token_for(ADA)), send_raw=send_raw)
    assert status == 200 and answer["complained"] == 1
    assert service.reasons(ADA) == ["spam report (abuse, by email)"]
    # A bounce for an address never mailed, and a temporary failure, suppress nobody.
    assert post(service, dsn(NEVER), send_raw=send_raw)[1]["ignored"] == {"never sent to": 1}
    assert post(service, dsn("li.lei@example.com", status="4.2.2", diagnostic="smtp; 452 4.2.2 Mailbox full"),
                send_raw=send_raw)[1]["ignored"] == {"temporary failure (4.x.x), not suppressed": 1}
    assert service.reasons(NEVER) == [] and service.reasons("li.lei@example.com") == []
    stdout = dry_run(run_cli, "issues/2020-12-13-zh.yaml")
    assert f"skip {ALAN} (line 3): suppressed: bounce (5.1.1" in stdout
    assert f"skip {ADA} (line 2): suppressed: spam report (abuse, by email)" in stdout


def test_a_bounce_returning_our_token_needs_no_ledger(service: Running) -> None:
    """A `mailer serve` on a machine of its own has no ledger: the returned message's signed token is the proof."""
    status, answer = post(service, dsn(ADA, token=token_for(ADA)), send_raw=True)
    assert status == 200 and answer["bounced"] == 1
    assert service.reasons(ADA)[0].startswith("bounce (5.1.1")


# -- hostile input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subject", [
    "unsubscribe",  # a person asking by hand: left for the editor
    "unsubscribe garbage",
    f"unsubscribe {token_for(ADA)[:-3]}",  # cut short
    f"unsubscribe {token_for(ADA, list_id='Another Letter <another.example.com>')}",  # another newsletter's
    f"unsubscribe {token_for(ADA, secret='another secret')}",  # signed with another key: forged
    f"unsubscribe {token_for(TEST_COPY)}",  # the editor's test copy names nobody
    "unsubscribe " + "A" * 5000 + "." + "B" * 24,
])
def test_unsubscribe_mails_without_a_token_of_ours_do_nothing_whoever_they_claim_to_be_from(
        service: Running, subject: str) -> None:
    mail = unsubscribe_mail(subject, sender=ADA)  # a forged From: the reader's own address
    status, answer = post(service, mail, send_raw=False)
    assert status == 200 and answer["unsubscribed"] == 0 and answer["kinds"] == {"unsubscribe": 1}
    assert service.reasons(ADA) == []


def test_reports_about_another_senders_mail_or_naming_someone_else_do_nothing(service: Running) -> None:
    other = token_for(ADA, list_id="Another Letter <another.example.com>")
    assert post(service, dsn(ADA, token=other), send_raw=True)[1]["ignored"] == {"about another sender's mail": 1}
    # Our token for Ada, returned in a bounce that names Alan: forged.
    assert post(service, dsn(ALAN, token=token_for(ADA)), send_raw=True)[1]["ignored"] == {
        "names someone else than the returned message": 1}
    assert post(service, arf(recipient=None, token=token_for(ADA), feedback_type="not-spam"), send_raw=True
                )[1]["ignored"] == {"not a complaint (its feedback type)": 1}
    assert service.reasons(ADA) == [] and service.reasons(ALAN) == []


def test_a_wrong_key_or_no_key_is_the_404_of_an_unknown_path(service: Running, workspace: Path,
                                                            state_dir: Path) -> None:
    unknown = service.request("GET", "/no/such/page")
    body, content_type = parse_post(unsubscribe_mail(f"unsubscribe {token_for(ADA)}"), send_raw=False)
    for target in (INBOUND[:-1], INBOUND + "x", INBOUND.upper(), "/webhooks/sendgrid-inbound/",
                   "/webhooks/sendgrid-inbound"):
        for method in ("POST", "GET"):
            status, _, page = service.request(method, target, body, {"Content-Type": content_type})
            assert (status, page) == (404, unknown[2]), target
    assert service.request("GET", INBOUND)[0] == 405  # the right key: only POST
    assert service.reasons(ADA) == []
    with serving(workspace, state_dir) as without:  # MAILER_INBOUND_KEY unset: no endpoint at all
        status, _, page = without.request("POST", INBOUND, body, {"Content-Type": content_type})
        assert (status, page) == (404, unknown[2])
    assert without.reasons(ADA) == []


def test_a_short_key_stops_serve(workspace: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", "s")
    monkeypatch.setenv("MAILER_INBOUND_KEY", "short/key")
    result = run_cli("serve", "--port", "1")
    assert result.exit_code == 1 and "MAILER_INBOUND_KEY must be 32 to 200 letters" in result.stderr
    assert "short/key" not in result.stderr


def test_huge_deep_and_malformed_posts_are_answered_without_acting(service: Running) -> None:
    # Declared larger than SendGrid's 30 MB and its form: refused before a byte of it is read.
    status, headers, _ = service.request("POST", INBOUND, b"x", {"Content-Type": "multipart/form-data; boundary=b",
                                                                 "Content-Length": str(40 * 1024 * 1024)})
    assert status == 413 and headers["connection"] == "close"
    # A message nested 2,000 parts deep, in SendGrid's raw field: well-formed, so 200, and nothing done.
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(2000))
    deep = (b"From: " + ADA.encode() + b"\r\nSubject: unsubscribe " + token_for(ADA).encode() + b"\r\n" + head
            + b"Content-Type: text/plain\r\n\r\nhi\r\n")
    status, answer = post(service, deep, send_raw=True)
    assert status == 200 and answer["kinds"] == {"unreadable": 1} and answer["unsubscribed"] == 0
    # Not a form, a form of nothing, JSON: 4xx, nothing done.
    assert service.request("POST", INBOUND, b"{}", {"Content-Type": "application/json"})[0] == 415
    body, content_type = form_data([])
    assert service.request("POST", INBOUND, b"garbage", {"Content-Type": content_type})[0] == 400
    assert service.reasons(ADA) == []


def test_the_charsets_field_is_honoured(service: Running) -> None:
    """Without "send raw" the subject comes in the charset `charsets` names for it: UTF-16 here."""
    mail = unsubscribe_mail(f"Re: unsubscribe {token_for(ADA)} (désabonnement)")
    body, content_type = parse_post(mail, send_raw=False, charset="utf-16")
    assert "unsubscribe".encode("utf-16-le") in body  # the subject field really is UTF-16
    status, _, text = service.request("POST", INBOUND, body, {"Content-Type": content_type})
    assert status == 200 and json.loads(text)["unsubscribed"] == 1


def test_clients_that_send_their_body_slowly_never_hold_up_the_other_posts(service: Running) -> None:
    import socket

    body, content_type = parse_post(unsubscribe_mail(f"unsubscribe {token_for(ADA)}"), send_raw=False)
    stalled = []
    for _ in range(3):  # more than the posts parsed at once (2), which used to be held while their bodies came
        connection = socket.create_connection(("127.0.0.1", service.port), timeout=30)
        connection.sendall(f"POST {INBOUND} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
        stalled.append(connection)
    try:
        status, _, text = service.request("POST", INBOUND, body, {"Content-Type": content_type})
        assert status == 200 and json.loads(text)["unsubscribed"] == 1
        for connection in stalled:  # answered while the slow ones were still sending
            connection.setblocking(False)
            with pytest.raises(BlockingIOError):
                connection.recv(1)
    finally:
        for connection in stalled:
            connection.close()


def test_a_charset_whose_codec_cannot_replace_is_read_as_utf8(service: Running) -> None:
    from tests.inbound_mail import form_data

    body, content_type = form_data([("subject", b"unsubscribe \xff", None, None),
                                    ("from", "ada@example.com", None, None),
                                    ("charsets", '{"subject": "idna", "text": "punycode"}', None, None),
                                    ("text", b"\xfe\xff", None, None)])
    status, _, text = service.request("POST", INBOUND, body, {"Content-Type": content_type})
    assert status == 200 and json.loads(text)["unsubscribed"] == 0  # read, and nothing done (before: a 500)

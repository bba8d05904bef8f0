"""`mailer suppressions pull` reading the mailbox mail comes back to (MAILER_MAILBOX_URL), on a real Dovecot."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from mailer.deliver.suppressions import SuppressionList
from tests.conftest import SAMPLE_ISSUE, SELF_SIGNED_CERT, UNSUBSCRIBE_SECRET
from tests.imap_server import PASSWORD, Dovecot, start_dovecot
from tests.inbound_mail import arf, dsn, unsubscribe_mail
from tests.loopback_smtp import Recorder
from tests.web.test_service import LIST_ID, token_for

ADA, ALAN, LI_LEI, NEVER = ("ada.lovelace@example.com", "alan.turing@example.com", "li.lei@example.com",
                            "never.mailed@example.net")


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture
def smtp_workspace(workspace: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample newsletter sent over SMTP, its mail coming back to the Dovecot mailbox (trusted via SSL_CERT_FILE)."""
    config = workspace / "mailer.yaml"
    config.write_text(config.read_text().replace("backend: sendgrid", "backend: smtp"))
    monkeypatch.setenv("MAILER_MAILBOX_URL", dovecot.url())
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    monkeypatch.setenv("SSL_CERT_FILE", str(SELF_SIGNED_CERT))
    return workspace


def reasons(state_dir: Path, email: str) -> list[str]:
    with SuppressionList.open(state_dir) as suppressions:
        return [item.describe() for item in suppressions.reasons(email)]


def mailto_subject(data: bytes) -> str:
    """The subject a mail client writes from a sent message's List-Unsubscribe mailto:."""
    header = str(message_from_bytes(data, policy=policy.default)["List-Unsubscribe"])
    mailto = next(part.strip(" <>") for part in header.split(",") if "mailto:" in part)
    return unquote(urlsplit(mailto).query.removeprefix("subject="))


def test_mail_in_the_mailbox_keeps_readers_out_of_the_next_send(
        smtp_workspace: Path, dovecot: Dovecot, smtp_server: Recorder, state_dir: Path, run_cli) -> None:
    sent = run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--subscribers", "subscribers.example.csv", "--live",
                   "--yes", "--force")
    assert sent.exit_code == 0, sent.stderr
    ada_copy = next(data for _, recipients, data, _ in smtp_server.messages if recipients == [ADA])
    dovecot.append(
        unsubscribe_mail(mailto_subject(ada_copy)),  # as Ada's mail client writes it from her copy's mailto:
        dsn(ALAN),  # the reader's server bounced it: no token, but the ledger says it was sent
        arf(recipient=None, token=token_for(LI_LEI)),  # a complaint, the recipient redacted
        dsn(NEVER),  # a bounce for an address never mailed
        unsubscribe_mail("Please unsubscribe me", sender="grace.hopper@example.com"),  # for the editor to read
        unsubscribe_mail("Re: The NLP Cypher #1"),  # a reader's reply
    )
    pull = run_cli("suppressions", "pull")
    assert pull.exit_code == 0, pull.stderr
    assert "Reading unseen mail in imaps://***@127.0.0.1:" in pull.stdout and PASSWORD not in pull.stdout + pull.stderr
    assert "6 message(s) read: 1 unsubscribe(s), 1 hard bounce(s), 1 complaint(s) recorded" in pull.stdout
    assert "ignored: 1 never sent to" in pull.stdout and "ignored: 1 unsubscribe without a token" in pull.stdout
    assert "2 message(s) left unread for you" in pull.stdout
    assert reasons(state_dir, ADA) == ["unsubscribed (by email, to the List-Unsubscribe address)"]
    assert reasons(state_dir, ALAN)[0].startswith("bounce (5.1.1 550 5.1.1")
    assert reasons(state_dir, LI_LEI) == ["spam report (abuse, by email)"]
    assert reasons(state_dir, NEVER) == []
    # What was handled is flagged \Seen, once; the editor's own mail is left unread.
    assert dovecot.seen() == {"unsubscribe " + token_for(ADA): True, "Undelivered Mail Returned to Sender": True,
                              "FW: The NLP Cypher #1": True, "Please unsubscribe me": False,
                              "Re: The NLP Cypher #1": False}
    again = run_cli("suppressions", "pull")
    assert "2 message(s) read: 0 unsubscribe(s), 0 hard bounce(s), 0 complaint(s) recorded" in again.stdout
    # The next issue, over SMTP, skips all three.
    smtp_server.messages.clear()
    dry_run = run_cli("send", "issues/2020-12-13-zh.yaml", "--backend", "smtp", "--subscribers",
                      "subscribers.example.csv")
    assert f"skip {ADA} (line 2): suppressed: unsubscribed (by email" in dry_run.stdout
    assert f"skip {ALAN} (line 3): suppressed: bounce (5.1.1" in dry_run.stdout
    assert "suppressed: spam report (abuse, by email)" in dry_run.stdout


def test_plain_imap_to_this_machine_works_and_a_token_of_another_newsletter_does_nothing(
        smtp_workspace: Path, dovecot: Dovecot, state_dir: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_MAILBOX_URL", dovecot.url(tls=False))
    other = token_for(ADA, list_id="Another Letter <another.example.com>")
    dovecot.append(unsubscribe_mail(f"unsubscribe {other}", sender=ADA), dsn(ADA, token=other))
    pull = run_cli("suppressions", "pull")
    assert pull.exit_code == 0, pull.stderr
    assert "ignored: 1 about another sender's mail" in pull.stdout
    assert "ignored: 1 unsubscribe without a token of ours" in pull.stdout
    assert reasons(state_dir, ADA) == []
    assert LIST_ID.startswith("The NLP Cypher")


@pytest.mark.parametrize(("url", "expected"), [
    ("imap://bounces:pw@mail.example.com/INBOX", "uses imap:// (no TLS) for mail.example.com"),
    ("imaps://mail.example.com/INBOX", "must name an IMAP server, a user and a password"),
    ("pop3://bounces:pw@mail.example.com/", "must name an IMAP server"),
    ("imaps://bounces:pw@[::1/INBOX", "is not a URL"),
    ("imaps://bounces:pw@127.0.0.1:1/In\"box", "names a mailbox mailer will not quote"),
])
def test_a_mailbox_url_mailer_cannot_use_is_refused_without_its_password(
        smtp_workspace: Path, run_cli, monkeypatch: pytest.MonkeyPatch, url: str, expected: str) -> None:
    monkeypatch.setenv("MAILER_MAILBOX_URL", url)
    result = run_cli("suppressions", "pull")
    assert result.exit_code == 3 and expected in result.stderr
    assert ":pw@" not in result.stderr


def test_a_wrong_password_an_untrusted_certificate_and_no_server_are_clear_errors(
        smtp_workspace: Path, dovecot: Dovecot, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_MAILBOX_URL", dovecot.url(password="wrong-password"))
    result = run_cli("suppressions", "pull")
    assert result.exit_code == 3 and "refused the login" in result.stderr and "wrong-password" not in result.stderr
    monkeypatch.setenv("MAILER_MAILBOX_URL", dovecot.url())
    monkeypatch.delenv("SSL_CERT_FILE")
    result = run_cli("suppressions", "pull")
    assert result.exit_code == 3 and "a certificate this machine does not trust" in result.stderr
    assert "SSL_CERT_FILE" in result.stderr and PASSWORD not in result.stderr
    dovecot.stop()
    monkeypatch.setenv("SSL_CERT_FILE", str(SELF_SIGNED_CERT))
    result = run_cli("suppressions", "pull")
    assert result.exit_code == 3 and "cannot reach the mailbox at imaps://***@127.0.0.1:" in result.stderr

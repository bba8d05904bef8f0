"""Mail that comes back, read (mailer/deliver/inbound.py): what is believed, about whom, and what is left alone."""

from __future__ import annotations

import time
from pathlib import Path

from mailer.deliver.inbound import (
    MAX_MESSAGE_BYTES,
    Newsletter,
    Outcome,
    message_from_parse,
    parse_message,
    read_message,
)
from mailer.deliver.message import unsubscribe_token
from tests.inbound_mail import dsn, unsubscribe_mail

LIST_ID = "The NLP Cypher <the-nlp-cypher.newsletter.example.com>"
SECRET = b"the newsletter's secret"
NEWSLETTER = Newsletter(LIST_ID, SECRET, Path("/nonexistent"))
MAILED = {"ada@example.com", "bob@example.com"}


def read(raw: bytes, newsletter: Newsletter = NEWSLETTER):
    return read_message(parse_message(raw), newsletter, sent_to=lambda keys: keys & MAILED)


def token(email: str) -> str:
    return unsubscribe_token(email, LIST_ID, SECRET)


def test_a_dsn_acts_only_on_the_permanently_failed_recipients_that_were_mailed() -> None:
    reading = read(dsn("ada@example.com", extra_recipients=("never@example.net", "Bob@Example.com")))
    assert [(item.email, item.source) for item in reading.act] == [("ada@example.com", "bounce"),
                                                                  ("Bob@example.com", "bounce")]
    assert dict(reading.ignored) == {"never sent to": 1} and reading.handled
    delayed = read(dsn("ada@example.com", action="delayed", status="4.4.1"))
    assert delayed.act == [] and dict(delayed.ignored) == {"temporary failure (4.x.x), not suppressed": 1}


def test_without_a_key_of_ours_no_token_is_believed() -> None:
    """SendGrid's managed unsubscribes (or no secret): the dry runs' stand-in key is public, so tokens mean nothing."""
    keyless = Newsletter(LIST_ID, None, Path("/nonexistent"))
    assert read(unsubscribe_mail(f"unsubscribe {token('ada@example.com')}"), keyless).act == []
    # A bounce is still believed on the ledger's word, whatever its returned headers hold.
    assert [i.email for i in read(dsn("bob@example.com", token="x" * 30 + "." + "y" * 24), keyless).act] == [
        "bob@example.com"]


def test_a_report_of_thousands_of_parts_or_recipients_is_read_only_as_far_as_the_limits() -> None:
    many = dsn("ada@example.com", extra_recipients=tuple(f"r{i}@example.net" for i in range(5000)))
    started = time.monotonic()
    reading = read(many)
    assert time.monotonic() - started < 5
    assert [item.email for item in reading.act] == ["ada@example.com"]
    assert reading.ignored["never sent to"] == 99  # the first 100 recipients are read, no more
    # 20,000 empty parts: the email package would take seconds over them; refused before it is called.
    boundary = b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    parts = (b"From: a@example.net\r\nSubject: unsubscribe " + token("ada@example.com").encode()
             + b"\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n" + boundary * 20000 + b"--p--\r\n")
    started = time.monotonic()
    assert parse_message(parts) is None and read(parts).kind == "unreadable"
    assert time.monotonic() - started < 0.5
    assert [item.email for item in read(parts.replace(boundary * 20000, boundary * 100)).act] == ["ada@example.com"]
    # A delivery-status part of 50,000 blocks (each one a message to the package): refused the same way.
    blocks = dsn("ada@example.com").replace(b"Action: failed", b"Action: failed\r\n\r\nX-Block: 1" * 50000, 1)
    started = time.monotonic()
    assert read(blocks).kind == "unreadable" and time.monotonic() - started < 0.5


def test_a_message_past_the_limit_is_unreadable_and_does_nothing() -> None:
    assert parse_message(b"x" * (MAX_MESSAGE_BYTES + 1)) is None
    reading = read_message(None, NEWSLETTER)
    assert reading.kind == "unreadable" and reading.act == [] and not reading.handled
    outcome = Outcome()
    outcome.add(reading)
    assert outcome.describe() == ("0 unsubscribe(s), 0 hard bounce(s), 0 complaint(s) recorded; "
                                  "ignored: 1 unreadable (too large, too many parts or too deep)")


def test_an_unknown_or_codec_charset_falls_back_to_utf8() -> None:
    subject = f"unsubscribe {token('ada@example.com')}".encode()
    for charset in ("no-such-charset", "hex", "rot13"):
        message = message_from_parse({"subject": subject, "charsets": f'{{"subject": "{charset}"}}'.encode(),
                                      "headers": b"From: ada@example.com\r\n"}, [])
        assert [item.email for item in read_message(message, NEWSLETTER).act] == ["ada@example.com"], charset
    garbage = message_from_parse({"subject": subject, "charsets": b"[1, {", "headers": b"\xff\xfe\r\n"}, [])
    assert [item.email for item in read_message(garbage, NEWSLETTER).act] == ["ada@example.com"]

"""`mailer doctor --eml`: a test send as received, its DKIM signature verified through the local DNS server, the
receiver's Authentication-Results believed and a sender's forged ones not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest

from mailer.checks.dns import Resolver, parse_dns_server
from mailer.checks.received import check_received
from tests.dns_server import good_zone, private_pem, rsa_key, start_dns

MAILER = str(Path(sys.executable).parent / "mailer")
RECEIVER = "mx.receiver.test"
SIGNED = [b"from", b"to", b"subject", b"date", b"list-unsubscribe", b"list-unsubscribe-post"]


@pytest.fixture(scope="module")
def key():
    return rsa_key()


@pytest.fixture
def dns(key):
    server = start_dns(good_zone(key=key))
    yield server
    server.stop()


def sent_message(key, *, post: bool = True, forged: str = "") -> bytes:
    """A newsletter as SendGrid would hand it over: signed by s1._domainkey.example.com."""
    message = EmailMessage()
    message["From"] = "The NLP Cypher <newsletter@example.com>"
    message["To"] = "ada@receiver.test"
    message["Subject"] = "The NLP Cypher | 12.13.20"
    message["Date"] = "Sun, 13 Dec 2020 08:00:00 +0000"
    message["List-Unsubscribe"] = "<https://newsletter.example.com/unsubscribe?t=abc>"
    if post:
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content("Hey Ada, this week's papers.\n")
    message.add_alternative("<p>Hey Ada, this week's papers.</p>", subtype="html")
    data = message.as_bytes()
    if forged:  # what a sender can write: headers that look like a receiver's verdict
        data = forged.encode() + data
    signature = dkim.sign(data, b"s1", b"example.com", private_pem(key), include_headers=SIGNED)
    return signature + data


def as_received(data: bytes, *, results: str | None = "dkim=pass header.d=example.com; "
                "spf=pass smtp.mailfrom=bounces+1@em1234.example.com; dmarc=pass header.from=example.com") -> bytes:
    """What the receiver puts on top: its verdict, the return path and its Received line."""
    top = ""
    if results is not None:
        top += f"Authentication-Results: {RECEIVER}; {results}\r\n"
    top += ("Return-Path: <bounces+1@em1234.example.com>\r\n"
            f"Received: from o1.ptr1.sendgrid.net (o1.ptr1.sendgrid.net [167.89.0.1]) by {RECEIVER} with ESMTPS id "
            "x1; Sun, 13 Dec 2020 08:00:01 +0000\r\n")
    return top.encode() + data


def rows(path: Path, server, **options) -> dict[str, object]:
    report = check_received(path, Resolver(parse_dns_server(server.address), timeout=1), spamassassin=None, **options)
    return {row.check: row for row in report.rows}


def test_a_good_test_send_as_received_passes_with_its_spamassassin_score(tmp_path: Path, key, dns) -> None:
    path = tmp_path / "test-send.eml"
    path.write_bytes(as_received(sent_message(key)))
    result = subprocess.run([MAILER, "doctor", "--eml", str(path), "--format", "json"], capture_output=True,
                            text=True, timeout=180, env={**os.environ, "MAILER_DNS": dns.address}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    found = {row["check"]: row for row in json.loads(result.stdout)["rows"]}
    assert found["eml.dkim"]["status"] == "pass" and "d=example.com s=s1: verified" in found["eml.dkim"]["detail"]
    assert found["eml.spf"]["status"] == found["eml.dmarc"]["status"] == "pass"
    assert found["eml.alignment"]["status"] == "pass" and found["eml.unsubscribe"]["status"] == "pass"
    assert found["eml.size"]["status"] == "pass"
    assert found["eml.spamassassin"]["status"] == "pass", found["eml.spamassassin"]  # installed by `make test`
    assert "spam from 5.0" in found["eml.spamassassin"]["detail"]
    assert "eml.forged" not in found


def test_a_changed_body_fails_dkim(tmp_path: Path, key, dns) -> None:
    path = tmp_path / "changed.eml"
    path.write_bytes(as_received(sent_message(key)).replace(b"this week's papers.</p>", b"click here!</p>"))
    found = rows(path, dns)
    assert found["eml.dkim"].status == "fail" and "does not verify" in found["eml.dkim"].detail
    assert found["eml.alignment"].status == "warn"  # SPF still aligned, by the receiver's word


def test_forged_authentication_results_lower_down_are_ignored_and_said_so(tmp_path: Path, key, dns) -> None:
    forged = ("Authentication-Results: mx.google.com; dkim=pass; spf=pass; dmarc=pass\r\n"
              "Received: from evil.example by evil.example; Sun, 13 Dec 2020 07:00:00 +0000\r\n"
              "Authentication-Results: evil.example; dmarc=pass header.from=example.com\r\n")
    path = tmp_path / "forged.eml"
    path.write_bytes(as_received(sent_message(key, forged=forged), results="spf=fail smtp.mailfrom=x@evil.example; "
                                 "dmarc=fail header.from=example.com"))
    found = rows(path, dns)
    assert found["eml.spf"].status == "fail" and f"{RECEIVER} says spf=fail" in found["eml.spf"].detail
    assert found["eml.dmarc"].status == "fail"
    assert found["eml.forged"].status == "warn" and "ignored 2" in found["eml.forged"].detail
    assert "mx.google.com, evil.example" in found["eml.forged"].detail

    only_forged = tmp_path / "only-forged.eml"
    only_forged.write_bytes(as_received(sent_message(key, forged=forged), results=None))
    found = rows(only_forged, dns)
    assert "eml.spf" not in found and found["eml.results"].status == "info"
    assert found["eml.forged"].status == "warn"
    believed = rows(only_forged, dns, trusted=("mx.google.com",))
    assert "mx.google.com says spf=pass" in believed["eml.spf"].detail  # only because the editor said so


def test_a_lost_one_click_header_fails(tmp_path: Path, key, dns) -> None:
    path = tmp_path / "no-post.eml"
    path.write_bytes(as_received(sent_message(key, post=False)))
    found = rows(path, dns)
    assert found["eml.unsubscribe"].status == "fail" and "List-Unsubscribe-Post" in found["eml.unsubscribe"].detail


def test_a_50_mb_eml_is_a_clear_error_read_no_further(tmp_path: Path, dns) -> None:
    path = tmp_path / "mailbox.eml"
    with path.open("wb") as out:
        out.truncate(50 * 1024 * 1024)
    started = time.monotonic()
    result = subprocess.run([MAILER, "doctor", "--eml", str(path)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "MAILER_DNS": dns.address}, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is 50 MB: more than 30 MB is no test send" in result.stderr and "hint:" in result.stderr
    assert time.monotonic() - started < 10


def test_a_forged_header_in_the_receivers_own_name_below_where_the_message_came_in_is_ignored(
        tmp_path: Path, key, dns) -> None:
    forged = f"Authentication-Results: {RECEIVER}; spf=pass; dkim=pass; dmarc=pass header.from=example.com\r\n"
    path = tmp_path / "forged-as-receiver.eml"
    path.write_bytes(as_received(sent_message(key, forged=forged), results=None))  # only the sender's own header
    found = rows(path, dns)
    assert "eml.spf" not in found and found["eml.results"].status == "info"
    assert found["eml.forged"].status == "warn" and "ignored 1" in found["eml.forged"].detail

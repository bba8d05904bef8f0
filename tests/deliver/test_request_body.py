"""A send's batches are written by bulk_request_body: the very request request_body writes from each
reader's Personal values and headers, whatever the readers, the issue and the configuration."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from mailer.audience.subscribers import Subscriber
from mailer.compose.build import build_issue
from mailer.config import SENDGRID_MANAGED, load_config
from mailer.deliver.backends import Recipient
from mailer.deliver.backends import sendgrid as sendgrid_backend
from mailer.deliver.backends.sendgrid import SendGridOptions, bulk_request_body, request_body
from mailer.deliver.message import Personaliser, list_id
from tests.conftest import SAMPLE_ISSUE
from tests.fake_sendgrid import validate_mail_send

PLAIN = [Subscriber(f"Reader{n:05d}@Example.com", f"Reader {n}", "Bench", ("weekly",), n + 2) for n in range(40)]
VARIED = [
    Subscriber("ada@example.com", "Ada", "Lovelace"),
    Subscriber("nobody@example.com"),  # no name: the issue's fallback, and no "name" in `to`
    Subscriber("li.lei@example.cn", "李雷", "韩"),
    Subscriber("noor@example.com", "نور", "الهدى"),
    Subscriber("party@example.com", "Zoë 🎉", "Ångström"),
    Subscriber("comma@example.com", "Smith, John", "Jr; III"),  # SendGrid refuses , and ; in a name
    Subscriber("kunde@bücher.example", "Jürgen", ""),
    Subscriber("Reader123456@example.com", "Reader 123456", "Bench"),  # longer than its placeholder, still fits
]
LONG_NAME = [Subscriber("maria@example.com", "Maria-Magdalena Alexandrina von Hohenzollern-Sigmaringen", "X")]
TO_ESCAPE = [Subscriber("tom@example.com", "Tom & <Jerry>", "")]


@pytest.fixture
def issue(workspace: Path):
    # With the List-Unsubscribe mailto: (something reads that mail), as every request carried it before it became
    # optional: the bytes of before, below, have it. test_without_the_mailto_… writes the header without it.
    config = replace(load_config(workspace), unsubscribe_by_mail=True)
    return build_issue(workspace / SAMPLE_ISSUE, config), config


def both_ways(rendered, config, subscribers, monkeypatch: pytest.MonkeyPatch, *, batch_id: str = "run:00001",
              options: SendGridOptions | None = None) -> tuple[str, str, bool]:
    """What bulk_request_body and request_body write for `subscribers`, and whether the bulk writer wrote it
    itself rather than handing the batch to request_body."""
    options = options or SendGridOptions()
    personaliser = Personaliser(rendered, config, b"secret")
    handed_over = []
    with monkeypatch.context() as patched:
        for name in ("request_body", "_request_body"):
            original = getattr(sendgrid_backend, name)
            patched.setattr(sendgrid_backend, name, lambda *args, _original=original, **kwargs:
                            handed_over.append(1) or _original(*args, **kwargs))
        bulk = bulk_request_body(rendered, config, subscribers, personaliser, batch_id=batch_id, options=options)
    recipients = [Recipient(subscriber, personaliser(subscriber)) for subscriber in subscribers]
    return bulk, request_body(rendered, config, recipients, batch_id=batch_id, options=options), not handed_over


@pytest.mark.parametrize("readers", [PLAIN, VARIED, PLAIN + VARIED], ids=["plain", "varied", "mixed"])
def test_a_plain_batch_is_written_by_the_bulk_writer_as_request_body_writes_it(issue, readers, monkeypatch) -> None:
    rendered, config = issue
    bulk, general, written_in_bulk = both_ways(rendered, config, readers, monkeypatch)
    assert written_in_bulk
    assert bulk == general
    body = json.loads(bulk)
    assert validate_mail_send(body) == []
    assert [p["to"][0]["email"] for p in body["personalizations"]] == [s.email for s in readers]


def test_without_the_mailto_the_bulk_writer_still_writes_what_request_body_writes(issue, monkeypatch) -> None:
    rendered, config = issue
    config = replace(config, unsubscribe_by_mail=False)
    bulk, general, written_in_bulk = both_ways(rendered, config, PLAIN + VARIED, monkeypatch)
    assert written_in_bulk and bulk == general
    headers = [p["headers"]["List-Unsubscribe"] for p in json.loads(bulk)["personalizations"]]
    assert all(re.fullmatch(r"<https://newsletter\.example\.com/unsubscribe\?token=[\w.-]+>", h) for h in headers)


def test_the_readers_requests_are_the_bytes_mailer_wrote_before_the_bulk_writer(issue, monkeypatch) -> None:
    # Both writers share _shared, _request and _to: a mistake there would show on both sides of the test
    # above. The readers' part of the request, as request_body wrote it before (e70504d), but for the
    # opaque ids: a SHA-256 of the address then, which anyone holding the address could check; and but for
    # the Chinese reader's name, written family name first since (韩李雷, was 李雷 韩).
    rendered, config = issue
    readers = PLAIN + VARIED
    bulk, _, written_in_bulk = both_ways(rendered, config, readers, monkeypatch)
    assert written_in_bulk
    readers_part = bulk[:bulk.index('], "from": ')]
    ids = re.findall(r'"mailer_recipient": "([0-9a-f]{20})"', readers_part)
    assert ids == [opaque_id(s.key, list_id(config), b"secret") for s in readers]
    family_first, given_first = (f'"name": {json.dumps(name)}' for name in ("韩李雷", "李雷 韩"))
    assert readers_part.count(family_first) == 1
    before = readers_part.replace(family_first, given_first)
    for reader, opaque in zip(readers, ids, strict=True):
        before = before.replace(opaque, hashlib.sha256(reader.key.encode()).hexdigest()[:20], 1)
    assert hashlib.sha256(before.encode()).hexdigest() == (
        "eb82c314a0caf719b665605eedf06214016c14e9d3c2ce0ba7860823da04f1a6"), "the sample's mailer.yaml changed?"
    ada = json.loads(bulk)["personalizations"][len(PLAIN)]
    token = "YWRhQGV4YW1wbGUuY29t.2zHsjSqZZbWi2GTmcPdxw3qf"
    assert ada == {
        "to": [{"email": "ada@example.com", "name": "Ada Lovelace"}],
        "substitutions": {"-first_name-": "Ada", "-email-": "ada@example.com",
                          "-unsubscribe_url-": f"https://newsletter.example.com/unsubscribe?token={token}"},
        "headers": {"List-Unsubscribe": f"<https://newsletter.example.com/unsubscribe?token={token}>, "
                                        f"<mailto:newsletter@example.com?subject=unsubscribe%20{token}>"},
        "custom_args": {"mailer_recipient": ids[len(PLAIN)]}}


def opaque_id(key: str, list_id: str, secret: bytes) -> str:
    """A reader's mailer_recipient, made here as RFC 2104 makes it: the bytes of their token's HMAC that
    the token leaves out."""
    who = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return hmac.digest(secret, f"{list_id}\n{who}".encode(), "sha256")[18:28].hex()


def test_a_readers_opaque_id_names_them_only_to_whoever_holds_the_secret(issue, monkeypatch) -> None:
    rendered, config = issue
    ada = [VARIED[0]]
    first, _, _ = both_ways(rendered, config, ada, monkeypatch)
    opaque = json.loads(first)["personalizations"][0]["custom_args"]["mailer_recipient"]
    assert re.fullmatch(r"[0-9a-f]{20}", opaque)
    assert opaque not in hashlib.sha256(b"ada@example.com").hexdigest()
    assert opaque not in first.split('"custom_args": {"mailer_recipient"')[0]  # no part of the token
    other_secret = Personaliser(rendered, config, b"another secret")
    again = bulk_request_body(rendered, config, ada, other_secret, batch_id="run:00001", options=SendGridOptions())
    assert json.loads(again)["personalizations"][0]["custom_args"]["mailer_recipient"] != opaque
    # The same reader in a test copy is nobody: the copy's id is not theirs.
    test_copy = Personaliser(rendered, config, b"secret")(VARIED[0], test_copy=True)
    assert test_copy.recipient_id != opaque and test_copy.recipient_id == opaque_id("test-copy", list_id(config),
                                                                                    b"secret")


def test_an_unsubscribe_link_with_a_query_is_written_by_the_bulk_writer_too(issue, monkeypatch) -> None:
    # `…?list=weekly&token=…`: its & is escaped in the HTML part (-unsubscribe_url_html-), every batch.
    rendered, config = issue
    config = dataclasses.replace(config, unsubscribe_url="https://newsletter.example.com/u?list=weekly")
    bulk, general, written_in_bulk = both_ways(rendered, config, PLAIN + VARIED, monkeypatch)
    assert written_in_bulk and bulk == general
    ada = json.loads(bulk)["personalizations"][len(PLAIN)]["substitutions"]
    assert ada["-unsubscribe_url_html-"] == ada["-unsubscribe_url-"].replace("&", "&amp;")


def test_every_option_of_the_request_is_kept(issue, monkeypatch) -> None:
    rendered, config = issue
    from datetime import UTC, datetime, timedelta

    options = SendGridOptions(send_at=datetime.now(UTC) + timedelta(hours=2), schedule_id="batch-1", sandbox=True)
    config = dataclasses.replace(config, reply_to="editor@example.com")
    bulk, general, written_in_bulk = both_ways(rendered, config, VARIED, monkeypatch, options=options)
    assert written_in_bulk and bulk == general
    assert json.loads(bulk)["mail_settings"] == {"sandbox_mode": {"enable": True}}


def test_an_issue_in_another_language_uses_its_own_fallback_name(workspace: Path, monkeypatch) -> None:
    config = load_config(workspace)
    rendered = build_issue(workspace / "issues" / "2020-12-13-zh.yaml", config)
    readers = [*PLAIN[:3], Subscriber("nobody@example.com"), Subscriber("li.lei@example.cn", "李雷", "韩")]
    bulk, general, written_in_bulk = both_ways(rendered, config, readers, monkeypatch)
    assert written_in_bulk and bulk == general
    nobody = json.loads(bulk)["personalizations"][3]
    assert nobody["substitutions"]["-first_name-"] == "朋友"


@pytest.mark.parametrize("case", ["long name", "to escape", "link and name to escape", "value in a link",
                                  "managed by SendGrid"])
def test_a_batch_that_needs_more_goes_through_request_body(issue, case, monkeypatch) -> None:
    rendered, config = issue
    readers = PLAIN[:3]
    if case == "long name":  # its paragraph is wrapped again for this reader
        readers += LONG_NAME
    elif case == "to escape":  # -first_name_html- beside -first_name-
        readers += TO_ESCAPE
    elif case == "link and name to escape":
        config = dataclasses.replace(config, unsubscribe_url="https://newsletter.example.com/u?list=weekly&lang=en")
        readers += TO_ESCAPE
    elif case == "value in a link":  # -email_url-: percent-encoded
        rendered = dataclasses.replace(rendered, html=rendered.html.replace(
            "</body>", '<a href="https://survey.example.com/?who=-email_url-">Survey</a></body>'))
    else:
        config = dataclasses.replace(config, unsubscribe=SENDGRID_MANAGED)
    bulk, general, written_in_bulk = both_ways(rendered, config, readers, monkeypatch)
    assert not written_in_bulk
    assert bulk == general
    assert validate_mail_send(json.loads(bulk)) == []

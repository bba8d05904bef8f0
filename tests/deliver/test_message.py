"""Per-recipient values and headers: the signed unsubscribe token that the service behind unsubscribe_url checks."""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import replace
from pathlib import Path

import pytest

from mailer.audience.subscribers import Subscriber
from mailer.compose.build import build_issue
from mailer.config import load_config
from mailer.deliver.message import (
    POLICY,
    MessageWriter,
    Personaliser,
    TokenSigner,
    build_mime,
    list_id,
    unsubscribe_token,
    verify_unsubscribe_token,
)
from tests.loopback_smtp import parse

SECRET = b"the newsletter's secret"


def test_each_unsubscribe_link_carries_a_token_only_the_secret_could_sign(workspace: Path) -> None:
    config = load_config(workspace)
    rendered = build_issue(workspace / "issues" / "2020-12-13.yaml", config)
    personalise = Personaliser(rendered, config, SECRET)
    ada = personalise(Subscriber("Ada@example.com", "Ada"))
    url = ada.values["unsubscribe_url"]
    assert url.startswith("https://newsletter.example.com/unsubscribe?token=")
    token = url.split("token=", 1)[1]
    assert ada.headers["List-Unsubscribe"] == f"<{url}>"  # nothing reads the mailbox: no mailto: (RFC 8058 asks none)
    read = Personaliser(rendered, replace(config, unsubscribe_by_mail=True), SECRET)(Subscriber("Ada@example.com"))
    https, mailto = read.headers["List-Unsubscribe"].split(", ")
    assert https == f"<{url}>" and mailto == f"<mailto:newsletter@example.com?subject=unsubscribe%20{token}>"

    audience = list_id(config)
    assert verify_unsubscribe_token(token, audience, SECRET) == "ada@example.com"
    assert verify_unsubscribe_token(token, audience, b"another secret") is None
    # Editing the address part of a token (to unsubscribe someone else) breaks its signature.
    someone_else = unsubscribe_token("bob@example.com", audience, SECRET).split(".")[0]
    assert verify_unsubscribe_token(f"{someone_else}.{token.split('.')[1]}", audience, SECRET) is None
    # The per-recipient fast path makes the same token as the documented function.
    assert token == unsubscribe_token("Ada@example.com", audience, SECRET)
    assert personalise(Subscriber("bob@example.com")).values["unsubscribe_url"] != url


@pytest.mark.parametrize("secret_length", [0, 1, 32, 63, 64, 65, 200])
def test_the_token_signer_signs_as_hmac_does_for_any_secret(secret_length: int) -> None:
    # The signer hashes the key's pads once (speed); the unsubscribe service checks with hmac.digest.
    secret = os.urandom(secret_length)
    signer = TokenSigner(secret, "The NLP Cypher <the-nlp-cypher.example.com>")
    for key in ("ada@example.com", "李雷@例子.中国", "x" * 254, ""):
        who = base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()
        expected = hmac.digest(secret, f"The NLP Cypher <the-nlp-cypher.example.com>\n{who}".encode(), "sha256")
        signature = base64.urlsafe_b64encode(expected[:18]).decode()
        assert signer.token(key) == f"{who}.{signature}"
        # The reader's opaque id: bytes of the same hash that the token leaves out.
        assert signer.token_and_id(key) == (f"{who}.{signature}", expected[18:28].hex())
        if key:  # (an empty address names nobody: the service refuses its token)
            assert verify_unsubscribe_token(signer.token(key), "The NLP Cypher <the-nlp-cypher.example.com>",
                                            secret) == key


@pytest.mark.parametrize("issue", ["2020-12-13.yaml", "2020-12-13-zh.yaml"])
def test_the_fast_writer_sends_the_same_message_as_the_email_package(workspace: Path, issue: str) -> None:
    config = load_config(workspace)
    rendered = build_issue(workspace / "issues" / issue, config)
    personalise = Personaliser(rendered, config, SECRET)
    writer = MessageWriter(rendered, config)
    readers = [Subscriber("ada@example.com", "Ada", "Lovelace"), Subscriber("smith@example.com", "John", "Smith, Jr."),
               Subscriber("zoe@example.com", "Zoë", "Müller"), Subscriber("li@example.com", "李", "雷"),
               Subscriber("tom@example.com", "Tom & <Jerry>"), Subscriber("anon@example.com"),
               Subscriber("long@example.com", "Maria-Magdalena Wilhelmina Alexandrina", "von und zu Hohenberg" * 3),
               Subscriber("words@example.com", "=?utf-8?q?Not_a_word?=")]
    for reader in readers:
        personal = personalise(reader)
        fast, message_id = writer.write(reader, personal)
        slow = build_mime(rendered, config, reader, personal).as_bytes(policy=POLICY)
        assert max(len(line) for line in fast.split(b"\r\n")) <= 998 and b"\n" not in fast.replace(b"\r\n", b"")
        ours, theirs = parse(fast), parse(slow)
        assert ours["Message-ID"] == message_id
        differ = ("Date", "Message-ID", "Content-Type")  # the time, a random id, a random boundary
        headers = [(name, str(value)) for name, value in ours.items() if name not in differ]
        assert headers == [(name, str(value)) for name, value in theirs.items() if name not in differ], reader
        assert ours.get_content_type() == theirs.get_content_type() == "multipart/alternative"
        for mine, reference in zip(ours.iter_parts(), theirs.iter_parts(), strict=True):
            assert mine.get_content_type() == reference.get_content_type()
            assert mine.get_content_charset() == reference.get_content_charset() == "utf-8"
            assert mine["Content-Transfer-Encoding"] == reference["Content-Transfer-Encoding"]
            assert mine.get_content() == reference.get_content()
    # An address that needs SMTPUTF8 is left to the email package.
    assert writer.write(Subscriber("zoë@example.com"), personalise(Subscriber("zoë@example.com"))) is None


@pytest.mark.parametrize("issue", ["2020-12-13.yaml", "2020-12-13-zh.yaml"])
def test_only_the_top_of_the_message_says_mime_version(workspace: Path, issue: str) -> None:
    # RFC 2045 §4: MIME-Version belongs in the message's header; the email package's set_content wrote
    # it into each body part as well (the Chinese sample's HTML part is the encoded path, the other 8bit).
    config = load_config(workspace)
    rendered = build_issue(workspace / "issues" / issue, config)
    reader = Subscriber("ada@example.com", "Ada", "Lovelace")
    personal = Personaliser(rendered, config, SECRET)(reader)
    slow = build_mime(rendered, config, reader, personal).as_bytes(policy=POLICY)
    fast, _ = MessageWriter(rendered, config).write(reader, personal)
    for raw in (slow, fast):
        assert raw.count(b"MIME-Version:") == 1
        message = parse(raw)
        assert message["MIME-Version"] == "1.0"
        assert [part["MIME-Version"] for part in message.iter_parts()] == [None, None]

"""One address grammar and one mailbox identity (mailer/addresses.py), and the fast path held to email-validator."""

from __future__ import annotations

import random

import email_validator
import pytest

from mailer.addresses import (
    SPECIAL_USE_TLDS,
    AddressError,
    address_key,
    address_problem,
    parse_address,
    printable,
    shown_url,
)
from mailer.deliver.message import unsubscribe_token, verify_unsubscribe_token


@pytest.mark.parametrize(("text", "parsed"), [
    ("a@example.com", "a@example.com"),
    ("  first.last+tag@Sub.Example.CO.uk ", "first.last+tag@sub.example.co.uk"),
    ("O'Brien@example.ie", "O'Brien@example.ie"),  # the local part keeps its case: the server decides
    ("用户@例子.广告", "用户@例子.广告"),
    ("kunde@xn--bcher-kva.example", "kunde@bücher.example"),
    ("zoe\u0308@example.com", "zoë@example.com"),  # NFC
])
def test_valid_addresses_parse_to_one_form(text: str, parsed: str) -> None:
    assert parse_address(text) == parsed and address_problem(text) is None


@pytest.mark.parametrize(("text", "reason"), [
    ("x:ada@example.org", "invalid characters before the @-sign: ':'"),  # smtplib would mail ada@example.org
    ("news:victim@example.net", "invalid characters before the @-sign: ':'"),
    ("a\x1b[31m@example.com", "U+001B"),  # ESC
    ("a\x08@example.com", "U+0008"),  # backspace
    ("a\x00@example.com", "U+0000"),
    ("a\u200b@example.com", "ZERO WIDTH SPACE"),
    ("a\u202e@example.com", "RIGHT-TO-LEFT OVERRIDE"),
    ("=?utf-8?q?X=0D=0ABcc:_x@evil.example?=@example.com", "invalid characters"),
    ("Smith, John <a@x.com>", "invalid"),
    ('"quoted"@example.com', "quoted"),
    ("a@[127.0.0.1]", "invalid"),
    ("a@b", "period"),
    ("a@@example.com", "invalid"),
    ("a@example..com", "period"),
    ("a b@example.com", "SPACE"),
    ("a@example.c", "one-letter top-level domain"),
    ("a@localhost", "period"),
    ("a@mail.test", "special-use"),
    ("a" * 65 + "@example.com", "too long"),
    ("", "missing"),
])
def test_invalid_addresses_say_why(text: str, reason: str) -> None:
    with pytest.raises(AddressError) as error:
        parse_address(text)
    assert reason in str(error.value)
    assert "\x1b" not in str(error.value) and "\x00" not in str(error.value)  # shown escaped, never obeyed


def test_one_mailbox_one_key() -> None:
    assert address_key("kunde@bücher.example") == address_key("kunde@xn--bcher-kva.example")
    assert address_key("Ada@Example.com") == address_key("ada@example.com")
    assert address_key("straße@example.com") != address_key("strasse@example.com")
    assert address_key("ﬁsh@example.com") != address_key("fish@example.com")


def test_an_unsubscribe_token_names_exactly_its_mailbox() -> None:
    token = unsubscribe_token("straße@example.com", "list", b"secret")
    assert verify_unsubscribe_token(token, "list", b"secret") == "straße@example.com"
    assert token != unsubscribe_token("strasse@example.com", "list", b"secret")


def test_printable_shows_control_characters_as_escapes() -> None:
    assert printable("a\x1b[31mb\u202ec") == "a\\x1b[31mb\\u202ec"
    assert printable("李雷 Zoë") == "李雷 Zoë"


def test_the_fast_path_accepts_only_what_email_validator_accepts_and_the_same_way() -> None:
    assert set(email_validator.SPECIAL_USE_DOMAIN_NAMES) <= SPECIAL_USE_TLDS
    rng = random.Random(7)
    alphabet = "abcdeZ09" * 6 + ".-_+'!#$%&*/=?^`{|}~:@ \"(),;<>[]\\"
    corpus = ["a@example.com", "a.b@c.de", "a@b.c", "a@xn--bcher-kva.example", "a@ex--ample.com", "a@example.c1",
              "a@1.2.3.4", "a@-example.com", "a@example-.com", ".a@example.com", "a.@example.com", "a@x.onion"]
    for _ in range(5000):
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        labels = ["".join(rng.choice("ab9-_") for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 3))]
        corpus.append(f"{local}@{'.'.join(labels)}.{rng.choice(['com', 'c', 'c0m', 'test', '', 'xn--p1ai'])}")
    accepted = 0
    for text in corpus:
        try:
            ours = parse_address(text)
        except AddressError:
            continue
        accepted += 1
        theirs = email_validator.validate_email(text.strip(), check_deliverability=False, allow_smtputf8=True,
                                                allow_quoted_local=False, allow_domain_literal=False, strict=True)
        assert ours == theirs.normalized, text
    assert accepted > 100  # the corpus exercised the accepting side too


def test_settings_addresses_use_the_same_grammar(workspace, run_cli) -> None:
    settings = workspace / "mailer.yaml"
    text = settings.read_text(encoding="utf-8").replace("reply_to: editor@", "reply_to: x:editor@")
    settings.write_text(text, encoding="utf-8")
    result = run_cli("build", "issues/2020-12-13.yaml")
    assert result.exit_code == 1
    assert "mailer.yaml:7:11: reply_to: invalid email address 'x:editor@example.com'" in result.stderr


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:pass@proxy.example:8443/base", "https://***@proxy.example:8443/base"),
    ("http://user@127.0.0.1:8080", "http://***@127.0.0.1:8080"),
    ("https://user:p@ss@host", "https://***@host"),  # an @ in the password, unencoded
    ("https://user:p/ss@host:443", "https://***@host:443"),  # a / in it: no URL, but hidden all the same
    ("user:pass@host/x", "***@host/x"),
    ("https://user:pass@[::1", "https://***@[::1"),
    ("https://api.sendgrid.com", "https://api.sendgrid.com"),
    ("http://host\x1b[2J", "http://host\\x1b[2J"),
])
def test_a_settings_url_is_shown_without_its_user_and_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown

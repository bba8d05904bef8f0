"""Per-recipient values and headers, and complete MIME messages for SMTP and the dry-run outbox."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, Policy
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailer.addresses import address_key
from mailer.audience.subscribers import Subscriber
from mailer.compose import placeholders
from mailer.config import Config
from mailer.errors import ConfigError

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue

# RFC 5322 allows 998 characters per line. At the default of 78 the email package turns a long
# List-Unsubscribe (one URL and a token, nowhere to fold) into an =?utf-8?q?…?= encoded word,
# which mail clients do not decode in that header: the unsubscribe button would disappear.
POLICY = SMTP.clone(max_line_length=998)
POLICY_UTF8 = SMTPUTF8.clone(max_line_length=998)
# The body parts are another matter: a quoted-printable or base64 line may hold at most 76 characters
# (RFC 2045), and the email package folds them at the policy's length. A body whose lines all fit in
# 998 octets goes as 8bit, unencoded (fast, and readable in the outbox); a longer line (a paragraph of
# Chinese is 3 bytes a character, a padded preheader) is encoded and folded at 76 instead.
_ENCODED_BODY = SMTP.clone(max_line_length=76)
_SMTP_LINE_LIMIT = 998

SECRET_ENV = "MAILER_UNSUBSCRIBE_SECRET"
# Used only by dry runs when no secret is set, so that the outbox shows the links' shape.
# A live send refuses to run without the real secret.
DRY_RUN_SECRET = b"dry-run-unsigned"


def unsubscribe_secret(value: str, *, live: bool) -> bytes:
    """The key of the unsubscribe links: MAILER_UNSUBSCRIBE_SECRET's `value`; a dry run's stand-in when unset."""
    if value:
        return value.encode()
    if live:
        raise ConfigError(
            f"{SECRET_ENV} is not set: it signs each reader's unsubscribe link\n"
            f"    hint: export {SECRET_ENV}=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\" "
            "and give the same value to the service behind unsubscribe_url"
        )
    return DRY_RUN_SECRET


def unsubscribe_token(email: str, list_id: str, secret: bytes) -> str:
    """An opaque, signed token naming one subscriber of one list (see verify_unsubscribe_token)."""
    return TokenSigner(secret, list_id).token(address_key(email))


class TokenSigner:
    """Unsubscribe tokens of one list: `who.signature`, the signature HMAC-SHA256 (RFC 2104) of the
    list id and `who`, cut to 18 bytes.

    The key's two padded blocks are hashed once and copied for each token: hmac.digest starts from
    the key every time, which was half the cost of preparing a recipient of a large send. The result
    is hmac.digest's, byte for byte (tested).
    """

    def __init__(self, secret: bytes, list_id: str):
        key = (hashlib.sha256(secret).digest() if len(secret) > _SHA256_BLOCK else secret).ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))
        self._prefix = f"{list_id}\n".encode()

    def _mac(self, who: str) -> bytes:
        inner = self._inner.copy()
        inner.update(self._prefix + who.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def token(self, key: str) -> str:
        return self.token_and_id(key)[0]

    def token_and_id(self, key: str) -> tuple[str, str]:
        """The token of the reader keyed `key`, and their opaque id: the signature's bytes 18 to 28, which
        the token does not carry, in hex. Only the list's secret links an id to its address (the plain
        SHA-256 of the address that it was before, anyone holding an address could check), and one
        signature makes both."""
        who = _b64(key.encode())
        mac = self._mac(who)
        return f"{who}.{_b64(mac[:18])}", mac[18:28].hex()


_SHA256_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))  # RFC 2104's inner and outer pads, as translate tables
_OPAD = bytes(b ^ 0x5C for b in range(256))


def verify_unsubscribe_token(token: str, list_id: str, secret: bytes) -> str | None:
    """The address a token was made for, or None if it was not signed with `secret`.

    For the service behind `unsubscribe_url`: it receives `?token=…` and must check it.
    """
    # Whatever arrives from the internet: any length, any characters. Only a well-formed, signed token
    # gets past here, and nothing in it raises (a non-ASCII signature once made compare_digest raise).
    if not isinstance(token, str) or not 3 <= len(token) <= MAX_TOKEN_CHARS or not token.isascii():
        return None
    who, dot, signature = token.partition(".")
    if not dot or not who or not signature:
        return None
    expected = hmac.digest(secret, f"{list_id}\n{who}".encode(), "sha256")[:18]
    if not hmac.compare_digest(_b64(expected), signature):
        return None
    try:
        return base64.urlsafe_b64decode(who + "=" * (-len(who) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return None


MAX_TOKEN_CHARS = 512  # an address is at most 254 octets: its token is at most about 370 characters
# What a test copy's unsubscribe link names: nobody. Clicking it in the editor's inbox unsubscribes no one.
TEST_COPY = "test-copy"


def _b64(data: bytes) -> str:
    """URL-safe base64 without padding (base64.urlsafe_b64encode's result, at a third of its cost)."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URL_SAFE).decode("ascii")


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def list_id(config: Config) -> str:
    """RFC 2919 List-Id value, e.g. 'The NLP Cypher <the-nlp-cypher.newsletter.example.com>'."""
    slug = re.sub(r"[^a-z0-9]+", "-", config.name.lower()).strip("-") or "newsletter"
    host = urlsplit(config.web_base_url).hostname or "localhost"
    return f"{config.name} <{slug}.{host}>"


@dataclass(slots=True)
class Personal:
    """What differs per recipient: placeholder values, the unsubscribe headers, and the opaque id that
    lets the provider's events be told apart without an address (TokenSigner.token_and_id)."""

    values: dict[str, str]
    headers: dict[str, str]
    recipient_id: str


class Personaliser:
    """Per-recipient values and headers; everything shared by all recipients is computed once."""

    def __init__(self, rendered: RenderedIssue, config: Config, secret: bytes):
        self.list_id = list_id(config)
        self._signer = TokenSigner(secret, self.list_id)
        separator = "&" if "?" in config.unsubscribe_url else "?"
        self._unsubscribe_prefix = f"{config.unsubscribe_url}{separator}token="
        # The mailto: only where something reads that mail (Config.unsubscribe_by_mail): one nobody reads is
        # a promise broken. RFC 8058 one-click needs only the https link.
        self._mailto_prefix = (f"mailto:{config.unsubscribe_email}?subject=unsubscribe%20"
                               if config.unsubscribe_by_mail else None)
        self.fallback = config.fallback_for(rendered.issue.lang)  # the first name of a reader who gave none
        self.web_url = config.web_url(rendered.issue.slug)
        # Managed by SendGrid: its tag stands where the link goes, and SendGrid adds List-Unsubscribe.
        self.managed_tag = config.unsubscribe_tag if config.managed_unsubscribe else None
        # The headers every reader's message has alike, after their own List-Unsubscribe. RFC 8058 one-click
        # unsubscribe, required by Gmail and Yahoo for bulk senders since 2024: the https link (and a mailto:
        # where mail to it is read), and the List-Unsubscribe-Post header.
        self.shared_headers = ({"List-Id": self.list_id} if self.managed_tag is not None else
                               {"List-Unsubscribe-Post": ONE_CLICK_POST, "List-Id": self.list_id})

    def unsubscribe(self, key: str) -> tuple[str, str, str]:
        """The unsubscribe link of the reader keyed `key`, their List-Unsubscribe header and their opaque id.

        The token (see unsubscribe_token) is URL-safe base64 and a dot, so it needs no escaping in a
        URL or a mailto: subject.
        """
        token, opaque = self._signer.token_and_id(key)
        link = self._unsubscribe_prefix + token
        if self._mailto_prefix is None:
            return link, f"<{link}>", opaque
        return link, f"<{link}>, <{self._mailto_prefix}{token}>", opaque

    def first_name(self, subscriber: Subscriber) -> str:
        """What -first_name- is for this reader: their first name, or the issue language's fallback."""
        return subscriber.first_name or self.fallback

    def __call__(self, subscriber: Subscriber, *, test_copy: bool = False) -> Personal:
        # A test copy looks the same but its link, and its id, name nobody (TEST_COPY).
        key = TEST_COPY if test_copy else subscriber.key
        if self.managed_tag is not None:
            link, headers, opaque = self.managed_tag, dict(self.shared_headers), self._signer.token_and_id(key)[1]
        else:
            link, header, opaque = self.unsubscribe(key)
            headers = {"List-Unsubscribe": header, **self.shared_headers}
        values = {"first_name": self.first_name(subscriber), "email": subscriber.email, "unsubscribe_url": link,
                  "web_url": self.web_url}
        return Personal(values, headers, opaque)


def personalise(subscriber: Subscriber, rendered: RenderedIssue, config: Config, secret: bytes, *,
                test_copy: bool = False) -> Personal:
    """Values and headers for one recipient (for many, make one Personaliser and call it)."""
    return Personaliser(rendered, config, secret)(subscriber, test_copy=test_copy)


def subject_for(rendered: RenderedIssue, personal: Personal, *, test: bool = False) -> str:
    subject = placeholders.fill(rendered.subject, personal.values)
    return f"[TEST] {subject}" if test else subject


def build_mime(
    rendered: RenderedIssue,
    config: Config,
    subscriber: Subscriber,
    personal: Personal,
    *,
    to: str | None = None,
    test: bool = False,
    now: datetime | None = None,
) -> EmailMessage:
    """A complete multipart/alternative message, exactly as the recipient receives it."""
    recipient = to or subscriber.email
    needs_utf8 = not (recipient + config.sender.email).isascii()
    message = EmailMessage(policy=POLICY_UTF8 if needs_utf8 else POLICY)
    message["From"] = address_header(config.sender.name, config.sender.email)
    message["To"] = address_header(subscriber.full_name if not to else "", recipient)
    if config.reply_to:
        message["Reply-To"] = config.reply_to
    message["Subject"] = subject_for(rendered, personal, test=test)
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=config.sender.email.rpartition("@")[2])
    for name, value in personal.headers.items():
        message[name] = value
    message["MIME-Version"] = "1.0"
    message.make_alternative()
    message.attach(body_part(rendered.text_for(personal.values), "plain", message.policy))
    message.attach(body_part(placeholders.fill(rendered.html, personal.values, escape_html=True), "html",
                              message.policy))
    return message


def body_part(body: str, subtype: str, policy: Policy) -> EmailMessage:
    """One text/* part in UTF-8: 7bit or 8bit as it is when every line fits SMTP's limit, else encoded at 76."""
    encoded = body.encode("utf-8")
    if max(map(len, encoded.splitlines()), default=0) <= _SMTP_LINE_LIMIT:
        part = EmailMessage(policy=policy)
        part.set_content(body, subtype=subtype, charset="utf-8", cte="7bit" if encoded.isascii() else "8bit")
    else:
        # The email package picks quoted-printable or base64, whichever is shorter, folded at 76.
        part = EmailMessage(policy=_ENCODED_BODY)
        part.set_content(body, subtype=subtype, charset="utf-8")
        part.policy = policy
    # set_content writes MIME-Version into every part it fills; RFC 2045 puts it in the message's own
    # header only, and the message (build_mime, the notices) carries it there.
    del part["MIME-Version"]
    return part


# Gmail hides everything after about 102 KB of the HTML part behind "[Message clipped]", the footer and
# its unsubscribe link included (https://support.google.com/mail/thread/15186435).
GMAIL_CLIP_BYTES = 102 * 1024
# RFC 8058: what List-Unsubscribe-Post says, so that a mail client may unsubscribe with one POST.
ONE_CLICK_POST = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class EmailSize:
    """The one size of an issue that build, check, preview and send show: its HTML part as sent.

    Gmail clips on the HTML part, so that is what is measured: its body as a reader's message carries it
    on the wire (8bit, or quoted-printable/base64 for lines over 998 octets, each line ended by CRLF),
    for a sample reader. Not the HTML file (LF endings, unencoded) nor the whole message (headers, the text
    part), which once gave three numbers for one issue (101.9, 102.1 and 102.6 KB).
    """

    html_part: int  # bytes
    text_part: int  # bytes of the plain-text part, measured the same way
    message: int  # bytes of the whole message, headers included

    @property
    def headroom(self) -> int:
        """Bytes left before Gmail clips (negative: it will)."""
        return GMAIL_CLIP_BYTES - self.html_part

    @property
    def clipped(self) -> bool:
        return self.headroom < 0

    def describe(self) -> str:
        """'37.8 KB (64.2 KB below Gmail's 102 KB clipping limit)'."""
        limit = f"Gmail's {GMAIL_CLIP_BYTES // 1024} KB clipping limit"
        if not self.clipped:
            return f"{kilobytes(self.html_part)} ({kilobytes(self.headroom)} below {limit})"
        return (f"{kilobytes(self.html_part)} ({kilobytes(-self.headroom)} OVER {limit}: Gmail will hide the end "
                "of the email, unsubscribe link included)")


def kilobytes(size: int) -> str:
    """Bytes as mailer shows them everywhere: KB of 1024 bytes, one decimal (Gmail's 102 KB is 104,448 bytes)."""
    return f"{size / 1024:.1f} KB"


def sample_message(rendered: RenderedIssue, config: Config) -> EmailMessage:
    """The message one reader would get (a made-up reader: sizes and headers do not depend on who)."""
    reader = Subscriber("reader@example.com", "Reader")
    return build_mime(rendered, config, reader, Personaliser(rendered, config, b"check")(reader))


def email_size(rendered: RenderedIssue, config: Config, message: EmailMessage | None = None) -> EmailSize:
    """The issue's size as sent (see EmailSize), from `message` (sample_message) or one built for it."""
    message = message or sample_message(rendered, config)
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return EmailSize(_on_the_wire(html), _on_the_wire(text), len(message.as_bytes()))


def _on_the_wire(part: EmailMessage) -> int:
    body = part.get_payload()
    assert isinstance(body, str)
    return len(body.encode("utf-8")) + body.count("\n") - body.count("\r\n")  # every line ended by CRLF


def address_header(name: str | None, email: str) -> Address:
    local, _, domain = email.rpartition("@")
    return Address(display_name=name or "", username=local, domain=domain)


class MessageWriter:
    """The same message as build_mime, written as bytes directly: for sending thousands over SMTP.

    build_mime spends about 1.5 ms a message in the email package's header parsing and folding; here
    the headers that are the same for everyone are folded once, and a per-recipient header is written
    as it is when it is plain ASCII that needs no folding (names and subjects are validated when they
    are read: no line breaks). Anything else (a non-ASCII name or subject, an encoded-word look-alike,
    a body line over 998 octets, a non-ASCII address) goes through the email package, header by header,
    or the whole message falls back to build_mime (`write` returns None). tests/deliver/test_message.py
    holds the two to the same parsed message.
    """

    def __init__(self, rendered: RenderedIssue, config: Config):
        self.rendered = rendered
        self.config = config
        self._domain = config.sender.email.rpartition("@")[2]
        fixed = [("From", address_header(config.sender.name, config.sender.email))]
        if config.reply_to:
            fixed.append(("Reply-To", config.reply_to))
        self._from = self._folded(*fixed[0])
        self._reply_to = self._folded(*fixed[1]) if len(fixed) > 1 else b""
        self._boundary = "===============" + "".join(secrets.choice("0123456789") for _ in range(19)) + "=="
        self._cache: dict[tuple[str, str], bytes] = {}
        self._usable = config.sender.email.isascii()

    def write(self, subscriber: Subscriber, personal: Personal, *,
              now: datetime | None = None) -> tuple[bytes, str] | None:
        """(the message, its Message-ID), or None when only build_mime can write it."""
        if not (self._usable and subscriber.email.isascii()):
            return None  # SMTPUTF8 headers: the email package's utf8 policy
        values = personal.values
        text = self.rendered.text_for(values).encode("utf-8")
        html = placeholders.fill(self.rendered.html, values, escape_html=True).encode("utf-8")
        boundary = self._boundary.encode()
        for body in (text, html):
            if boundary in body or max(map(len, body.splitlines()), default=0) > _SMTP_LINE_LIMIT:
                return None
        message_id = make_msgid(domain=self._domain)
        head = [self._from, self._header("To", str(address_header(subscriber.full_name, subscriber.email))),
                self._reply_to, self._header("Subject", subject_for(self.rendered, personal)),
                self._header("Date", format_datetime(now or datetime.now(UTC))),
                self._header("Message-ID", message_id)]
        head += [self._header(name, value) for name, value in personal.headers.items()]
        head.append(b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="' + boundary + b'"\r\n')
        parts = []
        for body, subtype in ((text, b"plain"), (html, b"html")):
            cte = b"7bit" if body.isascii() else b"8bit"
            crlf = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if not crlf.endswith(b"\r\n"):
                crlf += b"\r\n"
            # The CRLF before the next "--boundary" belongs to the delimiter, not to the body (RFC 2046).
            parts.append(b"--" + boundary + b'\r\nContent-Type: text/' + subtype + b'; charset="utf-8"\r\n'
                         b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n" + crlf + b"\r\n")
        return b"".join(head) + b"\r\n" + b"".join(parts) + b"--" + boundary + b"--\r\n", message_id

    def _header(self, name: str, value: str) -> bytes:
        if value.isascii() and "=?" not in value and len(name) + len(value) < _SMTP_LINE_LIMIT - 2 \
                and value.isprintable():
            return f"{name}: {value}\r\n".encode("ascii")
        cached = self._cache.get((name, value))
        if cached is None:
            cached = self._cache[(name, value)] = self._folded(name, value)
            if len(self._cache) > 4096:  # per-recipient values (non-ASCII names) are not worth keeping
                self._cache.clear()
        return cached

    @staticmethod
    def _folded(name: str, value: Any) -> bytes:
        """A header as the email package writes it (RFC 2047 words for non-ASCII, folded)."""
        return POLICY.fold_binary(name, POLICY.header_factory(name, value))

"""Mail that comes back by email, read and acted on: unsubscribe requests, bounces and complaints.

Three kinds of mail are acted on, and nothing else:
- an unsubscribe request sent to the `List-Unsubscribe` mailto: (its subject is `unsubscribe TOKEN`,
  as mailer.deliver.message writes it): the token is checked exactly as the one-click link's is, so
  another newsletter's token, a forged one or a test copy's does nothing, whoever the mail says it
  is from (a From header is anyone's to write);
- a delivery status notification (RFC 3464: multipart/report; report-type=delivery-status): a
  recipient whose Action is `failed` with a 5.x.x Status is a hard bounce; a 4.x.x (a full
  mailbox, greylisting) or a delay suppresses nobody;
- a feedback-loop complaint (RFC 5965 ARF: multipart/report; report-type=feedback-report) of
  type abuse, fraud or other.

Whom a report names is believed only when it is someone mailer mailed: the returned message's own
headers carry our signed token (their List-Unsubscribe), and it names that reader; or, without
one, the ledger records a request to that address. A report whose returned message carries a token
that is not ours is another sender's mail, and one whose token names someone else is forged: both
do nothing. Everything is parsed with the email package's default policy; a message larger than
MAX_MESSAGE_BYTES, with more parts or blocks than a report has by far (the package takes a third of a
millisecond over each), or nested deeper than the parser goes, is counted as unreadable and left alone.
Nothing here speaks HTTP or IMAP: mailer.web.inbound and mailer.deliver.mailbox hand messages in.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path

from mailer.addresses import AddressError, address_key, parse_address, printable
from mailer.deliver.ledger import Ledger, ledger_path
from mailer.deliver.message import TEST_COPY, verify_unsubscribe_token
from mailer.deliver.suppressions import (
    BOUNCE,
    BY_EMAIL,
    EMAIL,
    SPAM_REPORT,
    UNSUBSCRIBE,
    UNSUBSCRIBED,
    Click,
    Suppression,
    SuppressionList,
    mark_in_store,
    suppressions_path,
)
from mailer.statedb import StateError

# SendGrid's Inbound Parse takes messages of up to 30 MB, attachments included
# (https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/inbound-email); a little more for the
# form around them. What is acted on is a few kilobytes: a bounce returning a whole issue, ~150 KB.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
MAX_PARTS = 200  # parts looked at in one message; a report has three
# Lines that may be a part's delimiter (they start with "--"): the email package takes ~0.3 ms a part, so
# 20,000 empty parts (720 KB) cost 6.5 s and a 32 MB message of them minutes. A report has four.
MAX_DELIMITER_LINES = 2000
# Blank lines: each ends a block of a delivery-status part, which the package makes a message of (5,000
# blocks, 0.4 s). A report has a handful; a long letter a few hundred.
MAX_BLANK_LINES = 20000
MAX_RECIPIENTS = 100  # per-recipient blocks read from one delivery status notification

# A token as unsubscribe_token writes it: URL-safe base64 of the address, a dot, 18 bytes of signature.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{2,400}\.[A-Za-z0-9_-]{24}(?![A-Za-z0-9_.-])")
_STATUS = re.compile(r"^\s*([245])\.\d{1,3}\.\d{1,3}\b")
COMPLAINT_TYPES = {"abuse", "fraud", "other"}  # RFC 5965's; not-spam, virus and auth-failure are no complaint
_RETURNED = {"text/rfc822-headers", "message/rfc822", "message/rfc822-headers", "message/global",
             "message/global-headers"}

# What one message turned out to be.
UNSUBSCRIBE_MAIL, BOUNCE_MAIL, COMPLAINT_MAIL, OTHER_MAIL, UNREADABLE_MAIL = (
    "unsubscribe", "bounce", "complaint", "other", "unreadable")


@dataclass
class Reading:
    """One message, read: what it is, whom to suppress for it, and what was left alone and why."""

    kind: str
    act: list[Suppression] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)

    @property
    def handled(self) -> bool:
        """Whether it was mail of ours to act on (done or refused): a mailbox marks it read; anything else, a
        person's mail or an unsubscribe request whose token is no good, is left for the editor to read."""
        return self.kind in (BOUNCE_MAIL, COMPLAINT_MAIL) or bool(self.act)


@dataclass
class Outcome:
    """What a post or a mailbox pull did, in counts (never an address: it goes to logs and terminals)."""

    messages: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    left_unseen: int = 0  # a mailbox's messages that are not ours to act on: left for a person to read

    def add(self, reading: Reading) -> None:
        self.messages += 1
        self.kinds[reading.kind] += 1
        self.ignored.update(reading.ignored)
        for item in reading.act:
            if item.source == UNSUBSCRIBED:
                self.unsubscribed += 1
            elif item.source == BOUNCE:
                self.bounced += 1
            else:
                self.complained += 1

    def describe(self) -> str:
        """'1 unsubscribe, 0 bounces, 0 complaints recorded; ignored: 1 never sent to'."""
        done = (f"{self.unsubscribed} unsubscribe(s), {self.bounced} hard bounce(s), {self.complained} "
                "complaint(s) recorded")
        if not self.ignored:
            return done
        return done + "; ignored: " + ", ".join(f"{count} {why}" for why, count in sorted(self.ignored.items()))

    def as_dict(self) -> dict[str, object]:
        return {"messages": self.messages, "unsubscribed": self.unsubscribed, "bounced": self.bounced,
                "complained": self.complained, "ignored": dict(sorted(self.ignored.items())),
                "kinds": dict(sorted(self.kinds.items()))}


@dataclass(frozen=True)
class Newsletter:
    """Whose mail this is: the List-Id and the key its tokens are signed with, and where its state is.

    `secret` None: no key of ours signs the tokens (SendGrid's managed unsubscribes, or no
    MAILER_UNSUBSCRIBE_SECRET, whose stand-in for dry runs anybody can read): no token is believed.
    """

    list_id: str
    secret: bytes | None
    state_dir: Path

    def verify(self, token: str) -> str | None:
        """The address a token of this newsletter names (TEST_COPY for a test copy's), or None."""
        return None if self.secret is None else verify_unsubscribe_token(token, self.list_id, self.secret)

    def sent_to(self, keys: set[str]) -> set[str]:
        """The ones among `keys` the ledger records a request to (none when there is no ledger here: a
        `mailer serve` on a machine of its own believes only the reports that return our token)."""
        path = ledger_path(self.state_dir)
        if not keys or not path.exists():
            return set()
        with Ledger(path) as ledger:
            return ledger.sent_to(keys)


# -- reading ----------------------------------------------------------------------------------


def parse_message(raw: bytes) -> EmailMessage | None:
    """A raw message (RFC 5322 bytes) parsed with the default policy; None when it is too large, has too many
    parts, or is nested too deep."""
    if len(raw) > MAX_MESSAGE_BYTES or raw.count(b"\n--") > MAX_DELIMITER_LINES \
            or raw.count(b"\n\n") + raw.count(b"\n\r\n") > MAX_BLANK_LINES:
        return None
    try:
        return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]
    except (RecursionError, MemoryError):  # parts nested a thousand deep: the parser recurses per level
        return None


def read_message(message: EmailMessage | None, newsletter: Newsletter, *,
                 sent_to: Callable[[set[str]], set[str]] | None = None) -> Reading:
    """What `message` is and whom it names, checked as the module says; nothing is recorded yet (see record)."""
    if message is None:
        return Reading(UNREADABLE_MAIL, ignored=Counter({"unreadable (too large, too many parts or too deep)": 1}))
    sent_to = sent_to or newsletter.sent_to
    try:
        content_type = message.get_content_type()
        report_type = str(message.get_param("report-type", "", header="content-type") or "").lower()
        if content_type == "multipart/report" and report_type == "delivery-status":
            return _read_report(message, newsletter, sent_to, BOUNCE_MAIL)
        if content_type == "multipart/report" and report_type == "feedback-report":
            return _read_report(message, newsletter, sent_to, COMPLAINT_MAIL)
        return _read_unsubscribe(message, newsletter)
    except RecursionError:
        return Reading(UNREADABLE_MAIL, ignored=Counter({"unreadable (too large, too many parts or too deep)": 1}))


def _read_unsubscribe(message: EmailMessage, newsletter: Newsletter) -> Reading:
    subject = _header(message, "subject")
    if "unsubscribe" not in subject.lower():
        return Reading(OTHER_MAIL)
    reading = Reading(UNSUBSCRIBE_MAIL)
    candidates = _TOKEN.findall(subject)[:5]
    for token in candidates:
        email = newsletter.verify(token)
        if email == TEST_COPY:
            reading.ignored["from a test copy"] += 1
            return reading
        if email is not None:
            reading.act.append(Suppression(email, UNSUBSCRIBED, reason=BY_EMAIL))
            return reading
    # Garbage, another newsletter's token, one cut short: nobody's. A person may have written it: left unread.
    reading.ignored["unsubscribe without a token of ours" if candidates else "unsubscribe without a token"] += 1
    return reading


def _read_report(message: EmailMessage, newsletter: Newsletter, sent_to: Callable[[set[str]], set[str]],
                 kind: str) -> Reading:
    reading = Reading(kind)
    parts = _leaf_parts(message)
    # Without a key of ours (SendGrid's managed unsubscribes) the returned List-Unsubscribe is SendGrid's: not read.
    tokens = [token for part in parts if part.get_content_type() in _RETURNED for token in _returned_tokens(part)
              ] if newsletter.secret is not None else []
    ours = [email for email in map(newsletter.verify, tokens) if email is not None]
    if tokens and not ours:
        reading.ignored["about another sender's mail"] += 1
        return reading
    if TEST_COPY in ours:
        reading.ignored["about a test copy"] += 1
        return reading
    if kind == BOUNCE_MAIL:
        named, soft = _failed_recipients(parts)
        if soft:
            reading.ignored["temporary failure (4.x.x), not suppressed"] += soft
    else:
        complaint = _complained_of(parts)
        if complaint is None:
            reading.ignored["not a complaint (its feedback type)"] += 1
            return reading
        feedback_type, addresses = complaint
        # Complaints often redact the recipient: the returned message's token is who complained.
        named = [(email, feedback_type) for email in addresses or ours[:1]]
    token_key = address_key(ours[0]) if ours else None
    keys = {address_key(email) for email, _ in named}
    believed = {token_key} if token_key is not None else sent_to(keys)
    for email, detail in named:
        key = address_key(email)
        if key not in believed:
            reading.ignored["names someone else than the returned message" if token_key else "never sent to"] += 1
            continue
        if kind == BOUNCE_MAIL:
            # ", by email" as the Event Webhook's say ", via the event webhook": where mailer heard of it.
            reading.act.append(Suppression(email, BOUNCE, reason=f"{detail}, by email" if detail else "by email"))
        else:
            reading.act.append(Suppression(email, SPAM_REPORT, reason=f"{detail}, by email"))
    return reading


def _leaf_parts(message: Message) -> list[Message]:
    """The message's parts, depth first, at most MAX_PARTS (message/* parts kept whole, not opened)."""
    found: list[Message] = []
    stack: list[Message] = [message]
    while stack and len(found) < MAX_PARTS:
        part = stack.pop()
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            children = part.get_payload()
            stack.extend(reversed(children[:MAX_PARTS] if isinstance(children, list) else []))
        else:
            found.append(part)
    return found


def _blocks(part: Message) -> list[Message]:
    """A message/delivery-status or message/feedback-report part's groups of fields (the email package reads
    the first as a list of header blocks, the second as one message whose headers are the fields)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    if isinstance(payload, Message):
        return [payload]
    # Given as text (a part rebuilt from a form, or one the parser left alone): read it as header blocks.
    text = part.get_payload(decode=True) or b""
    blocks = re.split(rb"\r?\n\r?\n", bytes(text).strip())
    return [BytesParser(policy=policy.default).parsebytes(block + b"\n\n", headersonly=True)
            for block in blocks[:MAX_RECIPIENTS + 1] if block.strip()]


def _failed_recipients(parts: list[Message]) -> tuple[list[tuple[str, str]], int]:
    """(address, "5.1.1 what the server said") of each permanently failed recipient, and how many failed for now."""
    failed: list[tuple[str, str]] = []
    soft = 0
    for part in parts:
        if part.get_content_type() not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        for block in _blocks(part)[1:MAX_RECIPIENTS + 1]:  # the first block is about the whole message
            email = _address_field(_header(block, "final-recipient") or _header(block, "original-recipient"))
            action = _header(block, "action").strip().lower()
            status = _STATUS.match(_header(block, "status"))
            if email is None or action != "failed":
                soft += action == "delayed"
                continue
            if status is None or status.group(1) != "5":
                soft += 1
                continue
            said = " ".join(_header(block, "diagnostic-code").partition(";")[2].split())
            detail = " ".join(part for part in (_header(block, "status").strip(), said) if part)
            failed.append((email, printable(detail)[:300]))
    return failed, soft


def _complained_of(parts: list[Message]) -> tuple[str, list[str]] | None:
    """A complaint's feedback type and the addresses it names (none: redacted); None when it is no complaint."""
    for part in parts:
        if part.get_content_type() != "message/feedback-report":
            continue
        fields = _blocks(part)
        feedback_type = _header(fields[0], "feedback-type").strip().lower() if fields else ""
        if feedback_type not in COMPLAINT_TYPES:
            return None
        named = [_address_field(str(value)) for value in (fields[0].get_all("original-rcpt-to") or [])[:MAX_RECIPIENTS]]
        return feedback_type, [email for email in named if email is not None]
    return None


def _returned_tokens(part: Message) -> list[str]:
    """The tokens in the returned message's List-Unsubscribe (headers only: a bounce may return the whole issue)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        headers: Message = payload[0]
    else:
        raw = part.get_payload(decode=True) or b""
        headers = BytesParser(policy=policy.default).parsebytes(bytes(raw)[:256 * 1024], headersonly=True)
    values = headers.get_all("list-unsubscribe") or []
    return [token for value in values[:3] for token in _TOKEN.findall(str(value))[:4]]


def _address_field(value: str) -> str | None:
    """The address in a report's field ('rfc822; ada@example.com'), or None when it is none."""
    kind, semicolon, address = value.partition(";")
    if not semicolon:
        kind, address = "rfc822", kind
    if kind.strip().lower() not in ("rfc822", "utf-8"):  # RFC 3464's address types; X400 and others are no mailbox
        return None
    try:
        return parse_address(address.strip().strip("<>").strip())
    except AddressError:
        return None


def _header(message: Message, name: str) -> str:
    """A header's value as text ('' when absent); one that does not parse is taken as it was written."""
    try:
        value = message.get(name)
    except (ValueError, TypeError, IndexError, AttributeError):  # the header registry on a malformed value
        value = message.get_all(name, [""])[0] if hasattr(message, "get_all") else ""
    return "" if value is None else str(value)


# -- SendGrid's Inbound Parse, without "send raw" -------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    """A file part of an Inbound Parse post: its declared type and bytes."""

    content_type: str
    data: bytes


def message_from_parse(fields: dict[str, bytes], attachments: Iterable[Attachment]) -> EmailMessage | None:
    """The message SendGrid's Inbound Parse posted, from its form fields.

    With "send raw", the field `email` is the whole message. Without it, `headers` holds the
    message's headers, `subject` and `text` their text in the charset the `charsets` field names
    for each (SendGrid decodes the subject's encoded words), and each non-text part (a report's delivery-status, the
    returned message) arrives as an attachment: they are put back together as the parts of a
    message with those headers, enough for read_message.
    """
    if "email" in fields:
        return parse_message(fields["email"])
    charsets = _charsets(fields.get("charsets", b""))
    headers = fields.get("headers", b"")
    if len(headers) > 1024 * 1024:
        return None
    message: EmailMessage = BytesParser(policy=policy.default).parsebytes(
        headers.strip() + b"\r\n\r\n", headersonly=True)  # type: ignore[assignment]
    if "subject" in fields:  # decoded by SendGrid, in the charset `charsets` names: the one to read
        del message["subject"]
        message["Subject"] = " ".join(_text_field(fields, "subject", charsets).split())[:998]
    parts: list[Message] = []
    text = _text_field(fields, "text", charsets)
    if text:
        part = EmailMessage(policy=policy.default)
        part.set_content(text)
        parts.append(part)
    total = len(headers) + len(text)
    for attachment in list(attachments)[:MAX_PARTS]:
        total += len(attachment.data)
        if total > MAX_MESSAGE_BYTES:
            return None
        # Each file is read again as a MIME entity of its declared type: a report's fields become the
        # parser's header blocks, a returned message a message, as in a raw post.
        kind = attachment.content_type.split(";")[0].strip().lower() or "application/octet-stream"
        if not re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+-]+", kind):
            kind = "application/octet-stream"
        part = parse_message(f"Content-Type: {kind}\r\n\r\n".encode() + attachment.data)
        if part is None:
            return None
        parts.append(part)
    if message.get_content_maintype() == "multipart":
        message.set_payload(parts)
    elif text:
        message.set_payload(text)
    return message


def _charsets(raw: bytes) -> dict[str, str]:
    """The `charsets` field: JSON naming each field's character set ({"subject": "UTF-8", "text": "iso-8859-1"})."""
    try:
        value = json.loads(raw.decode("utf-8", "replace") or "{}")
    except (ValueError, RecursionError):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


def _text_field(fields: dict[str, bytes], name: str, charsets: dict[str, str]) -> str:
    """A field's bytes as text, in the charset `charsets` names for it (UTF-8 when it names none we know)."""
    raw = fields.get(name, b"")
    charset = charsets.get(name, "utf-8") or "utf-8"
    try:
        import codecs

        if not codecs.lookup(charset)._is_text_encoding:  # 'hex', 'rot13': codecs, not charsets
            charset = "utf-8"
        return raw.decode(charset, "replace")
    except (LookupError, UnicodeError, ValueError):  # idna and punycode cannot decode with "replace"
        return raw.decode("utf-8", "replace")


# -- acting -------------------------------------------------------------------------------------


def record(state_dir: Path, readings: Iterable[Reading], list_id: str) -> tuple[int, str | None]:
    """Put what `readings` name on the suppression list, then the subscriber store; how many were new, and the
    store's trouble if it could not follow (the suppression list, which sends obey, has them already)."""
    items = [item for reading in readings for item in reading.act]
    if not items:
        return 0, None
    unsubscribes = [item for item in items if item.source == UNSUBSCRIBED]
    reported = [item for item in items if item.source != UNSUBSCRIBED]
    new = 0
    with SuppressionList(suppressions_path(state_dir)) as suppressions:
        if unsubscribes:
            before = suppressions.unsubscribed_here()
            suppressions.record_clicks(Click(UNSUBSCRIBE, item.email, EMAIL, list_id) for item in unsubscribes)
            new += suppressions.unsubscribed_here() - before
        if reported:
            new += suppressions.record_reported(reported)
    try:
        mark_in_store(state_dir, [*unsubscribes, *reported])
    except StateError as err:
        return new, str(err).splitlines()[0]
    return new, None

"""SendGrid's Inbound Parse into `mailer serve`: mail that comes back, posted to POST /webhooks/sendgrid-inbound/KEY.

SendGrid receives the mail for a subdomain whose MX points at it, and posts each message here as
multipart/form-data (https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/inbound-email):
its parsed fields, or with "send raw" the whole message in `email`. Inbound Parse signs nothing, so the
address itself is the secret: KEY is MAILER_INBOUND_KEY, compared in constant time, and any other KEY
(or none set) is the same 404 as an unknown path. What a message is and whom it names is decided in
mailer.deliver.inbound; this module reads the form and answers.

SendGrid retries every post it gets no 2xx for, for three days: any well-formed post is answered 200,
a mail that does nothing included (the answer and the log line say what was done, in counts).
Bodies are bounded (MAX_INBOUND_BYTES: SendGrid's 30 MB and the form around it) and must arrive whole
within INBOUND_BODY_SECONDS. At most MAX_READING posts are read at a time (a post held in memory), and at most
MAX_AT_ONCE parsed (each costs a few times its size while it is parsed): a client that sends its body a byte at
a time holds a reading place, never the parsing, so two slow ones no longer hold up every other post.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from email import policy
from email.parser import BytesParser
from typing import Any

from mailer.deliver.inbound import (
    MAX_MESSAGE_BYTES,
    MAX_PARTS,
    Attachment,
    Newsletter,
    Outcome,
    message_from_parse,
    read_message,
    record,
)
from mailer.errors import ConfigError
from mailer.web.forms import media_type

log = logging.getLogger("mailer.serve")

INBOUND_KEY_ENV = "MAILER_INBOUND_KEY"
INBOUND_PATH = "/webhooks/sendgrid-inbound/"
MAX_INBOUND_BYTES = MAX_MESSAGE_BYTES + 1024 * 1024  # the message, and the fields SendGrid adds around it
INBOUND_BODY_SECONDS = 60  # 33 MB at half a megabyte a second
MAX_AT_ONCE = 2
MAX_READING = 8  # 8 × MAX_INBOUND_BYTES at worst in memory; SendGrid's posts are a few KB
_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]{32,200}")


def inbound_key(value: str) -> str | None:
    """MAILER_INBOUND_KEY's `value` (None when unset); ConfigError when it is too short to guess at or not
    URL-safe."""
    key = value.strip()
    if not key:
        return None
    if not _KEY_CHARS.fullmatch(key):
        raise ConfigError(f"{INBOUND_KEY_ENV} must be 32 to 200 letters, digits, - and _ (it is the secret part of "
                          "the address SendGrid posts inbound mail to; the value is not shown)\n"
                          "    hint: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return key


class InboundParse:
    """The endpoint's state: the key, the newsletter whose mail it reads, and the posts being handled."""

    def __init__(self, key: str, newsletter: Newsletter):
        self.key = key.encode()
        self.newsletter = newsletter
        self._at_once = asyncio.Semaphore(MAX_AT_ONCE)
        self._reading = asyncio.Semaphore(MAX_READING)

    def knows(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.key)

    async def receive(self, request: Any, read_body: Any) -> Any:
        """Read one post and act on its message; the answer SendGrid is given (a refusal is plain text)."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse, PlainTextResponse

        kind, _ = media_type(request.headers.get("content-type", ""))
        if kind != "multipart/form-data":
            return PlainTextResponse("not an Inbound Parse post (multipart/form-data)", status_code=415)
        async with self._reading:
            body = await read_body(request, limit=MAX_INBOUND_BYTES, seconds=INBOUND_BODY_SECONDS)
        if not isinstance(body, bytes):
            return PlainTextResponse(body.words, status_code=body.value, headers={"Connection": "close"})
        async with self._at_once:
            form = await run_in_threadpool(read_form, body, request.headers.get("content-type", ""))
            if form is None:
                return PlainTextResponse("not a form that can be read", status_code=400)
            outcome, trouble = await run_in_threadpool(self._act, *form)
        if trouble:
            log.error("the subscriber store could not follow inbound mail: %s", trouble)
        log.info("inbound mail: %s", outcome.describe())
        return JSONResponse(outcome.as_dict())

    def _act(self, fields: dict[str, bytes], attachments: list[Attachment]) -> tuple[Outcome, str | None]:
        reading = read_message(message_from_parse(fields, attachments), self.newsletter)
        outcome = Outcome()
        outcome.add(reading)
        _, trouble = record(self.newsletter.state_dir, [reading], self.newsletter.list_id)
        return outcome, trouble


def read_form(body: bytes, content_type: str) -> tuple[dict[str, bytes], list[Attachment]] | None:
    """A multipart/form-data body's fields (name → bytes) and files; None when it is not such a form.

    Split at its boundary here (RFC 7578; Starlette would need python-multipart): each part's
    headers are read with the email package, its content kept as the bytes that came, whatever type
    it declares (the email package would open a message/* or multipart/* file part instead).
    """
    if "\r" in content_type or "\n" in content_type:
        return None
    declared = BytesParser(policy=policy.default).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode(
        "utf-8", "replace"), headersonly=True)
    boundary = declared.get_param("boundary", header="content-type")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 70 or not boundary.isascii():
        return None
    pieces = (b"\r\n" + body).split(b"\r\n--" + boundary.encode())
    if len(pieces) < 2 or len(pieces) > MAX_PARTS + 50 or not pieces[-1].startswith(b"--"):
        return None  # no part, more fields than any post carries, or cut short before the closing delimiter
    fields: dict[str, bytes] = {}
    attachments: list[Attachment] = []
    for piece in pieces[1:-1]:
        head, separator, content = piece.partition(b"\r\n\r\n")
        if not separator or len(head) > 16 * 1024:
            return None
        headers = BytesParser(policy=policy.default).parsebytes(head.lstrip(b" \t").removeprefix(b"\r\n")
                                                                + b"\r\n\r\n", headersonly=True)
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            return None
        if headers.get_filename() is not None:
            attachments.append(Attachment(headers.get_content_type(), content))
        else:
            fields[name] = content
    return fields, attachments

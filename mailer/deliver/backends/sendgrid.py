"""SendGrid v3 Mail Send, made as the official library makes its requests: one per batch of up to 1000 recipients."""

from __future__ import annotations

import html
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.client import HTTPException
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailer.addresses import printable, shown_url
from mailer.audience.subscribers import Subscriber
from mailer.compose import placeholders
from mailer.config import Config, Tracking
from mailer.deliver.backends import (
    Accepted,
    BackendConfigError,
    FatalError,
    Recipient,
    RejectedError,
    TransientError,
    UncertainError,
)
from mailer.deliver.message import Personaliser

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue
    from mailer.compose.plaintext import NamedParagraph

API_KEY_ENV = "SENDGRID_API_KEY"
API_HOST_ENV = "SENDGRID_API_HOST"
DEFAULT_HOST = "https://api.sendgrid.com"
# SendGrid's documented limits per request (https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send).
MAX_PERSONALIZATIONS = 1000
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
TIMEOUT_SECONDS = 30.0  # the library sets none: a stalled request would hang the send forever
# Of an answer, no more is read than this (see api_request): a page of 500 suppressions is about 100 KB,
# Mail Send's answers are empty or a few errors.
MAX_ANSWER_BYTES = 8 << 20

# python_http_client logs every request's headers, Authorization included, at DEBUG level.
# Secrets must never reach a log: that library's logger is kept at WARNING.
logging.getLogger("python_http_client.client").setLevel(logging.WARNING)


@dataclass(frozen=True)
class SendGridOptions:
    send_at: datetime | None = None
    schedule_id: str | None = None  # SendGrid's batch_id, for cancelling a scheduled send
    sandbox: bool = False
    test_copy: bool = False  # a `--test-to` copy: its events are told apart from the list's (see _request)


@dataclass(frozen=True)
class Request:
    """One Mail Send request: its JSON body and who it is for (to write the outbox and ledger)."""

    body: str  # JSON text, ASCII only: posted as it is (see SendGridBackend.send)
    emails: tuple[str, ...]


def api_key(value: str, purpose: str = "a live SendGrid send needs an API key with Mail Send permission",
            hint: str = " (create one under Settings > API Keys), or leave out --live for a dry run") -> str:
    """SENDGRID_API_KEY's `value`, checked; `purpose` and `hint` say what the command needs it for."""
    key = value.strip()
    if not key:
        raise BackendConfigError(f"{API_KEY_ENV} is not set: {purpose}\n    hint: export {API_KEY_ENV}=SG.…{hint}")
    # http.client refuses a header value with a line break by quoting it whole in a ValueError, and
    # cannot encode non-Latin-1 text: either way the key would reach a traceback. A SendGrid key is
    # ASCII letters, digits and punctuation, so anything else is a paste gone wrong (two keys, a note).
    if not key.isascii() or any(c.isspace() or not c.isprintable() for c in key):
        raise BackendConfigError(
            f"{API_KEY_ENV} is not a single API key: it holds a line break, a space or a non-ASCII character "
            "(the value is not shown here)\n"
            f"    hint: export {API_KEY_ENV}=SG.… again with just the key"
        )
    return key


def api_host(value: str) -> str:
    """SendGrid's address: https://api.sendgrid.com, or SENDGRID_API_HOST's `value` (a proxy, a test server)."""
    host = value.strip().rstrip("/")
    return checked_host(host) if host else DEFAULT_HOST


def checked_host(host: str) -> str:
    """`host` if it is an http(s) address mailer can send to; else BackendConfigError, the value shown as
    shown_url shows it (never a user name or password in it)."""
    try:
        parts = urlsplit(host)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query
            or parts.fragment or any(c.isspace() or not c.isprintable() for c in host)):
        raise BackendConfigError(f"{API_HOST_ENV} is not an http(s) address: {shown_url(host)!r}\n"
                                 f"    hint: unset it to use {DEFAULT_HOST}, or give a URL like https://proxy.example:8443")
    if "@" in host:
        # urllib would try to reach a host named `user:pass@host` (or give them to a proxy in the request
        # line): they can only fail, or leak. SendGrid's requests carry the API key instead. An @ past
        # the host (a password with a / in it) is one too: the part before it would be taken for the host.
        raise BackendConfigError(
            f"{API_HOST_ENV} holds a user name or password ({shown_url(host)}): mailer sends them nowhere, "
            "and SendGrid's requests carry the API key instead\n"
            f"    hint: export {API_HOST_ENV}={shown_url(host).replace('***@', '', 1)}")
    return host


class SendGridBackend:
    name = "sendgrid"
    max_batch = MAX_PERSONALIZATIONS

    def __init__(self, *, key: str | None = None, host: str | None = None, timeout: float = TIMEOUT_SECONDS):
        """`key`: api_key's (None for a dry run, which sends nothing); `host`: api_host's, or DEFAULT_HOST."""
        self._key = key
        self._host = checked_host(host) if host else DEFAULT_HOST
        self._shown_host = shown_url(self._host)  # for messages: never a user name or password
        self._timeout = timeout
        self._client: Any = None

    # -- preparing ---------------------------------------------------------------------------

    def prepare(self, rendered: RenderedIssue, config: Config, recipients: list[Recipient], *,
                batch_id: str, options: SendGridOptions) -> Request:
        return Request(request_body(rendered, config, recipients, batch_id=batch_id, options=options),
                       tuple(r.subscriber.email for r in recipients))

    def prepare_batch(self, rendered: RenderedIssue, config: Config, subscribers: list[Subscriber],
                      personaliser: Personaliser, *, batch_id: str, options: SendGridOptions) -> Request:
        return Request(bulk_request_body(rendered, config, subscribers, personaliser, batch_id=batch_id,
                                         options=options), tuple(s.email for s in subscribers))

    def __getstate__(self) -> dict[str, Any]:
        # Pickled for a worker process that prepares requests (mailer/deliver/workers.py): it sends
        # nothing, so it gets no connection and no key.
        return {**self.__dict__, "_client": None, "_key": None}

    # -- sending -----------------------------------------------------------------------------

    def _sendgrid(self) -> Any:
        if self._client is None:
            from sendgrid import SendGridAPIClient  # imported on first live use only

            self._client = SendGridAPIClient(api_key=self._key or api_key(""), host=self._host)
            # python_http_client json.dumps a body unless the Content-Type is other than exactly
            # application/json: with the charset parameter (the header SendGrid's own C# library
            # sends) it posts our JSON text as it is. Set once, for every request of this client.
            self._client.client.request_headers["Content-Type"] = JSON_CONTENT_TYPE
        return self._client

    def send(self, payload: Request) -> Accepted:
        headers, _ = self._call(lambda client: api_request(client.client, "POST", "/mail/send", body=payload.body,
                                                           timeout=self._timeout))
        return Accepted(_message_id(headers.get("X-Message-Id")))

    def create_schedule_id(self) -> str:
        """Ask SendGrid for a batch id that groups a scheduled send so that it can be cancelled."""
        _, answer = self._call(lambda client: api_request(client.client, "POST", "/mail/batch",
                                                          timeout=self._timeout))
        # The id goes into every request of the send, the ledger and the cancel: only one as SendGrid makes them.
        try:
            batch_id = json.loads(answer).get("batch_id")
        except (ValueError, AttributeError, RecursionError):  # not JSON (as _body), or not an object
            batch_id = None
        if not isinstance(batch_id, str) or not _BATCH_ID.fullmatch(batch_id):
            words = printable(" ".join(answer.decode("utf-8", "replace").split())[:120]) or "an empty body"
            raise FatalError(f"the answer to POST /v3/mail/batch holds no batch id ({words}): is "
                             f"{API_HOST_ENV} SendGrid's?")
        return batch_id

    def cancel_schedule(self, schedule_id: str) -> None:
        self._call(lambda client: api_request(client.client, "POST", "/user/scheduled_sends", timeout=self._timeout,
                                              body=json.dumps({"batch_id": schedule_id, "status": "cancel"})))

    def _call(self, request: Any) -> Any:
        from python_http_client import exceptions as http

        try:
            return request(self._sendgrid())
        except http.TooManyRequestsError as err:
            raise TransientError("SendGrid is throttling (429)", retry_after=_retry_after(err)) from None
        except (http.UnauthorizedError, http.ForbiddenError) as err:
            raise FatalError(f"SendGrid refused the API key ({err.status_code}): {_errors(err)}\n"
                             f"    hint: check {API_KEY_ENV} and that the key has the Mail Send permission") from None
        except http.PayloadTooLargeError as err:
            raise FatalError(f"SendGrid says the request is too large (413): {_errors(err)}") from None
        except http.BadRequestsError as err:
            raise RejectedError(f"SendGrid rejected the request (400): {_errors(err)}",
                                positions=_refused_positions(err)) from None
        except http.HTTPError as err:
            if int(err.status_code) in (404, 405, 501) or not _is_sendgrid_answer(err) and int(err.status_code) < 500:
                # Every request would get the same: a wrong SENDGRID_API_HOST or a proxy in the way. Stop.
                raise FatalError(f"{self._shown_host} answered {err.status_code}: {_errors(err)}\n"
                                 f"    hint: is {API_HOST_ENV} right? Unset, it is {DEFAULT_HOST}") from None
            if int(err.status_code) == 504:
                # A gateway timeout: the proxy gave up waiting for the server that had the request,
                # which may still have queued it. Like a read timeout, resending could deliver twice.
                raise UncertainError(f"SendGrid answered 504 (gateway timeout): the request may have been "
                                     f"accepted: {_errors(err)}") from None
            if 500 <= int(err.status_code) < 600:
                raise TransientError(f"SendGrid answered {err.status_code}: {_errors(err)}",
                                     retry_after=_retry_after(err)) from None
            raise RejectedError(f"SendGrid answered {err.status_code}: {_errors(err)}") from None
        except urllib.error.URLError as err:
            # urlopen wraps errors raised while connecting: the request never left.
            raise TransientError(f"cannot reach SendGrid at {self._shown_host}: {err.reason}") from None
        except ValueError as err:  # http.client.InvalidURL and friends: raised before anything is sent
            raise FatalError(f"the request to {self._shown_host} could not be made (nothing was sent): {err}") from None
        except TimeoutError as err:
            raise UncertainError(f"no answer from SendGrid within {self._timeout:g} s: {err}") from None
        except (HTTPException, ConnectionError, OSError) as err:
            # printable: a BadStatusLine's text is the server's own status line, escapes and all.
            raise UncertainError(f"the connection to SendGrid broke after the request was sent: "
                                 f"{type(err).__name__}: {printable(str(err)[:200])}") from None

    def close(self) -> None:
        self._client = None


def _body(err: Any) -> tuple[str, Any]:
    """A failed response's body as text, and as parsed JSON (None when it is not JSON)."""
    body = getattr(err, "body", None)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body if body is not None else err)
    try:
        return text, json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser goes
        return text, None


_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")  # SendGrid's: URL-safe base64, about 40 characters


def _message_id(value: str | None) -> str | None:
    """SendGrid's X-Message-Id (22 characters or so) as it is shown and recorded: printable, at most 200
    characters. A host that is not SendGrid could answer with terminal escapes, or 64 KB of them."""
    return printable(value[:200]) if value else value


def _sendgrid_errors(err: Any) -> list[dict[str, Any]] | None:
    """SendGrid's error objects ({"field", "message"}), or None when the answer is not SendGrid's JSON."""
    parsed = _body(err)[1]
    if not isinstance(parsed, dict):
        return None
    errors = parsed.get("errors")
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _errors(err: Any) -> str:
    """SendGrid's own error messages from a failed response body, or a readable word on what answered instead."""
    # Shown as printable text, as the other branch: a host that is not SendGrid may send terminal escapes,
    # or half of a surrogate pair, which the ledger (UTF-8) could not record.
    messages = [printable(f"{str(e.get('field')) + ': ' if e.get('field') else ''}{e.get('message', '')}")
                for e in _sendgrid_errors(err) or []]
    if any(messages):
        return "; ".join(m for m in messages if m)
    # Not SendGrid's JSON: an HTML error page from a proxy or a wrong host. One readable line, not bytes.
    words = " ".join(re.sub(r"<[^>]*>", " ", _body(err)[0]).split())
    return f"not SendGrid's answer ({printable(words[:120]) or 'an empty body'})"


def _is_sendgrid_answer(err: Any) -> bool:
    return _sendgrid_errors(err) is not None


_PERSONALIZATION_FIELD = re.compile(r"personalizations\.(\d+)(?:\.|$)")


def _refused_positions(err: Any) -> tuple[int, ...]:
    """The personalizations a 400 blames, when it blames nothing else ("personalizations.3.to.0.email").

    SendGrid refuses the whole request for one bad address among a thousand; knowing which ones lets
    the sender fail only those and send the rest. Any error without such a field means the request
    itself is wrong: then nothing is singled out.
    """
    matches = [_PERSONALIZATION_FIELD.match(str(e.get("field") or "")) for e in _sendgrid_errors(err) or []]
    if not matches or not all(matches):
        return ()
    return tuple(sorted({int(m.group(1)) for m in matches if m}))


def api_request(client: Any, method: str, path: str, *, timeout: float, body: str | None = None,
                query: Mapping[str, int] | None = None) -> tuple[Any, bytes]:
    """One request to the v3 API as the sendgrid library makes it, given its python_http_client Client
    (`SendGridAPIClient(…).client`): the URL under its host, its headers, and for an error answer its
    exception classes, as its handle_error makes them; the answer's headers and body are returned.

    Not through the library's own calls, for two reasons. It formats every body into a DEBUG line before
    it looks at the log level: the repr of a 0.7 MB request of a thousand recipients, 5 ms under the GIL
    each time, a fifth of a send's preparing and posting. And it reads an answer to its end: a host that
    is not SendGrid (a wrong SENDGRID_API_HOST) could send one that never ends. No more than
    MAX_ANSWER_BYTES is read here.
    """
    from urllib.parse import urlencode

    from python_http_client.exceptions import HTTPError, err_dict

    url = f"{client.host}/v3{path}" + (f"?{urlencode(sorted(query.items()))}" if query else "")
    request = urllib.request.Request(url, data=None if body is None else body.encode("utf-8"),
                                     headers=client.request_headers, method=method)
    try:
        # No redirect is followed (SendGrid's API answers none): urllib would carry the API key to wherever
        # a 3xx points, and re-send a POST as a GET whose 2xx would count as accepted. A 3xx is an error.
        with urllib.request.build_opener(NoRedirects).open(request, timeout=timeout) as response:
            return response.headers, response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as err:
        with err:
            raise err_dict.get(err.code, HTTPError)(err.code, err.reason, err.read(MAX_ANSWER_BYTES),
                                                    err.hdrs) from None


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """For an opener that follows no redirect: the 3xx surfaces as an HTTPError (reported), and the key or
    token the request carries goes nowhere else (used by the remote export's pull too)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(err: Any) -> float | None:
    headers = getattr(err, "headers", None) or {}
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            wait = float(reset) - time.time()
        except ValueError:
            pass
        else:
            # A reset time already past means this machine's clock runs ahead of SendGrid's: None
            # falls back to back-off, where retrying at once would spend every attempt being throttled.
            return wait if wait > 0 else None
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return None
    return None


_NEEDS_ESCAPE = re.compile(r"[&<>\"]")
# `text` as json.dumps writes a string: quoted and escaped, non-ASCII as \u escapes. Its C encoder itself,
# not a function calling it: six strings a recipient.
_json: Callable[[str], str] = encode_basestring_ascii


def _escape_html(text: str) -> str:
    return html.escape(text, quote=True)


def _html_key(placeholder: str) -> str:
    """The HTML part's own copy of a placeholder (see _shared)."""
    return placeholder[:-1] + "_html-"


@dataclass
class _Shared:
    """What the readers of one request share, and which of each reader's values it carries (see _shared)."""

    subject: str
    content_text: str
    content_html: str
    rewrapped: list[tuple[str, NamedParagraph]]  # (its tag, the paragraph) of each paragraph wrapped per reader
    # Each substitution as its JSON key (written once here) and how its value is made from the reader's.
    substitutions: list[tuple[str, str, Callable[[str], str] | None]]


def _shared(rendered: RenderedIssue, config: Config, first: Mapping[str, str], columns: dict[str, list[str]]
            ) -> _Shared:
    """What a request shares, for readers whose values (Personal.values) are `first` for the first of them
    and `columns` by name for all of them: their first names and addresses, in order."""
    # SendGrid fills one value into both parts, but `Tom & Jerry` must be escaped in the HTML and
    # not in the text. Where some recipient of this batch has such a value, the HTML part gets its
    # own placeholder (-first_name_html-) with an escaped value; elsewhere one value serves both.
    # The web version's address is the same for everyone: filled here, not sent 1000 times.
    web_url = first["web_url"]
    per_recipient = [name for name in placeholders.ALL if name != "web_url"]
    # One search through all of the batch's values of a name, joined (the pattern is single characters), not
    # one per reader. The unsubscribe URL differs only by a URL-safe token, so its first value tells for all.
    escaped = {name for name in ("first_name", "email") if _NEEDS_ESCAPE.search("".join(columns[name]))}
    if _NEEDS_ESCAPE.search(first["unsubscribe_url"]) and not config.managed_unsubscribe:
        escaped.add("unsubscribe_url")
    content_html = rendered.html.replace(placeholders.WEB_URL, html.escape(web_url, quote=True))
    # A text paragraph that some reader's long name would push past the line width goes as a
    # value of its own, wrapped for each reader (see plaintext.NamedParagraph).
    rewrapped = [(f"-text_paragraph_{number}-", paragraph) for number, paragraph in enumerate(
        p for p in rendered.text_named if p.grows_for_any(columns))]
    content_text = rendered.text
    for tag, paragraph in rewrapped:
        content_text = content_text.replace(paragraph.wrapped, tag)
    content_text = content_text.replace(placeholders.WEB_URL, web_url)
    subject = rendered.subject.replace(placeholders.WEB_URL, web_url)
    if config.managed_unsubscribe:
        # SendGrid puts each reader's link where its tag stands (raw: `<%…%>` escaped would not match).
        per_recipient.remove("unsubscribe_url")
        content_html = content_html.replace(placeholders.UNSUBSCRIBE_URL, config.unsubscribe_tag)
        content_text = content_text.replace(placeholders.UNSUBSCRIBE_URL, config.unsubscribe_tag)
    for name in escaped:
        content_html = content_html.replace(placeholders.ALL[name], _html_key(placeholders.ALL[name]))
    # Inside links the values go percent-encoded (see placeholders.mark_urls); only the forms used.
    url_value = placeholders.url_value
    substitutions = [(_json(placeholders.ALL[name]) + ": ", name, None) for name in per_recipient]
    substitutions += [(_json(_html_key(placeholders.ALL[name])) + ": ", name, _escape_html) for name in
                      ("first_name", "email", "unsubscribe_url") if name in escaped]
    substitutions += [(_json(form) + ": ", name, url_value) for name, form in placeholders.URL_FORMS.items()
                      if form in content_html or form in content_text]
    return _Shared(subject, content_text, content_html, rewrapped, substitutions)


def request_body(rendered: RenderedIssue, config: Config, recipients: list[Recipient], *, batch_id: str,
                 options: SendGridOptions) -> str:
    """The Mail Send request for these recipients, as JSON text (ASCII: every other character escaped)."""
    values = [recipient.personal.values for recipient in recipients]
    shared = _shared(rendered, config, values[0], {name: [v[name] for v in values] for name in ("first_name", "email")})
    return _request_body(rendered, config, recipients, shared, batch_id, options)


def _request_body(rendered: RenderedIssue, config: Config, recipients: list[Recipient], shared: _Shared,
                  batch_id: str, options: SendGridOptions) -> str:
    own_headers = "List-Unsubscribe" in recipients[0].personal.headers
    personalizations = []
    append = personalizations.append
    # This loop runs once per recipient (a million for a large list): the request is written as JSON
    # text directly, as json.dumps would write the same objects (its C string encoder, the same
    # separators), at a quarter of the cost of building dicts and dumping them.
    for recipient in recipients:
        subscriber, values = recipient.subscriber, recipient.personal.values
        filled = [key + _json(make(values[value]) if make else values[value]) for key, value, make in
                  shared.substitutions]
        for tag, paragraph in shared.rewrapped:
            filled.append(_json(tag) + ": " + _json(paragraph.filled(values) if paragraph.grows(values)
                                                    else placeholders.fill(paragraph.wrapped, values)))
        headers = (f', "headers": {{"List-Unsubscribe": {_json(recipient.personal.headers["List-Unsubscribe"])}}}'
                   if own_headers else "")
        append(f'{{"to": [{_to(subscriber, _json(subscriber.email))}], "substitutions": {{{", ".join(filled)}}}'
               f'{headers}, "custom_args": {{"mailer_recipient": "{recipient.personal.recipient_id}"}}}}')
    shared_headers = {k: v for k, v in recipients[0].personal.headers.items() if k != "List-Unsubscribe"}
    return _request(rendered, config, shared, personalizations, shared_headers, batch_id, options)


# The substitutions of most batches: each reader's first name, address and unsubscribe link, as they are;
# where the link has an & (an unsubscribe_url with a query), also the link HTML-escaped for the HTML part.
_PLAIN = [(_json(placeholders.ALL[name]) + ": ", name, None) for name in ("first_name", "email", "unsubscribe_url")]
_PLAIN_LINK_ESCAPED = [*_PLAIN,
                       (_json(_html_key(placeholders.UNSUBSCRIBE_URL)) + ": ", "unsubscribe_url", _escape_html)]


def bulk_request_body(rendered: RenderedIssue, config: Config, subscribers: list[Subscriber],
                      personaliser: Personaliser, *, batch_id: str, options: SendGridOptions) -> str:
    """request_body for these subscribers, each personalised by `personaliser` (a send's batches).

    The same JSON, written from each reader's fields and unsubscribe link without making their
    Personal values and headers first: a third less CPU a recipient. A batch that needs more (a name or
    address HTML-escaped, a value percent-encoded, a paragraph wrapped again for someone, SendGrid's
    own unsubscribe links) goes through request_body.
    """
    shared = None
    first_names = [personaliser.first_name(s) for s in subscribers]
    if personaliser.managed_tag is None:
        first = personaliser(subscribers[0]).values  # its link tells for all (see _shared)
        shared = _shared(rendered, config, first, {"first_name": first_names, "email": [s.email for s in subscribers]})
    if shared is None or shared.rewrapped or shared.substitutions not in (_PLAIN, _PLAIN_LINK_ESCAPED):
        recipients = [Recipient(s, personaliser(s)) for s in subscribers]
        if shared is None:
            return request_body(rendered, config, recipients, batch_id=batch_id, options=options)
        return _request_body(rendered, config, recipients, shared, batch_id, options)  # `shared` as it would make it
    (first_name_key, _, _), (email_key, _, _), (link_key, _, _), *escaped = shared.substitutions
    link_html_key = escaped[0][0] if escaped else None
    unsubscribe = personaliser.unsubscribe
    personalizations = []
    append = personalizations.append
    # As _request_body's loop writes it, for these substitutions and own headers.
    for subscriber, first_name in zip(subscribers, first_names, strict=True):
        link, header, opaque = unsubscribe(subscriber.key)
        email = _json(subscriber.email)
        link_html = f", {link_html_key}{_json(_escape_html(link))}" if link_html_key else ""
        append(f'{{"to": [{_to(subscriber, email)}], "substitutions": {{{first_name_key}'
               f'{_json(first_name)}, {email_key}{email}, {link_key}{_json(link)}{link_html}}}, '
               f'"headers": {{"List-Unsubscribe": {_json(header)}}}, "custom_args": '
               f'{{"mailer_recipient": "{opaque}"}}}}')
    return _request(rendered, config, shared, personalizations, personaliser.shared_headers, batch_id, options)


def _to(subscriber: Subscriber, email: str) -> str:
    """The request's `to` of a reader, their address given as JSON."""
    # SendGrid refuses a name containing ',' or ';' (and the helper classes silently drop the address).
    name = subscriber.full_name
    if not name:
        return f'{{"email": {email}}}'
    return f'{{"email": {email}, "name": {_json(name.replace(",", " ").replace(";", " "))}}}'


def tracking_settings(tracking: Tracking) -> dict[str, Any]:
    """SendGrid's click and open tracking as mailer.yaml's `tracking:` sets them; what is unset is left out,
    so the account's own setting applies to it. Clicks are tracked in the HTML part only: the plain-text
    part keeps the addresses a reader can read (SendGrid would replace each with its redirect).
    https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send (tracking_settings)"""
    settings: dict[str, Any] = {}
    if tracking.clicks is not None:
        settings["click_tracking"] = {"enable": tracking.clicks, "enable_text": False}
    if tracking.opens is not None:
        settings["open_tracking"] = {"enable": tracking.opens}
    return settings


def _request(rendered: RenderedIssue, config: Config, shared: _Shared, personalizations: list[str],
             shared_headers: dict[str, str], batch_id: str, options: SendGridOptions) -> str:
    """The request's JSON: the readers' personalizations (JSON text each), then what they share."""
    body: dict[str, Any] = {
        "from": {"email": config.sender.email, **({"name": config.sender.name} if config.sender.name else {})},
        "subject": shared.subject,
        # text/plain must come before text/html (SendGrid's rule).
        "content": [{"type": "text/plain", "value": shared.content_text},
                    {"type": "text/html", "value": shared.content_html}],
        "headers": shared_headers,  # List-Id and List-Unsubscribe-Post: the same for everyone
        "categories": ["mailer", f"issue-{rendered.issue.slug}"[:255]],
        "custom_args": {"mailer_issue": rendered.issue.slug, "mailer_batch": batch_id},
    }
    if getattr(options, "test_copy", False):
        # Every event SendGrid posts back carries these. A test copy's delivery, opens, clicks and complaints
        # are not the issue's, and its delivery must not resolve a list reader of the same address whose
        # copy is uncertain (they would never get it): mailer_test marks it for mailer.deliver.events, and
        # its own issue key and category keep it apart for a reader that predates the mark, and in
        # SendGrid's statistics.
        body["categories"] = ["mailer", f"test-{rendered.issue.slug}"[:255]]
        body["custom_args"] = {"mailer_issue": f"{rendered.issue.slug}@test", "mailer_batch": batch_id,
                               "mailer_test": "1"}
    if config.reply_to:
        body["reply_to"] = {"email": config.reply_to}
    if config.managed_unsubscribe and config.unsubscribe_group:
        body["asm"] = {"group_id": config.unsubscribe_group}
    elif config.managed_unsubscribe:
        # Subscription tracking adds List-Unsubscribe (https) and List-Unsubscribe-Post itself, and
        # records the click: https://www.twilio.com/docs/sendgrid/ui/account-and-settings/tracking
        body["tracking_settings"] = {"subscription_tracking": {"enable": True,
                                                               "substitution_tag": config.unsubscribe_tag}}
    if config.tracking.set:
        body.setdefault("tracking_settings", {}).update(tracking_settings(config.tracking))
    if options.send_at is not None:
        body["send_at"] = int(options.send_at.timestamp())
    if options.schedule_id:
        body["batch_id"] = options.schedule_id
    if options.sandbox:
        body["mail_settings"] = {"sandbox_mode": {"enable": True}}
    # "personalizations" first, then the rest: the order json.dumps would keep.
    return f'{{"personalizations": [{", ".join(personalizations)}], {json.dumps(body)[1:]}'


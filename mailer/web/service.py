"""`mailer serve`: the public service behind `unsubscribe_url`, an ASGI app (Starlette) for mailer.web.server.

GET shows, POST acts: mail scanners and link previews follow every GET, so a GET only shows the
page with its button; the button, and a mail client's RFC 8058 one-click request
(`List-Unsubscribe=One-Click` in a form body), are POSTs. Unsubscribing records the reader in the
state folder's suppression list at once (`unsubscribes`, never replaced by a pull), so the next
`mailer send` skips them; a second POST is fine, and "Resubscribe" undoes a mistaken click.

Every request is treated as hostile: bodies over a few kilobytes are refused before they are read
in full, and a body that does not arrive whole within BODY_SECONDS is answered 408 (the server
times out slow headers; see mailer.web.server); a body that cannot be read changes nothing; tokens
are checked before anything in them is used; errors are short pages that name no file and show no
traceback; no answer is built from the Host header; and nothing with a token in it is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mailer.audience.store import SubscriberStore
from mailer.config import Config
from mailer.deliver.message import (
    DRY_RUN_SECRET,
    TEST_COPY,
    list_id,
    unsubscribe_secret,
    verify_unsubscribe_token,
)
from mailer.deliver.suppressions import (
    EXPORT_PATH,
    EXPORT_TOKEN_ENV,
    RESUBSCRIBE,
    UNSUBSCRIBE,
    Click,
    SuppressionList,
    suppressions_path,
)
from mailer.environment import Environment
from mailer.statedb import StateError
from mailer.web.clicks import ClickWriter
from mailer.web.forms import TEXT_CHARSETS, media_type
from mailer.web.inbound import inbound_key
from mailer.web.pages import pages

log = logging.getLogger("mailer.serve")

MAX_BODY_BYTES = 4096  # a one-click body is 26 bytes; the page's form a few dozen
BODY_SECONDS = 10  # for a body to arrive whole, once the headers are in: a trickling client is cut off
WEBHOOK_BODY_SECONDS = 30  # SendGrid's batches are up to 768 KB
ONE_CLICK = "One-Click"  # RFC 8058: the body says List-Unsubscribe=One-Click
SECURITY_HEADERS = {
    # The token is in the address: never sent on to another site, never kept in a shared cache.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


WEBHOOK_PATH = "/webhooks/sendgrid"
EVENTS_EXPORT_PATH = "/export/events"
EVENTS_PAGE = 10_000  # events in one answer of the events export: about 3 MB
WEBHOOK_KEY_ENV = "SENDGRID_WEBHOOK_PUBLIC_KEY"
MAX_WEBHOOK_BYTES = 2 * 1024 * 1024  # SendGrid posts batches well under a megabyte
MAX_WEBHOOK_AGE_SECONDS = 600  # a signed batch older than this is a replay, not SendGrid
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


@dataclass(frozen=True)
class Service:
    """What every request needs: the newsletter's identity, the key its tokens are signed with, the store."""

    newsletter: str
    list_id: str
    secret: bytes
    state_dir: Path
    suppressions_path: Path
    unsubscribe_path: str
    clicks: ClickWriter
    webhook_key: Any = None  # the account's Event Webhook key; None: no webhook here
    events: Any = None  # mailer.web.events.EventWriter, with the webhook
    signup: Any = None  # mailer.web.signup.SignupService; None: no sign-up form here


def webhook_key(value: str) -> Any:
    """SENDGRID_WEBHOOK_PUBLIC_KEY's `value` as a key object (None when unset); ConfigError when it is not one."""
    from mailer.errors import ConfigError

    text = "".join(value.split())
    if not text:
        return None
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec
    from sendgrid.helpers.eventwebhook import EventWebhook

    try:
        key = EventWebhook().convert_public_key_to_ecdsa(text.removeprefix("-----BEGINPUBLICKEY-----")
                                                         .removesuffix("-----ENDPUBLICKEY-----"))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("not an elliptic-curve key")
        return key
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"{WEBHOOK_KEY_ENV} is not an ECDSA public key (the value is not shown)\n"
                          "    hint: copy the verification key from SendGrid: Settings > Mail Settings > Event Webhook"
                          " > Signature Verification") from None


def create_app(config: Config, environment: Environment) -> Any:
    """The ASGI app for `config`'s newsletter, its secrets and keys from `environment`; raises ConfigError when
    MAILER_UNSUBSCRIBE_SECRET is not set."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    # Managed by SendGrid, there are no links of ours to check: only the webhook may be served.
    stored = suppressions_path(config.state_dir)
    signup = None
    if config.signup is not None:
        from mailer.web.signup import signup_service

        # Refuses to start without the secret or the backend.
        signup = signup_service(config, list_id(config), environment)
    key, events = webhook_key(environment.webhook_public_key), None
    if key is not None:
        from mailer.web.events import EventWriter

        events = EventWriter(config.state_dir)  # its thread and connection: made once, closed at shutdown
    service = Service(newsletter=config.name, list_id=list_id(config),
                      secret=unsubscribe_secret(environment.unsubscribe_secret, live=not config.managed_unsubscribe),
                      state_dir=config.state_dir, suppressions_path=stored,
                      unsubscribe_path=urlsplit(config.unsubscribe_url).path or "/", clicks=ClickWriter(stored),
                      webhook_key=key, events=events, signup=signup)
    endpoints: list[tuple[str, str]] = []  # (what, path) of each endpoint that is on: `mailer serve` lists them

    def page(status: int, kind: str, **values: Any) -> Any:
        return _page(status, kind, service, **values)

    async def unsubscribe(request: Any) -> Any:
        return await _unsubscribe(service, request)

    async def health(request: Any) -> Any:
        return _page(200, "ok", service, title="OK", message="The service is running.")

    async def not_found(request: Any, exc: Exception) -> Any:
        return _page(404, "not-found", service, title="Not found", message="There is nothing at this address.")

    async def not_allowed(request: Any, exc: Exception) -> Any:
        return _page(405, "not-allowed", service, title="Not allowed", message="This address takes GET and POST.",
                     headers={"Allow": "GET, POST"})

    async def server_error(request: Any, exc: Exception) -> Any:
        # Starlette logs the exception for the operator; the reader sees a page without any detail.
        return _page(500, "error", service, title="Something went wrong",
                     message="Your request could not be handled. Please try again later.")

    async def webhook(request: Any) -> Any:
        return await _webhook(service, request)

    routes = [Route("/healthz", health, methods=["GET"])]
    if signup is not None:
        from mailer.web import signup as signup_pages

        async def subscribe(request: Any) -> Any:
            try:
                return await signup_pages.subscribe(signup, request, page, _read_body)
            except StateError as err:
                return _state_fault(service, err)

        async def confirm(request: Any) -> Any:
            try:
                return await signup_pages.confirm(signup, request, page, _read_body, mask)
            except StateError as err:
                return _state_fault(service, err)

        routes.append(Route(signup.path, subscribe, methods=["GET", "POST", "OPTIONS"]))
        routes.append(Route(signup.confirm_path + "{token}", confirm, methods=["GET", "POST"]))
        endpoints.append(("sign-up", f"{signup.path} and {signup.confirm_path}…"))
    if not config.managed_unsubscribe:
        # The same page with and without a final slash: a link copied either way works, and no
        # redirect is ever made (Starlette's would build its Location from the Host header).
        bare = service.unsubscribe_path.rstrip("/") or "/"
        for path in dict.fromkeys((bare, bare.rstrip("/") + "/")):
            routes.append(Route(path, unsubscribe, methods=["GET", "POST"]))
        endpoints.insert(0, ("unsubscribe", bare))
    if service.webhook_key is not None:
        routes.append(Route(WEBHOOK_PATH, webhook, methods=["POST"]))
        endpoints.append(("webhook", WEBHOOK_PATH))
    key = inbound_key(environment.inbound_key)
    if key is not None:
        from mailer.deliver.inbound import Newsletter
        from mailer.web.inbound import INBOUND_PATH, InboundParse

        # A token is believed only when our own key signed it: not the dry runs' stand-in, which anyone can read.
        parse = InboundParse(key, Newsletter(service.list_id, None if service.secret == DRY_RUN_SECRET
                                             else service.secret, service.state_dir))

        async def inbound(request: Any) -> Any:
            # Any other key is the 404 of an unknown path, whatever the method: nothing tells a guess it came near.
            if not parse.knows(request.path_params["key"]):
                return await not_found(request, Exception())
            if request.method != "POST":
                return _page(405, "not-allowed", service, title="Not allowed", message="This address takes POST.",
                             headers={"Allow": "POST"})
            try:
                return await parse.receive(request, _read_body)
            except StateError as err:  # a 500: SendGrid posts the mail again later
                return _state_fault(service, err)

        # Every method, so that a wrong key's GET is a 404 too (Starlette would say 405: this path exists).
        routes.append(Route(INBOUND_PATH + "{key}", inbound,
                            methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]))
        endpoints.append(("inbound mail", INBOUND_PATH + "…"))
    export_token = environment.export_token.strip()
    if export_token:
        if len(export_token) < 32:
            from mailer.errors import ConfigError

            raise ConfigError(f"{EXPORT_TOKEN_ENV} is too short to guard readers' addresses (at least 32 "
                              "characters)\n    hint: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")

        async def export(request: Any) -> Any:
            return await _export(service, request, export_token)

        async def export_events(request: Any) -> Any:
            return await _export_events(service, request, export_token)

        routes.append(Route(EXPORT_PATH, export, methods=["GET"]))
        routes.append(Route(EVENTS_EXPORT_PATH, export_events, methods=["GET"]))
        endpoints.append(("export", EXPORT_PATH))
        endpoints.append(("events export", EVENTS_EXPORT_PATH))

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        # The confirmation emails' sender runs while the server does (and sends what a restart left queued).
        if signup is not None:
            signup.sender.start()
        try:
            yield
        finally:
            if signup is not None:
                signup.sender.stop()
                signup.writer.close()
            if service.events is not None:
                service.events.close()

    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_allowed, 500: server_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # see above: a 404 page, never a redirect to wherever Host says
    app.state.endpoints = endpoints
    return app


async def _unsubscribe(service: Service, request: Any) -> Any:
    form: dict[str, str] = {}
    if request.method == "POST":
        body = await _read_body(request)
        if isinstance(body, Refused):
            return _refused(service, body)
        read = _form(body, request.headers.get("content-type", ""))
        if read is None:
            # Another encoding, more fields than the page sends, bytes that are not a form: nobody's click
            # can be read from it, so nothing is done (taking it for a one-click turned a reader's
            # Resubscribe into an unsubscribe).
            return _page(400, "unreadable", service, title="This request could not be read",
                         message="Nothing was changed. Open the link from the email again and use its button.")
        form = read
    token = form.get("token") or request.query_params.get("token", "")
    email = verify_unsubscribe_token(token, service.list_id, service.secret)
    if email is None:
        return _invalid(service)
    context = {"token": token, "masked": mask(email) if email != TEST_COPY else None}
    if request.method == "GET":
        return _page(200, "confirm", service, title=f"Unsubscribe from {service.newsletter}?", **context)
    if email == TEST_COPY:  # the editor clicked in a test copy: show the page, unsubscribe nobody
        return _page(200, "test-copy", service, title="This was a test copy", **context)
    if form.get("action") == "resubscribe":
        still = await service.clicks.record(Click(RESUBSCRIBE, email))
        if still:  # SendGrid's own lists (an unsubscribe there, a spam report) are not this page's to undo
            return _page(200, "still-suppressed", service, title="Your click here is undone", **context)
        return _page(200, "resubscribed", service, title=f"You are subscribed to {service.newsletter} again",
                     **context)
    how = "one-click" if form.get("List-Unsubscribe") == ONE_CLICK else "page"
    await service.clicks.record(Click(UNSUBSCRIBE, email, how, service.list_id))
    return _page(200, "unsubscribed", service, title=f"You are unsubscribed from {service.newsletter}", **context)


async def _webhook(service: Service, request: Any) -> Any:
    """SendGrid's Event Webhook: verify, then trust. A refusal is a short text answer SendGrid will retry."""
    import json
    import time

    from starlette.responses import JSONResponse, PlainTextResponse

    # Headers first: an unsigned or stale request is refused before its body is read into memory.
    timestamp, signature = request.headers.get(TIMESTAMP_HEADER, ""), request.headers.get(SIGNATURE_HEADER, "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12 and 0 < len(signature) <= 200):
        return PlainTextResponse("bad signature", status_code=403)
    if abs(time.time() - int(timestamp)) > MAX_WEBHOOK_AGE_SECONDS:
        return PlainTextResponse("stale timestamp", status_code=403)
    body = await _read_body(request, limit=MAX_WEBHOOK_BYTES, seconds=WEBHOOK_BODY_SECONDS)
    if isinstance(body, Refused):  # SendGrid retries a batch that was not taken
        return PlainTextResponse(body.words, status_code=body.value, headers={"Connection": "close"})
    if not _signed(service, body, signature, timestamp):
        return PlainTextResponse("bad signature", status_code=403)
    try:
        items = json.loads(body)
    except (ValueError, RecursionError):
        return PlainTextResponse("not JSON", status_code=400)
    if not isinstance(items, list):
        return PlainTextResponse("not a JSON array of events", status_code=400)
    from mailer.deliver.events import read_batch

    batch = read_batch(items)
    new_events, new_suppressions = await service.events.record(batch)
    return JSONResponse({"events": len(items), "new": new_events, "suppressed": new_suppressions,
                         "skipped": batch.skipped})


def _unauthorized(request: Any, token: str) -> Any:
    """A 401 answer unless the request carries the export's bearer token; None when it does."""
    import hmac

    from starlette.responses import PlainTextResponse

    # RFC 9110 11.1: the scheme's name is case-insensitive ("bearer", "BEARER"); the token is not.
    scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                                                             token.encode()):
        return PlainTextResponse("unauthorized", status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return None


async def _export_events(service: Service, request: Any, token: str) -> Any:
    """The provider's events this service received, a page at a time from a rowid: for `mailer report` on the
    sending machine. `after` and `limit` (at most EVENTS_PAGE) are whole numbers; anything else is a 400."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, PlainTextResponse

    refused = _unauthorized(request, token)
    if refused is not None:
        return refused
    after, limit = request.query_params.get("after", "0"), request.query_params.get("limit", str(EVENTS_PAGE))
    if not (after.isascii() and after.isdigit() and len(after) <= 18 and limit.isascii() and limit.isdigit()
            and len(limit) <= 6 and 0 < int(limit) <= EVENTS_PAGE):
        return PlainTextResponse(f"after: a rowid; limit: 1 to {EVENTS_PAGE}", status_code=400)

    def read() -> dict[str, Any]:
        from mailer.deliver.ledger import Ledger, ledger_path

        path = ledger_path(service.state_dir)
        if not path.exists():
            return {"events": [], "next": int(after), "more": False}
        with Ledger(path) as ledger:
            rows, last = ledger.events_after(int(after), int(limit)), ledger.last_event()
        # `last`: a copy that went further than this ledger ever did was of another ledger (restored, replaced).
        return {"events": [list(row[1:]) for row in rows], "next": rows[-1][0] if rows else int(after),
                "more": len(rows) == int(limit), "last": last}

    try:
        return JSONResponse(await run_in_threadpool(read), headers={"Cache-Control": "no-store"})
    except StateError as err:
        return _state_fault(service, err)


async def _export(service: Service, request: Any, token: str) -> Any:
    """The suppression lists this service keeps, for `mailer suppressions pull` on the sending machine."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    refused = _unauthorized(request, token)
    if refused is not None:
        return refused

    def read() -> dict[str, Any]:
        with SuppressionList(service.suppressions_path) as suppressions:
            export = suppressions.export()
        readers = SubscriberStore.open_existing(service.state_dir)  # sign-ups confirmed here, for the sends
        if readers is not None:
            with readers:
                export["readers"] = readers.export_confirmed()
        return export

    return JSONResponse(await run_in_threadpool(read), headers={"Cache-Control": "no-store"})


def _signed(service: Service, body: bytes, signature: str, timestamp: str) -> bool:
    """The sendgrid package's own check: ECDSA P-256 over the timestamp header followed by the raw body."""
    from cryptography.exceptions import InvalidSignature
    from sendgrid.helpers.eventwebhook import EventWebhook

    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12 or not signature.isascii():
        return False
    try:
        return EventWebhook().verify_signature(body.decode("utf-8"), signature, timestamp, service.webhook_key)
    except (InvalidSignature, ValueError, TypeError):  # undecodable body, not base64, a malformed signature
        return False


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")  # RFC 8058 section 3.1, and the page's


def _form(body: bytes, content_type: str) -> dict[str, str] | None:
    """A form body as a dict (urlencoded, or a mail client's multipart one-click); None when it cannot be read.

    Only the two form types RFC 8058 names (none given: the page's urlencoded), in UTF-8 or ASCII, with
    every field a `name=value` pair of printable ASCII: JSON, plain text, UTF-16 (whose NUL bytes pass an
    ASCII decode) and a field without '=' (which parse_qs would drop, leaving the rest to pass) are not
    a form, so nobody's click can be read from them.
    """
    kind, charset = media_type(content_type)
    kind = kind or FORM_TYPES[0]
    if kind not in FORM_TYPES or charset not in TEXT_CHARSETS:
        return None
    if kind == FORM_TYPES[1]:
        one_click = b'name="List-Unsubscribe"' in body and ONE_CLICK.encode() in body and b"\0" not in body
        return {"List-Unsubscribe": ONE_CLICK} if one_click else None
    if not all(32 < byte < 127 for byte in body):  # printable ASCII only: no NUL, no space, no line break
        return None
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=10, strict_parsing=bool(body))
    except ValueError:
        return None
    return {key: values[-1] for key, values in fields.items()}


class Refused(enum.Enum):
    """Why a body was not read: each gets its own answer, and none of them is used."""

    TOO_LARGE = 413
    TOO_SLOW = 408
    GONE = 400  # the client hung up mid-body: likely nobody is left to read the answer

    @property
    def words(self) -> str:
        """The plain-text answer a webhook's sender is given (SendGrid retries it)."""
        return {Refused.TOO_LARGE: "too large", Refused.TOO_SLOW: "too slow", Refused.GONE: "cut short"}[self]


async def _read_body(request: Any, *, limit: int = MAX_BODY_BYTES,
                     seconds: float = BODY_SECONDS) -> bytes | Refused:
    """The body, read whole within `seconds` and at most `limit` bytes (refused before it is read in full)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return Refused.TOO_LARGE
    from starlette.requests import ClientDisconnect

    chunks, size = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    return Refused.TOO_LARGE
    except TimeoutError:
        return Refused.TOO_SLOW
    except ClientDisconnect:
        return Refused.GONE
    return b"".join(chunks)


def _refused(service: Service, refused: Refused) -> Any:
    # Connection: close: the rest of the body may still be on its way; the connection is not reused.
    if refused is Refused.TOO_SLOW:
        return _page(408, "too-slow", service, title="Request timed out", headers={"Connection": "close"},
                     message="The request took too long to arrive. Nothing was changed; please try again.")
    if refused is Refused.GONE:
        return _page(400, "incomplete", service, title="The request was cut short", headers={"Connection": "close"},
                     message="Only part of it arrived. Nothing was changed; please try again.")
    return _page(413, "too-large", service, title="Request too large", headers={"Connection": "close"},
                 message="This address takes a short form, nothing more.")


def _state_fault(service: Service, err: StateError) -> Any:
    """The short 500 page for a store that cannot be used (damaged, a full disk), and one line for the operator:
    what is wrong with which file, without a traceback (Starlette's handler would log one per request)."""
    log.error("answered 500: %s", str(err).splitlines()[0])
    return _page(500, "error", service, title="Something went wrong",
                 message="Your request could not be handled. Please try again later.")


def _invalid(service: Service) -> Any:
    return _page(400, "invalid", service, title="This link is not valid",
                 message="It may have been cut off when it was copied. Open it again from the email, or reply to "
                         "the email to be removed by hand.")


def mask(email: str) -> str:
    """'a•••@example.com': enough for the reader to recognise, not enough for a passer-by to read."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def _page(status: int, kind: str, service: Service, *, title: str, headers: dict[str, str] | None = None,
          **values: Any) -> Any:
    from starlette.responses import HTMLResponse

    template = pages().get_template("service.html.j2")
    html = template.render(kind=kind, title=title, newsletter=service.newsletter, action=service.unsubscribe_path,
                           **{"message": None, "token": None, "masked": None, "note": None, **values})
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})

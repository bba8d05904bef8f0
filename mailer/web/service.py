"""`mailer serve`: the public service behind `unsubscribe_url`, an ASGI app (Starlette) for uvicorn.

GET shows, POST acts: mail scanners and link previews follow every GET, so a GET only shows the
page with its button; the button, and a mail client's RFC 8058 one-click request
(`List-Unsubscribe=One-Click` in a form body), are POSTs. Unsubscribing records the reader in the
state folder's suppression list at once (`unsubscribes`, never replaced by a pull), so the next
`mailer send` skips them; a second POST is fine, and "Resubscribe" undoes a mistaken click.

Every request is treated as hostile: bodies over a few kilobytes are refused before they are read
in full, tokens are checked before anything in them is used, errors are short pages that name no
file and show no traceback, and nothing with a token in it is logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mailer.config import Config
from mailer.deliver.message import TEST_COPY, list_id, unsubscribe_secret, verify_unsubscribe_token
from mailer.deliver.suppressions import EXPORT_PATH, EXPORT_TOKEN_ENV, SuppressionList, suppressions_path
from mailer.web.pages import pages

MAX_BODY_BYTES = 4096  # a one-click body is 26 bytes; the page's form a few dozen
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
    webhook_key: Any = None  # the account's Event Webhook key; None: no webhook here


def webhook_key() -> Any:
    """SENDGRID_WEBHOOK_PUBLIC_KEY as a key object (None when unset); ConfigError when it is not one."""
    import os

    from mailer.errors import ConfigError

    text = "".join(os.environ.get(WEBHOOK_KEY_ENV, "").split())
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


def create_app(config: Config) -> Any:
    """The ASGI app for `config`'s newsletter; raises ConfigError when MAILER_UNSUBSCRIBE_SECRET is not set."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    # Managed by SendGrid, there are no links of ours to check: only the webhook may be served.
    service = Service(newsletter=config.name, list_id=list_id(config),
                      secret=unsubscribe_secret(live=not config.managed_unsubscribe),
                      state_dir=config.state_dir, suppressions_path=suppressions_path(config.state_dir),
                      unsubscribe_path=urlsplit(config.unsubscribe_url).path or "/", webhook_key=webhook_key())

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
    if not config.managed_unsubscribe:
        routes.append(Route(service.unsubscribe_path, unsubscribe, methods=["GET", "POST"]))
    if service.webhook_key is not None:
        routes.append(Route(WEBHOOK_PATH, webhook, methods=["POST"]))
    export_token = os.environ.get(EXPORT_TOKEN_ENV, "").strip()
    if export_token:
        if len(export_token) < 32:
            from mailer.errors import ConfigError

            raise ConfigError(f"{EXPORT_TOKEN_ENV} is too short to guard readers' addresses (at least 32 "
                              "characters)\n    hint: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")

        async def export(request: Any) -> Any:
            return await _export(service, request, export_token)

        routes.append(Route(EXPORT_PATH, export, methods=["GET"]))
    return Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_allowed, 500: server_error, Exception: server_error},
    )


async def _unsubscribe(service: Service, request: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    form: dict[str, str] = {}
    if request.method == "POST":
        body = await _read_body(request)
        if body is None:
            return _page(413, "too-large", service, title="Request too large",
                         message="This address takes a short form, nothing more.")
        form = _form(body, request.headers.get("content-type", ""))
        if form is None and not request.query_params.get("token"):
            return _invalid(service)
        # RFC 8058: the URL's token is what counts; a body we cannot read (another encoding, a mail
        # client's multipart form) still means the one-click POST, never a failed unsubscribe.
        form = form if form is not None else {"List-Unsubscribe": ONE_CLICK}
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
        still = await run_in_threadpool(_store, service, "resubscribe", email, "")
        if still:  # SendGrid's own lists (an unsubscribe there, a spam report) are not this page's to undo
            return _page(200, "still-suppressed", service, title="Your click here is undone", **context)
        return _page(200, "resubscribed", service, title=f"You are subscribed to {service.newsletter} again",
                     **context)
    how = "one-click" if form.get("List-Unsubscribe") == ONE_CLICK else "page"
    await run_in_threadpool(_store, service, "unsubscribe", email, how)
    return _page(200, "unsubscribed", service, title=f"You are unsubscribed from {service.newsletter}", **context)


async def _webhook(service: Service, request: Any) -> Any:
    """SendGrid's Event Webhook: verify, then trust. A refusal is a short text answer SendGrid will retry."""
    import json
    import time

    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, PlainTextResponse

    # Headers first: an unsigned or stale request is refused before its body is read into memory.
    timestamp, signature = request.headers.get(TIMESTAMP_HEADER, ""), request.headers.get(SIGNATURE_HEADER, "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12 and 0 < len(signature) <= 200):
        return PlainTextResponse("bad signature", status_code=403)
    if abs(time.time() - int(timestamp)) > MAX_WEBHOOK_AGE_SECONDS:
        return PlainTextResponse("stale timestamp", status_code=403)
    body = await _read_body(request, limit=MAX_WEBHOOK_BYTES)
    if body is None:
        return PlainTextResponse("too large", status_code=413)
    if not _signed(service, body, signature, timestamp):
        return PlainTextResponse("bad signature", status_code=403)
    try:
        items = json.loads(body)
    except (ValueError, RecursionError):
        return PlainTextResponse("not JSON", status_code=400)
    if not isinstance(items, list):
        return PlainTextResponse("not a JSON array of events", status_code=400)
    from mailer.deliver.events import read_batch, record

    batch = read_batch(items)
    new_events, new_suppressions = await run_in_threadpool(record, service.state_dir, batch)
    return JSONResponse({"events": len(items), "new": new_events, "suppressed": new_suppressions,
                         "skipped": batch.skipped})


async def _export(service: Service, request: Any, token: str) -> Any:
    """The suppression lists this service keeps, for `mailer suppressions pull` on the sending machine."""
    import hmac

    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, PlainTextResponse

    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {token}".encode()):
        return PlainTextResponse("unauthorized", status_code=401, headers={"WWW-Authenticate": "Bearer"})

    def read() -> dict[str, Any]:
        with SuppressionList(service.suppressions_path) as suppressions:
            return suppressions.export()

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


def _store(service: Service, action: str, email: str, how: str) -> bool:
    """Record the click; for a resubscribe, whether the address is still suppressed for another reason."""
    with SuppressionList(service.suppressions_path) as suppressions:
        if action == "resubscribe":
            suppressions.resubscribe(email)
            return bool(suppressions.reasons(email))
        suppressions.unsubscribe(email, how=how, list_id=service.list_id)
        return True


def _form(body: bytes, content_type: str) -> dict[str, str] | None:
    """A form body as a dict (urlencoded, or a mail client's multipart one-click); None when it cannot be read."""
    if content_type.lower().startswith("multipart/form-data"):
        one_click = b'name="List-Unsubscribe"' in body and ONE_CLICK.encode() in body
        return {"List-Unsubscribe": ONE_CLICK} if one_click else None
    try:
        return {key: values[-1] for key, values in parse_qs(body.decode("ascii"), max_num_fields=10).items()}
    except (UnicodeDecodeError, ValueError):
        return None


async def _read_body(request: Any, *, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The body, or None when it is larger than `limit` (refused before it is read in full)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    from starlette.requests import ClientDisconnect

    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return None
    except ClientDisconnect:  # the client hung up mid-body: nobody to answer, nothing to log
        return None
    return b"".join(chunks)


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
                           **{"message": None, "token": None, "masked": None, **values})
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})

"""`mailer serve`'s sign-up: GET/POST /subscribe, GET/POST /confirm/TOKEN, and the confirmation emails' sender.

The checks themselves (the form's time, the fields, the tokens, the email) are mailer.audience.signup's,
and every decision about a reader is the store's (mailer.audience.store): here is only HTTP.

No enumeration: every submission that gets past the visitor's own typing is answered alike, the
defences' refusals (honeypot, too fast, the per-IP limit) and every state of the address included,
and the answer waits for the same commit whatever the store decided; the email itself is sent
after the answer, by a thread of its own, so the answer's timing does not tell either.
Sign-ups are committed together (group commit, as mailer.web.clicks), so a burst makes few
transactions; the queue of emails to send is the store itself, so a restart loses none.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mailer.audience import signup as rules
from mailer.audience.store import CONFIRMED, GONE, KNOWN, QUEUED, SignupRequest, SubscriberStore, store_path
from mailer.config import Config
from mailer.deliver.backends import Backend
from mailer.deliver.notice import NOT_SENT, SENT, Sent, notice_backend, notice_payload, send_notice
from mailer.deliver.suppressions import RESUBSCRIBE, Click, SuppressionList, suppressions_path
from mailer.environment import Environment
from mailer.statedb import StateError
from mailer.web.clicks import GroupCommit
from mailer.web.forms import TEXT_CHARSETS, media_type

MAX_SIGNUP_BYTES = 8192  # the form's five fields; a name of 100 characters percent-encoded is ~900 bytes
LATEST_SECONDS = 60.0  # how long the latest issue (the link after confirming) is kept before looking again
log = logging.getLogger("mailer.serve")


class SignupWriter(GroupCommit[SignupRequest, str]):
    """Group commit of sign-ups to the store at `path` (see mailer.web.clicks); a sign-up's result: the store's
    decision (QUEUED: a confirmation email will go)."""

    def __init__(self, path: Path, per_ip_hourly: int):
        super().__init__()
        self.path = path
        self.per_ip_hourly = per_ip_hourly
        # One thread, and in it one connection to the store, kept: opening the store for every batch
        # (a lock file, the schema, its key) was a third of a sign-up's cost in a burst.
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailer-signups")
        self._store: SubscriberStore | None = None

    async def _run(self, commit: Any, requests: list[SignupRequest]) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, commit, requests)

    def close(self) -> None:
        """Close the kept connection in its own thread (SQLite's connections stay on theirs), then the thread."""
        if self._store is not None:
            self._thread.submit(self._store.close).result(timeout=10)
            self._store = None
        self._thread.shutdown(wait=True)

    def _commit(self, requests: list[SignupRequest]) -> list[str]:
        if self._store is None:
            self._store = SubscriberStore(self.path)
        try:
            return self._store.request_confirmations(requests, per_ip_hourly=self.per_ip_hourly)
        except Exception:
            self._store.close()  # a fault of the file: the next batch opens it afresh
            self._store = None
            raise


def scrub(text: str, email: str) -> str:
    """`text` (a mail server's or the provider's words) without the address, whatever its case, nor any other."""
    text = re.sub(re.escape(email), "<the address>", text, flags=re.IGNORECASE)
    return re.sub(r"[^\s<>\"'()\[\],;:]*@[^\s<>\"'()\[\],;:]*", "<an address>", text)


class ConfirmationSender:
    """A thread that sends the confirmation emails the store has queued, one at a time, through the backend."""

    def __init__(self, config: Config, path: Path, key: bytes, list_id: str, confirm_base: str,
                 email: rules.ConfirmationEmail, backend: Backend):
        self.config, self.path, self.key, self.list_id = config, path, key, list_id
        self.confirm_base = confirm_base
        self.email = email
        self.backend = backend
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with SubscriberStore(self.path) as store:
            # Those a stopped service was sending may have left: never sent twice (the reader can ask again).
            store.abandon_interrupted_confirmations()
        self._thread = threading.Thread(target=self._run, name="mailer-confirmations", daemon=True)
        self._thread.start()
        self._wake.set()  # what was queued before a restart goes now

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        said = ""  # the store's fault last logged: said once, not every round while it lasts
        while not self._stop.is_set():
            self._wake.wait(timeout=30)
            self._wake.clear()
            try:
                self._send_queued()
                said = ""
            except StateError as err:  # a damaged store, a full disk: one line, and the thread keeps going
                line = str(err).splitlines()[0]
                if line != said:
                    log.error("the sign-up confirmations cannot be sent: %s", line)
                said = line
            except Exception:  # a bug: its traceback, and the thread keeps going
                log.exception("sending the sign-up confirmations failed")

    def _send_queued(self) -> None:
        with SubscriberStore(self.path) as store:
            while not self._stop.is_set():
                claimed = store.claim_confirmations()
                if not claimed:
                    return
                for email, requested, nonce in claimed:
                    outcome = self._send(email, requested, nonce)
                    if outcome.state != SENT:
                        # No address in the log: the error may name it (an SMTP refusal does).
                        log.warning("a sign-up's confirmation email was not sent%s: %s",
                                    "" if outcome.state == NOT_SENT else " (or may have been: counted as sent)",
                                    scrub(outcome.error or outcome.state, email))
                    # An uncertain send (the request may have left) keeps the address's day: only one that
                    # surely did not leave lets the reader ask again at once.
                    store.confirmation_sent(email, requested, ok=outcome.state != NOT_SENT)

    def _send(self, email: str, requested: float, nonce: str) -> Sent:
        token = rules.confirmation_token(self.key, self.list_id, email, nonce=nonce, at=requested)
        subject, page, text = self.email.for_reader(email, self.confirm_base + token)
        payload = notice_payload(self.backend, self.config, to=email, subject=subject, html=page, text=text)
        return send_notice(self.backend, payload, self._stop)


@dataclass
class SignupService:
    """What the sign-up pages need: the settings, the key, the writer, the sender, the public addresses."""

    config: Config
    key: bytes
    list_id: str
    path: str  # where the form is served (the path of signup.url)
    confirm_path: str  # its sibling: /confirm/ (the links are confirm_base + token)
    confirm_base: str
    writer: SignupWriter
    sender: ConfirmationSender
    trusted: tuple[Any, ...]
    origins: frozenset[str]
    _latest: tuple[float, Any] = field(default=(0.0, None))

    def latest_url(self) -> str:
        """The latest issue's web version (the archive when there is none), looked up at most once a minute."""
        checked, url = self._latest
        if time.monotonic() - checked > LATEST_SECONDS or url is None:
            issue = rules.latest_issue(self.config)
            url = self.config.web_url(issue.slug) if issue is not None else self.config.web_base_url
            self._latest = (time.monotonic(), url)
        return url


def signup_service(config: Config, list_id: str, environment: Environment) -> SignupService:
    """The sign-up part of the app; ConfigError when the secret is not set, BackendConfigError for the backend
    (both from `environment`)."""
    signup = config.signup
    assert signup is not None and signup.url
    key = rules.signup_key(environment.unsubscribe_secret)
    parts = urlsplit(signup.url)
    path = parts.path.rstrip("/") or "/subscribe"
    confirm_path = path.rsplit("/", 1)[0] + "/confirm/"
    confirm_base = f"{parts.scheme}://{parts.netloc}{confirm_path}"
    latest = rules.latest_issue(config)
    email = rules.build_confirmation_email(config, rules.signup_lang(config, latest))
    stored = store_path(config.state_dir)
    SubscriberStore(stored).close()  # made now (and its faults shown now), not at the first sign-up
    return SignupService(
        config=config, key=key, list_id=list_id, path=path, confirm_path=confirm_path, confirm_base=confirm_base,
        writer=SignupWriter(stored, signup.per_ip_hourly),
        # A missing key or URL stops the service at start.
        sender=ConfirmationSender(config, stored, key, list_id, confirm_base, email,
                                  notice_backend(config, environment)),
        trusted=tuple(ipaddress.ip_network(network, strict=False) for network in signup.trusted_proxies),
        origins=frozenset(origin.rstrip("/") for origin in signup.cors_origins))


# -- HTTP ----------------------------------------------------------------------------------------------


def client_ip(service: SignupService, request: Any) -> str | None:
    """The client's IP: the peer's, or, when the peer is a trusted proxy, the last X-Forwarded-For hop
    that is not one (a client can write anything at the start of that header; only the proxies' part
    is believed)."""
    peer = request.client.host if request.client else None
    try:
        address = ipaddress.ip_address(peer) if peer else None
    except ValueError:
        return peer
    if address is None or not any(address in network for network in service.trusted):
        return peer
    # Every X-Forwarded-For line, joined in order (RFC 9110 section 5.3): a proxy that adds a line of its
    # own after the client's (HAProxy's `option forwardfor`) puts the address it saw last.
    lines = request.headers.getlist("x-forwarded-for")
    hops = [hop.strip() for hop in ",".join(lines).split(",") if hop.strip()]
    for hop in reversed(hops[-20:]):
        try:
            candidate = ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a hop that is no address: the chain cannot be read, so the proxy is the client
        if not any(candidate in network for network in service.trusted):
            return str(candidate)
    return peer


def cors_headers(service: SignupService, request: Any) -> dict[str, str]:
    origin = request.headers.get("origin", "")
    if origin and origin.rstrip("/") in service.origins:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"} if service.origins else {}


FORM_TYPE, JSON_TYPE = "application/x-www-form-urlencoded", "application/json"


def body_type(request: Any) -> str | None:
    """FORM_TYPE or JSON_TYPE, as a POST's Content-Type says (in UTF-8, or no charset named, and no
    Content-Encoding); None for anything else: another type, none, a compressed body."""
    coding = request.headers.get("content-encoding", "").strip().lower()
    kind, charset = media_type(request.headers.get("content-type", ""))
    if coding not in ("", "identity") or kind not in (FORM_TYPE, JSON_TYPE) or charset not in TEXT_CHARSETS:
        return None
    return kind


def wants_json(request: Any) -> bool:
    if request.method == "POST" and body_type(request) == JSON_TYPE:
        return True
    accept = request.headers.get("accept", "").lower()
    content_type = request.headers.get("content-type", "").lower()
    return ("application/json" in accept and "text/html" not in accept) or (
        request.method == "POST" and "json" in content_type)


SAME_ANSWER = {"status": "check-your-inbox",
               "message": "Thank you. If this address can be subscribed, an email with a link to confirm is on its "
                          "way: open it and press the button. Nothing is sent to an address that is already "
                          "subscribed."}


async def subscribe(service: SignupService, request: Any, page: Any, read_body: Any) -> Any:
    """GET: the form (or, asked for JSON, what a script needs to show it); POST: a sign-up; OPTIONS: CORS."""
    from starlette.responses import JSONResponse, Response

    cors = cors_headers(service, request)
    if request.method == "OPTIONS":
        if "Access-Control-Allow-Origin" not in cors:
            return Response(status_code=403, headers={"Vary": "Origin"})
        return Response(status_code=204, headers={
            **cors, "Access-Control-Allow-Methods": "GET, POST", "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600"})
    json_client = wants_json(request)
    if request.method == "GET":
        if json_client:
            return JSONResponse(form_fields(service), headers={**cors, "Cache-Control": "no-store"})
        return _form_page(service, page, 200, cors)
    kind = body_type(request)
    if kind is None:  # answered before the body is read: it is never used
        return _refusal(json_client, page, 415, cors)
    body = await read_body(request, limit=MAX_SIGNUP_BYTES)
    if not isinstance(body, bytes):
        return _refusal(json_client, page, body.value, cors)
    fields = read_fields(body, kind)
    if fields is None:
        if json_client:
            return JSONResponse({"error": "unreadable", "message": "Send a JSON object with the form's fields."},
                                status_code=400, headers=cors)
        return _form_page(service, page, 400, cors, note="The form could not be read. Please fill it in again.")
    submission = rules.read_submission(fields, service.config.signup, service.key, service.list_id,  # type: ignore[arg-type]
                                       ip=client_ip(service, request))
    if submission.stale:
        if json_client:
            return JSONResponse({"error": "stale-form", "message": "Fetch the form's fields again (GET with "
                                 "Accept: application/json): its stamp is missing or too old."},
                                status_code=400, headers=cors)
        return _form_page(service, page, 200, cors, submission=submission,
                          note="One more step: please check your address and press Subscribe.")
    if submission.problems:
        if json_client:
            return JSONResponse({"error": "invalid", "problems": dict(submission.problems)}, status_code=400,
                                headers=cors)
        return _form_page(service, page, 400, cors, submission=submission)
    if submission.request is not None and await service.writer.record(submission.request) == QUEUED:
        service.sender.wake()
    # The same answer for every address and every defence (submission.bot included).
    if json_client:
        return JSONResponse(SAME_ANSWER, status_code=202, headers=cors)
    return page(200, "check-inbox", title="Check your inbox", headers=cors, typed=submission.email,
                message=SAME_ANSWER["message"])


def form_fields(service: SignupService) -> dict[str, Any]:
    """What a script on the editor's site needs to show the form and post it as JSON."""
    signup = service.config.signup
    assert signup is not None
    return {"newsletter": service.config.name, "description": signup.description, "consent": signup.consent,
            "consent_version": signup.consent_version, "archive": service.config.web_base_url,
            "stamp": rules.form_stamp(service.key, service.list_id), "honeypot": rules.HONEYPOT,
            "min_seconds": rules.MIN_FORM_SECONDS, "action": service.config.signup.url}


def read_fields(body: bytes, kind: str) -> dict[str, Any] | None:
    """The body's fields (a JSON object, or a form); None when it cannot be read: not UTF-8, a percent-escape
    that is not UTF-8, a field without '=', a field given twice, more than 10 fields."""
    try:
        text = body.decode("utf-8")
        if kind == JSON_TYPE:
            value = json.loads(text, object_pairs_hook=_no_repeats)
            return value if isinstance(value, dict) and len(value) <= 10 else None
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=10,
                          encoding="utf-8", errors="strict")
        fields = dict(pairs)
        return fields if len(fields) == len(pairs) else None
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("a key given twice")
    return value


def _refusal(json_client: bool, page: Any, status: int, cors: dict[str, str]) -> Any:
    from starlette.responses import JSONResponse

    error, title, message = {
        408: ("too-slow", "Request timed out", "The request took too long to arrive."),
        415: ("unsupported", "This request could not be read",
              "Send the form (application/x-www-form-urlencoded) or JSON (application/json), in UTF-8 and not "
              "compressed. Nothing was done."),
    }.get(status, ("too-large", "Request too large", "This address takes a short form, nothing more."))
    if json_client:
        return JSONResponse({"error": error, "message": message}, status_code=status,
                            headers={**cors, "Connection": "close"})
    return page(status, "too-large", title=title, message=message, headers={**cors, "Connection": "close"})


def _form_page(service: SignupService, page: Any, status: int, cors: dict[str, str], *,
               submission: rules.Submission | None = None, note: str | None = None) -> Any:
    signup = service.config.signup
    assert signup is not None
    return page(status, "subscribe", title=f"Subscribe to {service.config.name}", headers=cors, note=note,
                description=signup.description, consent=signup.consent, archive=service.config.web_base_url,
                form_action=service.path, stamp=rules.form_stamp(service.key, service.list_id),
                honeypot=rules.HONEYPOT, typed=submission.email if submission else "",
                first_name=submission.first_name if submission else "",
                problems=dict(submission.problems) if submission else {})


async def confirm(service: SignupService, request: Any, page: Any, read_body: Any, mask: Any) -> Any:
    """GET: the page with its button (mail scanners open every link); POST: the reader's confirmation."""
    from starlette.concurrency import run_in_threadpool

    token = request.path_params.get("token", "")
    fields: dict[str, Any] | None = {}
    if request.method == "POST":
        body = await read_body(request, limit=MAX_SIGNUP_BYTES)
        if not isinstance(body, bytes):
            return _refusal(False, page, body.value, {})
        if body:  # the page's form (an empty POST is a button without the name field: no name)
            fields = read_fields(body, FORM_TYPE) if body_type(request) == FORM_TYPE else None
    verdict, email, nonce = rules.read_confirmation_token(token, service.key, service.list_id)
    if verdict == rules.TOKEN_EXPIRED:
        return page(400, "signup-expired", title="This link has expired", signup_path=service.config.signup.url,
                    message="Confirmation links work for 7 days. Sign up again and a new one will be sent.")
    if verdict != rules.TOKEN_OK or email is None:
        return page(400, "invalid", title="This link is not valid",
                    message="It may have been cut off when it was copied. Open it again from the email, or sign "
                            "up again.")
    action = service.confirm_path + token

    def confirm_page(status: int, first_name: str, problem: str | None = None) -> Any:
        return page(status, "confirm-signup", title=f"Confirm your subscription to {service.config.name}",
                    masked=mask(email), form_action=action, first_name=first_name, problem=problem)

    if request.method == "GET":
        # The name given at sign-up is shown, in a field the reader may change or empty: it was typed by
        # whoever signed the address up, and only what the reader confirms here goes into the issues.
        waiting = await run_in_threadpool(waiting_name, service.config.state_dir, email, nonce)
        return confirm_page(200, waiting or "")
    if fields is None:
        return page(400, "unreadable", title="This request could not be read",
                    message="Nothing was changed. Open the link from the email again and use its button.")
    first_name = fields.get("first_name", "")
    first_name = first_name.strip() if isinstance(first_name, str) else ""
    if problem := rules.name_problem(first_name):
        return confirm_page(400, first_name, problem)
    outcome, still = await run_in_threadpool(record_confirmation, service.config.state_dir, email, nonce,
                                             first_name)
    if outcome in (CONFIRMED, KNOWN):
        latest = await run_in_threadpool(service.latest_url)
        return page(200, "signup-confirmed", title=f"You are subscribed to {service.config.name}",
                    masked=mask(email), latest=latest, archive=service.config.web_base_url, again=outcome == KNOWN,
                    still=still)
    if outcome == GONE:
        return page(400, "signup-expired", title="This link is no longer valid", signup_path=service.config.signup.url,
                    message="There is no sign-up waiting for it any more. Sign up again and a new link will be "
                            "sent.")
    return page(200, "signup-stopped", title="This address cannot be subscribed here", masked=mask(email),
                message="Mail to it bounced, or it was reported as spam: nothing will be sent to it. Reply to "
                        "any issue to ask for it to be lifted.")


def waiting_name(state_dir: Path, email: str, nonce: str) -> str | None:
    with SubscriberStore(store_path(state_dir)) as store:
        return store.waiting_name(email, nonce=nonce)


def record_confirmation(state_dir: Path, email: str, nonce: str, first_name: str) -> tuple[str, bool]:
    """The store's outcome of the reader's confirmation, and whether the sending service's own lists still hold them.

    Confirming is the reader's own word, as the unsubscribe page's Resubscribe is: their own
    unsubscribe (one-click, the page, `mailer subscribers remove`) is lifted from the suppression
    list in the same step, or the next `mailer send` (deliver.suppressions.sync_store) would move
    them back to unsubscribed. SendGrid's lists (a bounce, a spam report, its global unsubscribe)
    are not this page's to lift: they are said on the page.
    """
    still = False

    def lift_own_unsubscribe() -> None:
        nonlocal still
        with SuppressionList(suppressions_path(state_dir)) as suppressions:
            (still,) = suppressions.record_clicks([Click(RESUBSCRIBE, email)])

    with SubscriberStore(store_path(state_dir)) as store:
        outcome = store.confirm(email, nonce=nonce, first_name=first_name, before_commit=lift_own_unsubscribe)
    return outcome, still

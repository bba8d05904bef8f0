"""A local HTTP server that checks Mail Send requests the way SendGrid v3 documents them.

https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send (limits and rules below).
It records every recipient it accepted, and can be told to answer 429, 500, drop the connection
or stall, so that the sender's retry and ledger logic meet real HTTP behaviour.

It also serves SendGrid's suppression lists (GET), paginated with `limit` and `offset` as
documented: https://www.twilio.com/docs/sendgrid/api-reference/suppressions-global-suppressions/retrieve-all-global-suppressions
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "SG.test-key-never-shown"
RESERVED_HEADERS = {"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
                    "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"}
MAX_BYTES = 30 * 1024 * 1024
# The suppression lists paginated with limit/offset (at most 500 a page), and the one that is not:
# GET /v3/asm/suppressions documents no parameters and answers every group's suppressions at once.
PAGINATED = ("/v3/suppression/unsubscribes", "/v3/suppression/bounces", "/v3/suppression/spam_reports",
             "/v3/suppression/invalid_emails", "/v3/suppression/blocks")
GROUP_SUPPRESSIONS = "/v3/asm/suppressions"
# Domain authentication: GET /v3/whitelabel/domains lists the account's authenticated domains, paginated with
# limit and offset, `domain` filtering them (https://www.twilio.com/docs/sendgrid/api-reference/domain-authentication/list-all-authenticated-domains).
WHITELABEL_DOMAINS = "/v3/whitelabel/domains"
MAX_LIMIT = 500
# SendGrid does not document its default page size; a small one here means that a client relying
# on it, instead of asking for `limit`, would miss rows and fail the tests.
DEFAULT_LIMIT = 50
UNAUTHORIZED = {"errors": [{"field": None, "message": "The provided authorization grant is invalid, expired, "
                                                      "or revoked"}]}


def validate_mail_send(body: Any, now: float | None = None) -> list[dict[str, str]]:
    """SendGrid's documented rules for POST /v3/mail/send; returns its error objects."""
    errors: list[dict[str, str]] = []

    def err(field_name: str, message: str) -> None:
        errors.append({"field": field_name, "message": message})

    if not isinstance(body, dict):
        return [{"field": "", "message": "Bad Request"}]
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not 1 <= len(personalizations) <= 1000:
        err("personalizations", "The personalizations field is required and must have at least one and at "
                                "most 1000 personalizations.")
        personalizations = []
    seen: set[str] = set()
    recipients = 0
    for i, p in enumerate(personalizations):
        to = p.get("to")
        if not isinstance(to, list) or not to:
            err(f"personalizations.{i}.to", "The to array is required for all personalization objects.")
            continue
        for kind in ("to", "cc", "bcc"):
            for j, address in enumerate(p.get(kind, [])):
                recipients += 1
                email = str(address.get("email", ""))
                if "@" not in email:
                    err(f"personalizations.{i}.{kind}.{j}.email", "Does not contain a valid address.")
                if email.lower() in seen:
                    err(f"personalizations.{i}.{kind}.{j}.email",
                        "Each email address in the personalization block should be unique.")
                seen.add(email.lower())
                name = address.get("name", "")
                if "," in name or ";" in name:
                    err(f"personalizations.{i}.{kind}.{j}.name", "The name may not contain ',' or ';'.")
        subs = p.get("substitutions", {})
        if len(json.dumps(subs).encode()) > 10000:
            err(f"personalizations.{i}.substitutions", "The substitutions may not exceed 10,000 bytes.")
        for name in p.get("headers", {}):
            if name.lower() in RESERVED_HEADERS:
                err(f"personalizations.{i}.headers", f"The header {name} is reserved.")
        if len(json.dumps(p.get("custom_args", {})).encode()) > 10000:
            err(f"personalizations.{i}.custom_args", "custom_args may not exceed 10,000 bytes.")
    if recipients > 1000:
        err("personalizations", "The total number of recipients must be no more than 1000.")
    sender = body.get("from")
    if not isinstance(sender, dict) or "@" not in str(sender.get("email", "")):
        err("from.email", "The from email does not contain a valid address.")
    if not body.get("subject") and not all(p.get("subject") for p in personalizations):
        err("subject", "The subject is required.")
    content = body.get("content")
    if not isinstance(content, list) or not content:
        err("content", "Unless a valid template_id is provided, the content parameter is required.")
    else:
        types = [c.get("type") for c in content]
        if "text/plain" in types and types[0] != "text/plain":
            err("content", "If present, text/plain must be first, followed by any other content.")
        if any(not c.get("value") for c in content):
            err("content", "Each content object must have a value.")
    for name in body.get("headers", {}):
        if name.lower() in RESERVED_HEADERS:
            err("headers", f"The header {name} is reserved.")
    if len(body.get("categories", [])) > 10:
        err("categories", "You may not have more than 10 categories per request.")
    if len(json.dumps(body.get("custom_args", {})).encode()) > 10000:
        err("custom_args", "custom_args may not exceed 10,000 bytes.")
    if "asm" in body:
        asm = body["asm"]
        if not isinstance(asm, dict) or not isinstance(asm.get("group_id"), int):
            err("asm.group_id", "The asm group_id must be an integer.")
        elif len(asm.get("groups_to_display", [])) > 25:
            err("asm.groups_to_display", "No more than 25 groups may be displayed.")
    tracking = body.get("tracking_settings", {}).get("subscription_tracking")
    if tracking is not None and (not isinstance(tracking.get("enable"), bool)
                                 or not isinstance(tracking.get("substitution_tag", ""), str)):
        err("tracking_settings.subscription_tracking", "enable must be a boolean, substitution_tag a string.")
    for name, keys in (("click_tracking", ("enable", "enable_text")), ("open_tracking", ("enable",))):
        setting = body.get("tracking_settings", {}).get(name)
        if setting is not None and (not isinstance(setting, dict) or not isinstance(setting.get("enable"), bool)
                                    or any(not isinstance(setting.get(key, False), bool) for key in keys)):
            err(f"tracking_settings.{name}", f"{', '.join(keys)} must be booleans.")
    if "send_at" in body:
        current = now or time.time()
        if not isinstance(body["send_at"], int) or body["send_at"] > current + 72 * 3600:
            err("send_at", "The send_at parameter must be a Unix timestamp at most 72 hours in the future.")
    return errors


@dataclass
class FakeSendGrid:
    """Behaviour knobs and what was received. `script` answers requests in order before `default`."""

    default: str = "accept"  # accept | accept_drop | 400 | 413 | 429 | 500 | 504 | drop | stall | 401
    url: str = ""  # where it answers, once started
    script: deque[str] = field(default_factory=deque)
    stall_seconds: float = 5.0
    delay_seconds: float = 0.0  # think time before answering each Mail Send request
    # Called while each Mail Send request waits for its answer: what the test does then happens with the request
    # on the wire, however slow the machine (a Ctrl-C there, instead of a timer racing a delay).
    while_answering: Callable[[], None] | None = None
    accepted: list[str] = field(default_factory=list)  # every recipient ever accepted, in order
    requests: list[dict[str, Any]] = field(default_factory=list)
    raw_requests: list[bytes] = field(default_factory=list)  # each Mail Send body as it arrived (keep_bodies)
    paths: list[str] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    post_headers: list[dict[str, str]] = field(default_factory=list)  # every POST's headers, as they arrived
    # Where the API is mounted (a proxy's path, as in SENDGRID_API_HOST=https://proxy.example/sendgrid).
    path_prefix: str = ""
    scheduled: dict[str, str] = field(default_factory=dict)
    batch_answer: Any = None  # what /v3/mail/batch answers instead of a batch id (a host that is not SendGrid)
    redirect_to: str = ""  # where the "302" behaviour sends a Mail Send request
    keep_bodies: bool = True
    # Addresses SendGrid calls invalid: a request naming one is refused whole, the field saying which.
    refuse_addresses: set[str] = field(default_factory=set)
    # The suppression lists: path → every row, as SendGrid's GET endpoints answer them.
    suppressions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    get_script: deque[str] = field(default_factory=deque)  # ok | 429 | 500 | 403 | drop, in order
    get_default: str = "ok"
    rate_limit_reset_in: float = 0.0  # a 429's X-RateLimit-Reset (GET and Mail Send): this many seconds from now
    gets: list[str] = field(default_factory=list)  # path and query of every GET
    # The account's authenticated domains, as authenticated_domain() makes them: the sample's, validated.
    whitelabel_domains: list[dict[str, Any]] = field(default_factory=lambda: [authenticated_domain("example.com")])
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def next_behaviour(self) -> str:
        with self.lock:
            return self.script.popleft() if self.script else self.default

    def next_get_behaviour(self) -> str:
        with self.lock:
            return self.get_script.popleft() if self.get_script else self.get_default


def start(fake: FakeSendGrid) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            with fake.lock:
                fake.gets.append(self.path)
                fake.auth_headers.append(self.headers.get("Authorization", ""))
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                self._answer(401, UNAUTHORIZED)
                return
            url = urlsplit(self.path.removeprefix(fake.path_prefix) if self.path.startswith(fake.path_prefix) else "")
            query = parse_qs(url.query, keep_blank_values=True)
            if url.path == WHITELABEL_DOMAINS:
                self._answer_domains(query)
                return
            if url.path not in PAGINATED and url.path != GROUP_SUPPRESSIONS:
                self._answer(404, {"errors": [{"field": None, "message": "not found"}]})
                return
            behaviour = fake.next_get_behaviour()
            if behaviour == "403":  # a key without the Suppressions read scope
                self._answer(403, {"errors": [{"field": None, "message": "access forbidden"}]})
                return
            if behaviour == "429":
                self._answer(429, {"errors": [{"field": None, "message": "too many requests"}]},
                             {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
                              "X-RateLimit-Reset": str(int(time.time() + fake.rate_limit_reset_in))})
                return
            if behaviour == "500":
                self._answer(500, {"errors": [{"field": None, "message": "internal error"}]})
                return
            if behaviour == "400-markup":  # words a terminal library could read as its own markup
                self._answer(400, {"errors": [{"field": None, "message": "bad [/x] request [link=https://evil"
                                               ".example]click[/link]"}]})
                return
            if behaviour == "drop":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            rows = fake.suppressions.get(url.path, [])
            if url.path == GROUP_SUPPRESSIONS:
                self._answer(200, rows)
                return
            try:
                limit = int(query.get("limit", [DEFAULT_LIMIT])[0])
                offset = int(query.get("offset", ["0"])[0])
            except ValueError:
                self._answer(400, {"errors": [{"field": "limit", "message": "limit and offset must be integers"}]})
                return
            if not 1 <= limit <= MAX_LIMIT or offset < 0:
                self._answer(400, {"errors": [{"field": "limit", "message": f"limit must be between 1 and "
                                               f"{MAX_LIMIT}, and offset at least 0"}]})
                return
            self._answer(200, rows[offset:offset + limit])

        def _answer_domains(self, query: dict[str, list[str]]) -> None:
            try:
                limit = int(query.get("limit", ["50"])[0])
                offset = int(query.get("offset", ["0"])[0])
            except ValueError:
                self._answer(400, {"errors": [{"field": "limit", "message": "limit and offset must be integers"}]})
                return
            rows = [row for row in fake.whitelabel_domains
                    if not query.get("domain") or query["domain"][0].lower() in row["domain"]]
            self._answer(200, rows[offset:offset + limit])

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", 0))
            if length > MAX_BYTES:
                self._answer(413, {"errors": [{"message": "Payload too large"}]})
                return
            raw = self.rfile.read(length)
            with fake.lock:
                fake.paths.append(self.path)
                fake.auth_headers.append(self.headers.get("Authorization", ""))
                fake.post_headers.append(dict(self.headers.items()))
            if not self.path.startswith(fake.path_prefix):
                self._answer(404, {"errors": [{"message": "not found"}]})
                return
            self.path = self.path.removeprefix(fake.path_prefix)
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                self._answer(401, {"errors": [{"field": None, "message": "The provided authorization grant is "
                                               "invalid, expired, or revoked"}]})
                return
            if self.path == "/v3/mail/batch":
                self._answer(201, fake.batch_answer if fake.batch_answer is not None else
                             {"batch_id": f"batch-{next(fake._ids)}"})
                return
            if self.path == "/v3/user/scheduled_sends":
                body = json.loads(raw)
                fake.scheduled[body["batch_id"]] = body["status"]
                self._answer(201, body)
                return
            if self.path != "/v3/mail/send":
                self._answer(404, {"errors": [{"message": "not found"}]})
                return
            behaviour = fake.next_behaviour()
            if fake.delay_seconds:
                time.sleep(fake.delay_seconds)
            if fake.while_answering is not None:
                fake.while_answering()
            if behaviour == "401":
                self._answer(401, {"errors": [{"field": None, "message": "The provided authorization grant is "
                                               "invalid, expired, or revoked"}]})
                return
            if behaviour == "429":
                self._answer(429, {"errors": [{"message": "too many requests"}]},
                             {"X-RateLimit-Reset": str(int(time.time() + fake.rate_limit_reset_in)),
                              "Retry-After": "0"})
                return
            if behaviour == "400":  # SendGrid refuses this batch as it is: retrying cannot help
                self._answer(400, {"errors": [{"field": "content.1.value", "message": "The content value must be "
                                               "a string at least one character in length."}]})
                return
            if behaviour == "302":  # a host that is not SendGrid sends the request elsewhere
                self._answer(302, None, {"Location": fake.redirect_to})
                return
            if behaviour == "400-odd-field":  # SendGrid's shape, other types
                self._answer(400, {"errors": [{"field": 1, "message": ["not", "a", "string"]}]})
                return
            if behaviour == "400-deep":  # deeper than any JSON parser goes
                data = b"[" * 100_000 + b"]" * 100_000
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if behaviour == "400-not-text":  # what a host that is not SendGrid may say: escapes, half a pair
                self._answer(400, {"errors": [{"field": "from", "message": "\x1b[2J\x1b[31mcleared \ud800 screen"}]})
                return
            if behaviour == "413":
                self._answer(413, {"errors": [{"field": None, "message": "Payload too large"}]})
                return
            if behaviour == "500":
                self._answer(500, {"errors": [{"message": "internal error"}]}, {"Retry-After": "0"})
                return
            if behaviour == "504":
                # What SendGrid's edge answers when the server behind it took too long: it may have
                # queued the mail all the same.
                self._answer(504, {"errors": [{"message": "gateway timeout"}]})
                return
            if behaviour == "drop":
                # The request arrived; the answer never does: the sender cannot know whether it was sent.
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if behaviour == "stall":
                time.sleep(fake.stall_seconds)
                self.close_connection = True
                return
            media_type, _, parameters = self.headers.get("Content-Type", "").partition(";")
            charset = parameters.strip().lower().removeprefix("charset=") if parameters.strip() else "utf-8"
            if media_type.strip().lower() != "application/json" or charset.strip('"') != "utf-8":
                self._answer(415, {"errors": [{"field": None, "message": "Content-Type should be application/json."}]})
                return
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                self._answer(400, {"errors": [{"message": "Invalid JSON"}]})
                return
            errors = validate_mail_send(body)
            errors += [{"field": f"personalizations.{i}.to.0.email", "message": "Does not contain a valid address."}
                       for i, p in enumerate(body.get("personalizations") or [])
                       if p["to"][0]["email"] in fake.refuse_addresses]
            if errors:
                self._answer(400, {"errors": errors})
                return
            if behaviour == "accept_drop":
                # Accepted and then the connection broke: resending would deliver twice.
                with fake.lock:
                    fake.accepted.extend(p["to"][0]["email"] for p in body["personalizations"])
                    if fake.keep_bodies:  # SendGrid has the message: its events will come
                        fake.requests.append(body)
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            with fake.lock:
                if fake.keep_bodies:
                    fake.requests.append(body)
                    fake.raw_requests.append(raw)
                sandbox = body.get("mail_settings", {}).get("sandbox_mode", {}).get("enable")
                if not sandbox:
                    fake.accepted.extend(p["to"][0]["email"] for p in body["personalizations"])
                message_id = f"msg-{next(fake._ids)}"
                if behaviour == "202-odd-id":  # what a host that is not SendGrid may answer: escapes, any length
                    message_id = "\x1b[2J\x1b[31m" + "x" * 5000
            if sandbox:
                self._answer(200, None)
            else:
                self._answer(202, None, {"X-Message-Id": message_id})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # A short poll interval: shutdown() waits up to one interval for serve_forever to notice, in every teardown
    # (the default 0.5 s came to half a minute of idle teardown in tests/deliver/test_send.py alone).
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server, fake.url


BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari"
APPLE_PROXY = "Mozilla/5.0"  # what Apple Mail Privacy Protection's image proxy says (SendGrid flags its opens)
GATEWAY = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"


class EventWebhook:
    """SendGrid's Event Webhook, played from what a FakeSendGrid accepted: signed batches of events.

    SendGrid signs each POST with the account's ECDSA P-256 key over the timestamp header followed by
    the raw body (base64 DER signature in X-Twilio-Email-Event-Webhook-Signature), and merges the
    request's and the personalization's custom_args into every event.
    """

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256R1())
        self._ids = itertools.count(1)

    @property
    def public_key(self) -> str:
        """What SendGrid shows as the verification key: base64 of the DER public key, no PEM armour."""
        import base64

        from cryptography.hazmat.primitives import serialization

        der = self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode("ascii")

    def events(self, fake: FakeSendGrid, kinds: tuple[str, ...] = ("processed", "delivered"), *,
               only: set[str] | None = None, **extra: Any) -> list[dict[str, Any]]:
        """One event of each kind for every recipient the fake accepted (or those in `only`)."""
        found = []
        for body in fake.requests:
            for personalization in body["personalizations"]:
                email = personalization["to"][0]["email"]
                if only is not None and email not in only:
                    continue
                args = {**body.get("custom_args", {}), **personalization.get("custom_args", {})}
                for kind in kinds:
                    found.append({"email": email, "event": kind, "timestamp": int(time.time()),
                                  "sg_event_id": f"evt-{next(self._ids):06d}", "sg_message_id": "msg", **args,
                                  **extra})
        return found

    def reader_event(self, fake: FakeSendGrid, email: str, kind: str, *, at: float, **fields: Any) -> dict[str, Any]:
        """One event of `kind` for the reader `email` of a request the fake accepted, as SendGrid posts it:
        the request's and their personalization's custom_args merged in; an open's or click's own fields
        (useragent, sg_machine_open, url, url_offset) from `fields`."""
        for body in fake.requests:
            for personalization in body["personalizations"]:
                if personalization["to"][0]["email"] == email:
                    args = {**body.get("custom_args", {}), **personalization.get("custom_args", {})}
                    return {"email": email, "event": kind, "timestamp": int(at),
                            "sg_event_id": f"evt-{next(self._ids):06d}", "sg_message_id": "msg", **args, **fields}
        raise KeyError(f"the fake accepted no message for {email}")

    def click(self, fake: FakeSendGrid, email: str, index: int, *, at: float, agent: str = BROWSER) -> dict[str, Any]:
        """A click on the `index`th link SendGrid tracks in the reader's HTML part (url_offset.index)."""
        return self.reader_event(fake, email, "click", at=at, url=tracked_links(fake, email)[index],
                                 url_offset={"index": index, "type": "html"}, useragent=agent)

    def signed(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """The headers SendGrid would send with `body`."""
        import base64

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode("ascii"),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp, "Content-Type": "application/json"}



def tracked_links(fake: FakeSendGrid, email: str) -> list[str]:
    """The links SendGrid's click tracking rewrites in a reader's HTML part, in document order, as their clicks
    report them: every <a> whose href, as the request carries it, is an http(s) address (a link that is all
    substitution tag is not tracked: "Click Tracking & HTML Best Practices"), with the reader's substitutions
    made in it. Their positions are url_offset.index."""
    from html.parser import HTMLParser

    for body in fake.requests:
        for personalization in body["personalizations"]:
            if personalization["to"][0]["email"] != email:
                continue
            html = next(part["value"] for part in body["content"] if part["type"] == "text/html")

            class Links(HTMLParser):
                found: list[str] = []

                def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                    href = (dict(attrs).get("href") or "").strip()
                    if tag == "a" and href.lower().startswith(("http://", "https://")):
                        self.found.append(href)

            parser = Links()
            parser.found = []
            parser.feed(html)
            links = []
            for href in parser.found:
                for tag, value in personalization.get("substitutions", {}).items():
                    href = href.replace(tag, value)
                links.append(href)
            return links
    raise KeyError(f"the fake accepted no message for {email}")
def authenticated_domain(domain: str, *, user: int = 1234, valid: bool = True, domain_id: int = 1) -> dict[str, Any]:
    """One authenticated domain as GET /v3/whitelabel/domains documents it, with automated security on: the
    return path (mail_cname) and both DKIM selectors as CNAMEs into SendGrid's zone, each with its `valid`."""
    def record(host: str, data: str, ok: bool) -> dict[str, Any]:
        return {"valid": ok, "type": "cname", "host": host, "data": data}

    return {
        "id": domain_id, "user_id": user, "subdomain": f"em{user}", "domain": domain, "username": "editor",
        "ips": [], "custom_spf": False, "default": True, "legacy": False, "automatic_security": True,
        "valid": valid,
        "dns": {
            "mail_cname": record(f"em{user}.{domain}", f"u{user}.wl.sendgrid.net", valid),
            "dkim1": record(f"s1._domainkey.{domain}", f"s1.domainkey.u{user}.wl.sendgrid.net", True),
            "dkim2": record(f"s2._domainkey.{domain}", f"s2.domainkey.u{user}.wl.sendgrid.net", True),
        },
    }

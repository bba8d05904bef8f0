"""Checking that an issue's links answer: HEAD then GET, redirects followed, a few at a time.

Opt-in (`mailer check --links`), because it is the only part of mailer that fetches addresses
written by someone else. Only http(s) is fetched; per-recipient links (placeholders filled at send
time) never are; no cookies are kept and no credentials are sent. Returns results; never prints.

Verdicts: OK is a 2xx answer after redirects; BROKEN is anything a reader clicking the link would
also hit (4xx, 5xx, timeout, refused, unknown name, bad certificate, redirect loop); UNCHECKED is a
warning that we could not or would not judge the link (429 rate limiting, mailto:, placeholders).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from enum import StrEnum
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from mailer.addresses import printable
from mailer.compose import placeholders

# Browser-like, because some sites refuse Python's default User-Agent, and naming mailer, so a
# site's owner can tell what the request was.
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36 mailer-linkcheck/0.1")
REQUEST_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en",
    "Accept-Encoding": "identity",  # we read at most a few bytes and never decode them
    "Connection": "close",
}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
BODY_BYTES = 1024  # read from a GET answer before closing: enough for servers that want a reader
FETCHED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are when a link's path and query are percent-encoded for the request
# line: the reserved ones and "%" (already-encoded links stay as written).
_PATH_SAFE = "/%:@!$&'()*+,;=~"
_QUERY_SAFE = _PATH_SAFE + "?"


class Verdict(StrEnum):
    """What a link check concluded; UNCHECKED is a warning, BROKEN an error."""

    OK = "ok"
    BROKEN = "broken"
    UNCHECKED = "unchecked"


@dataclass(frozen=True)
class LinkResult:
    """One link's check: the verdict, the HTTP status, where redirects ended, and why it is not OK."""

    url: str
    verdict: Verdict
    status: int | None = None  # the last HTTP status received, if any
    final_url: str | None = None  # where redirects ended; None when the link did not redirect
    reason: str | None = None  # plain words for anything not OK ("HTTP 404 Not Found", "timeout after 10 s")
    elapsed: float = 0.0  # seconds spent checking this link, waiting for a free slot included
    method: str | None = None  # the request that gave the verdict: "HEAD", or "GET" after a fallback
    # How the link got no answer at all from the network ("name lookup", "timeout", "network unreachable"),
    # or None: an answer came, or the failure was the server's (refused, reset, TLS, HTTP). See
    # network_unreachable.
    no_network: str | None = None
    fetched: bool = False  # asked over the network (False: mailto:, placeholders, … judged as written)
    local: bool = False  # its host is this machine or a private network: it needs no internet

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    def __str__(self) -> str:
        text = f"{self.verdict}: {self.url}"
        if self.final_url:
            text += f" → {self.final_url}"
        if self.reason:
            text += f": {self.reason}"
        return text


@dataclass(frozen=True)
class LinkSummary:
    """Counts a CLI can print, and the links behind the ones that are not OK."""

    total: int
    ok: int
    broken: int
    unchecked: int
    broken_links: tuple[LinkResult, ...]
    unchecked_links: tuple[LinkResult, ...]

    @property
    def all_ok(self) -> bool:
        return self.ok == self.total

    def __str__(self) -> str:
        noun = "link" if self.total == 1 else "links"
        return f"{self.total} {noun}: {self.ok} ok, {self.broken} broken, {self.unchecked} not checked"


def summarise(results: Iterable[LinkResult]) -> LinkSummary:
    """Count the results by verdict."""
    results = list(results)
    broken = tuple(r for r in results if r.verdict is Verdict.BROKEN)
    unchecked = tuple(r for r in results if r.verdict is Verdict.UNCHECKED)
    return LinkSummary(total=len(results), ok=len(results) - len(broken) - len(unchecked), broken=len(broken),
                       unchecked=len(unchecked), broken_links=broken, unchecked_links=unchecked)


def network_unreachable(results: Iterable[LinkResult]) -> str | None:
    """Why the internet looks unreachable from here, or None: every link to a public host (two hosts at least)
    got no answer at all, each failing at the network's level (name lookup, a timeout, no route).

    One dead link fails so too; thirty links on thirty hosts failing alike say that the machine is offline
    (or its DNS is down), not that the thirty are broken. Local links (a page on this machine or an
    intranet) neither count nor veto.
    """
    public = [result for result in results if result.fetched and not result.local]
    hosts = {urlsplit(result.url).hostname for result in public}
    if len(hosts) < 2 or not all(result.no_network for result in public):
        return None
    ways = sorted({str(result.no_network) for result in public})
    return (f"every one of the {len(public)} links to {len(hosts)} hosts failed at {' or '.join(ways)}, "
            "with no answer from any of them")


def placeholder_in(url: str) -> str | None:
    """Return the per-recipient placeholder a link contains (`-unsubscribe_url-`, `-email-`…), if any."""
    return next((p for p in placeholders.KNOWN if p in url), None)


def is_placeholder_url(url: str) -> bool:
    """Tell whether a link is filled in per recipient at send time, so must not be fetched as written.

    Any known placeholder counts, wherever it is: the sender fills `-email-` even inside
    `https://example.com/get-email-tips`, so that link, too, differs for every reader.
    """
    return placeholder_in(url) is not None


def check_links(
    urls: Iterable[str],
    *,
    timeout: float = 10.0,
    concurrency: int = 4,
    per_host: int = 2,
    max_redirects: int = 10,
    on_result: Callable[[LinkResult], None] | None = None,
) -> list[LinkResult]:
    """Check that each distinct link answers; one result per distinct link, in the order given.

    `timeout` bounds each step of a request (name lookup, connect, each read), not the whole check.
    At most `concurrency` requests are in flight, and at most `per_host` to one host (scheme, name
    and port, as browsers count them). Surrounding whitespace is ignored; links that differ only by
    their #fragment are fetched once.
    `on_result` is called in the calling thread as each result is known (for a progress bar).
    """
    if timeout <= 0 or concurrency < 1 or per_host < 1 or max_redirects < 0:
        raise ValueError("timeout must be positive, concurrency and per_host at least 1, max_redirects at least 0")
    report = on_result or (lambda result: None)
    distinct = list(dict.fromkeys(url.strip() for url in urls))
    results: dict[str, LinkResult] = {}
    by_fetch: dict[str, list[str]] = {}  # the address fetched (no fragment) → the links that share it
    for url in distinct:
        skipped = _not_fetched(url)
        if skipped is not None:
            results[url] = skipped
            report(skipped)
        else:
            by_fetch.setdefault(_without_fragment(url), []).append(url)

    checker = _Checker(timeout=timeout, per_host=per_host, max_redirects=max_redirects)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="linkcheck")
    try:
        pending: dict[Future[LinkResult], str] = {
            pool.submit(checker.check, address): address for address in _interleave_hosts(list(by_fetch))
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                checked = future.result()
                for url in by_fetch[pending.pop(future)]:
                    results[url] = replace(checked, url=url)
                    report(results[url])
    except BaseException:
        # Ctrl-C or a failing callback: start nothing new; requests in flight end within `timeout`.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [results[url] for url in distinct]


def not_fetched(url: str) -> tuple[Verdict, str] | None:
    """Why a link is never fetched (a placeholder, another scheme, a malformed address), else None.

    Shared by `mailer check --links` and `mailer cards`: what one will not ask, the other will not either.
    """
    placeholder = placeholder_in(url)
    if placeholder is not None:
        return Verdict.UNCHECKED, f"per-recipient link: {placeholder} is filled in at send time"
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in FETCHED_SCHEMES:
            return Verdict.UNCHECKED, (f"{scheme}: links are not fetched" if scheme
                                       else "not an absolute http(s) address")
        if not parts.hostname:
            return Verdict.BROKEN, "invalid address: no host name"
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as err:
        return Verdict.BROKEN, f"invalid address: {err}"
    return None


def _not_fetched(url: str) -> LinkResult | None:
    """The result for a link that is not fetched (placeholder, other scheme, malformed), else None."""
    why = not_fetched(url)
    return LinkResult(url, why[0], reason=why[1]) if why else None


def _without_fragment(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(fragment=""))


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or DEFAULT_PORTS[scheme]


def _interleave_hosts(addresses: list[str]) -> list[str]:
    """Order addresses round-robin by host, so the per-host limit does not leave workers waiting."""
    queues: dict[tuple[str, str, int], list[str]] = {}
    for address in addresses:
        queues.setdefault(_origin(address), []).append(address)
    ordered: list[str] = []
    for round_ in range(max((len(q) for q in queues.values()), default=0)):
        ordered.extend(q[round_] for q in queues.values() if round_ < len(q))
    return ordered


class _ResolveTimeout(OSError):
    """The system resolver gave no answer in time (getaddrinfo itself has no timeout)."""


@dataclass(frozen=True)
class _Answer:
    status: int
    phrase: str
    headers: http.client.HTTPMessage


@dataclass(frozen=True)
class _Outcome:
    result: LinkResult
    try_get: bool = False  # HEAD was refused or not understood: ask again with GET


class _Checker:
    """Checks one address at a time per worker thread; shares the per-host limits between workers."""

    def __init__(self, *, timeout: float, per_host: int, max_redirects: int):
        self.timeout = timeout
        self.per_host = per_host
        self.max_redirects = max_redirects
        self.tls = ssl.create_default_context()
        self._slots: dict[tuple[str, str, int], threading.BoundedSemaphore] = {}
        self._slots_lock = threading.Lock()
        self._local: dict[str, bool] = {}  # link → every address of its host is private (AddressGuard)

    def check(self, url: str) -> LinkResult:
        start = time.monotonic()
        outcome = self._follow(url, "HEAD")
        if outcome.try_get:
            outcome = self._follow(url, "GET")
        host = urlsplit(url).hostname or ""
        return replace(outcome.result, elapsed=time.monotonic() - start, fetched=True,
                       local=self._local.get(url, False) or is_local_name(host))

    def _follow(self, url: str, method: str) -> _Outcome:
        """Request `url`, following redirects with the same method, up to `max_redirects` of them."""
        seen = {url}
        current = url
        guard = AddressGuard(timeout=self.timeout)
        try:
            addresses = guard.addresses(*_origin(url)[1:])
        except (OSError, ValueError) as err:  # the name does not resolve: nothing to ask
            reason = describe_failure(err, host=urlsplit(url).hostname or "", timeout=self.timeout)
            return _Outcome(LinkResult(url, Verdict.BROKEN, method=method, reason=reason,
                                       no_network=_no_network(err)))
        self._local[url] = bool(guard.link_is_local)
        for hop in range(self.max_redirects + 1):
            final_url = current if current != url else None
            try:
                answer = self._request(method, current, addresses)
            except Exception as err:  # narrowed by describe_failure, which re-raises anything unexpected
                # Some servers drop the connection on HEAD instead of answering 405.
                refused_head = method == "HEAD" and isinstance(err, ConnectionResetError | http.client.BadStatusLine)
                reason = describe_failure(err, host=urlsplit(current).hostname or "", timeout=self.timeout)
                result = LinkResult(url, Verdict.BROKEN, final_url=final_url, method=method, reason=reason,
                                    no_network=_no_network(err) if hop == 0 else None)
                return _Outcome(result, try_get=refused_head)
            status = answer.status
            location = answer.headers.get("Location")
            if status in REDIRECT_STATUSES and location:
                try:
                    target = _without_fragment(urljoin(current, location.strip()))
                    urlsplit(target).port  # noqa: B018 - parsed here, where a malformed one can be told
                except ValueError:  # "http://[::1", a port that is no number: any site can answer so
                    reason = f"redirects to {printable(location.strip()[:200])}, which is not a valid address"
                    return _Outcome(LinkResult(url, Verdict.BROKEN, status, final_url, reason, method=method))
                if hop == self.max_redirects:
                    reason = f"too many redirects (more than {self.max_redirects})"
                    return _Outcome(LinkResult(url, Verdict.BROKEN, status, final_url, reason, method=method))
                if urlsplit(target).scheme.lower() not in FETCHED_SCHEMES:
                    reason = f"redirects to {printable(target)}, which is not fetched"
                    return _Outcome(LinkResult(url, Verdict.UNCHECKED, status, target, reason, method=method))
                if target in seen:
                    if answer.headers.get("Set-Cookie"):
                        # A cookie wall: a browser would come back with the cookie and get through.
                        reason = "redirects to itself until a cookie is kept (cookies are not kept)"
                        return _Outcome(LinkResult(url, Verdict.UNCHECKED, status, final_url, reason, method=method))
                    reason = f"redirect loop (back to {printable(target)})"
                    return _Outcome(LinkResult(url, Verdict.BROKEN, status, final_url, reason, method=method))
                # A public link must not steer the checker into this machine or its network (an
                # admin page on 127.0.0.1, a cloud metadata address): only a local link may go there.
                try:
                    addresses = guard.addresses(*_origin(target)[1:])
                except PrivateAddress:
                    reason = f"redirects to {printable(target)}, a private or local address, which is not fetched"
                    return _Outcome(LinkResult(url, Verdict.UNCHECKED, status, target, reason, method=method))
                except (OSError, ValueError) as err:  # fail closed: a name that does not resolve is not asked
                    reason = describe_failure(err, host=urlsplit(target).hostname or "", timeout=self.timeout)
                    return _Outcome(LinkResult(url, Verdict.BROKEN, final_url=target, reason=reason, method=method))
                seen.add(target)
                current = target
                continue
            if 200 <= status < 300:
                return _Outcome(LinkResult(url, Verdict.OK, status, final_url, method=method))
            if status == HTTPStatus.TOO_MANY_REQUESTS:
                reason = "rate limited (HTTP 429), could not check"
                retry_after = answer.headers.get("Retry-After", "").strip()
                if retry_after.isdigit():
                    reason += f"; the site asks to wait {retry_after} s"
                return _Outcome(LinkResult(url, Verdict.UNCHECKED, status, final_url, reason, method=method))
            reason = f"HTTP {status} {printable(answer.phrase)}".rstrip()  # the server's words
            # Many servers refuse or mishandle HEAD (405, 501, 403, even 404 or 500) yet serve GET.
            return _Outcome(LinkResult(url, Verdict.BROKEN, status, final_url, reason, method=method),
                            try_get=method == "HEAD" and status >= 400)
        raise AssertionError("unreachable: the last hop returns")  # pragma: no cover

    def _request(self, method: str, url: str, addresses: tuple[str, ...]) -> _Answer:
        """One request to the checked `addresses`, no redirects followed, holding one of the host's slots.

        The body is not kept.
        """
        parts = urlsplit(url)
        scheme, host, port = _origin(url)  # a redirect's port may be malformed: ValueError
        if not host:
            raise ValueError("no host name")
        target = quote(parts.path or "/", safe=_PATH_SAFE)
        if parts.query:
            target += "?" + quote(parts.query, safe=_QUERY_SAFE)
        conn: http.client.HTTPConnection
        # The host and port are given apart, so user:password@ in a link is never sent anywhere.
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.tls)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        # The connection goes to the addresses the guard checked, not to a second lookup of the name (the
        # host name stays what TLS checks the certificate against and what the Host header says).
        conn._create_connection = functools.partial(_connect_to, addresses)  # type: ignore[attr-defined]
        with self._slot((scheme, host, port)):
            try:
                conn.request(method, target, headers=REQUEST_HEADERS)
                response = conn.getresponse()
                if method == "GET":
                    # A little of the body, for servers that want a reader; the status is what we came for.
                    with contextlib.suppress(OSError, http.client.HTTPException):
                        response.read(BODY_BYTES)
                phrase = _phrase(response.status, response.reason)
                return _Answer(response.status, phrase, response.headers)
            finally:
                conn.close()

    def _slot(self, origin: tuple[str, str, int]) -> threading.BoundedSemaphore:
        with self._slots_lock:
            if origin not in self._slots:
                self._slots[origin] = threading.BoundedSemaphore(self.per_host)
            return self._slots[origin]



def _connect_to(addresses: tuple[str, ...], address: tuple[str, int], timeout: float,
                source_address: Any = None) -> socket.socket:
    """Like socket.create_connection for `address`, but to its checked `addresses` only (no lookup)."""
    last_error: OSError | None = None
    for ip in addresses:
        try:
            return socket.create_connection((ip, address[1]), timeout, source_address)
        except OSError as err:
            last_error = err
    raise last_error or OSError(f"no address for {address[0]}")


class PrivateAddress(Exception):
    """A link that is not itself local leads to this machine or a private network: not fetched."""


@dataclass
class AddressGuard:
    """One fetch's guard: a public link may not lead into this machine or its network.

    Shared by `mailer check --links` and `mailer cards`. Each host on the way is looked up once, every
    address it resolves to is judged, and the caller connects to those very addresses (`addresses`
    returns them to pin the connection): a name asked twice could answer a public address to the
    check and 127.0.0.1 to the connection (DNS rebinding). A name that does not resolve is never
    fetched (the lookup's error is raised). The link itself may be local (a page on this machine or
    an intranet, every address of it private); then its redirects may go anywhere too.
    """

    timeout: float
    link_is_local: bool | None = None  # known once the link's own host is looked up

    def addresses(self, host: str, port: int, *, timeout: float | None = None) -> tuple[str, ...]:
        """The checked addresses of the next host on the way; raises PrivateAddress, or OSError from the lookup."""
        if not host.strip("[]"):
            raise ValueError("no host name")
        first = self.link_is_local is None
        if not first and not self.link_is_local and is_local_name(host):
            raise PrivateAddress(host)  # said by its name: no lookup needed (`localhost.` may resolve nowhere here)
        infos = _resolve(host.strip("[]"), port, self.timeout if timeout is None else timeout)
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"no address for {host}")
        private = [_is_private_address(ipaddress.ip_address(address.split("%")[0])) for address in addresses]
        if first:
            # Local only when every address is: a name answering one public and one private address
            # is a public link, and may not lead further in.
            self.link_is_local = is_local_name(host) or all(private)
        elif not self.link_is_local and any(private):
            raise PrivateAddress(host)
        return addresses


def is_local_name(host: str) -> bool:
    """Whether a host is this machine or a private network by its name alone: localhost, or such an address.

    A trailing dot names the same place (`localhost.`, `127.0.0.1.`), and is ignored.
    """
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return _is_private_address(ipaddress.ip_address(name.split("%")[0]))
    except ValueError:
        return False


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _is_private_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address carried inside an IPv6 one (::ffff:127.0.0.1, 6to4's 2002:7f00:1::, Teredo,
        # NAT64's 64:ff9b::7f00:1) reaches that IPv4 address: it is judged as that one.
        teredo = address.teredo
        embedded = address.ipv4_mapped or address.sixtofour or (teredo[1] if teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _is_private_address(embedded) or address.is_private
    return (address.is_private or address.is_loopback or address.is_link_local or address.is_reserved
            or address.is_multicast or address.is_unspecified)


def _resolve(host: str, port: int, timeout: float) -> list[Any]:
    """getaddrinfo with a deadline: without network the system resolver can wait far longer."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # a literal address: no lookup
    answer: dict[str, Any] = {}
    done = threading.Event()

    def lookup() -> None:
        try:
            answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as err:  # handed to the waiting thread
            answer["error"] = err
        finally:
            done.set()

    # A daemon thread, so a lookup that never returns cannot keep the process alive.
    threading.Thread(target=lookup, name=f"linkcheck-resolve-{host}", daemon=True).start()
    if not done.wait(timeout):
        raise _ResolveTimeout(f"no answer for {host}")
    if "error" in answer:
        raise answer["error"]
    return answer["infos"]


def _phrase(status: int, server_reason: str) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return server_reason.strip()


# Errors that say the network gave no way to the host (ENETUNREACH, EHOSTUNREACH, ENETDOWN), not the host's refusal.
_NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN})


def _no_network(err: BaseException) -> str | None:
    """How `err` got no answer from the network at all (see LinkResult.no_network), or None."""
    if isinstance(err, _ResolveTimeout | socket.gaierror):
        return "name lookup"
    if isinstance(err, TimeoutError):
        return "a timeout"
    if isinstance(err, OSError) and err.errno in _NO_ROUTE:
        return "no route to the network"
    return None


def describe_failure(err: Exception, *, host: str, timeout: float) -> str:
    """Say in plain words why a request failed; re-raise what is not a network or address problem."""
    if isinstance(err, _ResolveTimeout):
        return f"name not resolved: no DNS answer for {host} within {timeout:g} s"
    if isinstance(err, socket.gaierror):
        return f"name not resolved: {host}"
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate problem: {err.verify_message}"
    if isinstance(err, ssl.SSLError):
        return f"TLS error: {err.reason or err}"
    if isinstance(err, TimeoutError):
        return f"timeout after {timeout:g} s"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(err, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(err, http.client.InvalidURL | ValueError):  # a redirect to a malformed address, too
        return f"invalid address: {err}"
    if isinstance(err, http.client.HTTPException):
        return f"not a valid HTTP answer ({type(err).__name__})"
    if isinstance(err, OSError):
        return f"connection failed: {err.strerror or err}"
    raise err

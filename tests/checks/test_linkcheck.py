"""Checking links against local HTTP servers that answer the way real sites do (no outside network)."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from mailer.checks.linkcheck import LinkResult, Verdict, check_links, is_placeholder_url, summarise
from tests.conftest import SELF_SIGNED_CERT

FAST = 0.5  # the timeout for these tests: the slow route takes longer, everything else far less
# How long each /busy request stays in progress once its limits were reached: the window in which a client that
# breaks a limit shows it. A busy machine can only hide such a client, never fail one that keeps its limits.
OVER_LIMIT_WINDOW = 0.1


@dataclass
class Gauge:
    """Requests in progress, and the most there ever were at once.

    With `expect`, a request is held (`hold`) until that many are in progress at once: the test waits for the
    limit to be reached, not for requests to overlap by chance. If it is never reached, everyone is let go after
    4 s (before the client's 5 s timeout), and the test fails on `peak` instead of hanging.
    """

    expect: int | None = None
    now: int = 0
    peak: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            if self.expect is not None and self.now >= self.expect:
                self.reached.set()  # from now on nobody is held: the limit was reached once, as the test expects

    def hold(self) -> None:
        if self.expect is not None and not self.reached.wait(4):
            self.reached.set()  # never reached: let everyone go at once, and the test fail on `peak`

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


@dataclass
class Site:
    """What a local site received: hits per (method, path), request headers, requests in progress."""

    url: str = ""
    hits: Counter[tuple[str, str]] = field(default_factory=Counter)
    headers: list[dict[str, str]] = field(default_factory=list)
    busy: Gauge = field(default_factory=Gauge)  # this site's /busy requests in progress
    all_busy: Gauge = field(default_factory=Gauge)  # shared between sites, for the total limit
    released: threading.Event = field(default_factory=threading.Event)  # ends /slow at teardown
    lock: threading.Lock = field(default_factory=threading.Lock)

    def total_hits(self) -> int:
        return sum(self.hits.values())


def serve(site: Site, *, tls: bool = False, address: tuple[str, int] = ("127.0.0.1", 0)) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self.route()

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.route()

        def answer(self, status: int, headers: dict[str, str] | None = None) -> None:
            body = f"<html><body>{status}</body></html>".encode()
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def route(self) -> None:
            path = self.path.split("?")[0]
            with site.lock:
                site.hits[(self.command, self.path)] += 1
                site.headers.append(dict(self.headers))
            head = self.command == "HEAD"
            if path in ("/ok", "/r/end", "/echo"):
                self.answer(200)
            elif path == "/missing":
                self.answer(404)
            elif path == "/error":
                self.answer(500)
            elif path == "/no-head":
                self.answer(405 if head else 200, {"Allow": "GET"})
            elif path == "/head-drops":
                if head:  # some servers close the connection on HEAD instead of answering
                    self.close_connection = True
                else:
                    self.answer(200)
            elif path == "/r/start":
                self.answer(301, {"Location": "/r/middle"})  # relative
            elif path == "/r/middle":
                self.answer(302, {"Location": f"{site.url}/r/end"})  # absolute
            elif path == "/loop/a":
                self.answer(302, {"Location": "/loop/b"})
            elif path == "/loop/b":
                self.answer(302, {"Location": "/loop/a"})
            elif path.startswith("/chain/"):
                self.answer(302, {"Location": f"/chain/{int(path.rsplit('/', 1)[1]) + 1}"})
            elif path == "/cookie-wall":
                if "seen=1" in self.headers.get("Cookie", ""):
                    self.answer(200)
                else:
                    self.answer(302, {"Location": "/cookie-wall", "Set-Cookie": "seen=1; Path=/"})
            elif path == "/to-mail":
                self.answer(302, {"Location": "mailto:editor@example.com"})
            elif path == "/to":  # a redirect to wherever the query says
                self.answer(302, {"Location": unquote(self.path.split("?", 1)[1])})
            elif path == "/set-cookie":
                self.answer(302, {"Location": "/echo", "Set-Cookie": "session=abc; Path=/"})
            elif path == "/slow":
                site.released.wait(5)
                self.answer(200)
            elif path == "/busy":
                site.busy.enter()
                site.all_busy.enter()
                site.busy.hold()
                site.all_busy.hold()
                time.sleep(OVER_LIMIT_WINDOW)
                # Leave before answering: the client's next request can only start after the answer.
                site.all_busy.leave()
                site.busy.leave()
                self.answer(200)
            elif path == "/rate-limited":
                self.answer(429, {"Retry-After": "30"})
            elif path == "/odd-status":  # a status of no standard, the server's own words with an escape
                self.send_response(599, "\x1b[2JGone away")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.answer(404)

    server = ThreadingHTTPServer(address, Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(SELF_SIGNED_CERT)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    site.url = f"{scheme}://{server.server_address[0]}:{server.server_address[1]}"
    # A short poll interval: shutdown() waits for it, in every test's teardown.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def make_site() -> Iterator[Callable[..., Site]]:
    started: list[tuple[Site, ThreadingHTTPServer]] = []

    def make(**options: Any) -> Site:
        tls = options.pop("tls", False)
        address = options.pop("address", ("127.0.0.1", 0))
        site = Site(**options)
        started.append((site, serve(site, tls=tls, address=address)))
        return site

    yield make
    for site, server in started:
        site.released.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site()


def check_one(url: str, **options: Any) -> LinkResult:
    options.setdefault("timeout", FAST)
    [result] = check_links([url], **options)
    return result


# -- answers -------------------------------------------------------------------------------------


def test_a_link_that_answers_200_is_ok_with_one_head_request(site: Site) -> None:
    result = check_one(f"{site.url}/ok")
    assert result.ok and result.verdict is Verdict.OK
    assert (result.status, result.reason, result.final_url, result.method) == (200, None, None, "HEAD")
    assert site.hits == {("HEAD", "/ok"): 1}
    assert 0 < result.elapsed < FAST


@pytest.mark.parametrize(("path", "status", "reason"), [
    ("/missing", 404, "HTTP 404 Not Found"),
    ("/error", 500, "HTTP 500 Internal Server Error"),
])
def test_4xx_and_5xx_are_broken_and_say_the_status(site: Site, path: str, status: int, reason: str) -> None:
    result = check_one(site.url + path)
    assert result.verdict is Verdict.BROKEN and not result.ok
    assert (result.status, result.reason) == (status, reason)
    assert str(result) == f"broken: {site.url}{path}: {reason}"
    # HEAD's answer is confirmed with GET before a link is called broken
    assert site.hits == {("HEAD", path): 1, ("GET", path): 1}


def test_a_server_that_refuses_head_is_asked_with_get(site: Site) -> None:
    result = check_one(f"{site.url}/no-head")
    assert (result.verdict, result.status, result.method) == (Verdict.OK, 200, "GET")
    assert site.hits == {("HEAD", "/no-head"): 1, ("GET", "/no-head"): 1}


def test_a_server_that_drops_the_connection_on_head_is_asked_with_get(site: Site) -> None:
    result = check_one(f"{site.url}/head-drops")
    assert (result.verdict, result.status, result.method) == (Verdict.OK, 200, "GET")


def test_429_is_a_warning_not_a_broken_link_and_is_not_asked_again(site: Site) -> None:
    result = check_one(f"{site.url}/rate-limited")
    assert result.verdict is Verdict.UNCHECKED
    assert result.status == 429
    assert result.reason == "rate limited (HTTP 429), could not check; the site asks to wait 30 s"
    assert site.hits == {("HEAD", "/rate-limited"): 1}


# -- redirects -----------------------------------------------------------------------------------


def test_a_redirect_chain_is_followed_with_head_and_the_final_address_kept(site: Site) -> None:
    result = check_one(f"{site.url}/r/start")
    assert (result.verdict, result.status, result.method) == (Verdict.OK, 200, "HEAD")
    assert result.final_url == f"{site.url}/r/end"
    assert str(result) == f"ok: {site.url}/r/start → {site.url}/r/end"
    assert site.hits == {("HEAD", "/r/start"): 1, ("HEAD", "/r/middle"): 1, ("HEAD", "/r/end"): 1}


def test_a_redirect_loop_is_broken_and_said_so(site: Site) -> None:
    result = check_one(f"{site.url}/loop/a")
    assert result.verdict is Verdict.BROKEN
    assert result.reason == f"redirect loop (back to {site.url}/loop/a)"
    assert site.total_hits() == 2  # a loop is seen as one, not retried with GET


def test_redirects_are_capped(site: Site) -> None:
    result = check_one(f"{site.url}/chain/0", max_redirects=3)
    assert result.verdict is Verdict.BROKEN
    assert result.reason == "too many redirects (more than 3)"
    assert result.final_url == f"{site.url}/chain/3"
    assert site.hits[("HEAD", "/chain/4")] == 0


def test_a_servers_own_words_in_a_reason_are_shown_as_text(site: Site) -> None:
    # A reason phrase and a redirect's target come from the server: an escape in them reached the terminal.
    odd = check_one(f"{site.url}/odd-status")
    assert odd.verdict is Verdict.BROKEN and odd.reason == "HTTP 599 \\x1b[2JGone away"
    elsewhere = check_one(f"{site.url}/to?mailto:%1B%5B2Jeditor@example.com")
    assert elsewhere.reason == "redirects to mailto:\\x1b[2Jeditor@example.com, which is not fetched"


def test_a_cookie_wall_is_a_warning_not_a_broken_link(site: Site) -> None:
    result = check_one(f"{site.url}/cookie-wall")
    assert result.verdict is Verdict.UNCHECKED
    assert result.reason == "redirects to itself until a cookie is kept (cookies are not kept)"


@pytest.fixture
def news(make_site: Callable[..., Site], monkeypatch: pytest.MonkeyPatch) -> tuple[Site, list[str], Site]:
    """A site on 127.0.0.2 standing for a public one, `news.example` (there is no DNS here), and one on
    127.0.0.1 at the same port, `inside`: where a second lookup of a name would lead.

    The guard's lookup (linkcheck._resolve) answers 127.0.0.2 for news.example and lists each name it
    is asked; 127.0.0.2 is judged a public address. Every other name and address is looked up and
    judged as the real code does.
    """
    from mailer.checks import linkcheck

    for _ in range(20):
        site = make_site(address=("127.0.0.2", 0))
        try:
            inside = make_site(address=("127.0.0.1", int(site.url.rsplit(":", 1)[1])))
            break
        except OSError:  # the port is taken on 127.0.0.1 (by anything on this machine): try another
            continue
    else:
        pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2 in 20 tries")
    asked: list[str] = []
    resolve, is_private = linkcheck._resolve, linkcheck._is_private_address

    def listed(host: str, port: int, timeout: float) -> Any:
        asked.append(host)
        return resolve("127.0.0.2" if host == "news.example" else host, port, timeout)

    monkeypatch.setattr(linkcheck, "_resolve", listed)
    monkeypatch.setattr(linkcheck, "_is_private_address", lambda address: str(address) != "127.0.0.2"
                        and is_private(address))
    return site, asked, inside


def test_a_public_link_redirecting_to_a_private_address_is_not_followed(
        make_site: Callable[..., Site], news: tuple[Site, list[str], Site]) -> None:
    admin = make_site()  # what must stay unreachable, e.g. a router's page
    port = int(news[0].url.rsplit(":", 1)[1])
    for private in (f"{admin.url}/ok", "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/",
                    "http://[::1]/", "http://localhost/", "http://localhost./", "http://127.0.0.1./",
                    f"http://2130706433:{port}/ok",
                    # 127.0.0.1 inside IPv6 addresses: 6to4, NAT64, Teredo (6to4's was tried as public)
                    "http://[2002:7f00:1::]/", "http://[64:ff9b::7f00:1]/", "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/"):
        result = check_one(f"http://news.example:{port}/to?{private}")
        assert result.verdict is Verdict.UNCHECKED, private
        assert result.reason == f"redirects to {private}, a private or local address, which is not fetched"
    # A name this machine cannot look up is not asked (a resolver elsewhere may know it).
    for unresolved in ("http://metadata.google.internal/", "http://127.0.0.1.nip.io/"):
        result = check_one(f"http://news.example:{port}/to?{unresolved}")
        assert result.verdict is Verdict.BROKEN and result.final_url == unresolved
        assert (result.reason or "").startswith(f"name not resolved: {urlsplit(unresolved).hostname}"), result.reason
    assert admin.total_hits() == 0 and news[2].total_hits() == 0


def test_the_address_checked_is_the_address_connected_to(news: tuple[Site, list[str], Site],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from mailer.checks import linkcheck

    site, _, inside = news  # inside: where a second lookup of a name would lead
    port = int(site.url.rsplit(":", 1)[1])
    # Rebinding names: public (127.0.0.2) the first time each is asked, 127.0.0.1 every time after.
    asked: Counter[str] = Counter()
    resolve = linkcheck._resolve

    def rebinding(host: str, p: int, timeout: float) -> Any:
        asked[host] += 1
        return resolve("127.0.0.2" if asked[host] == 1 else "127.0.0.1", p, timeout)

    monkeypatch.setattr(linkcheck, "_resolve", rebinding)
    result = check_one(f"http://news.example:{port}/to?http://cdn.example:{port}/ok")
    assert result.verdict is Verdict.OK and result.final_url == f"http://cdn.example:{port}/ok"
    assert site.hits[("HEAD", "/ok")] == 1 and inside.total_hits() == 0
    assert asked == {"news.example": 1, "cdn.example": 1}


def test_a_local_link_may_redirect_within_this_machine(make_site: Callable[..., Site]) -> None:
    site, other = make_site(), make_site()
    result = check_one(f"{site.url}/to?{other.url}/ok")
    assert result.verdict is Verdict.OK and other.hits[("HEAD", "/ok")] == 1


@pytest.mark.parametrize("location", ["http://[::1", "http://[evil/x", "http://example.com:port/"])
def test_a_malformed_redirect_is_a_broken_link_not_a_traceback(site: Site, location: str) -> None:
    # urljoin's ValueError ("Invalid IPv6 URL") stopped the whole check: any site can answer so.
    result = check_one(f"{site.url}/to?{location}")
    assert result.verdict is Verdict.BROKEN and "which is not a valid address" in (result.reason or "")


def test_a_redirect_to_mailto_is_not_followed(site: Site) -> None:
    result = check_one(f"{site.url}/to-mail")
    assert result.verdict is Verdict.UNCHECKED
    assert result.final_url == "mailto:editor@example.com"
    assert result.reason == "redirects to mailto:editor@example.com, which is not fetched"


# -- network failures ----------------------------------------------------------------------------


def test_a_slow_server_times_out_quickly(site: Site) -> None:
    started = time.monotonic()
    result = check_one(f"{site.url}/slow", timeout=FAST)
    assert result.verdict is Verdict.BROKEN
    assert result.reason == "timeout after 0.5 s"
    assert result.status is None
    assert FAST <= result.elapsed < 2 and time.monotonic() - started < 2
    assert site.hits == {("HEAD", "/slow"): 1}  # a timeout is not retried with GET


def test_a_refused_connection_is_broken() -> None:
    with socket.socket() as bound_not_listening:  # the port stays ours, nothing answers on it
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        result = check_one(f"http://127.0.0.1:{port}/")
    assert (result.verdict, result.reason, result.status) == (Verdict.BROKEN, "connection refused", None)


def test_an_unknown_host_name_is_broken_and_fast() -> None:
    # .invalid never resolves (RFC 6761); without network the lookup fails or is cut at the timeout.
    started = time.monotonic()
    result = check_one("https://nowhere.invalid/page")
    assert result.verdict is Verdict.BROKEN
    assert result.reason is not None and result.reason.startswith("name not resolved: ")
    assert "nowhere.invalid" in result.reason
    assert time.monotonic() - started < 2


def test_a_name_lookup_that_hangs_gives_up_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    never = threading.Event()
    real_getaddrinfo = socket.getaddrinfo

    def hanging_getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "dns.hangs.example":
            never.wait(10)  # what the system resolver does with no network and a distant nameserver
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging_getaddrinfo)
    started = time.monotonic()
    try:
        result = check_one("http://dns.hangs.example/")
    finally:
        never.set()
    assert result.verdict is Verdict.BROKEN
    assert result.reason == "name not resolved: no DNS answer for dns.hangs.example within 0.5 s"
    assert time.monotonic() - started < 2


def test_an_untrusted_certificate_is_a_tls_problem(make_site: Callable[..., Site]) -> None:
    secure = make_site(tls=True)
    result = check_one(f"{secure.url}/ok")
    assert result.verdict is Verdict.BROKEN
    assert result.reason is not None
    assert re.fullmatch(r"TLS certificate problem: self.signed certificate", result.reason), result.reason
    assert secure.total_hits() == 0


# -- what is not fetched, and what is fetched once ------------------------------------------------


def test_per_recipient_links_are_not_fetched(site: Site) -> None:
    urls = [f"{site.url}/ok?unsubscribe=-unsubscribe_url-", "-unsubscribe_url-", f"{site.url}/ok?for=-email-",
            f"{site.url}/get-email-tips"]
    results = check_links(urls, timeout=FAST)
    assert all(is_placeholder_url(url) for url in urls)
    assert [r.verdict for r in results] == [Verdict.UNCHECKED] * 4
    assert [r.reason for r in results] == [
        "per-recipient link: -unsubscribe_url- is filled in at send time",
        "per-recipient link: -unsubscribe_url- is filled in at send time",
        "per-recipient link: -email- is filled in at send time",
        "per-recipient link: -email- is filled in at send time",  # the sender fills it there, too
    ]
    assert site.total_hits() == 0
    assert not is_placeholder_url(f"{site.url}/ok?email=ada@example.com")


def test_only_http_and_https_are_fetched(site: Site) -> None:
    results = check_links(["mailto:editor@example.com", "tel:+15550100", "/relative/page", "#top"], timeout=FAST)
    assert [(r.verdict, r.reason) for r in results] == [
        (Verdict.UNCHECKED, "mailto: links are not fetched"),
        (Verdict.UNCHECKED, "tel: links are not fetched"),
        (Verdict.UNCHECKED, "not an absolute http(s) address"),
        (Verdict.UNCHECKED, "not an absolute http(s) address"),
    ]


def test_a_malformed_address_is_broken_without_a_request() -> None:
    [bad_port, no_host] = check_links(["http://127.0.0.1:99999/", "https:///path"], timeout=FAST)
    assert (bad_port.verdict, bad_port.reason) == (Verdict.BROKEN, "invalid address: Port out of range 0-65535")
    assert (no_host.verdict, no_host.reason) == (Verdict.BROKEN, "invalid address: no host name")


def test_each_distinct_link_is_fetched_once_and_results_keep_the_order(site: Site) -> None:
    urls = [f"{site.url}/missing", f"{site.url}/ok", f"{site.url}/ok", " " + f"{site.url}/ok\n",
            f"{site.url}/ok#section", "mailto:editor@example.com", f"{site.url}/missing"]
    results = check_links(urls, timeout=FAST)
    assert [r.url for r in results] == [f"{site.url}/missing", f"{site.url}/ok", f"{site.url}/ok#section",
                                        "mailto:editor@example.com"]
    assert [r.verdict for r in results] == [Verdict.BROKEN, Verdict.OK, Verdict.OK, Verdict.UNCHECKED]
    assert site.hits == {("HEAD", "/ok"): 1, ("HEAD", "/missing"): 1, ("GET", "/missing"): 1}


def test_each_result_is_reported_as_it_is_known(site: Site) -> None:
    seen: list[str] = []
    results = check_links([f"{site.url}/ok", "mailto:a@example.com", f"{site.url}/missing"], timeout=FAST,
                          on_result=lambda result: seen.append(result.url))
    assert sorted(seen) == sorted(r.url for r in results)


# -- politeness ----------------------------------------------------------------------------------


def test_requests_respect_the_total_and_per_host_limits(make_site: Callable[..., Site]) -> None:
    everywhere = Gauge(expect=4)
    sites = [make_site(all_busy=everywhere, busy=Gauge(expect=2 if n == 0 else None)) for n in range(3)]
    # Most links on one host: once the others are done, free workers must still leave it at two.
    urls = [f"{s.url}/busy?n={n}" for s, count in zip(sites, (6, 2, 2), strict=True) for n in range(count)]
    results = check_links(urls, timeout=5, concurrency=4)
    assert everywhere.peak == 4  # the total limit is reached, never passed
    assert sites[0].busy.peak == 2  # two at once on the busy host, never more
    assert all(s.busy.peak <= 2 for s in sites)
    assert all(r.ok for r in results)
    assert [s.total_hits() for s in sites] == [6, 2, 2]


def test_one_host_gets_at_most_two_requests_at_once_whatever_the_concurrency(make_site: Callable[..., Site]) -> None:
    site = make_site(busy=Gauge(expect=2))
    results = check_links([f"{site.url}/busy?n={n}" for n in range(6)], timeout=5, concurrency=6)
    assert site.busy.peak == 2
    assert all(r.ok for r in results)


def test_requests_look_like_a_browser_naming_mailer_and_carry_no_cookie_or_credentials(site: Site) -> None:
    address = site.url.replace("http://", "http://ada:secret@") + "/set-cookie"
    result = check_one(address)
    assert result.verdict is Verdict.OK
    assert result.final_url is not None and result.final_url.endswith("/echo")
    assert len(site.headers) == 2
    for headers in site.headers:
        assert headers["User-Agent"].startswith("Mozilla/5.0 ")
        assert "mailer" in headers["User-Agent"]
        assert "Cookie" not in headers and "Authorization" not in headers
        assert headers["Host"] == site.url.removeprefix("http://")


# -- summary -------------------------------------------------------------------------------------


def test_the_summary_counts_ok_broken_and_unchecked(site: Site) -> None:
    results = check_links([f"{site.url}/ok", f"{site.url}/missing", f"{site.url}/rate-limited",
                           "mailto:editor@example.com", f"{site.url}/r/start"], timeout=FAST)
    summary = summarise(results)
    assert (summary.total, summary.ok, summary.broken, summary.unchecked) == (5, 2, 1, 2)
    assert str(summary) == "5 links: 2 ok, 1 broken, 2 not checked"
    assert [r.reason for r in summary.broken_links] == ["HTTP 404 Not Found"]
    assert [r.url for r in summary.unchecked_links] == [f"{site.url}/rate-limited", "mailto:editor@example.com"]
    assert not summary.all_ok
    assert summarise([results[0]]).all_ok
    assert str(summarise([])) == "0 links: 0 ok, 0 broken, 0 not checked"


def test_options_that_make_no_sense_are_refused() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        check_links(["https://example.com/"], concurrency=0)

"""A web page's title, description, site name and picture, for `mailer cards`.

Fetched with httpx (timeouts, a size limit, redirects followed one at a time so that a public link
cannot lead into this machine's network: each host is looked up once, judged, and connected to at
the addresses judged; no proxy, which would look names up again itself), decoded as a browser would
(the HTTP charset, then the page's own <meta charset>, then a guess: w3lib), and read by trafilatura,
which knows OpenGraph, Twitter cards, JSON-LD and the plain <title>/<meta name=description>, with
fallbacks between them. Returns results; never prints.
"""

from __future__ import annotations

import html
import json
import re
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from mailer.addresses import HALF_PAIR
from mailer.checks.linkcheck import DEFAULT_PORTS, AddressGuard, PrivateAddress, describe_failure, not_fetched
from mailer.compose.linebreak import display_width

USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36 mailer-cards/0.1")
REQUEST_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
    "Accept-Language": "en;q=0.9, *;q=0.5",
    "Accept-Encoding": "gzip, deflate",  # what _Inflater reads; nothing else is asked for
}
# What is read of a page: its metadata sits in the <head>, a few KB in; a 20 MB page stops here.
MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 5
HTML_TYPES = ("text/html", "application/xhtml+xml")
# How much of each the layout shows before the card turns into a wall of text (display columns).
LIMITS = {"title": 120, "description": 200, "site": 60}
# Characters per column: what is read of a field before it is cleaned (white space collapses), and what is
# kept after. Scripts that stack marks take 2 or 3 per column (Devanagari, Thai, Tibetan); a page
# stacking 100,000 on one letter gets 8, and the cleaning stays linear in what the page sent.
READ_PER_COLUMN, KEPT_PER_COLUMN = 32, 8
# Characters that show nothing and mean nothing in a title: soft hyphens, zero-width spaces, bidi
# overrides and isolates, word joiners, byte-order marks. ZWJ and ZWNJ stay (emoji sequences,
# Persian and Indic spelling), as do the left-to-right and right-to-left marks.
_INVISIBLE = re.compile("[\u00ad\u200b\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# What a page that escapes its metadata twice leaves after one decoding ("AT&amp;T").
_ESCAPED_TWICE = re.compile(r"&(?:amp|quot|lt|gt|#39|#x27);")


@dataclass(frozen=True)
class PageMeta:
    """What a page says about itself, cleaned; `image` is only ever a suggestion for the editor."""

    url: str
    final_url: str
    fetched_at: str  # ISO 8601, UTC
    title: str | None = None
    description: str | None = None
    site: str | None = None
    image: str | None = None
    notes: tuple[str, ...] = ()  # what the cleaning did that the editor should look at (mojibake…)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PageMeta:
        return cls(**{**data, "notes": tuple(data.get("notes") or ())})


@dataclass(frozen=True)
class Fetched:
    url: str
    meta: PageMeta | None = None
    reason: str | None = None  # why there is no meta: "HTTP 404 Not Found", "timed out after 10 s"…
    asked: bool = True  # False: not fetched at all (a placeholder in it, not http(s))


class PageFetcher:
    """Fetches pages, a few at a time; one instance per command run."""

    def __init__(self, *, timeout: float = 10.0, max_bytes: int = MAX_BYTES, concurrency: int = 8,
                 proxy_variable: str = ""):
        """`proxy_variable`: the proxy variable set in the environment (HTTPS_PROXY…), named in a fetch's error."""
        import httpx  # imported here: the CLI's --help must stay fast

        self.timeout = timeout
        self.proxy_variable = proxy_variable
        self.max_bytes = max_bytes
        self.concurrency = concurrency
        # SSL_CERT_FILE and SSL_CERT_DIR from the environment, as curl reads them. Not HTTP(S)_PROXY: a
        # proxy looks each name up again itself, where the guard cannot judge the address (docs/mailer-cards.md).
        self._tls = httpx.create_ssl_context(trust_env=True)

    def close(self) -> None:
        """Nothing to close: each request has its own connection, closed with it (kept for `with`)."""

    def __enter__(self) -> PageFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch_all(self, urls: Iterable[str], done: Callable[[Fetched], None] | None = None) -> list[Fetched]:
        """Fetch every URL, `concurrency` at a time; results in the order given."""
        urls = list(urls)
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(urls) or 1)),
                                thread_name_prefix="mailer-cards") as pool:
            futures = [pool.submit(self.fetch, url) for url in urls]
            results = []
            for future in futures:
                result = future.result()
                if done is not None:
                    done(result)
                results.append(result)
        return results

    def fetch(self, url: str) -> Fetched:
        """One page; never raises: whatever goes wrong becomes the reason its card is left as it was."""
        why = not_fetched(url)  # the same judgement as mailer check --links: placeholders, other schemes
        if why is not None:
            return Fetched(url, reason=why[1], asked=False)
        try:
            return self._fetch(url)
        except Exception as err:  # an odd URL or page must cost its own card, not the whole run
            return Fetched(url, reason=f"could not read the page ({type(err).__name__}: {err})")

    def _fetch(self, url: str) -> Fetched:
        import httpx

        from mailer.author.pinned import PinnedTransport

        deadline = time.monotonic() + self.timeout
        current = url
        guard = AddressGuard(timeout=self.timeout)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Deadline
                where = httpx.URL(current)
                host, port = where.raw_host.decode("ascii"), where.port or DEFAULT_PORTS[where.scheme]
                try:
                    # One lookup, every address judged; the connection goes to those addresses.
                    addresses = guard.addresses(host, port, timeout=left)
                except PrivateAddress:  # only ever a redirect: the link itself may be local
                    return Fetched(url, reason=f"redirects to {current}, a private or local address")
                except OSError as err:  # fail closed: a name that does not resolve here is not fetched
                    if time.monotonic() >= deadline:
                        raise _Deadline from err
                    return Fetched(url, reason=self._network_reason(err, current))
                transport = PinnedTransport(host=host, port=port, addresses=addresses, ssl_context=self._tls)
                # trust_env=False: no proxy and no ~/.netrc credentials sent to a page's host.
                with httpx.Client(transport=transport, headers=REQUEST_HEADERS, follow_redirects=False,
                                  trust_env=False) as client, \
                        client.stream("GET", current, timeout=httpx.Timeout(left)) as response:
                    # The whole fetch has `timeout` seconds: each hop gets what is left of them.
                    if response.is_redirect and response.headers.get("Location"):
                        target = urljoin(current, response.headers["Location"].strip())
                        if urlsplit(target).scheme.lower() not in ("http", "https"):
                            return Fetched(url, reason=f"redirects to {target}, which is not a web page")
                        current = target  # judged by the guard before anything is sent there
                        continue
                    if response.status_code >= 400:
                        return Fetched(url, reason=_status_reason(response.status_code, response.reason_phrase))
                    content_type = response.headers.get("Content-Type", "")
                    if content_type and content_type.split(";")[0].strip().lower() not in HTML_TYPES:
                        return Fetched(url, reason=f"not a web page ({content_type.split(';')[0].strip()})")
                    try:
                        inflater = _Inflater(", ".join(response.headers.get_list("Content-Encoding")))
                        body = self._read(response, inflater, deadline)
                    except _Unreadable as err:
                        return Fetched(url, reason=f"not read: {err}")
                    return Fetched(url, meta=read_page(url, str(response.url), content_type, body,
                                                       deadline=deadline))
            return Fetched(url, reason=f"too many redirects (more than {MAX_REDIRECTS})")
        except _Deadline:
            return Fetched(url, reason=f"timed out after {self.timeout:g} s")
        except httpx.TimeoutException:
            return Fetched(url, reason=f"timed out after {self.timeout:g} s")
        except httpx.HTTPError as err:
            return Fetched(url, reason=self._network_reason(err, current))

    def _network_reason(self, err: Exception, url: str) -> str:
        """In the words mailer check --links uses: httpx wraps the socket's own error, which tells."""
        cause: BaseException = err
        while cause.__cause__ or cause.__context__:
            cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        try:
            reason = describe_failure(cause, host=urlsplit(url).hostname or "", timeout=self.timeout)  # type: ignore[arg-type]
        except BaseException:  # not a network or address problem it knows
            return f"could not fetch: {err}"
        proxy = self.proxy_variable
        if proxy:  # where the web is reachable only through one, say why it was not used
            reason += f" ({proxy} is set and not used: a proxy would look the name up past the address check)"
        return reason

    def _read(self, response: Any, inflater: _Inflater, deadline: float) -> bytes:
        """At most max_bytes of the body, decoded, within the whole fetch's time limit (a slow drip stops too).

        Read as it comes off the wire (at most max_bytes of it) and decoded here, max_bytes at most.
        """
        chunks: list[bytes] = []
        size = wire = 0
        for raw in response.iter_raw():
            wire += len(raw)
            chunk = inflater.feed(raw, self.max_bytes - size)
            chunks.append(chunk)
            size += len(chunk)
            if size >= self.max_bytes or wire >= self.max_bytes:
                break
            if time.monotonic() > deadline:
                raise _Deadline
        return b"".join(chunks)


class _Unreadable(Exception):
    """A body that is not decoded: compressed twice, in a way not asked for, or damaged."""


# The codings asked for in Accept-Encoding, as zlib's window bits: a gzip header, or zlib's.
_ZLIB_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class _Inflater:
    """Undoes a page's Content-Encoding, never making more than it is asked for.

    httpx decodes each chunk whole, through every coding listed, before its reader sees a byte: 1,831
    bytes of `Content-Encoding: gzip, gzip` became 2.1 GB on their way to a 2 MB cap. Here zlib's
    max_length bounds every step, and a body compressed twice is not read at all (no server does that
    but to make a small download big).
    """

    def __init__(self, header: str):
        codings = [c for c in (c.strip().lower() for c in header.split(",")) if c and c != "identity"]
        if len(codings) > 1:
            raise _Unreadable(f"compressed more than once (Content-Encoding: {header.strip()}), so a few KB "
                              "could stand for gigabytes")
        if codings and codings[0] not in _ZLIB_WBITS:
            raise _Unreadable(f"compressed as {codings[0]}, which was not asked for")
        self.coding = codings[0] if codings else None
        self._zlib = zlib.decompressobj(_ZLIB_WBITS[self.coding]) if self.coding else None
        self._started = False

    def feed(self, data: bytes, room: int) -> bytes:
        """What `data` decodes to, `room` bytes of it at most (the rest is not wanted)."""
        if room <= 0:  # zlib reads a max_length of 0 as "no limit"
            return b""
        if self._zlib is None:
            return data[:room]
        try:
            out = self._zlib.decompress(data, room)
        except zlib.error as err:
            if self.coding == "deflate" and not self._started:
                # Raw deflate, without zlib's header: servers send both under this name (httpx reads both).
                self._zlib, self._started = zlib.decompressobj(-zlib.MAX_WBITS), True
                return self.feed(data, room)
            raise _Unreadable(f"its {self.coding} data is damaged") from err
        self._started = True
        return out


class _Deadline(Exception):
    pass


def read_page(url: str, final_url: str, content_type: str | None, body: bytes, *,
              deadline: float | None = None) -> PageMeta:
    """The metadata of a fetched page (`body`: its first bytes), cleaned for a card.

    Past `deadline` (a time.monotonic() value: the fetch's own, `--timeout` after it started) it stops
    between steps with _Deadline, so reading a page counts against the same limit as fetching it.
    """
    from lxml import etree as lxml_etree
    from lxml import html as lxml_html
    from trafilatura.metadata import extract_metadata
    from w3lib.encoding import html_to_unicode

    def in_time() -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise _Deadline

    _, text = html_to_unicode(content_type, body, auto_detect_fun=_guess_encoding)
    in_time()
    tree = None
    if text.strip():
        # Bytes, with the charset named: lxml refuses a str that carries an <?xml encoding?> declaration.
        parser = lxml_html.HTMLParser(encoding="utf-8")
        try:
            tree = lxml_html.fromstring(text.encode("utf-8", "surrogatepass"), parser=parser)
        except (ValueError, TypeError, lxml_etree.ParserError):
            tree = None  # a page of nothing but a comment, say: no metadata
    in_time()
    # extensive=False: no search of the whole text for a date, which a card never shows (regexes over
    # 2 MB of page took seconds).
    found = extract_metadata(tree, default_url=final_url, extensive=False) if tree is not None else None
    in_time()
    notes: list[str] = []
    # The page's own tags first, as written: trafilatura's heuristics split "Python 3.13 released |
    # Python Insider", may take an <h1> over <title>, recase "arXiv" and decode entities a second time.
    # Its fallbacks (JSON-LD headline, the picture) come after.
    title = _clean(_meta(tree, "og:title", "twitter:title") or _page_title(tree) or getattr(found, "title", None),
                   "title", notes)
    in_time()
    description = _clean(_meta(tree, "og:description", "twitter:description", "description")
                         or getattr(found, "description", None) or _json_ld(tree, "description"), "description", notes)
    in_time()
    where = urlsplit(final_url)
    hosts = {(where.hostname or "").lower().removeprefix("www."), where.netloc.lower().removeprefix("www.")}
    site = _clean(_meta(tree, "og:site_name", "application-name") or _json_ld(tree, "publisher"), "site", notes)
    in_time()
    if site and site.lower().removeprefix("www.") in hosts:
        site = None  # the card shows the domain anyway
    image = getattr(found, "image", None)
    image = urljoin(final_url, image) if image else None
    if image and urlsplit(image).scheme not in ("http", "https"):
        image = None
    return PageMeta(url=url, final_url=final_url, fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    title=title, description=description, site=site, image=image, notes=tuple(notes))


def _guess_encoding(body: bytes) -> str | None:
    """For a page that declares no charset: charset_normalizer's best guess."""
    from charset_normalizer import from_bytes

    best = from_bytes(body[:65536]).best()
    return best.encoding if best else None


def _meta(tree: Any, *names: str) -> str | None:
    """The first of these <meta property=…> / <meta name=…> tags the page has, as written."""
    if tree is None:
        return None
    for name in names:
        for value in tree.xpath("//meta[@property=$name or @name=$name]/@content", name=name):
            if value.strip():
                return str(value)
    return None


def _page_title(tree: Any) -> str | None:
    if tree is None:
        return None
    title = tree.findtext(".//title")
    return title if title and title.strip() else None


def _json_ld(tree: Any, field: str) -> str | None:
    """A schema.org JSON-LD `description`, or the `publisher`'s name (trafilatura reads neither as we need)."""
    if tree is None:
        return None
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text or "")
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth: that block alone
            continue
        items = data if isinstance(data, list) else [data]
        items += [item for entry in list(items) if isinstance(entry, dict) for item in entry.get("@graph", [])]
        for item in items:
            value = item.get(field) if isinstance(item, dict) else None
            if isinstance(value, dict):
                value = value.get("name")
            if isinstance(value, str) and value.strip():
                return value
    return None


def _clean(text: str | None, field: str, notes: list[str]) -> str | None:
    """One line of readable text: entities decoded, mojibake repaired, invisible characters gone, trimmed at a word.

    Linear in the page's text, whatever it holds: at most READ_PER_COLUMN characters per column the
    card shows are read, and at most KEPT_PER_COLUMN kept.
    """
    if not text:
        return None
    import ftfy

    from mailer.checks.textcheck import find_mojibake

    limit = LIMITS[field]
    text = text[: limit * READ_PER_COLUMN]
    if HALF_PAIR.search(text):
        notes.append(f"{field}: left out what the page escaped as half of a surrogate pair, which is no text")
        text = HALF_PAIR.sub("", text)
    if _ESCAPED_TWICE.search(text):  # a page that escaped its metadata twice: "AT&amp;T" once decoded
        text = html.unescape(text)
    repaired = ftfy.fix_encoding(text)
    if repaired != text:
        notes.append(f"{field}: repaired mojibake ({text[:40]!r} read with the wrong charset)")
        text = repaired
    text = _INVISIBLE.sub("", text)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)
    text = " ".join(text.split())
    if find_mojibake(text):
        notes.append(f"{field}: looks like mojibake that could not be repaired: check it against the page")
    kept = limit * KEPT_PER_COLUMN
    if len(text) > kept and display_width(text[:kept]) < limit:
        notes.append(f"{field}: stacks more than {kept} characters in {display_width(text[:kept])} columns "
                     "(combining marks?): cut")
    if len(text) > kept or display_width(text) > limit:
        text = _trim(text[:kept], limit)
    return text or None


def _trim(text: str, limit: int) -> str:
    """Cut to `limit` columns with '…', at a space when there is one near the end (Chinese has none)."""
    room = limit - 1
    if display_width(text) <= room:
        out = text
    else:
        # The longest start that fits, by halving: about a dozen measurements, where measuring the
        # start again after every character took time in the square of its length (36 s for a title
        # of 100,000 combining marks, each adding no width). Width only grows as characters are added.
        fits, over = 0, len(text)
        while over - fits > 1:
            middle = (fits + over) // 2
            if display_width(text[:middle]) <= room:
                fits = middle
            else:
                over = middle
        out = text[:fits]
    space = out.rfind(" ")
    if space > len(out) * 0.6:
        out = out[:space]
    return out.rstrip(" ,;:-–—·|") + "…"


def _status_reason(status: int, phrase: str) -> str:
    reason = f"HTTP {status} {phrase}".rstrip()
    if status in (401, 402, 403):
        reason += " (a paywall or a login?)"
    return reason

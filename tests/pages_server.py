"""A local web server with the pages `mailer cards` meets: every kind of metadata, and every way to fail."""

from __future__ import annotations

import functools
import gzip
import ssl
import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

OG = """<!doctype html><html><head><meta charset="utf-8"><title>Fallback title</title>
<meta property="og:title" content="Sharded Training &amp; Half the Memory">
<meta property="og:description" content="Lightning 1.1 reveals   Sharded Training —
 train models on multiple GPUs.">
<meta property="og:site_name" content="PyTorch Lightning">
<meta property="og:image" content="/cover.png"></head><body><p>Body</p></body></html>"""
TWITTER = """<!doctype html><html><head><meta charset="utf-8">
<meta name="twitter:card" content="summary">
<meta name="twitter:title" content="Depix: recovers passwords">
<meta name="twitter:description" content="A tool for recovering passwords from pixelized screenshots.">
</head><body>x</body></html>"""
JSON_LD = """<!doctype html><html><head><meta charset="utf-8">
<script type="application/ld+json">{"@context": "https://schema.org", "@type": "NewsArticle",
 "headline": "The Zodiac 340 cipher is cracked", "description": "After 51 years, a team decoded it.",
 "publisher": {"@type": "Organization", "name": "Cipher News"}}</script></head><body>x</body></html>"""
NO_METADATA = "<!doctype html><html><head></head><body><p>Nothing to say.</p></body></html>"
CJK = """<!doctype html><html lang="zh"><head><meta charset="utf-8">
<meta property="og:title" content="自然语言处理周报：GPT-3 获奖">
<meta property="og:description" content="本周 NLP 新闻 😎，包括 NeurIPS 的最佳论文。">
<meta property="og:site_name" content="机器之心"></head><body>x</body></html>"""
GBK_META = ('<!doctype html><html><head><meta charset="gbk"><title>数据集：CrossNER</title>'
            '<meta name="description" content="跨领域命名实体识别"></head><body>x</body></html>').encode("gbk")
SHIFT_JIS_HEADER = ('<!doctype html><html><head><title>日本語の記事</title>'
                    '<meta name="description" content="自然言語処理のニュース"></head><body>x</body></html>'
                    ).encode("shift_jis")
XHTML = ('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml"><head>'
         '<title>An XHTML page</title><meta name="description" content="Served as XHTML."/></head><body/></html>')
PIPED_TITLE = ("<html><head><title>Python 3.13 released | Python Insider</title></head>"
               "<body><h1>Subscribe to our newsletter</h1></body></html>")
CAREFUL_TEXT = """<html><head><meta charset="utf-8">
<meta property="og:title" content="می&#8204;خواهم: family 👨&#8205;👩&#8205;👧 and AT&amp;amp;T">
<meta property="og:description" content="What does &amp;nbsp; mean? a=1&amp;copy=2">
<meta property="og:site_name" content="arXiv"></head><body>x</body></html>"""
# Metadata in JSON-LD that escapes half of a surrogate pair: JSON allows the escape, no text holds it.
HALF_SURROGATE = """<html><head><meta charset="utf-8"><title>Half a pair</title>
<script type="application/ld+json">{"description": "Bad \\ud800 text", "publisher": "Site \\udfff"}</script>
</head><body>x</body></html>"""
# A good title beside a JSON-LD block nested 100,000 deep: the parser's RecursionError lost the whole page.
DEEP_JSON_LD = ("<html><head><meta charset='utf-8'><title>Deep but fine</title><script type='application/ld+json'>"
                + "[" * 100_000 + "]" * 100_000 + "</script></head><body>x</body></html>")
# A title of one letter carrying 100,000 combining accents, then words: measuring its width again
# after every character took 36 s.
STACKED_TITLE = ("<html><head><meta charset='utf-8'><title>Z" + "\u0301" * 100_000 + " " + "then words " * 20
                 + "</title></head><body>x</body></html>")
BIG_HEAD = b'<!doctype html><html><head><meta property="og:title" content="A very big page"></head><body>'
BIG_SIZE = 20 * 1024 * 1024
BOMB_SIZE = 64 * 1024 * 1024  # what the compressed pages below inflate to


@functools.cache
def bombs() -> tuple[bytes, bytes]:
    """A page that inflates to 64 MB from 64 KB of gzip, and that gzip compressed again (to about 1 KB)."""
    once = gzip.compress(BIG_HEAD + b" " * (BOMB_SIZE - len(BIG_HEAD)), compresslevel=9, mtime=0)
    return once, gzip.compress(once, compresslevel=9, mtime=0)


def raw_deflate(data: bytes) -> bytes:
    squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return squeeze.compress(data) + squeeze.flush()


class PagesServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, latency: float = 0.0, address: tuple[str, int] = ("127.0.0.1", 0), tls: bool = False):
        super().__init__(address, _Handler)
        self.latency = latency
        self.hits: Counter[str] = Counter()
        self.host_headers: list[str] = []
        self.big_bytes_sent = 0
        self.scheme = "http"
        if tls:  # the certificate names 127.0.0.1 only, and nothing trusts it unless told to
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(Path(__file__).parent / "selfsigned-127.0.0.1.pem")
            self.socket = context.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.server_address[0]}:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path


class _Handler(BaseHTTPRequestHandler):
    server: PagesServer

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = self.path
        self.server.hits[path] += 1
        self.server.host_headers.append(self.headers.get("Host", ""))
        if self.server.latency:
            time.sleep(self.server.latency)
        routes = {
            "/og": (200, "text/html; charset=utf-8", OG.encode()),
            "/twitter": (200, "text/html", TWITTER.encode()),
            "/json-ld": (200, "text/html", JSON_LD.encode()),
            "/no-metadata": (200, "text/html", NO_METADATA.encode()),
            "/cjk": (200, "text/html; charset=utf-8", CJK.encode()),
            "/gbk": (200, "text/html", GBK_META),
            "/shift-jis": (200, "text/html; charset=Shift_JIS", SHIFT_JIS_HEADER),
            "/paper.pdf": (200, "application/pdf", b"%PDF-1.4\n"),
            "/paywall": (403, "text/html", b"<html><title>Subscribe</title></html>"),
            "/xhtml": (200, "application/xhtml+xml", XHTML.encode()),
            "/comment-only": (200, "text/html", b"<!-- nothing here -->"),
            "/piped-title": (200, "text/html; charset=utf-8", PIPED_TITLE.encode()),
            "/careful-text": (200, "text/html; charset=utf-8", CAREFUL_TEXT.encode()),
            "/half-surrogate": (200, "text/html; charset=utf-8", HALF_SURROGATE.encode()),
            "/deep-json-ld": (200, "text/html; charset=utf-8", DEEP_JSON_LD.encode()),
            "/stacked-title": (200, "text/html; charset=utf-8", STACKED_TITLE.encode()),
        }
        if path == "/escaped-reason":  # the server's own status phrase, with a terminal escape in it
            self.send_response(404, "\x1b]0;owned\x07Not Found")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path in routes:
            status, content_type, body = routes[path]
            self._send(status, content_type, body)
        elif path.startswith("/page/"):  # any number of distinct pages, for the benchmark
            name = path.rsplit("/", 1)[1]
            self._send(200, "text/html", OG.replace("Sharded Training", f"Page {name}").encode())
        elif path == "/redirect/1":
            self._redirect(301, "/redirect/2")
        elif path == "/redirect/2":
            self._redirect(302, self.server.url("/og"))
        elif path.startswith("/to?"):  # a redirect to wherever the query says
            self._redirect(302, unquote(path.split("?", 1)[1]))
        elif path == "/loop":
            self._redirect(302, "/loop")
        elif path == "/to-localhost":
            self._redirect(302, f"http://localhost:{self.server.server_address[1]}/og")
        elif path.startswith("/slow-hop/"):  # five redirects, 0.4 s each
            hop = int(path.rsplit("/", 1)[1])
            time.sleep(0.4)
            self._redirect(302, f"/slow-hop/{hop + 1}" if hop < 4 else "/og")
        elif path == "/slow":
            time.sleep(3)
            self._send(200, "text/html", OG.encode())
        elif path == "/big":
            self._big()
        elif path in ("/gzip", "/deflate", "/raw-deflate", "/gzip-bomb", "/gzip-gzip", "/brotli"):
            encoded = {"/gzip": ("gzip", lambda: gzip.compress(OG.encode())),
                       "/deflate": ("deflate", lambda: zlib.compress(OG.encode())),
                       "/raw-deflate": ("deflate", lambda: raw_deflate(OG.encode())),
                       "/gzip-bomb": ("gzip", lambda: bombs()[0]),
                       "/gzip-gzip": ("gzip, gzip", lambda: bombs()[1]),
                       "/brotli": ("br", lambda: b"\x1b\x00\x00")}
            coding, body = encoded[path]
            self._send(200, "text/html; charset=utf-8", body(), {"Content-Encoding": coding})
        else:
            self._send(404, "text/html", b"<html><title>Not found</title></html>")

    def _send(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, status: int, location: str) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _big(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(BIG_SIZE))
        self.end_headers()
        self.wfile.write(BIG_HEAD)
        sent = len(BIG_HEAD)
        chunk = b"<p>" + b"x" * 65530 + b"</p>\n"
        try:
            while sent < BIG_SIZE:
                piece = chunk[: BIG_SIZE - sent]
                self.wfile.write(piece)
                sent += len(piece)
        except OSError:
            pass  # the client hung up, as it should
        finally:
            self.server.big_bytes_sent = sent


def start_pages_server(latency: float = 0.0, address: tuple[str, int] = ("127.0.0.1", 0),
                       tls: bool = False) -> PagesServer:
    server = PagesServer(latency, address, tls)
    # A short poll interval: shutdown() waits up to one interval for serve_forever to notice, in every teardown.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="pages-server",
                     daemon=True).start()
    return server

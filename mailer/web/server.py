"""The production server under `mailer serve`: Hypercorn, with the limits that keep the service up.

Why Hypercorn and not uvicorn (measured side by side on this service, docs/performance.md): uvicorn
has no timeout for reading a request's headers or body, and its only guard, `limit_concurrency`,
counts open connections, so 100 idle sockets made every other reader's click a 503. Hypercorn closes
a connection that has not finished its request's headers within `keep_alive_timeout` of opening (or
of its last answer), bounds the headers' size, times out each read, and refuses nobody: a burst
waits for its turn. What no server gives, a deadline for the whole body, the app keeps itself
(mailer.web.service.BODY_SECONDS).
"""

from __future__ import annotations

import asyncio
import resource
import socket
from typing import Any

from mailer.errors import ServeError
from mailer.web.listening import listen_error

# A client has this long, from connecting (or from its last answer), to send a request's headers
# whole; idle keep-alive connections are closed after it too. A mail client's one-click POST or a
# browser's click sends them in one packet.
HEADER_SECONDS = 10
READ_SECONDS = 10  # no single read of the socket waits longer
MAX_HEADER_BYTES = 16 * 1024  # a request's line and headers; the longest link we send is under 1 KB
BACKLOG = 4096  # connections the kernel holds for us while the service is busy: a burst waits, not refused
# Each open connection is a file descriptor: idle and slow ones are closed after HEADER_SECONDS, but
# a burst can hold thousands at once, past the usual soft limit of 1,024.
WANTED_OPEN_FILES = 65536


def listen(host: str, port: int) -> socket.socket:
    """A bound TCP socket for `host:port`, made with its protocol (ServeError when it cannot be had).

    asyncio turns off Nagle's algorithm (TCP_NODELAY) only on sockets that say they are TCP: one made
    with `socket.socket(family, type)` alone held every answer's body back ~40 ms for the client's
    delayed ACK, since the headers and the body leave in two writes.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             proto=socket.IPPROTO_TCP)[0]
    except OSError as err:
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror or err}\n"
                         "    hint: --host must be an address of this machine, e.g. 127.0.0.1") from None
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError as err:
        listening.close()
        raise listen_error(err, host, port, command="serve") from None
    return listening


def raise_open_files_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Raise this process's soft limit of open files towards `wanted` (never past the hard limit); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (OSError, ValueError):
            return soft
    return soft


def limit_headers(app: Any) -> Any:
    """`app`, with a request whose line and headers add up past MAX_HEADER_BYTES answered 431 before it is used.

    Hypercorn bounds only the headers it is still waiting for (h11_max_incomplete_size): 60 KB sent in
    one packet, or 6,000 short headers, arrived whole and were handed on.
    """
    refusal = b"Request headers too large.\n"

    async def limited(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (
                len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
                + sum(len(name) + len(value) + 4 for name, value in scope["headers"]) > MAX_HEADER_BYTES):
            await send({"type": "http.response.start", "status": 431, "headers": [
                (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(refusal)).encode()),
                (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": refusal})
            return
        await app(scope, receive, send)

    return limited


class _NoHTTP2:
    """Stands in for Hypercorn's HTTP/2 protocol, which a cleartext client can switch to (`PRI * HTTP/2.0`, or
    `Upgrade: h2c`): the connection is closed at once. Its idle timer restarts on every frame, so a client
    sending a PING every few seconds, or streams it never ends, kept a connection for as long as it liked;
    nothing here needs HTTP/2 (mail clients and SendGrid post HTTP/1.1, a proxy in front speaks either)."""

    def __init__(self, *args: Any) -> None:
        self._send = args[-1]  # Hypercorn gives the protocol its send as the last argument

    async def initiate(self, *args: Any) -> None:
        from hypercorn.events import Closed

        await self._send(Closed())

    async def handle(self, event: Any) -> None:
        from hypercorn.events import Closed

        await self._send(Closed())


def _http1_only() -> None:
    import hypercorn.protocol

    if not hasattr(hypercorn.protocol, "H2Protocol"):  # a Hypercorn that moved it: refuse to run unguarded
        raise RuntimeError("this Hypercorn has no hypercorn.protocol.H2Protocol to turn off: check its version")
    hypercorn.protocol.H2Protocol = _NoHTTP2  # type: ignore[attr-defined,misc]


def run(app: Any, listening: socket.socket) -> None:
    """Serve `app` on the bound socket until SIGINT or SIGTERM (Hypercorn finishes the requests in flight)."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    _http1_only()
    app = limit_headers(app)

    settings = Config()
    settings.bind = [f"fd://{listening.fileno()}"]
    settings.keep_alive_timeout = HEADER_SECONDS
    settings.read_timeout = READ_SECONDS
    settings.h11_max_incomplete_size = MAX_HEADER_BYTES
    settings.backlog = BACKLOG
    settings.include_server_header = False  # nothing to tell a scanner which server and version to try
    settings.accesslog = None  # every URL here carries a reader's token
    settings.loglevel = "WARNING"
    settings.graceful_timeout = 5
    asyncio.run(serve(app, settings))

"""An httpx transport that connects to the addresses the guard checked, and to nothing else.

httpx looks a URL's host up itself as it connects. `mailer cards` has looked it up already
(linkcheck.AddressGuard) and judged every address it got; a second lookup could answer differently
(DNS rebinding: a public address for the check, 127.0.0.1 for the connection). So each request gets a
transport whose httpcore network backend connects to the checked addresses of that one host and
port, and refuses any other. The URL keeps its host name, so the Host header, TLS's SNI and the
certificate check are the name's, as httpx does them.

Chosen over putting the address in the URL (with httpcore's `sni_hostname` extension and a Host
header): httpcore pools connections by the URL's origin, so two names on one address could share a
TLS connection whose certificate was checked for the other name; and a redirect's relative Location,
response.url and the error messages would all speak of the address instead of the name.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class PinnedTransport(httpx.HTTPTransport):
    """One request's transport: connects to `host`:`port` at the checked `addresses` only, never reused."""

    def __init__(self, *, host: str, port: int, addresses: tuple[str, ...], ssl_context: ssl.SSLContext):
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx.HTTPTransport takes no network backend: its pool (made above, no connection open yet)
        # is replaced by one that has ours. Were httpx to rename it, fail here rather than connect
        # unpinned.
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("httpx.HTTPTransport has no connection pool to pin: check the httpx version")
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, max_connections=1,
                                             max_keepalive_connections=0,
                                             network_backend=_PinnedBackend(host, port, addresses))


class _PinnedBackend(httpcore.NetworkBackend):
    def __init__(self, host: str, port: int, addresses: tuple[str, ...]):
        self._origin = (host.lower(), port)
        self._addresses = addresses
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        if (host.lower(), port) != self._origin or not self._addresses:
            # Fail closed: whatever asks for another host (a proxy, a change in httpx) is not connected.
            raise httpcore.ConnectError(f"{host}:{port} was not checked, so it is not connected to")
        error: httpcore.ConnectError | None = None
        for address in self._addresses:  # numeric addresses: socket.create_connection looks nothing up
            try:
                return self._backend.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as err:  # refused or unreachable: the name's next address
                error = err
        assert error is not None
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("not connected to a local socket")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

"""Listening on a port, for `mailer preview` and `mailer serve` alike: which addresses are this machine's,
and what to tell the editor when the port cannot be had."""

from __future__ import annotations

import errno

from mailer.errors import ServeError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def listen_error(err: OSError, host: str, port: int, *, command: str) -> ServeError:
    """The ServeError (exit 1) for a failed bind, with the fix for its cause."""
    where = f"cannot listen on {host}:{port}"
    if err.errno == errno.EADDRINUSE:
        return ServeError(f"{where}: port {port} on {host} is already in use\n"
                          f"    hint: another `mailer {command}` may be running: stop it, or choose another port "
                          f"with --port {port + 1 if port < 65535 else 8001}"
                          + (" (--port 0 picks a free one)" if command == "preview" else ""))
    if err.errno == errno.EACCES:
        return ServeError(f"{where}: not allowed to listen on port {port}\n"
                          "    hint: ports below 1024 need administrator rights: use --port 8000")
    return ServeError(f"{where}: {err.strerror or err}\n"
                      "    hint: --host must be an address of this machine, e.g. 127.0.0.1")

"""A real SMTP server on loopback (aiosmtpd) that records what it receives and misbehaves on request."""

from __future__ import annotations

import asyncio
import errno
import socket
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller


class Recorder:
    """An aiosmtpd handler that keeps every message and can refuse or hang up on chosen ones."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes, list[str]]] = []
        self.sessions: set[int] = set()
        self.refuse: set[str] = set()
        self.refusal = "550 5.1.1 no such user"  # what a refused recipient is told
        self.refuse_at_data: set[str] = set()  # said 250 to RCPT, refused later (aiosmtpd: DATA gets 503)
        self.hang_up_after: int | None = None
        self.relay_denied = False  # refuse every recipient, the way a misconfigured relay does
        # Hold each DATA until this many are in progress at once: the test waits for the senders to overlap, not
        # for a slow answer to make them overlap by chance. Given up after 4 s (the test then fails on most_at_once).
        self.expect_at_once: int | None = None
        self.most_at_once = 0  # the most DATA commands in progress at the same time
        self._at_once = 0
        self._reached = asyncio.Event()  # bound to aiosmtpd's loop on its first wait (Python 3.10+)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.relay_denied:
            return "550 5.7.1 Relaying denied"
        if address in self.refuse:
            return self.refusal
        if address in self.refuse_at_data:
            return "250 OK"  # not added to the envelope: the DATA command is then refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.sessions.add(id(session))
        self._at_once += 1
        self.most_at_once = max(self.most_at_once, self._at_once)
        if self.expect_at_once is not None and self._at_once >= self.expect_at_once:
            self._reached.set()  # reached once: from now on nobody is held
        if self.expect_at_once is not None and not self._reached.is_set():
            try:
                await asyncio.wait_for(self._reached.wait(), 4)
            except TimeoutError:
                self._reached.set()  # never reached: let everyone go, the test fails on most_at_once
        self._at_once -= 1
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or
                              envelope.content, list(envelope.mail_options)))
        if self.hang_up_after is not None and len(self.messages) == self.hang_up_after:
            server.transport.close()  # the connection drops; the client must reconnect
        return "250 Message accepted"


def free_port() -> int:
    """A free port on loopback: aiosmtpd's readiness check cannot use port 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_smtp_server(handler: Recorder, **options: Any) -> Controller:
    """Start aiosmtpd on 127.0.0.1 with SMTPUTF8; `controller.port` is where it listens, `stop()` ends it.

    free_port's port is free when asked, not always when bound: on a machine running other tests, another
    process may take it in between (EADDRINUSE). Then another port is tried, unless the caller chose one."""
    tries = 1 if "port" in options else 5
    for tried in range(1, tries + 1):
        controller = Controller(handler, **{"hostname": "127.0.0.1", "port": free_port(), "enable_SMTPUTF8": True,
                                            "server_hostname": "localhost", **options})
        try:
            controller.start()
        except OSError as err:
            if err.errno != errno.EADDRINUSE or tried == tries:
                raise
            continue
        return controller
    raise AssertionError("unreachable")


def parse(data: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(data)

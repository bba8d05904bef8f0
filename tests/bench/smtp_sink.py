"""An SMTP server that accepts everything and keeps nothing, for `make bench` (run as its own process).

Usage: python smtp_sink.py PORT — prints "ready" when it listens; stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return "250 OK"


def main() -> None:
    controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]), enable_SMTPUTF8=True)
    controller.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print("ready", flush=True)
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()

"""SMTP servers that accept everything and keep nothing, for `make bench` (each run as its own process).

Usage: python smtp_sink.py PORT [--bare] — prints "ready" when it listens; stops on SIGTERM.

The default is aiosmtpd, the server the tests use. It parses every line of a message in Python,
about 2.4 ms of CPU a message here, three times what mailer spends writing and sending one, on the
same two cores: against it the bench measures aiosmtpd. `--bare` answers each command and reads a
message to its closing dot in one call, as an MTA's fast path does, so that what is measured is
the sender.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return "250 OK"


def main() -> None:
    if "--bare" in sys.argv[2:]:
        asyncio.run(bare(int(sys.argv[1])))
        return
    controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]), enable_SMTPUTF8=True)
    controller.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print("ready", flush=True)
    stopped.wait()
    controller.stop()


async def bare(port: int) -> None:
    server = await asyncio.start_server(_bare_session, "127.0.0.1", port, limit=64 * 1024 * 1024)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    print("ready", flush=True)
    async with server:
        await stopped.wait()


async def _bare_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 sink ESMTP\r\n")
    try:
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 33554432\r\n")
            elif verb == b"DATA":
                writer.write(b"354 end with <CRLF>.<CRLF>\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                writer.write(b"250 OK\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:  # MAIL, RCPT, RSET, NOOP
                writer.write(b"250 OK\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


if __name__ == "__main__":
    main()

"""Load on a running `mailer serve` over raw sockets on loopback: idle clients, slow clients, bursts.

Shared by the service's tests (does everyone get an answer?) and `make bench` (how fast?). Every
loop here is bounded in count and time, and talks only to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

HOST = "127.0.0.1"


@dataclass
class Answer:
    status: int  # 0: no answer (the connection was closed or timed out first)
    seconds: float
    body: bytes = b""


def one_click_request(target: str, *, keep_alive: bool = False) -> bytes:
    body = b"List-Unsubscribe=One-Click"
    return (f"POST {target} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
            ).encode() + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 answer with a Content-Length (what the service always sends): its status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")),
                  0)
    return status, await reader.readexactly(length)


async def ask(port: int, request: bytes, *, timeout: float = 30.0) -> Answer:
    """Send one request on a new connection; the answer and how long it took (status 0: none came)."""
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(request)
            status, body = await read_answer(reader)
            return Answer(status, time.perf_counter() - started, body)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError, IndexError):
        return Answer(0, time.perf_counter() - started)
    finally:
        if writer is not None:
            writer.close()


async def burst(port: int, requests: Iterable[bytes], *, timeout: float = 30.0) -> list[Answer]:
    """Every request at once, each on its own connection."""
    return list(await asyncio.gather(*(ask(port, request, timeout=timeout) for request in requests)))


Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]
SLOW_BODY = (f"POST {{target}} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
             "Content-Length: 1000\r\n\r\nList-Unsubscribe=")
SLOW_HEADERS = f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n"


async def open_clients(port: int, count: int, first: bytes = b"") -> list[Client]:
    """`count` connections that send `first` and then nothing more: idle ones (a port scanner, a client
    that went away) when it is empty, slow ones when it is the start of a request (see trickle)."""
    clients = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(HOST, port)
        if first:
            writer.write(first)
        clients.append((reader, writer))
    return clients


async def trickle(clients: list[Client], *, every: float, until: float) -> None:
    """Send one more byte on each open connection every `every` seconds until the monotonic time `until`."""
    while time.monotonic() < until:
        for _, writer in clients:
            if not writer.is_closing():
                try:
                    writer.write(b"x")
                    await writer.drain()
                except OSError:
                    writer.close()
        await asyncio.sleep(min(every, max(0.0, until - time.monotonic())))


async def closed_by_server(clients: list[Client]) -> int:
    """How many of the connections the server has closed (whatever it said before closing them)."""
    async def closed(reader: asyncio.StreamReader) -> bool:
        try:
            async with asyncio.timeout(0.5):
                while await reader.read(65536):
                    pass
            return True
        except TimeoutError:  # (before OSError: it is one)
            return False
        except OSError:  # reset: closed too
            return True

    return sum(await asyncio.gather(*(closed(reader) for reader, _ in clients)))


def close_all(clients: list[Client]) -> None:
    for _, writer in clients:
        writer.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0

"""`mailer serve` under idle, slow and bursting clients, as a running process over loopback sockets.

How fast it answers is `make bench`'s business (tests/bench/run_bench.py); here: is everyone answered,
is nothing lost, and are the clients that never finish cut off.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from mailer.deliver.suppressions import SuppressionList
from mailer.web import server
from mailer.web.service import BODY_SECONDS
from tests.web.serve_load import (
    SLOW_BODY,
    SLOW_HEADERS,
    burst,
    close_all,
    closed_by_server,
    one_click_request,
    open_clients,
    trickle,
)
from tests.web.test_service import serving, token_for


def reader(n: int) -> str:
    return f"reader{n}@example.com"


def one_clicks(readers: range) -> list[bytes]:
    return [one_click_request(f"/unsubscribe?token={token_for(reader(n))}") for n in readers]


def test_idle_and_slow_clients_are_cut_off_and_never_keep_a_reader_waiting(workspace: Path, state_dir: Path) -> None:
    # 100 idle sockets used to make every other request a 503 for as long as they stayed open, and
    # 99 bodies trickling in at a byte every 5 s the same: nothing timed them out.
    server.raise_open_files_limit()  # 1,300 sockets on this side too
    with serving(workspace, state_dir) as service:
        async def attack() -> None:
            idle = await open_clients(service.port, 1000)
            slow_bodies = await open_clients(service.port, 200,
                                             SLOW_BODY.format(target="/unsubscribe?token=x").encode())
            slow_headers = await open_clients(service.port, 100, SLOW_HEADERS.encode())
            until = time.monotonic() + max(server.HEADER_SECONDS, BODY_SECONDS) + 4
            trickling = asyncio.create_task(trickle(slow_bodies + slow_headers, every=5, until=until))
            try:
                await asyncio.sleep(1)
                answers = await burst(service.port, one_clicks(range(50)), timeout=20)
                assert [answer.status for answer in answers] == [200] * 50
                await trickling
                assert await closed_by_server(idle) == 1000
                assert await closed_by_server(slow_bodies) == 200
                assert await closed_by_server(slow_headers) == 100
            finally:
                trickling.cancel()
                close_all(idle + slow_bodies + slow_headers)

        asyncio.run(attack())
        assert service.request("GET", "/healthz")[0] == 200
    with SuppressionList.open(state_dir) as suppressions:
        assert len(suppressions.find(reader(n) for n in range(50))) == 50


def test_a_burst_of_500_one_clicks_is_answered_and_every_one_recorded(workspace: Path, state_dir: Path) -> None:
    # 101 at once used to get 503 each: every one an unsubscribe lost.
    server.raise_open_files_limit()
    with serving(workspace, state_dir) as service:
        answers = asyncio.run(burst(service.port, one_clicks(range(500)), timeout=60))
        assert sorted({answer.status for answer in answers}) == [200]
        assert all(b"You are unsubscribed from The NLP Cypher" in answer.body for answer in answers)
    with SuppressionList.open(state_dir) as suppressions:
        found = suppressions.find(reader(n) for n in range(500))
    assert len(found) == 500
    assert {reasons[0].describe() for reasons in found.values()} == {"unsubscribed (one-click, from the mail client)"}


def test_answers_leave_at_once_on_accepted_connections() -> None:
    # A listening socket made without its protocol kept Nagle's algorithm on every accepted
    # connection (asyncio turns it off only for sockets that say they are TCP): each answer's body
    # waited ~40 ms for the client's delayed ACK.
    listening = server.listen("127.0.0.1", 0)

    async def accepted_flag() -> int:
        flags: asyncio.Queue[int] = asyncio.Queue()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            await flags.put(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        async with await asyncio.start_server(accept, sock=listening):
            _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
            flag = await asyncio.wait_for(flags.get(), 10)
            writer.close()
            return flag

    assert asyncio.run(accepted_flag()) != 0

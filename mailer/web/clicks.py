"""Readers' clicks reach the suppression list through one writer that commits them together.

A burst of one-click requests (a mail provider's unsubscribe button pressed by many readers after
one issue) used to open the database once per request, each waiting for the others' write lock
and fsync. Here each request waits for its own click to be committed (it is answered only then, so
a 200 means "recorded"), while the clicks that arrive during a commit go together in the next one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailer.audience.store import CONFIRMED, UNSUBSCRIBED, SubscriberStore
from mailer.deliver.suppressions import UNSUBSCRIBE, Click, SuppressionList


class ClickWriter:
    """Group commit for the suppression list at `path`, within one event loop."""

    def __init__(self, path: Path):
        self.path = path
        self._waiting: list[tuple[Click, asyncio.Future[bool]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def record(self, click: Click) -> bool:
        """Commit `click`; whether its address is suppressed after it (StateError when the store fails)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        done.add_done_callback(_retrieved)  # a failure nobody is left to hear of is not logged as lost
        self._waiting.append((click, done))
        if self._writing is None or self._writing.done():
            self._writing = loop.create_task(self._write())
        # shield: a reader who hangs up mid-commit still has their click recorded, and the batch's
        # other readers are not cancelled with them.
        return await asyncio.shield(done)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await asyncio.to_thread(self._commit, [click for click, _ in batch])
            except Exception as err:  # a full disk, a damaged file: every waiting request answers 500
                for _, done in batch:
                    if not done.done():
                        done.set_exception(err)
            else:
                for (_, done), result in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(result)

    def _commit(self, clicks: list[Click]) -> list[bool]:
        with SuppressionList(self.path) as suppressions:
            results = suppressions.record_clicks(clicks)
        # The subscriber store (where there is one) follows: an unsubscribe there, a resubscribe undoing it.
        readers = SubscriberStore.open_existing(self.path.parent)
        if readers is not None:
            with readers:
                readers.set_status(
                    (click.email, UNSUBSCRIBED, f"unsubscribed ({click.how})") if click.action == UNSUBSCRIBE
                    else (click.email, CONFIRMED, "resubscribed on the unsubscribe page")
                    for click, still in zip(clicks, results, strict=True)
                    if click.action == UNSUBSCRIBE or not still)  # another list still holding them: not back
        return results


def _retrieved(done: asyncio.Future[bool]) -> None:
    if not done.cancelled():
        done.exception()

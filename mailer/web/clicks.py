"""Group commit: what readers send in bursts (clicks, sign-ups) reaches its store through one writer.

A burst of one-click requests (a mail provider's unsubscribe button pressed by many readers after
one issue) used to open the database once per request, each waiting for the others' write lock
and fsync. Here each request waits for its own click to be committed (it is answered only then, so
a 200 means "recorded"), while the clicks that arrive during a commit go together in the next one.
Sign-ups (mailer.web.signup.SignupWriter) are written the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from mailer.audience.store import CONFIRMED, UNSUBSCRIBED, SubscriberStore
from mailer.deliver.suppressions import UNSUBSCRIBE, Click, SuppressionList
from mailer.statedb import StateError

Item, Result = TypeVar("Item"), TypeVar("Result")
log = logging.getLogger("mailer.serve")


class GroupCommit(Generic[Item, Result]):
    """Items committed together, within one event loop: each `record` waits for its own item's commit, and
    the items that arrive during a commit go in the next. Subclasses say how a batch is committed (`_commit`,
    run off the loop by `_run`)."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def record(self, item: Item) -> Result:
        """Commit `item`; its result (the commit's exception, such as a StateError, when the store fails)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Result] = loop.create_future()
        done.add_done_callback(_retrieved)  # a failure nobody is left to hear of is not logged as lost
        self._waiting.append((item, done))
        if self._writing is None or self._writing.done():
            self._writing = loop.create_task(self._write())
        # shield: a reader who hangs up mid-commit still has their item recorded, and the batch's
        # other readers are not cancelled with them.
        return await asyncio.shield(done)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._run(self._commit, [item for item, _ in batch])
            except Exception as err:  # a full disk, a damaged file: every waiting request answers 500
                for _, done in batch:
                    if not done.done():
                        done.set_exception(err)
            else:
                for (_, done), result in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(result)

    async def _run(self, commit: Callable[[list[Item]], list[Result]], items: list[Item]) -> list[Result]:
        return await asyncio.to_thread(commit, items)

    def _commit(self, items: list[Item]) -> list[Result]:
        raise NotImplementedError


class ClickWriter(GroupCommit[Click, bool]):
    """Readers' clicks into the suppression list at `path`; a click's result: whether its address is
    suppressed after it."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def _commit(self, clicks: list[Click]) -> list[bool]:
        with SuppressionList(self.path) as suppressions:
            results = suppressions.record_clicks(clicks)
        # The subscriber store (where there is one) follows: an unsubscribe there, a resubscribe undoing it.
        # The suppression list is what a send obeys, and it has the click now: a damaged store is told in
        # one line and the reader is answered (a send brings the store in line once it is mended).
        try:
            readers = SubscriberStore.open_existing(self.path.parent)
            if readers is not None:
                with readers:
                    readers.set_status(
                        (click.email, UNSUBSCRIBED, f"unsubscribed ({click.how})") if click.action == UNSUBSCRIBE
                        else (click.email, CONFIRMED, "resubscribed on the unsubscribe page")
                        for click, still in zip(clicks, results, strict=True)
                        if click.action == UNSUBSCRIBE or not still)  # another list still holding them: not back
        except StateError as err:
            log.error("the subscriber store could not follow %d click(s): %s", len(clicks), str(err).splitlines()[0])
        return results


def _retrieved(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()

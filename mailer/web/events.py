"""The Event Webhook's batches into the ledger: one writer thread, one ledger connection kept open.

A batch is answered once its events are committed (a 200 tells SendGrid not to retry it). Copying the
write-ahead log into the ledger file (the checkpoint) is left to a thread and connection of its own, while
the writer commits the next batches, and done once the log has grown (CHECKPOINT_EVENTS):
at a ledger of 3,000,000 events a batch of 1,000 dirties ~2,200 pages, and the copy at every commit was
a third of each request's time. A second after the last batch the log is copied whatever its size, so
that between SendGrid's bursts the ledger file alone holds every event (a copy of it, or the file moved
aside as its damage hints say, misses none).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailer.deliver.events import CHECKPOINT_EVENTS, Batch, EventRecorder, checkpoint_ledger
from mailer.statedb import StateError

log = logging.getLogger("mailer.serve")
QUIET_SECONDS = 1.0  # after the last batch: the log is copied into the ledger file, however little it holds


class EventWriter:
    """Webhook batches committed one at a time on a thread of their own (the connection is that thread's); the
    log copied into the ledger on another thread and connection, while the next batches are committed."""

    def __init__(self, state_dir: Path):
        self._state_dir = state_dir
        self._recorder = EventRecorder(state_dir, defer_checkpoints=True)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook")
        self._copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-checkpoint")
        self._unsaved = 0  # events committed since the last copy was asked for
        self._quiet: asyncio.TimerHandle | None = None  # the copy a second after the last batch

    async def record(self, batch: Batch) -> tuple[int, int]:
        """Commit a batch (see EventRecorder.record): how many events and suppressions were new."""
        loop = asyncio.get_running_loop()
        new_events, new_suppressions = await loop.run_in_executor(self._thread, self._recorder.record, batch)
        self._unsaved += new_events
        if self._unsaved >= CHECKPOINT_EVENTS:
            self._copy(loop)
        if self._quiet is not None:
            self._quiet.cancel()
        self._quiet = loop.call_later(QUIET_SECONDS, self._copy, loop)
        return new_events, new_suppressions

    def _copy(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._unsaved:
            self._unsaved = 0
            loop.run_in_executor(self._copier, self._checkpoint)  # not awaited: no batch waits for it

    def _checkpoint(self) -> None:
        try:
            checkpoint_ledger(self._state_dir)
        except StateError as err:  # the next batch's commit tells SendGrid, if the file is at fault
            log.error("the ledger's write-ahead log could not be copied into it: %s", str(err).splitlines()[0])

    def close(self) -> None:
        """Wait for the batches and the copy under way, copy the rest, and close the connection (at shutdown)."""
        if self._quiet is not None:
            self._quiet.cancel()
        self._copier.submit(self._checkpoint).result()
        self._copier.shutdown()
        self._thread.submit(self._recorder.close).result()
        self._thread.shutdown()

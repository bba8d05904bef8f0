"""Preparing requests in worker processes, for a dry run: the per-recipient work (the signed
unsubscribe token, the personalization, the JSON) is pure Python, and a dry run of a million has
nothing else to wait for. (A live send prepares in its sending threads: its pace is the ledger's.)

Workers are started fresh (spawn), not forked: a forked worker starts with the parent's whole memory,
and so do the figures of whoever counts the memory of every process. Each is given the job once, when
it starts (a BatchJob); then batches of subscribers as plain tuples (Subscriber.as_row), through submit.
A worker never sends anything.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mailer import children
from mailer.audience.subscribers import Subscriber
from mailer.config import Config
from mailer.deliver.backends import Backend
from mailer.deliver.message import Personaliser

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue

PROCESSES = 2  # measured on 2 cores, where more only take turns with the parent (larger machines: not measured)


@dataclass
class PrepareJob:
    """What every batch of one send shares: prepare(batch) is the backend's request for it."""

    rendered: RenderedIssue
    config: Config
    backend: Backend
    payload_options: Any
    secret: bytes
    _personal: Personaliser | None = field(default=None, init=False, repr=False)

    def prepare(self, batch: list[Subscriber], batch_id: str) -> Any:
        if self._personal is None:
            self._personal = Personaliser(self.rendered, self.config, self.secret)
        return self.backend.prepare_batch(self.rendered, self.config, batch, self._personal, batch_id=batch_id,
                                          options=self.payload_options)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_personal": None}  # made again in the worker


def can_spawn() -> bool:
    """Whether worker processes are used: on POSIX systems (tested there); elsewhere the calling process
    does the work."""
    return hasattr(os, "fork")


class BatchJob(Protocol):
    """What worker processes are given: run(first, batches) does the work of batches numbered from `first`."""

    def run(self, first: int, batches: list[list[tuple]]) -> Any: ...


def start_pool(job: BatchJob) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=PROCESSES, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(job,))


def submit(pool: ProcessPoolExecutor, first: int, batches: list[list[tuple]]) -> Future[Any]:
    """The job's run(first, batches) in a worker, the subscribers given as their rows (Subscriber.as_row:
    plain tuples pickle fast)."""
    with children.starting():  # a submit may start a process
        return pool.submit(_run, first, batches)


def _run(first: int, batches: list[list[tuple]]) -> Any:
    assert _JOB is not None
    return _JOB.run(first, batches)


_JOB: BatchJob | None = None  # in a worker process: the job, set once


def _start_worker(job: BatchJob) -> None:
    global _JOB
    _JOB = job
    # Ctrl-C is the parent's to handle (it stops handing out batches); a worker just finishes its batch.
    children.started()

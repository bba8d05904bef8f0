"""Worker processes that leave Ctrl-C to the process that started them.

A spawned process imports for a fraction of a second before its initializer runs; a Ctrl-C in that
time would print a KeyboardInterrupt traceback from it. So SIGINT is blocked while a process is
started (`starting`): the child inherits the block, ignores SIGINT once it is set up (`started`), and
a Ctrl-C meanwhile stays pending in the parent, which gets it the moment the block ends.
"""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def starting() -> Iterator[None]:
    """Around whatever may start a process (ProcessPoolExecutor.submit starts one while none is idle)."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: no such block, and no such traceback either
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# The cyclic collector's thresholds for mailer's processes (the CLI's and its workers'): a row or a recipient
# makes objects with no cycles by the dozen; collecting every 700 of them (the default) ran 350 times for
# 100,000 rows and cost a fifth of preparing a recipient.
COLLECTOR_THRESHOLDS = (50_000, 20, 20)


def started() -> None:
    """In the child's initializer: Ctrl-C is the parent's to handle; the child finishes what it was given.
    And the collector as in the CLI (COLLECTOR_THRESHOLDS)."""
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

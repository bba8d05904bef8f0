"""Worker processes leave Ctrl-C to the process that started them, even while they are starting up."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from mailer import children


def _slow_start(ready: str, sent: str) -> None:
    """An initializer as slow as a worker's imports; Ctrl-C reaches the child in the middle of it.

    It lasts until the test has sent the Ctrl-C (the file `sent`), not a second: a test slower than that would
    send it once the child was set up, and an unguarded child would have nothing to die of."""
    open(ready, "w").close()  # noqa: SIM115 - a signal to the test: the child runs
    deadline = time.monotonic() + 20
    while not os.path.exists(sent) and time.monotonic() < deadline:
        time.sleep(0.01)
    children.started()


def _pid() -> int:
    return os.getpid()


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
@pytest.mark.parametrize("guarded", [True, False])
def test_a_ctrl_c_while_a_worker_starts_is_not_the_workers(tmp_path, guarded: bool) -> None:
    ready, sent = tmp_path / "ready", tmp_path / "sent"
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_slow_start,
                               initargs=(str(ready), str(sent)))
    try:
        if guarded:
            with children.starting():
                future = pool.submit(_pid)
        else:
            future = pool.submit(_pid)
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        (child,) = pool._processes  # the one worker, still in its initializer
        os.kill(child, signal.SIGINT)  # what a Ctrl-C on the terminal sends the whole process group
        sent.touch()
        if guarded:
            assert future.result(timeout=20) == child  # it went on, and did its work
        else:  # the same Ctrl-C kills an unguarded worker (with a traceback): the guard is what saves it
            with pytest.raises(Exception, match="terminated abruptly|KeyboardInterrupt"):
                future.result(timeout=20)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

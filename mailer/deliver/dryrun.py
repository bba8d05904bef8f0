"""The dry run: everything but the send (the plan against the ledger, .eml samples, a manifest, the
request bodies), written to an outbox.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import TYPE_CHECKING

from mailer.audience.subscribers import Subscriber, SubscriberList
from mailer.config import Config
from mailer.deliver import workers
from mailer.deliver.backends import Backend
from mailer.deliver.ledger import state_failure
from mailer.deliver.message import Personaliser, build_mime, unsubscribe_secret
from mailer.deliver.options import SendOptions, existing_ledger, ledger_key, request_options
from mailer.deliver.plan import (
    PlanTotals,
    apply_suppressed,
    plan_rows_in_chunks,
    planned_states,
    rebatched,
    waiting_for_events,
)
from mailer.deliver.progress import SendReport
from mailer.deliver.suppressions import Screener
from mailer.deliver.workers import PrepareJob
from mailer.environment import Environment
from mailer.files import open_private, private_folder, write_private

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue


EML_SAMPLES = 5


def dry_run(
    rendered: RenderedIssue,
    config: Config,
    subscribers: SubscriberList,
    backend: Backend,
    options: SendOptions,
    *,
    outbox_root: Path | None = None,
    environment: Environment = Environment(),
) -> SendReport:
    """Do everything but send: plan against the ledger, write .eml samples, a manifest, request bodies.

    The list is planned and written a chunk at a time, never held whole: a dry run of a million
    subscribers takes about the memory of one of a hundred thousand.
    """
    secret = unsubscribe_secret(environment.unsubscribe_secret, live=False)
    key = ledger_key(rendered, options)
    report = SendReport(intended=len(subscribers.subscribers), skipped=list(subscribers.skipped), live=False)
    outbox = (outbox_root or config.state_dir / "outbox") / rendered.issue.slug
    with existing_ledger(config, key) as ledger:
        try:
            waiting = waiting_for_events(ledger, key) if ledger is not None else {}
            states_of = planned_states(ledger, key, report)
            screener = Screener(config.state_dir)
            report.suppressions_pulled_at = screener.pulled_at
            planned = PlanTotals()
            to_send = plan_rows_in_chunks(subscribers.subscribers, states_of, screener, options, waiting, planned)
            if outbox.exists():
                shutil.rmtree(outbox)
            private_folder(outbox / "eml", within=config.state_dir)  # the outbox holds addresses: 0700, files 0600
            report.outbox_dir = outbox
            if backend.name == "sendgrid":
                private_folder(outbox / "sendgrid")
            job = _DryRunJob(rendered, config, backend, request_options(options, "dry-run"), secret, outbox=outbox)
            first_rows: list[tuple] = []
            sends = outbox / ".manifest-sends.jsonl"
            batches = _first_kept(rebatched(to_send, backend.max_batch), first_rows, 10)
            with open_private(sends, "w", encoding="utf-8", newline="\n") as manifest:
                for lines, size in _run_dry_batches(job, batches):
                    manifest.write(lines)
                    report.request_bytes.append(size)
            # The planning is done: its totals are known, and the manifest lists the skipped first.
            report.accepted_before = planned.accepted_before
            apply_suppressed(planned, report)
            report.skipped.extend(planned.held_back)
            report.held_back = len(planned.held_back)
            with open_private(outbox / "manifest.jsonl", "w", encoding="utf-8", newline="\n") as manifest:
                for skipped in report.skipped:
                    manifest.write(json.dumps({"email": skipped.email, "line": skipped.line, "action": "skip",
                                               "reason": skipped.reason}, ensure_ascii=False) + "\n")
                with sends.open(encoding="utf-8") as lines:
                    shutil.copyfileobj(lines, manifest)
            sends.unlink()
            first = [Subscriber(*row) for row in first_rows]
            personal = Personaliser(rendered, config, secret)
            for number, subscriber in enumerate(first[:EML_SAMPLES], start=1):
                message = build_mime(rendered, config, subscriber, personal(subscriber))
                write_private(outbox / "eml" / f"{number:02d}-{safe_filename(subscriber.email)}.eml", bytes(message))
        except OSError as err:  # a full disk or a read-only state folder: said plainly, nothing was sent
            raise state_failure(outbox, err) from None
    report.batches = len(report.request_bytes)
    report.not_sent = planned.due
    report.first_recipients = [s.email for s in first[:10]]
    return report


def _first_kept(batches: Iterable[list[tuple]], first: list[tuple], count: int) -> Iterator[list[tuple]]:
    """`batches` of rows as they are, keeping the first `count` rows in `first` on the way."""
    for batch in batches:
        if len(first) < count:
            first.extend(batch[:count - len(first)])
        yield batch


@dataclass
class _DryRunJob(PrepareJob):
    outbox: Path = Path()

    def run(self, first: int, batches: list[list[tuple]]) -> list[tuple[str, int]]:
        """Manifest lines and request size of each batch (its subscribers as rows), numbered from `first`;
        writes the request bodies."""
        results = []
        for number, rows in enumerate(batches, start=first):
            batch = [Subscriber(*row) for row in rows]  # one batch's objects at a time
            # One JSON object per line, written by hand: json.dumps per recipient was a third of the run.
            lines = "".join(f'{{"email": {_json_string(s.email)}, "line": {s.line}, '
                            f'"action": "send", "batch": {number}}}\n' for s in batch)
            size = 0
            if self.backend.name == "sendgrid":
                data = self.prepare(batch, f"dry-run:{number:05d}").body.encode("ascii")  # what a live send posts
                write_private(self.outbox / "sendgrid" / f"request-{number:05d}.json", data)
                size = len(data)
            results.append((lines, size))
        return results


# Batches handed to a worker at a time: 5 rather than 10 kept the dry run of 100,000 at 189 MiB instead of
# 199 (each worker and the parent hold fewer rows and results at once), no slower.
_CHUNK = 5
_AHEAD = 4  # chunks handed out before the first one is back: what the parent holds of the results


def _run_dry_batches(job: _DryRunJob, batches: Iterator[list[tuple]]) -> Iterator[tuple[str, int]]:
    """Each batch's manifest lines and request size, in order (the batches of subscribers as their rows).

    Four SendGrid batches or more are shared between worker processes (mailer/deliver/workers.py),
    each handed a few batches at a time, as the planning produces them. Other backends have only
    manifest lines to make here (their .eml samples are written afterwards): no processes.
    """
    ahead = list(itertools.islice(batches, 4))
    if len(ahead) < 4 or job.backend.name != "sendgrid" or not workers.can_spawn():
        for number, batch in enumerate(itertools.chain(ahead, batches), start=1):  # as the planning makes them
            yield from job.run(number, [batch])
        return
    with workers.start_pool(job) as pool:
        pending: deque[Future[list[tuple[str, int]]]] = deque()
        stream = itertools.chain(ahead, batches)
        number = 1
        try:
            while True:
                # A small chunk first, so that both workers start at once; then _CHUNK batches at a time.
                chunk = list(itertools.islice(stream, 1 if number <= 2 else _CHUNK))
                if not chunk:
                    break
                pending.append(workers.submit(pool, number, chunk))
                number += len(chunk)
                if len(pending) >= _AHEAD:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: the chunks not started never are
            raise


def _json_string(text: str) -> str:
    return encode_basestring(text)  # the C-accelerated string encoder json.dumps uses (keeps UTF-8 as is)


def safe_filename(text: str) -> str:
    return "".join(c if c.isalnum() or c in "@._-+" else "_" for c in text)

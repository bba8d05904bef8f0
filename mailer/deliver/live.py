"""The live send: batch, rate, retry, resume. Reports progress through a callback; never prints.

The guarantee: nobody receives an issue twice and nobody is silently skipped, whatever happens
mid-send (crash, Ctrl-C, provider outage). See mailer/deliver/ledger.py for the rule that makes it so.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailer.addresses import address_key
from mailer.audience.subscribers import Skipped, Subscriber, SubscriberList
from mailer.config import Config
from mailer.deliver import ledger as ledger_states
from mailer.deliver.approval import require_approval
from mailer.deliver.backends import Backend, DeliveryError
from mailer.deliver.batch import Outcome, deliver
from mailer.deliver.complaints import refuse_on_complaints
from mailer.deliver.ledger import Ledger, StateError, issue_lock, ledger_path
from mailer.deliver.message import unsubscribe_secret
from mailer.deliver.options import SendOptions, ledger_key, open_ledger, request_options
from mailer.deliver.plan import (
    PLAN_CHUNK,
    Plan,
    PlanTotals,
    apply_suppressed,
    due_subscribers,
    in_batches,
    plan_in_chunks,
    rebatched,
    waiting_for_events,
)
from mailer.deliver.progress import Interrupted, Progress, SendError, SendReport
from mailer.deliver.rate import RateLimiter
from mailer.deliver.suppressions import Screener
from mailer.deliver.workers import PrepareJob
from mailer.environment import Environment
from mailer.errors import MailerError

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue


# An unsubscribe must be honoured within 48 hours (Gmail's and Yahoo's bulk-sender rules); a list
# pulled within a day is fresh enough to send with when SendGrid cannot be asked right now.
PULL_MAX_AGE = timedelta(days=1)


def _pull_suppressions(config: Config, backend: Backend, options: SendOptions, progress: Progress,
                       interrupt: threading.Event | None, environment: Environment) -> None:
    """Before a live send through SendGrid, pull its suppression lists: who left since the last send is skipped."""
    if backend.name != "sendgrid" or options.sandbox:
        return
    from mailer.deliver.suppressions import PullError, SuppressionList

    with SuppressionList.open(config.state_dir) as stored:
        try:
            pulled = stored.pull(environment, retry=options.retry, stop=interrupt)
        except PullError as err:
            last = stored.last_pull()
            reason = str(err).splitlines()[0]
            if last is not None and datetime.now(UTC) - datetime.fromisoformat(last.pulled_at) < PULL_MAX_AGE:
                progress.on_note(f"the suppression list could not be pulled ({reason}); sending with the one "
                                 f"pulled at {last.pulled_at}")
                return
            when = f"was pulled at {last.pulled_at}" if last else "was never pulled"
            raise SendError(f"the suppression list could not be pulled ({reason}) and {when}: sending now could "
                            "mail readers who unsubscribed, bounced or complained. Nothing was sent.\n"
                            "    hint: `mailer suppressions pull` says what is wrong (the key needs the Suppressions "
                            "read scope); send again once it works") from None
    progress.on_note(f"suppression list pulled from SendGrid: {pulled.addresses} address(es) to skip")


def send_issue(
    rendered: RenderedIssue,
    config: Config,
    subscribers: SubscriberList,
    backend: Backend,
    options: SendOptions,
    *,
    progress: Progress = Progress(),
    schedule: Callable[[], str] | None = None,
    interrupt: threading.Event | None = None,
    command: str | None = None,
    environment: Environment = Environment(),
) -> SendReport:
    """Deliver to every planned subscriber, recording each one's fate in the ledger.

    Setting `interrupt` (the CLI does on Ctrl-C) stops the send cleanly: no new batch starts,
    the requests in flight are waited for and recorded, then Interrupted is raised. `command` (the
    command line as given) is recorded for `mailer status` to show as the one that resumes. `environment`:
    the unsubscribe secret, and what the pull before the send needs (SendGrid's key, a remote serve).
    """
    # SendGrid's links need no secret of ours
    secret = unsubscribe_secret(environment.unsubscribe_secret, live=not config.managed_unsubscribe)
    key = ledger_key(rendered, options)
    report = SendReport(intended=len(subscribers.subscribers), skipped=list(subscribers.skipped), live=True)
    state_dir = config.state_dir
    with issue_lock(state_dir, key), open_ledger(config, key, claim=True) as ledger:  # a full disk shows now
        try:
            require_approval(ledger.last_test_hash(key), rendered, options)
            if command is not None:
                ledger.record_command(key, command, str(Path.cwd()))
            recovered = ledger.recover_interrupted(key)
            if recovered:
                progress.on_note(f"{recovered} recipient(s) of an interrupted run are now uncertain: "
                                 "they may have received the issue and will not be sent again")
            refuse_on_complaints(ledger, key, options)
            if not options.sandbox:  # what the report can know of opens and clicks (mailer report)
                ledger.record_tracking(key, backend.name, clicks=config.tracking.clicks, opens=config.tracking.opens)
            _pull_suppressions(config, backend, options, progress, interrupt, environment)
            report.resolved = ledger.resolve_from_events(key)
            if report.resolved:
                progress.on_note(f"{report.resolved} uncertain recipient(s) had the issue: the provider reported "
                                 "events for them; they are now accepted")
            screener = Screener(config.state_dir)
            report.suppressions_pulled_at = screener.pulled_at
            waiting = waiting_for_events(ledger, key)

            # A first send of the issue (every new issue's) has no row to look up (Ledger.start_due).
            first_send = ledger.start_due(key)

            def states_of(keys: list[str]) -> dict[str, str]:
                return {} if first_send else ledger.states_of(key, keys)

            # The list is planned a chunk at a time, never held whole (the totals come from this), then
            # read on again for those due as the batches go out. A reader's row is written as their
            # batch leaves (Ledger.mark_sending), and the rows of those a stopped send did not reach
            # as it stops (_BatchRun.run): queueing everyone first held the first request back by a
            # second for 100,000 readers.
            planned = PlanTotals()
            # The tally at the end: the states of the intended recipients not sent to now cannot change
            # during the run (the issue is locked), so they are counted here; those sent to are counted
            # in the ledger afterwards, from the list of those due (Ledger.start_due).
            unchanged: Counter[str] = Counter()

            # Which of each chunk's subscribers are due, for the pass that sends (due_subscribers): None when all are.
            due_flags: list[bytes | None] = []

            def record(chunk: list[Subscriber], part: Plan, states: dict[str, str]) -> None:
                if part.to_send:
                    ledger.add_due(s.key for s in part.to_send)
                if len(part.to_send) == len(chunk):
                    due_flags.append(None)
                else:
                    due = {s.key for s in part.to_send}
                    due_flags.append(bytes(s.key in due for s in chunk))
                if not states:
                    return
                # `states` holds exactly this chunk's readers with a row; those sent to now or suppressed
                # (the only ones without a row among them) are counted afterwards, or not at all.
                leave = {address_key(skipped.email) for skipped in part.suppressed}
                leave.update(s.key for s in part.to_send)
                counted = Counter(states.values())
                for gone in leave:
                    if (state := states.get(gone)) is not None:
                        counted[state] -= 1
                unchanged.update(counted)

            for _ in plan_in_chunks(subscribers.subscribers, states_of, screener, options, waiting, planned,
                                    on_chunk=record):
                pass
            report.accepted_before = planned.accepted_before
            apply_suppressed(planned, report)
            report.skipped.extend(planned.held_back)
            report.held_back = len(planned.held_back)
            run_id = uuid.uuid4().hex[:12]
            if options.send_at is not None and planned.due:
                if schedule is None:
                    raise SendError(f"the {backend.name} backend cannot schedule a send\n"
                                    "    hint: --at needs --backend sendgrid")
                try:
                    run_id = schedule()
                except DeliveryError as err:
                    # A backend's error, not a MailerError: left alone it would escape the CLI as a traceback.
                    raise SendError(f"SendGrid gave no batch id for the scheduled send: {err}\n"
                                    "    nothing was sent; the same command resumes once this is fixed") from None
                ledger.record_schedule(key, run_id, options.send_at)
            payload_options = request_options(options, run_id)
            progress.on_start(planned.due)
            if planned.due:
                # Exactly those the planning above found due: it is not done again (a reader the
                # suppression list let go of meanwhile waits for the next run).
                batches = _BatchRun(rendered, config, backend, ledger, key, options, payload_options, secret, report,
                                    progress, interrupt or threading.Event())
                batches.run(lambda: due_subscribers(subscribers.subscribers, due_flags), run_id)
            rows = Counter(ledger.due_states(key))
            tally = unchanged + rows
            report.accepted_now = tally[ledger_states.ACCEPTED] - report.accepted_before
            report.failed = tally[ledger_states.FAILED]
            report.uncertain = tally[ledger_states.UNCERTAIN]
            # Those due without a row: a stopped send that could not write them down (see _queue_unreached).
            report.not_sent = (tally[ledger_states.QUEUED] + tally[ledger_states.CANCELLED]
                               + planned.due - sum(rows.values()))
            if report.complete and subscribers.key is not None:
                # Nobody on this list is left: the same command again answers from this (finished_send).
                suppressed = [address_key(skipped.email) for skipped in planned.suppressed]
                with contextlib.suppress(StateError):  # not recorded: the next run plans the list, as before
                    ledger.record_finished(key, subscribers.key, {
                        "intended": report.intended, "suppressed": suppressed,
                        "skipped": [(skipped.line, skipped.email, skipped.reason) for skipped in report.skipped]})
        finally:
            if command is not None:
                with contextlib.suppress(StateError):  # unrecorded: status reads the rows left as they are
                    ledger.record_run_end(key)
    return report


def finished_send(config: Config, key: str, list_keys: tuple[str, ...], backend: Callable[[], Backend],
                  options: SendOptions, *, progress: Progress = Progress(),
                  environment: Environment = Environment()) -> SendReport | None:
    """The report of a live send of the list keyed `list_keys` (listcache.list_keys) when an earlier send
    left nobody on it to send to and the ledger still says so (Ledger.finished); None when the list must
    be planned (send_issue). The list is neither read nor planned: a rerun of a finished send of
    100,000 took a second for that.

    The readers the suppression list held back then are screened again, after the pull a send makes
    (`backend` is made for it only then): one whose suppression was lifted is due, and send_issue
    sends to them.
    """
    from mailer.deliver.suppressions import last_pulled_at

    if not ledger_path(config.state_dir).exists():
        return None
    with issue_lock(config.state_dir, key):
        with open_ledger(config, key, claim=False) as ledger:
            found = ledger.finished(key, list_keys)
        if found is None:
            return None
        recorded, at = found
        try:
            suppressed = [str(key) for key in recorded["suppressed"]]
            report = SendReport(intended=int(recorded["intended"]), accepted_before=int(recorded["intended"]),
                                skipped=[Skipped(*row) for row in recorded["skipped"]], suppressed=len(suppressed),
                                live=True, finished_at=at)
        except (KeyError, TypeError, ValueError):  # a record of another shape: plan the list
            return None
        if suppressed:
            _pull_suppressions(config, backend(), options, progress, None, environment)
            screener = Screener(config.state_dir)
            if len(screener.reasons(suppressed)) != len(suppressed):
                return None
        report.suppressions_pulled_at = last_pulled_at(config.state_dir)
    return report


class _BatchRun:
    """One run's batches to those due: sent from a pool of threads, each recorded in the ledger as its answer
    comes, until all are sent or the send stops (Ctrl-C, a fatal error, too many failed batches in a row).

    What its steps share is kept here: the requests in flight, the failed batches in a row, a fatal error,
    and whether the send was interrupted.
    """

    def __init__(self, rendered: RenderedIssue, config: Config, backend: Backend, ledger: Ledger, key: str,
                 options: SendOptions, payload_options: Any, secret: bytes, report: SendReport, progress: Progress,
                 interrupt: threading.Event) -> None:
        self.backend, self.ledger, self.key, self.options = backend, ledger, key, options
        self.report, self.progress, self.interrupt = report, progress, interrupt
        self.stop = threading.Event()  # tells workers waiting to retry to give up; set on interrupt too
        self.limiter = RateLimiter(options.rate, sleep=lambda seconds: interrupt.wait(seconds))
        # SMTP: one connection unless asked for more, as many servers limit a client's connections.
        self.senders = options.workers or (1 if backend.max_batch == 1 else 4)
        self.in_flight: dict[Future[Outcome], tuple[str, list[Subscriber]]] = {}
        self.consecutive_failures = 0
        self.fatal: str | None = None
        self.interrupted = False
        # Prepared in the sending threads, not in worker processes as a dry run's are: measured, the
        # processes made a send of 100,000 no faster (the processes' start and the pickling cost more
        # than the GIL they free) and took 80 MiB more.
        self.job = PrepareJob(rendered, config, backend, payload_options, secret)
        self.pool = ThreadPoolExecutor(max_workers=self.senders, thread_name_prefix="mailer-send")

    def run(self, due: Callable[[], Iterable[list[Subscriber]]], run_id: str) -> None:
        """Send to those due, batch by batch, recording each; `due` makes a pass over them (one to send,
        and another for the readers not reached when the send stops: see _queue_unreached)."""
        in_flight, stop = self.in_flight, self.stop
        reached = 0  # readers of the batches submitted, in the order of `due`: those not reached come after
        try:
            for number, batch in enumerate(rebatched(due(), self.backend.max_batch), start=1):
                if self.stopping():
                    break
                self.limiter.acquire(len(batch))
                if self.stopping():  # asked again: a Ctrl-C cuts the wait for --rate short
                    break
                self.submit(batch, f"{run_id}:{number:05d}")
                reached += len(batch)
                while len(in_flight) >= self.senders:
                    self.settle_some()
            while in_flight:
                self.settle_some()
        except KeyboardInterrupt:
            # Let the requests already on the wire finish and record them; waiting retries stop at once.
            # A Ctrl-C while they are waited for stops the recording (the threads still end with their
            # requests): rows left `sending` the next run turns into `uncertain`, and the readers not
            # reached are left without a row (it plans them again).
            self.interrupted = True
            stop.set()
            while in_flight:
                self.settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
        except StateError as err:
            # The ledger cannot be written (a full disk): no new request; say exactly what may have left.
            stop.set()
            if self.report.batches == 0:
                raise  # before the first request: nothing was sent, and the StateError says so
            raise SendError(_unrecorded_message(err, list(in_flight.items()), self.backend.name)) from None
        except MailerError:
            # The list could not be read on (its file changed while it was sent from): no new request;
            # the ones on their way are waited for and recorded, then the error is told.
            stop.set()
            while in_flight:
                self.settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
            raise
        finally:
            self.pool.shutdown(wait=True)
            self.backend.close()
        # Out of the `try`: a Ctrl-C while the readers not reached are queued stops it at once, leaving
        # them without a row, which the next run plans again.
        recorded = (not (stop.is_set() and self.report.batches)
                    or _queue_unreached(self.ledger, self.key, due(), reached, self.progress))
        if self.interrupted:
            raise Interrupted(("interrupted: every recipient's state is recorded" if recorded else
                               "interrupted: every recipient reached is recorded") +
                              "; run the same command again to resume (nobody already accepted is sent again)")
        if self.fatal:
            raise SendError(f"{self.fatal}\n    nothing more was sent; the same command resumes once this is fixed")

    def prepare_and_deliver(self, batch: list[Subscriber], batch_id: str) -> Outcome:
        # In the sending thread: while one batch waits for the provider, the next is being prepared,
        # so the send goes at the network's pace instead of one request at a time behind the preparation.
        try:
            payload = self.job.prepare(batch, batch_id)
        except Exception as err:  # nothing left for this batch: back to queued, and the send stops
            return Outcome(ledger_states.QUEUED, error=f"could not prepare the request: {err}", fatal=True)
        return deliver(self.backend, payload, self.options.retry, self.stop)

    def submit(self, batch: list[Subscriber], batch_id: str) -> None:
        # Committed before the request can leave.
        self.ledger.mark_sending(self.key, [(s.key, s.email) for s in batch], batch_id)
        self.report.batches += 1
        self.in_flight[self.pool.submit(self.prepare_and_deliver, batch, batch_id)] = (batch_id, batch)

    def settle_refused(self, future: Future[Outcome], batch_id: str, batch: list[Subscriber],
                       outcome: Outcome) -> None:
        # The provider refused the whole batch, nothing sent, for the sake of a few recipients: fail
        # those, and send the others again in a batch of their own (or leave them queued when stopping).
        refused = [s for i, s in enumerate(batch) if i in outcome.refused]
        others = [s for i, s in enumerate(batch) if i not in outcome.refused]
        # Both recorded before the future is forgotten: a second Ctrl-C from here on leaves the others
        # queued (nothing was sent to them), never `sending`, which would hold them back as uncertain.
        self.ledger.mark(self.key, [s.key for s in refused], ledger_states.FAILED, error=outcome.error)
        self.ledger.mark(self.key, [s.key for s in others], ledger_states.QUEUED)
        del self.in_flight[future]
        self.progress.on_batch(len(refused), ledger_states.FAILED)
        if not self.stop.is_set() and not self.interrupt.is_set():
            self.limiter.acquire(len(others))  # a new request: --rate counts it like any other
        if self.stop.is_set() or self.interrupt.is_set():  # stopping: no new request starts
            self.progress.on_batch(len(others), ledger_states.QUEUED)
        else:
            self.submit(others, f"{batch_id}r")

    def settle(self, done: set[Future[Outcome]]) -> None:
        for future in done:
            batch_id, batch = self.in_flight[future]
            keys = [s.key for s in batch]
            outcome = future.result()
            # A refusal about some recipients only (positions SendGrid named outside the batch are not
            # believed): theirs, not the send's, so it never counts towards stopping the send.
            about_recipients = bool(outcome.refused) and max(outcome.refused) < len(batch)
            if about_recipients and len(outcome.refused) < len(batch):
                self.settle_refused(future, batch_id, batch, outcome)
                continue
            self.ledger.mark(self.key, keys, outcome.state, message_id=outcome.message_id, error=outcome.error)
            del self.in_flight[future]  # only once recorded: a KeyboardInterrupt mid-write settles it again
            self.progress.on_batch(len(keys), outcome.state)
            if outcome.state == ledger_states.ACCEPTED:
                self.consecutive_failures = 0
            elif outcome.fatal:
                self.fatal = outcome.error
                self.stop.set()
            elif outcome.state != ledger_states.QUEUED and not about_recipients:
                self.consecutive_failures += 1
                if self.consecutive_failures >= self.options.max_consecutive_failures and not self.stop.is_set():
                    self.report.stopped = (f"stopped after {self.consecutive_failures} failed batches in a row; "
                                           f"the last error: {outcome.error}")
                    self.stop.set()

    def stopping(self) -> bool:
        """Whether no new request may start: the send was stopped, or `interrupt` is set (told here, in
        this thread: never from the signal handler)."""
        if self.interrupt.is_set() and not self.interrupted:
            self.interrupted = True
            self.stop.set()
            self.progress.on_stopping()
        return self.stop.is_set()

    def settle_some(self) -> None:
        self.settle(wait(self.in_flight, timeout=0.2, return_when=FIRST_COMPLETED).done)
        self.stopping()


def _queue_unreached(ledger: Ledger, key: str, due: Iterable[list[Subscriber]], reached: int,
                     progress: Progress) -> bool:
    """Give the readers a send stopped after its first request did not reach their `queued` row (a
    send writes a reader's row as it reaches them; one stopped before its first request leaves the
    ledger as it was), so that `mailer status` counts them as not sent. `due` is a new pass over all
    those due (the send's own may have died with a Ctrl-C inside it), of which the first `reached`
    were submitted; a row already written is left as it is. False, and a note, when the ledger
    cannot be written: nothing is lost, the next run plans everyone without a row."""
    unreached = itertools.islice(itertools.chain.from_iterable(due), reached, None)
    try:
        for part in in_batches(unreached, PLAN_CHUNK):
            ledger.queue(key, ((s.key, s.email) for s in part))
    except StateError as err:
        progress.on_note(f"the readers this send did not reach could not be recorded as not sent yet "
                         f"({str(err).splitlines()[0]}): `mailer status` leaves them out; the same command "
                         "sends to them")
        return False
    return True


def _unrecorded_message(err: StateError, in_flight: list[tuple[Future[Outcome], tuple[str, list[Subscriber]]]],
                        backend: str) -> str:
    """What left and what did not, once the requests that were on their way when the ledger failed are done."""
    accepted = refused = 0
    for future, (_, batch) in in_flight:
        outcome = future.result()  # the request finishes (or times out) whatever the ledger does
        if outcome.state == ledger_states.ACCEPTED:
            accepted += len(batch)
        else:
            refused += len(batch)
    reason = str(err).splitlines()[0]
    if not in_flight:
        left = "no request was on its way: everyone recorded accepted got it, nobody else did"
    else:
        answer = f"{backend} accepted {accepted}" + (f" and refused {refused}" if refused else "")
        left = (f"{accepted + refused} recipient(s) were in requests already on their way ({answer}), and the "
                "ledger could not record it. They stay `sending`: once the ledger can be written, the next run "
                "calls them uncertain and sends them nothing (--resend-uncertain would)")
    return (f"the send stopped: {reason}\n    no new request was made; {left}\n"
            "    hint: free some space or fix the state folder's permissions, then run the same command to "
            "send to the rest")

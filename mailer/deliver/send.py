"""Sending an issue: plan, batch, rate, retry, resume. Reports progress through a callback; never prints.

The guarantee: nobody receives an issue twice and nobody is silently skipped, whatever happens
mid-send (crash, Ctrl-C, provider outage). See mailer/deliver/ledger.py for the rule that makes it so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import shlex
import shutil
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mailer.addresses import address_key
from mailer.audience.subscribers import Skipped, SpooledSubscribers, Subscriber, SubscriberList, row_chunks
from mailer.config import Config
from mailer.deliver import ledger as ledger_states
from mailer.deliver import workers
from mailer.deliver.backends import (
    Accepted,
    Backend,
    DeliveryError,
    FatalError,
    Recipient,
    RejectedError,
    TransientError,
    UncertainError,
)
from mailer.deliver.ledger import Ledger, StateError, issue_lock, ledger_path, state_failure
from mailer.deliver.message import Personaliser, build_mime, list_id, personalise, unsubscribe_secret
from mailer.deliver.retry import RetryPolicy
from mailer.deliver.suppressions import Screener, screen_recipients
from mailer.deliver.workers import PrepareJob
from mailer.environment import Environment
from mailer.errors import ExitStatus, MailerError
from mailer.files import open_private, private_folder, write_private
from mailer.schema import display_path

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue

SCHEDULE_HORIZON = timedelta(hours=72)  # SendGrid refuses send_at further ahead
# SendGrid cancels a batch no later than this before its send_at; after that it goes out as scheduled.
# https://www.twilio.com/docs/sendgrid/api-reference/cancel-scheduled-sends
CANCEL_DEADLINE = timedelta(minutes=10)
EML_SAMPLES = 5


class SendError(MailerError):
    """A send could not start or had to stop; nothing was sent that the ledger does not know of."""

    exit_code = ExitStatus.DELIVERY_FAILED


class NotApprovedError(MailerError):
    exit_code = ExitStatus.INPUT_ERROR


class Interrupted(MailerError):
    exit_code = ExitStatus.INTERRUPTED


class SuppressedRecipientError(MailerError):
    """A live test send to an address on the local suppression list."""

    exit_code = ExitStatus.INPUT_ERROR


@dataclass(frozen=True)
class SendOptions:
    live: bool = False
    workers: int | None = None  # requests at once; None: 4 batches (SendGrid), 1 connection (SMTP)
    rate: float | None = None  # messages per second
    resend_uncertain: bool = False
    retry_failed: bool = False
    max_consecutive_failures: int = 5
    retry: RetryPolicy = RetryPolicy()
    send_at: datetime | None = None
    sandbox: bool = False
    force: bool = False  # skip the approval gate
    despite_complaints: bool = False  # send although the last issue's complaint rate is over the limit


@dataclass
class SendReport:
    intended: int = 0
    accepted_before: int = 0
    accepted_now: int = 0
    failed: int = 0
    uncertain: int = 0
    not_sent: int = 0  # still queued: the run stopped before reaching them
    skipped: list[Skipped] = field(default_factory=list)
    suppressed: int = 0  # of the skipped: on the local suppression list (not counted as intended)
    suppressions_pulled_at: str | None = None  # None: no suppression list has been pulled
    resolved: int = 0  # uncertain recipients the provider's events showed had the issue: now accepted
    held_back: int = 0  # of the skipped: intended, but uncertain or failed earlier and not retried now
    stopped: str | None = None
    batches: int = 0
    outbox_dir: Path | None = None
    request_bytes: list[int] = field(default_factory=list)
    first_recipients: list[str] = field(default_factory=list)  # a dry run's first few, to show
    live: bool = False
    finished_at: str | None = None  # answered from the ledger (finished_send): when the send that finished ended

    @property
    def accepted(self) -> int:
        return self.accepted_before + self.accepted_now

    @property
    def complete(self) -> bool:
        return self.accepted == self.intended

    @property
    def not_intended(self) -> int:
        """Skipped and not owed the issue (invalid, unsubscribed, suppressed…): each recipient in one row."""
        return len(self.skipped) - self.held_back


@dataclass(frozen=True)
class Progress:
    """Events for the CLI's progress bar or log lines."""

    on_start: Callable[[int], None] = lambda total: None
    on_batch: Callable[[int, str], None] = lambda count, outcome: None
    on_note: Callable[[str], None] = lambda message: None
    # The send saw `interrupt` set: no new request starts, the ones in flight are finished and recorded.
    on_stopping: Callable[[], None] = lambda: None


def content_hash(rendered: RenderedIssue) -> str:
    digest = hashlib.sha256()
    for part in (rendered.subject, rendered.html, rendered.text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def ledger_key(rendered: RenderedIssue, options: SendOptions) -> str:
    return issue_key(rendered.issue.slug, options)


def issue_key(slug: str, options: SendOptions) -> str:
    """The issue's key in the ledger (`slug`: mailer.files.issue_slug)."""
    # Sandbox sends deliver nothing: they must never count as deliveries of the real issue.
    return slug + ("@sandbox" if options.sandbox else "")


def open_ledger(config: Config, key: str, *, claim: bool) -> Ledger:
    """The state folder's ledger, refused if another newsletter sends this issue key (see check_newsletter).

    `claim` (a live send or test send) records this newsletter as the issue's sender, after checking
    the ledger can be written: a full disk shows before a request leaves.
    """
    ledger = Ledger(ledger_path(config.state_dir))
    try:
        if claim:
            ledger.check_writable()
        ledger.check_newsletter(key, list_id(config), claim=claim)
    except BaseException:
        ledger.close()
        raise
    return ledger


def check_send_at(send_at: datetime, *, now: datetime | None = None) -> None:
    current = now or datetime.now(UTC)
    if send_at.tzinfo is None:
        raise SendError("--at needs a time zone, e.g. \"2026-11-29 08:00 Europe/Berlin\"")
    if send_at <= current:
        raise SendError(f"--at {send_at.isoformat()} is in the past\n    hint: give a time in the future")
    if send_at - current > SCHEDULE_HORIZON:
        raise SendError(f"--at {send_at.isoformat()} is more than 72 hours ahead, which SendGrid refuses\n"
                        "    hint: schedule it closer to the date, or run the send then")


# -- planning ----------------------------------------------------------------------------------


@dataclass
class Plan:
    to_send: list[Subscriber]
    accepted_before: int
    held_back: list[Skipped]  # uncertain or failed recipients not retried in this run
    suppressed: list[Skipped] = field(default_factory=list)  # on the suppression list: not intended at all


@dataclass
class PlanTotals:
    """What planning a list a chunk at a time adds up (_plan_in_chunks): the subscribers to send to are
    counted, not kept; the skipped are kept, as in a Plan."""

    accepted_before: int = 0
    held_back: list[Skipped] = field(default_factory=list)
    suppressed: list[Skipped] = field(default_factory=list)
    due: int = 0


def plan(subscribers: list[Subscriber], states: dict[str, str], options: SendOptions,
         suppressed: Mapping[str, str] | None = None, waiting: Mapping[str, str] | None = None) -> Plan:
    """Who is sent to now, and who is not and why.

    `suppressed` maps a subscriber's key to why it is on the suppression list: such a subscriber
    is skipped whatever the ledger says, unless an earlier run already delivered to them.
    `waiting` maps an uncertain subscriber to when their grace period for a provider event ends:
    until then even --resend-uncertain holds them back.
    """
    reasons = suppressed or {}
    if not states and not reasons:  # nobody of these was planned before or is suppressed: a first send
        return Plan(list(subscribers), 0, [])
    to_send, held_back, accepted_before = [], [], 0
    suppressions: list[Skipped] = []
    waiting = waiting or {}
    for subscriber in subscribers:
        key = subscriber.key
        state = states.get(key)
        if state is None and key not in reasons:
            to_send.append(subscriber)
            continue
        if state == ledger_states.ACCEPTED:
            accepted_before += 1
        elif key in reasons:
            suppressions.append(Skipped(subscriber.line, subscriber.email, reasons[key]))
        # `sending`: a run died between request and answer. A live send has already made such rows
        # uncertain (recover_interrupted); a dry run reads them as they are and must plan the same.
        elif state in (ledger_states.UNCERTAIN, ledger_states.SENDING) and key in waiting:
            held_back.append(Skipped(subscriber.line, subscriber.email,
                                     f"uncertain: no event from the provider yet; --resend-uncertain sends again "
                                     f"after {waiting[key]}"))
        elif state in (ledger_states.UNCERTAIN, ledger_states.SENDING) and not options.resend_uncertain:
            held_back.append(Skipped(subscriber.line, subscriber.email,
                                     "uncertain: may have been delivered (--resend-uncertain sends again)"))
        elif state == ledger_states.FAILED and not options.retry_failed:
            held_back.append(Skipped(subscriber.line, subscriber.email, "failed earlier (--retry-failed retries)"))
        else:
            to_send.append(subscriber)
    return Plan(to_send, accepted_before, held_back, suppressions)


# How long after a request was left uncertain its provider events may still come: SendGrid posts
# webhook batches every 30 seconds or so, and retries a failed post for hours. Within this time an
# uncertain recipient with no event is not re-sent, even with --resend-uncertain.
UNCERTAIN_GRACE = timedelta(minutes=30)


def _waiting_for_events(ledger: Ledger, key: str, *, now: datetime | None = None) -> dict[str, str]:
    """Uncertain recipients with no event yet, still within UNCERTAIN_GRACE: key → when it ends ('14:05 UTC').

    Only where events are heard at all (mailer serve with the Event Webhook): elsewhere no event
    means nothing, and --resend-uncertain keeps its plain meaning.
    """
    if not ledger.hears_events():
        return {}
    current = now or datetime.now(UTC)
    waiting = {}
    for recipient, since in ledger.unheard_uncertain_since(key).items():
        ends = datetime.fromisoformat(since) + UNCERTAIN_GRACE
        if ends > current:
            waiting[recipient] = ends.strftime("%H:%M UTC")
    return waiting


def _refuse_on_complaints(ledger: Ledger, key: str, options: SendOptions) -> None:
    """Refuse a live send while the last issue's readers reported it as spam too often (Gmail, Yahoo: 0.3 %)."""
    check_complaints(_complaint_standing(ledger, key), options)


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


class ComplaintsError(MailerError):
    exit_code = ExitStatus.INPUT_ERROR


def _apply_suppressed(planned: Plan | PlanTotals, report: SendReport) -> None:
    """Suppressed subscribers are skipped, like unsubscribed rows: not intended, so not owed a delivery."""
    report.intended -= len(planned.suppressed)
    report.suppressed = len(planned.suppressed)
    report.skipped.extend(planned.suppressed)


_Item = TypeVar("_Item")


def _batches(items: Iterable[Subscriber], size: int) -> Iterator[list[Subscriber]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _rebatched(lists: Iterable[list[_Item]], size: int) -> Iterator[list[_Item]]:
    """The subscribers (or their rows) of `lists` (a plan's chunks), in order, `size` at a time: list slices,
    not an item at a time."""
    pending: list[_Item] = []
    for items in lists:
        pending += items
        if len(pending) >= size:
            whole = len(pending) - len(pending) % size
            for start in range(0, whole, size):
                yield pending[start:start + size]
            pending = pending[whole:]
    if pending:
        yield pending


class RateLimiter:
    """At most `rate` messages per second on average, counted from the first batch."""

    def __init__(self, rate: float | None, sleep: Callable[[float], None] = time.sleep):
        self.rate = rate
        self.sleep = sleep
        self.started: float | None = None
        self.sent = 0

    def acquire(self, count: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        if self.started is None:
            self.started = now
        due = self.started + self.sent / self.rate
        if due > now:
            self.sleep(due - now)
        self.sent += count


# -- delivering one batch ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    state: str  # accepted | failed | uncertain | queued (not sent: fatal error or stopped)
    message_id: str | None = None
    error: str | None = None
    fatal: bool = False
    refused: tuple[int, ...] = ()  # failed because of these recipients (positions in the batch) only


def deliver(backend: Backend, payload: Any, policy: RetryPolicy, stop: threading.Event) -> Outcome:
    """Send one batch, retrying what is safe to retry; classify the result for the ledger."""
    last_error = ""
    for attempt in range(policy.attempts):
        try:
            accepted: Accepted = backend.send(payload)
            return Outcome(ledger_states.ACCEPTED, message_id=accepted.message_id)
        except TransientError as err:
            last_error = str(err)
            if attempt + 1 == policy.attempts:
                break
            if stop.wait(policy.delay(attempt, err.retry_after)):
                return Outcome(ledger_states.QUEUED, error=f"stopped while waiting to retry: {err}")
        except RejectedError as err:
            return Outcome(ledger_states.FAILED, error=str(err), refused=err.positions)
        except UncertainError as err:
            return Outcome(ledger_states.UNCERTAIN, error=str(err))
        except FatalError as err:
            return Outcome(ledger_states.QUEUED, error=str(err), fatal=True)
        except DeliveryError as err:  # pragma: no cover - every backend raises a subclass above
            return Outcome(ledger_states.UNCERTAIN, error=str(err))
    return Outcome(ledger_states.FAILED, error=f"gave up after {policy.attempts} attempts: {last_error}")


# -- live send ---------------------------------------------------------------------------------


def _require_approval(last_test_hash: str | None, rendered: RenderedIssue, options: SendOptions, *,
                      test_command: str | None = None, why: str | None = None) -> None:
    if options.force or options.sandbox or last_test_hash == content_hash(rendered):
        return
    test_command = test_command or shlex.join(["mailer", "send", display_path(rendered.issue.source_path),
                                               "--test-to", "YOU@example.com", "--live"])
    why = why or "the content changed since the last test send, or there was none"
    raise NotApprovedError(
        f"{rendered.issue.slug} has not been test-sent as it is now: {why}\n"
        f"    hint: {test_command}, check it, then send again (or pass --force)")


def approval_gap(last_test: tuple[str, str, str] | None, rendered: RenderedIssue) -> str | None:
    """Why `rendered` is not approved by its last test send (Ledger.last_test_send); None when it is."""
    if last_test is None:
        return "it was never test-sent"
    test_hash, recipient, sent_at = last_test
    if test_hash == content_hash(rendered):
        return None
    return f"it changed since its last test send (to {recipient} at {sent_at[:16].replace('T', ' ')} UTC)"


def check_approved(rendered: RenderedIssue, config: Config, options: SendOptions, *,
                   test_command: str | None = None) -> str | None:
    """Raise NotApprovedError now, before the user is asked to confirm a send that would refuse anyway.

    Returns what --force lets through: why the issue is not approved (None when it is, or for a sandbox
    send, which needs no approval). `test_command` is the test send to suggest. send_issue checks again
    under the issue's lock: that check is the one that counts.
    """
    if options.sandbox:
        return None
    key = ledger_key(rendered, options)
    last = None
    if ledger_path(config.state_dir).exists():
        ledger = open_ledger(config, key, claim=False)
        try:
            last = ledger.last_test_send(key)
        finally:
            ledger.close()
    gap = approval_gap(last, rendered)
    if gap is not None and not options.force:
        _require_approval(last[0] if last else None, rendered, options, test_command=test_command, why=gap)
    return gap


@dataclass(frozen=True)
class ComplaintStanding:
    """How often the readers of the last issue with events reported it as spam."""

    issue: str
    complaints: int
    delivered: int

    @property
    def rate(self) -> float:
        return self.complaints / self.delivered

    def describe(self) -> str:
        return (f"{self.rate:.2%} of the readers who got {self.issue} reported it as spam "
                f"({self.complaints} of {self.delivered})")


def _complaint_standing(ledger: Ledger, key: str) -> ComplaintStanding | None:
    from mailer.deliver.events import engagement

    last = ledger.last_issue_with_events(besides=key)
    seen = engagement(ledger, last) if last else None
    if last is None or seen is None or not seen.delivered:
        return None
    return ComplaintStanding(last, seen.complaints, seen.delivered)


def complaint_standing(config: Config, key: str) -> ComplaintStanding | None:
    """The last other issue's complaints, from SendGrid's events (None without any): for a live send's
    first screen, which warns from 0.1 % and refuses above 0.3 % (send_issue refuses again under the lock)."""
    if not ledger_path(config.state_dir).exists():
        return None
    ledger = open_ledger(config, key, claim=False)
    try:
        return _complaint_standing(ledger, key)
    finally:
        ledger.close()


def check_complaints(standing: ComplaintStanding | None, options: SendOptions) -> None:
    """Raise ComplaintsError while the last issue's complaint rate is over 0.3 %, unless --despite-complaints."""
    from mailer.deliver.events import COMPLAINT_STOP_RATE

    if standing is None or standing.rate <= COMPLAINT_STOP_RATE or options.despite_complaints:
        return
    raise ComplaintsError(
        f"{standing.describe()}; above 0.3 % Gmail and Yahoo start refusing a sender's mail. Nothing was sent.\n"
        f"    hint: `mailer status` on {standing.issue} shows its events; make sure the list is opted in and "
        "the unsubscribe link is easy to find, then send with --despite-complaints")


def plan_send(rendered: RenderedIssue, config: Config, subscribers: SubscriberList,
              options: SendOptions) -> SendReport:
    """Who a live send would send to now and who it leaves out, and why, planned as dry_run plans (the
    ledger, events, the local suppression list), writing nothing: the count a confirmation asks about.
    `not_sent` is the number to send to."""
    key = ledger_key(rendered, options)
    report = SendReport(intended=len(subscribers.subscribers), skipped=list(subscribers.skipped), live=False)
    ledger = open_ledger(config, key, claim=False) if ledger_path(config.state_dir).exists() else None
    try:
        waiting = _waiting_for_events(ledger, key) if ledger is not None else {}
        screener = Screener(config.state_dir)
        report.suppressions_pulled_at = screener.pulled_at
        planned = PlanTotals()
        for _ in _plan_in_chunks(subscribers.subscribers, _planned_states(ledger, key, report), screener, options,
                                 waiting, planned):
            pass
    finally:
        if ledger is not None:
            ledger.close()
    report.accepted_before = planned.accepted_before
    _apply_suppressed(planned, report)
    report.skipped.extend(planned.held_back)
    report.held_back = len(planned.held_back)
    report.not_sent = planned.due
    return report


def _planned_states(ledger: Ledger | None, key: str, report: SendReport) -> Callable[[list[str]], dict[str, str]]:
    """The ledger states a plan that sends nothing reads: those a live send would find, once it has counted
    the uncertain recipients the provider reported had the issue as accepted (report.resolved)."""
    hears_events = ledger is not None and ledger.hears_events()

    def states_of(keys: list[str]) -> dict[str, str]:
        if ledger is None:
            return {}
        states = ledger.states_of(key, keys)
        unsure = [k for k, state in states.items() if state in (ledger_states.UNCERTAIN, ledger_states.SENDING)]
        if hears_events and unsure:
            for recipient in ledger.heard_among(key, unsure):
                states[recipient] = ledger_states.ACCEPTED
                report.resolved += 1
        return states

    return states_of


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
    with issue_lock(state_dir, key):
        ledger = open_ledger(config, key, claim=True)  # a full disk shows now, before any request
        try:
            _require_approval(ledger.last_test_hash(key), rendered, options)
            if command is not None:
                ledger.record_command(key, command, str(Path.cwd()))
            recovered = ledger.recover_interrupted(key)
            if recovered:
                progress.on_note(f"{recovered} recipient(s) of an interrupted run are now uncertain: "
                                 "they may have received the issue and will not be sent again")
            _refuse_on_complaints(ledger, key, options)
            if not options.sandbox:  # what the report can know of opens and clicks (mailer report)
                ledger.record_tracking(key, backend.name, clicks=config.tracking.clicks, opens=config.tracking.opens)
            _pull_suppressions(config, backend, options, progress, interrupt, environment)
            report.resolved = ledger.resolve_from_events(key)
            if report.resolved:
                progress.on_note(f"{report.resolved} uncertain recipient(s) had the issue: the provider reported "
                                 "events for them; they are now accepted")
            screener = Screener(config.state_dir)
            report.suppressions_pulled_at = screener.pulled_at
            waiting = _waiting_for_events(ledger, key)

            # A first send of the issue (every new issue's) has no row to look up (Ledger.start_due).
            first_send = ledger.start_due(key)

            def states_of(keys: list[str]) -> dict[str, str]:
                return {} if first_send else ledger.states_of(key, keys)

            # The list is planned a chunk at a time, never held whole (the totals come from this), then
            # read on again for those due as the batches go out. A reader's row is written as their
            # batch leaves (Ledger.mark_sending), and the rows of those a stopped send did not reach
            # as it stops (_run_batches): queueing everyone first held the first request back by a
            # second for 100,000 readers.
            planned = PlanTotals()
            # The tally at the end: the states of the intended recipients not sent to now cannot change
            # during the run (the issue is locked), so they are counted here; those sent to are counted
            # in the ledger afterwards, from the list of those due (Ledger.start_due).
            unchanged: Counter[str] = Counter()

            # Which of each chunk's subscribers are due, for the pass that sends (_due): None when all are.
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

            for _ in _plan_in_chunks(subscribers.subscribers, states_of, screener, options, waiting, planned,
                                     on_chunk=record):
                pass
            report.accepted_before = planned.accepted_before
            _apply_suppressed(planned, report)
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
            payload_options = _payload_options(options, run_id)
            progress.on_start(planned.due)
            if planned.due:
                # Exactly those the planning above found due: it is not done again (a reader the
                # suppression list let go of meanwhile waits for the next run).
                _run_batches(rendered, config, backend, ledger, key, lambda: _due(subscribers.subscribers, due_flags),
                             options, payload_options, secret, run_id, report, progress,
                             interrupt or threading.Event())
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
            ledger.close()
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
        ledger = open_ledger(config, key, claim=False)
        try:
            found = ledger.finished(key, list_keys)
        finally:
            ledger.close()
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


def _payload_options(options: SendOptions, schedule_id: str) -> Any:
    from mailer.deliver.backends.sendgrid import SendGridOptions

    return SendGridOptions(send_at=options.send_at, schedule_id=schedule_id if options.send_at else None,
                           sandbox=options.sandbox)


def _run_batches(rendered: RenderedIssue, config: Config, backend: Backend, ledger: Ledger, key: str,
                 due: Callable[[], Iterable[list[Subscriber]]], options: SendOptions, payload_options: Any,
                 secret: bytes, run_id: str, report: SendReport, progress: Progress,
                 interrupt: threading.Event) -> None:
    """Send to those due, batch by batch, recording each; `due` makes a pass over them (one to send,
    and another for the readers not reached when the send stops: see _queue_unreached)."""
    stop = threading.Event()  # tells workers waiting to retry to give up; set on interrupt too
    limiter = RateLimiter(options.rate, sleep=lambda seconds: interrupt.wait(seconds))
    # SMTP: one connection unless asked for more, as many servers limit a client's connections.
    senders = options.workers or (1 if backend.max_batch == 1 else 4)
    in_flight: dict[Future[Outcome], tuple[str, list[Subscriber]]] = {}
    consecutive_failures = 0
    fatal: str | None = None
    # Prepared in the sending threads, not in worker processes as a dry run's are: measured, the
    # processes made a send of 100,000 no faster (the processes' start and the pickling cost more
    # than the GIL they free) and took 80 MiB more.
    job = PrepareJob(rendered, config, backend, payload_options, secret)
    pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="mailer-send")

    def prepare_and_deliver(batch: list[Subscriber], batch_id: str) -> Outcome:
        # In the sending thread: while one batch waits for the provider, the next is being prepared,
        # so the send goes at the network's pace instead of one request at a time behind the preparation.
        try:
            payload = job.prepare(batch, batch_id)
        except Exception as err:  # nothing left for this batch: back to queued, and the send stops
            return Outcome(ledger_states.QUEUED, error=f"could not prepare the request: {err}", fatal=True)
        return deliver(backend, payload, options.retry, stop)

    def submit(batch: list[Subscriber], batch_id: str) -> None:
        # Committed before the request can leave.
        ledger.mark_sending(key, [(s.key, s.email) for s in batch], batch_id)
        report.batches += 1
        in_flight[pool.submit(prepare_and_deliver, batch, batch_id)] = (batch_id, batch)

    def settle_refused(future: Future[Outcome], batch_id: str, batch: list[Subscriber], outcome: Outcome) -> None:
        # The provider refused the whole batch, nothing sent, for the sake of a few recipients: fail
        # those, and send the others again in a batch of their own (or leave them queued when stopping).
        refused = [s for i, s in enumerate(batch) if i in outcome.refused]
        others = [s for i, s in enumerate(batch) if i not in outcome.refused]
        # Both recorded before the future is forgotten: a second Ctrl-C from here on leaves the others
        # queued (nothing was sent to them), never `sending`, which would hold them back as uncertain.
        ledger.mark(key, [s.key for s in refused], ledger_states.FAILED, error=outcome.error)
        ledger.mark(key, [s.key for s in others], ledger_states.QUEUED)
        del in_flight[future]
        progress.on_batch(len(refused), ledger_states.FAILED)
        if not stop.is_set() and not interrupt.is_set():
            limiter.acquire(len(others))  # a new request: --rate counts it like any other
        if stop.is_set() or interrupt.is_set():  # stopping: no new request starts
            progress.on_batch(len(others), ledger_states.QUEUED)
        else:
            submit(others, f"{batch_id}r")

    def settle(done: set[Future[Outcome]]) -> None:
        nonlocal consecutive_failures, fatal
        for future in done:
            batch_id, batch = in_flight[future]
            keys = [s.key for s in batch]
            outcome = future.result()
            # A refusal about some recipients only (positions SendGrid named outside the batch are not
            # believed): theirs, not the send's, so it never counts towards stopping the send.
            about_recipients = bool(outcome.refused) and max(outcome.refused) < len(batch)
            if about_recipients and len(outcome.refused) < len(batch):
                settle_refused(future, batch_id, batch, outcome)
                continue
            ledger.mark(key, keys, outcome.state, message_id=outcome.message_id, error=outcome.error)
            del in_flight[future]  # only once recorded: a KeyboardInterrupt mid-write settles it again
            progress.on_batch(len(keys), outcome.state)
            if outcome.state == ledger_states.ACCEPTED:
                consecutive_failures = 0
            elif outcome.fatal:
                fatal = outcome.error
                stop.set()
            elif outcome.state != ledger_states.QUEUED and not about_recipients:
                consecutive_failures += 1
                if consecutive_failures >= options.max_consecutive_failures and not stop.is_set():
                    report.stopped = (f"stopped after {consecutive_failures} failed batches in a row; "
                                      f"the last error: {outcome.error}")
                    stop.set()

    interrupted = False

    def stopping() -> bool:
        """Whether no new request may start: the send was stopped, or `interrupt` is set (told here, in
        this thread: never from the signal handler)."""
        nonlocal interrupted
        if interrupt.is_set() and not interrupted:
            interrupted = True
            stop.set()
            progress.on_stopping()
        return stop.is_set()

    def settle_some() -> None:
        settle(wait(in_flight, timeout=0.2, return_when=FIRST_COMPLETED).done)
        stopping()

    reached = 0  # readers of the batches submitted, in the order of `due`: those not reached come after
    try:
        for number, batch in enumerate(_rebatched(due(), backend.max_batch), start=1):
            if stopping():
                break
            limiter.acquire(len(batch))
            if stopping():  # asked again: a Ctrl-C cuts the wait for --rate short
                break
            submit(batch, f"{run_id}:{number:05d}")
            reached += len(batch)
            while len(in_flight) >= senders:
                settle_some()
        while in_flight:
            settle_some()
    except KeyboardInterrupt:
        # Let the requests already on the wire finish and record them; waiting retries stop at once.
        # A Ctrl-C while they are waited for stops the recording (the threads still end with their
        # requests): rows left `sending` the next run turns into `uncertain`, and the readers not
        # reached are left without a row (it plans them again).
        interrupted = True
        stop.set()
        while in_flight:
            settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
    except StateError as err:
        # The ledger cannot be written (a full disk): no new request; say exactly what may have left.
        stop.set()
        if report.batches == 0:
            raise  # before the first request: nothing was sent, and the StateError says so
        raise SendError(_unrecorded_message(err, list(in_flight.items()), backend.name)) from None
    except MailerError:
        # The list could not be read on (its file changed while it was sent from): no new request;
        # the ones on their way are waited for and recorded, then the error is told.
        stop.set()
        while in_flight:
            settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
        raise
    finally:
        pool.shutdown(wait=True)
        backend.close()
    # Out of the `try`: a Ctrl-C while the readers not reached are queued stops it at once, leaving
    # them without a row, which the next run plans again.
    recorded = not (stop.is_set() and report.batches) or _queue_unreached(ledger, key, due(), reached, progress)
    if interrupted:
        raise Interrupted(("interrupted: every recipient's state is recorded" if recorded else
                           "interrupted: every recipient reached is recorded") +
                          "; run the same command again to resume (nobody already accepted is sent again)")
    if fatal:
        raise SendError(f"{fatal}\n    nothing more was sent; the same command resumes once this is fixed")


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
        for part in _batches(unreached, PLAN_CHUNK):
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


# -- dry run and test sends --------------------------------------------------------------------


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
    ledger = open_ledger(config, key, claim=False) if ledger_path(config.state_dir).exists() else None
    outbox = (outbox_root or config.state_dir / "outbox") / rendered.issue.slug
    try:
        waiting = _waiting_for_events(ledger, key) if ledger is not None else {}
        states_of = _planned_states(ledger, key, report)
        screener = Screener(config.state_dir)
        report.suppressions_pulled_at = screener.pulled_at
        planned = PlanTotals()
        to_send = _plan_rows_in_chunks(subscribers.subscribers, states_of, screener, options, waiting, planned)
        if outbox.exists():
            shutil.rmtree(outbox)
        private_folder(outbox / "eml", within=config.state_dir)  # the outbox holds addresses: 0700, files 0600
        report.outbox_dir = outbox
        if backend.name == "sendgrid":
            private_folder(outbox / "sendgrid")
        job = _DryRunJob(rendered, config, backend, _payload_options(options, "dry-run"), secret, outbox=outbox)
        first_rows: list[tuple] = []
        sends = outbox / ".manifest-sends.jsonl"
        batches = _first_kept(_rebatched(to_send, backend.max_batch), first_rows, 10)
        with open_private(sends, "w", encoding="utf-8", newline="\n") as manifest:
            for lines, size in _run_dry_batches(job, batches):
                manifest.write(lines)
                report.request_bytes.append(size)
        # The planning is done: its totals are known, and the manifest lists the skipped first.
        report.accepted_before = planned.accepted_before
        _apply_suppressed(planned, report)
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
            write_private(outbox / "eml" / f"{number:02d}-{_safe(subscriber.email)}.eml", bytes(message))
    except OSError as err:  # a full disk or a read-only state folder: said plainly, nothing was sent
        raise state_failure(outbox, err) from None
    finally:
        if ledger is not None:
            ledger.close()
    report.batches = len(report.request_bytes)
    report.not_sent = planned.due
    report.first_recipients = [s.email for s in first[:10]]
    return report


def _plan_rows_in_chunks(subscribers: list[Subscriber] | SpooledSubscribers,
                         states_of: Callable[[list[str]], dict[str, str]], screener: Screener, options: SendOptions,
                         waiting: Mapping[str, str], totals: PlanTotals) -> Iterator[list[tuple]]:
    """_plan_in_chunks for a dry run, whose workers are given rows (Subscriber.as_row): a chunk nobody of
    which has a ledger row or is suppressed (a first send) is due as it is, its rows never made into
    Subscribers and back (2 of the parent's seconds at a million)."""
    for rows in row_chunks(subscribers, PLAN_CHUNK):
        keys = [row[0].lower() for row in rows]  # Subscriber.key
        states, reasons = states_of(keys), screener.reasons(keys)
        if not states and not reasons:
            totals.due += len(rows)
            yield rows
            continue
        part = plan([Subscriber(*row) for row in rows], states, options, reasons, waiting)
        _add_up(totals, part)
        yield [subscriber.as_row() for subscriber in part.to_send]


def _add_up(totals: PlanTotals, part: Plan) -> None:
    totals.accepted_before += part.accepted_before
    totals.held_back += part.held_back
    totals.suppressed += part.suppressed
    totals.due += len(part.to_send)


PLAN_CHUNK = 5000  # subscribers planned at a time: one ledger query and one screening each


def _plan_in_chunks(subscribers: Iterable[Subscriber], states_of: Callable[[list[str]], dict[str, str]],
                    screener: Screener, options: SendOptions, waiting: Mapping[str, str], totals: PlanTotals, *,
                    on_chunk: Callable[[list[Subscriber], Plan, dict[str, str]], None] | None = None,
                    ) -> Iterator[list[Subscriber]]:
    """The subscribers to send to, planned a chunk at a time (see plan), a list for each chunk; `totals`
    adds up the rest.

    `on_chunk` is given each chunk, its plan and the ledger states it was planned with, before the
    chunk's subscribers to send to are yielded.
    """
    iterator = iter(subscribers)
    while chunk := list(itertools.islice(iterator, PLAN_CHUNK)):
        keys = [s.key for s in chunk]
        states = states_of(keys)
        part = plan(chunk, states, options, screener.reasons(keys), waiting)
        _add_up(totals, part)
        if on_chunk is not None:
            on_chunk(chunk, part, states)
        yield part.to_send


def _due(subscribers: Iterable[Subscriber], due_flags: list[bytes | None]) -> Iterator[list[Subscriber]]:
    """The subscribers the planning found due in this run, read on from the list in order: the planning's
    chunks again, each with its flags (None: all of it is due). The list is the one planned: held in
    memory, or read back from its temporary file, the same rows in the same order."""
    for chunk, flags in zip(_batches(subscribers, PLAN_CHUNK), due_flags, strict=True):
        yield chunk if flags is None else [s for s, due in zip(chunk, flags, strict=True) if due]


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


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "@._-+" else "_" for c in text)


@dataclass
class TestSendReport:
    to: str
    as_email: str
    live: bool
    message_id: str | None = None
    eml_path: Path | None = None
    suppressed: str | None = None  # why `to` is on the suppression list (a dry run only warns)


def test_send(
    rendered: RenderedIssue,
    config: Config,
    subscriber: Subscriber,
    to: str,
    backend: Backend,
    options: SendOptions,
    *,
    environment: Environment = Environment(),
) -> TestSendReport:
    """Send exactly one message to `to`, as `subscriber` would receive it, with a [TEST] subject."""
    secret = unsubscribe_secret(environment.unsubscribe_secret, live=options.live and not config.managed_unsubscribe)
    personal = personalise(subscriber, rendered, config, secret, test_copy=True)  # its link unsubscribes nobody
    test_rendered = dataclasses.replace(rendered, subject=f"[TEST] {rendered.subject}")
    report = TestSendReport(to=to, as_email=subscriber.email, live=options.live)
    report.suppressed = screen_recipients(config.state_dir, [to]).reasons.get(address_key(to))
    if report.suppressed and options.live:
        # SendGrid itself drops mail to its bounces, spam reports and global unsubscribes: the test
        # message would be "accepted" and never arrive, and the approval gate would count it.
        raise SuppressedRecipientError(
            f"--test-to {to} is on the suppression list ({report.suppressed}); nothing was sent\n"
            "    hint: test-send to another address, or, if the address should get mail again, remove it "
            "from SendGrid's suppressions and run `mailer suppressions pull`")
    recipient = Recipient(dataclasses.replace(subscriber, email=to), personal)
    if not options.live:
        outbox = config.state_dir / "outbox" / rendered.issue.slug / "test"
        private_folder(outbox, within=config.state_dir)
        message = build_mime(test_rendered, config, subscriber, personal, to=to)
        report.eml_path = outbox / f"{_safe(to)}.eml"
        write_private(report.eml_path, bytes(message))
        return report
    payload = backend.prepare(test_rendered, config, [recipient], batch_id="test",
                              options=_TestOptions(to=to, sandbox=options.sandbox))
    # The test send is what approves the live one: the ledger must be able to record it before it leaves.
    ledger = None if options.sandbox else open_ledger(config, ledger_key(rendered, options), claim=True)
    try:
        outcome = deliver(backend, payload, options.retry, threading.Event())
        backend.close()
        if outcome.state != ledger_states.ACCEPTED:
            raise SendError(f"the test send to {to} was not accepted: {outcome.error}")
        report.message_id = outcome.message_id
        if ledger is not None:
            try:
                ledger.record_test_send(ledger_key(rendered, options), content_hash(rendered), to, outcome.message_id)
            except StateError as err:
                raise SendError(f"the test message to {to} was accepted (message id {outcome.message_id}) but "
                                f"could not be recorded: {str(err).splitlines()[0]}\n    a live send will not count "
                                "it as approval: send the test again once the state folder can be written") from None
    finally:
        if ledger is not None:
            ledger.close()
    return report


@dataclass(frozen=True)
class _TestOptions:
    """Payload options for a test send: SendGrid's fields plus the SMTP backend's `to`."""

    to: str
    sandbox: bool = False
    send_at: datetime | None = None
    schedule_id: str | None = None
    test_copy: bool = True  # its events are not the issue's (see backends.sendgrid._request)

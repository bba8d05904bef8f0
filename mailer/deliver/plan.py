"""Planning a send: who is sent to now, and who is not and why (the ledger, the provider's events,
the suppression list), a chunk of the list at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from mailer.audience.subscribers import Skipped, SpooledSubscribers, Subscriber, SubscriberList, row_chunks
from mailer.config import Config
from mailer.deliver import ledger as ledger_states
from mailer.deliver.ledger import Ledger
from mailer.deliver.options import SendOptions, existing_ledger, ledger_key
from mailer.deliver.progress import SendReport
from mailer.deliver.suppressions import Screener

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue


@dataclass
class Plan:
    to_send: list[Subscriber]
    accepted_before: int
    held_back: list[Skipped]  # uncertain or failed recipients not retried in this run
    suppressed: list[Skipped] = field(default_factory=list)  # on the suppression list: not intended at all


@dataclass
class PlanTotals:
    """What planning a list a chunk at a time adds up (plan_in_chunks): the subscribers to send to are
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


def waiting_for_events(ledger: Ledger, key: str, *, now: datetime | None = None) -> dict[str, str]:
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


def apply_suppressed(planned: Plan | PlanTotals, report: SendReport) -> None:
    """Suppressed subscribers are skipped, like unsubscribed rows: not intended, so not owed a delivery."""
    report.intended -= len(planned.suppressed)
    report.suppressed = len(planned.suppressed)
    report.skipped.extend(planned.suppressed)


_Item = TypeVar("_Item")


def in_batches(items: Iterable[Subscriber], size: int) -> Iterator[list[Subscriber]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def rebatched(lists: Iterable[list[_Item]], size: int) -> Iterator[list[_Item]]:
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


def plan_send(rendered: RenderedIssue, config: Config, subscribers: SubscriberList,
              options: SendOptions) -> SendReport:
    """Who a live send would send to now and who it leaves out, and why, planned as dry_run plans (the
    ledger, events, the local suppression list), writing nothing: the count a confirmation asks about.
    `not_sent` is the number to send to."""
    key = ledger_key(rendered, options)
    report = SendReport(intended=len(subscribers.subscribers), skipped=list(subscribers.skipped), live=False)
    with existing_ledger(config, key) as ledger:
        waiting = waiting_for_events(ledger, key) if ledger is not None else {}
        screener = Screener(config.state_dir)
        report.suppressions_pulled_at = screener.pulled_at
        planned = PlanTotals()
        for _ in plan_in_chunks(subscribers.subscribers, planned_states(ledger, key, report), screener, options,
                                waiting, planned):
            pass
    report.accepted_before = planned.accepted_before
    apply_suppressed(planned, report)
    report.skipped.extend(planned.held_back)
    report.held_back = len(planned.held_back)
    report.not_sent = planned.due
    return report


def planned_states(ledger: Ledger | None, key: str, report: SendReport) -> Callable[[list[str]], dict[str, str]]:
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


def plan_rows_in_chunks(subscribers: list[Subscriber] | SpooledSubscribers,
                        states_of: Callable[[list[str]], dict[str, str]], screener: Screener, options: SendOptions,
                        waiting: Mapping[str, str], totals: PlanTotals) -> Iterator[list[tuple]]:
    """plan_in_chunks for a dry run, whose workers are given rows (Subscriber.as_row): a chunk nobody of
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


def plan_in_chunks(subscribers: Iterable[Subscriber], states_of: Callable[[list[str]], dict[str, str]],
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


def due_subscribers(subscribers: Iterable[Subscriber], due_flags: list[bytes | None]) -> Iterator[list[Subscriber]]:
    """The subscribers the planning found due in this run, read on from the list in order: the planning's
    chunks again, each with its flags (None: all of it is due). The list is the one planned: held in
    memory, or read back from its temporary file, the same rows in the same order."""
    for chunk, flags in zip(in_batches(subscribers, PLAN_CHUNK), due_flags, strict=True):
        yield chunk if flags is None else [s for s, due in zip(chunk, flags, strict=True) if due]

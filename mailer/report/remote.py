"""Events kept by a `mailer serve` on another machine (MAILER_SERVE_URL): copied into this ledger.

The service that receives SendGrid's Event Webhook may run elsewhere than the sends. Its events
export (`/export/events`, opened by MAILER_EXPORT_TOKEN like the suppressions export) hands them
over a page at a time from the last one copied, so a report copies only what is new.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from mailer.addresses import shown_url
from mailer.deliver.events import TRACKED
from mailer.deliver.ledger import Ledger, ledger_path
from mailer.deliver.suppressions import PullError, fetch_from_serve
from mailer.environment import Environment

EVENTS_PATH = "/export/events"
PAGE = 10_000
MAX_PAGES = 10_000  # a hundred million events: a service that never says "no more" must not loop forever


def pull_events(state_dir: Path, environment: Environment) -> int | None:
    """Copy the events the remote service holds that this ledger lacks; how many were new (None: no remote).
    `environment`: the remote service's address and token (MAILER_SERVE_URL, MAILER_EXPORT_TOKEN)."""
    base = environment.serve_url.strip().rstrip("/")
    if not base:
        return None
    source = shown_url(base)
    new = 0
    with Ledger(ledger_path(state_dir)) as ledger:
        after = ledger.remote_cursor(source)
        for _ in range(MAX_PAGES):
            page = fetch_from_serve(environment, f"{EVENTS_PATH}?after={after}&limit={PAGE}")
            if after and isinstance(page, dict) and isinstance(page.get("last"), int) and page["last"] < after:
                # The service's ledger is not the one copied from (restored from a backup, or new): copy it from
                # its start; the events already here are known by their ids and stored once.
                after = 0
                continue
            events, following, more = _read_page(page, source, after)
            new += ledger.record_remote_events(source, events, following)
            after = following
            if not more:
                break
    return new


def _read_page(page: Any, source: str, after: int) -> tuple[list[tuple[Any, ...]], int, bool]:
    """A page of the export, checked field by field: what the service's ledger holds, or PullError."""
    def wrong(what: str) -> PullError:
        return PullError(f"the answer from {source}{EVENTS_PATH} is not mailer's events export ({what})")

    if not isinstance(page, dict) or not isinstance(page.get("events"), list):
        raise wrong("no list of events")
    following, more = page.get("next"), page.get("more")
    if (not isinstance(following, int) or isinstance(following, bool) or not isinstance(more, bool)
            or not 0 <= following < 2 ** 63):  # a rowid: SQLite's integers are 64-bit
        raise wrong("no position to go on from")
    if following < after or (more and following == after):
        raise wrong("its position went back")
    return [_event(item, wrong) for item in page["events"]], following, more


def _event(item: Any, wrong: Any) -> tuple[Any, ...]:
    """(event_id, issue, recipient, event, at, detail, url, link, agent, machine), each of its kind and size."""
    if not isinstance(item, list) or len(item) != 10:
        raise wrong("an event is not a list of 10 fields")
    event_id, issue, recipient, kind, at, detail, url, link, agent, machine = item
    limits = ((event_id, 100), (issue, 200), (recipient, 320), (at, 40))
    if not all(isinstance(value, str) and 0 < len(value) <= size for value, size in limits):
        raise wrong("an event's id, issue, reader or time is missing or too long")
    if not all(value.isprintable() for value in (event_id, issue, recipient)):  # (a bounce's words may hold a tab)
        raise wrong("an event's id, issue or reader holds a control character (a terminal escape)")
    if kind not in TRACKED:
        raise wrong(f"an event of unknown kind {str(kind)[:40]!r}")
    try:
        datetime.fromisoformat(at)
    except ValueError:
        raise wrong("an event's time is not ISO 8601") from None
    for value, size in ((detail, 500), (url, 2000), (agent, 300)):
        if value is not None and not (isinstance(value, str) and len(value) <= size):
            raise wrong("an event's detail, link or user agent is not text of a sane size")
    if link is not None and not (isinstance(link, int) and not isinstance(link, bool) and 0 <= link < 100_000):
        raise wrong("a click's position is not a small whole number")
    if machine not in (None, 1):
        raise wrong("an open's machine flag is neither 1 nor null")
    return event_id, issue, recipient, kind, at, detail, url, link, agent, machine

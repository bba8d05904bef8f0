"""What SendGrid's Event Webhook tells about a send: per-recipient events for the ledger, and who must not be mailed.

The webhook posts batches of JSON events; `mailer serve` checks their signature, then hands the
parsed batch here. Events of `mailer`'s own sends carry the custom_args it sent (`mailer_issue`,
and an opaque `mailer_recipient`); they are recorded per issue and recipient, once each
(`sg_event_id`: SendGrid retries a batch until it gets a 2xx). A test copy's events (`mailer_test`,
or the batch `test` of a copy sent before the mark) are not the issue's: they are not recorded, so
they count in no figure and resolve no list reader's uncertain copy. Bounces, drops for a bad address,
spam reports and unsubscribes go on the suppression list whichever mail of the account they
concern: SendGrid itself will not deliver to those addresses again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailer.addresses import HALF_PAIR, address_key
from mailer.deliver.ledger import Ledger, StateError, ledger_path
from mailer.deliver.suppressions import (
    BOUNCE,
    GLOBAL_UNSUBSCRIBE,
    GROUP_UNSUBSCRIBE,
    INVALID_EMAIL,
    SPAM_REPORT,
    Suppression,
    SuppressionList,
    mark_in_store,
    suppressions_path,
)

log = logging.getLogger("mailer.serve")  # the service that receives the webhook logs there

TRACKED = ("processed", "delivered", "deferred", "bounce", "dropped", "spamreport", "unsubscribe",
           "group_unsubscribe", "open", "click")
# Why SendGrid dropped a message, when the reason means the address is not to be mailed.
_DROPPED = {"Bounced Address": BOUNCE, "Invalid": INVALID_EMAIL, "Unsubscribed Address": GLOBAL_UNSUBSCRIBE,
            "Spam Reporting Address": SPAM_REPORT}
_REPORTED = {"spamreport": SPAM_REPORT, "unsubscribe": GLOBAL_UNSUBSCRIBE, "group_unsubscribe": GROUP_UNSUBSCRIBE}


@dataclass
class Batch:
    """One webhook batch, read: ledger rows, suppressions, and how many items were not usable."""

    events: list[tuple[Any, ...]] = field(default_factory=list)  # Ledger.record_events' rows
    suppressions: list[Suppression] = field(default_factory=list)
    skipped: int = 0
    test_copies: int = 0  # events of a `--test-to` copy: not the issue's


def read_batch(items: Any) -> Batch:
    """Read a parsed webhook body (a JSON array of events); an item that is not a usable event is skipped."""
    batch = Batch()
    for item in items if isinstance(items, list) else []:
        email, kind = _text(item, "email"), _text(item, "event")
        if not email or not kind or not email.isascii() and HALF_PAIR.search(str(item.get("email"))):
            batch.skipped += 1  # (an address with half of a surrogate pair in it is nobody's: see _text)
            continue
        at = _when(item.get("timestamp"))
        detail = " ".join(part for part in (_text(item, "status"), _text(item, "reason"), _text(item, "type")) if part)
        issue, event_id = _text(item, "mailer_issue"), _text(item, "sg_event_id")
        if _text(item, "mailer_test") == "1" or _text(item, "mailer_batch") == "test":
            batch.test_copies += 1  # (its suppression, below, stands: SendGrid will not mail the address either)
        elif issue and event_id and kind in TRACKED:
            batch.events.append((event_id[:100], issue[:200], address_key(email), kind, at, detail[:500] or None,
                                 *_engagement(kind, item)))
        source = _suppression_source(kind, item)
        if source:
            said = _text(item, "reason") or _text(item, "status")
            reason = f"{said}, via the event webhook" if said else "via the event webhook"
            batch.suppressions.append(Suppression(email[:320], source, reason=reason[:500], created_at=at))
    return batch


def record(state_dir: Path, batch: Batch) -> tuple[int, int]:
    """Store a batch in the ledger and the suppression list; how many events and suppressions were new."""
    recorder = EventRecorder(state_dir)
    try:
        return recorder.record(batch)
    finally:
        recorder.close()


# With checkpoints deferred (mailer serve): the log is copied into the ledger once this many events went
# into it. A page
# that several batches dirtied (an index's inner pages, the table's last) is copied once: at make bench's
# ledger of 3,000,000 events, where a batch of 1,000 adds ~9 MiB to the log, the copying cost 35 ms a batch
# when done after each, 23 ms every 4,000 events, 9 ms every 16,000 (measured in one process).
CHECKPOINT_EVENTS = 10_000
WRITER_CACHE_MIB = 32  # the writer's page cache (Ledger.keep_pages)


class EventRecorder:
    """Webhook batches into the state folder through one ledger connection, kept open between batches.

    A connection opened per batch started with an empty page cache, and closing it (the ledger's last
    connection) copied the write-ahead log into the file and deleted it: at a ledger of 3,000,000 events
    that was a fifth of each batch's time. The connection is made again when the ledger file is another
    (moved aside and replaced, as its damage hints say) or after a failure. Use it from one thread.
    """

    def __init__(self, state_dir: Path, *, defer_checkpoints: bool = False):
        self.state_dir = state_dir
        self._defer = defer_checkpoints  # the caller checkpoints (mailer serve: checkpoint_ledger, see web/events)
        self._ledger: Ledger | None = None
        self._file: tuple[int, int] | None = None  # the open ledger's (device, inode)

    def record(self, batch: Batch) -> tuple[int, int]:
        """Store a batch in the ledger and the suppression list; how many events and suppressions were new."""
        new_events = new_suppressions = 0
        if batch.events:
            try:
                new_events = self._open_ledger().record_events(batch.events)
            except BaseException:
                self.close()  # a full disk, a damaged file: the next batch starts on a new connection
                raise
        if batch.suppressions:
            with SuppressionList(suppressions_path(self.state_dir)) as suppressions:
                new_suppressions = suppressions.record_reported(batch.suppressions)
            try:  # a reader who bounced or complained is no longer confirmed
                mark_in_store(self.state_dir, batch.suppressions)
            except StateError as err:
                # The batch is recorded where sends look (the suppression list): SendGrid must not retry it for
                # days over the store, which a send brings in line once it is mended.
                log.error("the subscriber store could not follow the webhook's report: %s", str(err).splitlines()[0])
        return new_events, new_suppressions

    def checkpoint(self) -> None:
        """Copy the ledger's write-ahead log into its file, as far as readers allow, on this connection."""
        if self._ledger is not None:
            self._ledger.checkpoint()

    def close(self) -> None:
        if self._ledger is not None:
            ledger, self._ledger, self._file = self._ledger, None, None
            ledger.close()

    def _open_ledger(self) -> Ledger:
        path = ledger_path(self.state_dir)
        if self._ledger is not None and _identity(path) != self._file:
            self.close()
        if self._ledger is None:
            self._ledger = Ledger(path)  # (made, if it is missing, as a connection per batch made it)
            self._file = _identity(path)
            if self._defer:
                self._ledger.defer_checkpoints()
                self._ledger.keep_pages(WRITER_CACHE_MIB)
        return self._ledger


def checkpoint_ledger(state_dir: Path) -> None:
    """Copy the ledger's write-ahead log into its file as far as readers allow, on a connection of its own
    (PASSIVE: an EventRecorder's commits go on meanwhile)."""
    path = ledger_path(state_dir)
    if not path.exists():
        return
    with Ledger(path) as ledger:
        ledger.checkpoint()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _engagement(kind: str, item: dict[str, Any]) -> tuple[str | None, int | None, str | None, int | None]:
    """An open's or click's (url, link, agent, machine): what mailer report needs to tell the card a
    click was on (a URL twice in an issue is told apart by its position, url_offset.index, in the HTML
    part), and people from machines (SendGrid's sg_machine_open; a security gateway's user agent)."""
    if kind not in ("open", "click"):
        return None, None, None, None
    url = (_text(item, "url")[:2000] or None) if kind == "click" else None
    offset = item.get("url_offset")
    link = None
    if kind == "click" and isinstance(offset, dict) and offset.get("type", "html") == "html":
        index = offset.get("index")
        link = index if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 100_000 else None
    agent = _text(item, "useragent")[:300] or None
    machine = 1 if kind == "open" and item.get("sg_machine_open") is True else None
    return url, link, agent, machine


def _suppression_source(kind: str, item: dict[str, Any]) -> str | None:
    if kind == "bounce":
        # "blocked" is a temporary refusal (a full mailbox, greylisting): SendGrid keeps trying those.
        return None if _text(item, "type") == "blocked" else BOUNCE
    if kind == "dropped":
        reason = _text(item, "reason")
        return next((source for prefix, source in _DROPPED.items() if reason.startswith(prefix)), None)
    return _REPORTED.get(kind)


def _text(item: Any, key: str) -> str:
    """A field as text. JSON may escape half of a surrogate pair (\\ud800), which no text holds and SQLite
    cannot store (a batch holding one was answered 500, and SendGrid would retry it for days): it becomes
    U+FFFD, as a decoder shows what it cannot read."""
    value = item.get(key) if isinstance(item, dict) else None
    if isinstance(value, str):
        # (ASCII holds no surrogate: most fields are, and the search was a third of reading a batch)
        return (value if value.isascii() else HALF_PAIR.sub("\ufffd", value)).strip()
    return str(value) if isinstance(value, int) else ""



def _when(timestamp: Any) -> str:
    try:
        return datetime.fromtimestamp(int(timestamp), UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC).isoformat(timespec="seconds")


# Gmail's and Yahoo's bulk-sender rules: keep spam complaints under 0.1 %, never reach 0.3 %.
COMPLAINT_WARN_RATE = 0.001
COMPLAINT_STOP_RATE = 0.003
OK, WARN, OVER = "ok", "warn", "over"


def complaint_level(rate: float | None) -> str | None:
    """How a complaint rate stands, as every command judges it: a warning from 0.1 %, over the limit past 0.3 %
    (where a live send refuses); None for no rate (nothing delivered)."""
    if rate is None:
        return None
    return OVER if rate > COMPLAINT_STOP_RATE else WARN if rate >= COMPLAINT_WARN_RATE else OK


@dataclass(frozen=True)
class Engagement:
    """What the provider's events say of one issue, in distinct recipients."""

    delivered: int = 0
    deferred: int = 0
    bounced: int = 0
    dropped: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    unique_opens: int = 0
    unique_clicks: int = 0

    @property
    def complaint_rate(self) -> float | None:
        """Complaints per delivered message; None before anything was delivered."""
        return self.complaints / self.delivered if self.delivered else None

    def as_dict(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "deferred": self.deferred, "bounced": self.bounced,
                "dropped": self.dropped, "complaints": self.complaints, "unsubscribes": self.unsubscribes,
                "unique_opens": self.unique_opens, "unique_clicks": self.unique_clicks,
                "complaint_rate": self.complaint_rate}


def engagement(ledger: Ledger, issue: str) -> Engagement | None:
    """The issue's event counts, or None when no event of it was ever received."""
    counts = ledger.event_counts(issue)
    if not counts:
        return None

    def people(*kinds: str) -> int:
        return sum(counts.get(kind, (0, 0))[1] for kind in kinds)

    return Engagement(delivered=people("delivered"), deferred=people("deferred"), bounced=people("bounce"),
                      dropped=people("dropped"), complaints=people("spamreport"),
                      unsubscribes=people("unsubscribe", "group_unsubscribe"), unique_opens=people("open"),
                      unique_clicks=people("click"))

"""The local suppression list: who must never be mailed, pulled from SendGrid into SQLite.

A CSV exported from somewhere else can still hold someone who unsubscribed, bounced or reported
spam. `mailer suppressions pull` copies SendGrid's suppression lists into
`<state_dir>/suppressions.sqlite3`; `mailer send` skips every address found there.

A pull fetches every page of every list first and only then replaces the local rows, in one
transaction: a pull that fails or is interrupted leaves the previous list exactly as it was.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException
from pathlib import Path
from typing import Any, NamedTuple

from mailer.addresses import HALF_PAIR, AddressError, address_key, parse_address, printable, shown_url
from mailer.audience import store
from mailer.deliver.ledger import open_database, state_transaction
from mailer.deliver.retry import RetryPolicy
from mailer.environment import Environment
from mailer.errors import ExitStatus, MailerError
from mailer.headers import header_problem

GLOBAL_UNSUBSCRIBE, GROUP_UNSUBSCRIBE, BOUNCE, SPAM_REPORT, INVALID_EMAIL = (
    "global_unsubscribe", "group_unsubscribe", "bounce", "spam_report", "invalid_email")
SOURCES = (GLOBAL_UNSUBSCRIBE, GROUP_UNSUBSCRIBE, BOUNCE, SPAM_REPORT, INVALID_EMAIL)  # SendGrid's lists
# Recorded here by `mailer serve` (a reader's click), never replaced by a pull.
UNSUBSCRIBED = "unsubscribed"
LABELS = {GLOBAL_UNSUBSCRIBE: "global unsubscribe", GROUP_UNSUBSCRIBE: "group unsubscribe", BOUNCE: "bounce",
          SPAM_REPORT: "spam report", INVALID_EMAIL: "invalid email", UNSUBSCRIBED: "unsubscribed"}

# Each source's SendGrid v3 endpoint, and whether it is paginated with limit/offset.
# https://www.twilio.com/docs/sendgrid/api-reference/suppressions-global-suppressions/retrieve-all-global-suppressions
# (and the bounces, spam reports, invalid emails pages): `limit` is the page size, at most 500;
# `offset` skips that many items. GET /v3/asm/suppressions ("Retrieve all suppressions", every
# group) documents no pagination parameters: it returns the whole list in one answer.
# Blocks (/v3/suppression/blocks) are left out on purpose: they are temporary refusals
# (4.x.x, a full mailbox, a greylisting server) that SendGrid itself does not suppress, and
# skipping them locally would quietly drop readers over a passing problem.
ENDPOINTS = {
    GLOBAL_UNSUBSCRIBE: ("suppression/unsubscribes", True),
    GROUP_UNSUBSCRIBE: ("asm/suppressions", False),
    BOUNCE: ("suppression/bounces", True),
    SPAM_REPORT: ("suppression/spam_reports", True),
    INVALID_EMAIL: ("suppression/invalid_emails", True),
}
PAGE_SIZE = 500  # SendGrid's documented maximum `limit` for these endpoints
MAX_PAGES = 20_000  # 10 million rows: a server that ignores `offset` must not loop forever
TIMEOUT_SECONDS = 30.0
SCOPE = '"Suppressions" read scope (Settings > API Keys > Restricted Access > Suppressions: Read Access)'
SCOPE_HINT = f"the key in SENDGRID_API_KEY needs the {SCOPE}"

_IDENTITY_INDEX = ("CREATE UNIQUE INDEX IF NOT EXISTS suppressions_identity "
                   "ON suppressions (address, source, COALESCE(group_id, -1))")
SCHEMA = """
CREATE TABLE IF NOT EXISTS suppressions (
    address     TEXT NOT NULL,           -- the address, case-folded: what a subscriber is matched on
    email       TEXT NOT NULL,           -- the address as SendGrid gave it
    source      TEXT NOT NULL CHECK (source IN
                    ('global_unsubscribe','group_unsubscribe','bounce','spam_report','invalid_email')),
    group_id    INTEGER,                 -- group unsubscribes only
    group_name  TEXT,
    reason      TEXT,                    -- SendGrid's reason (bounces, invalid emails)
    status      TEXT,                    -- SendGrid's enhanced SMTP status (bounces)
    created_at  TEXT,                    -- when SendGrid recorded it, ISO 8601 UTC
    pulled_at   TEXT NOT NULL
);
-- One row per address and source (and group: someone can leave several groups): _IDENTITY_INDEX.
CREATE TABLE IF NOT EXISTS pulls (
    pulled_at   TEXT NOT NULL,
    counts      TEXT NOT NULL            -- JSON: rows per source
);
-- Bounces, spam reports and unsubscribes SendGrid's Event Webhook reported to `mailer serve`, as they happened.
CREATE TABLE IF NOT EXISTS reported (
    address     TEXT NOT NULL,
    email       TEXT NOT NULL,
    source      TEXT NOT NULL,           -- one of SOURCES
    reason      TEXT,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (address, source)
);
-- This store's identity ('store', made once), and the remote service's last seen ('remote_store').
CREATE TABLE IF NOT EXISTS meta (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
-- Readers who unsubscribed through `mailer serve`: kept apart from SendGrid's lists, which a pull replaces.
CREATE TABLE IF NOT EXISTS unsubscribes (
    address     TEXT PRIMARY KEY,        -- address_key
    email       TEXT NOT NULL,
    how         TEXT NOT NULL,           -- 'one-click' (RFC 8058, from the mail client), 'page' (the button), 'email'
    list_id     TEXT NOT NULL,           -- the newsletter the link came from
    created_at  TEXT NOT NULL
);
"""
SCHEMA += _IDENTITY_INDEX + ";\n"


UNSUBSCRIBE, RESUBSCRIBE = "unsubscribe", "resubscribe"


class Click(NamedTuple):
    """A reader's click on the unsubscribe page, or their mail client's one-click request."""

    action: str  # UNSUBSCRIBE or RESUBSCRIBE
    email: str
    how: str = ""  # an unsubscribe's: 'one-click' (RFC 8058, from the mail client) or 'page' (the button)
    list_id: str = ""  # the newsletter the link came from


class PullError(MailerError):
    """A pull could not finish; the local list is unchanged."""

    exit_code = ExitStatus.DELIVERY_FAILED


class Suppression(NamedTuple):
    """One reason not to mail one address. (A tuple: a pull makes one for each of SendGrid's rows, and a
    frozen dataclass of eight fields took longer to make than the row took to read.)"""

    email: str
    source: str
    reason: str | None = None
    status: str | None = None
    group_id: int | None = None
    group_name: str | None = None
    created_at: str | None = None
    pulled_at: str | None = None

    @property
    def address(self) -> str:
        return address_key(self.email)

    def describe(self) -> str:
        """'bounce (550 mailbox unavailable)', 'group unsubscribe (Weekly News, group 12)'…"""
        label = LABELS[self.source]
        if self.source == GROUP_UNSUBSCRIBE:
            group = f"group {self.group_id}" if self.group_id is not None else None
            detail = ", ".join(part for part in (self.group_name, group) if part)
        else:
            detail = _shorten(self.reason or self.status or "")
        # printable: a bounce's reason is the reader's mail server's own words, which may hold terminal escapes.
        return printable(f"{label} ({detail})" if detail else label)


@dataclass(frozen=True)
class Pull:
    """What the last pull stored."""

    pulled_at: str
    counts: dict[str, int]
    addresses: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Screening:
    """Which of the recipients are suppressed, and why: `mailer send` skips these."""

    reasons: dict[str, str]  # recipient key (case-folded address) → "suppressed: bounce (…)"
    pulled_at: str | None  # None: no list has been pulled; nothing is screened


@dataclass(frozen=True)
class PullProgress:
    """Events for the CLI while a pull runs."""

    on_page: Callable[[str, int], None] = lambda source, fetched: None
    on_retry: Callable[[str, float], None] = lambda message, delay: None


def _rekey(db: sqlite3.Connection) -> None:
    """Re-key addresses whose key today's address_key would write differently, so that they still match.

    Version 1: pulled before addresses were NFC-composed. Version 2: keys were case-folded, and
    punycode domains were not decoded (see mailer.addresses.address_key).
    """
    for rowid, address, email in db.execute("SELECT rowid, address, email FROM suppressions").fetchall():
        if address_key(email) != address:
            # OR IGNORE: the composed form may be there already (the reason is then kept once).
            db.execute("UPDATE OR IGNORE suppressions SET address=? WHERE rowid=?", (address_key(email), rowid))
            db.execute("DELETE FROM suppressions WHERE rowid=? AND address=?", (rowid, address))


def suppressions_path(state_dir: Path) -> Path:
    return state_dir / "suppressions.sqlite3"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SuppressionList:
    """The local suppression list in SQLite (WAL: a send can read it while a pull replaces it)."""

    def __init__(self, path: Path):
        self.path = path
        self._db = open_database(path, SCHEMA, migrations=(_rekey, _rekey), table="suppressions")

    @classmethod
    def open(cls, state_dir: Path) -> SuppressionList:
        return cls(suppressions_path(state_dir))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SuppressionList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self, mode: str = "IMMEDIATE") -> Any:
        return state_transaction(self._db, self.path, mode)

    # -- reading -------------------------------------------------------------------------------

    def last_pull(self) -> Pull | None:
        with self._transaction("DEFERRED") as db:
            row = db.execute("SELECT pulled_at, counts FROM pulls ORDER BY rowid DESC LIMIT 1").fetchone()
            if row is None:
                return None
            (addresses,) = db.execute("SELECT COUNT(DISTINCT address) FROM suppressions").fetchone()
        return Pull(row[0], json.loads(row[1]), addresses)

    def pulled_at(self) -> str | None:
        """When the list was last pulled (None: never), without last_pull's counting."""
        with self._transaction("DEFERRED") as db:
            row = db.execute("SELECT pulled_at FROM pulls ORDER BY rowid DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def reasons(self, email: str) -> list[Suppression]:
        """Every reason this address is suppressed (none: it may be mailed)."""
        return self.find([email]).get(address_key(email), [])

    def addresses(self, db: Any = None) -> set[str]:
        """Every suppressed address key, whatever the reason."""
        return {address for (address,) in (db or self._db).execute(
            "SELECT address FROM suppressions UNION SELECT address FROM unsubscribes "
            "UNION SELECT address FROM reported")}

    def find(self, emails: Iterable[str], *, keyed: bool = False,
             known: set[str] | None = None) -> dict[str, list[Suppression]]:
        """The suppressed ones among `emails`, by case-folded address; fast for 100,000 addresses.

        The set of suppressed addresses is read once; only the matches are looked up in detail,
        in one read transaction so that a pull committing meanwhile cannot split the answer.
        `keyed`: the addresses are address_keys already (a parsed subscriber's `key`), not parsed again.
        `known`: the suppressed addresses, already read (see Screener).
        """
        with self._transaction("DEFERRED") as db:
            known = known if known is not None else self.addresses(db)
            hits = sorted({key for key in (emails if keyed else map(address_key, emails)) if key in known})
            found: dict[str, list[Suppression]] = {}
            for start in range(0, len(hits), 500):
                chunk = hits[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for row in db.execute(
                        f"SELECT address, {_COLUMNS} FROM suppressions WHERE address IN ({marks}) "  # noqa: S608
                        "ORDER BY address, source, group_id", chunk):
                    found.setdefault(row[0], []).append(Suppression(*row[1:]))
                for address, email, how, created_at in db.execute(
                        f"SELECT address, email, how, created_at FROM unsubscribes WHERE address IN ({marks})",  # noqa: S608
                        chunk):
                    found.setdefault(address, []).append(_unsubscribed(email, how, created_at))
                for address, email, source, reason, created_at in db.execute(
                        f"SELECT address, email, source, reason, created_at FROM reported "  # noqa: S608
                        f"WHERE address IN ({marks})", chunk):
                    found.setdefault(address, []).append(Suppression(email, source, reason=reason,
                                                                     created_at=created_at))
        return found

    # -- a reader's own click (mailer serve) ------------------------------------------------------

    def record_clicks(self, clicks: Iterable[Click]) -> list[bool]:
        """Record readers' clicks in order, in one transaction; for each, whether its address is suppressed after it.

        One transaction for many clicks: a burst of one-click requests costs one disk flush, not one
        each. An unsubscribe already recorded is kept as it was (a second click is fine); a
        resubscribe undoes only the reader's own click, and SendGrid's reasons may still hold them.
        """
        clicks = list(clicks)
        with self._transaction() as db:
            stamp = now()
            for click in clicks:
                if click.action == RESUBSCRIBE:
                    db.execute("DELETE FROM unsubscribes WHERE address=?", (address_key(click.email),))
                else:
                    db.execute("INSERT OR IGNORE INTO unsubscribes VALUES (?, ?, ?, ?, ?)",
                               (address_key(click.email), click.email, click.how, click.list_id, stamp))
        return [click.action != RESUBSCRIBE or bool(self.reasons(click.email)) for click in clicks]

    def record_reported(self, items: Iterable[Suppression]) -> int:
        """Add what the Event Webhook reported (a bounce, a spam report…); the same address and source once."""
        with self._transaction() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO reported VALUES (?, ?, ?, ?, ?)",
                           ((item.address, item.email, item.source, item.reason, item.created_at or now())
                            for item in items))
            return db.total_changes - before

    def resubscribe(self, email: str) -> bool:
        """Undo a reader's own unsubscribe (a mistaken click); SendGrid's lists are not touched."""
        with self._transaction() as db:
            return db.execute("DELETE FROM unsubscribes WHERE address=?", (address_key(email),)).rowcount == 1

    def all(self) -> Iterator[Suppression]:
        """Every row, by address: SendGrid's lists, then the readers who unsubscribed through `mailer serve`."""
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM suppressions ORDER BY address, source, group_id"):
            yield Suppression(*row)
        for email, how, created_at in self._db.execute("SELECT email, how, created_at FROM unsubscribes "
                                                       "ORDER BY address"):
            yield _unsubscribed(email, how, created_at)

    def keyed(self) -> Iterator[tuple[str, Suppression]]:
        """Every reason, with its address key as stored (no address parsed again): SendGrid's lists, the readers'
        own unsubscribes, then what the Event Webhook reported."""
        with self._transaction("DEFERRED") as db:
            for row in db.execute(f"SELECT address, {_COLUMNS} FROM suppressions"):
                yield row[0], Suppression(*row[1:])
            for address, email, how, created_at in db.execute(
                    "SELECT address, email, how, created_at FROM unsubscribes"):
                yield address, _unsubscribed(email, how, created_at)
            for address, email, source, reason, created_at in db.execute(
                    "SELECT address, email, source, reason, created_at FROM reported"):
                yield address, Suppression(email, source, reason=reason, created_at=created_at)

    def unsubscribed_here(self) -> int:
        """How many readers unsubscribed through `mailer serve` (a pull leaves them alone)."""
        with self._transaction("DEFERRED") as db:
            return db.execute("SELECT COUNT(*) FROM unsubscribes").fetchone()[0]

    def unsubscribed_between(self, start: str, end: str | None) -> list[tuple[str, str]]:
        """(address key, how) of the readers who unsubscribed through `mailer serve` from `start` until `end`."""
        with self._transaction("DEFERRED") as db:
            # julianday: the times are ISO 8601 written to the second here, to the millisecond in the ledger;
            # an unsubscribe in the send's first second is recorded as that second's start.
            return db.execute("SELECT address, how FROM unsubscribes WHERE julianday(created_at) >= "
                              "julianday(?) - 1.0 / 86400 AND (? IS NULL OR julianday(created_at) < julianday(?))",
                              (start, end, end)).fetchall()

    # -- replacing -----------------------------------------------------------------------------

    def replace(self, suppressions: Iterable[Suppression], *, pulled_at: str | None = None) -> Pull:
        """Make the list exactly `suppressions`, in one transaction: all of it or none of it."""
        stamp = pulled_at or now()
        unique: dict[tuple[str, str, int | None], Suppression] = {}
        for item in suppressions:
            unique[(item.address, item.source, item.group_id)] = item  # SendGrid's later entry wins
        counts = {source: 0 for source in SOURCES}
        for _, source, _ in unique:
            counts[source] = counts.get(source, 0) + 1
        with self._transaction() as db:
            db.execute("DELETE FROM suppressions")
            # The index is built once over all the rows rather than kept up to date row by row, and each
            # address is made into its key once (measured at 50,000: 0.8 s -> 0.5 s). `unique` holds each
            # identity once, so building the unique index fails only where inserting would have.
            db.execute("DROP INDEX IF EXISTS suppressions_identity")
            db.executemany(
                f"INSERT INTO suppressions (address, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((address, s.email, s.source, s.reason, s.status, s.group_id, s.group_name, s.created_at, stamp)
                 for (address, _, _), s in unique.items()))
            db.execute(_IDENTITY_INDEX)
            db.execute("INSERT INTO pulls VALUES (?, ?)", (stamp, json.dumps(counts)))
        return Pull(stamp, counts, len({address for address, _, _ in unique}))

    def pull(self, environment: Environment, *, timeout: float = TIMEOUT_SECONDS, retry: RetryPolicy | None = None,
             progress: PullProgress = PullProgress(), stop: threading.Event | None = None) -> Pull:
        """Fetch every list from SendGrid (and a remote `mailer serve`'s, if set), then replace the local copies.
        `environment`: SendGrid's key and host, and the remote service's address and token."""
        fetched = fetch_suppressions(key=environment.sendgrid_api_key, host=environment.sendgrid_api_host,
                                     timeout=timeout, retry=retry, progress=progress, stop=stop)
        # Before anything is replaced: all of it or none of it.
        remote = fetch_remote_export(environment, timeout=timeout)
        self._copy_remote(remote)
        pulled = self.replace(fetched)
        sync_store(self.path.parent)
        return pulled

    def pull_remote(self, environment: Environment, *, timeout: float = TIMEOUT_SECONDS) -> bool:
        """Copy a remote `mailer serve`'s lists only (MAILER_SERVE_URL), SendGrid's left as they are: for the SMTP
        backend, whose mail comes back to a mailbox instead. Whether there was one to copy."""
        remote = fetch_remote_export(environment, timeout=timeout)
        self._copy_remote(remote)
        sync_store(self.path.parent)
        return remote is not None

    def _copy_remote(self, remote: dict[str, Any] | None) -> None:
        if remote is not None:
            self.replace_readers_own(remote)
            if remote.get("readers"):  # who signed up and confirmed there is a reader here too
                with store.SubscriberStore.open(self.path.parent) as readers:
                    readers.merge_confirmed(remote["readers"])

    # -- what a `mailer serve` elsewhere holds ----------------------------------------------------

    def export(self) -> dict[str, list[dict[str, str | None]]]:
        """The readers' own unsubscribes and what the Event Webhook reported, for a pull on another machine."""
        with self._transaction("DEFERRED") as db:
            own = [{"email": e, "how": h, "list_id": n, "created_at": c}
                   for e, h, n, c in db.execute("SELECT email, how, list_id, created_at FROM unsubscribes")]
            reported = [{"email": e, "source": s, "reason": r, "created_at": c}
                        for e, s, r, c in db.execute("SELECT email, source, reason, created_at FROM reported")]
        return {"store": self.store_id(), "unsubscribes": own, "reported": reported}

    def store_id(self) -> str:
        """This suppression list's identity, made once: a service whose state folder was reset has a new one."""
        import uuid

        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('store', ?)", (uuid.uuid4().hex,))
            return db.execute("SELECT value FROM meta WHERE key='store'").fetchone()[0]

    def replace_readers_own(self, export: dict[str, Any]) -> None:
        """Make the local copies of a remote service's lists exactly its export, in one transaction.

        An empty export while copies are kept here is refused: a service whose state folder was reset
        would otherwise make the next send mail everyone who had unsubscribed through it.
        """
        with self._transaction("DEFERRED") as db:
            kept = db.execute("SELECT (SELECT COUNT(*) FROM unsubscribes) + (SELECT COUNT(*) FROM reported)"
                              ).fetchone()[0]
            seen = db.execute("SELECT value FROM meta WHERE key='remote_store'").fetchone()
        if kept and seen and seen[0] != export.get("store"):
            raise PullError(f"the mailer serve's list is not the one copied here before ({kept} unsubscribes and "
                            "reports kept here): was its state folder reset or replaced? Nothing was changed.\n"
                            "    hint: restore the service's state folder (its suppressions.sqlite3)")
        own = [(address_key(str(u["email"])), str(u["email"]), str(u["how"]), str(u.get("list_id") or ""),
                str(u["created_at"])) for u in export.get("unsubscribes", [])]
        reported = [(address_key(str(r["email"])), str(r["email"]), str(r["source"]), r.get("reason"),
                     str(r["created_at"])) for r in export.get("reported", []) if r.get("source") in SOURCES]
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('remote_store', ?)", (str(export.get("store", "")),))
            db.execute("DELETE FROM unsubscribes")
            db.execute("DELETE FROM reported")
            db.executemany("INSERT OR IGNORE INTO unsubscribes VALUES (?, ?, ?, ?, ?)", own)
            db.executemany("INSERT OR IGNORE INTO reported VALUES (?, ?, ?, ?, ?)", reported)


_COLUMNS = "email, source, reason, status, group_id, group_name, created_at, pulled_at"
EMAIL = "email"  # an unsubscribe's `how` when the reader mailed the List-Unsubscribe address (deliver.inbound)
BY_EMAIL = "by email, to the List-Unsubscribe address"
_HOW = {"one-click": "one-click, from the mail client", "page": "the unsubscribe page",
        "editor": "removed by the editor: mailer subscribers remove", EMAIL: BY_EMAIL}


def _unsubscribed(email: str, how: str, created_at: str) -> Suppression:
    return Suppression(email, UNSUBSCRIBED, reason=_HOW.get(how, how), created_at=created_at)


class Screener:
    """Suppression verdicts for a list screened a chunk at a time: the suppressed addresses are read
    once, and only a chunk's matches are looked up in detail."""

    def __init__(self, state_dir: Path):
        self._path = suppressions_path(state_dir)
        self.pulled_at: str | None = None
        self._known: set[str] = set()
        if self._path.exists():
            with SuppressionList(self._path) as suppressions:
                self.pulled_at = suppressions.pulled_at()
                self._known = suppressions.addresses()

    def reasons(self, keys: Iterable[str]) -> dict[str, str]:
        """address key → "suppressed: …" for the suppressed ones among `keys` (address keys)."""
        hits = [key for key in keys if key in self._known]
        if not hits:
            return {}
        with SuppressionList(self._path) as suppressions:
            found = suppressions.find(hits, keyed=True, known=self._known)
        return {address: "suppressed: " + "; ".join(item.describe() for item in items)
                for address, items in found.items()}


def last_pulled_at(state_dir: Path) -> str | None:
    """When the suppression list in `state_dir` was last pulled; None if never (a send's report says so)."""
    if not suppressions_path(state_dir).exists():  # never create one just to find nothing
        return None
    with SuppressionList.open(state_dir) as suppressions:
        return suppressions.pulled_at()


def screen_recipients(state_dir: Path, emails: Iterable[str], *, keyed: bool = False) -> Screening:
    """Which of `emails` the local suppression list holds; nothing at all when none was pulled.

    `keyed`: `emails` are address_keys already (see SuppressionList.find)."""
    screener = Screener(state_dir)
    return Screening(screener.reasons(emails if keyed else map(address_key, emails)), screener.pulled_at)


# -- fetching from a mailer serve on another machine ------------------------------------------

SERVE_URL_ENV, EXPORT_TOKEN_ENV = "MAILER_SERVE_URL", "MAILER_EXPORT_TOKEN"
EXPORT_PATH = "/export/suppressions"
MAX_EXPORT_BYTES = 64 * 1024 * 1024


def fetch_remote_export(environment: Environment, *, timeout: float = TIMEOUT_SECONDS) -> dict[str, Any] | None:
    """A remote `mailer serve`'s lists (MAILER_SERVE_URL, with MAILER_EXPORT_TOKEN), or None when none is set."""
    export = fetch_from_serve(environment, EXPORT_PATH, timeout=timeout)
    if export is None:
        return None
    shown = shown_url(environment.serve_url.strip().rstrip("/"))
    if not _is_export(export):
        raise PullError(f"the answer from {shown}{EXPORT_PATH} is not mailer's export (a field is missing or "
                        "of the wrong kind)")
    return export


def fetch_from_serve(environment: Environment, path: str, *, timeout: float = TIMEOUT_SECONDS) -> Any:
    """GET `path` (with its query) of the remote `mailer serve` at MAILER_SERVE_URL, opened by MAILER_EXPORT_TOKEN
    (both from `environment`): its JSON, checked to be UTF-8 text throughout; None when MAILER_SERVE_URL is not
    set. PullError otherwise."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    from mailer.deliver.backends.sendgrid import NoRedirects

    base = environment.serve_url.strip().rstrip("/")
    if not base:
        return None
    token = environment.export_token.strip()
    shown = shown_url(base)  # in every message: never a user name or password
    try:
        parts = urlsplit(base)
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:  # an unclosed [ of an IPv6 address, a port that is no number
        raise PullError(f"{SERVE_URL_ENV} is not a URL: {shown!r}") from None
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise PullError(f"{SERVE_URL_ENV} must be an https address (the export carries readers' addresses)")
    if "@" in base:
        # urllib would try to reach a host named `user:pass@host`: they can only fail, or leak. An @ past
        # the host (a password with a / in it) is one too: the part before it would be taken for the host.
        raise PullError(f"{SERVE_URL_ENV} holds a user name or password ({shown}): mailer sends them nowhere, "
                        f"and the export is opened by {EXPORT_TOKEN_ENV} instead\n"
                        f"    hint: export {SERVE_URL_ENV}={shown.replace('***@', '', 1)}")
    if token and not (token.isascii() and token.isprintable() and " " not in token):
        # It goes into a header: a line break would end it (and urllib would print it in its error).
        raise PullError(f"{EXPORT_TOKEN_ENV} holds a space, a line break or a character outside ASCII (the value is "
                        "not shown)\n    hint: use the same letters-and-digits token as on the mailer serve's machine")
    if not token:
        raise PullError(f"{SERVE_URL_ENV} is set but {EXPORT_TOKEN_ENV} is not: the service only answers with it")
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}",
                                                           "Accept": "application/json"})
    shown_path = path.split("?", 1)[0]
    # No redirects: urllib would carry the bearer token to wherever a redirect points, http included.
    opener = urllib.request.build_opener(NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as answer:
            data = _read_within(answer, MAX_EXPORT_BYTES + 1, deadline=time.monotonic() + timeout * 4, shown=shown)
    except urllib.error.HTTPError as err:
        hint = f"; check {EXPORT_TOKEN_ENV} (the same value on both machines)" if err.code in (401, 403) else ""
        if err.code == 404 and shown_path != EXPORT_PATH:
            hint = "; is the mailer serve there older than this mailer? (update it)"
        what = "the export" if shown_path == EXPORT_PATH else shown_path
        raise PullError(f"the mailer serve at {shown} answered {err.code} to {what}{hint}") from None
    except (urllib.error.URLError, OSError, HTTPException) as err:
        raise PullError(f"cannot reach the mailer serve at {shown}: {getattr(err, 'reason', err)}") from None
    if len(data) > MAX_EXPORT_BYTES:
        raise PullError(f"the answer from {shown}{shown_path} is larger than {MAX_EXPORT_BYTES // 1024 // 1024} MB")
    try:
        text = _utf8(data)
        found = json.loads(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; JSON nested too deep
        raise PullError(f"the answer from {shown}{shown_path} is not mailer's export (not JSON in UTF-8)") from None
    if not _all_text(text, found):
        raise PullError(f"the answer from {shown}{shown_path} holds {_NOT_TEXT}: is {SERVE_URL_ENV} the "
                        "mailer serve's address?")
    return found


def _read_within(answer: Any, limit: int, *, deadline: float, shown: str) -> bytes:
    """At most `limit` bytes of an answer, read before `deadline` (time.monotonic): the socket's timeout bounds
    each read only, and a server sending a byte a second would hold a report or a pull for ever."""
    chunks, size = [], 0
    while size < limit:
        if time.monotonic() > deadline:
            raise PullError(f"the mailer serve at {shown} sends its answer too slowly: given up")
        chunk = answer.read1(min(65536, limit - size)) if hasattr(answer, "read1") else answer.read(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _is_export(export: Any) -> bool:
    """Every field there and a string (reason: a string or null): what SuppressionList.export writes."""
    def strings(item: Any, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> bool:
        return (isinstance(item, dict) and all(isinstance(item.get(key), str) for key in keys)
                and all(item.get(key) is None or isinstance(item.get(key), str) for key in optional))

    def reader(item: Any) -> bool:  # a confirmed reader of the service's subscriber store, with their consents
        return (strings(item, ("email", "first_name", "last_name", "confirmed_at"))
                and isinstance(item.get("tags"), list) and all(isinstance(tag, str) for tag in item["tags"])
                and isinstance(item.get("consents"), list)
                and all(strings(c, ("given_at", "form", "text", "version"), ("ip",)) for c in item["consents"])
                and _valid_address(item["email"])
                and not any(header_problem(item[name]) for name in ("first_name", "last_name")))

    return (isinstance(export, dict) and isinstance(export.get("store"), str)
            and isinstance(export.get("unsubscribes"), list)
            and isinstance(export.get("reported"), list)
            and all(strings(u, ("email", "how", "created_at"), ("list_id",)) for u in export["unsubscribes"])
            and all(strings(r, ("email", "source", "created_at"), ("reason",)) for r in export["reported"])
            and isinstance(export.get("readers", []), list)
            and all(reader(item) for item in export.get("readers", [])))


def _valid_address(text: str) -> bool:
    """Whether `text` is an address exactly as mailer's grammar gives it (a remote store's readers are mailed)."""
    try:
        return parse_address(text) == text and header_problem(text) is None
    except AddressError:
        return False


# -- fetching from SendGrid --------------------------------------------------------------------


def fetch_suppressions(*, key: str, host: str = "", timeout: float = TIMEOUT_SECONDS,
                       retry: RetryPolicy | None = None, progress: PullProgress = PullProgress(),
                       stop: threading.Event | None = None) -> list[Suppression]:
    """Every page of every source, or PullError; nothing is kept of a pull that did not finish. `key` and `host`:
    SENDGRID_API_KEY's and SENDGRID_API_HOST's values (checked here; no host: SendGrid's own)."""
    from mailer.deliver.backends.sendgrid import api_host, api_key

    key = api_key(key, "pulling the suppression list needs a SendGrid API key", f", a key with the {SCOPE}")
    client = _Client(key, api_host(host), timeout, retry or RetryPolicy(), progress, stop or threading.Event())
    fetched: list[Suppression] = []
    for source in SOURCES:
        path, paginated = ENDPOINTS[source]
        if paginated:
            fetched.extend(_suppression(source, row) for row in client.pages(source, path))
        else:
            rows = client.get(path, None)
            fetched.extend(_suppression(source, row) for row in rows)
            progress.on_page(source, len(rows))
    return fetched


class _Client:
    """GET requests to SendGrid as its library makes them (api_request), with its pagination and retries."""

    def __init__(self, key: str, host: str, timeout: float, retry: RetryPolicy, progress: PullProgress,
                 stop: threading.Event):
        from sendgrid import SendGridAPIClient  # imported on first use only, as the backend does

        self._sendgrid = SendGridAPIClient(api_key=key, host=host)
        self.host = shown_url(host)  # as it is shown: never a user name or password
        self.timeout = timeout
        self.retry = retry
        self.progress = progress
        self.stop = stop

    def pages(self, source: str, path: str) -> Iterator[dict[str, Any]]:
        offset = 0
        for _ in range(MAX_PAGES):
            page = self.get(path, {"limit": PAGE_SIZE, "offset": offset})
            yield from page
            offset += len(page)
            self.progress.on_page(source, offset)
            # A short page is the last one (SendGrid documents no total or next link for these lists).
            if len(page) < PAGE_SIZE:
                return
            if len(page) > PAGE_SIZE:  # the server ignored `limit`, so it sent everything it had
                return
        raise PullError(f"SendGrid kept sending full pages of /v3/{path} after {MAX_PAGES} of them; "
                        "stopped. The local suppression list is unchanged.")

    def get(self, path: str, query: dict[str, int] | None) -> list[dict[str, Any]]:
        """One GET, retried on 429, 5xx and network errors (a GET is safe to repeat)."""
        from python_http_client import exceptions as http

        from mailer.deliver.backends.sendgrid import _errors, _retry_after, api_request

        shown = f"GET /v3/{path}" + (f"?limit={query['limit']}&offset={query['offset']}" if query else "")
        last = ""
        for attempt in range(self.retry.attempts):
            retry_after: float | None = None
            try:
                _, answer = api_request(self._sendgrid.client, "GET", f"/{path}", query=query, timeout=self.timeout)
            except (http.UnauthorizedError, http.ForbiddenError) as err:
                raise PullError(f"SendGrid refused the API key ({err.status_code}) for {shown}: {_errors(err)}\n"
                                f"    hint: {SCOPE_HINT}. The local suppression list is unchanged.") from None
            except http.TooManyRequestsError as err:
                last, retry_after = f"SendGrid is throttling (429): {_errors(err)}", _retry_after(err)
            except http.HTTPError as err:
                if not 500 <= int(err.status_code) < 600:
                    raise PullError(f"SendGrid answered {err.status_code} to {shown}: {_errors(err)}\n"
                                    "    The local suppression list is unchanged.") from None
                last, retry_after = f"SendGrid answered {err.status_code}: {_errors(err)}", _retry_after(err)
            except (HTTPException, OSError) as err:  # URLError, timeouts, a connection that broke off
                reason = getattr(err, "reason", None) or err  # URLError wraps what went wrong
                shown_reason = printable(reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}")
                last = f"no answer from SendGrid at {self.host}: {shown_reason}"
            else:
                return _json_list(answer, shown)
            if attempt + 1 == self.retry.attempts:
                break
            delay = self.retry.delay(attempt, retry_after)
            self.progress.on_retry(f"{shown}: {last}", delay)
            if self.stop.wait(delay):
                raise PullError("stopped while waiting to retry; the local suppression list is unchanged")
        raise PullError(f"{shown} failed {self.retry.attempts} times; the last error: {last}\n"
                        "    The local suppression list is unchanged; run the pull again later.")


def _json_list(body: bytes | str, shown: str) -> list[dict[str, Any]]:
    """The documented answer: a JSON list of objects with an `email`."""
    try:
        text = _utf8(body)
        data = json.loads(text or "[]")
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; JSON nested too deep
        text, data = "", None
    if not isinstance(data, list) or not all(isinstance(item, dict) and item.get("email") for item in data):
        raise PullError(f"SendGrid's answer to {shown} is not a list of suppressions: {str(body)[:200]}\n"
                        "    The local suppression list is unchanged.")
    if not _all_text(text, data):
        raise PullError(f"SendGrid's answer to {shown} holds {_NOT_TEXT}: is SENDGRID_API_HOST SendGrid's?\n"
                        "    The local suppression list is unchanged.")
    return data


def _utf8(body: bytes | str) -> str:
    """An answer's text: JSON is UTF-8 (RFC 8259). Decoded strictly here, as json.loads would not: given
    bytes it also reads UTF-16 and UTF-32, and lets a surrogate encoded in UTF-8 through."""
    return body.decode("utf-8") if isinstance(body, bytes) else body


# JSON may escape half of a surrogate pair on its own (\ud800), which no text holds: the sqlite3 module
# cannot store it, and a pull that met one stopped on a UnicodeEncodeError's traceback.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_NOT_TEXT = "half of a surrogate pair (an escape from \\ud800 to \\udfff without its other half), which is no text"


def _all_text(text: str, data: Any) -> bool:
    """Whether `data`, read as JSON from `text` (strict UTF-8: _utf8), holds only text UTF-8 can store.
    Only an answer with such an escape in it is looked at closely (an emoji's pair is one too): a page
    of 500 rows costs nothing."""
    return not _ESCAPED_SURROGATE.search(text) or not HALF_PAIR.search(json.dumps(data, ensure_ascii=False))


def _suppression(source: str, row: dict[str, Any]) -> Suppression:
    """One SendGrid row as a Suppression (the fields each endpoint documents)."""
    get = row.get
    created = get("created_at" if source == GROUP_UNSUBSCRIBE else "created")
    group_id = get("group_id")
    if group_id is not None:  # absent from every list but the group unsubscribes
        # isdecimal, not isdigit ("²" is a digit int() refuses); SQLite's integers are 64-bit.
        group_id = int(group_id) if isinstance(group_id, int) or str(group_id).isdecimal() else None
        if group_id is not None and not 0 <= group_id < 2**63:
            group_id = None
    return Suppression(str(row["email"]).strip(), source, _text(get("reason")), _text(get("status")), group_id,
                       _text(get("group_name")), _timestamp(created))


def _text(value: Any) -> str | None:
    return (str(value).strip() or None) if value is not None else None


def _timestamp(value: Any) -> str | None:
    """SendGrid's Unix time as ISO 8601 UTC (None when absent or unreadable)."""
    try:
        return datetime.fromtimestamp(float(value), UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"



# What each reason to suppress an address makes of a reader in the subscriber store.
STORE_STATUS = {GLOBAL_UNSUBSCRIBE: store.UNSUBSCRIBED, GROUP_UNSUBSCRIBE: store.UNSUBSCRIBED,
                UNSUBSCRIBED: store.UNSUBSCRIBED, BOUNCE: store.BOUNCED, INVALID_EMAIL: store.BOUNCED,
                SPAM_REPORT: store.COMPLAINED}


def mark_in_store(state_dir: Path, suppressions: Iterable[Suppression]) -> int:
    """The subscriber store's readers among `suppressions` take their status (no store: nothing is made).

    A damaged store raises StateError; the suppression list, which a send obeys, has them already.
    """
    readers = store.SubscriberStore.open_existing(state_dir)
    if readers is None:
        return 0
    with readers:
        return readers.set_status((item.email, STORE_STATUS[item.source], item.describe())
                                  for item in suppressions if item.source in STORE_STATUS)


def sync_store(state_dir: Path) -> int:
    """Bring the subscriber store in line with the whole suppression list (after a pull, before the store is
    read): a pending or confirmed reader who is suppressed takes the status of the reason. No store: nothing."""
    readers = store.SubscriberStore.open_existing(state_dir)
    if readers is None:
        return 0
    suppressed: dict[str, tuple[str, str]] = {}
    with SuppressionList.open(state_dir) as suppressions:
        for address, item in suppressions.keyed():
            if item.source in STORE_STATUS and address not in suppressed:
                suppressed[address] = (STORE_STATUS[item.source], item.describe())
    with readers:
        return readers.apply_suppressed(suppressed)

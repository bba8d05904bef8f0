"""The per-recipient send record in SQLite: what was accepted, what failed, what is uncertain.

The rule that keeps anyone from receiving an issue twice: a row is written `sending` (and
committed) before its request leaves, and `accepted` only after the provider says so. A row
found still `sending` by a later run was interrupted between the two, so it becomes `uncertain`
and is never resent unless the user asks (--resend-uncertain).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailer.errors import ExitStatus, MailerError
from mailer.files import PRIVATE_FILE, private_folder

# The state databases' common ground, used here and by the other stores (re-exported for their callers).
from mailer.statedb import (  # noqa: F401
    StateError,
    check_writable,
    damaged,
    is_state_fault,
    open_database,
    state_failure,
    state_transaction,
)

QUEUED, SENDING, ACCEPTED, FAILED, UNCERTAIN, CANCELLED = (
    "queued", "sending", "accepted", "failed", "uncertain", "cancelled")
STATES = (QUEUED, SENDING, ACCEPTED, FAILED, UNCERTAIN, CANCELLED)

EVENT_COLUMNS = "event_id, issue, recipient, event, at, detail, url, link, agent, machine"

# What SendGrid's Event Webhook reported (mailer serve), once per event: SendGrid retries (the unique index
# events_once, made by the migrations, keeps them out; it also finds a reader's events).
_EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    event_id     TEXT NOT NULL,          -- sg_event_id
    issue        TEXT NOT NULL,          -- the send's issue key (custom_args mailer_issue)
    recipient    TEXT NOT NULL,          -- address_key of the event's email
    event        TEXT NOT NULL,          -- processed, delivered, deferred, bounce, dropped, spamreport, …
    at           TEXT NOT NULL,          -- when SendGrid saw it, ISO 8601 UTC
    detail       TEXT,                   -- a bounce's or drop's reason
    url          TEXT,                   -- a click's link, as written in the issue
    link         INTEGER,                -- a click's position among the HTML part's links (url_offset.index)
    agent        TEXT,                   -- an open's or click's user agent: security gateways tell themselves
    machine      INTEGER                 -- 1: an open SendGrid flagged as a machine's (sg_machine_open)
);
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    issue       TEXT NOT NULL,
    recipient   TEXT NOT NULL,           -- the address, case-folded: the identity
    email       TEXT NOT NULL,           -- the address as it was sent to
    state       TEXT NOT NULL CHECK (state IN ('queued','sending','accepted','failed','uncertain','cancelled')),
    batch       TEXT,
    message_id  TEXT,
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (issue, recipient)
);
CREATE TABLE IF NOT EXISTS test_sends (
    issue        TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    message_id   TEXT,
    sent_at      TEXT NOT NULL
);
""" + _EVENTS_TABLE + """
CREATE TABLE IF NOT EXISTS newsletters (
    issue        TEXT PRIMARY KEY,       -- the issue key, as in deliveries
    list_id      TEXT NOT NULL,          -- the newsletter that sends it (RFC 2919 List-Id)
    claimed_at   TEXT NOT NULL
);
-- A send that left nothing to do for a list: the same command again answers from here instead of
-- planning the whole list against the ledger (Ledger.finished says when it still holds).
CREATE TABLE IF NOT EXISTS finished (
    issue        TEXT PRIMARY KEY,
    list         TEXT NOT NULL,          -- the list's key: its bytes and how they were read (listcache)
    rows         INTEGER NOT NULL,       -- the issue's rows in deliveries then, all of them accepted
    report       TEXT NOT NULL,          -- JSON: what that send's report said (live.finished_send)
    at           TEXT NOT NULL
);
-- What a live send asked SendGrid to track (mailer.yaml's `tracking:`); NULL: the account's setting.
CREATE TABLE IF NOT EXISTS tracking (
    issue        TEXT PRIMARY KEY,
    backend      TEXT NOT NULL,
    clicks       INTEGER,
    opens        INTEGER,
    at           TEXT NOT NULL
);
-- A row removed or re-keyed (a migration, a hand edit) voids the record; a send never does either,
-- so these cost it nothing. Any other change leaves a row not accepted or another count (finished).
CREATE TRIGGER IF NOT EXISTS finished_void_on_delete AFTER DELETE ON deliveries BEGIN
    DELETE FROM finished WHERE issue = OLD.issue;
END;
CREATE TRIGGER IF NOT EXISTS finished_void_on_rekey AFTER UPDATE OF issue, recipient ON deliveries BEGIN
    DELETE FROM finished WHERE issue IN (OLD.issue, NEW.issue);
END;
-- How far the events of a remote `mailer serve` (MAILER_SERVE_URL) were copied here: its last event's rowid.
CREATE TABLE IF NOT EXISTS remote_events (
    source       TEXT PRIMARY KEY,       -- the service's address, without credentials
    after        INTEGER NOT NULL
);
-- The command of the last live send of each issue, as given, and the folder it ran in: what
-- `mailer status` prints as the command that resumes a send that stopped before it finished.
CREATE TABLE IF NOT EXISTS runs (
    issue        TEXT PRIMARY KEY,
    command      TEXT NOT NULL,
    folder       TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    ended_at     TEXT                    -- NULL: the send never reached its end (killed, or running)
);
CREATE TABLE IF NOT EXISTS schedules (
    issue        TEXT NOT NULL,
    schedule_id  TEXT NOT NULL,          -- SendGrid's batch_id
    send_at      TEXT NOT NULL,
    state        TEXT NOT NULL,          -- scheduled | cancelled
    created_at   TEXT NOT NULL
);
"""


class LockedError(MailerError):
    exit_code = ExitStatus.DELIVERY_FAILED


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Row:
    recipient: str
    email: str
    state: str
    message_id: str | None
    error: str | None
    updated_at: str


# How far a row got: when two rows turn out to be one reader, the one that got further is kept.
_PROGRESS = {QUEUED: 0, CANCELLED: 1, FAILED: 2, SENDING: 3, UNCERTAIN: 4, ACCEPTED: 5}


def _rekey(db: sqlite3.Connection) -> None:
    """Re-key every row whose key today's address_key would write differently.

    Version 1: keys written before addresses were NFC-composed. Without this, 'josé' accepted under
    its decomposed key would be a new reader to a newer release, and be sent the issue again.
    Version 2: keys were case-folded (which merged 'straße@' into 'strasse@') and punycode domains
    were their own readers; they are now lower-cased, with the IDNA-decoded domain.
    """
    from mailer.addresses import address_key

    for issue, old, email, state in db.execute("SELECT issue, recipient, email, state FROM deliveries").fetchall():
        new = address_key(email)
        if new == old:
            continue
        other = db.execute("SELECT state FROM deliveries WHERE issue=? AND recipient=?", (issue, new)).fetchone()
        if other is None or _PROGRESS[state] > _PROGRESS[other[0]]:
            db.execute("DELETE FROM deliveries WHERE issue=? AND recipient=?", (issue, new))
            db.execute("UPDATE deliveries SET recipient=? WHERE issue=? AND recipient=?", (new, issue, old))
        else:
            db.execute("DELETE FROM deliveries WHERE issue=? AND recipient=?", (issue, old))


def _drop_state_index(db: sqlite3.Connection) -> None:
    """Version 3: no index on (issue, state). Every row of a send changes state twice, and each change
    moved the row in that index too: a third of the ledger's time in a large send. What asks for rows
    by state (status, recovery) reads the issue's rows through the primary key instead: measured on a
    million rows, 0.2 s to find the uncertain (was milliseconds) and 0.55 s to count them by state."""
    db.execute("DROP INDEX IF EXISTS deliveries_state")


def _event_details(db: sqlite3.Connection) -> None:
    """Version 4: events keep a click's link and position, a user agent and SendGrid's machine-open flag:
    what `mailer report` tells people from scanners and cards apart with. Older events have none (NULL)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    for column, kind in (("url", "TEXT"), ("link", "INTEGER"), ("agent", "TEXT"), ("machine", "INTEGER")):
        if column not in have:
            db.execute(f"ALTER TABLE events ADD COLUMN {column} {kind}")
    # mailer report counts each kind of event by reader: this index answers those counts without the table.
    db.execute("CREATE INDEX IF NOT EXISTS events_by_kind ON events (issue, event, recipient, machine)")


def _events_once(db: sqlite3.Connection) -> None:
    """Version 5: an event is kept once by (issue, recipient, sg_event_id), in one index that also finds a
    reader's events, instead of a primary key on sg_event_id and an index on (issue, recipient): each event
    went to three indexes at random places, and at a ledger of 3,000,000 events a webhook batch of 1,000
    dirtied ~3,300 pages, written twice (the log, then the file). Two indexes: a third less of each batch.
    A table made before (its primary key cannot be dropped) is made again, its rows in their order."""
    if any(row[5] for row in db.execute("PRAGMA table_info(events)")):  # a primary key: made before version 5
        db.execute("ALTER TABLE events RENAME TO events_before_5")
        db.execute(_EVENTS_TABLE)
        db.execute(f"INSERT INTO events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM events_before_5 ORDER BY rowid")
        db.execute("DROP TABLE events_before_5")  # (and its indexes, events_by_kind among them: made again below)
    db.execute("DROP INDEX IF EXISTS events_recipient")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS events_once ON events (issue, recipient, event_id)")
    db.execute("CREATE INDEX IF NOT EXISTS events_by_kind ON events (issue, event, recipient, machine)")


def _pairs_json(recipients: Iterable[tuple[str, str]]) -> str:
    """(key, email) pairs as one JSON array, for one statement over json_each (a third faster than
    executemany): the key alone where it is the address as sent, as it is for most readers (a key is
    the address in lower case), else [key, email]; _PAIR_KEY and _PAIR_EMAIL read either back. A
    quarter less of a send's first ledger write than pairs throughout."""
    return json.dumps([key if key == email else (key, email) for key, email in recipients], ensure_ascii=False)


_PAIR_KEY = "CASE type WHEN 'text' THEN value ELSE json_extract(value, '$[0]') END"
_PAIR_EMAIL = "CASE type WHEN 'text' THEN value ELSE json_extract(value, '$[1]') END"


class Ledger:
    def __init__(self, path: Path):
        self.path = path
        self._due_are_all = False  # see start_due
        self._db = open_database(path, SCHEMA, migrations=(_rekey, _rekey, _drop_state_index, _event_details,
                                                           _events_once), table="deliveries")

    def check_writable(self) -> None:
        check_writable(self._db, self.path)

    def check_newsletter(self, issue: str, list_id: str, *, claim: bool) -> None:
        """Refuse an issue of this ledger that another newsletter sends; with `claim`, record this one as its sender.

        Two newsletters sharing a state folder may both have an issue called 2020-12-13: without
        this, the second would find the first one's readers "accepted" and send nothing, or count
        its own readers as the first one's. Rows written before owners were recorded are claimed
        by the first newsletter that sends the issue.
        """
        rows = self._query("SELECT list_id FROM newsletters WHERE issue=?", (issue,))
        if rows and rows[0][0] != list_id:
            raise StateError(
                f"{self.path} records issue {issue} as sent by another newsletter, {rows[0][0]}; this workspace "
                f"is {list_id}. Nothing was sent.\n"
                "    hint: give each newsletter its own state folder (the default, .mailer/ in each workspace, does; "
                "a shared MAILER_STATE_DIR does not); if this is the same newsletter under a new name or "
                "web_base_url, put the old ones back until this issue is sent")
        if claim and not rows:
            with self._transaction() as db:
                db.execute("INSERT OR IGNORE INTO newsletters VALUES (?, ?, ?)", (issue, list_id, now()))

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as err:  # a file damaged after it was opened: never a traceback
            raise state_failure(self.path, err) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> Any:
        return state_transaction(self._db, self.path)

    def _statement(self, sql: str, params: tuple) -> sqlite3.Cursor:
        """One statement as its own transaction (SQLite's autocommit: all of it or none, durable on return).

        Where a transaction holds one statement, this is what a send's per-batch writes use: BEGIN and
        COMMIT are two more waits for the GIL, which the sending threads hold while preparing requests.
        """
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as err:
            if not is_state_fault(err):
                raise
            raise state_failure(self.path, err) from None

    # -- planning ------------------------------------------------------------------------------

    def recover_interrupted(self, issue: str) -> int:
        """Rows left `sending` by a run that died: their requests may have left. Mark them uncertain."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE deliveries SET state=?, error=?, updated_at=? WHERE issue=? AND state=?",
                (UNCERTAIN, "interrupted after the request was prepared: it may have been delivered",
                 now(), issue, SENDING))
            return cursor.rowcount

    def states(self, issue: str) -> dict[str, str]:
        return dict(self._query("SELECT recipient, state FROM deliveries WHERE issue=?", (issue,)))

    def start_due(self, issue: str) -> bool:
        """Begin a fresh list of the recipients of `issue` due in this run (a temporary table of this
        connection, on disk: a send of a million needs no set of a million in memory).

        True when the issue has no row yet (its first send): with the issue locked, every row it has
        at the end is one of those due, so none is listed (add_due does nothing, due_states counts the
        issue's rows) and the caller has no state to look up: 1.3 s of a first send of a million.
        """
        try:
            self._due_are_all = not self._db.execute("SELECT EXISTS (SELECT 1 FROM deliveries WHERE issue=?)",
                                                     (issue,)).fetchone()[0]
            if not self._due_are_all:
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS due (key TEXT PRIMARY KEY) WITHOUT ROWID")
                self._db.execute("DELETE FROM temp.due")
        except sqlite3.Error as err:
            raise state_failure(self.path, err) from None
        return self._due_are_all

    def add_due(self, keys: Iterable[str]) -> None:
        if not self._due_are_all:  # `keys` not even read: in a first send, a million keys made for nothing
            self._statement("INSERT OR IGNORE INTO temp.due SELECT value FROM json_each(?)",
                            (json.dumps(list(keys)),))

    def due_states(self, issue: str) -> dict[str, int]:
        """How many of the recipients due in this run (start_due, add_due) are in each state."""
        if self._due_are_all:
            return dict(self._query("SELECT state, COUNT(*) FROM deliveries WHERE issue=? GROUP BY state", (issue,)))
        return dict(self._query("SELECT d.state, COUNT(*) FROM temp.due AS i JOIN deliveries AS d "
                                "ON d.issue = ? AND d.recipient = i.key GROUP BY d.state", (issue,)))

    def states_of(self, issue: str, keys: list[str]) -> dict[str, str]:
        """The states of these recipients only (a chunk of a long list), by key."""
        return dict(self._query("SELECT recipient, state FROM deliveries WHERE issue=? AND recipient IN "
                                "(SELECT value FROM json_each(?))", (issue, json.dumps(keys))))

    def queue(self, issue: str, recipients: Iterable[tuple[str, str]]) -> None:
        """Record (key, email) pairs as queued; existing rows are left as they are."""
        stamp = now()
        self._statement(
            "INSERT OR IGNORE INTO deliveries (issue, recipient, email, state, created_at, updated_at) "
            f"SELECT ?, {_PAIR_KEY}, {_PAIR_EMAIL}, 'queued', ?, ? FROM json_each(?)",
            (issue, stamp, stamp, _pairs_json(recipients)))

    # -- the send itself -----------------------------------------------------------------------

    def mark_sending(self, issue: str, recipients: list[tuple[str, str]], batch: str) -> None:
        """Record (key, email) pairs as `sending` in `batch`, queued or not before: a send queues its
        readers as it reaches them (one statement a batch instead of two), and the ones it did not
        reach when it stops (Ledger.queue)."""
        stamp = now()
        self._statement(
            "INSERT INTO deliveries (issue, recipient, email, state, batch, attempts, created_at, updated_at) "
            f"SELECT ?, {_PAIR_KEY}, {_PAIR_EMAIL}, 'sending', ?, 1, ?, ? "
            "FROM json_each(?) WHERE true "  # `WHERE true`: SQLite's rule for an upsert fed by a SELECT
            "ON CONFLICT (issue, recipient) DO UPDATE SET state='sending', batch=excluded.batch, error=NULL, "
            "attempts=attempts+1, updated_at=excluded.updated_at",
            (issue, batch, stamp, stamp, _pairs_json(recipients)))

    def mark(self, issue: str, keys: list[str], state: str, *, message_id: str | None = None,
             error: str | None = None) -> None:
        # One statement for the whole batch (its keys as one JSON array): half the time of a
        # statement per recipient, which a send of 100,000 does 100,000 times.
        self._statement(
            "UPDATE deliveries SET state=?, message_id=COALESCE(?, message_id), error=?, updated_at=? "
            "WHERE issue=? AND recipient IN (SELECT value FROM json_each(?))",
            (state, message_id, error, now(), issue, json.dumps(keys)))

    # -- a send with nothing left to do --------------------------------------------------------

    def record_finished(self, issue: str, list_key: str, report: dict[str, Any]) -> None:
        """Remember that the list keyed `list_key` has nobody left to send `issue` to (see finished)."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO finished SELECT ?, ?, COUNT(*), ?, ? FROM deliveries WHERE issue=?",
                       (issue, list_key, json.dumps(report, ensure_ascii=False), now(), issue))

    def finished(self, issue: str, list_keys: Iterable[str]) -> tuple[dict[str, Any], str] | None:
        """The report recorded with record_finished and when, if it still holds: the list is the one
        recorded (one of `list_keys`), and the issue's rows are as many as then and all accepted. A row
        removed or re-keyed voids the record (the triggers in SCHEMA), so each reader accepted then still
        is, whatever ran meanwhile (a cancel, a send of another list, an interrupted run, an edit by hand)."""
        found = self._query("SELECT rows, report, at FROM finished WHERE issue=? AND list IN "
                            "(SELECT value FROM json_each(?))", (issue, json.dumps(list(list_keys))))
        if not found:
            return None
        rows, report, at = found[0]
        count, not_accepted = self._query(
            "SELECT COUNT(*), TOTAL(state != 'accepted') FROM deliveries WHERE issue=?", (issue,))[0]
        if count != rows or not_accepted:
            return None
        try:
            recorded = json.loads(report)
        except ValueError:  # written by hand or by something else: no record
            return None
        return (recorded, at) if isinstance(recorded, dict) else None

    # -- reading -------------------------------------------------------------------------------

    def counts(self, issue: str) -> dict[str, int]:
        found = dict(self._query("SELECT state, COUNT(*) FROM deliveries WHERE issue=? GROUP BY state", (issue,)))
        return {state: found.get(state, 0) for state in STATES}

    def rows(self, issue: str, states: Iterable[str]) -> list[Row]:
        wanted = list(states)
        marks = ",".join("?" * len(wanted))
        return [Row(*r) for r in self._query(
            f"SELECT recipient, email, state, message_id, error, updated_at FROM deliveries "  # noqa: S608
            f"WHERE issue=? AND state IN ({marks}) ORDER BY updated_at, recipient", (issue, *wanted))]

    def sent_to(self, keys: Iterable[str]) -> set[str]:
        """The ones among `keys` (address keys) that some issue's request carried: accepted, uncertain or in
        flight. (No index on the address alone: a bounce or two at a time, a scan of the table each.)"""
        keys = sorted(set(keys))
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            found.update(key for (key,) in self._query(
                f"SELECT DISTINCT recipient FROM deliveries WHERE state IN (?, ?, ?) "  # noqa: S608
                f"AND recipient IN ({','.join('?' * len(chunk))})", (ACCEPTED, UNCERTAIN, SENDING, *chunk)))
        return found

    def issues(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT issue FROM deliveries ORDER BY issue")]

    def sent_issues(self) -> set[str]:
        """The issues some reader got (or may have got: uncertain): their "view in browser" links are out."""
        return {r[0] for r in self._query("SELECT DISTINCT issue FROM deliveries WHERE state IN (?, ?)",
                                          (ACCEPTED, UNCERTAIN))}

    # -- provider events ---------------------------------------------------------------------

    def record_events(self, events: Iterable[tuple[Any, ...]]) -> int:
        """Store (event_id, issue, recipient, event, at, detail[, url, link, agent, machine]) rows, skipping
        events seen before; count the new."""
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(f"INSERT OR IGNORE INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (tuple(event) + (None,) * (10 - len(event)) for event in events))
            return db.total_changes - before

    def defer_checkpoints(self) -> None:
        """Commits on this connection leave the write-ahead log as it is: checkpoint() copies it into the file.

        For mailer serve's webhook writer: a batch of 1,000 events into a ledger of millions dirties ~2,200
        pages (two indexes, each at random places), and copying them at every commit was a third of the
        request's time; the service copies the log after answering a batch, once it has grown (pages that
        several batches dirtied are copied once), and when the batches stop.
        """
        self._statement("PRAGMA wal_autocheckpoint=0", ())

    def keep_pages(self, mib: int) -> None:
        """Keep up to `mib` MiB of the file's pages in this connection's cache (SQLite's default: 2 MiB).

        For mailer serve's webhook writer: a batch's ~2,200 dirty pages no longer spill to the log before
        the commit, and the indexes' inner pages stay (a batch's commit 61 -> 51 ms at 3,000,000 events).
        """
        self._statement(f"PRAGMA cache_size=-{int(mib) * 1024}", ())

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file as far as no reader still needs it (PASSIVE: never
        waits for a reader or a writer)."""
        self._query("PRAGMA wal_checkpoint(PASSIVE)")

    def event_counts(self, issue: str) -> dict[str, tuple[int, int]]:
        """Per event type: (events, distinct recipients).

        Each kind's readers are counted along events_by_kind, where they stand in order: COUNT(DISTINCT)
        over the whole issue built a temporary B-tree of every reader of every kind instead (at 3,000,000
        events, 1.0 s of CPU against 0.6). The kinds are found by skipping from one to the next in the index.
        """
        return {event: (count, people) for event, count, people in self._query(
            "WITH RECURSIVE kinds(kind) AS (SELECT MIN(event) FROM events WHERE issue=?1 "
            "UNION ALL SELECT (SELECT MIN(event) FROM events WHERE issue=?1 AND event > kind) FROM kinds "
            "WHERE kind IS NOT NULL) "
            "SELECT kind, (SELECT COUNT(*) FROM events WHERE issue=?1 AND event=kind), "
            "(SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE issue=?1 AND event=kind GROUP BY recipient)) "
            "FROM kinds WHERE kind IS NOT NULL", (issue,))}

    def readers_by_kind(self, issue: str, kinds: Iterable[str]) -> dict[str, int]:
        """How many distinct recipients had each of these kinds of event (each counted along events_by_kind,
        where a kind's recipients stand in order: no temporary B-tree, and no pass over the other kinds)."""
        return dict(self._query(
            "SELECT value, (SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE issue=?1 AND event=value "
            "GROUP BY recipient)) FROM json_each(?2)", (issue, json.dumps(list(kinds)))))

    def heard_of(self, issue: str) -> bool:
        """Whether any event of `issue` was recorded."""
        return bool(self._query("SELECT 1 FROM events WHERE issue=? LIMIT 1", (issue,)))

    def heard_among(self, issue: str, keys: list[str]) -> set[str]:
        """Which of these recipients (a chunk of a long list) the provider reported any event for: it had
        their message. Asked a chunk at a time: a million recipients with events are never one set."""
        return {recipient for (recipient,) in self._query(
            "SELECT DISTINCT recipient FROM events WHERE issue=? AND recipient IN (SELECT value FROM json_each(?))",
            (issue, json.dumps(keys)))}

    def last_issue_with_events(self, *, besides: str) -> str | None:
        """The issue other than `besides` whose latest provider event is the most recent."""
        rows = self._query("SELECT issue FROM events WHERE issue != ? GROUP BY issue ORDER BY MAX(at) DESC LIMIT 1",
                           (besides,))
        return rows[0][0] if rows else None

    def hears_events(self) -> bool:
        """Whether any provider event was ever recorded here: only then does the lack of one mean anything."""
        return bool(self._query("SELECT 1 FROM events LIMIT 1"))

    def unheard_uncertain_since(self, issue: str) -> dict[str, str]:
        """When each uncertain (or `sending`) recipient of `issue` the provider reported no event for became so."""
        return dict(self._query(
            "SELECT d.recipient, d.updated_at FROM deliveries AS d WHERE d.issue=? AND d.state IN (?, ?) "
            "AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.issue = d.issue AND e.recipient = d.recipient)",
            (issue, UNCERTAIN, SENDING)))

    def resolve_from_events(self, issue: str) -> int:
        """Uncertain recipients the provider reported an event for had the message: they become accepted."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE deliveries SET state=?, error=NULL, updated_at=? WHERE issue=? AND state=? AND recipient IN "
                "(SELECT recipient FROM events WHERE issue=?)", (ACCEPTED, now(), issue, UNCERTAIN, issue)).rowcount

    # -- what readers did (mailer report) ---------------------------------------------------------

    def live_sends(self) -> list[tuple[str, str]]:
        """(issue, when its live send started) for each issue sent from here, oldest first; test and sandbox
        keys left out."""
        return self._query(
            "SELECT n.issue, COALESCE(t.at, n.claimed_at) AS at FROM newsletters AS n "
            "LEFT JOIN tracking AS t ON t.issue = n.issue "
            "WHERE n.issue NOT LIKE '%@%' AND EXISTS (SELECT 1 FROM deliveries AS d WHERE d.issue = n.issue) "
            "ORDER BY at, n.issue")

    def issues_heard_not_sent(self) -> list[tuple[str, int]]:
        """Issue keys the provider reported events for that were never sent from here, with their event counts."""
        return self._query(
            "SELECT e.issue, COUNT(*) FROM events AS e WHERE NOT EXISTS "
            "(SELECT 1 FROM deliveries AS d WHERE d.issue = e.issue) GROUP BY e.issue ORDER BY e.issue")

    def bounce_kinds(self, issue: str) -> tuple[int, int]:
        """Readers whose message bounced for good (hard), and those only ever refused for now (soft: `blocked`;
        a reader refused, then bounced for good, is a hard bounce only)."""
        rows = self._query(
            "SELECT COALESCE(SUM(hard), 0), COALESCE(SUM(1 - hard), 0) FROM (SELECT MAX(detail IS NULL OR "
            "detail NOT LIKE '%blocked') AS hard FROM events WHERE issue=? AND event='bounce' GROUP BY recipient)",
            (issue,))
        return rows[0][0], rows[0][1]

    def openers(self, issue: str) -> tuple[int, int]:
        """Readers with an open SendGrid did not flag as a machine's, and readers whose every open it did."""
        rows = self._query(
            "SELECT COALESCE(SUM(human), 0), COALESCE(SUM(1 - human), 0) FROM (SELECT MAX(machine IS NULL) AS human "
            "FROM events WHERE issue=? AND event='open' GROUP BY recipient)", (issue,))
        return rows[0]

    def openers_among(self, issue: str, keys: list[str]) -> tuple[set[str], set[str]]:
        """Of these readers (a chunk): who opened the issue themselves (by SendGrid's flag), and who opened it
        at all."""
        rows = self._query(
            "SELECT recipient, MAX(machine IS NULL) FROM events WHERE issue=? AND event='open' "
            "AND recipient IN (SELECT value FROM json_each(?)) GROUP BY recipient", (issue, json.dumps(keys)))
        return {recipient for recipient, human in rows if human}, {recipient for recipient, _ in rows}

    def clicks(self, issue: str) -> Iterator[tuple[str, str, str | None, int | None, str | None, str | None]]:
        """Every click on the issue as (recipient, at, url, link, agent, first delivered at), by reader and time."""
        try:
            cursor = self._db.execute(
                "SELECT c.recipient, c.at, c.url, c.link, c.agent, (SELECT MIN(d.at) FROM events AS d "
                "WHERE d.issue = c.issue AND d.event = 'delivered' AND d.recipient = c.recipient) "
                "FROM events AS c WHERE c.issue=? AND c.event='click' ORDER BY c.recipient, c.at", (issue,))
            yield from cursor
        except sqlite3.Error as err:
            raise state_failure(self.path, err) from None

    def readers_unknown(self, issue: str) -> int:
        """Readers the provider reported events of this issue for whom no delivery was recorded here.

        An EXCEPT in order: SQLite merges the two indexes' readers, both in order, instead of looking each
        reader of the events up in deliveries (a million readers: 0.38 s of CPU against 0.83).
        """
        return self._query(
            "SELECT COUNT(*) FROM (SELECT recipient FROM events WHERE issue=?1 "
            "EXCEPT SELECT recipient FROM deliveries WHERE issue=?1 ORDER BY 1)", (issue,))[0][0]

    def received_among(self, issue: str, keys: list[str]) -> set[str]:
        """Which of these readers (a chunk) the issue was sent to (accepted or uncertain)."""
        return {recipient for (recipient,) in self._query(
            "SELECT recipient FROM deliveries WHERE issue=? AND state IN (?, ?) "
            "AND recipient IN (SELECT value FROM json_each(?))", (issue, ACCEPTED, UNCERTAIN, json.dumps(keys)))}

    def events_after(self, rowid: int, limit: int) -> list[tuple[Any, ...]]:
        """Up to `limit` events recorded after `rowid`, oldest first, as (rowid, *EVENT_COLUMNS): the export a
        sending machine copies them from (mailer report with MAILER_SERVE_URL)."""
        return self._query(f"SELECT rowid, {EVENT_COLUMNS} FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?",  # noqa: S608
                           (rowid, limit))

    def last_event(self) -> int:
        """The rowid of the latest event recorded (0: none)."""
        return self._query("SELECT COALESCE(MAX(rowid), 0) FROM events")[0][0]

    def remote_cursor(self, source: str) -> int:
        rows = self._query("SELECT after FROM remote_events WHERE source=?", (source,))
        return rows[0][0] if rows else 0

    def record_remote_events(self, source: str, events: list[tuple[Any, ...]], after: int) -> int:
        """Store events copied from a remote service and how far the copy got, in one transaction; count the new."""
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(f"INSERT OR IGNORE INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           events)
            new = db.total_changes - before
            db.execute("INSERT OR REPLACE INTO remote_events VALUES (?, ?)", (source, after))
            return new

    def record_tracking(self, issue: str, backend: str, *, clicks: bool | None, opens: bool | None) -> None:
        """What this live send asked the provider to track (a resumed send's settings win), and when the issue's
        first live send started (a resume keeps it: the report's order and its unsubscribe windows)."""
        with self._transaction() as db:
            db.execute("INSERT INTO tracking VALUES (?, ?, ?, ?, ?) ON CONFLICT (issue) DO UPDATE SET "
                       "backend=excluded.backend, clicks=excluded.clicks, opens=excluded.opens",
                       (issue, backend, clicks, opens, now()))

    def tracking(self, issue: str) -> tuple[str, bool | None, bool | None] | None:
        """(backend, clicks, opens) of the issue's live send; None when it was never sent live here."""
        rows = self._query("SELECT backend, clicks, opens FROM tracking WHERE issue=?", (issue,))
        if not rows:
            return None
        backend, clicks, opens = rows[0]
        return backend, None if clicks is None else bool(clicks), None if opens is None else bool(opens)

    # -- test sends and schedules --------------------------------------------------------------

    def record_test_send(self, issue: str, content_hash: str, recipient: str, message_id: str | None) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO test_sends VALUES (?, ?, ?, ?, ?)",
                       (issue, content_hash, recipient, message_id, now()))

    def last_test_send(self, issue: str) -> tuple[str, str, str] | None:
        """The last test send of `issue`: its content hash, to whom, when (ISO 8601 UTC)."""
        rows = self._query("SELECT content_hash, recipient, sent_at FROM test_sends WHERE issue=? "
                           "ORDER BY rowid DESC LIMIT 1", (issue,))
        return rows[0] if rows else None

    def last_test_hash(self, issue: str) -> str | None:
        rows = self._query("SELECT content_hash FROM test_sends WHERE issue=? ORDER BY rowid DESC LIMIT 1", (issue,))
        return rows[0][0] if rows else None

    def record_command(self, issue: str, command: str, folder: str) -> None:
        """The command a live send of `issue` was started with (see last_command)."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, NULL)", (issue, command, folder, now()))

    def record_run_end(self, issue: str) -> None:
        """The live send of `issue` reached its end, finished or stopped (a killed one never says so)."""
        self._statement("UPDATE runs SET ended_at=? WHERE issue=?", (now(), issue))

    def last_command(self, issue: str) -> tuple[str, str, bool] | None:
        """The command and folder of the last live send of `issue`, and whether it reached its end; None when
        none was recorded (an older release)."""
        rows = self._query("SELECT command, folder, ended_at IS NOT NULL FROM runs WHERE issue=?", (issue,))
        return (rows[0][0], rows[0][1], bool(rows[0][2])) if rows else None

    def record_schedule(self, issue: str, schedule_id: str, send_at: datetime) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO schedules VALUES (?, ?, ?, 'scheduled', ?)",
                       (issue, schedule_id, send_at.isoformat(), now()))

    def active_schedules(self, issue: str) -> list[tuple[str, str]]:
        return self._query("SELECT schedule_id, send_at FROM schedules WHERE issue=? AND state='scheduled'", (issue,))

    def cancel_schedule(self, issue: str, schedule_id: str) -> int:
        """Mark a schedule cancelled, and its deliveries cancelled (so they can be sent again).

        Uncertain ones too (and `sending` ones a killed run left): SendGrid discards every message of
        a cancelled batch, so whether or not a request reached it, none of them will arrive.
        """
        with self._transaction() as db:
            db.execute("UPDATE schedules SET state='cancelled' WHERE issue=? AND schedule_id=?",
                       (issue, schedule_id))
            cursor = db.execute(
                "UPDATE deliveries SET state=?, error=?, updated_at=? "
                "WHERE issue=? AND state IN (?, ?, ?) AND batch LIKE ?",
                (CANCELLED, "scheduled send cancelled", now(), issue, ACCEPTED, UNCERTAIN, SENDING,
                 f"{schedule_id}:%"))
            return cursor.rowcount


def ledger_path(state_dir: Path) -> Path:
    return state_dir / "ledger.sqlite3"


def send_running(state_dir: Path, issue: str) -> int | None:
    """The process id of a send of `issue` running now (one that holds its issue_lock), else None.

    Only asks: the lock is taken and given back at once, and a state folder without locks is left as it is.
    """
    path = state_dir / "locks" / f"{issue}.lock"
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file: no send of this issue ever ran here
        return None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(handle, 32).decode("ascii", "replace").strip()
            return int(pid) if pid.isdigit() else 0
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
    finally:
        os.close(handle)


@contextmanager
def issue_lock(state_dir: Path, issue: str) -> Iterator[None]:
    """Hold an exclusive lock for one issue's send; a second send of the same issue is refused.

    An flock is released by the kernel when its process dies, so a crash never leaves a stale lock.
    """
    lock_dir = state_dir / "locks"
    try:
        private_folder(lock_dir, within=state_dir)
        handle = os.open(lock_dir / f"{issue}.lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    except OSError as err:
        raise state_failure(lock_dir, err) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"another `mailer send` of {issue} is running (lock: {lock_dir / (issue + '.lock')})\n"
                "    hint: wait for it to finish; two sends at once could mail someone twice"
            ) from None
        with suppress(OSError):  # the pid is for a curious reader; a full disk must not stop the send here
            os.ftruncate(handle, 0)
            os.write(handle, str(os.getpid()).encode())
        yield
    finally:
        os.close(handle)

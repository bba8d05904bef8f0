"""The subscriber store: readers who joined (the sign-up form), were imported or added by the editor.

`<state_dir>/subscribers.sqlite3`, the embedded default: nothing to start or install. Every SQL
statement about readers lives in this module, so that a shared database for several machines can
take its place later behind the same methods.

Each reader has an address (the list's grammar and key: mailer.addresses), name fields, tags (the
segments), a status and where they came from, and every consent they gave is kept with the exact
text they were shown. A status only moves away from `confirmed` on the reader's own word (an
unsubscribe, a complaint) or their mail server's (a bounce); an import or an editor's add never
brings a reader back from those. A reader who asks to be forgotten leaves only a keyed hash of
their address, so that nothing but their own confirmation can add them back.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from mailer.addresses import address_key
from mailer.statedb import open_database, state_transaction

PENDING, CONFIRMED, UNSUBSCRIBED, BOUNCED, COMPLAINED = "pending", "confirmed", "unsubscribed", "bounced", "complained"
STATUSES = (PENDING, CONFIRMED, UNSUBSCRIBED, BOUNCED, COMPLAINED)
LEFT = (UNSUBSCRIBED, BOUNCED, COMPLAINED)  # the reader (or their server) said no: only they can undo it
FORM, IMPORT, EDITOR = "form", "import", "editor"
SOURCES = (FORM, IMPORT, EDITOR)

SCHEMA = """
CREATE TABLE IF NOT EXISTS readers (
    address       TEXT PRIMARY KEY,      -- mailer.addresses.address_key: one row per mailbox
    email         TEXT NOT NULL,         -- as given (parse_address): what servers are sent
    first_name    TEXT NOT NULL DEFAULT '',
    last_name     TEXT NOT NULL DEFAULT '',
    tags          TEXT NOT NULL DEFAULT '',   -- ';'-separated, as the CSV's tags column: the segments
    status        TEXT NOT NULL CHECK (status IN ('pending','confirmed','unsubscribed','bounced','complained')),
    source        TEXT NOT NULL CHECK (source IN ('form','import','editor')),
    status_reason TEXT NOT NULL DEFAULT '',   -- why the status is what it is ('one-click', 'spam report', …)
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    confirmed_at  TEXT
);
CREATE INDEX IF NOT EXISTS readers_by_status ON readers (status);
-- Every consent a reader gave, as they gave it: kept while the reader is, gone when they are forgotten.
CREATE TABLE IF NOT EXISTS consents (
    address       TEXT NOT NULL,
    given_at      TEXT NOT NULL,
    form          TEXT NOT NULL,         -- where: 'subscribe' (the service's page), an import's file, 'editor'
    text          TEXT NOT NULL,         -- the exact consent text shown
    version       TEXT NOT NULL,         -- the consent text's version (settings), or what the import said
    ip            TEXT                   -- only when the settings ask for it
);
CREATE INDEX IF NOT EXISTS consents_by_address ON consents (address);
-- Readers who asked to be forgotten: a keyed hash of the address, nothing else.
CREATE TABLE IF NOT EXISTS forgotten (
    hash          TEXT PRIMARY KEY,
    forgotten_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key           TEXT PRIMARY KEY,
    value         TEXT NOT NULL
);
-- Sign-up (the form of `mailer serve`): one row per address that asked for a confirmation email and has
-- not confirmed yet, holding the consent they will give by confirming; gone when they confirm.
CREATE TABLE IF NOT EXISTS confirmations (
    address       TEXT PRIMARY KEY,      -- address_key
    email         TEXT NOT NULL,
    first_name    TEXT NOT NULL DEFAULT '',
    requested     REAL NOT NULL,         -- when its email was granted (epoch s): at most one a day an address
    state         TEXT NOT NULL CHECK (state IN ('queued','sending','sent','failed')),
    sent          REAL,
    consent_text  TEXT NOT NULL,
    consent_version TEXT NOT NULL,
    consent_ip    TEXT                   -- only when the settings ask for it
);
CREATE INDEX IF NOT EXISTS confirmations_by_state ON confirmations (state, requested);
-- Sign-ups from one client address in the last hour, for the per-IP limit: a keyed hash, never the IP.
CREATE TABLE IF NOT EXISTS signup_attempts (
    ip_hash       TEXT NOT NULL,
    at            REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS signup_attempts_by_ip ON signup_attempts (ip_hash, at);
CREATE INDEX IF NOT EXISTS signup_attempts_by_time ON signup_attempts (at);
"""


def store_path(state_dir: Path) -> Path:
    return state_dir / "subscribers.sqlite3"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Reader:
    """One reader of the store."""

    email: str
    first_name: str
    last_name: str
    tags: tuple[str, ...]
    status: str
    source: str
    status_reason: str
    created_at: str
    updated_at: str
    confirmed_at: str | None

    @property
    def key(self) -> str:
        return address_key(self.email)


@dataclass(frozen=True)
class Consent:
    given_at: str
    form: str
    text: str
    version: str
    ip: str | None = None


@dataclass(frozen=True)
class Incoming:
    """A reader as an import or the editor gives them: what to add, or to update."""

    email: str
    first_name: str = ""
    last_name: str = ""
    tags: tuple[str, ...] = ()
    status: str = CONFIRMED  # what the row says (a CSV's status column): one of STATUSES
    line: int = 0
    names_known: bool = True  # False: a row that is not mailed, read for its status only (names left as they are)


@dataclass
class ImportOutcome:
    """What an import did: how many readers it added, updated, left as they were and refused, and the
    first NOTES_KEPT of each kind that has something to say, as (line, email, why)."""

    NOTES_KEPT = 1000

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    notes: dict[str, list[tuple[int, str, str]]] = field(
        default_factory=lambda: {"updated": [], "unchanged": [], "refused": []})

    def note(self, kind: str, line: int, email: str, why: str) -> None:
        """One reader with something to say; `updated` and `refused` count it, `unchanged` is counted apart."""
        if kind != "unchanged":
            setattr(self, kind, getattr(self, kind) + 1)
        if len(self.notes[kind]) < self.NOTES_KEPT:
            self.notes[kind].append((line, email, why))


_COLUMNS = "email, first_name, last_name, tags, status, source, status_reason, created_at, updated_at, confirmed_at"


def _reader(row: tuple) -> Reader:
    email, first, last, tags, status, source, reason, created, updated, confirmed = row
    return Reader(email, first, last, tuple(tag for tag in tags.split(";") if tag), status, source, reason, created,
                  updated, confirmed)


def _tags(tags: Iterable[str]) -> str:
    return ";".join(dict.fromkeys(tag for tag in tags if tag))


class SubscriberStore:
    """The store in SQLite (WAL: a send reads it while the service writes sign-ups)."""

    def __init__(self, path: Path):
        self.path = path
        self._db = open_database(path, SCHEMA + SIGNUP_SCHEMA, MIGRATIONS, table="readers")
        self._key = self._forget_key()

    @classmethod
    def open(cls, state_dir: Path) -> SubscriberStore:
        return cls(store_path(state_dir))

    @classmethod
    def open_existing(cls, state_dir: Path) -> SubscriberStore | None:
        """The store, if one was ever made here (None: this newsletter's list is a CSV; nothing is created)."""
        path = store_path(state_dir)
        return cls(path) if path.exists() else None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SubscriberStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self, mode: str = "IMMEDIATE") -> Any:
        return state_transaction(self._db, self.path, mode)

    # -- reading -------------------------------------------------------------------------------

    def get(self, email: str) -> Reader | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM readers WHERE address=?", (address_key(email),)).fetchone()
        return _reader(row) if row else None

    def consents(self, email: str) -> list[Consent]:
        return [Consent(*row) for row in self._db.execute(
            "SELECT given_at, form, text, version, ip FROM consents WHERE address=? ORDER BY rowid",
            (address_key(email),))]

    def counts(self) -> dict[str, int]:
        """Readers by status, every status named (0 where none)."""
        found = dict(self._db.execute("SELECT status, COUNT(*) FROM readers GROUP BY status").fetchall())
        return {status: found.get(status, 0) for status in STATUSES}

    def readers(self, *, status: str | None = None) -> Iterator[Reader]:
        """Every reader (of `status`), in the order they joined."""
        where, params = ("WHERE status=?", (status,)) if status else ("", ())
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM readers {where} ORDER BY rowid", params):  # noqa: S608
            yield _reader(row)

    def readers_with_consent(self, *, status: str | None = None) -> Iterator[tuple[Reader, Consent | None]]:
        """Every reader (of `status`) with the latest consent they gave (None: none recorded), in the order
        they joined; one query, for an export of any size."""
        where, params = ("WHERE r.status=?", (status,)) if status else ("", ())
        columns = ", ".join(f"r.{name.strip()}" for name in _COLUMNS.split(","))
        for row in self._db.execute(
                f"SELECT {columns}, c.given_at, c.form, c.text, c.version, c.ip FROM readers AS r "  # noqa: S608
                "LEFT JOIN consents AS c ON c.rowid = (SELECT MAX(rowid) FROM consents WHERE address=r.address) "
                f"{where} ORDER BY r.rowid", params):
            yield _reader(row[:10]), (Consent(*row[10:]) if row[10] is not None else None)

    def confirmed_rows(self, chunk: int = 5000) -> Iterator[list[tuple[str, str, str, tuple[str, ...], int]]]:
        """The confirmed readers as the list's rows (audience.subscribers.Subscriber.as_row: the store's row
        number in place of a file's line), a chunk at a time, in the order they joined; one read transaction."""
        with self._transaction("DEFERRED") as db:
            cursor = db.execute("SELECT email, first_name, last_name, tags, rowid FROM readers "
                                "WHERE status='confirmed' ORDER BY rowid")
            while rows := cursor.fetchmany(chunk):
                yield [(email, first, last, tuple(tag for tag in tags.split(";") if tag), rowid)
                       for email, first, last, tags, rowid in rows]

    def is_forgotten(self, email: str) -> bool:
        return self._db.execute("SELECT 1 FROM forgotten WHERE hash=?", (self._forget_hash(email),)).fetchone() \
            is not None

    # -- the editor's changes -------------------------------------------------------------------

    def import_readers(self, incoming: Iterable[Incoming], *, form: str, dry_run: bool = False) -> ImportOutcome:
        """Add or update readers from a list, in one transaction (all or nothing; `dry_run`: then rolled back).

        A new address is added in the row's status (confirmed: with a consent record naming `form`,
        the file); a forgotten one is refused. A known reader gets the row's names and tags; their
        status moves only from pending or confirmed to unsubscribed, bounced or complained (the row
        says so) or from pending to confirmed, never back from unsubscribed, bounced or complained.

        Set-based: the rows go into a temporary table and each rule is one statement over all of
        them (row by row, it was three statements a row). `incoming` addresses are as parse_address
        gives them (the list reader's), so their key is their lower case.
        """
        stamp = now()
        outcome = ImportOutcome()
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DROP TABLE IF EXISTS temp.incoming")
            db.execute("CREATE TEMP TABLE incoming (line INTEGER, address TEXT, email TEXT, first_name TEXT, "
                       "last_name TEXT, tags TEXT, status TEXT, names_known INTEGER, forgotten INTEGER)")
            forgotten = {row[0] for row in db.execute("SELECT hash FROM forgotten")}
            joined: dict[tuple[str, ...], str] = {}  # a list has a handful of tag sets
            db.executemany(
                "INSERT INTO temp.incoming VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((item.line, item.email.lower(), item.email, item.first_name, item.last_name,
                  joined.get(item.tags) or joined.setdefault(item.tags, _tags(item.tags)), item.status,
                  item.names_known, bool(forgotten) and self._forget_hash(item.email) in forgotten)
                 for item in incoming))
            db.execute("CREATE INDEX temp.incoming_address ON incoming (address)")  # once, over all the rows
            self._import_rules(db, form, stamp, outcome)
            db.execute("DROP TABLE temp.incoming")
            db.execute("ROLLBACK" if dry_run else "COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcome

    def _import_rules(self, db: sqlite3.Connection, form: str, stamp: str, outcome: ImportOutcome) -> None:
        # Refused: forgotten, and not here (their own sign-up would have brought them back).
        for line, email in db.execute("SELECT line, email FROM temp.incoming i WHERE forgotten AND NOT EXISTS "
                                      "(SELECT 1 FROM readers r WHERE r.address=i.address) ORDER BY line"):
            outcome.note("refused", line, email, "asked to be forgotten: only their own sign-up and confirmation "
                         "can add them back")
        # Known readers first (the new ones are added last): what each row changes, said before it is changed.
        changes: dict[str, list[str]] = {}
        lines: dict[str, tuple[int, str]] = {}
        left = "('unsubscribed','bounced','complained')"
        for line, email, address, was, becomes in db.execute(
                "SELECT i.line, i.email, i.address, r.status, i.status FROM temp.incoming i JOIN readers r "
                f"ON r.address=i.address WHERE ((i.status IN {left} AND r.status IN "  # noqa: S608
                "('pending','confirmed')) OR (i.status='confirmed' AND r.status='pending'))"):
            changes.setdefault(address, []).append(f"status {was} → {becomes}")
            lines[address] = (line, email)
        for line, email, address in db.execute(
                "SELECT i.line, i.email, i.address FROM temp.incoming i JOIN readers r ON r.address=i.address "
                "WHERE i.names_known AND (r.first_name<>i.first_name OR r.last_name<>i.last_name OR "
                "r.tags<>i.tags)"):
            changes.setdefault(address, []).append("names and tags")
            lines[address] = (line, email)
        kept = {address: (line, email, f"stays {status} ({reason or '-'}): an import never subscribes again "
                          "someone who left")
                for line, email, address, status, reason in db.execute(
                    "SELECT i.line, i.email, i.address, r.status, r.status_reason FROM temp.incoming i JOIN "
                    f"readers r ON r.address=i.address WHERE i.status='confirmed' "  # noqa: S608
                    f"AND r.status IN {left}")}
        db.execute("UPDATE readers SET status=i.status, status_reason=i.status || ' in the imported list', "
                   f"updated_at=? FROM temp.incoming i WHERE readers.address=i.address AND "  # noqa: S608
                   f"i.status IN {left} AND readers.status IN ('pending','confirmed')", (stamp,))
        # A pending reader the list says is subscribed: the list's word is their consent, recorded as such.
        db.execute("INSERT INTO consents SELECT i.address, ?, ?, 'imported: consent given where the list came from', "
                   "'import', NULL FROM temp.incoming i JOIN readers r ON r.address=i.address "
                   "WHERE i.status='confirmed' AND r.status='pending'", (stamp, form))
        db.execute("UPDATE readers SET status='confirmed', status_reason='', confirmed_at=?, updated_at=? "
                   "FROM temp.incoming i WHERE readers.address=i.address AND i.status='confirmed' AND "
                   "readers.status='pending'", (stamp, stamp))
        db.execute("UPDATE readers SET first_name=i.first_name, last_name=i.last_name, tags=i.tags, updated_at=? "
                   "FROM temp.incoming i WHERE readers.address=i.address AND i.names_known AND "
                   "(readers.first_name<>i.first_name OR readers.last_name<>i.last_name OR readers.tags<>i.tags)",
                   (stamp,))
        for address, what in sorted(changes.items(), key=lambda item: lines[item[0]][0]):
            line, email = lines[address]
            if address in kept:
                what.append(kept.pop(address)[2])
            outcome.note("updated", line, email, ", ".join(what))
        for line, email, why in sorted(kept.values()):
            outcome.note("unchanged", line, email, why)
        (known,) = db.execute("SELECT COUNT(*) FROM temp.incoming i WHERE EXISTS "
                              "(SELECT 1 FROM readers r WHERE r.address=i.address)").fetchone()
        outcome.unchanged = known - outcome.updated
        # Then the new ones: their consent (confirmed ones), and their row, in the file's order (the temporary
        # table's, as written: a sort of a million rows by line cost more than the insert).
        new = "NOT forgotten AND NOT EXISTS (SELECT 1 FROM readers r WHERE r.address=i.address)"
        db.execute("INSERT INTO consents SELECT address, ?, ?, 'imported: consent given where the list came from', "
                   f"'import', NULL FROM temp.incoming i WHERE status='confirmed' AND {new}",  # noqa: S608
                   (stamp, form))
        outcome.added = db.execute(
            "INSERT INTO readers (address, email, first_name, last_name, tags, status, source, status_reason, "
            "created_at, updated_at, confirmed_at) SELECT address, email, first_name, last_name, tags, status, "
            "'import', CASE status WHEN 'confirmed' THEN '' ELSE status || ' in the imported list' END, ?, ?, "
            f"CASE status WHEN 'confirmed' THEN ? END FROM temp.incoming i WHERE {new}",  # noqa: S608
            (stamp, stamp, stamp)).rowcount

    def add(self, item: Incoming, *, consent: Consent) -> str:
        """The editor adds one reader (confirmed, source editor); what happened, in a few words."""
        key = address_key(item.email)
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM forgotten WHERE hash=?", (self._forget_hash(item.email),)).fetchone():
                return "forgotten"
            row = db.execute(f"SELECT {_COLUMNS} FROM readers WHERE address=?", (key,)).fetchone()
            if row is not None:
                return _reader(row).status
            stamp = now()
            db.execute("INSERT INTO readers (address, email, first_name, last_name, tags, status, source, "
                       "created_at, updated_at, confirmed_at) VALUES (?, ?, ?, ?, ?, 'confirmed', 'editor', ?, ?, ?)",
                       (key, item.email, item.first_name, item.last_name, _tags(item.tags), stamp, stamp, stamp))
            db.execute("INSERT INTO consents VALUES (?, ?, ?, ?, ?, ?)",
                       (key, consent.given_at, consent.form, consent.text, consent.version, consent.ip))
            return "added"

    def changes_by_day(self, since: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """Since `since` (ISO 8601): the form's sign-ups confirmed, and the readers lost (unsubscribed, bounced,
        complained or forgotten), per day as (YYYY-MM-DD, count): mailer report's weekly trend."""
        gained = self._db.execute(
            "SELECT substr(confirmed_at, 1, 10), COUNT(*) FROM readers WHERE source='form' AND confirmed_at >= ? "
            "GROUP BY 1", (since,)).fetchall()
        lost = self._db.execute(
            "SELECT day, SUM(n) FROM (SELECT substr(updated_at, 1, 10) AS day, COUNT(*) AS n FROM readers "
            "WHERE status IN ('unsubscribed', 'bounced', 'complained') AND updated_at >= ? GROUP BY 1 "
            "UNION ALL SELECT substr(forgotten_at, 1, 10), COUNT(*) FROM forgotten WHERE forgotten_at >= ? "
            "GROUP BY 1) GROUP BY day", (since, since)).fetchall()
        return gained, lost

    def forget(self, email: str) -> bool:
        """Erase the reader and their consents, keeping only a keyed hash of the address; whether they were here."""
        key = address_key(email)
        with self._transaction() as db:
            found = db.execute("DELETE FROM readers WHERE address=?", (key,)).rowcount == 1
            db.execute("DELETE FROM consents WHERE address=?", (key,))
            db.execute("DELETE FROM confirmations WHERE address=?", (key,))  # a sign-up not yet confirmed
            db.execute("INSERT OR IGNORE INTO forgotten VALUES (?, ?)", (self._forget_hash(email), now()))
        return found

    # -- what readers and their servers said ------------------------------------------------------

    def set_status(self, changes: Iterable[tuple[str, str, str]]) -> int:
        """Record (email, status, reason) for readers who are in the store; how many changed.

        Unsubscribes, bounces and complaints (from the service, the webhook, a pull) move a reader away
        from pending or confirmed, a complaint over anything; `confirmed` (a resubscribe on the
        service's page) moves back only a reader whose status is `unsubscribed`.
        """
        stamp, changed = now(), 0
        with self._transaction() as db:
            for email, status, reason in changes:
                if status == CONFIRMED:
                    where = "status='unsubscribed'"
                elif status == COMPLAINED:
                    where = "status<>'complained'"
                else:
                    where = "status IN ('pending','confirmed')"
                changed += db.execute(
                    f"UPDATE readers SET status=?, status_reason=?, updated_at=? WHERE address=? AND {where}",  # noqa: S608
                    (status, reason, stamp, address_key(email))).rowcount
        return changed

    def apply_suppressed(self, suppressed: dict[str, tuple[str, str]]) -> int:
        """Move the pending and confirmed readers among `suppressed` (address key: (status, reason), the
        suppression list as it stands) to that status in one statement; how many moved."""
        if not suppressed:
            return 0
        with self._transaction() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS suppressed "
                       "(address TEXT PRIMARY KEY, status TEXT, reason TEXT)")
            db.execute("DELETE FROM temp.suppressed")
            db.executemany("INSERT OR REPLACE INTO temp.suppressed VALUES (?, ?, ?)",
                           ((key, status, reason) for key, (status, reason) in suppressed.items()))
            moved = db.execute(
                "UPDATE readers SET status=s.status, status_reason=s.reason, updated_at=? FROM temp.suppressed AS s "
                "WHERE readers.address=s.address AND readers.status IN ('pending','confirmed')", (now(),)).rowcount
            db.execute("DELETE FROM temp.suppressed")
        return moved

    # -- a `mailer serve` on another machine -------------------------------------------------------

    def export_confirmed(self) -> list[dict[str, Any]]:
        """The confirmed readers with their consents, for the sending machine's pull (JSON-ready)."""
        consents: dict[str, list[dict[str, Any]]] = {}
        with self._transaction("DEFERRED") as db:
            for address, given_at, form, text, version, ip in db.execute(
                    "SELECT c.address, c.given_at, c.form, c.text, c.version, c.ip FROM consents AS c "
                    "JOIN readers AS r ON r.address=c.address WHERE r.status='confirmed' ORDER BY c.rowid"):
                consents.setdefault(address, []).append(
                    {"given_at": given_at, "form": form, "text": text, "version": version, "ip": ip})
            return [{"email": email, "first_name": first, "last_name": last, "tags": tags.split(";") if tags else [],
                     "confirmed_at": confirmed_at or "", "consents": consents.get(address, [])}
                    for address, email, first, last, tags, confirmed_at in db.execute(
                        "SELECT address, email, first_name, last_name, tags, confirmed_at FROM readers "
                        "WHERE status='confirmed' ORDER BY rowid")]

    def merge_confirmed(self, readers: Iterable[dict[str, Any]]) -> int:
        """Take in the readers a remote service confirmed (its export_confirmed), in one transaction; how many
        are new or newly confirmed here. A reader who left here stays out; one forgotten here comes back
        only with a confirmation given after they were forgotten (their own, again)."""
        stamp, changed = now(), 0
        with self._transaction() as db:
            for reader in readers:
                email, key = reader["email"], address_key(reader["email"])
                confirmed_at = reader["confirmed_at"] or stamp
                forgotten = db.execute("SELECT forgotten_at FROM forgotten WHERE hash=?",
                                       (self._forget_hash(email),)).fetchone()
                if forgotten and confirmed_at <= forgotten[0]:
                    continue
                row = db.execute("SELECT status FROM readers WHERE address=?", (key,)).fetchone()
                if row is not None and row[0] != PENDING:
                    continue  # confirmed already, or left: their word here stands
                if row is None:
                    db.execute("INSERT INTO readers (address, email, first_name, last_name, tags, status, source, "
                               "created_at, updated_at, confirmed_at) VALUES (?, ?, ?, ?, ?, 'confirmed', 'form', "
                               "?, ?, ?)", (key, email, reader["first_name"], reader["last_name"],
                                            _tags(reader["tags"]), stamp, stamp, confirmed_at))
                else:
                    db.execute("UPDATE readers SET status='confirmed', confirmed_at=?, updated_at=? WHERE address=?",
                               (confirmed_at, stamp, key))
                db.execute("DELETE FROM forgotten WHERE hash=?", (self._forget_hash(email),))
                db.executemany("INSERT INTO consents VALUES (?, ?, ?, ?, ?, ?)",
                               ((key, c["given_at"], c["form"], c["text"], c["version"], c.get("ip"))
                                for c in reader["consents"]))
                changed += 1
        return changed

    # -- the keyed hash of a forgotten address ----------------------------------------------------

    def _forget_hash(self, email: str) -> str:
        return hmac.new(self._key, address_key(email).encode(), hashlib.sha256).hexdigest()

    def _forget_key(self) -> bytes:
        """This store's own random key, made with the store: its hashes name nobody to whoever lacks the store."""
        row = self._db.execute("SELECT value FROM meta WHERE key='forget_key'").fetchone()
        if row is None:
            with contextlib.suppress(sqlite3.OperationalError):  # read-only: nobody was forgotten here either
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('forget_key', ?)", (secrets.token_hex(32),))
            row = self._db.execute("SELECT value FROM meta WHERE key='forget_key'").fetchone() or ("",)
        return bytes.fromhex(row[0])

    # -- sign-up: the service's form and the reader's own confirmation (mailer.audience.signup) ---------

    def request_confirmations(self, requests: Sequence[SignupRequest], *, per_ip_hourly: int,
                              at: float | None = None) -> list[str]:
        """Decide, in one transaction, which sign-ups are sent a confirmation email; each one's outcome.

        QUEUED: a confirmation is waiting for the sender (claim_confirmations); otherwise nothing is sent:
        RATE_LIMITED (this client's IP made `per_ip_hourly` sign-ups in the last hour), KNOWN (a confirmed
        reader), STOPPED (bounced or complained: their word, or their server's, stands), RECENT (an email
        went to this address in the last 24 hours, whichever IP asked, and whatever happened since:
        a confirmation, an unsubscribe, a forget). A new address becomes a pending reader; an
        unsubscribed one stays unsubscribed, and a forgotten one stays absent, until they confirm.
        The decisions are made one after the other under the write lock, so however many processes
        and requests ask at once, an address gets at most one email a day.
        """
        at = time.time() if at is None else at
        with self._transaction() as db:
            self._purge_signups(db, at)
            return [self._request_one(db, request, per_ip_hourly, at) for request in requests]

    def _purge_signups(self, db: sqlite3.Connection, at: float) -> None:
        db.execute("DELETE FROM signup_attempts WHERE at < ?", (at - HOUR,))
        db.execute("DELETE FROM signup_emails WHERE at <= ?", (at - DAY,))
        # A day past a link's life nothing can be confirmed with it: the pending reader it made (a name and
        # an address typed by anyone) goes with it, unless they confirmed, left or came some other way.
        cutoff = at - CONFIRMATION_SECONDS - DAY
        db.execute("DELETE FROM readers WHERE status='pending' AND source='form' AND address IN "
                   "(SELECT address FROM confirmations WHERE requested < ?)", (cutoff,))
        db.execute("DELETE FROM confirmations WHERE requested < ?", (cutoff,))

    def _request_one(self, db: sqlite3.Connection, request: SignupRequest, per_ip_hourly: int, at: float) -> str:
        if request.ip:
            ip_hash = hmac.new(self._key, b"ip\n" + request.ip.encode(), hashlib.sha256).hexdigest()[:32]
            count = db.execute("SELECT COUNT(*) FROM signup_attempts WHERE ip_hash=? AND at>=?",
                               (ip_hash, at - HOUR)).fetchone()[0]
            if count >= per_ip_hourly:
                return RATE_LIMITED
            db.execute("INSERT INTO signup_attempts VALUES (?, ?)", (ip_hash, at))
        key = address_key(request.email)
        row = db.execute("SELECT status FROM readers WHERE address=?", (key,)).fetchone()
        if row is not None and row[0] == CONFIRMED:
            return KNOWN
        if row is not None and row[0] in (BOUNCED, COMPLAINED):
            return STOPPED
        emailed = self._signup_hash(request.email)
        if db.execute("SELECT 1 FROM signup_emails WHERE hash=? AND at > ?", (emailed, at - DAY)).fetchone():
            return RECENT
        db.execute("INSERT OR REPLACE INTO signup_emails VALUES (?, ?)", (emailed, at))
        # A fresh nonce per request, in its link: only the latest request's link confirms.
        db.execute("INSERT OR REPLACE INTO confirmations (address, email, first_name, requested, state, sent, "
                   "consent_text, consent_version, consent_ip, nonce) VALUES (?, ?, ?, ?, 'queued', NULL, ?, ?, ?, ?)",
                   (key, request.email, request.first_name, at, request.consent_text, request.consent_version,
                    request.consent_ip, secrets.token_urlsafe(9)))
        if row is None and not db.execute("SELECT 1 FROM forgotten WHERE hash=?",
                                          (self._forget_hash(request.email),)).fetchone():
            stamp = _iso(at)
            db.execute("INSERT INTO readers (address, email, first_name, status, source, status_reason, created_at, "
                       "updated_at) VALUES (?, ?, ?, 'pending', 'form', 'waiting for their confirmation', ?, ?)",
                       (key, request.email, request.first_name, stamp, stamp))
        return QUEUED

    def claim_confirmations(self, limit: int = 50, *, at: float | None = None) -> list[Claimed]:
        """The queued confirmations, oldest first, marked as being sent (what has outlived its use purged first)."""
        with self._transaction() as db:
            self._purge_signups(db, time.time() if at is None else at)
            rows = db.execute("SELECT address, email, requested, nonce FROM confirmations WHERE state='queued' "
                              "ORDER BY requested LIMIT ?", (limit,)).fetchall()
            db.executemany("UPDATE confirmations SET state='sending' WHERE address=?", [(r[0],) for r in rows])
        return [Claimed(email, requested, nonce) for _, email, requested, nonce in rows]

    def confirmation_sent(self, email: str, requested: float, *, ok: bool) -> None:
        """Record how sending a claimed confirmation went. `ok`: it left, or may have (an uncertain send
        counts as sent); not `ok`: it surely did not leave, which frees the address's day for a new try."""
        with self._transaction() as db:
            db.execute("UPDATE confirmations SET state=?, sent=? WHERE address=? AND requested=?",
                       ("sent" if ok else "failed", time.time() if ok else None, address_key(email), requested))
            if not ok:
                db.execute("DELETE FROM signup_emails WHERE hash=? AND at=?", (self._signup_hash(email), requested))

    def abandon_interrupted_confirmations(self) -> int:
        """Confirmations a stopped service was sending: never sent again, and their day kept (one may have
        left); how many."""
        with self._transaction() as db:
            return db.execute("UPDATE confirmations SET state='failed' WHERE state='sending'").rowcount

    def confirmation_state(self, email: str) -> str | None:
        row = self._db.execute("SELECT state FROM confirmations WHERE address=?", (address_key(email),)).fetchone()
        return row[0] if row else None

    def _signup_hash(self, email: str) -> str:
        return hmac.new(self._key, b"signup email\n" + address_key(email).encode(), hashlib.sha256).hexdigest()

    def waiting_name(self, email: str, *, nonce: str) -> str | None:
        """The name given with the sign-up the link of `nonce` answers (None: no such sign-up waits)."""
        row = self._db.execute("SELECT first_name FROM confirmations WHERE address=? AND nonce=?",
                               (address_key(email), nonce)).fetchone()
        return row[0] if row else None

    def confirm(self, email: str, *, nonce: str, first_name: str | None = None, at: float | None = None,
                before_commit: Callable[[], None] | None = None) -> str:
        """The reader's own confirmation (the POST of its link's page); what it did.

        CONFIRMED: they are a confirmed reader now, with the consent they were shown kept (a forgotten
        address is added back, its hash removed; an unsubscribed one subscribes again), and
        `before_commit` has run (lifting their unsubscribe from the suppression list: if it fails,
        nothing here changes, so the reader may press again). KNOWN: already
        confirmed, nothing to do. STOPPED: bounced or complained since; nothing changes. GONE: no sign-up
        waits for this address with this `nonce` (the link's: a later sign-up's link replaces it; forgotten or
        removed since, or its row outlived): nothing changes.
        """
        at = time.time() if at is None else at
        key = address_key(email)
        with self._transaction() as db:
            waiting = db.execute("SELECT email, first_name, requested, consent_text, consent_version, consent_ip "
                                 "FROM confirmations WHERE address=? AND nonce=?", (key, nonce)).fetchone()
            row = db.execute("SELECT status FROM readers WHERE address=?", (key,)).fetchone()
            if waiting is None:
                return KNOWN if row is not None and row[0] == CONFIRMED else GONE
            if row is not None and row[0] in (BOUNCED, COMPLAINED):
                return STOPPED
            given, asked_name, requested, text, version, ip = waiting
            # The name the reader confirmed on the link's page (the sign-up's was typed by whoever signed up).
            first_name = asked_name if first_name is None else first_name
            stamp = _iso(at)
            if row is not None and (row[0] == PENDING or first_name):
                db.execute("UPDATE readers SET first_name=? WHERE address=?", (first_name, key))
            if row is None:
                db.execute("INSERT INTO readers (address, email, first_name, status, source, status_reason, "
                           "created_at, updated_at, confirmed_at) VALUES (?, ?, ?, 'confirmed', 'form', "
                           "'confirmed by the reader', ?, ?, ?)", (key, given, first_name, stamp, stamp, stamp))
                db.execute("DELETE FROM forgotten WHERE hash=?", (self._forget_hash(email),))
            elif row[0] != CONFIRMED:
                db.execute("UPDATE readers SET status='confirmed', status_reason='confirmed by the reader', "
                           "confirmed_at=?, updated_at=? WHERE address=?", (stamp, stamp, key))
            db.execute("INSERT INTO consents VALUES (?, ?, ?, ?, ?, ?)",
                       (key, _iso(requested), SIGNUP_FORM, text, version, ip))
            db.execute("DELETE FROM confirmations WHERE address=?", (key,))
            if before_commit is not None:
                before_commit()
            return CONFIRMED


# -- sign-up ------------------------------------------------------------------------------------------

HOUR, DAY = 3600.0, 86400.0
CONFIRMATION_SECONDS = 7 * DAY  # a confirmation link's life (mailer.audience.signup)
SIGNUP_FORM = "subscribe"  # the consent's form: the service's sign-up page (or its embedded copy)
QUEUED, RATE_LIMITED, KNOWN, RECENT, GONE = "queued", "rate-limited", "known", "recent", "gone"
STOPPED = "stopped"  # bounced or complained; CONFIRMED (now confirmed) is the status's own word


SIGNUP_SCHEMA = """
-- When an address was last sent a confirmation email (or one may have left), for the one-a-day limit: a keyed
-- hash of the address, nothing else. Confirming, unsubscribing and forgetting leave it; gone after 24 hours.
CREATE TABLE IF NOT EXISTS signup_emails (
    hash          TEXT PRIMARY KEY,
    at            REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS signup_emails_by_time ON signup_emails (at);
"""


def _bind_confirmations(db: sqlite3.Connection) -> None:
    """Version 1: each confirmation gets its request's nonce (those waiting keep '': their links have none), and
    the emails of the last 24 hours are counted in signup_emails."""
    if "nonce" not in {column[1] for column in db.execute("PRAGMA table_info(confirmations)")}:
        db.execute("ALTER TABLE confirmations ADD COLUMN nonce TEXT NOT NULL DEFAULT ''")
    key = db.execute("SELECT value FROM meta WHERE key='forget_key'").fetchone()
    if key is None:
        return  # a new store: nothing was sent from it yet
    for address, requested in db.execute("SELECT address, requested FROM confirmations WHERE state<>'failed' "
                                         "AND requested > ?", (time.time() - DAY,)).fetchall():
        emailed = hmac.new(bytes.fromhex(key[0]), b"signup email\n" + address.encode(), hashlib.sha256).hexdigest()
        db.execute("INSERT OR REPLACE INTO signup_emails VALUES (?, ?)", (emailed, requested))


MIGRATIONS = (_bind_confirmations,)


class Claimed(NamedTuple):
    """A confirmation the sender is to send: to whom, the request's time and nonce (both in its link)."""

    email: str
    requested: float
    nonce: str


@dataclass(frozen=True)
class SignupRequest:
    """One submission of the sign-up form, checked (mailer.audience.signup): who, and what they were shown."""

    email: str
    consent_text: str
    consent_version: str
    first_name: str = ""
    ip: str | None = None  # the client's address, for the per-IP limit (only its keyed hash is kept)
    consent_ip: str | None = None  # the IP to keep with the consent (only when the settings ask for it)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")

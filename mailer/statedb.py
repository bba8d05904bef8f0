"""The state folder's SQLite databases (the ledger, the suppression list, the subscriber store): opened
the same way (WAL, fully synchronous, 0600, migrations once), one transaction at a time, and every fault
of the file or the disk told as a StateError, never a traceback and never a fresh start."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mailer.errors import ExitStatus, MailerError
from mailer.files import PRIVATE_FILE, private_folder, tighten


class StateError(MailerError):
    """The state folder (ledger, suppression list, locks, outbox) cannot be used; raised before any request."""

    exit_code = ExitStatus.INPUT_ERROR


def is_state_fault(err: sqlite3.Error) -> bool:
    """A fault of the file or the disk (full, read-only, damaged), not a mistake in mailer's own SQL."""
    return isinstance(err, sqlite3.OperationalError) or type(err) is sqlite3.DatabaseError


def state_failure(path: Path, err: BaseException) -> StateError:
    """A StateError that says what is wrong with the file or folder at `path`, from SQLite's or the OS's error."""
    reason = getattr(err, "strerror", None) or str(err)
    if isinstance(err, sqlite3.DatabaseError) and not isinstance(err, sqlite3.OperationalError) \
            or "malformed" in reason or "not a database" in reason:
        return damaged(path, reason)
    return StateError(f"cannot write {path}: {reason}\n"
                      "    hint: free some space, or make MAILER_STATE_DIR (default: .mailer/ in the workspace) "
                      "writable by this user; nothing was sent")


# What starting afresh from each state database would do, and the way out: why a damaged one stops mailer.
_AFRESH = {
    "ledger.sqlite3": ("send every issue it records to everyone again",
                       "once you know who already received what, move it aside (mv '{path}' '{path}.broken') and "
                       "send only to those who did not"),
    "suppressions.sqlite3": ("mail readers who unsubscribed, bounced or complained",
                             "move it aside (mv '{path}' '{path}.broken') and pull again (mailer suppressions pull); "
                             "readers who unsubscribed through mailer serve are only in the old file"),
    "subscribers.sqlite3": ("lose the readers, their statuses and their consent records",
                            "move it aside (mv '{path}' '{path}.broken') and import the last export "
                            "(mailer subscribers import FILE.csv)"),
}


def damaged(path: Path, reason: str) -> StateError:
    consequence, way_out = _AFRESH.get(path.name, ("lose what it records",
                                                   "move it aside (mv '{path}' '{path}.broken')"))
    return StateError(
        f"{path} is damaged ({reason}): mailer will not start afresh from it, since that would {consequence}\n"
        f"    hint: restore it from a backup; or {way_out.format(path=path)}")


def open_database(path: Path, schema: str, migrations: tuple[Callable[[sqlite3.Connection], None], ...] = (), *,
                  table: str) -> sqlite3.Connection:
    """Open (creating it and its folder) a state database: autocommit, WAL, fully synchronous.

    `migrations[n]` brings a database written by an older release to version n + 1 (PRAGMA
    user_version); each runs once, in its own transaction, whichever process opens the file first.
    A file that exists but is empty, is not SQLite, or lacks `table` is damaged (StateError), never
    a fresh start; a folder that cannot be written is a StateError too. The folder is 0700 and the
    files 0600 (see mailer.files.private_folder), an older release's 0644 tightened.
    """
    if path.is_dir():
        raise damaged(path, "a folder where the database should be")
    try:
        private_folder(path.parent)
        lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    except OSError as err:
        raise state_failure(path, err) from None
    try:
        # Opening is serialised: another process creating the file must never be caught half-way, when
        # it is still empty or has no tables yet, which would read as a damaged database.
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _open_locked(path, schema, migrations, table)
    finally:
        os.close(lock)  # releases the flock


def _open_locked(path: Path, schema: str, migrations: tuple[Callable[[sqlite3.Connection], None], ...],
                 table: str) -> sqlite3.Connection:
    existed = path.exists()
    if existed and not stat.S_ISREG(path.stat().st_mode):  # a pipe would hang SQLite, a device never end
        raise damaged(path, "not a regular file (a pipe, a device or a link to one)")
    if existed and path.stat().st_size == 0 and not _has_content(Path(f"{path}-wal")):
        raise damaged(path, "the file is empty")
    try:
        if existed:
            for side in ("", "-wal", "-shm", "-journal", ".lock"):
                tighten(Path(f"{path}{side}"))
        else:
            # Made 0600 before SQLite opens it: SQLite gives its -wal, -shm and -journal files the mode of
            # the database file (the umask's 0644 otherwise, the addresses readable by every local user).
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
            os.chmod(path, PRIVATE_FILE)
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
    except (OSError, sqlite3.Error) as err:
        raise state_failure(path, err) from None
    try:
        # WAL: readers (status, a send screening addresses) never wait for a writer.
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed `sending` mark survives even a power cut, not just a killed process.
        db.execute("PRAGMA synchronous=FULL")
        if existed and not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                                      (table,)).fetchone():
            raise damaged(path, f"it holds no {table} table: not a file mailer wrote")
        db.executescript(schema)
        for version, migrate in enumerate(migrations, start=1):
            if db.execute("PRAGMA user_version").fetchone()[0] >= version:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("PRAGMA user_version").fetchone()[0] < version:  # not done while this one waited
                    migrate(db)
                    db.execute(f"PRAGMA user_version={version}")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
    except StateError:
        db.close()
        raise
    except sqlite3.Error as err:
        db.close()
        raise state_failure(path, err) from None
    return db


@contextmanager
def state_transaction(db: sqlite3.Connection, path: Path, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """One transaction on a state database: all of it or none; a full disk or a damaged file is a StateError."""
    try:
        db.execute(f"BEGIN {mode}")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as err:
        # A full disk, a file made read-only or damaged underneath us: never a traceback.
        if not is_state_fault(err):
            raise
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise state_failure(path, err) from None


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def check_writable(db: sqlite3.Connection, path: Path) -> None:
    """Write to the database once (its version, unchanged): a full disk or a read-only file shows now,
    before a request leaves, instead of after the provider accepted it."""
    try:
        db.execute("BEGIN IMMEDIATE")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute(f"PRAGMA user_version={int(version)}")
        db.execute("COMMIT")
    except sqlite3.Error as err:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise state_failure(path, err) from None

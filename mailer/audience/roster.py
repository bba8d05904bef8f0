"""The subscriber store as lists: a CSV imported into it, exported from it, its confirmed readers for a send.

The CSV is read by the list reader every send uses (audience.subscribers: the same grammar, the same
errors with their lines), and the export writes what that reader takes back: importing an export
changes nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from mailer.audience.store import (
    CONFIRMED,
    ImportOutcome,
    Incoming,
    SubscriberStore,
)
from mailer.audience.subscribers import (
    COLUMNS,
    EXPORT_COLUMNS,
    FORMULA_STARTS,
    NOT_MAILED,
    Spool,
    SpooledSubscribers,
    SubscriberList,
    read_subscribers,
    row_chunks,
)
from mailer.errors import InputError, Problem
from mailer.schema import suggestion

STORE_LABEL = "the subscriber store"
EXPORT_HEADER = (*COLUMNS, *EXPORT_COLUMNS)


def import_list(path: Path, state_dir: Path, *, file_label: str, encoding: str | None = None,
                skip_invalid: bool = False, dry_run: bool = False) -> tuple[ImportOutcome, SubscriberList]:
    """Import a subscribers CSV into the store: what was added, updated, left and refused, and the list as read.

    A file with invalid rows is refused whole (InputError with every row's line), as `mailer send`
    refuses it, unless `skip_invalid`: then they are reported as refused and the rest imported.
    """
    # One process: the store's statements take most of an import's time, and worker processes would
    # double its memory for a second or two saved.
    found = read_subscribers(path, file_label=file_label, encoding=encoding, skip_invalid=skip_invalid, processes=1)

    def incoming() -> Iterator[Incoming]:  # a large list streams from its spool: never all in memory
        for chunk in row_chunks(found.subscribers, 5000):
            for email, first_name, last_name, tags, line in chunk:
                yield Incoming(email, first_name, last_name, tags, CONFIRMED, line)
        for skipped in found.skipped:
            if skipped.reason in NOT_MAILED:
                yield Incoming(skipped.email, status=skipped.reason, line=skipped.line, names_known=False)

    with SubscriberStore.open(state_dir) as store:
        outcome = store.import_readers(incoming(), form=f"import of {file_label}", dry_run=dry_run)
    for skipped in found.skipped:
        if skipped.reason not in NOT_MAILED and not skipped.reason.startswith("duplicate"):
            outcome.note("refused", skipped.line, skipped.email, skipped.reason)
    outcome.notes["refused"].sort()
    return outcome, found


def export_list(state_dir: Path, out: TextIO, *, status: str | None = None) -> int:
    """Write the store's readers (of `status`) as a subscribers CSV with their status, source, dates and latest
    consent (when, where, the exact text and its version); how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_HEADER)
    count = 0
    with SubscriberStore.open(state_dir) as store:
        for reader, consent in store.readers_with_consent(status=status):
            given = (consent.given_at, as_cell(consent.form), as_cell(consent.text), as_cell(consent.version)) \
                if consent else ("", "", "", "")
            writer.writerow((reader.email, as_cell(reader.first_name), as_cell(reader.last_name), reader.status,
                             as_cell(";".join(reader.tags)), reader.source, reader.created_at,
                             reader.confirmed_at or "", *given))
            count += 1
    return count


def as_cell(text: str) -> str:
    """A name as a spreadsheet shows it and does not run: one starting like a formula (`=HYPERLINK(…)`, a
    name typed by a stranger into the sign-up form) gets a leading apostrophe, which the list reader takes
    off again (audience.subscribers.FORMULA_GUARD), so that importing an export changes nothing."""
    return f"'{text}" if text[:1] in FORMULA_STARTS else text


def store_subscribers(state_dir: Path, *, segment: str | None = None) -> SubscriberList:
    """The store's confirmed readers (tagged `segment`), as the list a send reads: spooled, never all in memory.

    Raises InputError when there is no store, or no confirmed reader in it (a send to nobody).
    """
    readers = SubscriberStore.open_existing(state_dir)
    if readers is None:
        raise InputError([Problem(STORE_LABEL, f"there is no subscriber store in {state_dir} yet",
                                  hint="give the list with --subscribers FILE, or fill the store: "
                                  "mailer subscribers import FILE.csv (or sign-ups through mailer serve)")])
    spool = Spool(STORE_LABEL)
    left_out, known = 0, set()
    with readers:
        for chunk in readers.confirmed_rows():
            for row in chunk:
                if segment is None or segment in row[3]:
                    spool.add(row)
                else:
                    left_out += 1
                    known.update(row[3])
    spool.finish()
    result = SubscriberList(STORE_LABEL, subscribers=SpooledSubscribers(spool, set()))  # type: ignore[arg-type]
    if not result.subscribers:
        spool.close()
        tagged = f" tagged {segment!r}" if segment else ""
        tags = ", ".join(sorted(known)) or "none"
        raise InputError([Problem(STORE_LABEL, f"no confirmed reader{tagged} to send to ({left_out} other "
                                  "confirmed)" if segment else "no confirmed reader to send to",
                                  hint=suggestion(segment, sorted(known), "the confirmed readers' tags")
                                  if segment and known else f"the confirmed readers' tags: {tags}" if segment else
                                  "see who is there: mailer subscribers list")])
    return result

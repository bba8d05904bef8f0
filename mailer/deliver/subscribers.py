"""Reading the subscribers CSV: UTF-8 (BOM or not), every problem at once, addresses normalised and de-duplicated."""

from __future__ import annotations

import codecs
import csv
import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mailer.addresses import AddressError, address_key, parse_address, printable
from mailer.errors import InputError, Problem
from mailer.headers import header_problem

COLUMNS = ("email", "first_name", "last_name", "status", "tags")
STATUSES = ("subscribed", "unsubscribed")

@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is slow, and there are 100,000s
class Subscriber:
    email: str  # as mailer.addresses.parse_address returns it: the exact address servers are given
    first_name: str = ""
    last_name: str = ""
    tags: tuple[str, ...] = ()
    line: int = 0

    @property
    def key(self) -> str:
        """The identity used for de-duplication and the ledger: address_key, cheaply, as `email` is parsed."""
        return self.email.lower()

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


@dataclass(frozen=True, slots=True)
class Skipped:
    line: int
    email: str
    reason: str


@dataclass
class SubscriberList:
    """The subscribers to mail, in file order, and what was left out and why."""

    file_label: str
    subscribers: list[Subscriber] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def find(self, email: str) -> Subscriber | None:
        key = address_key(email)
        return next((s for s in self.subscribers if s.key == key), None)


def read_subscribers(
    path: Path,
    *,
    file_label: str | None = None,
    encoding: str | None = None,
    skip_invalid: bool = False,
    segment: str | None = None,
) -> SubscriberList:
    """Read and validate a subscribers CSV.

    Invalid rows are errors (InputError listing all of them) unless `skip_invalid`, in which
    case they are reported in `skipped`. Unsubscribed rows, rows outside `segment` and duplicate
    addresses are never returned; they are listed in `skipped` with the reason.
    """
    label = file_label or str(path)
    with _open_text(path, label, encoding) as stream:
        try:
            return _read_rows(csv.reader(stream, strict=True), label, skip_invalid=skip_invalid, segment=segment)
        except UnicodeDecodeError:
            raise _decode_error(path, label, encoding) from None


def _read_rows(rows: Any, label: str, *, skip_invalid: bool, segment: str | None) -> SubscriberList:
    result = SubscriberList(label)
    problems: list[Problem] = []
    try:
        header = next(rows, None)
    except csv.Error as err:
        raise InputError([Problem(label, f"not a readable CSV: {err}", 1)]) from None
    if header is None:
        raise InputError([Problem(label, "the file is empty", hint="the first line must be a header: "
                                  + ",".join(COLUMNS))])
    columns = _check_header(header, label, problems, result.warnings)
    if problems:
        raise InputError(problems)
    first_line: dict[str, int] = {}
    tag_sets: dict[str, tuple[str, ...]] = {}
    # This loop runs once per subscriber: plain indexes, no dicts. Rows are padded with empty
    # cells so that short rows and absent columns (pointed at the padding) read as "".
    width = len(header) + 1
    i_email, i_first, i_last, i_status, i_tags = (columns.get(name, width - 1) for name in COLUMNS)
    subscribers, skipped, warnings = result.subscribers, result.skipped, result.warnings
    last_line = rows.line_num  # where the row being read ends: the next one starts below it
    try:
        for line, row in _numbered(rows):
            last_line = line
            if len(row) < width:
                row.extend([""] * (width - len(row)))
            if not row[i_email].strip() and not "".join(row).strip():
                continue  # blank line
            try:
                email, problem = parse_address(row[i_email]), None
            except AddressError as err:
                email, problem = printable(row[i_email].strip()), str(err)
            first_name, last_name = row[i_first].strip(), row[i_last].strip()
            status = row[i_status].strip().lower() or "subscribed"
            if problem is None and status not in STATUSES:
                problem = f"status must be 'subscribed' or 'unsubscribed', not {printable(row[i_status].strip())!r}"
            if problem is None:
                # Names go into the To header and, through -first_name-, the subject.
                problem = _header_problem("first_name", first_name) or _header_problem("last_name", last_name)
            if problem:
                if skip_invalid:
                    skipped.append(Skipped(line, email, problem))
                else:
                    problems.append(Problem(label, problem, line))
                continue
            raw_tags = row[i_tags]
            tags = tag_sets.get(raw_tags)
            if tags is None:  # a list has a handful of tag sets: one tuple each, shared by every row that has it
                tags = tag_sets[raw_tags] = tuple(
                    t.strip() for t in raw_tags.replace(",", ";").split(";") if t.strip()) if raw_tags else ()
            key = email.lower()  # address_key, as email is parsed
            if key == email:
                key = email  # one string, not two equal ones: a million keys are 70 MB
            first = first_line.get(key)
            if first is not None:
                warnings.append(Problem(label, f"duplicate of line {first} ({email}); only line {first} is used",
                                        line))
                skipped.append(Skipped(line, email, f"duplicate of line {first}"))
                continue
            first_line[key] = line
            if status == "unsubscribed":
                skipped.append(Skipped(line, email, "unsubscribed"))
                continue
            if segment is not None and segment not in tags:
                skipped.append(Skipped(line, email, f"not tagged {segment!r}"))
                continue
            subscribers.append(Subscriber(email, first_name, last_name, tags, line))
    except csv.Error as err:
        # The row that broke starts after the last good one. rows.line_num is where the reader
        # stopped: for a quote never closed that is the end of the file, far from the mistake.
        problems.append(Problem(label, f"not a readable CSV: {err}", last_line + 1,
                                hint="check the quotes on this line"))
    if problems:
        raise InputError(problems)
    return result


def _header_problem(column: str, value: str) -> str | None:
    unsafe = header_problem(value)
    if unsafe is None:
        return None
    offset, reason = unsafe
    return f"{column} {reason} at character {offset + 1} ('{printable(value)}')"


def _numbered(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Rows with their line number: the first line of a row whose quoted field spans lines."""
    ended = reader.line_num  # type: ignore[attr-defined]
    for row in reader:
        yield ended + 1, row
        ended = reader.line_num  # type: ignore[attr-defined]


def _open_text(path: Path, label: str, encoding: str | None) -> TextIO:
    """The file as text, decoded as it is read: a list of a million is never held as bytes and string at once."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError([Problem(label, f"unknown encoding {encoding!r}",
                                      hint="e.g. --encoding cp1252 or --encoding latin-1")]) from None
    try:
        # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first column's name.
        return open(path, encoding=encoding or "utf-8-sig", newline="")  # noqa: SIM115 (the caller closes it)
    except FileNotFoundError:
        raise InputError([Problem(label, "file not found", hint="check the path; the workspace ships a sample list, "
                                  "subscribers.example.csv, to copy (columns: " + ",".join(COLUMNS) + ")")]) from None


def _decode_error(path: Path, label: str, encoding: str | None) -> InputError:
    """Where the file stops being `encoding`: found again in the bytes (the text reader's offset is per chunk)."""
    data = path.read_bytes()
    try:
        data.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        return InputError([Problem(
            label, f"not valid {encoding or 'UTF-8'} (byte 0x{data[err.start]:02x})", line,
            hint="save the file as UTF-8, or name its encoding with --encoding (e.g. --encoding cp1252)",
        )])
    return InputError([Problem(label, f"not valid {encoding or 'UTF-8'}",
                               hint="save the file as UTF-8, or name its encoding with --encoding")])


def _check_header(header: list[str], label: str, problems: list[Problem], warnings: list[Problem]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = raw.strip().lower().replace(" ", "_").replace("-", "_")
        if name in COLUMNS:
            if name in columns:
                problems.append(Problem(label, f"column {name!r} appears twice in the header", 1))
            columns[name] = index
        elif name:
            close = difflib.get_close_matches(name, COLUMNS, n=1, cutoff=0.6)
            if close and close[0] not in [h.strip().lower() for h in header]:
                problems.append(Problem(label, f"unknown column {raw.strip()!r}", 1,
                                        hint=f"did you mean {close[0]!r}?"))
            else:
                warnings.append(Problem(label, f"column {raw.strip()!r} is not used", 1,
                                        hint="known columns: " + ", ".join(COLUMNS)))
    if "email" not in columns and not problems:
        problems.append(Problem(label, "the header has no 'email' column", 1,
                                hint="the first line must name the columns: " + ",".join(COLUMNS)))
    return columns

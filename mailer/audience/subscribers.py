"""Reading the subscribers CSV: UTF-8 (BOM or not), every problem at once, addresses normalised and de-duplicated."""

from __future__ import annotations

import array
import codecs
import csv
import hashlib
import io
import marshal
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from mailer import children
from mailer.addresses import AddressError, address_key, parse_address, printable
from mailer.errors import InputError, Problem
from mailer.headers import header_problem
from mailer.schema import suggestion

COLUMNS = ("email", "first_name", "last_name", "status", "tags")
# `mailer subscribers export` also writes these: read back without a warning, and not used.
EXPORT_COLUMNS = ("source", "created_at", "confirmed_at", "consent_given_at", "consent_form", "consent_text",
                  "consent_version")
# A cell a spreadsheet would run as a formula starts with one of these (OWASP's CSV injection); an export
# writes such a name behind an apostrophe, which reading takes off again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_GUARD = tuple(f"'{start}" for start in FORMULA_STARTS)
MAILED = ("subscribed", "confirmed")  # a row of either is mailed; "confirmed" is the subscriber store's word
# Not mailed, each left out with its status as the reason (the store's statuses, as an export writes them).
NOT_MAILED = ("unsubscribed", "pending", "bounced", "complained")
STATUSES = MAILED + NOT_MAILED

# Chinese, Japanese and Korean scripts: Han (with 々 and 〇), Hiragana, Katakana, Hangul (syllables and jamo).
_HAN_KANA_HANGUL = re.compile(
    "[\u1100-\u11ff\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3038-\u303b\u3040-\u30ff\u3130-\u318f"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff66-\uffdc"
    "\U00020000-\U0003134f]")
_KATAKANA = re.compile("[\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]")


def display_name(first_name: str, last_name: str) -> str:
    """A reader's name as it is written: 'Ada Lovelace', and Chinese, Japanese and Korean names family name
    first without a space ('韩梅梅', '山田花子', '김민준').

    The name's script decides (the subscribers CSV has no language column, and a Latin name stays as it
    is whatever the issue's language): both parts written in Han, kana or Hangul. A family name in
    katakana alone is a foreign name written in Japanese ('ジョン スミス'): given name first, as today.
    """
    # isascii first: most names are Latin, and this runs for every recipient of a send.
    if not first_name or not last_name or (first_name + last_name).isascii():
        return " ".join(part for part in (first_name, last_name) if part)
    foreign = all(_KATAKANA.match(char) for char in last_name if char.isalpha())
    if _east_asian(first_name) and _east_asian(last_name) and not foreign:
        return last_name + first_name
    return " ".join(part for part in (first_name, last_name) if part)


def _east_asian(name: str) -> bool:
    """Every letter of `name` is Han, kana or Hangul (and it has one)."""
    letters = [char for char in name if char.isalpha()]
    return bool(letters) and all(_HAN_KANA_HANGUL.match(char) for char in letters)


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
        """The name in the To header: see display_name."""
        return display_name(self.first_name, self.last_name)

    def as_row(self) -> tuple[str, str, str, tuple[str, ...], int]:
        """The fields as a plain tuple, Subscriber(*row) again: what a temporary file or another process is
        given (marshal takes no objects, and a slotted object pickles ten times slower)."""
        return (self.email, self.first_name, self.last_name, self.tags, self.line)


@dataclass(frozen=True, slots=True)
class Skipped:
    line: int
    email: str
    reason: str


@dataclass
class SubscriberList:
    """The subscribers to mail, in file order, and what was left out and why."""

    file_label: str
    # A list; for a large file, SpooledSubscribers that reads them back from a temporary file (same operations).
    subscribers: list[Subscriber] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    invalid: int = 0  # rows left out for a problem (skip_invalid): with none, the list reads the same without it
    # Read through mailer.audience.listcache: the key of its bytes and how they were read. A send that
    # leaves nobody on the list to send to records it, and the same command again answers from that.
    key: str | None = None

    def find(self, email: str) -> Subscriber | None:
        key = address_key(email)
        return next((s for s in self.subscribers if s.key == key), None)


# A list file larger than this is not held in memory: it is read once to check every row and find the
# duplicates (on disk), and the rows checked are kept in a temporary file for every pass that needs
# the subscribers (SpooledSubscribers).
IN_MEMORY_BYTES = 8 * 1024 * 1024  # about 130,000 rows
# A large list in UTF-8 (the default) is checked a block of rows at a time in worker processes, this
# many (one per core, up to four), and spooled in order by this one; 1: all in this process.
CHECK_PROCESSES = min(4, os.cpu_count() or 1)
CHECK_BLOCK = 2 * 1024 * 1024  # bytes of rows handed to a process at a time (about 30,000 rows)


def row_chunks(subscribers: list[Subscriber] | SpooledSubscribers, size: int) -> Iterator[list[tuple]]:
    """A list's subscribers as rows (Subscriber.as_row), in chunks of at most `size`: a large list's straight
    from its spool, where they are rows already."""
    if isinstance(subscribers, SpooledSubscribers):
        for chunk in subscribers.rows():
            for start in range(0, len(chunk), size):
                yield chunk[start:start + size]
        return
    for start in range(0, len(subscribers), size):
        yield [subscriber.as_row() for subscriber in subscribers[start:start + size]]


def read_subscribers(
    path: Path,
    *,
    file_label: str | None = None,
    encoding: str | None = None,
    skip_invalid: bool = False,
    segment: str | None = None,
    spool_dir: Path | None = None,
    digest: Any = None,
    processes: int | None = None,
) -> SubscriberList:
    """Read and validate a subscribers CSV.

    Invalid rows are errors (InputError listing all of them) unless `skip_invalid`, in which
    case they are reported in `skipped`. Unsubscribed rows, rows outside `segment` and duplicate
    addresses are never returned; they are listed in `skipped` with the reason. Every row is read
    and checked before this returns, whatever the size of the file; a large one's `subscribers` are
    kept in a temporary file as they were checked (see SpooledSubscribers): in `spool_dir` if given
    (named, for the caller to keep: Spool.path), else in TMPDIR (anonymous, gone with the list).
    `digest` (a hashlib object), if given, is fed every byte of the file as it is read and checked.
    `processes`: how many worker processes check a large list (default CHECK_PROCESSES; 1: this one alone,
    slower and lighter, for an import whose own work dwarfs the reading).
    """
    label = file_label or str(path)
    large = path.is_file() and path.stat().st_size > IN_MEMORY_BYTES
    stamp = _stamp(path) if large else None
    result = SubscriberList(label)
    problems: list[Problem] = []
    invalid: list[int] = []
    seen: _HashSeen | _MemorySeen = _HashSeen() if large else _MemorySeen()
    spool: Spool | None = None
    try:
        checked = False
        if large and encoding is None and (processes or CHECK_PROCESSES) > 1:
            assert isinstance(seen, _HashSeen)
            spool = Spool(label, folder=spool_dir)
            checked = _check_in_processes(path, label, skip_invalid=skip_invalid, segment=segment, spool=spool,
                                          seen=seen, result=result, problems=problems, invalid=invalid,
                                          digest=digest)
            if not checked:
                # A block that is not plain CSV or UTF-8: read it all here, for the errors as they are told.
                spool.discard()
                spool.close()
                spool, digest, seen = None, None, _HashSeen()  # every byte was hashed: not twice
                result, problems, invalid = SubscriberList(label), [], []
        if not checked:
            with _open_text(path, label, encoding, digest) as stream:
                try:
                    rows = _subscriber_rows(csv.reader(stream, strict=True), label, skip_invalid=skip_invalid,
                                            segment=segment, problems=problems, skipped=result.skipped,
                                            invalid=invalid, warnings=result.warnings, seen=seen)
                    if large:
                        spool = Spool(label, folder=spool_dir)
                        for row in rows:
                            spool.add(row)
                        spool.finish()
                    else:
                        result.subscribers.extend(Subscriber(*row) for row in rows)
                except UnicodeError:  # UnicodeDecodeError, or a UTF-16 file without its byte-order mark
                    raise _decode_error(path, label, encoding) from None
        if problems:
            raise InputError(problems)
        result.invalid = len(invalid)
        if isinstance(seen, _HashSeen):
            if _stamp(path) != stamp:
                raise _changed(label)
            assert spool is not None
            duplicates = seen.duplicates(spool, result.skipped)
            # The repeats that were kept as subscribers (not those skipped anyway, as unsubscribed or
            # outside the segment) are in the spool: they are passed over when it is read.
            left_out = {skipped.line for skipped in result.skipped}
            result.subscribers = SpooledSubscribers(spool, {line for line, _, _ in duplicates if line not in left_out})
            _settle_duplicates(duplicates, result, label)
    except BaseException:
        if spool is not None:
            spool.discard()
            spool.close()
        raise
    return result


class _MemorySeen:
    """Which address key came first on which line, in a dict: for lists held in memory."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def first(self, key: str, line: int, email: str) -> int | None:
        first = self._first.get(key)
        if first is None:
            self._first[key] = line
        return first


class _HashSeen:
    """The same for a large list, in 16 bytes a row: each key's hash (Python's own, 64 bits) and line, in
    two arrays. Duplicates are known only once every row is in (`duplicates`); `first` answers None meanwhile.

    (It replaced a temporary SQLite file of the keys, which took 3 of the 8.5 seconds a million rows
    took to check.)
    """

    def __init__(self) -> None:
        self._hashes = array.array("q")
        self._lines = array.array("q")

    def first(self, key: str, line: int, email: str) -> int | None:
        self._hashes.append(hash(key))
        self._lines.append(line)
        return None

    def extend(self, hashes: bytes, lines: bytes) -> None:
        """Rows a worker process saw (_BlockSeen): every row of a list is given one way or the other."""
        self._hashes.frombytes(hashes)
        self._lines.frombytes(lines)

    BUCKETS = 16

    def _buckets(self) -> Iterator[array.array]:
        """The hashes in BUCKETS arrays by their low bits (equal hashes share one), a bucket at a time."""
        buckets = [array.array("q") for _ in range(self.BUCKETS)]
        appends = [bucket.append for bucket in buckets]
        mask = self.BUCKETS - 1
        for value in self._hashes:
            appends[value & mask](value)
        while buckets:
            yield buckets.pop()

    def duplicates(self, spool: Spool, skipped: list[Skipped]) -> list[tuple[int, str, int]]:
        """(line, email, first line of that address) of every row that repeats an earlier one, by line.

        The hashes seen twice are found in one pass through a set (none: done; sorting them took twice
        as long, 0.75 s at a million); only the rows with such a hash are looked at again, by their
        address, from the spool or the rows skipped (unsubscribed or outside the segment): every row
        given to `first` is in one or the other.
        """
        repeated: set[int] = set()
        for bucket in self._buckets():
            # A set of a sixteenth of the hashes at a time: one of all of them (a million ints and their
            # table) was 60 MB at a million rows, most of the reading's peak.
            seen: set[int] = set()
            add = seen.add
            repeated.update(value for value in bucket if value in seen or add(value))  # add() is None: falsy
        if not repeated:
            return []
        wanted = {line for value, line in zip(self._hashes, self._lines, strict=True) if value in repeated}
        emails = {row.line: row.email for row in skipped if row.line in wanted}
        for chunk in spool.chunks():
            emails.update((row[4], row[0]) for row in chunk if row[4] in wanted)
        found, first_of = [], {}
        for line in sorted(wanted):
            email = emails[line]
            first = first_of.setdefault(email.lower(), line)  # the key `first` was given: address_key
            if first != line:
                found.append((line, email, first))
        return found


class _BlockSeen(_HashSeen):
    """_HashSeen in a worker process: each key hashed the same in every process (Python's hash() is not),
    by CRC-32 and Adler-32 side by side, 64 bits (unsigned here: the same bits, read signed by extend)."""

    def __init__(self) -> None:
        super().__init__()
        self._hashes = array.array("Q")

    def first(self, key: str, line: int, email: str) -> int | None:
        data = key.encode()
        self._hashes.append(zlib.crc32(data) << 32 | zlib.adler32(data))
        self._lines.append(line)
        return None

    def as_bytes(self) -> tuple[bytes, bytes]:
        """The hashes and lines seen, for the parent's _HashSeen.extend."""
        return self._hashes.tobytes(), self._lines.tobytes()


def _settle_duplicates(duplicates: list[tuple[int, str, int]], result: SubscriberList, label: str) -> None:
    """Record the duplicates found after the read, as a list held in memory records them while reading.

    A repeated row was read as if it were the first (unsubscribed, outside the segment, or kept):
    that reading is replaced by "duplicate of line N".
    """
    if not duplicates:
        return
    lines = {line for line, _, _ in duplicates}
    result.skipped[:] = [skipped for skipped in result.skipped if skipped.line not in lines]
    result.skipped.extend(Skipped(line, email, f"duplicate of line {first}") for line, email, first in duplicates)
    result.skipped.sort(key=lambda skipped: skipped.line)
    result.warnings.extend(Problem(label, f"duplicate of line {first} ({email}); only line {first} is used", line)
                           for line, email, first in duplicates)
    result.warnings.sort(key=lambda warning: warning.line or 0)


class SpooledSubscribers:
    """A large list's subscribers, as they were checked, read back from a temporary file a chunk at a time.

    Acts as the read-only list the rest of mailer uses: len(), iteration in file order, [0], [:n].
    A pass over them costs a tenth of reading the CSV again (no parsing, no checking), and what is
    sent is exactly what was checked: the list file may be saved, moved or deleted meanwhile.
    """

    def __init__(self, spool: Spool, duplicates: set[int]):
        self.spool = spool
        self.duplicates = duplicates  # lines spooled before they turned out to repeat an earlier address
        self._count = spool.count - len(duplicates)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[Subscriber]:
        duplicates = self.duplicates
        for chunk in self.spool.chunks():
            if duplicates:
                yield from (Subscriber(*fields) for fields in chunk if fields[4] not in duplicates)
            else:
                yield from (Subscriber(*fields) for fields in chunk)

    def rows(self) -> Iterator[list[tuple]]:
        """The subscribers as their Spool rows (Subscriber.as_row), a chunk at a time: no objects made."""
        duplicates = self.duplicates
        for chunk in self.spool.chunks():
            yield [fields for fields in chunk if fields[4] not in duplicates] if duplicates else chunk

    def __getitem__(self, index: int | slice) -> Any:
        import itertools

        if isinstance(index, slice):
            if index.step not in (None, 1) or (index.start or 0) < 0 or (index.stop is not None and index.stop < 0):
                raise IndexError("a large list takes only slices from the start, like [:10]")
            return list(itertools.islice(self, index.start, index.stop))
        if not 0 <= index < self._count:
            raise IndexError(index)
        return next(itertools.islice(self, index, None))


class Spool:
    """Checked subscribers in a file of their own, as marshal'ed chunks of plain tuples: an anonymous
    temporary file (gone once closed, or with the process), or a named one that the list cache keeps
    (mailer/audience/listcache.py). Chunks are read at their offsets (os.pread), so that any number of
    passes may read at once."""

    CHUNK = 5000

    def __init__(self, label: str, file: BinaryIO | None = None, chunks: list[tuple[int, int]] | None = None,
                 count: int = 0, *, folder: Path | None = None):
        """A new, empty spool: anonymous in TMPDIR, or named in `folder` (`path`: the caller keeps or
        discards it); or, given `file` and its `chunks`, the spool written there before."""
        import tempfile

        self._label = label
        self._pending: list[tuple] = []
        self._chunks: list[tuple[int, int]] = chunks or []  # (offset, length) of each chunk
        self._end = sum(length for _, length in self._chunks)
        self.count = count
        self.path: Path | None = None
        self.rows_digest = hashlib.sha256()  # of the chunks written by this object
        if file is not None:
            self._file = file
            return
        if folder is not None:
            try:
                self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the list
                    dir=folder, prefix=".list-", suffix=".tmp", delete=False)
                self.path = Path(self._file.name)
                return
            except OSError:
                pass  # the anonymous one, then
        try:
            self._file = tempfile.TemporaryFile(prefix="mailer-list-")  # noqa: SIM115 - lives as long as the list
        except OSError as err:
            raise self._failed(err) from None

    @property
    def chunk_offsets(self) -> list[tuple[int, int]]:
        return list(self._chunks)

    def seal(self, trailer: bytes) -> None:
        """Write `trailer` after the chunks, through the spool's own open file (never reopened by name:
        the name may be gone, or another file's by now)."""
        if os.pwrite(self._file.fileno(), trailer, self._end) != len(trailer):
            raise OSError(f"{self.path}: the trailer was written only in part (a full disk?)")

    def same_file_as_path(self) -> bool:
        """Whether `path` still names the file this spool writes."""
        if self.path is None:
            return False
        try:
            named = self.path.stat()
        except OSError:
            return False
        mine = os.fstat(self._file.fileno())
        return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)

    def close(self) -> None:
        """Close the file (a spool whose list is refused: nothing will read it)."""
        self._file.close()

    def discard(self) -> None:
        """Remove a named spool's file (its rows stay readable while the file is open)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None

    def add(self, row: tuple[str, str, str, tuple[str, ...], int]) -> None:
        """One subscriber, as its row (Subscriber.as_row)."""
        self._pending.append(row)
        if len(self._pending) >= self.CHUNK:
            self._flush()

    def add_chunk(self, data: bytes, count: int) -> None:
        """`count` rows marshal'ed elsewhere (a worker process), as _flush writes them."""
        self._flush()
        self._write(data, count)

    def finish(self) -> None:
        self._flush()
        try:
            self._file.flush()
        except OSError as err:
            raise self._failed(err) from None

    def _flush(self) -> None:
        if not self._pending:
            return
        self._write(marshal.dumps(self._pending), len(self._pending))
        self._pending.clear()

    def _write(self, data: bytes, count: int) -> None:
        try:
            self._file.write(data)
        except OSError as err:
            raise self._failed(err) from None
        self.rows_digest.update(data)
        self._chunks.append((self._end, len(data)))
        self._end += len(data)
        self.count += count

    def chunks(self) -> Iterator[list[tuple]]:
        descriptor = self._file.fileno()
        for offset, length in self._chunks:
            yield marshal.loads(os.pread(descriptor, length, offset))

    def _failed(self, err: OSError) -> InputError:
        import tempfile

        folder = self.path.parent if self.path is not None else tempfile.gettempdir()
        return InputError([Problem(self._label, f"cannot write the temporary file in {folder} that keeps a large "
                                   f"list as it was checked: {err.strerror or err}",
                                   hint=f"free some space in {folder}" + (
                                       "" if self.path else ", or point TMPDIR at a folder with room"))])


def _changed(label: str) -> InputError:
    return InputError([Problem(label, "the file changed (or was moved) while mailer was using it",
                               hint="run the same command again: it reads the list afresh")])


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def _subscriber_rows(rows: Any, label: str, *, skip_invalid: bool, segment: str | None, problems: list[Problem],
                     skipped: list[Skipped], invalid: list[int], warnings: list[Problem],
                     seen: _MemorySeen | _HashSeen, header: list[str] | None = None, lines_before: int = 0,
                     raise_unreadable: bool = False) -> Iterator[tuple[str, str, str, tuple[str, ...], int]]:
    """The subscribers to mail, row by row, as their rows (Subscriber.as_row: what is spooled, a million times
    for a large list); what is wrong or left out goes into the lists given (`invalid`: the lines of the rows
    skipped for a problem).

    A block of a file (_check_block) comes with the file's `header`, and `lines_before` it; a row that is
    not readable CSV raises csv.Error there (`raise_unreadable`) instead of being told."""
    if header is None:
        try:
            header = next(rows, None)
        except csv.Error as err:
            raise InputError([Problem(label, f"not a readable CSV: {err}", 1)]) from None
        if header is None:
            raise InputError([Problem(label, "the file is empty", hint="the first line must be a header: "
                                      + ",".join(COLUMNS))])
    columns = _check_header(header, label, problems, warnings)
    if problems:
        raise InputError(problems)
    tag_sets: dict[str, tuple[str, ...]] = {}
    # This loop runs once per subscriber: plain indexes, no dicts. Rows are padded with empty
    # cells so that short rows and absent columns (pointed at the padding) read as "".
    width = len(header) + 1
    i_email, i_first, i_last, i_status, i_tags = (columns.get(name, width - 1) for name in COLUMNS)
    first_of = seen.first
    last_line = rows.line_num + lines_before  # where the row being read ends: the next one starts below it
    ended = last_line
    try:
        for row in rows:
            # A row's line is the first of its lines: a quoted field may go on over several.
            line, ended = ended + 1, rows.line_num + lines_before
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
            if first_name.startswith(FORMULA_GUARD) or last_name.startswith(FORMULA_GUARD):  # see FORMULA_STARTS
                first_name, last_name = (name[1:] if name.startswith(FORMULA_GUARD) else name
                                         for name in (first_name, last_name))
            status = row[i_status].strip().lower() or "subscribed"
            if problem is None and status not in STATUSES:
                problem = (f"status must be one of {', '.join(STATUSES)} (blank: subscribed), not "
                           f"{printable(row[i_status].strip())!r}")
            names = first_name + last_name
            if problem is None and not (names.isprintable() and "=?" not in names):
                # Names go into the To header and, through -first_name-, the subject. (Printable text
                # with no encoded word in it cannot hold a line break: most rows stop at that test.)
                problem = _header_problem("first_name", first_name) or _header_problem("last_name", last_name)
            if problem:
                if skip_invalid:
                    skipped.append(Skipped(line, email, problem))
                    invalid.append(line)
                else:
                    problems.append(Problem(label, problem, line))
                continue
            raw_tags = row[i_tags][1:] if row[i_tags].startswith(FORMULA_GUARD) else row[i_tags]
            tags = tag_sets.get(raw_tags)
            if tags is None:  # a list has a handful of tag sets: one tuple each, shared by every row that has it
                tags = tag_sets[raw_tags] = tuple(
                    t.strip() for t in raw_tags.replace(",", ";").split(";") if t.strip()) if raw_tags else ()
            key = email.lower()  # address_key, as email is parsed
            if key == email:
                key = email  # one string, not two equal ones: a million keys are 70 MB
            first = first_of(key, line, email)
            if first is not None:
                warnings.append(Problem(label, f"duplicate of line {first} ({email}); only line {first} is used",
                                        line))
                skipped.append(Skipped(line, email, f"duplicate of line {first}"))
                continue
            if status not in MAILED:
                skipped.append(Skipped(line, email, status))
                continue
            if segment is not None and segment not in tags:
                skipped.append(Skipped(line, email, f"not tagged {segment!r}"))
                continue
            yield email, first_name, last_name, tags, line
    except csv.Error as err:
        if raise_unreadable:
            raise
        # The row that broke starts after the last good one. rows.line_num is where the reader
        # stopped: for a quote never closed that is the end of the file, far from the mistake.
        problems.append(Problem(label, f"not a readable CSV: {err}", last_line + 1,
                                hint="check the quotes on this line"))


def _check_in_processes(path: Path, label: str, *, skip_invalid: bool, segment: str | None, spool: Spool,
                        seen: _HashSeen, result: SubscriberList, problems: list[Problem], invalid: list[int],
                        digest: Any) -> bool:
    """Check a large UTF-8 list a block of whole rows at a time in CHECK_PROCESSES worker processes, and
    spool their rows in file order; False (and every byte hashed) when a block is not plain: a row the
    CSV reader cannot read, or bytes that are not UTF-8. The file is then read here, as a small one is.

    A block ends at a line end with an even number of quotes since the block's start, so no quoted
    field goes on past it. (Could a stray quote in an unquoted field fool that, the block would end
    inside a quoted field, which the reader refuses (strict): then it is read here, never cut wrong.)
    Each row is checked exactly as read here; only the duplicates wait for the end (_HashSeen).
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with open(path, "rb") as file:

        def read() -> bytes:
            data = file.read(CHECK_BLOCK)
            if digest is not None:
                digest.update(data)
            return data

        def give_up() -> bool:
            while read():  # the digest is of every byte, as if the file had been read through
                pass
            return False

        head = read()
        while b"\n" not in head and len(head) < 1 << 20 and (more := read()):  # a header line is short
            head += more
        start = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        end = head.find(b"\n", start) + 1
        try:
            header_reader = csv.reader(io.StringIO(head[start:end].decode("utf-8"), newline=""), strict=True)
            header_rows = list(header_reader)
        except (UnicodeDecodeError, csv.Error):
            return give_up()
        if not end or len(header_rows) != 1:  # no line end in the first block, or a header over two rows
            return give_up()
        header = header_rows[0]
        _check_header(header, label, problems, result.warnings)
        if problems:
            raise InputError(problems)
        pool = ProcessPoolExecutor(CHECK_PROCESSES, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=children.started)
        pending: deque[Future[Any]] = deque()
        lines = header_reader.line_num  # before the next block: the header's, a quoted \r in it counting too
        carry = head[end:]
        try:
            at_end = False
            while True:
                while not at_end and len(pending) < 2 * CHECK_PROCESSES:
                    more = read()
                    at_end = not more
                    block = carry + more
                    cut = len(block) if at_end else _rows_end(block)
                    if not cut:
                        if len(block) > max(8 * CHECK_BLOCK, 16 << 20):  # quotes that never pair up: read here
                            return give_up()
                        carry = block
                        continue
                    block, carry = block[:cut], block[cut:]
                    if block:
                        with children.starting():  # a submit may start a process
                            pending.append(pool.submit(_check_block, block, lines, header, label, skip_invalid,
                                                       segment))
                        lines += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
                if not pending:
                    spool.finish()
                    return True
                checked = pending.popleft().result()
                if checked is None:
                    return give_up()
                chunks, hashes, row_lines, skipped, skipped_invalid, found = checked
                for data, count in chunks:
                    spool.add_chunk(data, count)
                seen.extend(hashes, row_lines)
                result.skipped.extend(skipped)
                invalid.extend(skipped_invalid)
                problems.extend(found)
        except BrokenProcessPool:  # a worker killed (out of memory?), or one that could not start: read it here
            return give_up()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _rows_end(block: bytes) -> int:
    """Where the last whole row of `block` ends: after a line end with an even number of quotes before it
    (none of the last 64 line ends: 0, the block goes on)."""
    quotes = block.count(b'"')
    end = len(block)
    for _ in range(64):
        end = block.rfind(b"\n", 0, end)
        if end < 0:
            return 0
        if (quotes - block.count(b'"', end)) % 2 == 0:
            return end + 1
    return 0


def _check_block(block: bytes, lines_before: int, header: list[str], label: str, skip_invalid: bool,
                 segment: str | None) -> tuple | None:
    """In a worker process: the rows of `block` checked, as marshal'ed chunks of Spool rows, their keys'
    hashes and lines, what was skipped, the lines skipped as invalid and the problems; None when the
    block is not plain CSV or UTF-8 (_check_in_processes)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return None
    seen = _BlockSeen()
    skipped: list[Skipped] = []
    invalid: list[int] = []
    problems: list[Problem] = []
    chunks, pending = [], []
    try:
        for row in _subscriber_rows(csv.reader(io.StringIO(text, newline=""), strict=True), label,
                                    skip_invalid=skip_invalid, segment=segment, problems=problems, skipped=skipped,
                                    invalid=invalid, warnings=[], seen=seen, header=header,
                                    lines_before=lines_before, raise_unreadable=True):
            pending.append(row)
            if len(pending) >= Spool.CHUNK:
                chunks.append((marshal.dumps(pending), len(pending)))
                pending = []
    except csv.Error:
        return None
    if pending:
        chunks.append((marshal.dumps(pending), len(pending)))
    return chunks, *seen.as_bytes(), skipped, invalid, problems


def _header_problem(column: str, value: str) -> str | None:
    unsafe = header_problem(value)
    if unsafe is None:
        return None
    offset, reason = unsafe
    return f"{column} {reason} at character {offset + 1} ('{printable(value)}')"


def _open_text(path: Path, label: str, encoding: str | None, digest: Any = None) -> TextIO:
    """The file as text, decoded as it is read: a list of a million is never held as bytes and string at once.

    `digest`, if given, is fed the bytes as they are read (what was checked is what was hashed)."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError([Problem(label, f"unknown encoding {encoding!r}",
                                      hint="e.g. --encoding cp1252 or --encoding latin-1")]) from None
    try:
        if encoding and not codecs.lookup(encoding)._is_text_encoding:  # type: ignore[attr-defined]
            raise LookupError(encoding)  # hex, rot13, zlib…: codecs, but not for text
        # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first column's name.
        if digest is None:
            return open(path, encoding=encoding or "utf-8-sig", newline="")  # noqa: SIM115 (the caller closes it)
        raw = io.BufferedReader(_Hashing(open(path, "rb", buffering=0), digest))  # noqa: SIM115
        try:
            return io.TextIOWrapper(raw, encoding=encoding or "utf-8-sig", newline="")
        except BaseException:
            raw.close()
            raise
    except LookupError:
        raise InputError([Problem(label, f"{encoding!r} is not a text encoding",
                                  hint="e.g. --encoding cp1252 or --encoding latin-1")]) from None
    except FileNotFoundError:
        raise InputError([Problem(label, "file not found", hint="check the path; the workspace ships a sample list, "
                                  "subscribers.example.csv, to copy (columns: " + ",".join(COLUMNS) + ")")]) from None


class _Hashing(io.RawIOBase):
    """A file's bytes as they are read, each fed to `digest` too."""

    def __init__(self, raw: Any, digest: Any):
        self._raw = raw
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self._digest.update(memoryview(buffer)[:count])
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


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
    except UnicodeError:
        pass
    # Decoded whole it is fine, read as a stream it is not: UTF-16 or UTF-32 with no byte-order mark.
    return InputError([Problem(label, f"not valid {encoding or 'UTF-8'}",
                               hint="save the file as UTF-8, or name its encoding with --encoding (UTF-16 without a "
                                    "byte-order mark: --encoding utf-16-le or utf-16-be)")])


def require_segment(result: SubscriberList, path: Path, *, segment: str | None, encoding: str | None = None) -> None:
    """Raise InputError when `segment` leaves nobody on the list: a misspelt --segment sent to nobody, silently.

    The error names the list's tags (read again from its tags column: this costs a read only when it fails),
    with the one function that suggests a known key for a misspelt one.
    """
    if segment is None or result.subscribers:
        return
    tags = _tags_in(path, result.file_label, encoding) if path.is_file() else []
    hint = suggestion(segment, tags, "the list's tags") or "no row has a tag: the tags column is empty or missing"
    raise InputError([Problem(result.file_label, f"no subscribed reader is tagged {segment!r}: --segment "
                                                 f"{segment} would send to nobody", hint=hint)])


def _tags_in(path: Path, label: str, encoding: str | None) -> list[str]:
    """Every tag in the list's tags column, sorted (rows of any status)."""
    tags: set[str] = set()
    with _open_text(path, label, encoding) as text:
        rows = csv.reader(text)
        index = _check_header(next(rows, []), label, [], []).get("tags")
        if index is None:
            return []
        for row in rows:
            if len(row) > index:
                tags.update(t.strip() for t in row[index].replace(",", ";").split(";") if t.strip())
    return sorted(tags)


def _check_header(header: list[str], label: str, problems: list[Problem], warnings: list[Problem]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = raw.strip().lower().replace(" ", "_").replace("-", "_")
        if name in COLUMNS:
            if name in columns:
                problems.append(Problem(label, f"column {name!r} appears twice in the header", 1))
            columns[name] = index
        elif name in EXPORT_COLUMNS:
            continue
        elif name:
            hint = suggestion(name, [c for c in COLUMNS if c not in [h.strip().lower() for h in header]], None)
            if hint:
                problems.append(Problem(label, f"unknown column {raw.strip()!r}", 1, hint=hint))
            else:
                warnings.append(Problem(label, f"column {raw.strip()!r} is not used", 1,
                                        hint="known columns: " + ", ".join(COLUMNS)))
    if "email" not in columns and not problems:
        problems.append(Problem(label, "the header has no 'email' column", 1,
                                hint="the first line must name the columns: " + ",".join(COLUMNS)))
    return columns

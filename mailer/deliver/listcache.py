"""A subscribers list as it was checked, kept in the state folder: the next send of the same bytes skips the check.

Checking a list is most of what a rerun does, and a live send after its dry run checked the same
file a minute before (8 seconds for a million rows). The entry is keyed by the file's bytes (SHA-256),
the options that change what is read (encoding, --skip-invalid, --segment), the name errors give
the file, and mailer's own source: any change means the list is read and checked afresh, so every
error a read would report is still reported. What was checked is what is used: the key is the hash
of the bytes before and after the checking read, and a list saved meanwhile is not kept.

One entry per list file, replaced when the file changes (a reader deleted from the list is gone
from the state folder at the next send), and the newest few files only. Entries hold addresses
and names, so they are private to the user (0600), as the ledger's rows are. An unreadable or
unwritable cache is no cache, never an error.

Entry: marshal'ed chunks of Subscriber.as_row() tuples, then a marshal'ed trailer (key, chunk
offsets, count, skipped rows, warnings), then the trailer's length in 8 bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from mailer.deliver.subscribers import (
    Skipped,
    Spool,
    SpooledSubscribers,
    Subscriber,
    SubscriberList,
    read_subscribers,
)
from mailer.errors import Problem
from mailer.files import source_digest

FORMAT = "mailer-checked-list 1"
KEEP = 4  # list files kept; the least recently used go
CHUNK = 5000
_TAIL = 8  # bytes of the trailer's length, at the end


def read_subscribers_cached(path: Path, cache_dir: Path, *, file_label: str, encoding: str | None = None,
                            skip_invalid: bool = False, segment: str | None = None) -> SubscriberList:
    """read_subscribers, or the same list from the state folder when these bytes were checked before."""
    options = (file_label, encoding, skip_invalid, segment)
    try:
        key = _content_key(path, options)
    except OSError:
        key = None  # read_subscribers says what is wrong with the file
    entry = cache_dir / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]}.list"
    if key is not None:
        found = _load(entry, key, file_label)
        if found is not None:
            return found
    spool_dir = None
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        spool_dir = cache_dir  # a large list's rows are spooled where they are kept: not written twice
    result = read_subscribers(path, file_label=file_label, encoding=encoding, skip_invalid=skip_invalid,
                              segment=segment, spool_dir=spool_dir)
    spooled = result.subscribers if isinstance(result.subscribers, SpooledSubscribers) else None
    try:
        if key is not None and _content_key(path, options) == key:  # else saved while it was checked
            if spooled is not None and spooled.spool.path is not None:
                _keep_spool(entry, key, result, spooled)
            else:
                _store(entry, key, result)
            _prune(cache_dir)
    except Exception:  # a full disk, a read-only folder: no cache
        pass
    finally:
        if spooled is not None:
            spooled.spool.discard()  # unless kept: its name is gone, its rows readable while the list lives
    return result


def _content_key(path: Path, options: tuple) -> str:
    digest = hashlib.sha256(f"{FORMAT}\0{options!r}\0".encode())
    digest.update(source_digest())
    with path.open("rb") as data:
        while block := data.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _load(entry: Path, key: str, label: str) -> SubscriberList | None:
    try:
        file = entry.open("rb")  # noqa: SIM115 - a large list reads its rows from it for as long as it lives
    except OSError:
        return None
    try:
        size = os.fstat(file.fileno()).st_size
        length = int.from_bytes(os.pread(file.fileno(), _TAIL, size - _TAIL), "big")
        trailer = marshal.loads(os.pread(file.fileno(), length, size - _TAIL - length))
        if trailer["format"] != FORMAT or trailer["key"] != key:
            file.close()
            return None
        result = SubscriberList(label, skipped=[Skipped(*row) for row in trailer["skipped"]],
                                warnings=[Problem(*row) for row in trailer["warnings"]])
        spool = Spool(label, file, [tuple(chunk) for chunk in trailer["chunks"]], trailer["count"])
        if trailer["large"]:
            result.subscribers = SpooledSubscribers(spool, set(trailer["duplicates"]))  # type: ignore[assignment]
        else:
            result.subscribers = [Subscriber(*row) for chunk in spool.chunks() for row in chunk]
            file.close()
        os.utime(entry)  # recently used: pruned last
    except Exception:  # damaged or written by something else: read the list afresh
        file.close()
        return None
    return result


def _store(entry: Path, key: str, result: SubscriberList) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            chunks, count = _write_chunks(out, result.subscribers)
            # The rows as the list gives them (its repeats already passed over): no duplicates to skip.
            large = isinstance(result.subscribers, SpooledSubscribers)
            out.write(_trailer(key, result, chunks, count, large=large, duplicates=()))
        os.replace(temporary, entry)  # mkstemp's file is 0600: the rows are the user's alone
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _keep_spool(entry: Path, key: str, result: SubscriberList, spooled: SpooledSubscribers) -> None:
    """A large list's spool, written in the cache folder as it was checked, becomes its entry: the trailer
    is added after its chunks (read at their offsets, they are not disturbed) and it takes the entry's name."""
    spool = spooled.spool
    assert spool.path is not None
    with spool.path.open("ab") as out:  # NamedTemporaryFile's file is 0600, as mkstemp's
        out.write(_trailer(key, result, spool.chunk_offsets, spool.count, large=True,
                           duplicates=sorted(spooled.duplicates)))
    os.replace(spool.path, entry)
    spool.path = None  # kept: not discarded


def _trailer(key: str, result: SubscriberList, chunks: list[tuple[int, int]], count: int, *, large: bool,
             duplicates: Iterable[int]) -> bytes:
    trailer = marshal.dumps({
        "format": FORMAT, "key": key, "chunks": chunks, "count": count,
        "large": large,  # read back as it was read: from the file (a large list), or into memory
        "duplicates": list(duplicates),  # lines in the chunks found to repeat an earlier address
        "skipped": [(s.line, s.email, s.reason) for s in result.skipped],
        "warnings": [(w.file, w.message, w.line, w.column, w.field, w.hint) for w in result.warnings]})
    return trailer + len(trailer).to_bytes(_TAIL, "big")


def _write_chunks(out: BinaryIO, subscribers: Iterable[Subscriber]) -> tuple[list[tuple[int, int]], int]:
    chunks: list[tuple[int, int]] = []
    pending: list[Any] = []
    offset = count = 0
    for subscriber in subscribers:
        pending.append(subscriber.as_row())
        if len(pending) == CHUNK:
            offset = _write_chunk(out, pending, chunks, offset)
            count += CHUNK
            pending = []
    if pending:
        count += len(pending)
        _write_chunk(out, pending, chunks, offset)
    return chunks, count


def _write_chunk(out: BinaryIO, rows: list[Any], chunks: list[tuple[int, int]], offset: int) -> int:
    data = marshal.dumps(rows)
    out.write(data)
    chunks.append((offset, len(data)))
    return offset + len(data)


def _prune(cache_dir: Path) -> None:
    entries = sorted(cache_dir.glob("*.list"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    for old in [*entries[KEEP:], *cache_dir.glob(".*.tmp")]:  # and what a killed run left
        old.unlink(missing_ok=True)

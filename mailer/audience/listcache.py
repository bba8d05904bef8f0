"""A subscribers list as it was checked, kept in the state folder: the next send of the same bytes skips the check.

Checking a list is most of what a rerun does, and a live send after its dry run checked the same
file a minute before (5 seconds for a million rows). The entry is keyed by the SHA-256 of the bytes
the check read (hashed as they were read: what was checked is what is keyed), the options that change
what is read (encoding, --skip-invalid, --segment), the name errors give the file, mailer's own
source and the address libraries' versions: any change means the list is read and checked afresh,
so every error a read would report is still reported. A copy is used only when the file's bytes
hash to its key and its rows to the digest it was written with: a damaged copy is no copy.

One entry per list file, replaced when the changed file is checked, and the newest few files only.
Entries hold addresses and names, so they are private to the user (0600), as the ledger's rows are.
A copy that cannot be read or written is no copy, never an error; a large list is spooled where its
copy will be kept, so a state folder that fills up while it is checked stops the command, as the
ledger's writes would. A pipe or FIFO (`--subscribers <(…)`) is read once, as it comes, with no copy.

Entry: marshal'ed chunks of Subscriber.as_row() tuples, then a marshal'ed trailer (key, chunk
offsets, their digest, count, repeats to pass over, skipped rows, warnings), its SHA-256 (32 bytes) and
its length (8 bytes): every byte that decides who is sent to is verified before a copy is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import shutil
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from mailer.audience.subscribers import (
    Skipped,
    Spool,
    SpooledSubscribers,
    Subscriber,
    SubscriberList,
    read_subscribers,
)
from mailer.errors import Problem
from mailer.files import private_folder, source_digest, tighten

FORMAT = "mailer-checked-list 4"
KEEP = 4  # list files kept; the least recently used go
_TAIL = 8  # bytes of the trailer's length, at the end
_SEAL = 32  # bytes of the trailer's SHA-256, before its length
_STALE = 3600  # seconds after which a temporary file is taken for one a killed run left
_LIBRARIES = ("email-validator", "idna")  # they decide which non-ASCII addresses pass, and their form


def read_subscribers_cached(path: Path, cache_dir: Path, *, file_label: str, encoding: str | None = None,
                            skip_invalid: bool = False, segment: str | None = None) -> SubscriberList:
    """read_subscribers, or the same list from the state folder when these bytes were checked before.

    A list with no invalid row reads the same with `skip_invalid` as without: its copy is keyed as read
    without, and serves both (`mailer check` reads with it, a send usually without).
    """
    options = {"file_label": file_label, "encoding": encoding, "skip_invalid": skip_invalid, "segment": segment}
    if not path.is_file():  # a pipe or FIFO can be read once only; a missing file: read_subscribers says so
        return read_subscribers(path, **options)
    entry = cache_dir / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]}.list"
    variants = _variants(options)
    try:
        found = _load(entry, _keys(path, variants), file_label)
    except OSError:
        found = None
    if found is not None:
        _prune(cache_dir)
        return found
    checked = [_digest(variant) for variant in variants]
    room = _has_room(cache_dir, path)
    result = read_subscribers(path, **options, spool_dir=cache_dir if room else None, digest=_Digests(checked))
    # Of the bytes the check read; as read without skip_invalid when that reads the same.
    result.key = checked[0 if result.invalid == 0 else -1].hexdigest()
    spooled = result.subscribers if isinstance(result.subscribers, SpooledSubscribers) else None
    try:
        if spooled is not None and spooled.spool.path is not None:
            _keep_spool(entry, result.key, result, spooled)
        elif room:  # else the send needs the little room there is: no copy
            _store(entry, result.key, result)
        _prune(cache_dir)
    except Exception:  # a full disk, a read-only folder: no copy
        pass
    finally:
        if spooled is not None:
            spooled.spool.discard()  # unless kept: its name is gone, its rows readable while the list lives
    return result


def list_keys(path: Path, *, file_label: str, encoding: str | None = None, skip_invalid: bool = False,
              segment: str | None = None) -> tuple[str, ...]:
    """The keys read_subscribers_cached may give the list in `path` read with these options (SubscriberList.key),
    without reading its rows (with `skip_invalid`: two, as a list with no invalid row is keyed as read without
    it); none for a pipe or FIFO, or a file that cannot be read."""
    if not path.is_file():
        return ()
    try:
        return _keys(path, _variants({"file_label": file_label, "encoding": encoding, "skip_invalid": skip_invalid,
                                      "segment": segment}))
    except OSError:
        return ()


def _variants(options: dict[str, Any]) -> list[dict[str, Any]]:
    """The options a copy for `options` may have been read with: as given, and first without skip_invalid."""
    return [{**options, "skip_invalid": False}, options] if options["skip_invalid"] else [options]


def _keys(path: Path, variants: list[dict[str, Any]]) -> tuple[str, ...]:
    digests = [_digest(variant) for variant in variants]
    fed = _Digests(digests)
    with path.open("rb") as data:
        while block := data.read(1 << 20):
            fed.update(block)
    return tuple(digest.hexdigest() for digest in digests)


class _Digests:
    """Several hashlib objects fed the same bytes."""

    def __init__(self, digests: list[Any]):
        self._digests = digests

    def update(self, data: Any) -> None:
        for digest in self._digests:
            digest.update(data)


def _digest(options: dict[str, Any]) -> Any:
    digest = hashlib.sha256(f"{FORMAT}\0{sorted(options.items())!r}\0{_libraries()}\0".encode())
    digest.update(source_digest())
    return digest


@cache
def _libraries() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for library in _LIBRARIES:
        try:
            found.append(f"{library}=={version(library)}")
        except PackageNotFoundError:
            found.append(f"{library} absent")
    return ",".join(found)


def _has_room(cache_dir: Path, path: Path) -> bool:
    """Whether the cache folder can take the list's copy with room to spare for the send's own writes. A
    copy takes up to three times the file's size (a list of short addresses only); with less room than
    four times that and 64 MB, a large list is spooled in TMPDIR and no copy is kept."""
    try:
        private_folder(cache_dir, within=cache_dir.parent)  # the copies hold addresses: see private_folder
        return shutil.disk_usage(cache_dir).free > 4 * path.stat().st_size + (64 << 20)
    except OSError:
        return False


def _load(entry: Path, keys: tuple[str, ...], label: str) -> SubscriberList | None:
    try:
        file = entry.open("rb")  # noqa: SIM115 - a large list reads its rows from it for as long as it lives
    except OSError:
        return None
    try:
        descriptor = file.fileno()
        size = os.fstat(descriptor).st_size
        length = int.from_bytes(os.pread(descriptor, _TAIL, size - _TAIL), "big")
        start = size - _TAIL - _SEAL - length
        data = os.pread(descriptor, length, start)
        if hashlib.sha256(data).digest() != os.pread(descriptor, _SEAL, start + length):
            file.close()
            return None
        trailer = marshal.loads(data)
        if trailer["format"] != FORMAT or trailer["key"] not in keys:
            file.close()
            return None
        chunks = [tuple(chunk) for chunk in trailer["chunks"]]
        end = chunks[-1][0] + chunks[-1][1] if chunks else 0
        if end != start or _rows_digest(descriptor, end) != trailer["rows_digest"]:
            file.close()
            return None
        result = SubscriberList(label, skipped=[Skipped(*row) for row in trailer["skipped"]],
                                warnings=[Problem(*row) for row in trailer["warnings"]], invalid=trailer["invalid"],
                                key=trailer["key"])
        spool = Spool(label, file, chunks, trailer["count"])
        if trailer["large"]:
            result.subscribers = SpooledSubscribers(spool, set(trailer["duplicates"]))  # type: ignore[assignment]
        else:
            result.subscribers = [Subscriber(*row) for chunk in spool.chunks() for row in chunk]
            file.close()
        os.utime(entry)  # recently used: pruned last
        for old in (entry.parent, entry):  # as an older release may have left them (see private_folder)
            tighten(old)
    except Exception:  # damaged, or written by something else: read the list afresh
        file.close()
        return None
    except BaseException:
        file.close()
        raise
    return result


def _rows_digest(descriptor: int, end: int) -> str:
    digest = hashlib.sha256()
    for offset in range(0, end, 1 << 20):
        digest.update(os.pread(descriptor, min(1 << 20, end - offset), offset))
    return digest.hexdigest()


def _store(entry: Path, key: str, result: SubscriberList) -> None:
    """A list held in memory (or a large one spooled in TMPDIR) written to a spool in the cache folder,
    which becomes its entry as a large list's own spool does (_keep_spool)."""
    spool = Spool(result.file_label, folder=entry.parent)
    try:
        if spool.path is None:  # the folder refused the file (the spool went to TMPDIR): no copy
            return
        if isinstance(result.subscribers, SpooledSubscribers):
            for rows in result.subscribers.rows():
                for row in rows:
                    spool.add(row)
        else:
            for subscriber in result.subscribers:
                spool.add(subscriber.as_row())
        spool.finish()
        # The rows as the list gives them (a large list's repeats already passed over): none to skip.
        _keep_spool(entry, key, result, SpooledSubscribers(spool, set()),
                    large=isinstance(result.subscribers, SpooledSubscribers))
    finally:
        spool.discard()  # unless kept
        spool.close()


def _keep_spool(entry: Path, key: str, result: SubscriberList, spooled: SpooledSubscribers, *,
                large: bool = True) -> None:
    """A spool written in the cache folder becomes the entry: the trailer goes after its chunks (read at
    their offsets, they are not disturbed) and the file takes the entry's name, if its name is still its
    own (a prune or a user may have removed it meanwhile: then no copy). NamedTemporaryFile's file is 0600."""
    spool = spooled.spool
    assert spool.path is not None
    spool.seal(_trailer(key, result, spool.chunk_offsets, spool.count, spool.rows_digest.hexdigest(), large=large,
                        duplicates=sorted(spooled.duplicates)))
    if spool.same_file_as_path():
        os.replace(spool.path, entry)
        spool.path = None  # kept: not discarded


def _trailer(key: str, result: SubscriberList, chunks: list[tuple[int, int]], count: int, rows_digest: str, *,
             large: bool, duplicates: Iterable[int]) -> bytes:
    trailer = marshal.dumps({
        "format": FORMAT, "key": key, "chunks": chunks, "count": count, "rows_digest": rows_digest,
        "large": large,  # read back as it was read: from the file (a large list), or into memory
        "duplicates": list(duplicates),  # lines in the chunks found to repeat an earlier address
        "skipped": [(s.line, s.email, s.reason) for s in result.skipped], "invalid": result.invalid,
        "warnings": [(w.file, w.message, w.line, w.column, w.field, w.hint) for w in result.warnings]})
    return trailer + hashlib.sha256(trailer).digest() + len(trailer).to_bytes(_TAIL, "big")


def _prune(cache_dir: Path) -> None:
    """Keep the KEEP most recently used copies; remove what a killed run left (not what another run is
    writing: a temporary file an hour old). Never an error (another run may be pruning too)."""
    entries = []
    for entry in cache_dir.glob("*.list"):
        with contextlib.suppress(OSError):
            entries.append((entry.stat().st_mtime_ns, entry))
    for _, old in sorted(entries, reverse=True)[KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink(missing_ok=True)
    for temporary in cache_dir.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - temporary.stat().st_mtime > _STALE:
                temporary.unlink()

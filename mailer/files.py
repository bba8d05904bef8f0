"""Files: written so that each is either the old one or the new one, never half of one; the state folder's
readable by their owner alone; listed in a stable order; mailer's own source as a digest, for the caches in
the state folder."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import IO, Any

# The state folder holds the subscriber list (its copies, the ledger, the outbox) and the suppression list:
# every folder in it is its owner's alone and every file too, whatever the umask says.
PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, sync: bool = False) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    A reader (a web server, an editor, the next run) sees the old file or the new one; a failure or a
    Ctrl-C leaves no temporary file behind. `mode`: mkstemp's files are private, most of ours are not.
    `sync`: flushed to the disk before the rename (a file the user wrote, such as an issue).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def private_folder(folder: Path, *, within: Path | None = None) -> Path:
    """Make `folder` (and every folder missing above it) 0700 whatever the umask; return it.

    Folders that exist from `within` (the state folder; default: `folder` itself) down to `folder`, made
    by an older release with the umask's 0755, lose their group's and others' permissions (see tighten).
    """
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.is_dir():
            break
        missing.append(parent)
    for parent in reversed(missing):
        try:
            parent.mkdir(mode=PRIVATE_FOLDER)
        except FileExistsError:  # made meanwhile by another process (or a file there: the caller's error)
            continue
        os.chmod(parent, PRIVATE_FOLDER)  # mkdir's mode is masked by the umask
    current = within if within is not None and folder.is_relative_to(within) else folder
    tighten(current)
    for part in folder.relative_to(current).parts:
        current = current / part
        tighten(current)
    return folder


def tighten(path: Path) -> None:
    """Take the group's and others' permissions off `path`, a file or folder of the state folder that an
    older release made with the umask's 0644 or 0755. The owner's are kept (a folder the user made
    read-only stays so); missing, or someone else's: left as it is, never an error."""
    try:
        status = os.stat(path)
        if status.st_mode & 0o077:
            os.chmod(path, status.st_mode & 0o700)
    except OSError:
        pass


def open_private(path: Path, mode: str = "wb", **kwargs: Any) -> IO[Any]:
    """open(path, mode) to write a file of the state folder: 0600 whatever the umask, an old one tightened."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    descriptor = os.open(path, flags, PRIVATE_FILE)
    try:
        if os.fstat(descriptor).st_mode & 0o777 != PRIVATE_FILE:  # the umask took bits off, or an old file
            os.fchmod(descriptor, PRIVATE_FILE)
        return os.fdopen(descriptor, mode, **kwargs)
    except BaseException:
        os.close(descriptor)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a state file made 0600 (see open_private): an outbox's samples and requests."""
    with open_private(path) as out:
        out.write(data)


class NotARegularFile(OSError):
    """A FIFO, a device, a folder where a file was expected: not read (a FIFO would wait for a writer forever)."""


def read_regular(path: Path, limit: int, *, follow: bool = True) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` + 1 of them (the caller judges a longer one).

    Opened without blocking and checked before a byte is read, so that a FIFO planted where a file was
    expected (it would wait for a writer forever) or a link to /dev/zero (it never ends) is an OSError
    (NotARegularFile), never a hang. `follow=False` refuses a symbolic link too (files mailer wrote itself).
    """
    import stat

    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    descriptor = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        os.set_blocking(descriptor, True)
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            return handle.read(limit + 1)
    finally:
        os.close(descriptor)


def issue_slug(path: Path) -> str:
    """An issue's name in the ledger, the outbox and the site: its file's name without `.yaml`."""
    return path.stem


def files_under(folder: Path, *, follow: bool = False) -> list[tuple[str, str, Path]]:
    """(folder relative to `folder`, name, path) of every file under `folder`, in a stable order; links to
    folders followed only if `follow`."""
    found = []
    for root, folders, names in os.walk(folder, followlinks=follow):
        folders.sort()
        relative = os.path.relpath(root, folder)
        found += [(relative, name, Path(root) / name) for name in sorted(names)]
    return found


@cache
def source_digest() -> bytes:
    """mailer's own source and the Python that runs it: a cache another release wrote is not read."""
    digest = hashlib.sha256(sys.version.encode())
    for _, name, path in files_under(Path(__file__).resolve().parent):
        if name.endswith((".py", ".j2", ".html", ".css", ".js")):
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.digest()

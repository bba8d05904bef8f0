"""Files: written so that each is either the old one or the new one, never half of one; listed in a
stable order; mailer's own source as a digest, for the caches in the state folder."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from functools import cache
from pathlib import Path


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

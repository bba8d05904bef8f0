"""Writing a file so that it is either the old one or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
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

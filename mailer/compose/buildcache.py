"""A built issue kept in the state folder, so that a send, its rerun, status and cancel do not build it again.

Building costs about 0.4 s in a fresh process (premailer alone is 0.3 s to import), which is most of
what a rerun of a finished send has to do. The cache key covers everything a build reads: the issue
file, every file beside it (its pictures: size and time), the layouts (their bytes), the settings,
mailer's own code, and the versions of the libraries that render. Anything else means a fresh build;
an unreadable or unwritable cache is no cache, never an error.

The build is kept as JSON and read back field by field into the types RenderedIssue declares: a file
in the state folder is never code. (It was a pickle, which runs whatever the file says when it is
loaded, and `mailer serve`, facing the internet, shares the state folder with the sends.) A file that
is not what this module writes, whatever it holds, is a miss: the issue is built again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import types
import typing
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from mailer.compose.build import RenderedIssue, build_issue
from mailer.compose.issue import Extra
from mailer.config import Config
from mailer.files import (
    PRIVATE_FILE,
    files_under,
    private_folder,
    read_regular,
    source_digest,
    tighten,
    write_atomic,
)

FORMAT = "mailer-build-cache 2"
MAX_CACHE_BYTES = 16 * 1024 * 1024  # a build of the largest issue (1 MB of YAML) is well under this
LIBRARIES = ("mjml-python", "premailer", "cssutils", "jinja2", "markupsafe", "markdown-it-py", "wcwidth", "pyyaml",
             "email-validator", "ftfy", "lxml", "cssselect")
KEEP = 16  # builds kept; the oldest go


def build_issue_cached(issue_path: Path, config: Config, cache_dir: Path) -> RenderedIssue:
    """build_issue, or the same RenderedIssue from the cache when nothing it reads has changed."""
    try:
        key = cache_key(issue_path, config)
    except OSError:
        return build_issue(issue_path, config)  # the build reports what is missing
    path = cache_dir / f"{key}.json"
    try:
        # A regular file of mailer's own, within reason: anything planted there (a FIFO, a link to /dev/zero)
        # is a miss, never a hang or gigabytes read.
        data = read_regular(path, MAX_CACHE_BYTES, follow=False)
        if len(data) > MAX_CACHE_BYTES:
            raise ValueError("larger than any build")
        rendered = _read(data, key)
        for old in (cache_dir, path):  # as an older release may have left them (see private_folder)
            tighten(old)
        return rendered
    except (OSError, ValueError, TypeError, KeyError, RecursionError):  # missing, damaged or not ours: a miss
        pass
    rendered = build_issue(issue_path, config)
    try:
        if cache_key(issue_path, config) == key:  # else something changed while it was built: not kept
            data = json.dumps({"format": FORMAT, "key": key, "rendered": _to_json(rendered)},
                              ensure_ascii=False).encode("utf-8")
            if _read(data, key) == rendered:  # read back as it is, or not kept
                private_folder(cache_dir, within=cache_dir.parent)
                write_atomic(path, data, mode=PRIVATE_FILE)
                _prune(cache_dir)
    except Exception:  # a full disk, or a value JSON does not keep: no cache (and no half file)
        pass
    return rendered


def _read(data: bytes, key: str) -> RenderedIssue:
    kept = json.loads(data.decode("utf-8"))
    if not isinstance(kept, dict) or kept.get("format") != FORMAT or kept.get("key") != key:
        raise ValueError("not a build this release kept under this key")
    return _from_json(RenderedIssue, kept["rendered"])


def _to_json(value: Any) -> Any:
    """A RenderedIssue (its Issue, sections, cards…) as JSON values: each dataclass an object of its fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _to_json(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Extra):
        return {"extra": {key: _to_json(item) for key, item in value.items()}}
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if type(value) is date:
        return value.isoformat()
    if value is None or type(value) in (str, int):
        return value
    raise TypeError(f"{type(value).__name__} is not kept in the build cache")


def _from_json(kind: Any, value: Any) -> Any:
    """`value` read as the type `kind` (a field's annotation), as _to_json wrote it; TypeError when it is
    not. Nothing but RenderedIssue's own field types is ever made."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        (other,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _from_json(other, value)
    if typing.get_origin(kind) is tuple:
        item, more = typing.get_args(kind)
        if more is not Ellipsis or not isinstance(value, list):
            raise TypeError(f"not a list for {kind}")
        return tuple(_from_json(item, element) for element in value)
    if dataclasses.is_dataclass(kind):
        names = [field.name for field in dataclasses.fields(kind) if field.init]
        if not isinstance(value, dict) or sorted(value) != sorted(names):
            raise TypeError(f"not the fields of {kind.__name__}")
        hints = _hints(kind)
        return kind(**{name: _from_json(hints[name], value[name]) for name in names})
    if kind is Extra:
        extra = _extra_from_json(value)
        if not isinstance(extra, Extra):
            raise TypeError("not a mapping for extra")
        return extra
    if kind in (Path, date) and type(value) is str:
        return Path(value) if kind is Path else date.fromisoformat(value)
    if kind in (str, int) and type(value) is kind:
        return value
    raise TypeError(f"{type(value).__name__} where {kind} belongs")


def _extra_from_json(value: Any, depth: int = 0) -> Any:
    """An issue's `extra:` as _to_json wrote it: text, lists and {"extra": mapping} only, as deep as the schema lets."""
    if depth > 8:
        raise TypeError("extra nested deeper than an issue may hold it")
    if type(value) is str:
        return value
    if type(value) is list:
        return tuple(_extra_from_json(item, depth + 1) for item in value)
    if type(value) is dict and list(value) == ["extra"] and type(value["extra"]) is dict:
        return Extra({str(key): _extra_from_json(item, depth + 1) for key, item in value["extra"].items()})
    raise TypeError(f"{type(value).__name__} is not a value of extra")


@cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def cache_key(issue_path: Path, config: Config) -> str:
    digest = hashlib.sha256(FORMAT.encode())
    digest.update(_code_and_libraries())
    digest.update(pickle.dumps(config, protocol=4))  # only ever written, to be hashed: never loaded
    digest.update(str(issue_path.resolve()).encode())
    digest.update(read_regular(issue_path, MAX_CACHE_BYTES))  # a FIFO is an OSError: the build says what it is
    for root, name, path in files_under(issue_path.parent):
        status = path.lstat()
        digest.update(f"{root}/{name}\0{status.st_size}\0{status.st_mtime_ns}\0".encode())
    for root, name, path in files_under(config.layouts_dir, follow=True):  # Jinja follows links: so does the key
        digest.update(f"{root}/{name}\0".encode())
        digest.update(read_regular(path, MAX_CACHE_BYTES))
    return digest.hexdigest()[:40]


@cache
def _code_and_libraries() -> bytes:
    """mailer's own source and the rendering libraries' versions: another release builds afresh."""
    from importlib.metadata import PackageNotFoundError, version

    digest = hashlib.sha256(source_digest())
    for library in LIBRARIES:
        try:
            digest.update(f"{library}=={version(library)}".encode())
        except PackageNotFoundError:
            digest.update(f"{library} absent".encode())
    return digest.digest()


def _prune(cache_dir: Path) -> None:
    builds = sorted(cache_dir.glob("*.json"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    # And what a killed run left, and an older release's pickles (never read).
    for old in [*builds[KEEP:], *cache_dir.glob(".*.tmp"), *cache_dir.glob("*.pickle")]:
        old.unlink(missing_ok=True)

"""A built issue kept in the state folder, so that a send, its rerun, status and cancel do not build it again.

Building costs about 0.4 s in a fresh process (premailer alone is 0.3 s to import), which is most of
what a rerun of a finished send has to do. The cache key covers everything a build reads: the issue
file, every file beside it (its pictures: size and time), the layouts (their bytes), the settings,
mailer's own code, and the versions of the libraries that render. Anything else means a fresh build;
an unreadable or unwritable cache is no cache, never an error.
"""

from __future__ import annotations

import hashlib
import pickle
from functools import cache
from pathlib import Path

from mailer.compose.build import RenderedIssue, build_issue
from mailer.config import Config
from mailer.files import PRIVATE_FILE, files_under, private_folder, source_digest, tighten, write_atomic

FORMAT = b"mailer-build-cache 1"
LIBRARIES = ("mjml-python", "premailer", "cssutils", "jinja2", "markupsafe", "markdown-it-py", "wcwidth", "pyyaml",
             "email-validator", "ftfy", "lxml", "cssselect")
KEEP = 16  # builds kept; the oldest go


def build_issue_cached(issue_path: Path, config: Config, cache_dir: Path) -> RenderedIssue:
    """build_issue, or the same RenderedIssue from the cache when nothing it reads has changed."""
    try:
        key = cache_key(issue_path, config)
    except OSError:
        return build_issue(issue_path, config)  # the build reports what is missing
    path = cache_dir / f"{key}.pickle"
    try:
        with path.open("rb") as cached:
            rendered = pickle.load(cached)  # noqa: S301 (our own file in the user's own state folder)
        if isinstance(rendered, RenderedIssue):
            for old in (cache_dir, path):  # as an older release may have left them (see private_folder)
                tighten(old)
            return rendered
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        pass
    rendered = build_issue(issue_path, config)
    try:
        if cache_key(issue_path, config) == key:  # else something changed while it was built: not kept
            private_folder(cache_dir, within=cache_dir.parent)
            write_atomic(path, pickle.dumps(rendered, protocol=pickle.HIGHEST_PROTOCOL), mode=PRIVATE_FILE)
            _prune(cache_dir)
    except Exception:  # a full disk, or something that does not pickle: no cache (and no half file)
        pass
    return rendered


def cache_key(issue_path: Path, config: Config) -> str:
    digest = hashlib.sha256(FORMAT)
    digest.update(_code_and_libraries())
    digest.update(pickle.dumps(config, protocol=4))
    digest.update(str(issue_path.resolve()).encode())
    digest.update(issue_path.read_bytes())
    for root, name, path in files_under(issue_path.parent):
        status = path.lstat()
        digest.update(f"{root}/{name}\0{status.st_size}\0{status.st_mtime_ns}\0".encode())
    for root, name, path in files_under(config.layouts_dir, follow=True):  # Jinja follows links: so does the key
        digest.update(f"{root}/{name}\0".encode())
        digest.update(path.read_bytes())
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
    builds = sorted(cache_dir.glob("*.pickle"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    for old in [*builds[KEEP:], *cache_dir.glob(".*.tmp")]:  # and what a killed run left
        old.unlink(missing_ok=True)

"""The local preview server: every issue as phone and desktop readers will see it, updated on every save.

What it serves, and nothing else (no file system paths are ever mapped to URLs):

    /                           every issue in issues/, newest first, with its status
    /preview/SLUG               one issue: desktop, phone and dark-mode frames, headers, checks, text part
    /issues/SLUG/               the issue's web version (web_base_url + SLUG/ in the email points here)
    /issues/SLUG/email.html     the email with a sample reader's fields filled (?view=phone, ?view=dark)
    /issues/SLUG/img/...        the local images the issue uses (nothing else from its folder)
    /assets/NAME                the preview page's own CSS, JavaScript and icon
    /api/version[?issue=SLUG]   a fingerprint of the files a page depends on; pages poll it to reload

Builds happen on request and are cached per issue until a file they depend on changes. A build
error is a page to show, never a crash. The core never prints: the CLI reports the address.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from datetime import date
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote

from mailer.audience.subscribers import display_name, read_subscribers
from mailer.compose import placeholders
from mailer.compose.build import RenderedIssue, build_issue
from mailer.config import CONFIG_NAME, Config, load_config
from mailer.deliver.message import GMAIL_CLIP_BYTES, EmailSize, email_size
from mailer.errors import InputError, MailerError, Problem
from mailer.schema import display_path
from mailer.web.listening import LOOPBACK_HOSTS, listen_error
from mailer.web.pages import ASSETS_DIR, pages

if TYPE_CHECKING:  # the checks are imported when a page needs them: the server starts without them
    from mailer.checks.check import CheckReport
    from mailer.checks.drafts import Standing

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
POLL_MS = 400  # how often an open page asks whether a file changed: saves show within about half a second
ASSETS = {"preview.css": "text/css", "preview.js": "text/javascript", "favicon.svg": "image/svg+xml"}
# The sample reader's unsubscribe link: shaped like a real one, but its token is obviously not.
PREVIEW_TOKEN = "preview"
MANAGED_LINK = "#unsubscribe-link-filled-in-by-sendgrid"


# --- the sample reader --------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleReader:
    """Whose copy the preview shows: the per-recipient placeholders are filled with these."""

    email: str
    first_name: str = ""
    last_name: str = ""
    source: str = "example reader"  # where it came from, shown in the page

    @property
    def display(self) -> str:
        name = display_name(self.first_name, self.last_name)
        return f"{name} <{self.email}>" if name else self.email


EXAMPLE_READER = SampleReader(email="ada@example.com", first_name="Ada")


def sample_reader(subscribers_path: Path, email: str | None = None) -> SampleReader:
    """The subscriber with `email` from the subscribers CSV, or its first subscribed one.

    The file is read as `mailer send` reads it (same encoding rules, same de-duplication); rows
    that could not be mailed are left out rather than stopping the preview.
    """
    label = display_path(subscribers_path)
    found = read_subscribers(subscribers_path, file_label=label, skip_invalid=True)
    if email is None:
        chosen = found.subscribers[0] if found.subscribers else None
        if chosen is None:
            raise InputError([Problem(label, "no subscribed reader in the file to preview the issue as",
                                      hint="add one, or leave out --subscribers to use an example reader")])
    else:
        chosen = found.find(email)
        if chosen is None:
            some = ", ".join(subscriber.email for subscriber in found.subscribers[:3])
            raise InputError([Problem(label, f"no subscribed reader with the address {email!r}",
                                      hint=f"pick an address from the file, e.g. {some}" if some else None)])
    return SampleReader(email=chosen.email, first_name=chosen.first_name, last_name=chosen.last_name,
                        source=f"{label}:{chosen.line}")


# --- building, cached until a file changes ------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One issue at one version of its files: the build, or what stopped it."""

    slug: str
    path: Path
    version: str
    config: Config | None = None
    rendered: RenderedIssue | None = None
    problems: tuple[Problem, ...] = ()
    # The newest build that worked, shown dimmed while the current files have problems.
    last_good: RenderedIssue | None = None
    last_good_config: Config | None = None

    @property
    def ok(self) -> bool:
        return self.rendered is not None

    @property
    def shown(self) -> tuple[RenderedIssue, Config] | None:
        """What the frames show: this build, or the last one that worked."""
        if self.rendered is not None and self.config is not None:
            return self.rendered, self.config
        if self.last_good is not None and self.last_good_config is not None:
            return self.last_good, self.last_good_config
        return None


@dataclass(frozen=True)
class Check:
    level: str  # "ok", "warn" or "error"
    title: str
    detail: str = ""


@dataclass
class Preview:
    """The preview's state: which issues exist, their cached builds, and whose copy is shown."""

    workspace: Path
    reader: SampleReader = EXAMPLE_READER
    extra_issues: tuple[Path, ...] = ()  # issue files outside issues/, named on the command line
    state_dir: Path | None = None  # MAILER_STATE_DIR (what was sent: drafts are told apart); None: .mailer/
    _cache: dict[str, Snapshot] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _checks: dict[tuple[str, str], list[Check]] = field(default_factory=dict, init=False, repr=False)
    _reports: dict[tuple[str, str], CheckReport] = field(default_factory=dict, init=False, repr=False)
    _sizes: dict[tuple[str, str], EmailSize] = field(default_factory=dict, init=False, repr=False)

    @property
    def issues_dir(self) -> Path:
        return self.workspace / "issues"

    def issue_paths(self) -> dict[str, Path]:
        """Slug → file for every issue; read again on each request, so new files appear by themselves."""
        paths = sorted(self.issues_dir.glob("*.yaml")) + [p for p in self.extra_issues if p.is_file()]
        return {path.stem: path for path in paths}

    def version(self, slug: str | None = None) -> str:
        """A fingerprint of every file the page for `slug` (or the index) depends on."""
        paths = self.issue_paths()
        watched = [self.workspace / CONFIG_NAME]
        watched += [p for p in (self.workspace / "layouts").rglob("*") if p.is_file()]
        watched += [p for p in self.issues_dir.rglob("*") if p.is_file() and (p.suffix != ".yaml" or slug is None)]
        if slug is not None and slug in paths:
            watched.append(paths[slug])
        elif slug is None:
            watched += list(self.extra_issues)
        digest = hashlib.blake2b(digest_size=10)
        for path in sorted(set(watched)):
            try:
                stat = path.stat()
                # The inode too: editors that save by writing a new file and renaming it over the old one.
                digest.update(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}\0{stat.st_ino}\n".encode())
            except OSError:
                digest.update(f"{path}\0gone\n".encode())
        return digest.hexdigest()

    def snapshot(self, slug: str) -> Snapshot | None:
        """The issue's current build (None: no such issue); built again only when its files changed."""
        path = self.issue_paths().get(slug)
        if path is None:
            return None
        version = self.version(slug)
        cached = self._cache.get(slug)
        if cached is not None and cached.version == version and cached.path == path:
            return cached
        with self._lock:  # one build at a time: cssutils' logger and Jinja's cache are shared
            cached = self._cache.get(slug)
            if cached is not None and cached.version == version and cached.path == path:
                return cached
            snapshot = self._build(slug, path, version, previous=cached)
            self._cache[slug] = snapshot
            return snapshot

    def _build(self, slug: str, path: Path, version: str, *, previous: Snapshot | None) -> Snapshot:
        last_good = previous.shown if previous else None
        config = None
        try:
            config = load_config(self.workspace, state_dir=self.state_dir)
            rendered = build_issue(path, config, web=True)
        except Exception as err:  # noqa: BLE001 - any failure is shown in the page, never a crashed server
            return Snapshot(slug, path, version, config=config, problems=tuple(_problems(err, path)),
                            last_good=last_good[0] if last_good else None,
                            last_good_config=last_good[1] if last_good else None)
        return Snapshot(slug, path, version, config=config, rendered=rendered, last_good=rendered,
                        last_good_config=config)

    # --- what the pages show --------------------------------------------------------------------

    def reader_values(self, slug: str, config: Config, lang: str = "en") -> dict[str, str]:
        separator = "&" if "?" in config.unsubscribe_url else "?"
        return {
            "first_name": self.reader.first_name or config.fallback_for(lang),
            "email": self.reader.email,
            # Managed by SendGrid: no URL of ours exists; the link says who fills it in instead of inventing one.
            "unsubscribe_url": (MANAGED_LINK if config.managed_unsubscribe
                                else f"{config.unsubscribe_url}{separator}token={PREVIEW_TOKEN}"),
            "web_url": config.web_url(slug),
        }

    def email_document(self, snapshot: Snapshot, *, view: str = "desktop") -> str | None:
        """The email as the sample reader gets it, its web addresses pointing at this server.

        `view` is "desktop", "phone" or "dark" (a phone in dark mode). Phones scroll without a
        scroll bar taking up width, so the phone views hide it: the email gets all 375 px.
        """
        shown = snapshot.shown
        if shown is None:
            return None
        rendered, config = shown
        values = self.reader_values(snapshot.slug, config, rendered.issue.lang)
        document = placeholders.fill(rendered.html, values, escape_html=True)
        document = self._localize(document, config)
        if view == "dark":
            document = force_dark_mode(document)
        extra = '<base target="_blank">'
        if view in ("phone", "dark"):
            extra += "<style>html { scrollbar-width: none; }</style>"
        return _add_to_head(document, extra)

    def web_document(self, snapshot: Snapshot) -> str | None:
        shown = snapshot.shown
        if shown is None or shown[0].web_html is None:
            return None
        return _add_to_head(self._localize(shown[0].web_html, shown[1]), '<base target="_blank">')

    def image_file(self, snapshot: Snapshot, relative: str) -> Path | None:
        """An image the issue uses, by its path below the issue's web folder (e.g. 'img/hero.png')."""
        shown = snapshot.shown
        if shown is None:
            return None
        for image in shown[0].local_images():
            if image.relative_path == relative and image.local_path and image.local_path.is_file():
                return image.local_path
        return None

    def _localize(self, document: str, config: Config) -> str:
        """Point the published web folder (images, "view in browser") at this server: nothing leaves the machine."""
        base = config.web_base_url
        for slug in sorted(self.issue_paths(), key=len, reverse=True):
            document = document.replace(f"{base}{slug}/", f"/issues/{quote(slug)}/")
        # The archive link (the bare base URL) goes to the preview's list of issues.
        return re.sub(re.escape(base) + r"(?=[\"'\s<])", "/", document)

    def size(self, snapshot: Snapshot) -> EmailSize | None:
        """The issue's size as sent (deliver.message.email_size: what build, check and send show), or None."""
        shown = snapshot.shown
        if shown is None:
            return None
        key = (snapshot.slug, snapshot.version)
        if key not in self._sizes:
            self._sizes[key] = email_size(*shown)
        return self._sizes[key]

    def checks(self, snapshot: Snapshot) -> list[Check]:
        """`mailer check`'s findings for the issue as it is now (errors and warnings first, then what passed)."""
        if snapshot.rendered is None or snapshot.config is None:
            return []
        cached = self._checks.get((snapshot.slug, snapshot.version))
        if cached is not None:
            return cached
        from mailer.checks.check import CHECKS, check_workspace

        config = snapshot.config
        reports = [self.report(snapshot), check_workspace(config)]
        found: list[Check] = []
        for report in reports:
            for finding in report.sorted_findings():
                if finding.severity == "info":
                    continue
                detail = " — ".join(part for part in (finding.where, finding.hint) if part)
                found.append(Check("error" if finding.severity == "error" else "warn", finding.message, detail))
        failed = {finding.check for report in reports for finding in report.findings}
        passed = [name for name in reports[0].checks if name not in failed]
        for name in passed:
            title = CHECKS[name]
            size = self.size(snapshot)
            if name == "size" and size is not None:
                title = f"the HTML part as sent: {size.describe()}"
            found.append(Check("ok", title))
        self._checks[(snapshot.slug, snapshot.version)] = found
        return found

    def report(self, snapshot: Snapshot) -> CheckReport:
        """`mailer check`'s report of the issue as it is now (built), kept until its files change."""
        from mailer.checks.check import check_issue

        assert snapshot.rendered is not None and snapshot.config is not None
        key = (snapshot.slug, snapshot.version)
        if key not in self._reports:
            self._reports = {k: v for k, v in self._reports.items() if k[0] != snapshot.slug}  # older versions go
            self._reports[key] = check_issue(snapshot.path, snapshot.config, rendered=snapshot.rendered)
        return self._reports[key]

    def standing(self, snapshot: Snapshot, *, sent: set[str], today: date) -> Standing | None:
        """Finished or draft, and why (mailer.checks.drafts), for an issue that builds."""
        from mailer.checks.drafts import issue_standing

        if snapshot.rendered is None or snapshot.config is None:
            return None
        return issue_standing(snapshot.path, snapshot.config, today=today, sent=sent, report=self.report(snapshot))


def force_dark_mode(document: str) -> str:
    """Make the email's `prefers-color-scheme: dark` rules apply regardless of the system setting.

    A browser applies those rules to the whole page or to none of it, so one frame cannot be
    emulated on its own; instead the condition becomes one that is always true (and `light`
    rules one that is never true).
    """
    document = re.sub(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", "(min-width: 0px)", document)
    document = re.sub(r"\(\s*prefers-color-scheme\s*:\s*light\s*\)", "(max-width: -1px)", document)
    return re.sub(r'(<meta name="color-scheme" content=")[^"]*', r"\1dark", document)


def _add_to_head(document: str, markup: str) -> str:
    """Insert preview-only markup at the start of <head>; `<base target="_blank">` makes links
    clicked in a frame open in a new tab instead of replacing the frame's content."""
    return re.sub(r"<head\b[^>]*>", lambda m: m.group(0) + markup, document, count=1)


def _problems(err: Exception, path: Path) -> list[Problem]:
    """Any failure as the list of problems the page shows: file, line, message, hint."""
    if isinstance(err, InputError):
        return err.problems
    if isinstance(err, MailerError):
        first, *rest = str(err).split("\n")
        hint = next((line.strip().removeprefix("hint:").strip() for line in rest if line.strip().startswith("hint:")),
                    None)
        located = re.match(r"(?P<file>[^\s:][^:]*?):(?P<line>\d+)(?::(?P<column>\d+))?: (?P<message>.*)", first)
        if located:
            column = located.group("column")
            return [Problem(located.group("file"), located.group("message"), int(located.group("line")),
                            int(column) if column else None, hint=hint)]
        return [Problem("", first, hint=hint)]
    return [Problem(display_path(path), f"unexpected error: {type(err).__name__}: {err}",
                    hint="this is a bug in mailer: please report it together with the issue file")]


# --- pages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


# Pages may load only this server's own scripts and styles; emails may load images (an issue can
# use https images) but run nothing.
PAGE_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
EMAIL_CSP = ("default-src 'none'; img-src 'self' data: https:; style-src 'unsafe-inline'; "
             "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")


class PreviewApp:
    """Maps a request path to a response. Every route is spelled out: no path reaches the file system."""

    def __init__(self, preview: Preview):
        self.preview = preview

    def handle(self, target: str) -> Response:
        parsed = _parse_target(target)
        if parsed is None:
            return self.not_found()
        segments, query = parsed
        match segments:
            case [""]:
                return self.index()
            case ["preview", slug] | ["preview", slug, ""]:
                return self.issue_page(slug)
            case ["issues"] | ["issues", ""]:
                return Response(HTTPStatus.FOUND, headers=(("Location", "/"),))
            case ["issues", slug] if slug in self.preview.issue_paths():
                return Response(HTTPStatus.MOVED_PERMANENTLY, headers=(("Location", f"/issues/{quote(slug)}/"),))
            case ["issues", slug, ""]:
                return self.web_version(slug)
            case ["issues", slug, "email.html"]:
                view = query.get("view", ["desktop"])[0]
                return self.email(slug, view=view if view in ("desktop", "phone", "dark") else "desktop")
            case ["issues", slug, *rest] if rest and all(rest):
                return self.image(slug, "/".join(rest))
            case ["assets", name] if name in ASSETS:
                return Response(HTTPStatus.OK, (ASSETS_DIR / name).read_bytes(), ASSETS[name])
            case ["api", "version"]:
                slug = query.get("issue", [None])[0]
                if slug is not None and slug not in self.preview.issue_paths():
                    return self.not_found()
                body = json.dumps({"version": self.preview.version(slug)}).encode()
                return Response(HTTPStatus.OK, body, "application/json")
        return self.not_found()

    def index(self) -> Response:
        from mailer.checks.drafts import sent_issues

        rows = []
        sent: set[str] | None = None
        today = date.today()
        for slug in self.preview.issue_paths():
            snapshot = self.preview.snapshot(slug)
            if snapshot is None:  # deleted between listing and building
                continue
            shown = snapshot.shown
            issue = shown[0].issue if shown else None
            if sent is None and snapshot.config is not None:
                try:
                    sent = sent_issues(snapshot.config)
                except MailerError:  # a ledger that cannot be read: nothing counts as sent, the page still shows
                    sent = set()
            standing = self.preview.standing(snapshot, sent=sent or set(), today=today)
            rows.append({"slug": slug, "snapshot": snapshot, "issue": issue, "standing": standing,
                         "size": self.preview.size(snapshot),
                         "subject": self._subject(snapshot) if shown else None})
        # Newest first; issues that never built (no date known) on top, where they are noticed.
        rows.sort(key=lambda row: row["slug"])
        rows.sort(key=lambda row: row["issue"].date if row["issue"] else date.max, reverse=True)
        return self._page("index.html.j2", rows=rows, version=self.preview.version(), version_url="/api/version",
                          issues_dir=display_path(self.preview.issues_dir))

    def issue_page(self, slug: str) -> Response:
        snapshot = self.preview.snapshot(slug)
        if snapshot is None:
            return self.not_found()
        shown = snapshot.shown
        context: dict[str, Any] = {"slug": slug, "snapshot": snapshot, "version": snapshot.version,
                                   "version_url": f"/api/version?issue={quote(slug)}", "shown": shown,
                                   "file": display_path(snapshot.path), "checks": self.preview.checks(snapshot),
                                   "clip_limit": GMAIL_CLIP_BYTES}
        if shown:
            rendered, config = shown
            values = self.preview.reader_values(slug, config, rendered.issue.lang)
            context.update(rendered=rendered, config=config, subject=self._subject(snapshot),
                           preheader=placeholders.fill(rendered.preheader, values),
                           text=rendered.text_for(values), size=self.preview.size(snapshot),
                           clip_percent=min(100.0, 100 * self.preview.size(snapshot).html_part / GMAIL_CLIP_BYTES))
        return self._page("issue.html.j2", **context)

    def email(self, slug: str, *, view: str) -> Response:
        snapshot = self.preview.snapshot(slug)
        document = self.preview.email_document(snapshot, view=view) if snapshot else None
        if document is None:
            return self.not_found()
        return Response(HTTPStatus.OK, document.encode("utf-8"), headers=(("Content-Security-Policy", EMAIL_CSP),))

    def web_version(self, slug: str) -> Response:
        snapshot = self.preview.snapshot(slug)
        document = self.preview.web_document(snapshot) if snapshot else None
        if document is None:
            return self.not_found()
        return Response(HTTPStatus.OK, document.encode("utf-8"), headers=(("Content-Security-Policy", EMAIL_CSP),))

    def image(self, slug: str, relative: str) -> Response:
        snapshot = self.preview.snapshot(slug)
        path = self.preview.image_file(snapshot, relative) if snapshot else None
        if path is None:
            return self.not_found()
        kind = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                ".webp": "image/webp"}.get(path.suffix.lower(), "application/octet-stream")
        return Response(HTTPStatus.OK, path.read_bytes(), kind)

    def not_found(self) -> Response:
        return self._page("not_found.html.j2", status=HTTPStatus.NOT_FOUND, version="", version_url="")

    def _subject(self, snapshot: Snapshot) -> str:
        assert snapshot.shown
        rendered, config = snapshot.shown
        return placeholders.fill(rendered.subject, self.preview.reader_values(snapshot.slug, config,
                                                                              rendered.issue.lang))

    def _page(self, template: str, *, status: int = HTTPStatus.OK, **context: Any) -> Response:
        body = pages().get_template(template).render(reader=self.preview.reader, poll_ms=POLL_MS, **context)
        return Response(status, body.encode("utf-8"), headers=(("Content-Security-Policy", PAGE_CSP),))


def _parse_target(target: str) -> tuple[list[str], dict[str, list[str]]] | None:
    """Split a request target into decoded path segments; None for anything that could climb out.

    `..`, `.`, encoded slashes and NUL bytes are refused outright rather than normalised, so
    `/issues/x/%2e%2e/%2e%2e/pyproject.toml` is a 404 like any other unknown path.
    """
    if not target.startswith("/"):
        return None  # absolute-form ("http://host/…") or "*"
    path, _, query = target.partition("?")
    segments = []
    for raw in path.split("/")[1:]:
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            return None
        if segment in (".", "..") or any(c in segment for c in "/\\\0"):
            return None
        segments.append(segment)
    return segments, parse_qs(query)


# --- the HTTP server ----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: PreviewServer
    server_version = "mailer-preview"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._respond(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(head=True)

    def _respond(self, *, head: bool) -> None:
        if not self.server.host_allowed(self.headers.get("Host")):
            # A web page on another site cannot read the preview through DNS rebinding: its
            # requests carry that site's name as Host.
            response = Response(HTTPStatus.MISDIRECTED_REQUEST, b"This preview answers only requests for its own "
                                b"address.\n", "text/plain; charset=utf-8")
        else:
            try:
                response = self.server.app.handle(self.path)
            except Exception as err:  # noqa: BLE001 - the server keeps serving whatever goes wrong
                body = f"Internal error in the preview: {type(err).__name__}: {err}".encode()
                response = Response(HTTPStatus.INTERNAL_SERVER_ERROR, body, "text/plain; charset=utf-8")
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page reloaded a frame before the old one finished loading

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the overridden signature
        """Quiet: the core never prints; the CLI says what matters."""


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True  # Ctrl-C must not wait for a browser's open connection

    def __init__(self, address: tuple[str, int], app: PreviewApp):
        self.app = app
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # http.server would look up the host's domain name here (socket.getfqdn), which can stall
        # for seconds without a network; the name is never used.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def host(self) -> str:
        return self.server_address[0]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def host_allowed(self, header: str | None) -> bool:
        if header is None or self.host not in LOOPBACK_HOSTS:
            return True  # an HTTP/1.0 client without Host; or --host widened it on purpose
        name, _, port = header.rpartition(":") if not header.endswith("]") else (header, "", "")
        return name.strip("[]").lower() in LOOPBACK_HOSTS and port == str(self.port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a dropped connection is not worth a traceback on the editor's terminal."""


def create_server(workspace: Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                  reader: SampleReader = EXAMPLE_READER, extra_issues: tuple[Path, ...] = (),
                  state_dir: Path | None = None) -> PreviewServer:
    """Bind the preview server (port 0: any free port); call serve_forever() to run it. `state_dir`:
    MAILER_STATE_DIR's folder, when set."""
    preview = Preview(workspace=workspace, reader=reader, state_dir=state_dir,
                      extra_issues=tuple(p.resolve() for p in extra_issues
                                         if p.resolve().parent != (workspace / "issues").resolve()))
    try:
        return PreviewServer((host, port), PreviewApp(preview))
    except OSError as err:
        raise listen_error(err, host, port, command="preview") from None

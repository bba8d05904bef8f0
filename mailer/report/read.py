"""A report as the CLI asks for it: one issue (its figures, its link map, the email for the click map),
or the trend over the last issues; read from the state folder's ledger, suppression list and store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from mailer.audience.store import SubscriberStore
from mailer.compose import placeholders
from mailer.compose.build import RenderedIssue, render_issue, web_values
from mailer.compose.buildcache import build_issue_cached
from mailer.config import Config
from mailer.deliver.ledger import Ledger, ledger_path
from mailer.deliver.options import SendOptions, issue_key, open_ledger
from mailer.deliver.suppressions import SuppressionList, suppressions_path
from mailer.files import read_regular
from mailer.report.figures import IssueFigures, issue_figures, unsent_figures
from mailer.report.links import Link, map_links
from mailer.report.trend import TrendRow, WeekRow, trend, weeks


@dataclass
class IssueReport:
    figures: IssueFigures
    title: str
    subject: str
    links: list[Link]
    email_html: str  # the HTML part as sent (placeholders in, local images embedded): the click map's base
    values: dict[str, str]  # nobody's values for its placeholders (the web version's)


@dataclass
class TrendReport:
    rows: list[TrendRow]
    weeks: list[WeekRow] = field(default_factory=list)  # empty: no subscriber store
    heard_not_sent: list[tuple[str, int]] = field(default_factory=list)  # events for issues not sent from here

    def as_dict(self) -> dict[str, Any]:
        return {"issues": [row.as_dict() for row in self.rows], "weeks": [row.as_dict() for row in self.weeks],
                "events_for_issues_not_sent_here": dict(self.heard_not_sent)}


def report_issue(config: Config, issue_path: Path) -> IssueReport:
    """The figures of the issue built from `issue_path`, as its readers' events tell them."""
    rendered = build_issue_cached(issue_path, config, config.state_dir / "builds")  # as the send built it
    key = issue_key(rendered.issue.slug, SendOptions())
    links, exact = _map(rendered, config)
    email_html = _with_local_images(_as_submitted(rendered.html, rendered, config), rendered, config)
    values = web_values(rendered.issue, config)
    if not ledger_path(config.state_dir).exists():  # nothing sent from here: nothing to create either
        figures = unsent_figures(key, links)
        return IssueReport(figures, rendered.issue.title, rendered.subject, links, email_html, values)
    with open_ledger(config, key, claim=False) as ledger:
        sent = dict(ledger.live_sends())
        following = _next_sent(list(sent.items()), key)
        figures = issue_figures(ledger, key, links, sent_at=sent.get(key),
                                unsubscribed=_unsubscribed(config.state_dir, sent.get(key), following))
        if key not in sent:
            figures.notes.insert(0, "this issue was not sent live from this state folder")
    if not exact:
        figures.notes.insert(0, "some links were matched to their card by URL alone (the layout places them by "
                                "their address): a URL written twice may be counted on its first card")
    return IssueReport(figures, rendered.issue.title, rendered.subject, links, email_html, values)


def report_trend(config: Config, *, last: int) -> TrendReport:
    """The last `last` issues sent from the state folder, and the store's weekly sign-ups and losses."""
    if not ledger_path(config.state_dir).exists():
        return TrendReport(rows=[], weeks=_weeks(config.state_dir, []))
    with Ledger(ledger_path(config.state_dir)) as ledger:
        sent = ledger.live_sends()

        def figures_of(issue: str, sent_at: str, following: str | None) -> IssueFigures:
            return issue_figures(ledger, issue, _links_of(config, issue), sent_at=sent_at,
                                 unsubscribed=_unsubscribed(config.state_dir, sent_at, following))

        rows = trend(sent, figures_of, last=last)
        heard = ledger.issues_heard_not_sent()
    return TrendReport(rows=rows, weeks=_weeks(config.state_dir, rows), heard_not_sent=heard)


def _map(rendered: RenderedIssue, config: Config) -> tuple[list[Link], bool]:
    web_url = config.web_url(rendered.issue.slug)
    return map_links(rendered.issue, _as_submitted(rendered.html, rendered, config),
                     lambda marked: _as_submitted(render_issue(marked, config).html, rendered, config),
                     named={web_url: "view in browser"})


def _as_submitted(html: str, rendered: RenderedIssue, config: Config) -> str:
    """The HTML part as SendGrid receives it: the web version's address, the same for every reader, is filled
    in (and so tracked); each reader's own values are still placeholders (and links of them alone are not)."""
    from html import escape

    return html.replace(placeholders.WEB_URL, escape(config.web_url(rendered.issue.slug), quote=True))


MAX_EMBEDDED_IMAGE = 2 * 1024 * 1024


def _with_local_images(html: str, rendered: RenderedIssue, config: Config) -> str:
    """The click map's images from the issue's own files, as data: URLs: the page loads nothing, and the
    email still looks as sent (an image from elsewhere shows its alt text)."""
    import base64
    import html as entities
    import mimetypes

    for image in rendered.local_images():
        if image.local_path is None or not image.relative_path:
            continue
        try:  # read as every file of the issue is: a FIFO or a device planted there is no image, never a hang
            data = read_regular(image.local_path, MAX_EMBEDDED_IMAGE)
        except OSError:
            data = None
        if data is not None and len(data) > MAX_EMBEDDED_IMAGE:
            data = None
        kind = mimetypes.guess_type(image.local_path.name)[0] or ""
        if data is None or not kind.startswith("image/"):
            continue
        published = entities.escape(f"{config.web_url(rendered.issue.slug)}{image.relative_path}", quote=True)
        inline = f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"
        html = html.replace(f'src="{published}"', f'src="{inline}"')
    return html


def _links_of(config: Config, issue: str) -> list[Link] | None:
    """The link map of an issue of the trend, when its file is still in issues/ and builds (None: clicks are
    then counted per reader, a click on a link the issue never had included)."""
    from mailer.errors import MailerError

    path = config.issues_dir / f"{issue}.yaml"
    if not path.is_file():
        return None
    try:
        return _map(build_issue_cached(path, config, config.state_dir / "builds"), config)[0]
    except MailerError:
        return None


def _next_sent(sent: list[tuple[str, str]], key: str) -> str | None:
    keys = [issue for issue, _ in sent]
    if key not in keys or keys.index(key) + 1 >= len(keys):
        return None
    return sent[keys.index(key) + 1][1]


def _unsubscribed(state_dir: Path, start: str | None, end: str | None) -> list[tuple[str, str]]:
    if start is None or not suppressions_path(state_dir).exists():
        return []
    with SuppressionList(suppressions_path(state_dir)) as suppressions:
        return suppressions.unsubscribed_between(start, end)


def _weeks(state_dir: Path, rows: list[TrendRow]) -> list[WeekRow]:
    store = SubscriberStore.open_existing(state_dir)
    if store is None:
        return []
    first = rows[0].sent_at if rows and rows[0].sent_at else None
    try:
        since = date.fromisoformat(first) if first else datetime.now().date() - timedelta(weeks=8)
    except ValueError:
        since = datetime.now().date() - timedelta(weeks=8)
    with store:
        gained, lost = store.changes_by_day(since.isoformat())
    return weeks(gained, lost, since=since)

"""`mailer report --html`: one self-contained page (no network, no script) with the report's charts and,
for an issue, the click map; drawn with the same Jinja2 environment as every other page mailer shows."""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup

from mailer.report import charts
from mailer.report.clickmap import click_map
from mailer.report.figures import ODD
from mailer.report.read import IssueReport, TrendReport
from mailer.report.scanners import RULES
from mailer.web.pages import pages


def issue_page(report: IssueReport, *, newsletter: str) -> str:
    """The page of one issue: its figures, the charts of reach and cards, and the click map."""
    figures = report.figures
    return pages().get_template("report.html.j2").render(
        kind="issue", newsletter=newsletter, report=report, figures=figures, rules=RULES, odd_words=ODD,
        generated=_now(), percent=charts.percent,
        reach_chart=Markup(charts.reach_chart(figures)),  # noqa: S704 - pygal's SVG: our numbers, its escaping
        cards_chart=Markup(charts.cards_chart(figures)) if figures.clicks_human_unique else None,  # noqa: S704
        click_map=click_map(report.email_html, figures, report.values))


def trend_page(report: TrendReport, *, newsletter: str) -> str:
    """The page of the last issues: rates, recipients, and the store's weeks."""
    rows = report.rows
    return pages().get_template("report.html.j2").render(
        kind="trend", newsletter=newsletter, trend=report, generated=_now(), percent=charts.percent,
        rates_chart=Markup(charts.rates_chart(rows)) if rows else None,  # noqa: S704 - pygal's SVG
        recipients_chart=Markup(charts.recipients_chart(rows)) if rows else None,  # noqa: S704
        weeks_chart=Markup(charts.weeks_chart(report.weeks)) if report.weeks else None)  # noqa: S704


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

"""`mailer report`: what readers did with an issue, or the trend over the last issues."""

from __future__ import annotations

import csv
import io
import json
import webbrowser
from pathlib import Path

import click

LAST_DEFAULT = 8
BAR = "█"


@click.command(epilog="""\b
Examples:
  mailer report issues/2020-12-13.yaml                      # per card: the people who clicked
  mailer report issues/2020-12-13.yaml --html report.html   # charts and the click map, one offline page
  mailer report                                             # the trend over the last 8 issues
  mailer report --last 12 --format csv > trend.csv
  mailer report issues/2020-12-13.yaml --format json
""")
@click.argument("issue_file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "output", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="table for people; json or csv for scripts and spreadsheets (csv: one row per link, or per "
                   "issue for the trend).")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write one self-contained page (charts, and an issue's click map) that opens offline.")
@click.option("--open", "open_page", is_flag=True,
              help="Open the page in the browser (written to build/reports/ unless --html says where).")
@click.option("--last", type=click.IntRange(1, 520), default=LAST_DEFAULT, show_default=True,
              help="How many of the latest issues the trend shows (without ISSUE_FILE).")
def report(issue_file: Path | None, output: str, html_path: Path | None, open_page: bool, last: int) -> None:
    """Show what readers did with ISSUE_FILE, or without it the trend over the last issues.

    Opens and clicks are people's: opens SendGrid flags as a machine's (Apple Mail Privacy
    Protection) and clicks by link scanners (a gateway's user agent, within seconds of delivery,
    or many links at once) are counted on lines of their own. Clicks are per card, a link written
    twice told apart by its place in the email. Events come from `mailer serve` (the webhook) on
    this machine, or from the one at MAILER_SERVE_URL.
    """
    from mailer.cli.environment import environment, workspace_config
    from mailer.deliver.suppressions import PullError
    from mailer.report.read import report_issue, report_trend
    from mailer.report.remote import pull_events

    if html_path is not None:
        _check_page_path(html_path)  # before the work: a wrong path costs nothing
    config = workspace_config(issue_file.parent if issue_file else Path.cwd())
    try:
        pulled = pull_events(config.state_dir, environment())
    except PullError as err:  # the events already here still make a report: said, not a stop
        click.secho(f"warning: {err}; the report shows the events copied before", fg="yellow", err=True)
    else:
        if pulled is not None:
            click.echo(f"{pulled:,} new event(s) from the mailer serve at MAILER_SERVE_URL", err=True)
    if issue_file is not None:
        issue_report = report_issue(config, issue_file)
        if output == "json":
            click.echo(json.dumps(issue_report.figures.as_dict(), indent=2, ensure_ascii=False))
        elif output == "csv":
            click.echo(_issue_csv(issue_report.figures), nl=False)
        else:
            _print_issue(issue_report)
        page_name = issue_report.figures.issue
    else:
        trend_report = report_trend(config, last=last)
        if output == "json":
            click.echo(json.dumps(trend_report.as_dict(), indent=2, ensure_ascii=False))
        elif output == "csv":
            click.echo(_trend_csv(trend_report), nl=False)
        else:
            _print_trend(trend_report)
        page_name = "trend"
    if html_path is None and open_page:
        html_path = config.build_dir / "reports" / f"{page_name}.html"
    if html_path is not None:
        from mailer.files import write_atomic
        from mailer.web.report_page import issue_page, trend_page

        page = (issue_page(issue_report, newsletter=config.name) if issue_file is not None
                else trend_page(trend_report, newsletter=config.name))
        try:
            write_atomic(html_path, page.encode("utf-8"))
        except OSError as err:
            raise click.ClickException(f"cannot write {html_path}: {err.strerror or err}\n"
                                       "    hint: --html names a file in a folder you can write") from None
        click.echo(f"Wrote {html_path} (opens offline)", err=True)
        if open_page:
            webbrowser.open(html_path.resolve().as_uri())


def _print_issue(issue_report) -> None:  # noqa: ANN001 - mailer.report.read.IssueReport, imported lazily
    from rich.console import Console
    from rich.table import Table

    from mailer.report.charts import percent
    from mailer.report.figures import ODD
    from mailer.report.scanners import RULES

    figures = issue_report.figures
    console = Console(highlight=False)
    console.print(f"[bold]{_plain(issue_report.title)}[/bold]  ({figures.issue}"
                  + (f", sent {figures.sent_at[:16].replace('T', ' ')} UTC)" if figures.sent_at else ")"))
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(justify="left")
    summary.add_column(justify="right")
    summary.add_column(justify="left", style="dim")
    rows = [("sent to", figures.recipients, ""),
            ("delivered", figures.delivered, percent(figures.delivered / figures.recipients)
             if figures.recipients and figures.delivered else ""),
            ("deferred", figures.deferred, ""),
            ("bounced (hard / soft)", f"{figures.bounced_hard:,} / {figures.bounced_soft:,}", ""),
            ("dropped", figures.dropped, ""),
            ("opened by people", figures.opens_human, percent(figures.rate(figures.opens_human))),
            ("opened by machines only", figures.opens_machine, "at least: SendGrid's flag (Apple Mail Privacy)"),
            ("clicked by people", figures.clicks_human_unique, percent(figures.rate(figures.clicks_human_unique))),
            ("scanner clicks taken out", figures.clicks_scanner, "by the rules below"
             if figures.clicks_scanner else ""),
            ("spam complaints", figures.complaints, _complaint_words(figures))]
    rows += [(f"unsubscribed: {route}", count, "") for route, count in figures.unsubscribes.items()]
    rows += [(ODD[key], count, "counted apart") for key, count in figures.odd.items()]
    for label, value, note in rows:
        summary.add_row(label, f"{value:,}" if isinstance(value, int) else value, note)
    console.print(summary)
    for rule, count in figures.scanner_by_rule.items():
        console.print(f"  {count:,} {RULES[rule]}", soft_wrap=True)
    cards = [card for card in figures.cards if card.human_unique]
    if cards:
        most = max(card.human_unique for card in cards)
        table = Table(title="Readers who clicked each card (people, not scanners)", title_justify="left")
        table.add_column("card", overflow="fold")
        table.add_column("section", style="dim", overflow="fold")
        table.add_column("readers", justify="right")
        table.add_column("share", justify="right")
        table.add_column("")
        for card in cards:
            table.add_row(_plain(card.card), _plain(card.section), f"{card.human_unique:,}", f"{card.share:.0%}",
                          BAR * max(1, round(card.human_unique / most * 20)))
        console.print(table)
    for note in figures.notes:
        console.print(f"[dim]note: {_plain(note)}[/dim]", soft_wrap=True)


def _print_trend(trend_report) -> None:  # noqa: ANN001 - mailer.report.read.TrendReport, imported lazily
    from rich.console import Console
    from rich.table import Table

    from mailer.report.charts import percent, sparkline

    rows = trend_report.rows
    console = Console(highlight=False)
    if not rows:
        console.print("No issue was sent from this state folder yet: `mailer report` shows the trend once there "
                      "are sends (and their events).")
    else:
        table = Table(title=f"The last {len(rows)} issue(s), oldest first", title_justify="left")
        table.add_column("")
        table.add_column("trend")
        table.add_column("latest", justify="right")
        table.add_column("lowest", justify="right", style="dim")
        table.add_column("highest", justify="right", style="dim")
        metrics = [("recipients", [row.recipients for row in rows], lambda value: f"{value:,}"),
                   ("delivered", [row.delivery_rate for row in rows], percent),
                   ("opened (people)", [row.human_open_rate for row in rows], percent),
                   ("clicked (people)", [row.click_through_rate for row in rows], percent),
                   ("unsubscribed", [row.unsubscribe_rate for row in rows], percent),
                   ("complained", [row.complaint_rate for row in rows], percent)]
        for label, values, shown in metrics:
            known = [value for value in values if value is not None]
            table.add_row(label, sparkline(values), shown(values[-1]) if values[-1] is not None else "–",
                          shown(min(known)) if known else "–", shown(max(known)) if known else "–")
        console.print(table)
        console.print("issues: " + ", ".join(row.issue for row in rows), style="dim")
    if trend_report.weeks:
        weeks = trend_report.weeks
        table = Table(title="The subscriber store, week by week", title_justify="left")
        table.add_column("")
        table.add_column("trend")
        table.add_column("this week", justify="right")
        table.add_column("all weeks shown", justify="right", style="dim")
        for label, values in (("sign-ups confirmed", [week.signups_confirmed for week in weeks]),
                              ("readers lost", [week.readers_lost for week in weeks])):
            table.add_row(label, sparkline(values), f"{values[-1]:,}", f"{sum(values):,}")
        console.print(table)
    for issue, count in trend_report.heard_not_sent:
        console.print(f"[dim]note: {count:,} event(s) for issue {_plain(issue)}, which was not sent from here "
                      "(another state folder or newsletter?)[/dim]")


def _complaint_words(figures) -> str:  # noqa: ANN001 - IssueFigures
    from mailer.report.charts import percent

    words = {"ok": "under 0.1 %: fine", "warn": "over 0.1 %: Gmail and Yahoo ask for less",
             "over": "over 0.3 %: the next live send refuses", "unknown": ""}[figures.complaint_level]
    return f"{percent(figures.complaint_rate)} of delivered; {words}" if figures.complaint_rate is not None else ""


def _plain(text: str) -> str:
    """Text for rich: its markup brackets escaped (a card title may hold "[PDF]"), and control characters shown
    as escapes (an issue key from another machine's events may hold a terminal escape)."""
    from rich.markup import escape

    from mailer.addresses import printable

    return escape(printable(text))


def _issue_csv(figures) -> str:  # noqa: ANN001 - IssueFigures
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["position", "card", "section", "url", "human_unique", "share"])
    for link in figures.links:
        writer.writerow([link.position if link.position is not None else "", _cell(link.card), _cell(link.section),
                         _cell(link.url), link.human_unique, f"{link.share:.4f}"])
    return out.getvalue()


def _trend_csv(trend_report) -> str:  # noqa: ANN001 - TrendReport
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = ["issue", "sent_at", "recipients", "delivery_rate", "human_open_rate", "click_through_rate",
               "unsubscribe_rate", "complaint_rate"]
    writer.writerow(columns)
    for row in trend_report.rows:
        writer.writerow(["" if getattr(row, column) is None else getattr(row, column) for column in columns])
    return out.getvalue()


def _cell(text: str) -> str:
    """A spreadsheet never runs a cell: text a formula would start with gets a leading quote (as exports do)."""
    from mailer.audience.roster import as_cell

    return as_cell(text)


PAGE_MARK = b'<meta name="generator" content="mailer report">'


def _check_page_path(path: Path) -> None:
    """Refuse to write the page over anything but an earlier page of mailer report: never a device, a pipe, a
    link, or a file of the editor's (the page is written whole and renamed into place, which would replace it)."""
    import os
    import stat

    from mailer.files import read_regular

    if not path.name:
        raise click.BadParameter("give the page a file name, e.g. --html report.html", param_hint="--html")
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise click.BadParameter(f"{path}: {err.strerror}", param_hint="--html") from None
    if not stat.S_ISREG(found.st_mode):
        raise click.BadParameter(f"{path} exists and is not a plain file (a link, a device, a pipe or a folder): "
                                 "mailer writes its page only as a file of its own", param_hint="--html")
    try:
        ours = PAGE_MARK in read_regular(path, 4096, follow=False)
    except OSError:
        ours = False
    if not ours:
        raise click.BadParameter(f"{path} exists and is not a page mailer report wrote: it is left as it is; "
                                 "give another name, or remove it first", param_hint="--html")

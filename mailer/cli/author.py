"""`mailer new` (next week's file from the latest issue) and `mailer cards` (cards filled from their pages)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mailer.config import Config

EPILOG_NEW = """\b
Examples:
  mailer new                      # issues/<next Sunday>.yaml from the latest finished issue
  mailer new 2026-12-06           # for that date
  mailer new --from issues/2020-12-13-zh.yaml
"""


@click.command(epilog=EPILOG_NEW)
@click.argument("on", metavar="[DATE]", required=False, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--from", "source", type=click.Path(path_type=Path, dir_okay=False),
              help="Start from this issue instead of the latest finished one (sent, or dated today or earlier "
                   "without a check error; drafts are passed over).")
def new(on: object, source: Path | None) -> None:
    """Write next week's issue file, issues/DATE.yaml, from the latest finished issue (DATE: next Sunday).

    The parts that stay week to week stay: title, hero slot, footer, language, and the section
    headings that recur in your issues. Each text of the week becomes a TODO that `mailer check`
    reports and `mailer send` refuses; the week's links, pictures and dataset are emptied, with a
    comment saying what goes there. An existing file is never overwritten.
    """
    from mailer.author.skeleton import new_issue, next_sunday, write_new_issue
    from mailer.cli.environment import workspace_config
    from mailer.errors import InputError, Problem
    from mailer.schema import display_path

    config = workspace_config(Path.cwd())
    today = date.today()
    day = on.date() if on is not None else next_sunday(today)  # type: ignore[attr-defined]
    issue = new_issue(config.issues_dir, on=day, source=source, config=config, today=today)
    try:
        write_new_issue(issue)
    except FileExistsError as err:
        raise InputError([Problem(display_path(issue.path), "already exists: mailer new never overwrites an issue",
                                  hint="edit that file, or give another date")]) from err
    for problem in issue.left_out:  # a draft that does not read is no reason to stop: it is named
        click.secho(f"warning: left out: {problem}", fg="yellow", err=True)
    if day < today:
        click.secho(f"warning: {day.isoformat()} is in the past (today is {today.isoformat()}): readers will see "
                    f"that date in the issue and the archive; give the date it goes out (next Sunday is "
                    f"{next_sunday(today).isoformat()})", fg="yellow", err=True)
    if issue.source_is_draft:
        click.secho(f"warning: no finished issue to start from: started from the draft {display_path(issue.source)}",
                    fg="yellow", err=True)
    which = "--from" if source is not None else "the latest draft" if issue.source_is_draft else \
        "the latest finished issue"
    click.echo(f"{display_path(issue.path)} ← the structure of {display_path(issue.source)} ({which})")
    for path, why in issue.passed_over:
        click.echo(f"  passed over the draft {display_path(path)}: {why}")
    if issue.kept_headings:
        click.echo("  kept headings: " + ", ".join(issue.kept_headings))
    click.echo("  next: write the TODOs, paste the week's links under cards:, then\n"
               f"        mailer cards {display_path(issue.path)}   # titles and descriptions from the pages\n"
               f"        mailer preview {display_path(issue.path)}")


EPILOG_CARDS = """\b
Examples:
  mailer cards                        # next week's issue (the latest to come), after mailer new
  mailer cards issues/2026-12-06.yaml
  mailer cards issues/2026-12-06.yaml --refresh   # fetch every page again, not from the cache
"""


@click.command(epilog=EPILOG_CARDS)
@click.argument("issue_file", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--refresh", is_flag=True, help="Fetch every page again instead of reading the cache.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds a page may take, redirects included.")
def cards(issue_file: Path | None, refresh: bool, timeout: float) -> None:
    """Fill each card that has a url but no title, description or site from its page.

    Without ISSUE_FILE: the latest issue in issues/ dated today or later and not sent (the one `mailer new`
    just wrote).

    Reads each page's OpenGraph, Twitter card and JSON-LD metadata (with fallbacks), cleans the text
    and writes it into ISSUE_FILE, keeping every other line, comment and quote as it was. A field you
    wrote is never overwritten. Pages are cached (in the state folder, .mailer/pages/): a rerun is
    instant and offline. A page that fails (timeout, 404, not HTML…) leaves its card as it was and is
    listed; the exit code is then 3.
    """
    from mailer.addresses import printable
    from mailer.author.cards import PageCache, fill_cards
    from mailer.author.pagemeta import PageFetcher
    from mailer.cli.environment import environment, workspace_config
    from mailer.errors import ExitStatus
    from mailer.schema import display_path

    config = workspace_config(issue_file.parent if issue_file else Path.cwd())
    if issue_file is None:
        issue_file = _latest_unsent(config)
        click.echo(f"{display_path(issue_file)} (the latest issue still to come)")
    report = fill_cards(issue_file, cache=PageCache(config.state_dir / "pages"), refresh=refresh,
                        fetcher_factory=lambda: PageFetcher(timeout=timeout,
                                                            proxy_variable=environment().proxy_variable))
    label = display_path(issue_file)
    for card, values in report.filled:
        click.echo(f"  ✓ {label}:{card.line}  {card.url}\n      {', '.join(values)}: {values.get('title', '')}")
    for card, note in report.notes:
        click.secho(f"  ! {label}:{card.line}  {note}", fg="yellow")
    for card, reason in report.failed:
        # printable: a reason can quote the server (its status phrase, a redirect's target, a content type).
        click.secho(f"  ✗ {label}:{card.line}  {card.url}\n      {printable(reason)}: the card is left as it was",
                    fg="red")
    cards_word = "card" if len(report.filled) == 1 else "cards"
    pages_word = "page" if report.fetched == 1 else "pages"
    summary = (f"{label}: {len(report.filled)} {cards_word} filled ({report.fetched} {pages_word} fetched, "
               f"{report.from_cache} from the cache)")
    if report.failed:
        summary += f", {len(report.failed)} failed"
    if report.complete:
        summary += f"; {report.complete} already complete"
    if not (report.filled or report.failed or report.complete):
        summary = (f"{label}: no card to fill: paste the week's links under a section's cards: as "
                   "'- url: https://…', then run this again")
    click.echo(summary)
    if report.failed:
        sys.exit(ExitStatus.DELIVERY_FAILED)


def _latest_unsent(config: Config) -> Path:
    """Next week's issue: the one with the latest name (issues are named by their date) dated today or later that no
    live send reached. An issue of a past date is finished or forgotten, never the one being written."""
    from mailer.checks.drafts import sent_issues
    from mailer.errors import InputError, Problem
    from mailer.schema import display_path

    sent, today = sent_issues(config), date.today().isoformat()
    coming = [path for path in sorted(config.issues_dir.glob("*.yaml"))
              if path.stem not in sent and path.stem[:10] >= today]
    if not coming:
        raise InputError([Problem(display_path(config.issues_dir), "no issue still to come here: nothing to fill",
                                  hint="start next week's with `mailer new`, or name one: mailer cards ISSUE_FILE")])
    return coming[-1]

"""The CLI side of `mailer suppressions pull` and `mailer suppressions list`: print, never decide."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailer.config import find_workspace, load_config
from mailer.deliver.subscribers import address_key
from mailer.deliver.suppressions import SOURCES, Pull, PullProgress, SuppressionList, suppressions_path
from mailer.schema import display_path

PLURALS = {"global_unsubscribe": "global unsubscribes", "group_unsubscribe": "group unsubscribes",
           "bounce": "bounces", "spam_report": "spam reports", "invalid_email": "invalid emails"}


def _state_dir() -> Path:
    return load_config(find_workspace(Path.cwd())).state_dir


def _table(rows: list[tuple[str, int]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value:>8}" for label, value in rows)


def _counts(pull: Pull) -> str:
    rows = [(PLURALS[source], pull.counts.get(source, 0)) for source in SOURCES]
    return _table([*rows, ("addresses in all", pull.addresses)])


def run_pull() -> None:
    path = suppressions_path(_state_dir())
    if sys.stderr.isatty():
        progress = PullProgress(
            on_page=lambda source, fetched: click.echo(f"\r  {PLURALS[source]}: {fetched}…", nl=False, err=True),
            on_retry=lambda message, delay: click.secho(f"\nnote: {message}; retrying in {delay:.1f} s",
                                                        fg="yellow", err=True))
    else:
        progress = PullProgress(
            on_retry=lambda message, delay: click.secho(f"note: {message}; retrying in {delay:.1f} s",
                                                        fg="yellow", err=True))
    with SuppressionList(path) as suppressions:
        pull = suppressions.pull(progress=progress)
    if sys.stderr.isatty():
        click.echo("\r", nl=False, err=True)
    click.echo(f"Pulled SendGrid's suppression list at {pull.pulled_at}:")
    click.echo(_counts(pull))
    click.echo(f"Saved to {display_path(path)}; `mailer send` skips these addresses.")


def run_list(email: str | None, show_all: bool) -> None:
    path = suppressions_path(_state_dir())
    if not path.exists():
        click.echo(f"No suppression list pulled yet (no {display_path(path)}): `mailer send` checks nobody.")
        click.echo("Pull one with: mailer suppressions pull")
        return
    with SuppressionList(path) as suppressions:
        if email is not None:
            _show_one(suppressions, email)
            return
        pull = suppressions.last_pull()
        if pull is None:
            click.echo(f"No suppression list pulled yet ({display_path(path)} is empty).")
            return
        click.echo(f"Suppression list {display_path(path)}, pulled {pull.pulled_at}:")
        click.echo(_counts(pull))
        if show_all:
            for item in suppressions.all():
                click.echo(f"{item.email}\t{item.describe()}\t{item.created_at or ''}")


def _show_one(suppressions: SuppressionList, email: str) -> None:
    reasons = suppressions.reasons(email)
    pull = suppressions.last_pull()
    when = f" (list pulled {pull.pulled_at})" if pull else ""
    if not reasons:
        click.echo(f"{address_key(email)} is not suppressed{when}: `mailer send` mails it.")
        return
    click.echo(f"{address_key(email)} is suppressed{when}; `mailer send` skips it:")
    for item in reasons:
        since = f", since {item.created_at}" if item.created_at else ""
        click.echo(f"  {item.describe()}{since}")

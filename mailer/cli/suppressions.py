"""`mailer suppressions pull` and `mailer suppressions list`: print, never decide."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the commands import the suppression store when they run, so --help stays fast
    from mailer.config import Config
    from mailer.deliver.suppressions import Pull, SuppressionList

PLURALS = {"global_unsubscribe": "global unsubscribes", "group_unsubscribe": "group unsubscribes",
           "bounce": "bounces", "spam_report": "spam reports", "invalid_email": "invalid emails"}


EPILOG_SUPPRESSIONS = """\b
Examples:
  mailer suppressions pull                               # download SendGrid's lists
  mailer suppressions list                               # how many, and when they were pulled
  mailer suppressions list --email ada@example.com       # why one address is skipped
"""


@click.group(epilog=EPILOG_SUPPRESSIONS)
def suppressions() -> None:
    """The local suppression list: addresses `mailer send` always skips.

    It is a copy of SendGrid's global unsubscribes, group unsubscribes, bounces, spam reports and
    invalid emails, kept in the state folder (suppressions.sqlite3), so that a subscribers CSV can
    never bring back someone who unsubscribed.
    """


@suppressions.command("pull", epilog="""\b
Examples:
  mailer suppressions pull                           # into .mailer/suppressions.sqlite3
  MAILER_STATE_DIR=/srv/mailer mailer suppressions pull   # another state folder
  MAILER_MAILBOX_URL=imaps://bounces%40example.com:PASSWORD@imap.example.com/INBOX mailer suppressions pull

\b
Environment:
  SENDGRID_API_KEY     a key with the "Suppressions" read scope (backend: sendgrid)
  MAILER_MAILBOX_URL   imaps://user:password@host[:993]/MAILBOX: the mailbox mail comes back to
                       (unsubscribe mails, bounces, complaints); imap:// only to this machine
  MAILER_SERVE_URL     a `mailer serve` on another machine, with MAILER_EXPORT_TOKEN
""")
def suppressions_pull() -> None:
    """Download every SendGrid suppression list and replace the local copy; read the mailbox mail comes back to.

    Needs SENDGRID_API_KEY with the "Suppressions" read scope. Every page of every list is
    fetched before anything is written: a pull that fails keeps the previous list. With
    MAILER_MAILBOX_URL set, the mailbox's unseen unsubscribe mails, bounces (RFC 3464) and
    complaints (RFC 5965) are acted on first and flagged read; other mail is left unread. With
    the SMTP backend, the mailbox is all there is to read (and a remote `mailer serve`'s lists).
    """
    run_pull()


@suppressions.command("list", epilog="""\b
Examples:
  mailer suppressions list
  mailer suppressions list --email ada@example.com
  mailer suppressions list --all > suppressed.tsv
""")
@click.option("--email", metavar="ADDRESS", help="Show why ADDRESS is suppressed (or that it is not).")
@click.option("--all", "show_all", is_flag=True,
              help="Also print every suppressed address: email, reason and date, tab-separated.")
def suppressions_list(email: str | None, show_all: bool) -> None:
    """Show the local suppression list: counts per source and when it was pulled."""
    run_list(email, show_all)


def state_dir_here() -> Path:
    """The state folder of the workspace this command runs in (MAILER_STATE_DIR, or its .mailer/)."""
    from mailer.cli.environment import workspace_config

    return workspace_config(Path.cwd()).state_dir


def _table(rows: list[tuple[str, int]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value:>8}" for label, value in rows)


def _counts(pull: Pull) -> str:
    from mailer.deliver.suppressions import SOURCES

    rows = [(PLURALS[source], pull.counts.get(source, 0)) for source in SOURCES]
    return _table([*rows, ("addresses in all", pull.addresses)])


def run_pull() -> None:
    from mailer.cli.environment import environment, workspace_config
    from mailer.deliver.suppressions import PullProgress, SuppressionList, suppressions_path
    from mailer.schema import display_path

    config = workspace_config(Path.cwd())
    path = suppressions_path(config.state_dir)
    env = environment()
    mailbox_url = env.mailbox_url.strip()
    if mailbox_url:
        _read_mailbox(config, mailbox_url, env.unsubscribe_secret)
        if config.backend != "sendgrid":  # SMTP: no SendGrid lists to pull, only a remote service's, if any
            with SuppressionList(path) as stored:
                if stored.pull_remote(env):
                    click.echo("Copied the remote mailer serve's unsubscribes and reports.")
            return
    if env.stderr_is_terminal:
        progress = PullProgress(
            on_page=lambda source, fetched: click.echo(f"\r  {PLURALS[source]}: {fetched}…", nl=False, err=True),
            on_retry=lambda message, delay: click.secho(f"\nnote: {message}; retrying in {delay:.1f} s",
                                                        fg="yellow", err=True))
    else:
        progress = PullProgress(
            on_retry=lambda message, delay: click.secho(f"note: {message}; retrying in {delay:.1f} s",
                                                        fg="yellow", err=True))
    with SuppressionList(path) as stored:
        pull = stored.pull(env, progress=progress)
    if env.stderr_is_terminal:
        click.echo("\r", nl=False, err=True)
    click.echo(f"Pulled SendGrid's suppression list at {pull.pulled_at}:")
    click.echo(_counts(pull))
    click.echo(f"Saved to {display_path(path)}; `mailer send` skips these addresses.")


def _read_mailbox(config: Config, url: str, secret_value: str) -> None:
    """Act on the mailbox's unseen mail; say what was done in counts, and where, without the password."""
    from mailer.deliver.inbound import Newsletter
    from mailer.deliver.mailbox import parse_mailbox_url, read_mailbox
    from mailer.deliver.message import list_id, unsubscribe_secret

    settings = parse_mailbox_url(url)
    # The key the links were signed with: a self-hosted newsletter's sends need it too; SendGrid's own
    # unsubscribes carry no token of ours, so none is believed.
    secret = None if config.managed_unsubscribe else unsubscribe_secret(secret_value, live=True)
    click.echo(f"Reading unseen mail in {settings.shown} …")
    outcome = read_mailbox(settings, Newsletter(list_id(config), secret, config.state_dir))
    click.echo(f"  {outcome.messages} message(s) read: {outcome.unsubscribed} unsubscribe(s), {outcome.bounced} "
               f"hard bounce(s), {outcome.complained} complaint(s) recorded")
    for why, count in sorted(outcome.ignored.items()):
        click.echo(f"  ignored: {count} {why}")
    if outcome.left_unseen:
        click.echo(f"  {outcome.left_unseen} message(s) left unread for you: not an unsubscribe, a bounce or a "
                   "complaint mailer can act on")


def run_list(email: str | None, show_all: bool) -> None:
    from mailer.deliver.suppressions import SuppressionList, suppressions_path
    from mailer.schema import display_path

    path = suppressions_path(state_dir_here())
    if not path.exists():
        click.echo(f"No suppression list pulled yet (no {display_path(path)}): `mailer send` checks nobody.")
        click.echo("Pull one with: mailer suppressions pull")
        return
    with SuppressionList(path) as stored:
        if email is not None:
            _show_one(stored, email)
            return
        pull = stored.last_pull()
        here = stored.unsubscribed_here()
        if pull is None:
            click.echo(f"No SendGrid list pulled yet into {display_path(path)} (`mailer suppressions pull`).")
        else:
            click.echo(f"Suppression list {display_path(path)}, pulled {pull.pulled_at}:")
            click.echo(_counts(pull))
        if here:
            click.echo(f"  {here} {'reader' if here == 1 else 'readers'} unsubscribed through `mailer serve`")
        if show_all:
            for item in stored.all():
                click.echo(f"{item.email}\t{item.describe()}\t{item.created_at or ''}")


def _show_one(stored: SuppressionList, email: str) -> None:
    from mailer.addresses import address_key

    reasons = stored.reasons(email)
    pull = stored.last_pull()
    when = f" (list pulled {pull.pulled_at})" if pull else ""
    if not reasons:
        click.echo(f"{address_key(email)} is not suppressed{when}: `mailer send` mails it.")
        return
    click.echo(f"{address_key(email)} is suppressed{when}; `mailer send` skips it:")
    for item in reasons:
        since = f", since {item.created_at}" if item.created_at else ""
        click.echo(f"  {item.describe()}{since}")

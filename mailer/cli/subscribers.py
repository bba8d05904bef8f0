"""`mailer subscribers`: the subscriber store from the editor's side (import, export, list, add, remove)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailer.cli.suppressions import state_dir_here

SHOWN = 50  # readers shown by name for each kind of note; the counts are always whole
STATUS_CHOICE = click.Choice(["pending", "confirmed", "unsubscribed", "bounced", "complained"])

EPILOG_SUBSCRIBERS = """\b
Examples:
  mailer subscribers import subscribers.example.csv --dry-run   # what an import would do
  mailer subscribers import subscribers.example.csv
  mailer subscribers list                                       # how many, by status
  mailer subscribers list --status confirmed                    # who
  mailer subscribers export subscribers-backup.csv
  mailer subscribers add grace.hopper@example.com --first-name Grace --tag weekly
  mailer subscribers remove grace.hopper@example.com            # an unsubscribe
  mailer subscribers remove --forget grace.hopper@example.com   # erasure on request
"""


@click.group(epilog=EPILOG_SUBSCRIBERS)
def subscribers() -> None:
    """The subscriber store: readers who signed up, were imported or added, with their consent.

    It lives in the state folder (subscribers.sqlite3). `mailer send ISSUE` without --subscribers
    sends to its confirmed readers; readers who unsubscribe, bounce or complain leave it as they
    leave the suppression list, and no import brings them back.
    """


@subscribers.command("import", epilog="""\b
Examples:
  mailer subscribers import subscribers.example.csv --dry-run
  mailer subscribers import subscribers.example.csv
  mailer subscribers import old-list.csv --skip-invalid --encoding cp1252
""")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--encoding", metavar="NAME", help="The file's encoding when it is not UTF-8 (e.g. cp1252).")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows and list the others as refused.")
@click.option("--dry-run", is_flag=True, help="Say what the import would do; change nothing.")
def subscribers_import(csv_file: Path, encoding: str | None, skip_invalid: bool, dry_run: bool) -> None:
    """Add or update readers from a subscribers CSV (columns: email, first_name, last_name, status, tags).

    New addresses are added as confirmed (or as the status column says); known readers get the row's
    names and tags. A reader who unsubscribed, bounced or complained stays so whatever the file says,
    and a reader who asked to be forgotten is refused. A file with an invalid row is refused whole,
    every row named, unless --skip-invalid.
    """
    from mailer.addresses import printable
    from mailer.audience.roster import import_list
    from mailer.deliver.suppressions import sync_store
    from mailer.schema import display_path

    state_dir = state_dir_here()
    label = display_path(csv_file)
    sync_store(state_dir)  # the store as the suppression list has it: who left is told as such
    outcome, _ = import_list(csv_file, state_dir, file_label=label, encoding=encoding, skip_invalid=skip_invalid,
                             dry_run=dry_run)
    if not dry_run:
        sync_store(state_dir)  # who is on the suppression list already is no longer confirmed
    for kind in ("updated", "unchanged", "refused"):
        notes = outcome.notes[kind]
        for line, email, why in notes[:SHOWN]:
            click.secho(f"  {kind:<9} {printable(email)} (line {line}): {printable(why)}",
                        fg="yellow" if kind == "refused" else None)
        if len(notes) > SHOWN:
            click.echo(f"  … and more {kind} (mailer subscribers list --email ADDRESS shows one reader)")
    verb = "would be" if dry_run else "were"
    click.echo(f"{label}: {outcome.added} added, {outcome.updated} updated, {outcome.unchanged} unchanged, "
               f"{outcome.refused} refused" + (f" ({verb} imported: nothing was changed)" if dry_run else "."))
    if dry_run:
        click.echo(f"To import for real: mailer subscribers import {label}"
                   + (f" --encoding {encoding}" if encoding else "") + (" --skip-invalid" if skip_invalid else ""))


@subscribers.command("export", epilog="""\b
Examples:
  mailer subscribers export                          # to the terminal
  mailer subscribers export subscribers-backup.csv
  mailer subscribers export confirmed.csv --status confirmed
""")
@click.argument("csv_file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--status", type=STATUS_CHOICE, help="Only readers of this status.")
def subscribers_export(csv_file: Path | None, status: str | None) -> None:
    """Write the store as a subscribers CSV, with each reader's status, source and dates (UTF-8).

    `mailer send --subscribers` reads it as it is (confirmed rows are mailed), and importing it
    back changes nothing. Without FILE, the CSV goes to the terminal.
    """
    from mailer.audience.roster import export_list
    from mailer.deliver.suppressions import sync_store
    from mailer.files import write_private
    from mailer.schema import display_path

    state_dir = state_dir_here()
    sync_store(state_dir)
    if csv_file is None:
        export_list(state_dir, sys.stdout, status=status)
        return
    import io

    text = io.StringIO()
    count = export_list(state_dir, text, status=status)
    write_private(csv_file, text.getvalue().encode("utf-8"))  # personal data: readable by this user only
    click.echo(f"Wrote {count} reader(s) to {display_path(csv_file)}.", err=True)


@subscribers.command("list", epilog="""\b
Examples:
  mailer subscribers list
  mailer subscribers list --status pending
  mailer subscribers list --email ada.lovelace@example.com
""")
@click.option("--status", type=STATUS_CHOICE, help="List the readers of this status.")
@click.option("--email", metavar="ADDRESS", help="Show one reader: status, source and every consent.")
def subscribers_list(status: str | None, email: str | None) -> None:
    """Count the store's readers by status; --status lists them, --email shows one."""
    from mailer.addresses import printable
    from mailer.audience.store import STATUSES, SubscriberStore, store_path
    from mailer.audience.subscribers import display_name
    from mailer.deliver.suppressions import sync_store
    from mailer.schema import display_path

    state_dir = state_dir_here()
    if not store_path(state_dir).exists():
        click.echo(f"No subscriber store yet (no {display_path(store_path(state_dir))}).")
        click.echo("Fill it with: mailer subscribers import FILE.csv (or sign-ups through mailer serve)")
        return
    sync_store(state_dir)
    with SubscriberStore.open(state_dir) as store:
        if email is not None:
            reader = store.get(email)
            if reader is None:
                click.echo(f"{printable(email)} is not in the subscriber store"
                           + (" (asked to be forgotten)" if store.is_forgotten(email) else "") + ".")
                return
            click.echo(f"{printable(reader.email)}: {reader.status}"
                       + (f" ({printable(reader.status_reason)})" if reader.status_reason else "")
                       + f", from {reader.source}, since {reader.created_at}"
                       + (f", confirmed {reader.confirmed_at}" if reader.confirmed_at else ""))
            for consent in store.consents(email):
                click.echo(f"  consent {consent.given_at} ({printable(consent.form)}, version "
                           f"{printable(consent.version)}): {printable(consent.text)}")
            return
        if status is not None:
            for reader in store.readers(status=status):
                name = printable(display_name(reader.first_name, reader.last_name))
                click.echo(f"{printable(reader.email)}\t{name}\t{';'.join(map(printable, reader.tags))}\t"
                           f"{reader.source}\t{reader.updated_at}")
            return
        counts = store.counts()
    width = max(len(name) for name in STATUSES)
    click.echo(f"Subscriber store {display_path(store_path(state_dir))}:")
    for name in STATUSES:
        click.echo(f"  {name:<{width}}  {counts[name]:>8}")
    click.echo(f"`mailer send ISSUE` (without --subscribers) sends to the {counts['confirmed']} confirmed.")


@subscribers.command("add", epilog="""\b
Examples:
  mailer subscribers add grace.hopper@example.com
  mailer subscribers add grace.hopper@example.com --first-name Grace --last-name Hopper --tag weekly
""")
@click.argument("address")
@click.option("--first-name", default="", help="The reader's first name (-first_name- in the issue).")
@click.option("--last-name", default="", help="The reader's last name.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag (segment); repeat for more.")
def subscribers_add(address: str, first_name: str, last_name: str, tags: tuple[str, ...]) -> None:
    """Add one reader as confirmed, on your word (source: editor): for someone who asked you in person."""
    from mailer.addresses import AddressError, parse_address, printable
    from mailer.audience.store import Consent, Incoming, SubscriberStore, now
    from mailer.deliver.suppressions import screen_recipients
    from mailer.errors import InputError, Problem
    from mailer.headers import header_problem

    try:
        email = parse_address(address)
    except AddressError as err:
        raise InputError([Problem("ADDRESS", f"invalid email address '{printable(address)}': {err}",
                                  hint="give the address alone, e.g. grace.hopper@example.com")]) from None
    problems = [Problem(f"--{option}", f"'{printable(value)}' {problem[1]} at character {problem[0] + 1}",
                        hint="a name on one line, without control characters")
                for option, value in (("first-name", first_name), ("last-name", last_name), *(("tag", t) for t in tags))
                if (problem := header_problem(value))]
    if problems:
        raise InputError(problems)
    state_dir = state_dir_here()
    consent = Consent(now(), "editor", "added by the editor (mailer subscribers add), on the reader's word", "editor")
    with SubscriberStore.open(state_dir) as store:
        done = store.add(Incoming(email, first_name.strip(), last_name.strip(), tuple(t.strip() for t in tags)),
                         consent=consent)
    if done == "forgotten":
        raise InputError([Problem(email, "asked to be forgotten: only their own sign-up and confirmation can add "
                                  "them back", hint="send them the sign-up page's address")])
    if done != "added":
        click.echo(f"{email} is already in the store ({done}); nothing changed.")
        return
    click.echo(f"Added {email} as confirmed.")
    for reason in screen_recipients(state_dir, [email]).reasons.values():
        click.secho(f"warning: {email} is on the suppression list ({reason}): `mailer send` skips it", fg="yellow",
                    err=True)


@subscribers.command("remove", epilog="""\b
Examples:
  mailer subscribers remove grace.hopper@example.com            # unsubscribed: never mailed again
  mailer subscribers remove --forget grace.hopper@example.com   # erased: a keyed hash stays
""")
@click.argument("address")
@click.option("--forget", is_flag=True,
              help="Erase the reader and their consent records (a request to be forgotten); only a keyed hash of "
                   "the address stays, so that no import or add brings them back.")
def subscribers_remove(address: str, forget: bool) -> None:
    """Unsubscribe a reader on their request (they stay, unsubscribed, on the suppression list too)."""
    from mailer.addresses import AddressError, parse_address, printable
    from mailer.audience.store import UNSUBSCRIBED, SubscriberStore
    from mailer.cli.environment import workspace_config
    from mailer.deliver.message import list_id
    from mailer.deliver.suppressions import UNSUBSCRIBE, Click, SuppressionList
    from mailer.errors import InputError, Problem

    try:
        address = parse_address(address)
    except AddressError as err:
        raise InputError([Problem("ADDRESS", f"invalid email address '{printable(address)}': {err}",
                                  hint="give the address alone, e.g. grace.hopper@example.com")]) from None
    config = workspace_config(Path.cwd())
    state_dir = config.state_dir
    with SubscriberStore.open(state_dir) as store:
        if forget:
            found = store.forget(address)
            click.echo(f"Forgot {printable(address)}: " + ("their row and consent records are erased; " if found else
                       "they were not in the store; ") + "a keyed hash of the address stays, so that no import or "
                       "add brings them back (their own sign-up and confirmation can).")
            return
        reader = store.get(address)
        store.set_status([(address, UNSUBSCRIBED, "removed by the editor")])
    # On the suppression list too: a send from a CSV that still holds them skips them as well.
    with SuppressionList.open(state_dir) as suppressions:
        suppressions.record_clicks([Click(UNSUBSCRIBE, address, "editor", list_id(config))])
    shown = printable(address)
    if reader is None:
        click.echo(f"{shown} is not in the store; it is on the suppression list now, so no send mails it.")
    else:
        click.echo(f"Unsubscribed {shown} (was {reader.status}); no send mails it again.")

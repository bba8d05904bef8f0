"""`mailer status` and `mailer cancel`: what the ledger says of an issue's send, and a scheduled send called off.

The ledger and the backends are imported inside the functions, so that `mailer --help` does not load them.
"""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailer.cli.commandline import command_line
from mailer.cli.send import backend_for, counts_table, load_issue, workspace_of

if TYPE_CHECKING:
    from mailer.config import Config

STATUS_ROWS = 20  # reasons (state and error) listed before "… and N more"


@click.command(epilog="""\b
Examples:
  mailer status issues/2020-12-13.yaml
  mailer status issues/2020-12-13.yaml --format json
  mailer status issues/2020-12-13.yaml --list failed
""")
@click.argument("issue_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--sandbox", is_flag=True, help="Show the sandbox sends instead of the real ones.")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people; json for scripts (every failed and uncertain recipient included).")
@click.option("--list", "list_state", type=click.Choice(["failed", "uncertain"]),
              help="Print only the addresses in that state, one a line (for a script or a spreadsheet).")
def status(issue_file: Path, sandbox: bool, output: str, list_state: str | None) -> None:
    """Show who got ISSUE_FILE, who failed and who is uncertain, and what SendGrid's events reported."""
    run_status(issue_file, sandbox=sandbox, output=output, list_state=list_state)


@click.command(epilog="""\b
Examples:
  mailer cancel issues/2020-12-13.yaml
""")
@click.argument("issue_file", type=click.Path(path_type=Path, dir_okay=False))
def cancel(issue_file: Path) -> None:
    """Cancel a send of ISSUE_FILE scheduled with --at (SendGrid).

    Its recipients become `cancelled`, and a later send includes them again. SendGrid cancels no
    later than 10 minutes before the scheduled time: after that, cancel refuses (exit code 3) and
    the send goes out as scheduled.
    """
    run_cancel(issue_file)


def run_status(issue_file: Path, *, sandbox: bool, output: str = "text", list_state: str | None = None) -> None:
    import json

    from mailer.deliver.events import OK, complaint_level, engagement
    from mailer.deliver.ledger import FAILED, QUEUED, SENDING, UNCERTAIN, ledger_path, send_running
    from mailer.deliver.options import SendOptions, issue_key, open_ledger
    from mailer.schema import display_path

    config, slug = _issue_of(issue_file)
    path = ledger_path(config.state_dir)
    key = issue_key(slug, SendOptions(sandbox=sandbox))
    if not path.exists():
        if output == "json":
            click.echo(json.dumps({"issue": key, "sent": False}))
        else:
            click.echo(f"{key}: nothing sent yet (no ledger at {display_path(path)})")
        return
    with open_ledger(config, key, claim=False) as ledger:
        counts = ledger.counts(key)
        rows = ledger.rows(key, [FAILED, UNCERTAIN])
        schedules = ledger.active_schedules(key)
        events = engagement(ledger, key)
        last_command = ledger.last_command(key)
    running = send_running(config.state_dir, key)
    # A run killed between its batches leaves no `sending` row, nor rows for the readers it did not reach.
    unfinished = counts.get(SENDING, 0) + counts.get(QUEUED, 0) or (last_command and not last_command[2])
    resume = None
    if running is None and unfinished:
        resume = _resume_hint(last_command)
    if list_state is not None:
        for row in rows:
            if row.state == list_state:
                click.echo(row.email)
        return
    if output == "json":
        click.echo(json.dumps({
            "issue": key, "sent": True, "states": counts, "events": events.as_dict() if events else None,
            "not_accepted": [{"email": row.email, "state": row.state, "error": row.error, "at": row.updated_at}
                             for row in rows],
            "scheduled": [{"batch": schedule_id, "at": at} for schedule_id, at in schedules],
            "running": running is not None, "resume": resume,
        }, ensure_ascii=False, indent=2))
        return
    click.echo(f"{key}:")
    click.echo(counts_table([(state, count) for state, count in counts.items()]))
    if running is not None:
        click.echo(f"A send of {key} is running now" + (f" (process {running})" if running else "")
                   + ": these counts change as it goes.")
    elif unfinished:
        sending, queued = counts.get(SENDING, 0), counts.get(QUEUED, 0)
        click.secho(f"No send of {key} is running: the last one stopped before it finished (a crash, Ctrl-C, an "
                    "outage).", fg="yellow")
        if sending:
            click.echo(f"  sending: {sending} were on their way when it stopped; they may have the issue, so the "
                       "next run counts them uncertain and does not send to them again (unless --resend-uncertain)")
        if queued:
            click.echo(f"  queued: {queued} not sent yet")
        if not sending and not queued:
            click.echo("  it was stopped between its batches: the readers it had not reached have no row yet")
        click.echo("The same command resumes, mailing nobody twice:" if last_command else
                   "The `mailer send … --live` it was started with resumes it, mailing nobody twice.")
        if last_command:
            click.echo(f"  {resume}")
    # One line per state and reason, not per recipient: 1,000 uncertain are one line.
    groups = Counter((row.state, row.error or "") for row in rows)
    for (state, error), count in sorted(groups.items(), key=lambda item: (-item[1], item[0]))[:STATUS_ROWS]:
        example = next(row.email for row in rows if (row.state, row.error or "") == (state, error))
        who = example if count == 1 else f"{count} recipients, e.g. {example}"
        click.echo(f"  {state:<9} {who}: {error}")
    if len(groups) > STATUS_ROWS:
        click.echo(f"  … and {len(groups) - STATUS_ROWS} more reasons (`mailer status --format json` lists them all)")
    for state in sorted({row.state for row in rows}):
        click.echo(f"  (`{command_line(list_state=state, output=None)}` prints the {state} addresses)")
    for schedule_id, at in schedules:
        click.echo(f"  scheduled for {at} (SendGrid batch {schedule_id}); `mailer cancel` cancels it")
    if events is None:
        click.echo("events: none received (mailer serve with SENDGRID_WEBHOOK_PUBLIC_KEY records them)")
        return
    rate = events.complaint_rate
    click.echo("events reported by SendGrid (readers):")
    click.echo(counts_table([("delivered", events.delivered), ("deferred", events.deferred),
                             ("bounced", events.bounced), ("dropped", events.dropped),
                             ("complaints", events.complaints), ("unsubscribes", events.unsubscribes),
                             ("unique opens", events.unique_opens), ("unique clicks", events.unique_clicks)]))
    click.echo("  opens are unreliable: Apple Mail's privacy protection opens every image, and many "
               "clients block them")
    if complaint_level(rate) not in (None, OK):
        click.secho(f"warning: {rate:.2%} of delivered readers reported this issue as spam (Gmail and Yahoo ask "
                    "for under 0.1 %, and a live send refuses above 0.3 %)", fg="yellow", err=True)


def _resume_hint(last_command: tuple[str, str, bool] | None) -> str | None:
    """The recorded command of the last live send, run from its folder when that is not this one."""
    if last_command is None:
        return None
    command, folder, _ = last_command
    if Path(folder).resolve() == Path.cwd().resolve():
        return command
    return f"cd {shlex.quote(folder)} && {command}"


def run_cancel(issue_file: Path) -> None:
    from mailer.deliver.cancel import cancel_schedules

    def told(at: str, cancelled: int) -> None:
        click.echo(f"Cancelled the send scheduled for {at}: {cancelled} recipient(s) will not receive it.")

    config, slug = _issue_of(issue_file)
    cancel_schedules(config, slug, lambda: backend_for("sendgrid", live=True),
                     status_command=f"mailer status {issue_file}", on_cancelled=told)


def _issue_of(issue_file: Path) -> tuple[Config, str]:
    """The workspace's settings and the issue's name in the ledger. The file is not built: what was sent, and a
    send scheduled, must show and be cancellable even when the file no longer builds (an edit under way). A file
    that is not there gets the build's own error, naming it."""
    from mailer.files import issue_slug

    if not issue_file.is_file():
        load_issue(issue_file)  # raises, with the usual words
    return workspace_of(issue_file), issue_slug(issue_file)

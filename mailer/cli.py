"""The `mailer` command: one thin function per command; the only place that prints or exits."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mailer.errors import ExitStatus, MailerError

EPILOG_BUILD = """\b
Examples:
  mailer build issues/2020-12-13.yaml
  mailer build issues/*.yaml --out build/
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mailer")
def cli() -> None:
    """Build a newsletter issue written in YAML into a responsive email, and deliver it.

    \b
    Quick start:
      mailer build issues/2020-12-13.yaml   # writes build/2020-12-13/email.html and email.txt

    Exit codes: 0 success, 1 bad input (nothing written or sent), 2 wrong usage,
    3 delivery failed, 130 interrupted.
    """


@cli.command(epilog=EPILOG_BUILD)
@click.argument("issue_files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the output (default: build/ in the workspace); each issue gets OUT/SLUG/.")
def build(issue_files: tuple[Path, ...], out_dir: Path | None) -> None:
    """Build ISSUE_FILES into email.html, email.txt and their images.

    Every file is checked before anything is written: if one has problems, all of them are
    listed and nothing is written.
    """
    from mailer.build import GMAIL_CLIP_BYTES, build_issue, write_build
    from mailer.config import find_workspace, load_config
    from mailer.errors import InputError
    from mailer.schema import display_path

    config = load_config(find_workspace(issue_files[0].parent))
    rendered, problems = [], []
    for path in issue_files:
        try:
            rendered.append(build_issue(path, config))
        except InputError as err:
            problems.extend(err.problems)
    if problems:
        raise InputError(problems)
    target_root = out_dir or config.build_dir
    for result in rendered:
        folder = target_root / result.issue.slug
        write_build(result, folder)
        size_kb = result.html_bytes / 1024
        headroom_kb = result.clip_headroom / 1024
        click.echo(f"{display_path(result.issue.source_path)} → {display_path(folder)}/")
        click.echo(f"  subject:   {result.subject}")
        click.echo(f"  preheader: {result.preheader}")
        if result.clip_headroom >= 0:
            verdict = f"{headroom_kb:.1f} KB below Gmail's {GMAIL_CLIP_BYTES // 1024} KB clipping limit"
        else:
            verdict = (f"{-headroom_kb:.1f} KB OVER Gmail's {GMAIL_CLIP_BYTES // 1024} KB clipping limit: "
                       "Gmail will hide the end of the email, unsubscribe link included")
        click.echo(f"  html:      {size_kb:.1f} KB ({verdict})")
        click.echo(f"  text:      {len(result.text.encode('utf-8')) / 1024:.1f} KB")


EPILOG_SEND = """\b
Examples:
  mailer send issues/2020-12-13.yaml --subscribers subscribers.csv              # dry run
  mailer send issues/2020-12-13.yaml --test-to me@example.com --live            # one real test message
  mailer send issues/2020-12-13.yaml --subscribers subscribers.csv --live       # everyone
  mailer send issues/2020-12-13.yaml --subscribers subscribers.csv --live \\
      --at "2026-11-29 08:00 Europe/Berlin"                                      # scheduled (SendGrid)
"""


@cli.command(epilog=EPILOG_SEND)
@click.argument("issue_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--subscribers", "subscribers_path", type=click.Path(path_type=Path, dir_okay=False),
              help="The subscribers CSV (columns: email, first_name, last_name, status, tags).")
@click.option("--live", is_flag=True, help="Really send. Without it, nothing leaves the machine (dry run).")
@click.option("--test-to", metavar="ADDRESS", help="Send one [TEST] message to ADDRESS only, never to the list.")
@click.option("--as", "as_email", metavar="EMAIL",
              help="With --test-to: use the data of this subscriber (default: the first one).")
@click.option("--backend", type=click.Choice(["sendgrid", "smtp"]),
              help="Delivery backend (default: from mailer.yaml).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation before a live send to the list.")
@click.option("--force", is_flag=True, help="Send even if the content changed since the last test send.")
@click.option("--at", "send_at", metavar="TIME",
              help='Schedule: "2026-11-29 08:00 Europe/Berlin" (SendGrid, ≤ 72 h ahead).')
@click.option("--sandbox", is_flag=True, help="SendGrid sandbox mode: requests are validated, nothing is delivered.")
@click.option("--rate", type=click.FloatRange(min=0.1), help="At most this many messages per second.")
@click.option("--workers", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Batches sent at once (SMTP always uses one connection).")
@click.option("--resend-uncertain", is_flag=True, help="Also send to recipients whose earlier delivery is uncertain.")
@click.option("--retry-failed", is_flag=True, help="Also retry recipients whose earlier delivery failed.")
@click.option("--segment", metavar="TAG", help="Only subscribers tagged TAG.")
@click.option("--skip-invalid", is_flag=True, help="Skip invalid CSV rows (listed) instead of refusing to send.")
@click.option("--encoding", metavar="NAME", help="The CSV's encoding when it is not UTF-8 (e.g. cp1252).")
def send(issue_file: Path, subscribers_path: Path | None, live: bool, test_to: str | None, as_email: str | None,
         backend: str | None, yes: bool, force: bool, send_at: str | None, sandbox: bool, rate: float | None,
         workers: int, resend_uncertain: bool, retry_failed: bool, segment: str | None, skip_invalid: bool,
         encoding: str | None) -> None:
    """Send ISSUE_FILE: a dry run unless --live.

    A dry run writes an outbox (.eml samples, a manifest line per recipient and, for SendGrid,
    the exact request bodies) under the state folder and sends nothing. A live send records every
    recipient in the ledger: running the same command again resumes, never mailing anyone twice.
    """
    from mailer import cli_send

    cli_send.run_send(
        issue_file, subscribers_path=subscribers_path, live=live, test_to=test_to, as_email=as_email,
        backend_name=backend, yes=yes, force=force, send_at=send_at, sandbox=sandbox, rate=rate, workers=workers,
        resend_uncertain=resend_uncertain, retry_failed=retry_failed, segment=segment, skip_invalid=skip_invalid,
        encoding=encoding)


@cli.command(epilog="""\b
Examples:
  mailer status issues/2020-12-13.yaml
""")
@click.argument("issue_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--sandbox", is_flag=True, help="Show the sandbox sends instead of the real ones.")
def status(issue_file: Path, sandbox: bool) -> None:
    """Show who got ISSUE_FILE, who failed and who is uncertain, from the ledger."""
    from mailer import cli_send

    cli_send.run_status(issue_file, sandbox=sandbox)


@cli.command(epilog="""\b
Examples:
  mailer cancel issues/2020-12-13.yaml
""")
@click.argument("issue_file", type=click.Path(path_type=Path, dir_okay=False))
def cancel(issue_file: Path) -> None:
    """Cancel a send of ISSUE_FILE scheduled with --at (SendGrid)."""
    from mailer import cli_send

    cli_send.run_cancel(issue_file)


def main(argv: list[str] | None = None) -> None:
    """Entry point: turn MailerError into a message and its exit code; Ctrl-C into 130."""
    try:
        code = cli.main(args=argv, prog_name="mailer", standalone_mode=False)
    except MailerError as err:
        click.secho(f"error: {err}", fg="red", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    sys.exit(code if isinstance(code, int) else ExitStatus.OK)


if __name__ == "__main__":
    main()

"""The `mailer` command: one thin function per command; the only place that prints or exits."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailer.errors import ExitStatus, MailerError

if TYPE_CHECKING:  # only for annotations: the commands import what they use, so --help stays fast
    from mailer.compose.build import RenderedIssue
    from mailer.config import Config

EPILOG_BUILD = """\b
Examples:
  mailer build issues/2020-12-13.yaml
  mailer build issues/*.yaml --out build/
  mailer build --all --out site/
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mailer")
def cli() -> None:
    """Build a newsletter issue written in YAML into a responsive email, and deliver it.

    \b
    Quick start:
      mailer preview                                    # watch every issue at http://127.0.0.1:8000/
      mailer check issues/2020-12-13.yaml               # what would embarrass you, before sending
      mailer build issues/2020-12-13.yaml               # writes build/2020-12-13/email.html and email.txt
      mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv   # a dry run

    Exit codes: 0 success, 1 bad input or check errors (nothing written or sent), 2 wrong usage,
    3 delivery (or a suppression pull) failed, 130 interrupted.
    """


@cli.command(epilog=EPILOG_BUILD)
@click.argument("issue_files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--all", "build_all", is_flag=True,
              help="Build the public web output of every issue in issues/: web versions, an archive "
                   "page (index.html) and an Atom feed (feed.xml), ready for any static host.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the output (default: build/ in the workspace, site/ with --all); "
                   "each issue gets OUT/SLUG/.")
def build(issue_files: tuple[Path, ...], build_all: bool, out_dir: Path | None) -> None:
    """Build ISSUE_FILES into email.html, email.txt, the web version and their images.

    Every file is checked before anything is written: if one has problems, all of them are
    listed and nothing is written.
    """
    from mailer.config import find_workspace, load_config

    if not issue_files and not build_all:
        raise click.UsageError("Missing argument 'ISSUE_FILES...': give the issue files to build, or --all")
    if issue_files and build_all:
        raise click.UsageError("give either ISSUE_FILES or --all, not both")
    config = load_config(find_workspace(issue_files[0].parent if issue_files else Path.cwd()))
    if build_all:
        issue_files = tuple(sorted(config.issues_dir.glob("*.yaml")))
        if not issue_files:
            from mailer.errors import ConfigError

            raise ConfigError(f"{config.issues_dir}: no issue files (*.yaml) to build\n"
                              "    hint: write one first; the README's issue format is a complete example")
    rendered = _build_every_file(issue_files, config)
    if build_all:
        _write_site(rendered, config, out_dir or config.workspace / "site")
    else:
        _write_builds(rendered, out_dir or config.build_dir)


def _build_every_file(issue_files: tuple[Path, ...], config: Config) -> list[RenderedIssue]:
    """Build every file before writing any; raise one InputError listing every file's problems."""
    from mailer.compose.build import build_issue
    from mailer.errors import InputError

    rendered, problems = [], []
    for path in issue_files:
        try:
            rendered.append(build_issue(path, config, web=True))
        except InputError as err:
            problems.extend(err.problems)
    if problems:
        raise InputError(problems)
    return rendered


def _write_builds(rendered: list[RenderedIssue], target_root: Path) -> None:
    from mailer.compose.build import GMAIL_CLIP_BYTES, write_build
    from mailer.schema import display_path

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
        click.echo(f"  web:       {display_path(folder / 'index.html')} (the \"view in browser\" page)")


def _write_site(rendered: list[RenderedIssue], config: Config, out_dir: Path) -> None:
    from mailer.schema import display_path
    from mailer.web.site import archive_entries, write_site

    write_site(rendered, config, out_dir)
    shown = display_path(out_dir)
    click.echo(f"{len(rendered)} {'issue' if len(rendered) == 1 else 'issues'} → {shown}/")
    entries = archive_entries(rendered, config)
    width = max(len(entry.slug) for entry in entries) + 1
    for entry in entries:
        click.echo(f"  {entry.date.isoformat()}  {entry.slug + '/':<{width}}  {entry.subject}")
    click.echo(f"  archive: {shown}/index.html")
    click.echo(f"  feed:    {shown}/feed.xml")
    click.echo(f"Publish {shown}/ at {config.web_base_url}: the emails' \"view in browser\" links point there.")


EPILOG_CHECK = """\b
Examples:
  mailer check issues/2020-12-13.yaml --subscribers subscribers.csv
  mailer check                                  # every issue in issues/
  mailer check issues/ --format json            # machine-readable, for CI
  mailer check issues/2020-12-13.yaml --links   # also ask every link whether it answers
"""


@cli.command(epilog=EPILOG_CHECK)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--subscribers", "subscribers_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also check this subscribers CSV: invalid rows, duplicates, unsubscribed and suppressed addresses.")
@click.option("--encoding", metavar="NAME", help="The CSV's encoding when it is not UTF-8 (e.g. cp1252).")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people (grouped by severity, coloured on a terminal); json for CI (see the README).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1 when there are any).")
@click.option("--links", is_flag=True, help="Also check that every link answers (HEAD, then GET): needs the network.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds to wait for each link with --links.")
def check(paths: tuple[Path, ...], subscribers_path: Path | None, encoding: str | None, output: str, strict: bool,
          links: bool, timeout: float) -> None:
    """Find what would embarrass you before anyone receives it.

    Checks each issue in PATHS (files, or folders of *.yaml; default: issues/) and the email built
    from it: size against Gmail's clipping limit, images, links, mojibake and other text problems,
    the unsubscribe link and postal address, layout markup, and, with --subscribers, the list.
    Exit code 0 when there is no error (warnings allowed), 1 when there is one.
    """
    from mailer.cli import check as cli_check

    cli_check.run_check(paths, subscribers_path=subscribers_path, encoding=encoding, output=output, strict=strict,
                        links=links, timeout=timeout)


EPILOG_PREVIEW = """\b
Examples:
  mailer preview                                  # every issue, at http://127.0.0.1:8000/
  mailer preview issues/2020-12-13.yaml --open    # and open that issue in the browser
  mailer preview --subscribers subscribers.csv --as ada.lovelace@example.com
  mailer preview --port 8080
"""


@cli.command(epilog=EPILOG_PREVIEW)
@click.argument("issue_file", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default web browser.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but this machine's own (127.0.0.1, localhost, ::1) shows "
                   "the preview, sample reader included, to other machines.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--subscribers", "subscribers_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Subscribers CSV to take the sample reader from (default: an example reader, Ada).")
@click.option("--as", "as_email", metavar="EMAIL",
              help="Preview as this subscriber from --subscribers (default: the file's first subscribed reader).")
def preview(issue_file: Path | None, open_browser: bool, host: str, port: int, subscribers_path: Path | None,
            as_email: str | None) -> None:
    """Serve a live preview of every issue at a local address, newest first.

    Each issue is shown at desktop and phone widths and in dark mode, with the headers a reader
    sees, the plain-text part, the HTML size against Gmail's clipping limit and checks. The page
    updates within a second of saving the issue, a layout or mailer.yaml; problems are shown in
    the page. Per-recipient fields are filled as for a sample reader. Stop with Ctrl-C.
    """
    from urllib.parse import quote

    from mailer.config import find_workspace
    from mailer.schema import display_path
    from mailer.web.preview import EXAMPLE_READER, LOOPBACK_HOSTS, create_server, sample_reader

    if as_email and not subscribers_path:
        raise click.UsageError("--as needs --subscribers FILE, the file to find the reader in")
    workspace = find_workspace(issue_file.parent if issue_file else Path.cwd())
    reader = sample_reader(subscribers_path, as_email) if subscribers_path else EXAMPLE_READER
    server = create_server(workspace, host=host, port=port, reader=reader,
                           extra_issues=(issue_file,) if issue_file else ())
    try:
        url = server.url
        if server.host in ("0.0.0.0", "::"):
            url = f"http://127.0.0.1:{server.port}/" if server.host == "0.0.0.0" else f"http://[::1]:{server.port}/"
        if issue_file:
            url += f"preview/{quote(issue_file.stem)}"
        if host not in LOOPBACK_HOSTS:
            click.secho(f"warning: listening on {host}: other machines that can reach this one can see the "
                        f"preview, including the sample reader {reader.display}", fg="yellow", err=True)
        count = len(server.app.preview.issue_paths())
        click.echo(f"Previewing {count} {'issue' if count == 1 else 'issues'} from "
                   f"{display_path(workspace / 'issues')}/ at {url}")
        click.echo(f"Reading as {reader.display}. Pages update when you save. Press Ctrl-C to stop.")
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        click.echo("Preview stopped.")
    finally:
        server.server_close()


EPILOG_SEND = """\b
Examples:
  mailer send issues/2020-12-13.yaml --subscribers subscribers.csv              # dry run
  mailer send issues/2020-12-13.yaml --test-to me@example.com --live            # one real test message
  mailer send issues/2020-12-13.yaml --subscribers subscribers.csv --live       # everyone
  mailer send issues/2020-12-13.yaml --subscribers subscribers.csv --live \\
      --at "2026-11-29 08:00 Europe/Berlin"                                      # scheduled (SendGrid)

\b
Environment (a live send; a dry run needs none of it):
  SENDGRID_API_KEY           the SendGrid API key (Mail Send permission)
  MAILER_SMTP_URL            --backend smtp: smtp://user:pass@host:587 (STARTTLS), smtps://user:pass@host:465
  MAILER_UNSUBSCRIBE_SECRET  signs each reader's unsubscribe link
  SSL_CERT_FILE              a private CA's certificate, when the SMTP server's is signed by one
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
@click.option("--force", is_flag=True,
              help="Send even if mailer check finds errors or the content changed since the last test send.")
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
    from mailer.cli import send as cli_send

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
    from mailer.cli import send as cli_send

    cli_send.run_status(issue_file, sandbox=sandbox)


@cli.command(epilog="""\b
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
    from mailer.cli import send as cli_send

    cli_send.run_cancel(issue_file)


EPILOG_SUPPRESSIONS = """\b
Examples:
  mailer suppressions pull                               # download SendGrid's lists
  mailer suppressions list                               # how many, and when they were pulled
  mailer suppressions list --email ada@example.com       # why one address is skipped
"""


@cli.group(epilog=EPILOG_SUPPRESSIONS)
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
""")
def suppressions_pull() -> None:
    """Download every SendGrid suppression list and replace the local copy.

    Needs SENDGRID_API_KEY with the "Suppressions" read scope. Every page of every list is
    fetched before anything is written: a pull that fails keeps the previous list.
    """
    from mailer.cli import suppressions as cli_suppressions

    cli_suppressions.run_pull()


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
    from mailer.cli import suppressions as cli_suppressions

    cli_suppressions.run_list(email, show_all)


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

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

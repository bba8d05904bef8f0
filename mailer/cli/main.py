"""The `mailer` command group and its entry point: the one place that turns errors into messages and exit codes."""

from __future__ import annotations

import gc
import sys

import click

from mailer import children
from mailer.cli.author import cards, new
from mailer.cli.build import build
from mailer.cli.check import check
from mailer.cli.doctor import doctor
from mailer.cli.environment import read_environment
from mailer.cli.preview import preview
from mailer.cli.report import report
from mailer.cli.send import send
from mailer.cli.serve import serve
from mailer.cli.status import cancel, status
from mailer.cli.subscribers import subscribers
from mailer.cli.suppressions import suppressions
from mailer.environment import Environment
from mailer.errors import ExitStatus, MailerError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mailer")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Build a newsletter issue written in YAML into a responsive email, and deliver it.

    \b
    Quick start:
      mailer new                                        # next Sunday's issue from the latest one
      mailer cards issues/2026-12-06.yaml               # its cards' titles, from their pages
      mailer preview                                    # watch every issue at http://127.0.0.1:8000/
      mailer check issues/2020-12-13.yaml               # what would embarrass you, before sending
      mailer doctor                                     # the sending domain's SPF, DKIM and DMARC
      mailer build issues/2020-12-13.yaml               # writes build/2020-12-13/email.html and email.txt
      mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv   # a dry run
      mailer report issues/2020-12-13.yaml              # per card: how many people clicked

    Exit codes: 0 success, 1 bad input or check errors (nothing written or sent), 2 wrong usage,
    3 delivery, a suppression pull or (cards) a page failed, 130 interrupted.
    """
    if not isinstance(ctx.obj, Environment):
        ctx.obj = read_environment()  # the one read of the environment: every command is handed this


for command in (new, cards, build, check, doctor, preview, send, status, report, cancel, suppressions, subscribers,
                serve):
    cli.add_command(command)


def main(argv: list[str] | None = None, *, environment: Environment | None = None) -> None:
    """Entry point: the one place that exits. A MailerError becomes its message and exit code, Ctrl-C 130, and
    what a command returns (an ExitStatus: `mailer send` returns 3 when some readers were not reached) the
    process's exit code; a command that returns nothing succeeded. `environment`: the settings the environment
    would give (a test's own); None: read from the process's environment."""
    gc.set_threshold(*children.COLLECTOR_THRESHOLDS)  # a send's rows and recipients make no cycles
    try:
        code = cli.main(args=argv, prog_name="mailer", standalone_mode=False, obj=environment)
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

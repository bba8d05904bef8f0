"""`mailer doctor`: the sending domain (or a received message) checked as a mailbox provider checks it; the
environment (MAILER_DNS, the SendGrid key, the SMTP URL) is read here and handed in; the rows are rendered as a
table or JSON."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailer.cli.environment import environment
from mailer.errors import ExitStatus

if TYPE_CHECKING:  # the checks are imported when the command runs, so --help stays fast
    from mailer.checks.dns import Resolver
    from mailer.checks.rows import DoctorReport

JSON_VERSION = 1
_STYLE = {"pass": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"), "info": ("·", "cyan"),
          "unknown": ("?", "magenta")}

EPILOG = """\b
Examples:
  mailer doctor                                  # the From domain in mailer.yaml, as Gmail would see it
  mailer doctor --format json                    # the same rows for a script or CI
  mailer doctor --backend smtp --dkim-selector mail   # an SMTP server that signs with selector `mail`
  mailer doctor --eml test-send.eml              # a test send as it arrived (saved from your inbox)

\b
Environment:
  MAILER_DNS          HOST:PORT of the one DNS server to ask (default: the system's resolver)
  SENDGRID_API_KEY    with the sendgrid backend: also ask SendGrid which domains it has authenticated
  MAILER_SMTP_URL     with the smtp backend: the server whose address SPF must allow

\b
Exit codes: 0 nothing failed (warnings allowed), 1 a check failed, 3 something could not be checked
(no answer from DNS or SendGrid) and nothing failed.
"""


@click.command(epilog=EPILOG)
@click.option("--eml", "eml_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Check a message as received (saved from the inbox: Gmail's \"Download original\") instead.")
@click.option("--trust-authserv", "trusted", multiple=True, metavar="ID",
              help="With --eml: the receiving server's authserv-id (mx.google.com) whose Authentication-Results "
                   "are believed; default: the server of the first Received hop.")
@click.option("--backend", type=click.Choice(["sendgrid", "smtp"]), help="Check for this backend (default: from "
              "mailer.yaml).")
@click.option("--dkim-selector", "selectors", multiple=True, metavar="NAME", callback=lambda _c, _p, names: tuple(
                  _selector(name) for name in names),
              help="A DKIM selector to look up (repeatable); default: SendGrid's s1 and s2.")
@click.option("--return-path", metavar="HOST", help="The envelope's domain, SendGrid's em1234.example.com CNAME "
              "(default: asked of SendGrid when SENDGRID_API_KEY is set).")
@click.option("--issue", "issue_path", type=click.Path(path_type=Path, dir_okay=False),
              help="The issue whose built message is checked for one-click unsubscribe (default: the latest).")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=60), default=3.0, show_default=True,
              help="Seconds to wait for each DNS answer.")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a table for people; json: the rows for a script (docs/mailer-doctor.md).")
def doctor(eml_path: Path | None, trusted: tuple[str, ...], backend: str | None, selectors: tuple[str, ...],
           return_path: str | None, issue_path: Path | None, timeout: float, output: str) -> None:
    """Check the sending domain's SPF, DKIM, DMARC, MX and BIMI as Gmail, Yahoo and Microsoft do.

    Each row passes, warns or fails, with the fix. With the sendgrid backend and SENDGRID_API_KEY set,
    SendGrid's own view of the domain is shown too; the last rows are the bulk-sender rules.
    """
    from mailer.cli.environment import workspace_config

    resolver = resolver_from_env(timeout=timeout)
    if eml_path is not None:
        from mailer.checks.received import check_received

        report = check_received(eml_path, resolver, trusted=trusted)
    else:
        from mailer.checks.doctor import run_doctor, sending_of

        config = workspace_config(Path.cwd())
        name = backend or config.backend
        report = run_doctor(config, sending_of(config, backend=name, smtp_host=smtp_host_from_env(name),
                                               dkim_selectors=selectors, return_path=return_path),
                            resolver, sendgrid=sendgrid_from_env(name), issue_path=issue_path)
    if output == "json":
        import json

        click.echo(json.dumps({"version": JSON_VERSION, **report.to_dict()}, ensure_ascii=False, indent=2))
    else:
        print_report(report)
    sys.exit(exit_status(report))


def exit_status(report: DoctorReport) -> int:
    if report.failed:
        return ExitStatus.INPUT_ERROR
    return ExitStatus.DELIVERY_FAILED if report.unknown else ExitStatus.OK


def resolver_from_env(*, timeout: float) -> Resolver:
    """The resolver every lookup goes through: MAILER_DNS's server, or the system's."""
    from mailer.checks.dns import Resolver, parse_dns_server

    value = environment().dns.strip()
    return Resolver(parse_dns_server(value) if value else None, timeout=timeout)


def smtp_host_from_env(backend: str) -> str | None:
    url = environment().smtp_url
    if backend != "smtp" or not url.strip():
        return None
    from mailer.deliver.backends.smtp import smtp_settings

    return smtp_settings(url).host


def sendgrid_from_env(backend: str):  # noqa: ANN201 - a SendGridAccess, or None
    """SendGrid's key and host when the backend is sendgrid and a key is set (never shown anywhere)."""
    env = environment()
    if backend != "sendgrid" or not env.sendgrid_api_key.strip():
        return None
    from mailer.checks.doctor import SendGridAccess
    from mailer.deliver.backends.sendgrid import api_host, api_key

    return SendGridAccess(key=api_key(env.sendgrid_api_key), host=api_host(env.sendgrid_api_host))


def print_report(report: DoctorReport) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=False)
    groups = {"sendgrid": "SendGrid", "domain": f"{report.subject}", "bulk": "Bulk-sender rules",
              "received": f"{report.subject}"}
    for group, heading in groups.items():
        rows = [row for row in report.rows if row.group == group]
        if not rows:
            continue
        table = Table(title=Text(heading, style="bold"), title_justify="left", show_lines=False, expand=False)
        table.add_column("", no_wrap=True)
        table.add_column("check", max_width=24)
        if group == "bulk":
            table.add_column("asked by", max_width=9)
        table.add_column("found, and the fix")
        for row in rows:
            mark, colour = _STYLE.get(row.status, ("?", "white"))
            # Text, never markup: a zone's record or a header may hold [brackets] rich would read as its own.
            said = Text(row.detail)
            if row.fix:
                said.append("\nfix: ", style="bold")
                said.append(row.fix)
            cells = [Text(mark, style=colour), Text(row.title, style=colour)]
            if group == "bulk":
                cells.append(Text("\n".join(row.providers)))
            table.add_row(*cells, said)
        console.print(table)
    failed, warned, unknown = report.count("fail"), report.count("warn"), report.count("unknown")
    summary = f"{failed} failed, {warned} warnings, {unknown} not checked, {report.count('pass')} passed"
    if failed:
        console.print(Text(f"✗ {summary}: fix the rows marked ✗", style="bold red"))
    elif unknown:
        console.print(Text(f"? {summary}: run again once DNS answers", style="bold magenta"))
    else:
        console.print(Text(f"✓ {summary}", style="bold green"))


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")


def _selector(name: str) -> str:
    """A DKIM selector as DNS takes it (RFC 6376 3.1): labels of letters, digits, '-' and '_', dot-separated."""
    from mailer.addresses import printable

    if not name or len(name) > 200 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise click.BadParameter(f"'{printable(name)}' is not a DKIM selector: it is the first part of "
                                 "NAME._domainkey.example.com, letters, digits and '-' (e.g. s1, mail, google)",
                                 param_hint="--dkim-selector")
    return name

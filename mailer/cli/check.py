"""`mailer check`: which files, then the findings for people (grouped, coloured) or as JSON."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailer.errors import ExitStatus, InputError, Problem

if TYPE_CHECKING:  # the command imports the checks when it runs, so --help stays fast
    from mailer.checks.check import CheckReport
    from mailer.config import Config

JSON_VERSION = 1
_COLOURS = {"error": "red", "warning": "yellow", "info": "cyan"}
_TITLES = {"error": "errors", "warning": "warnings", "info": "info"}


EPILOG_CHECK = """\b
Examples:
  mailer check issues/2020-12-13.yaml --subscribers subscribers.example.csv
  mailer check                                  # every issue in issues/
  mailer check issues/ --format json            # machine-readable, for CI
  mailer check issues/2020-12-13.yaml --links   # also ask every link whether it answers
"""


@click.command(epilog=EPILOG_CHECK)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--subscribers", "subscribers_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also check this subscribers CSV: invalid rows, duplicates, unsubscribed and suppressed addresses.")
@click.option("--encoding", metavar="NAME", help="The CSV's encoding when it is not UTF-8 (e.g. cp1252).")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people (grouped by severity, coloured on a terminal); json for CI (docs/mailer-check.md).")
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
    run_check(paths, subscribers_path=subscribers_path, encoding=encoding, output=output, strict=strict,
              links=links, timeout=timeout)


def issue_files(paths: tuple[Path, ...], config: Config) -> list[Path]:
    """The issue files named: files as given, folders for the *.yaml in them; none means issues/."""
    from mailer.schema import display_path

    found: list[Path] = []
    problems: list[Problem] = []
    for path in paths or (config.issues_dir,):
        if path.is_dir():
            inside = sorted(path.glob("*.yaml"))
            if not inside:
                problems.append(Problem(display_path(path), "no issue files (*.yaml) in this folder"))
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            problems.append(Problem(display_path(path), "no such file or folder", hint="check the path"))
    if problems:
        raise InputError(problems)
    return found


def run_checks(paths: tuple[Path, ...], *, subscribers_path: Path | None = None, encoding: str | None = None,
               links: bool = False, timeout: float = 10.0) -> list[CheckReport]:
    from mailer.checks.check import check_issue, check_subscribers, check_workspace
    from mailer.cli.environment import reading_mail, workspace_config

    config = reading_mail(workspace_config(_start(paths)))
    reports = [check_issue(path, config) for path in issue_files(paths, config)]
    reports.append(check_workspace(config))
    if subscribers_path is not None:
        reports.append(check_subscribers(subscribers_path, encoding=encoding, suppressed=_suppressed(config),
                                         cache_dir=config.state_dir / "lists"))
    if links:
        from mailer.checks.check import check_links

        check_links([report for report in reports if report.kind == "issue"], timeout=timeout)
    return reports


def _start(paths: tuple[Path, ...]) -> Path:
    if not paths:
        return Path.cwd()
    first = paths[0]
    return first if first.is_dir() else first.parent


def _suppressed(config: Config) -> Callable[[list[str]], dict[str, str]]:
    """Look addresses up in the local suppression list (empty until `mailer suppressions pull`)."""
    from mailer.deliver.suppressions import screen_recipients

    def lookup(keys: list[str]) -> dict[str, str]:
        reasons = screen_recipients(config.state_dir, keys, keyed=True).reasons
        return {key: reason.removeprefix("suppressed: ") for key, reason in reasons.items()}

    return lookup


def run_check(paths: tuple[Path, ...], *, subscribers_path: Path | None, encoding: str | None, output: str,
              strict: bool, links: bool, timeout: float) -> None:
    reports = run_checks(paths, subscribers_path=subscribers_path, encoding=encoding, links=links, timeout=timeout)
    failed = any(report.failed(strict=strict) for report in reports)
    if output == "json":
        import json

        click.echo(json.dumps(to_json(reports, strict=strict), ensure_ascii=False, indent=2))
    else:
        print_reports(reports, strict=strict)
    if failed:
        sys.exit(ExitStatus.INPUT_ERROR)


def to_json(reports: list[CheckReport], *, strict: bool) -> dict[str, Any]:
    """The documented, stable JSON shape (docs/mailer-check.md: "--format json")."""
    return {
        "version": JSON_VERSION,
        "ok": not any(report.failed(strict=strict) for report in reports),
        "strict": strict,
        "errors": sum(report.count("error") for report in reports),
        "warnings": sum(report.count("warning") for report in reports),
        "info": sum(report.count("info") for report in reports),
        "reports": [report.to_dict() for report in reports],
    }


def print_reports(reports: list[CheckReport], *, strict: bool) -> None:
    from mailer.checks.check import SEVERITIES

    for report in reports:
        click.secho(_heading(report), bold=True)
        findings = report.sorted_findings()
        for severity in SEVERITIES:
            group = [finding for finding in findings if finding.severity == severity]
            if not group:
                continue
            shown = "errors (--strict)" if severity == "warning" and strict else _TITLES[severity]
            click.secho(f"  {shown} ({len(group)})", fg=_COLOURS[severity], bold=True)
            for finding in group:
                where = f"{finding.where}: " if finding.where else ""
                click.echo("    " + click.style(where, fg=_COLOURS[severity]) + finding.message)
                if finding.hint:
                    click.secho(f"        hint: {finding.hint}", dim=True)
        links = report.facts.get("links_checked")
        if links and links.get("network_unreachable"):
            click.echo(f"  links answered: none: network unreachable, {links['unchecked']} not checked"
                       + (f" ({links['ok']} local ok, {links['broken']} local broken)"
                          if links["ok"] or links["broken"] else ""))
        elif links:
            click.echo(f"  links answered: {links['ok']} ok, {links['broken']} broken, "
                       f"{links['unchecked']} not checked")
        passed = report.passed
        if passed:
            click.secho("  ✓ " + ", ".join(_passed_label(report, name) for name in passed), fg="green")
    errors = sum(report.count("error") for report in reports)
    warnings = sum(report.count("warning") for report in reports)
    failing = errors + (warnings if strict else 0)
    summary = f"{_count(errors, 'error')}, {_count(warnings, 'warning')}"
    if errors:
        click.secho(f"✗ {summary}: fix the errors before sending (mailer send refuses to send while there are any)",
                    fg="red", bold=True)
    elif failing:
        click.secho(f"✗ {summary}: --strict counts warnings as errors (mailer send stops only on errors)",
                    fg="red", bold=True)
    else:
        click.secho(f"✓ {summary}: ready to send", fg="green", bold=True)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun if number == 1 else noun + 's'}"


def _heading(report: CheckReport) -> str:
    if report.kind == "issue" and report.rendered is not None:
        return f"{report.subject} — {report.rendered.subject}"
    if report.kind == "workspace":
        return f"{report.subject} and the layouts"
    if report.kind == "subscribers" and "subscribed" in report.facts:
        return f"{report.subject} — {report.facts['subscribed']} to mail"
    return report.subject


def _passed_label(report: CheckReport, name: str) -> str:
    from mailer.checks.check import CHECKS

    label = CHECKS[name].lower()
    if name == "size" and "html_part_bytes" in report.facts:
        from mailer.deliver.message import kilobytes

        return f"{label} ({kilobytes(report.facts['html_part_bytes'])} of HTML as sent)"
    return label


def error_listing(errors: list[Any], *, most: int = 20) -> tuple[str, str]:
    """('3 errors', the first `most` of them a line each): what a refused send or publish shows of check's errors."""
    listing = "\n".join(f"  {finding.where}: {finding.message}" for finding in errors[:most])
    if len(errors) > most:
        listing += f"\n  … and {len(errors) - most} more"
    return f"{len(errors)} {'error' if len(errors) == 1 else 'errors'}", listing

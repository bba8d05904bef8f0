"""`mailer build`: one issue's email and web version, or (--all) the public site with archive and feed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # only for annotations: the command imports what it uses, so --help stays fast
    from mailer.checks.drafts import Standing
    from mailer.compose.build import RenderedIssue
    from mailer.config import Config

EPILOG_BUILD = """\b
Examples:
  mailer build issues/2020-12-13.yaml
  mailer build issues/*.yaml --out build/
  mailer build --all --out site/
"""


@click.command(epilog=EPILOG_BUILD)
@click.argument("issue_files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--all", "build_all", is_flag=True,
              help="Build the public web output of every issue in issues/: web versions, an archive "
                   "page (index.html) and an Atom feed (feed.xml), ready for any static host.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the output (default: build/ in the workspace, site/ with --all); "
                   "each issue gets OUT/SLUG/.")
@click.option("--force", is_flag=True,
              help="With --all: publish issues although mailer check finds errors in them (a typo in a "
                   "placeholder), and despite errors in the layouts or settings. Never an issue with unfinished "
                   "copy (a TODO), dated after today and not sent, or that does not build.")
def build(issue_files: tuple[Path, ...], build_all: bool, out_dir: Path | None, force: bool) -> None:
    """Build ISSUE_FILES into email.html, email.txt, the web version and their images.

    Every file is checked before anything is written: if one has problems, all of them are
    listed and nothing is written. With --all, only finished issues are published (sent, or dated
    today or earlier without errors); drafts are listed as skipped, with why.
    """
    from mailer.cli.environment import workspace_config

    if not issue_files and not build_all:
        raise click.UsageError("Missing argument 'ISSUE_FILES...': give the issue files to build, or --all")
    if issue_files and build_all:
        raise click.UsageError("give either ISSUE_FILES or --all, not both")
    config = workspace_config(issue_files[0].parent if issue_files else Path.cwd())
    if build_all:
        issue_files = tuple(sorted(config.issues_dir.glob("*.yaml")))
        if not issue_files:
            from mailer.errors import ConfigError

            raise ConfigError(f"{config.issues_dir}: no issue files (*.yaml) to build\n"
                              "    hint: write one first; docs/issue-format.md is a complete example")
        _publish(issue_files, config, out_dir or config.workspace / "site", force=force)
    else:
        _write_builds(_build_every_file(issue_files, config), out_dir or config.build_dir, config)


def _publish(issue_files: tuple[Path, ...], config: Config, out_dir: Path, *, force: bool) -> None:
    """The public web output: the finished issues; each draft skipped with why, and never blocking the others."""
    from datetime import date

    from mailer.checks.check import check_issue, check_workspace, errors_in, unbuilt_report
    from mailer.checks.drafts import issue_standing, sent_issues
    from mailer.cli.check import error_listing
    from mailer.compose.build import build_issue
    from mailer.errors import MailerError
    from mailer.schema import display_path

    workspace_errors = errors_in([check_workspace(config)])
    if workspace_errors:  # the layouts and settings are every issue's: they stop all of it
        count, listing = error_listing(workspace_errors)
        if not force:
            raise MailerError(f"mailer check found {count} in the layouts or settings; nothing was published:\n"
                              f"{listing}\n    hint: mailer check explains each one; fix them, or pass --force "
                              "to publish anyway")
        click.secho(f"warning: publishing despite {count} in the layouts or settings (--force):\n{listing}",
                    fg="yellow", err=True)
    sent, today = sent_issues(config), date.today()
    published: list[RenderedIssue] = []
    skipped: list[Standing] = []
    unbuilt_sent: list[Standing] = []
    for path in issue_files:
        try:
            rendered = build_issue(path, config, web=True)
            report = check_issue(path, config, rendered=rendered)
        except MailerError as err:
            report = unbuilt_report(path, err)
        standing = issue_standing(path, config, today=today, sent=sent, report=report)
        if standing.sent and not standing.builds:
            unbuilt_sent.append(standing)
        elif not standing.draft:
            published.append(standing.report.rendered)  # type: ignore[arg-type]  # it builds
        elif force and standing.forceable:
            click.secho(f"warning: publishing {display_path(path)} despite {standing.why} (--force)", fg="yellow",
                        err=True)
            published.append(standing.report.rendered)  # type: ignore[arg-type]
        else:
            skipped.append(standing)
    if unbuilt_sent:
        raise MailerError("\n".join(
            f"{display_path(s.path)}: was sent, so its web version must be published, but it does not build: "
            + "; ".join(f"{f.where}: {f.message}" for f in s.report.sorted_findings()[:3]) for s in unbuilt_sent)
            + "\n    hint: readers have its \"view in browser\" link; fix the file (mailer check names each "
            "problem). Nothing was published")
    if not published:
        raise MailerError("no finished issue to publish: every issue in "
                          f"{display_path(config.issues_dir)}/ is a draft; nothing was published\n"
                          + "".join(f"  skipped {display_path(s.path)}: {s.why}\n" for s in skipped)
                          + "    hint: an issue is published once it is sent, or once its date has come and "
                          "mailer check finds no error in it")
    _write_site(published, config, out_dir, skipped)


def _remove_published_draft(folder: Path) -> Path | None:
    """A draft's web version left by an earlier build (as --force once published drafts): removed."""
    import shutil

    if folder.is_dir() and not folder.is_symlink() and (folder / "index.html").is_file():
        shutil.rmtree(folder)
        return folder
    return None


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


def _write_builds(rendered: list[RenderedIssue], target_root: Path, config: Config) -> None:
    from mailer.compose.build import write_build
    from mailer.deliver.message import email_size, kilobytes
    from mailer.schema import display_path

    for result in rendered:
        folder = target_root / result.issue.slug
        write_build(result, folder)
        size = email_size(result, config)  # the HTML part as sent: what Gmail clips on, as check and send say
        click.echo(f"{display_path(result.issue.source_path)} → {display_path(folder)}/")
        click.echo(f"  subject:   {result.subject}")
        click.echo(f"  preheader: {result.preheader}")
        click.echo(f"  html:      {size.describe()}")
        click.echo(f"  text:      {kilobytes(size.text_part)}")
        click.echo(f"  web:       {display_path(folder / 'index.html')} (the \"view in browser\" page)")


def _write_site(rendered: list[RenderedIssue], config: Config, out_dir: Path, skipped: list[Standing]) -> None:
    from mailer.schema import display_path
    from mailer.web.site import archive_entries, write_site

    write_site(rendered, config, out_dir)
    shown = display_path(out_dir)
    click.echo(f"{len(rendered)} {'issue' if len(rendered) == 1 else 'issues'} → {shown}/")
    entries = archive_entries(rendered, config)
    width = max(len(entry.slug) for entry in entries) + 1
    for entry in entries:
        click.echo(f"  {entry.date.isoformat()}  {entry.slug + '/':<{width}}  {entry.subject}")
    if skipped:
        click.echo(f"  skipped, not published ({len(skipped)} {'draft' if len(skipped) == 1 else 'drafts'}):")
    for standing in skipped:
        # The web output holds finished issues only: a draft published by an earlier build goes.
        removed = _remove_published_draft(out_dir / standing.path.stem)
        # A draft in the making (its date to come, a TODO left) is expected; one that is due is not.
        click.secho(f"    {display_path(standing.path)}: {standing.why}"
                    + (f" (removed {display_path(removed)}/, published before)" if removed else ""),
                    fg=None if standing.future or standing.unfinished else "yellow")
    click.echo(f"  archive: {shown}/index.html")
    click.echo(f"  feed:    {shown}/feed.xml")
    click.echo(f"Publish {shown}/ at {config.web_base_url}: the emails' \"view in browser\" links point there.")

"""`mailer build`: one issue's email and web version, or (--all) the public site with archive and feed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # only for annotations: the command imports what it uses, so --help stays fast
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
              help="With --all: publish although mailer check finds errors (a leftover TODO, a typo in a placeholder).")
def build(issue_files: tuple[Path, ...], build_all: bool, out_dir: Path | None, force: bool) -> None:
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
        _refuse_to_publish_check_errors(issue_files, rendered, config, force=force)
        _write_site(rendered, config, out_dir or config.workspace / "site")
    else:
        _write_builds(rendered, out_dir or config.build_dir, config)


def _refuse_to_publish_check_errors(issue_files: tuple[Path, ...], rendered: list[RenderedIssue], config: Config, *,
                                    force: bool) -> None:
    """The public site gets what a send gets: mailer check's errors stop it, unless --force."""
    from mailer.checks.check import check_issue, check_workspace, errors_in
    from mailer.cli.check import error_listing
    from mailer.errors import MailerError

    reports = [check_issue(path, config, rendered=result) for path, result in zip(issue_files, rendered, strict=True)]
    errors = errors_in([*reports, check_workspace(config)])
    if not errors:
        return
    count, listing = error_listing(errors)
    if force:
        click.secho(f"warning: publishing despite {count} found by mailer check (--force):\n{listing}",
                    fg="yellow", err=True)
        return
    raise MailerError(f"mailer check found {count}; nothing was published:\n{listing}\n"
                      "    hint: mailer check explains each one; fix them, or pass --force to publish anyway")


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

"""load → render → compile → inline → text: one `RenderedIssue`, shared by build, preview, check and send."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mailer.compose import placeholders
from mailer.compose.inline import inline_css
from mailer.compose.issue import Image, Issue, load_issue
from mailer.compose.plaintext import NamedParagraph, fill_text, render_plaintext
from mailer.compose.render import HTML_LAYOUT, available_layouts, compile_mjml, layout_file, render_template
from mailer.config import Config
from mailer.schema import display_path


@dataclass(frozen=True)
class RenderedIssue:
    """One issue, built once; per-recipient placeholders are still in subject, html and text.

    `web_html` is the public web version (the "view in browser" page), built only when asked
    for (`web=True`; sending does not need it): rendered with the layouts' `web` variable set and
    its placeholders already filled with values that belong to no one (see `web_values`).
    """

    issue: Issue
    subject: str
    preheader: str
    html: str
    text: str
    mjml: str
    web_html: str | None = None
    # The text part's paragraphs that hold a reader's name or address: wrapped again per reader.
    text_named: tuple[NamedParagraph, ...] = ()

    def text_for(self, values: Mapping[str, str]) -> str:
        """The plain-text part as one reader gets it (see plaintext.fill_text)."""
        return fill_text(self.text, self.text_named, values)

    def local_images(self) -> list[Image]:
        return [image for image in self.issue.images() if image.local_path]


def build_issue(issue_path: Path, config: Config, *, web: bool = False) -> RenderedIssue:
    """Build one issue file into its email parts (and its web version if `web`); raises MailerError on bad input."""
    issue = load_issue(issue_path, label=display_path(issue_path), layouts=available_layouts(config.layouts_dir))
    return render_issue(issue, config, web=web)


def render_issue(issue: Issue, config: Config, *, web: bool = False) -> RenderedIssue:
    layout = display_path(layout_file(config, issue.layout, HTML_LAYOUT))
    mjml = render_template(HTML_LAYOUT, issue=issue, config=config)
    html = placeholders.mark_urls(inline_css(compile_mjml(mjml, layout=layout)), html_document=True)
    plain = render_plaintext(issue, config)
    text = placeholders.mark_urls(plain.text, html_document=False)
    named = tuple(paragraph for paragraph in plain.named if paragraph.wrapped in text)  # untouched by mark_urls
    web_html = None
    if web:
        web_mjml = render_template(HTML_LAYOUT, issue=issue, config=config, web=True)
        web_html = placeholders.fill(placeholders.mark_urls(inline_css(compile_mjml(web_mjml, layout=layout)),
                                                            html_document=True), web_values(issue, config),
                                     escape_html=True)
    return RenderedIssue(issue=issue, subject=issue.subject, preheader=issue.preheader, html=html,
                         text=text, mjml=mjml, web_html=web_html, text_named=named)


def web_values(issue: Issue, config: Config) -> dict[str, str]:
    """Placeholder values for the public web version, the archive and the feed: nobody's data.

    A web reader is greeted with `first_name_fallback`; an address or unsubscribe link written
    into the content has no owner on the web, so it is left empty or points at the archive.
    """
    return {
        "first_name": config.fallback_for(issue.lang),
        "email": "",
        "unsubscribe_url": config.web_base_url,
        "web_url": config.web_url(issue.slug),
    }


def write_build(rendered: RenderedIssue, out_dir: Path) -> list[Path]:
    """Write email.html, email.txt, email.mjml, the web version (index.html, if built) and the images into `out_dir`.

    Files are written to a temporary folder beside it and moved into place at the end, so a
    failure never leaves a half-written build behind.
    """

    def files(staging: Path) -> list[Path]:
        written = [
            _write(staging / "email.html", rendered.html),
            _write(staging / "email.txt", rendered.text),
            _write(staging / "email.mjml", rendered.mjml),
        ]
        if rendered.web_html is not None:
            written.append(_write(staging / "index.html", rendered.web_html))
        return written + _copy_images(rendered, staging)

    return _write_folder(out_dir, files)


def write_web_version(rendered: RenderedIssue, out_dir: Path) -> list[Path]:
    """Write only the public part, the web version (index.html) and its images, into `out_dir`."""
    web_html = rendered.web_html
    if web_html is None:
        raise ValueError("the issue was built without its web version: build_issue(..., web=True)")
    return _write_folder(out_dir, lambda staging: [_write(staging / "index.html", web_html),
                                                   *_copy_images(rendered, staging)])


def _write_folder(out_dir: Path, write: Callable[[Path], list[Path]]) -> list[Path]:
    """Let `write` fill a temporary folder beside `out_dir`, then put it in place of `out_dir` in one move."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        written = write(staging)
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out_dir / path.relative_to(staging) for path in written]


def _copy_images(rendered: RenderedIssue, folder: Path) -> list[Path]:
    copied = []
    for image in rendered.local_images():
        assert image.local_path and image.relative_path
        target = folder / image.relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image.local_path, target)
        copied.append(target)
    return copied


def _replace_dir(staging: Path, out_dir: Path) -> None:
    # mkdtemp makes the folder private (0700); the output is meant to be published and read by others.
    staging.chmod(0o755)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)


def _write(path: Path, text: str) -> Path:
    # newline="\n": the same bytes on every platform; encoding declared, never the locale's.
    path.write_text(text, encoding="utf-8", newline="\n")
    return path

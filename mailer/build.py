"""load → render → compile → inline → text: one `RenderedIssue`, shared by build, preview, check and send."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mailer.config import Config
from mailer.inline import inline_css
from mailer.issue import Image, Issue, load_issue
from mailer.plaintext import render_text
from mailer.render import HTML_LAYOUT, compile_mjml, render_template
from mailer.schema import display_path

# Gmail hides everything after about 102 KB of HTML behind "[Message clipped]", the footer and
# its unsubscribe link included (https://support.google.com/mail/thread/15186435).
GMAIL_CLIP_BYTES = 102 * 1024


@dataclass(frozen=True)
class RenderedIssue:
    """One issue, built once; per-recipient placeholders are still in subject, html and text."""

    issue: Issue
    subject: str
    preheader: str
    html: str
    text: str
    mjml: str

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    @property
    def clip_headroom(self) -> int:
        """Bytes left before Gmail clips the message (negative: it will be clipped)."""
        return GMAIL_CLIP_BYTES - self.html_bytes

    def local_images(self) -> list[Image]:
        return [image for image in self.issue.images() if image.local_path]


def build_issue(issue_path: Path, config: Config) -> RenderedIssue:
    """Build one issue file into its email parts; raises MailerError on any bad input."""
    issue = load_issue(issue_path, label=display_path(issue_path))
    return render_issue(issue, config)


def render_issue(issue: Issue, config: Config) -> RenderedIssue:
    mjml = render_template(HTML_LAYOUT, issue=issue, config=config)
    html = compile_mjml(mjml, layout=display_path(config.layouts_dir / HTML_LAYOUT))
    html = inline_css(html)
    text = render_text(issue, config)
    return RenderedIssue(issue=issue, subject=issue.subject, preheader=issue.preheader, html=html,
                         text=text, mjml=mjml)


def write_build(rendered: RenderedIssue, out_dir: Path) -> list[Path]:
    """Write email.html, email.txt, email.mjml and the local images into `out_dir`.

    Files are written to a temporary folder beside it and moved into place at the end, so a
    failure never leaves a half-written build behind.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        written = [
            _write(staging / "email.html", rendered.html),
            _write(staging / "email.txt", rendered.text),
            _write(staging / "email.mjml", rendered.mjml),
        ]
        for image in rendered.local_images():
            assert image.local_path and image.relative_path
            target = staging / image.relative_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image.local_path, target)
            written.append(target)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out_dir / path.relative_to(staging) for path in written]


def _write(path: Path, text: str) -> Path:
    # newline="\n": the same bytes on every platform; encoding declared, never the locale's.
    path.write_text(text, encoding="utf-8", newline="\n")
    return path

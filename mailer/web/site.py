"""The published web output: each issue's web version, an archive page and an Atom feed.

`mailer build --all` writes it to a folder that any static host can serve at `web_base_url`:

    index.html          the archive, newest first
    feed.xml            the Atom feed (RFC 4287)
    SLUG/index.html     an issue's web version (the email's "view in browser" link)
    SLUG/img/…          its local images
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mailer.compose import placeholders
from mailer.compose.build import RenderedIssue, web_values, write_web_version
from mailer.compose.render import render_layout
from mailer.config import Config
from mailer.files import write_atomic

ARCHIVE_LAYOUT = "archive.html.j2"
ATOM_NS = "http://www.w3.org/2005/Atom"
XML_NS = "http://www.w3.org/XML/1998/namespace"


@dataclass(frozen=True)
class ArchiveEntry:
    """One issue as the archive and the feed list it; placeholders already filled for the web."""

    slug: str
    date: date
    number: int | None
    subject: str
    preheader: str
    lang: str
    dir: str
    url: str


def archive_entries(rendered: list[RenderedIssue], config: Config) -> list[ArchiveEntry]:
    """The issues newest first (same date: by slug), as the public sees them."""
    entries = []
    for result in rendered:
        issue = result.issue
        values = web_values(issue, config)
        entries.append(ArchiveEntry(
            slug=issue.slug,
            date=issue.date,
            number=issue.number,
            subject=placeholders.fill(result.subject, values),
            preheader=placeholders.fill(result.preheader, values),
            lang=issue.lang,
            dir=issue.dir,
            url=config.web_url(issue.slug),
        ))
    entries.sort(key=lambda e: e.slug)
    entries.sort(key=lambda e: e.date, reverse=True)
    return entries


def feed_url(config: Config) -> str:
    return f"{config.web_base_url}feed.xml"


def render_archive(entries: list[ArchiveEntry], config: Config) -> str:
    """The archive page (layouts/archive.html.j2)."""
    return render_layout(ARCHIVE_LAYOUT, config=config, issues=entries, feed_url=feed_url(config))


def render_feed(entries: list[ArchiveEntry], config: Config) -> str:
    """An Atom feed with one entry per issue; summaries are the preheaders."""
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        element.text = text
        return element

    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", config.web_base_url)
    sub(feed, "title", config.name)
    # Atom requires `updated`; the newest issue's date keeps the output the same on every build.
    sub(feed, "updated", _timestamp(entries[0].date) if entries else _timestamp(date(1970, 1, 1)))
    sub(feed, "link", rel="self", type="application/atom+xml", href=feed_url(config))
    sub(feed, "link", rel="alternate", type="text/html", href=config.web_base_url)
    author = sub(feed, "author")
    sub(author, "name", config.sender.name or config.name)
    for entry in entries:
        element = sub(feed, "entry")
        element.set(f"{{{XML_NS}}}lang", entry.lang)
        sub(element, "id", entry.url)
        sub(element, "title", entry.subject)
        sub(element, "published", _timestamp(entry.date))
        sub(element, "updated", _timestamp(entry.date))
        sub(element, "link", rel="alternate", type="text/html", href=entry.url)
        sub(element, "summary", entry.preheader)
    ET.indent(feed)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode") + "\n"


def _timestamp(day: date) -> str:
    """RFC 3339, as Atom requires: issues have a date only, so midnight UTC."""
    return f"{day.isoformat()}T00:00:00Z"


def write_site(rendered: list[RenderedIssue], config: Config, out_dir: Path) -> list[Path]:
    """Write every issue's web version, the archive page and the feed into `out_dir`.

    Everything is rendered before the first file is written, so a layout error writes nothing.
    Only `SLUG/` folders of the given issues, index.html and feed.xml are replaced; anything else
    in `out_dir` is left alone.
    """
    entries = archive_entries(rendered, config)
    archive = render_archive(entries, config)
    feed = render_feed(entries, config)
    written: list[Path] = []
    for result in rendered:
        written += write_web_version(result, out_dir / result.issue.slug)
    # Replaced whole, readable by the web server (0644), never half-written for a visitor.
    written.append(write_atomic(out_dir / "index.html", archive.encode("utf-8")))
    written.append(write_atomic(out_dir / "feed.xml", feed.encode("utf-8")))
    return written

"""Which card each link of an issue's email belongs to, by its position among the HTML part's links.

SendGrid reports a click with the link's URL and its position in the HTML part (`url_offset.index`):
a URL written twice in an issue (a card's title and its button, the same paper in two sections) is
told apart only by that position. The layouts decide where each link lands, so the map is found by
building the issue a second time with every card's URL replaced by a marker naming the card: the
markers' positions in that build are the cards' positions in the real one (the layouts see the same
items; only the URLs differ). Links written inside an issue's markdown (an intro, a section's text)
carry no marker; they belong to the text that holds their URL.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mailer.compose import placeholders
from mailer.compose.issue import Issue, ListItem, Section

# A URL no real link has: `.invalid` is reserved (RFC 2606) and never resolves.
_MARKER = "https://m{}.link.invalid/"
_MARKED = re.compile(r"^https://m(\d+)\.link\.invalid/$")
_ANCHOR = re.compile(r"<a\b[^>]*?\bhref\s*=\s*(\"[^\"]*\"|'[^']*')", re.IGNORECASE)
# What SendGrid counts and rewrites: links to web pages, and those a placeholder fills with one.
_COUNTED = ("http://", "https://", placeholders.UNSUBSCRIBE_URL, placeholders.WEB_URL)


@dataclass(frozen=True)
class Link:
    """One link of the email, where the reader sees it."""

    position: int  # among the HTML part's links (SendGrid's url_offset.index)
    url: str  # as written in the issue; a placeholder where each reader's differs
    card: str  # the card's title, or what else the link is ("intro", "unsubscribe", …)
    section: str  # the section's heading, or "header" / "footer"


def tracked_anchors(html: str) -> Iterator[tuple[re.Match[str], str]]:
    """Each link SendGrid would track in an HTML part, in document order: its opening tag's match and its href."""
    import html as entities

    for match in _ANCHOR.finditer(html):
        href = entities.unescape(match.group(1)[1:-1]).strip()
        if href.startswith(_COUNTED):
            yield match, href


def html_links(html: str) -> list[str]:
    """The href of each link SendGrid would track in an HTML part, in document order."""
    return [href for _, href in tracked_anchors(html)]


def map_links(issue: Issue, html: str, render: Any) -> list[Link]:
    """The email's links (`html`, the issue's HTML part as sent) with the card each belongs to.

    `render(issue)` builds an issue's HTML part: it is called once, on a copy whose cards point at markers.
    """
    owners: list[tuple[str, str]] = []
    marked = _with_markers(issue, owners)
    probe = html_links(render(marked))
    real = html_links(html)
    texts = list(_markdown_owners(issue))
    links = []
    for position, url in enumerate(real):
        found = _MARKED.match(probe[position]) if len(probe) == len(real) else None
        if found and int(found.group(1)) < len(owners):
            card, section = owners[int(found.group(1))]
        else:
            card, section = _owner_of(url, texts)
        links.append(Link(position, url, card, section))
    return links


def _owner_of(url: str, texts: list[tuple[str, str, str]]) -> tuple[str, str]:
    """What a link without a marker is: the first text holding its URL, or one of the layout's own links."""
    if url.startswith(placeholders.UNSUBSCRIBE_URL):
        return "unsubscribe", "footer"
    if url.startswith(placeholders.WEB_URL):
        return "view in browser", "header"
    for text, card, section in texts:
        if url in text:
            return card, section
    return "the layout's own link", "header / footer"


def _markdown_owners(issue: Issue) -> Iterator[tuple[str, str, str]]:
    """(markdown text, card, section) for every text an editor wrote links into."""
    if issue.intro:
        yield issue.intro, "intro", "intro"
    for section in issue.sections:
        if section.body:
            yield section.body, f"{section.heading} (text)", section.heading
        for repo in section.repos:
            if repo.description:
                yield repo.description, repo.name, section.heading
        if section.dataset and section.dataset.description:
            yield section.dataset.description, section.dataset.name, section.heading
        if section.after:
            yield section.after, f"{section.heading} (text after)", section.heading
    if issue.footer and issue.footer.signoff:
        yield issue.footer.signoff, "sign-off", "footer"


def _with_markers(issue: Issue, owners: list[tuple[str, str]]) -> Issue:
    """The issue with every card's, repo's, dataset's, list item's and social link's URL a marker."""
    def mark(card: str, section: str) -> str:
        owners.append((card, section))
        return _MARKER.format(len(owners) - 1)

    def item(entry: ListItem, heading: str) -> ListItem:
        return dataclasses.replace(
            entry, url=mark(entry.title, heading) if entry.url else None,
            links=tuple(dataclasses.replace(link, url=mark(f"{entry.title}: {link.label}", heading))
                        for link in entry.links))

    def section(part: Section) -> Section:
        heading = part.heading
        return dataclasses.replace(
            part,
            list=tuple(item(entry, heading) for entry in part.list),
            cards=tuple(dataclasses.replace(card, url=mark(card.title or card.url, heading)) for card in part.cards),
            repos=tuple(dataclasses.replace(repo, url=mark(repo.name, heading)) for repo in part.repos),
            dataset=dataclasses.replace(part.dataset, url=mark(part.dataset.name, heading)) if part.dataset else None)

    sections = tuple(section(part) for part in issue.sections)
    footer = issue.footer
    if footer is not None:
        footer = dataclasses.replace(footer, social=tuple(
            dataclasses.replace(link, url=mark(link.name, "footer")) for link in footer.social))
    return dataclasses.replace(issue, sections=sections, footer=footer)

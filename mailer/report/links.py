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
from html.parser import HTMLParser
from typing import Any

from mailer.compose import markdown
from mailer.compose.issue import Issue, ListItem, Section

# A URL no real link has: `.invalid` is reserved (RFC 2606) and never resolves.
_MARKER = "https://m{}.link.invalid/"
_MARKED = re.compile(r"^https://m(\d+)\.link\.invalid/$")
# What SendGrid's click tracking rewrites, and so counts: a link whose href, as the HTML is submitted, is a
# web address. A link that is all substitution tag (the view-in-browser and unsubscribe links, filled per
# reader) is not tracked ("Click Tracking & HTML Best Practices", SendGrid's docs).
_TRACKED = re.compile(r"^https?://", re.IGNORECASE)


@dataclass(frozen=True)
class Link:
    """One link of the email, where the reader sees it."""

    position: int  # among the HTML part's tracked links (SendGrid's url_offset.index)
    url: str  # as written in the issue: a placeholder inside it stands for each reader's own value
    card: str  # the card's title, or what else the link is ("intro", "the layout's own link", …)
    section: str  # the section's heading, "footer", or "layout"


@dataclass(frozen=True)
class Anchor:
    """A tracked link in an HTML document: where its <a> starts and its </a> ends, and its href."""

    start: int
    end: int
    href: str


class _Anchors(HTMLParser):
    """The document's tracked links, read as a browser (and SendGrid) reads HTML: comments, scripts and
    attributes that merely end in "href" (`data-href`) are no links."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Anchor] = []
        self._html = html
        self._open: tuple[int, str] | None = None
        self._lines = [0]
        for line in html.splitlines(keepends=True):
            self._lines.append(self._lines[-1] + len(line))
        self.feed(html)
        self.close()

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._lines[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            self._open = (self._offset(), href) if _TRACKED.match(href) else None

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            start, href = self._open
            close = self._html.find(">", self._offset())
            self.found.append(Anchor(start, close + 1 if close >= 0 else len(self._html), href))
            self._open = None


def tracked_anchors(html: str) -> list[Anchor]:
    """Each link SendGrid would track in an HTML part, in document order."""
    return _Anchors(html).found


def html_links(html: str) -> list[str]:
    """The href of each link SendGrid would track in an HTML part, in document order."""
    return [anchor.href for anchor in tracked_anchors(html)]


@dataclass(frozen=True)
class _Owner:
    card: str
    section: str
    url: str  # the URL the issue gives the item


def map_links(issue: Issue, html: str, render: Any, *, named: dict[str, str] | None = None
              ) -> tuple[list[Link], bool]:
    """The email's links (`html`, the issue's HTML part as sent) with the card each belongs to, and whether
    every link was placed by its position (False: some were placed by their URL alone, which a URL written
    twice makes a guess).

    `render(issue)` builds an issue's HTML part: it is called once, on a copy whose cards point at markers.
    `named` names the layout's own links by their URL ("view in browser").
    """
    owners: list[_Owner] = []
    probe = html_links(render(_with_markers(issue, owners)))
    real = html_links(html)
    texts = list(_markdown_owners(issue))
    links, exact = [], len(probe) == len(real)
    for position, url in enumerate(real):
        found = _MARKED.match(probe[position]) if exact else None
        owner = owners[int(found.group(1))] if found and int(found.group(1)) < len(owners) else None
        if owner is not None and owner.url == url:
            links.append(Link(position, url, owner.card, owner.section))
            continue
        if found or (exact and probe[position] != url):
            exact = False  # the two builds disagree here: the layout chose by the URL itself
        card, section = (named[url], "layout") if named and url in named else _owner_of(url, owners, texts)
        links.append(Link(position, url, card, section))
    return links, exact


def _owner_of(url: str, owners: list[_Owner], texts: list[tuple[list[str], str, str]]) -> tuple[str, str]:
    """What a link without a marker is: the first item or text of the issue that links to its URL, or one of
    the layout's own links."""
    for owner in owners:
        if owner.url == url:
            return owner.card, owner.section
    for targets, card, section in texts:
        if url in targets:
            return card, section
    return "the layout's own link", "layout"


def _markdown_owners(issue: Issue) -> Iterator[tuple[list[str], str, str]]:
    """(the links' targets, card, section) for every markdown text an editor wrote links into."""
    def links(text: str) -> list[str]:
        return [target.url for target in markdown.targets(text) if target.kind == "link"]

    if issue.intro:
        yield links(issue.intro), "intro", "intro"
    for section in issue.sections:
        if section.body:
            yield links(section.body), f"{section.heading} (text)", section.heading
        for repo in section.repos:
            if repo.description:
                yield links(repo.description), repo.name, section.heading
        if section.dataset and section.dataset.description:
            yield links(section.dataset.description), section.dataset.name, section.heading
        if section.after:
            yield links(section.after), f"{section.heading} (text after)", section.heading
    if issue.footer and issue.footer.signoff:
        yield links(issue.footer.signoff), "sign-off", "footer"


def _with_markers(issue: Issue, owners: list[_Owner]) -> Issue:
    """The issue with every card's, repo's, dataset's, list item's and social link's URL a marker."""
    def mark(card: str, section: str, url: str) -> str:
        owners.append(_Owner(card, section, url))
        return _MARKER.format(len(owners) - 1)

    def item(entry: ListItem, heading: str) -> ListItem:
        return dataclasses.replace(
            entry, url=mark(entry.title, heading, entry.url) if entry.url else None,
            links=tuple(dataclasses.replace(link, url=mark(f"{entry.title}: {link.label}", heading, link.url))
                        for link in entry.links))

    def section(part: Section) -> Section:
        heading = part.heading
        return dataclasses.replace(
            part,
            list=tuple(item(entry, heading) for entry in part.list),
            cards=tuple(dataclasses.replace(card, url=mark(card.title or card.url, heading, card.url))
                        for card in part.cards),
            repos=tuple(dataclasses.replace(repo, url=mark(repo.name, heading, repo.url)) for repo in part.repos),
            dataset=dataclasses.replace(part.dataset, url=mark(part.dataset.name, heading, part.dataset.url))
            if part.dataset else None)

    sections = tuple(section(part) for part in issue.sections)
    footer = issue.footer
    if footer is not None:
        footer = dataclasses.replace(footer, social=tuple(
            dataclasses.replace(link, url=mark(link.name, "footer", link.url)) for link in footer.social))
    return dataclasses.replace(issue, sections=sections, footer=footer)

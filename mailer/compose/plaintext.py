"""The plain-text part, rendered from the issue model through layouts/email.txt.j2.

Not scraped from the HTML: a reader of the text part gets headings, wrapped paragraphs and
every link as a numbered reference listed at the end.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable

import wcwidth
from markdown_it.token import Token

from mailer.compose import markdown
from mailer.compose.issue import Issue, LabelledLink
from mailer.compose.render import TEXT_LAYOUT, render_template
from mailer.config import Config

WIDTH = 72


class TextWriter:
    """Helpers the text layout calls: wrapping, markdown to text, numbered link references."""

    def __init__(self, width: int = WIDTH):
        self.width = width
        self._numbers: dict[str, int] = {}

    def ref(self, url: str) -> str:
        """The reference mark for a URL, e.g. '[3]'; the same URL keeps its number."""
        number = self._numbers.setdefault(url, len(self._numbers) + 1)
        return f"[{number}]"

    def labelled(self, links: Iterable[LabelledLink]) -> str:
        """Labelled links as 'video [3] · slides [4]'."""
        return " · ".join(f"{link.label} {self.ref(link.url)}" for link in links)

    def references(self) -> list[tuple[int, str]]:
        return [(number, url) for url, number in self._numbers.items()]

    def wrap(self, text: str, indent: str = "", first: str | None = None) -> str:
        """Wrap at spaces only: URLs, placeholders and CJK runs are never split."""
        return textwrap.fill(
            " ".join(text.split()),
            width=self.width,
            initial_indent=indent if first is None else first,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )

    def underline(self, text: str, char: str = "=") -> str:
        return char * min(display_width(text), self.width)

    def md(self, text: str, indent: str = "") -> str:
        """Markdown as plain text: paragraphs wrapped, links as [n] references."""
        return "\n".join(self._blocks(markdown.parse(text), indent)).rstrip("\n")

    def _blocks(self, tokens: list[Token], indent: str) -> list[str]:
        lines: list[str] = []
        prefixes: list[str] = []  # bullets / numbers / quote marks of the open containers
        counters: list[int | None] = []
        pending_bullet: list[str] = []
        for token in tokens:
            kind = token.type
            if kind == "bullet_list_open":
                counters.append(None)
            elif kind == "ordered_list_open":
                counters.append(int(token.attrGet("start") or 1))
            elif kind in ("bullet_list_close", "ordered_list_close"):
                counters.pop()
                if not counters:
                    lines.append("")
            elif kind == "list_item_open":
                counter = counters[-1]
                if counter is None:
                    pending_bullet.append("- ")
                else:
                    pending_bullet.append(f"{counter}. ")
                    counters[-1] = counter + 1
                prefixes.append(" " * len(pending_bullet[-1]))
            elif kind == "list_item_close":
                prefixes.pop()
            elif kind == "blockquote_open":
                prefixes.append("> ")
            elif kind == "blockquote_close":
                prefixes.pop()
            elif kind == "inline":
                body = self._inline(token.children or [])
                lead = indent + "".join(prefixes)
                first = lead
                if pending_bullet:
                    first = lead[: -len(prefixes[-1])] + pending_bullet.pop()
                lines.append(self.wrap(body, lead, first))
                if not counters:
                    lines.append("")
            elif kind in ("fence", "code_block"):
                lines.extend(indent + "    " + line for line in token.content.rstrip("\n").split("\n"))
                lines.append("")
            elif kind == "hr":
                lines.extend([indent + "-" * 10, ""])
        return lines

    def _inline(self, children: list[Token]) -> str:
        parts: list[str] = []
        hrefs: list[str] = []
        link_text_start: list[int] = []
        for child in children:
            if child.type == "text" or child.type == "code_inline":
                parts.append(child.content)
            elif child.type in ("softbreak",) or child.type == "hardbreak":
                parts.append(" ")
            elif child.type == "link_open":
                hrefs.append(str(child.attrGet("href") or ""))
                link_text_start.append(len(parts))
            elif child.type == "link_close":
                href = hrefs.pop()
                label = "".join(parts[link_text_start.pop():])
                if label.strip() != href:  # an autolink already shows its URL
                    parts.append(" " + self.ref(href))
            elif child.type == "image":
                parts.append(child.content)
        return "".join(parts)


def display_width(text: str) -> int:
    """How many Latin letters' room a text takes in a monospace font.

    CJK characters and emoji take two; an emoji sequence ('👨‍👩‍👧', '👍🏽', a flag) is one
    emoji; combining vowel signs and accents (Hindi, Thai, Arabic) take none.
    """
    width = wcwidth.wcswidth(text)
    return width if width >= 0 else len(text)  # -1: a control character (mailer check reports those)


def render_text(issue: Issue, config: Config) -> str:
    writer = TextWriter()
    text = render_template(TEXT_LAYOUT, issue=issue, config=config, text=writer)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"

"""The plain-text part, rendered from the issue model through layouts/email.txt.j2.

Not scraped from the HTML: a reader of the text part gets headings, wrapped paragraphs and
every link as a numbered reference listed at the end.

A paragraph holding a reader's first name or address is wrapped twice: once with the placeholder,
for the text part every recipient shares, and again once a value wider than its placeholder is
known (`NamedParagraph`, `fill_text`), so that a long name never pushes a line past the width.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from markdown_it.token import Token

from mailer.compose import markdown, placeholders
from mailer.compose.issue import Image, Issue, LabelledLink
from mailer.compose.linebreak import display_width, wrap
from mailer.compose.render import TEXT_LAYOUT, render_template
from mailer.config import Config

__all__ = ["WIDTH", "NamedParagraph", "PlainText", "TextWriter", "display_width", "fill_text", "render_plaintext",
           "render_text"]

WIDTH = 72
# The values a reader brings into running text (the links' values are URLs: never wrapped).
_NAMED = {placeholders.FIRST_NAME: "first_name", placeholders.EMAIL: "email"}


@dataclass(frozen=True)
class NamedParagraph:
    """A wrapped paragraph with a reader's value in it, and what it takes to wrap it again."""

    wrapped: str  # as it stands in the shared text part, placeholders in place
    source: str  # the same text, unwrapped
    indent: str
    first: str
    width: int
    names: tuple[str, ...]  # which values it holds: "first_name", "email"

    def grows(self, values: Mapping[str, str]) -> bool:
        """True when this reader's paragraph must be wrapped again (filled()): a value is wider than its
        placeholder, and filling it in place could give other lines than wrapping again.

        Filling in place gives the very lines wrapping again would when every value is at least as wide
        as its placeholder, no placeholder starts or ends its line, and each line holding one still fits.
        Wrapping is greedy: such a line keeps its first piece (the line above could not take it before,
        and nothing before the value changed) and its last (the next piece did not fit before, and the
        line only grew); the lines after it start where they did. A send of a million readers with
        names a little longer than twelve letters is spared wrapping each one's paragraph (tested
        against wrapping again).
        """
        wider = False
        for name in self.names:
            value, room = values[name], len(placeholders.ALL[name])
            if len(value) > room // 2 and display_width(value) > room:
                wider = True
        if not wider:
            return False
        lines = self._lines_with_values
        if lines is None:
            return True
        all_ascii = True
        for name in self.names:
            value = values[name]
            if " ".join(value.split()) != value or display_width(value) < len(placeholders.ALL[name]):
                return True
            all_ascii = all_ascii and value.isascii() and value.isprintable()
        counted = self._ascii_lines
        if counted is None or not all_ascii:
            return any(display_width(placeholders.fill(line, values)) > self.width for line in lines)
        # All ASCII: a filled line's width is its length, counted without filling it (for a reader whose
        # name is longer than its placeholder, this check was a quarter of preparing their request).
        for width, held in counted:
            for name in held:
                width += len(values[name])
            if width > self.width:
                return True
        return False

    @cached_property
    def _lines_with_values(self) -> tuple[str, ...] | None:
        """The lines holding a placeholder; None when a placeholder starts or ends one (see grows)."""
        tags = [placeholders.ALL[name] for name in self.names]
        held = []
        for number, line in enumerate(self.wrapped.split("\n")):
            if not any(tag in line for tag in tags):
                continue
            start = self.first if number == 0 else self.indent
            text = line[len(start):] if line.startswith(start) else line
            if any(text.startswith(tag) or text.rstrip().endswith(tag) for tag in tags):
                return None
            held.append(line)
        return tuple(held)

    def grows_for_any(self, columns: Mapping[str, Sequence[str]]) -> bool:
        """Whether grows() is true for some reader of a batch, given the batch's values by name (each a list
        in the readers' order, all of the same length).

        A paragraph of one name whose lines with it are printable ASCII (_ascii_fit) is decided for the
        whole batch at once when every value is printable ASCII with no space at either end and none
        doubled: none grows if the longest fits (a reader's check was a third of preparing their request).
        """
        fit = self._ascii_fit
        if fit is not None:
            column = columns[self.names[0]]
            flat, lines = "".join(column), "\n".join(column)
            if (flat.isascii() and flat.isprintable() and "  " not in flat and " \n" not in lines
                    and "\n " not in lines and lines[:1] != " " and lines[-1:] != " "
                    and max(map(len, column), default=0) <= fit):
                return False
        names = list(columns)
        return any(self.grows(dict(zip(names, values, strict=True))) for values in zip(*columns.values(), strict=True))

    @cached_property
    def _ascii_fit(self) -> int | None:
        """For a paragraph of one name whose lines with it are counted (_ascii_lines): the longest printable
        ASCII value that keeps every such line within the width (grows() is false for any value no longer,
        with no space at either end and none doubled)."""
        if len(self.names) != 1 or not self._ascii_lines:
            return None
        return min((self.width - width) // len(held) for width, held in self._ascii_lines)

    @cached_property
    def _ascii_lines(self) -> tuple[tuple[int, tuple[str, ...]], ...] | None:
        """For each line of _lines_with_values, its length without placeholders and the names of those in it,
        in order; None unless every such line is printable ASCII holding only this paragraph's placeholders."""
        if self._lines_with_values is None:
            return None
        name_of = {placeholders.ALL[name]: name for name in self.names}
        counted = []
        for line in self._lines_with_values:
            tags, rest = placeholders.tags_in(line)
            if not (line.isascii() and line.isprintable()) or any(tag not in name_of for tag in tags):
                return None
            counted.append((len(rest), tuple(name_of[tag] for tag in tags)))
        return tuple(counted)

    def filled(self, values: Mapping[str, str]) -> str:
        return wrap(placeholders.fill(self.source, values), self.width, self.indent, self.first)


@dataclass(frozen=True)
class PlainText:
    text: str
    named: tuple[NamedParagraph, ...]


def fill_text(text: str, named: Sequence[NamedParagraph], values: Mapping[str, str]) -> str:
    """The text part for one reader: placeholders filled, and each paragraph a long value widened wrapped again."""
    filled = placeholders.fill(text, values)
    for paragraph in named:
        if paragraph.grows(values):
            filled = filled.replace(placeholders.fill(paragraph.wrapped, values), paragraph.filled(values))
    return filled


class TextWriter:
    """Helpers the text layout calls: wrapping, markdown to text, numbered link references."""

    def __init__(self, width: int = WIDTH):
        self.width = width
        self._numbers: dict[str, int] = {}
        self.named: list[NamedParagraph] = []

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
        """Wrap by display width: at spaces, and between Chinese or Japanese characters where the
        line-breaking rules allow; URLs, placeholders and words are never split."""
        source = " ".join(text.split())
        wrapped = wrap(source, self.width, indent, first)
        names = tuple(name for tag, name in _NAMED.items() if tag in source)
        if names:
            self.named.append(NamedParagraph(wrapped, source, indent, indent if first is None else first,
                                             self.width, names))
        return wrapped

    def picture(self, image: Image, label: str) -> str:
        """A picture as a reader of the text part gets it: `label` with its alt text ('[Image: {alt}]'),
        then its caption."""
        lines = [self.wrap(label.format(alt=image.alt))]
        if image.caption:
            lines.append(self.wrap(image.caption))
        return "\n".join(lines)

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


def render_plaintext(issue: Issue, config: Config) -> PlainText:
    writer = TextWriter()
    text = render_template(TEXT_LAYOUT, issue=issue, config=config, text=writer)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
    # Trailing spaces were cut above: the paragraphs are looked up in the text as it now stands.
    named = tuple(p for p in writer.named if p.wrapped in text)
    return PlainText(text, named)


def render_text(issue: Issue, config: Config) -> str:
    return render_plaintext(issue, config).text

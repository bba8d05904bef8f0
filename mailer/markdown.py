"""Markdown as editors write it in issues: CommonMark with raw HTML switched off."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from markdown_it import MarkdownIt
from markdown_it.token import Token


@cache
def parser() -> MarkdownIt:
    # html=False: an editor's `<div>` is shown as text, never passed into MJML where an
    # unclosed tag would swallow the rest of the email (markdown-it allows raw HTML by default).
    md = MarkdownIt("commonmark", {"html": False, "typographer": False})
    # markdown-it percent-encodes non-ASCII paths and punycodes host names; keep each URL
    # exactly as the editor wrote it (the renderer still HTML-escapes it, and validateLink
    # still refuses javascript: and the like).
    md.normalizeLink = lambda url: url  # type: ignore[method-assign]
    return md


def parse(text: str) -> list[Token]:
    return parser().parse(text)


def to_html(text: str) -> str:
    return parser().render(text)


def inline_to_html(text: str) -> str:
    """Render one paragraph's inline markdown without the surrounding <p>."""
    return parser().renderInline(text)


@dataclass(frozen=True)
class Target:
    """A link or image found in markdown, with its line inside the markdown text (0-based)."""

    kind: str  # "link" or "image"
    url: str
    line: int
    text: str = ""  # a link's text, an image's alt


def targets(text: str) -> list[Target]:
    found: list[Target] = []
    for block in parse(text):
        line = block.map[0] if block.map else 0
        link: Target | None = None
        words: list[str] = []
        for token in block.children or ():
            if token.type == "link_open":
                link, words = Target("link", str(token.attrGet("href") or ""), line), []
            elif token.type == "link_close" and link is not None:
                found.append(Target(link.kind, link.url, link.line, "".join(words).strip()))
                link = None
            elif token.type == "image":
                found.append(Target("image", str(token.attrGet("src") or ""), line, token.content))
            elif link is not None and token.type in ("text", "code_inline"):
                words.append(token.content)
    return found

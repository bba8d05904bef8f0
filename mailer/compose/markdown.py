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


@cache
def _finder() -> MarkdownIt:
    # For finding links only, never for rendering: every link is kept, javascript: and data: too, so
    # that the checks see them (the renderer's validateLink would turn them into literal text).
    md = MarkdownIt("commonmark", {"html": False, "typographer": False})
    md.normalizeLink = lambda url: url  # type: ignore[method-assign]
    md.validateLink = lambda url: True  # type: ignore[method-assign]
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
    """A link or image found in markdown, with where it is inside the markdown text."""

    kind: str  # "link" or "image"
    url: str
    line: int  # 0-based line of the paragraph (or other block) that holds it
    text: str = ""  # a link's text, an image's alt
    offset: int = 0  # character offset of the URL (or of its paragraph, if the URL is written differently)


def targets(text: str) -> list[Target]:
    found: list[Target] = []
    line_starts = [0]
    for line_text in text.split("\n"):
        line_starts.append(line_starts[-1] + len(line_text) + 1)
    for block in _finder().parse(text):
        line = block.map[0] if block.map else 0
        # markdown-it knows only the block's first line; a link in a wrapped paragraph may be lines
        # further on, so look for the URL itself from where the previous one was found.
        search_from = line_starts[min(line, len(line_starts) - 1)]
        link: Target | None = None
        words: list[str] = []
        for token in block.children or ():
            if token.type in ("link_open", "image"):
                url = str(token.attrGet("href" if token.type == "link_open" else "src") or "")
                found_at = _find_url(text, url, search_from)
                offset = search_from if found_at is None else found_at  # the paragraph, failing the URL
                if found_at is not None:
                    search_from = found_at + len(url)
                if token.type == "image":
                    found.append(Target("image", url, line, token.content, offset))
                else:
                    link, words = Target("link", url, line, offset=offset), []
            elif token.type == "link_close" and link is not None:
                found.append(Target(link.kind, link.url, link.line, "".join(words).strip(), link.offset))
                link = None
            elif link is not None and token.type in ("text", "code_inline"):
                words.append(token.content)
    return found


def _find_url(text: str, url: str, start: int) -> int | None:
    """Where `url` is written from `start` on: as "](url" first, since it may also be in the prose before."""
    if not url:
        return None
    at = text.find(f"]({url}", start)
    if at >= 0:
        return at + 2
    at = text.find(url, start)  # a reference-style link, or <url>
    return at if at >= 0 else None

"""The README and the pages of docs/, as the docs tests read them."""

from __future__ import annotations

import re

from tests.conftest import REPO

README_PATH = REPO / "README.md"
DOCS = REPO / "docs"
README = README_PATH.read_text(encoding="utf-8")


def page(name: str) -> str:
    """The text of docs/NAME."""
    return (DOCS / name).read_text(encoding="utf-8")


def pages_in_readme_order() -> list[str]:
    """The docs/ pages in the order the README lists them: its table of commands, then its reference."""
    listed = README.split("\n## Commands\n", 1)[1]
    names = re.findall(r"\]\(docs/([\w.-]+\.md)\)", listed)
    return list(dict.fromkeys(names))


def outside_code(text: str) -> str:
    """The text without its fenced blocks and inline code spans (where a `](` is not a link)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    # A code span may go on over a line break, not over a blank line (CommonMark).
    return re.sub(r"(`+)(?!`)(?:(?!\n\s*\n).)*?(?<!`)\1(?!`)", "", text, flags=re.S)


def headings(text: str) -> list[str]:
    """The markdown headings of a page, outside its code blocks, as written (`## The issue format`)."""
    return re.findall(r"^#{1,6} .*$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M), re.M)


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    found: set[str] = set()
    for heading in headings(text):
        slug = re.sub(r"[^\w\- ]", "", heading.lstrip("#").strip().lower()).replace(" ", "-")
        unique, n = slug, 0
        while unique in found:
            n += 1
            unique = f"{slug}-{n}"
        found.add(unique)
    return found


def links(text: str) -> list[str]:
    """Every link and image target of a page, outside code."""
    return re.findall(r"\]\(([^)\s]+)\)", outside_code(text))

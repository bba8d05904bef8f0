"""What MJML tags and attributes mjml-python knows, and a scan of the layouts against it.

mjml-python (MRML) validates nothing: an unknown tag is copied into the email as raw markup
and an unknown attribute (`paddng="0"`) is dropped without a word, so a typo in a layout changes
the email silently. The attribute lists follow the MJML 4 documentation
(https://documentation.mjml.io/), which MRML implements.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

_PADDING = ("padding", "padding-top", "padding-right", "padding-bottom", "padding-left")
_BORDERS = ("border", "border-top", "border-right", "border-bottom", "border-left", "border-radius")
_TEXT = ("color", "font-family", "font-size", "font-style", "font-weight", "line-height", "letter-spacing",
         "text-decoration", "text-transform", "align")
_BACKGROUND = ("background-color", "background-url", "background-repeat", "background-size",
               "background-position", "background-position-x", "background-position-y")
# Every body component takes these.
_COMMON = ("css-class", "mj-class")

ATTRIBUTES: dict[str, frozenset[str]] = {
    name: frozenset(values + _COMMON)
    for name, values in {
        "mjml": ("lang", "dir", "owa"),
        "mj-body": ("width", "background-color"),
        "mj-head": (),
        "mj-attributes": (),
        "mj-breakpoint": ("width",),
        "mj-font": ("name", "href"),
        "mj-preview": (),
        "mj-style": ("inline",),
        "mj-title": (),
        "mj-raw": ("position",),
        "mj-include": ("path", "type", "css-inline"),
        "mj-section": (*_PADDING, *_BORDERS, *_BACKGROUND, "direction", "full-width", "text-align",
                       "text-padding"),
        "mj-wrapper": (*_PADDING, *_BORDERS, *_BACKGROUND, "direction", "full-width", "text-align", "gap"),
        "mj-column": (*_PADDING, *_BORDERS, "background-color", "inner-background-color", "inner-border",
                      "inner-border-top", "inner-border-right", "inner-border-bottom", "inner-border-left",
                      "inner-border-radius", "width", "vertical-align", "direction"),
        "mj-group": ("width", "vertical-align", "background-color", "direction"),
        "mj-text": (*_PADDING, *_TEXT, "height", "container-background-color"),
        "mj-image": (*_PADDING, *_BORDERS, "align", "alt", "container-background-color", "fluid-on-mobile",
                     "height", "href", "name", "rel", "sizes", "src", "srcset", "target", "title", "usemap",
                     "width", "max-height", "font-size"),
        "mj-button": (*_PADDING, *_BORDERS, *_TEXT, "background-color", "container-background-color", "height",
                      "href", "inner-padding", "name", "rel", "target", "text-align", "title", "vertical-align",
                      "width"),
        "mj-divider": (*_PADDING, "align", "border-color", "border-style", "border-width",
                       "container-background-color", "width"),
        "mj-spacer": (*_PADDING, "container-background-color", "height"),
        "mj-table": (*_PADDING, *_TEXT, "border", "cellpadding", "cellspacing", "container-background-color",
                     "role", "table-layout", "width"),
        "mj-social": (*_PADDING, *_TEXT, "border-radius", "container-background-color", "icon-height", "icon-size",
                      "inner-padding", "mode", "icon-padding", "text-padding"),
        "mj-social-element": (*_PADDING, *_TEXT, "alt", "background-color", "border-radius", "href",
                              "icon-height", "icon-size", "icon-position", "name", "icon-padding", "text-padding",
                              "rel", "sizes", "src", "srcset", "target", "title", "vertical-align"),
        "mj-hero": (*_PADDING, *_BACKGROUND, "background-height", "background-width", "border-radius",
                    "container-background-color", "height", "inner-background-color", "inner-padding",
                    "inner-padding-top", "inner-padding-right", "inner-padding-bottom", "inner-padding-left",
                    "mode", "vertical-align", "width"),
        "mj-navbar": ("align", "base-url", "hamburger", "ico-align", "ico-close", "ico-color", "ico-font-family",
                      "ico-font-size", "ico-line-height", "ico-open", "ico-padding", "ico-padding-top",
                      "ico-padding-right", "ico-padding-bottom", "ico-padding-left", "ico-text-decoration",
                      "ico-text-transform"),
        "mj-navbar-link": (*_PADDING, *_TEXT, "href", "name", "rel", "target"),
        # Components used rarely in newsletters: their tag is checked, their attributes are not.
        "mj-carousel": (),
        "mj-carousel-image": (),
        "mj-accordion": (),
        "mj-accordion-element": (),
        "mj-accordion-title": (),
        "mj-accordion-text": (),
    }.items()
}
MJML_TAGS = frozenset(ATTRIBUTES) | {"mj-all", "mj-class"}
# Tags whose attributes are free-form: defaults for every component (mj-all, mj-class), or
# (for the components above with an empty list) ones whose attributes we do not list.
_UNCHECKED = {"mj-all", "mj-class", "mj-carousel", "mj-carousel-image", "mj-accordion", "mj-accordion-element",
              "mj-accordion-title", "mj-accordion-text"}
_ANY_ATTRIBUTE = frozenset().union(*ATTRIBUTES.values())

_TAG = re.compile(r"<(mj-[A-Za-z0-9-]+|mjml)\b((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>", re.S)
_ATTRIBUTE = re.compile(r"([A-Za-z_:][-A-Za-z0-9_:.]*)\s*(?:=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>/]+))?")
# Jinja statements, comments and expressions: blanked out (keeping newlines) before scanning, so
# `{% if web %}` inside a tag or `{{ x }}` in a value is not read as an attribute. HTML comments
# too: a tag commented out is not in the email.
_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}|<!--.*?-->", re.S)


@dataclass(frozen=True)
class MarkupProblem:
    path: Path
    line: int
    column: int
    message: str
    hint: str | None = None


def scan_layout(path: Path, text: str) -> list[MarkupProblem]:
    """Every MJML tag or attribute in one layout file that mjml-python does not know."""
    source = _JINJA.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    found: list[MarkupProblem] = []
    # In <mj-attributes>, child tags set defaults (<mj-text padding="…">): any component's attribute.
    defaults = [m.span() for m in re.finditer(r"<mj-attributes\b.*?</mj-attributes>", source, re.S)]
    for match in _TAG.finditer(source):
        tag, attributes = match.group(1), match.group(2)
        line = source.count("\n", 0, match.start()) + 1
        column = match.start() - (source.rfind("\n", 0, match.start()) + 1) + 1
        if tag not in MJML_TAGS:
            close = difflib.get_close_matches(tag, sorted(MJML_TAGS), n=1, cutoff=0.7)
            found.append(MarkupProblem(
                path, line, column,
                f"unknown MJML tag <{tag}>: mjml-python copies it into the email as raw markup",
                f"did you mean <{close[0]}>?" if close else "see https://documentation.mjml.io/ for the tags"))
            continue
        inside_attributes = tag != "mj-attributes" and any(a < match.start() < b for a, b in defaults)
        if tag in _UNCHECKED:
            continue
        known = ATTRIBUTES[tag]
        for attribute in _ATTRIBUTE.finditer(attributes):
            name = attribute.group(1)
            if name == "/" or name in known:
                continue
            if inside_attributes and name in _ANY_ATTRIBUTE:
                continue
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.7)
            offset = match.start(2) + attribute.start()
            found.append(MarkupProblem(
                path, source.count("\n", 0, offset) + 1, offset - (source.rfind("\n", 0, offset) + 1) + 1,
                f"<{tag}> has no attribute {name!r}: mjml-python drops it without a word",
                f"did you mean {close[0]!r}?" if close else f"<{tag}> takes: {', '.join(sorted(known))}"))
    return found


def scan_layouts(layouts_dir: Path) -> list[MarkupProblem]:
    """Scan every MJML layout (`*.mjml.j2`) below `layouts_dir`."""
    found: list[MarkupProblem] = []
    for path in sorted(layouts_dir.rglob("*.mjml.j2")):
        found += scan_layout(path, path.read_text(encoding="utf-8"))
    return found

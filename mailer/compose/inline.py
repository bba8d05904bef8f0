"""Inline the layouts' CSS into style attributes with premailer, around its known traps."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from mailer.errors import RenderError

# Only <style> blocks that start with this comment are inlined. MJML's own reset and media-query
# blocks stay as they are: inlining `table, td {...}` into every cell would add kilobytes and
# bring the email closer to Gmail's clipping limit for nothing.
INLINE_MARKER = "/* mailer:inline */"

_STYLE_TAG = re.compile(r"<style\b([^>]*)>(.*?)</style>", re.S | re.I)
# href/src values are swapped for inert tokens while premailer runs: it percent-encodes
# non-ASCII URLs, turns `{{ x }}` into `{{%20x%20}}` and `<%x%>` into `&lt;%x%&gt;`.
_URL_ATTRIBUTE = re.compile(r'\b(href|src)="([^"]*)"')
_TOKEN = "mailer-url-{}-token"
# Every byte of a style attribute counts against Gmail's clipping limit, and premailer writes
# `margin:0 0 12px; font-size:14px`. The spaces around ; : and , and a last ; change nothing.
_STYLE_ATTRIBUTE = re.compile(r'(\sstyle=")([^"]*)"')
_CSS_SEPARATOR_SPACE = re.compile(r"\s*([;:,])\s*")
_TOKEN_PATTERN = re.compile(r"mailer-url-(\d+)-token")


def inline_css(html: str) -> str:
    """Return `html` with the marked CSS inlined; media queries and !important kept."""
    if re.search(r"@import\b", "".join(m.group(2) for m in _STYLE_TAG.finditer(html)), re.I):
        # cssutils fetches @import URLs even with allow_network=False: the build must not
        # touch the network, so the layouts may not use @import at all.
        raise RenderError("a layout's CSS uses @import, which would be fetched over the network at build time\n"
                          "    hint: paste the CSS into the <mj-style> block instead")
    html, urls = _protect_urls(_ignore_unmarked_styles(html))
    # premailer's doctype check is case-sensitive and MJML emits lowercase: it would drop it,
    # putting clients in quirks mode.
    html = re.sub(r"^<!doctype html>", "<!DOCTYPE html>", html, count=1, flags=re.I)
    from premailer import Premailer  # about 0.3 s to import: only when building

    with _quiet_cssutils():
        try:
            result = Premailer(
                html,
                allow_network=False,  # never fetch a <link> stylesheet
                # Keep !important: MJML's @media (min-width:480px) rules must beat the inline
                # width:100% to widen the columns on desktop.
                strip_important=False,
                keep_style_tags=False,  # marked blocks go; what cannot be inlined is kept
                remove_classes=False,  # the mj-column-per-* classes carry the responsive layout
                exclude_pseudoclasses=True,
                disable_validation=True,
                disable_link_rewrites=True,
                cssutils_logging_level=None,
            ).transform()
        except Exception as err:  # premailer raises bare lxml/cssutils errors
            raise RenderError(f"inlining the CSS failed: {err}\n"
                              "    hint: check the CSS in the layouts' <mj-style> blocks") from err
    result = result.replace(' data-premailer="ignore"', "")
    if not result.lstrip().upper().startswith("<!DOCTYPE HTML>"):
        result = "<!DOCTYPE html>\n" + result
    return _restore_urls(_compact_styles(result), urls)


def _compact_styles(html: str) -> str:
    def compact(match: re.Match[str]) -> str:
        return match.group(1) + _CSS_SEPARATOR_SPACE.sub(r"\1", match.group(2)).rstrip(";") + '"'

    return _STYLE_ATTRIBUTE.sub(compact, html)


def _ignore_unmarked_styles(html: str) -> str:
    def mark(match: re.Match[str]) -> str:
        attributes, css = match.group(1), match.group(2)
        if INLINE_MARKER in css or "data-premailer" in attributes:
            return match.group(0)
        return f'<style{attributes} data-premailer="ignore">{css}</style>'

    return _STYLE_TAG.sub(mark, html)


def _protect_urls(html: str) -> tuple[str, list[str]]:
    urls: list[str] = []

    def swap(match: re.Match[str]) -> str:
        urls.append(match.group(2))
        return f'{match.group(1)}="{_TOKEN.format(len(urls) - 1)}"'

    return _URL_ATTRIBUTE.sub(swap, html), urls


def _restore_urls(html: str, urls: list[str]) -> str:
    return _TOKEN_PATTERN.sub(lambda m: urls[int(m.group(1))], html)


@contextmanager
def _quiet_cssutils() -> Iterator[None]:
    """Silence cssutils' dozens of warnings per build, then put its logger back as it was.

    Only the CSSUTILS logger is touched, and only for the duration of one transform: the rest of
    the program's logging is left alone.
    """
    logger = logging.getLogger("CSSUTILS")  # the logger cssutils.log writes to
    previous_level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(previous_level)

"""The per-recipient fields an issue carries until send time, and how they are filled.

The syntax `-name-` was chosen because it passes through Jinja2, mjml-python and premailer
untouched (premailer mangles `{{ x }}` and `<%x%>` inside href) and is what SendGrid
substitutions replace, so one rendered issue serves every recipient.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from urllib.parse import quote

FIRST_NAME = "-first_name-"
EMAIL = "-email-"
UNSUBSCRIBE_URL = "-unsubscribe_url-"
WEB_URL = "-web_url-"

ALL = {"first_name": FIRST_NAME, "email": EMAIL, "unsubscribe_url": UNSUBSCRIBE_URL, "web_url": WEB_URL}
# Inside a link, a reader's own values are percent-encoded: a first name `x&role=admin#` must not add
# a query parameter. mark_urls rewrites them to these forms when the issue is built.
URL_FORMS = {"first_name": "-first_name_url-", "email": "-email_url-"}
KNOWN = {*ALL.values(), *URL_FORMS.values()}
# Every tag is -word-: one leading "-" lets the regex engine skip ahead to each dash.
_TAGS = re.compile("-(?:" + "|".join(re.escape(tag[1:-1]) for tag in sorted(KNOWN, key=len, reverse=True)) + ")-")
_TAG_NAMES = {**{tag: (name, False) for name, tag in ALL.items()},
              **{tag: (name, True) for name, tag in URL_FORMS.items()}}
# Anything shaped like a placeholder, to find ones the sender would not fill (typos).
SHAPE = re.compile(r"-[a-z][a-z0-9]*(?:_[a-z0-9]+)+-|-(?:email|name)-")


def fill(text: str, values: Mapping[str, str], *, escape_html: bool = False) -> str:
    """Replace each known placeholder with its value (HTML-escaped for an HTML part, percent-encoded in a link).

    A placeholder whose value is not given stays as it is. Runs per recipient (a paragraph, a subject):
    one pattern compiled once, and each value made only where its placeholder stands.
    """
    made: dict[str, str] = {}

    def value(match: re.Match[str]) -> str:
        tag = match.group(0)
        filled = made.get(tag)
        if filled is None:
            name, in_link = _TAG_NAMES[tag]
            given = values.get(name)
            if given is None:
                filled = tag
            elif in_link:
                filled = url_value(given)
            else:
                filled = html.escape(given, quote=True) if escape_html else given
            made[tag] = filled
        return filled

    return _TAGS.sub(value, text)


def tags_in(text: str) -> tuple[list[str], str]:
    """The known placeholders in `text` as fill() finds them, in order, and the text without them."""
    return _TAGS.findall(text), _TAGS.sub("", text)


def url_value(value: str) -> str:
    """A value as it goes into a link: every reserved character percent-encoded (safe in HTML too)."""
    return quote(value, safe="")


_HTML_LINK = re.compile(r"""(\b(?:href|src)=)("[^"]*"|'[^']*')""", re.IGNORECASE)
_TEXT_LINK = re.compile(r"(?:https?|mailto):[^\s<>\"]+", re.IGNORECASE)


def mark_urls(document: str, *, html_document: bool) -> str:
    """Rewrite -first_name- and -email- inside links (href/src attributes, or URLs in plain text) to their URL forms."""
    def in_link(text: str) -> str:
        for name, form in URL_FORMS.items():
            text = text.replace(ALL[name], form)
        return text

    if html_document:
        return _HTML_LINK.sub(lambda m: m.group(1) + in_link(m.group(2)), document)
    return _TEXT_LINK.sub(lambda m: in_link(m.group(0)), document)

"""The per-recipient fields an issue carries until send time, and how they are filled.

The syntax `-name-` was chosen because it passes through Jinja2, mjml-python and premailer
untouched (premailer mangles `{{ x }}` and `<%x%>` inside href) and is what SendGrid
substitutions replace, so one rendered issue serves every recipient.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

FIRST_NAME = "-first_name-"
EMAIL = "-email-"
UNSUBSCRIBE_URL = "-unsubscribe_url-"
WEB_URL = "-web_url-"

ALL = {"first_name": FIRST_NAME, "email": EMAIL, "unsubscribe_url": UNSUBSCRIBE_URL, "web_url": WEB_URL}
# Anything shaped like a placeholder, to find ones the sender would not fill (typos).
SHAPE = re.compile(r"-[a-z][a-z0-9]*(?:_[a-z0-9]+)+-|-(?:email|name)-")


def fill(text: str, values: Mapping[str, str], *, escape_html: bool = False) -> str:
    """Replace each known placeholder with its value (HTML-escaped for an HTML part)."""
    pattern = re.compile("|".join(re.escape(ALL[name]) for name in values))
    lookup = {ALL[name]: html.escape(v, quote=True) if escape_html else v for name, v in values.items()}
    return pattern.sub(lambda m: lookup[m.group(0)], text)

"""The Jinja2 environment of every page `mailer` serves (the preview's, the public service's): one, cached."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mailer.deliver.message import kilobytes

ASSETS_DIR = Path(__file__).parent / "assets"


@cache
def pages() -> Any:
    import jinja2  # imported by the commands that serve pages only

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ASSETS_DIR),
        autoescape=True,  # issue text, addresses, file paths and error messages are all escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["kb"] = kilobytes  # as the CLI writes sizes
    env.filters["urlquote"] = lambda text: quote(str(text), safe="")
    return env

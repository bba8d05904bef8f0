"""Layouts → MJML (Jinja2) → HTML (mjml-python), with errors that name the layout and line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from mailer.compose import markdown, placeholders
from mailer.compose.issue import Image, Issue
from mailer.compose.mjml_schema import MJML_TAGS
from mailer.config import Config
from mailer.errors import RenderError

HTML_LAYOUT = "email.mjml.j2"
TEXT_LAYOUT = "email.txt.j2"
DEFAULT_LAYOUT = "default"  # the layouts folder itself; another layout is a folder in it (layouts/minimal/)

# Every tag MJML 4 defines. mjml-python copies an unknown tag into the HTML without a word, so a
# typo such as <mj-buton> would ship to subscribers as raw markup; we refuse it instead.
# mj-html-attributes is left out on purpose: mjml-python raises on it.
_MJML_TAG = re.compile(r"<(mj-[A-Za-z0-9-]+|mjml)\b")
_POSITION = re.compile(r" at position (\d+):(\d+)")
# mjml-python 1.4.2 ignores a padding shorthand that holds a unitless 0 ("0 24px 12px") when it sizes
# an image: it writes width="600" where the official compiler writes 552 (column minus padding), and
# Outlook for Windows lays the email out by that attribute. "0px" means the same and is read right.
_MJ_TAG = re.compile(r"<mj-[a-z-]+\b[^>]*>")
_PADDING_ATTRIBUTE = re.compile(r'(\bpadding(?:-top|-right|-bottom|-left)?=")([^"]*)(")')
_UNITLESS_ZERO = re.compile(r"(?<![\w.])0(?![\w.%])")


@dataclass(frozen=True)
class Context:
    """What a layout sees besides the issue: settings and helpers."""

    issue: Issue
    config: Config

    def image_src(self, image: Image) -> str:
        """Where the email loads an image: local files from the published web folder."""
        if image.relative_path:
            return f"{self.config.web_url(self.issue.slug)}{image.relative_path}"
        return image.url


def available_layouts(layouts_dir: Path) -> list[str]:
    """The layouts an issue may choose (`layout:`): the default, and each folder of layouts/ with an email shell.

    A layout folder holds its own email.mjml.j2 and whatever else it changes; a file it does not have
    (the text part, strings.j2, a partial) is the default layout's.
    """
    found = [DEFAULT_LAYOUT]
    if layouts_dir.is_dir():
        found += sorted(folder.name for folder in layouts_dir.iterdir()
                        if folder.is_dir() and folder.name != DEFAULT_LAYOUT and (folder / HTML_LAYOUT).is_file())
    return found


def layout_file(config: Config, layout: str, name: str) -> Path:
    """The file a layout renders for `name`: its own, or the default layout's."""
    own = config.layouts_dir / layout / name
    return own if layout != DEFAULT_LAYOUT and own.is_file() else config.layouts_dir / name


@cache
def _environment(layouts_dir: Path, layout: str = DEFAULT_LAYOUT) -> jinja2.Environment:
    # A chosen layout's folder first, then the default layout's files (a folder overrides only what it has).
    folders = [layouts_dir / layout, layouts_dir] if layout != DEFAULT_LAYOUT else [layouts_dir]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        # Every user string is escaped in the HTML layouts; the text layouts are plain text.
        autoescape=lambda name: bool(name) and name.endswith((".mjml.j2", ".html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["markdown"] = lambda text: Markup(markdown.to_html(text))
    env.globals["placeholder"] = placeholders.ALL
    return env


def render_template(name: str, *, issue: Issue, config: Config, web: bool = False, **extra: Any) -> str:
    """Render one layout for an issue; Jinja errors name the layout file and line.

    `web` is True for the public web version (the "view in browser" page): the layouts leave out
    what only a subscriber's copy has, such as the unsubscribe link.
    """
    context = Context(issue, config)
    return render_layout(name, config=config, layout=issue.layout, issue=issue, image_src=context.image_src, web=web,
                         **extra)


def render_layout(name: str, *, config: Config, layout: str = DEFAULT_LAYOUT, **context: Any) -> str:
    """Render any layout file (e.g. the web archive page) with `config` and `context`; `layout` picks the folder."""
    env = _environment(config.layouts_dir.resolve(), layout)
    try:
        template = env.get_template(name)
        return template.render(config=config, **context)
    except jinja2.TemplateSyntaxError as err:
        where = f"{_layout_label(config, err.filename or err.name or name)}:{err.lineno}"
        raise RenderError(f"{where}: layout syntax error: {err.message}\n"
                          "    hint: check the {% %} and {{ }} pairs on that line") from err
    except jinja2.TemplateNotFound as err:
        if layout not in available_layouts(config.layouts_dir):  # an issue loaded without the list of layouts
            raise RenderError(f"{config.layouts_dir / layout}: no such layout (layout: {layout})\n"
                              f"    hint: the layouts are {', '.join(available_layouts(config.layouts_dir))}") from err
        raise RenderError(f"{config.layouts_dir / err.name}: layout not found\n"
                          f"    hint: the layouts folder must contain {name} and the files it includes") from err
    except jinja2.UndefinedError as err:
        line = _template_line(err)
        raise RenderError(f"{_layout_label(config, line[0] if line else name)}"
                          f"{':' + str(line[1]) if line else ''}: {err.message}\n"
                          "    hint: check the variable's spelling against docs/issue-format.md") from err


def _template_line(err: Exception) -> tuple[str, int] | None:
    """The innermost layout file and line in a Jinja traceback (Jinja rewrites its frames so
    that they carry the template's own file name and line numbers)."""
    tb = err.__traceback__
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _layout_label(config: Config, filename: str) -> str:
    path = Path(filename)
    if not path.is_absolute():
        path = config.layouts_dir / filename
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _zero_with_unit(attribute: re.Match[str]) -> str:
    return attribute.group(1) + _UNITLESS_ZERO.sub("0px", attribute.group(2)) + attribute.group(3)


def compile_mjml(mjml: str, *, layout: str) -> str:
    """Compile MJML to HTML, refusing unknown tags and translating byte offsets into lines."""
    for match in _MJML_TAG.finditer(mjml):
        if match.group(1) not in MJML_TAGS:
            line = mjml.count("\n", 0, match.start()) + 1
            raise RenderError(
                f"{layout} (rendered MJML line {line}): unknown MJML tag <{match.group(1)}>: "
                "mjml-python would copy it into the email as raw markup\n"
                "    hint: check the tag's spelling against https://documentation.mjml.io/"
            )
    mjml = _MJ_TAG.sub(lambda tag: _PADDING_ATTRIBUTE.sub(_zero_with_unit, tag.group(0)), mjml)
    from mjml import mjml2html  # imported here: the CLI's --help must stay fast

    try:
        # fonts={}: no Google Fonts <link>/@import. The layouts use a system font stack, so the
        # build needs no network and readers' clients fetch nothing for fonts.
        return mjml2html(mjml, fonts={}, disable_comments=False)
    except ValueError as err:
        message = str(err)
        position = _POSITION.search(message)
        where = layout + " (rendered MJML"
        if position:
            start = int(position.group(1))
            encoded = mjml.encode("utf-8")
            line = encoded[:start].count(b"\n") + 1
            text = mjml.splitlines()[line - 1].strip() if line <= len(mjml.splitlines()) else ""
            where += f" line {line}: {text[:80]!r}"
            message = _POSITION.sub("", message)
        where += ")"
        raise RenderError(f"{where}: MJML error: {message}\n"
                          "    hint: check the tags and quoted attributes in that part of the layout") from err

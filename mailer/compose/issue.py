"""The issue model and `load_issue`: one YAML file in, a validated `Issue` out."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

from mailer.compose import markdown
from mailer.errors import InputError, Problem
from mailer.files import issue_slug
from mailer.schema import (
    MISSING,
    Choice,
    Collector,
    Date,
    Int,
    Key,
    ListOf,
    Record,
    Str,
    Type,
    check_http_url,
    check_lang,
    load_document,
    suggestion,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}
# Primary language subtags written right to left (and the scripts that are).
RTL_LANGUAGES = {"ar", "arc", "ckb", "dv", "fa", "he", "ks", "ku", "ps", "sd", "ug", "ur", "yi"}
RTL_SCRIPTS = {"arab", "hebr", "syrc", "thaa", "nkoo", "adlm", "rohg"}
PLACEHOLDER_LINKS = {"-web_url-", "-unsubscribe_url-"}


@dataclass(frozen=True)
class Image:
    url: str  # as written: an https URL or a path relative to the issue file
    alt: str
    caption: str | None = None
    local_path: Path | None = None  # the file on disk when `url` is a local path

    @property
    def relative_path(self) -> str | None:
        """Where a local image goes below the issue's output folder (e.g. 'img/hero.png')."""
        return PurePosixPath(self.url).as_posix() if self.local_path else None


@dataclass(frozen=True)
class LabelledLink:
    label: str
    url: str


@dataclass(frozen=True)
class ListItem:
    title: str
    url: str | None = None
    links: tuple[LabelledLink, ...] = ()


@dataclass(frozen=True)
class Card:
    url: str
    title: str | None = None  # None until written or fetched (`mailer cards`); mailer check refuses it
    description: str | None = None
    site: str | None = None  # the site's own name ("The Verge"), shown beside the domain

    @property
    def domain(self) -> str:
        host = urlsplit(self.url).hostname or ""
        return host.removeprefix("www.")

    @property
    def where(self) -> str:
        """Where the reader lands: 'The Verge · theverge.com', or the domain alone."""
        if self.site and self.site.lower() != self.domain.lower():
            return f"{self.site} · {self.domain}"
        return self.domain


@dataclass(frozen=True)
class Repo:
    name: str
    url: str
    quote: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    url: str
    description: str | None = None
    image: Image | None = None


@dataclass(frozen=True)
class Section:
    heading: str
    body: str | None = None
    images: tuple[Image, ...] = ()
    list: tuple[ListItem, ...] = ()
    cards: tuple[Card, ...] = ()
    repos: tuple[Repo, ...] = ()
    dataset: Dataset | None = None
    after: str | None = None


@dataclass(frozen=True)
class SocialLink:
    name: str
    url: str


@dataclass(frozen=True)
class Footer:
    signoff: str | None = None
    social: tuple[SocialLink, ...] = ()


class Extra(Mapping[str, Any]):
    """An issue's own fields (`extra:`), for its layouts: `{{ issue.extra.sponsor.name }}`.

    Read only, and hashable like the rest of an Issue. Values are text, lists (tuples) and mappings
    (Extra) of them, as the schema checked them; the keys are names Jinja reads after a dot.
    """

    def __init__(self, values: Mapping[str, Any] | None = None):
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Extra) and self._values == other._values

    def __repr__(self) -> str:
        return f"Extra({self._values!r})"


@dataclass(frozen=True)
class Issue:
    source_path: Path
    slug: str
    subject: str
    title: str
    date: date
    preheader: str
    lang: str
    dir: str
    sections: tuple[Section, ...]
    number: int | None = None
    hero: Image | None = None
    intro: str | None = None
    footer: Footer | None = None
    layout: str = "default"  # a folder of layouts/ (mailer.compose.render.available_layouts)
    extra: Extra = field(default_factory=Extra)

    def images(self) -> list[Image]:
        """Every image in reading order."""
        found = [self.hero] if self.hero else []
        for section in self.sections:
            found.extend(section.images)
            if section.dataset and section.dataset.image:
                found.append(section.dataset.image)
        return found

    def markdown_fields(self) -> list[str]:
        texts = [self.intro] + [t for s in self.sections for t in (s.body, s.after)]
        texts += [r.description for s in self.sections for r in s.repos]
        texts += [s.dataset.description for s in self.sections if s.dataset]
        texts.append(self.footer.signoff if self.footer else None)
        return [t for t in texts if t]


# --- schema ----------------------------------------------------------------------------------


class Markdown(Str):
    """Markdown text whose links must be absolute and which may not embed images."""

    def __init__(self) -> None:
        super().__init__(label="markdown text")

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        text = super().check(node, path, out)
        if text is MISSING:
            return MISSING
        ok = True
        lead = len(node.value) - len(node.value.lstrip())  # `text` was stripped; positions are in node.value
        for target in markdown.targets(text):
            if target.kind == "image":
                out.add_within(node, lead + target.offset, path, f"markdown image {target.url!r} is not supported here",
                               hint="put images in the section's 'images:' list, with alt text")
                ok = False
            elif target.url not in PLACEHOLDER_LINKS and not target.url.startswith("mailto:") and (
                check_http_url(target.url)
            ):
                scheme = urlsplit(target.url).scheme.lower()
                message = (f"link {target.url[:60]!r} is not an address a reader can open: email clients refuse "
                           "script and data links, and it would be sent as literal text"
                           if scheme in _UNOPENABLE_SCHEMES else
                           f"link {target.url!r} must be an absolute http(s) or mailto: URL")
                out.add_within(node, lead + target.offset, path, message,
                               hint="write the full address, e.g. https://example.com/page")
                ok = False
        return text if ok else MISSING


# Links markdown would show as literal text (its renderer refuses them): javascript:alert(…) and the like.
_UNOPENABLE_SCHEMES = {"javascript", "vbscript", "data", "file"}


class ImageUrl(Str):
    """An https URL, or a path to an image file beside the issue."""

    def __init__(self, issue_dir: Path):
        super().__init__(label="an image URL or path", one_line=True)
        self.issue_dir = issue_dir

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        text = super().check(node, path, out)
        if text is MISSING:
            return MISSING
        scheme = urlsplit(text).scheme
        if scheme == "https":
            return check_or_missing(check_http_url(text), text, node, path, out)
        if scheme:
            out.add(node, path, f"images must be https URLs or files beside the issue, not {text!r}",
                    hint="use https://, or save the image next to the issue and give its path, e.g. img/hero.png")
            return MISSING
        relative = PurePosixPath(text)
        if relative.is_absolute() or ".." in relative.parts:
            out.add(node, path, f"image path {text!r} must stay inside {self.issue_dir.name or '.'}/",
                    hint="give a path relative to the issue file, e.g. img/hero.png")
            return MISSING
        file_path = self.issue_dir / relative
        # A symlink (or a linked folder on the way) could point anywhere: /etc/passwd would then be
        # copied into build/ and site/ and served by the preview. The real path must stay inside.
        real_path = file_path.resolve()
        if not real_path.is_relative_to(self.issue_dir.resolve()):
            out.add(node, path, f"image {text!r} is a link to {real_path}, outside {self.issue_dir.name or '.'}/",
                    hint="copy the image itself into the issue's folder instead of linking to it")
            return MISSING
        if real_path.is_dir():
            out.add(node, path, f"image {text!r} is a folder, not an image file",
                    hint="give the path of the image file inside it, e.g. img/hero.png")
            return MISSING
        if not real_path.is_file():
            out.add(node, path, f"image file {text!r} not found (looked for {file_path})",
                    hint="check the spelling, or give an https URL")
            return MISSING
        if {file_path.suffix.lower(), real_path.suffix.lower()} - IMAGE_SUFFIXES:
            out.add(node, path, f"{text!r} is not an image email clients show",
                    hint="use one of " + ", ".join(sorted(IMAGE_SUFFIXES)))
            return MISSING
        return (text, real_path)  # the file that was checked is the one copied and served


def check_or_missing(message: str | None, value: Any, node: yaml.Node, path: str, out: Collector) -> Any:
    if message:
        out.add(node, path, message)
        return MISSING
    return value


def _image(url: tuple[str, Path] | str, alt: str, caption: str | None = None) -> Image:
    if isinstance(url, tuple):
        return Image(url=url[0], alt=alt, caption=caption, local_path=url[1])
    return Image(url=url, alt=alt, caption=caption)


def _finish_list_item(item: ListItem, node: yaml.MappingNode, path: str, out: Collector) -> Any:
    if bool(item.url) == bool(item.links):
        out.add(node, path, "needs either 'url' (the title becomes the link) or 'links' (labelled links)"
                + (", not both" if item.url else ""),
                hint="e.g. 'url: https://…' or 'links: [{label: video, url: https://…}]'")
        return MISSING
    return item


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A key named like a method of the mapping would read as the method in a layout (`issue.extra.items`).
_MAPPING_METHODS = {"get", "items", "keys", "values"}
_MAX_EXTRA_DEPTH = 4


class ExtraFields(Type):
    """`extra:`: the issue's own fields for its layouts; a mapping of names to text, lists and mappings of them."""

    label = "a mapping of names to values"

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        return self._value(node, path, out, depth=0, top=True)

    def _value(self, node: yaml.Node, path: str, out: Collector, *, depth: int, top: bool = False) -> Any:
        if depth > _MAX_EXTRA_DEPTH:
            out.add(node, path, f"is nested more than {_MAX_EXTRA_DEPTH} levels deep",
                    hint="a layout reads a few fields: keep them flat")
            return MISSING
        if isinstance(node, yaml.MappingNode):
            values: dict[str, Any] = {}
            ok = True
            for key_node, value_node in node.value:
                key = str(key_node.value)
                key_path = f"{path}.{key}"
                # A letter first: a name starting with '_' reaches the mapping's own insides (`__class__`).
                if (not isinstance(key_node, yaml.ScalarNode) or not _NAME.fullmatch(key) or key.startswith("_")
                        or key in _MAPPING_METHODS):
                    out.add(key_node, key_path, f"{key!r} cannot be read by a layout as issue.extra.NAME",
                            hint="use letters, digits and '_' (a letter first), and not get, items, keys or "
                            "values, e.g. sponsor_url")
                    ok = False
                    continue
                if key in values:
                    out.add(key_node, key_path, "duplicate key", hint="remove one of them")
                    ok = False
                    continue
                value = self._value(value_node, key_path, out, depth=depth + 1)
                if value is MISSING:
                    ok = False
                else:
                    values[key] = value
            return Extra(values) if ok else MISSING
        if top:
            out.add(node, path, "must be a mapping (key: value lines)",
                    hint="e.g. 'extra:' and, indented below it, 'sponsor: Acme'")
            return MISSING
        if isinstance(node, yaml.SequenceNode):
            items = [self._value(child, f"{path}[{index}]", out, depth=depth + 1)
                     for index, child in enumerate(node.value)]
            return MISSING if any(item is MISSING for item in items) else tuple(items)
        # Text, as written: `true` and `5` stay the text a layout prints (the schema never guesses types).
        return Str().check(node, path, out)


class LayoutName(Type):
    """`layout:`: one of the folders of layouts/ (`default`: the folder itself)."""

    def __init__(self, known: list[str] | None):
        self.known = known
        self.label = "a layout name"

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        text = Str(one_line=True).check(node, path, out)
        if text is MISSING:
            return MISSING
        if self.known is None:  # loaded without the workspace: the build says whether the folder exists
            if _NAME.fullmatch(text.replace("-", "_")):
                return text
            out.add(node, path, f"{text!r} is not a layout name", hint="the name of a folder in layouts/")
            return MISSING
        if text not in self.known:
            close = suggestion(text, self.known, None)
            out.add(node, path, f"unknown layout {text!r}: the layouts are " + ", ".join(self.known),
                    hint=f"{close} a layout is a folder of layouts/ holding its own email.mjml.j2".lstrip())
            return MISSING
        return text


def issue_schema(issue_dir: Path, layouts: list[str] | None = None) -> Record:
    url = Str(label="a URL", one_line=True, validate=check_http_url)
    line = Str(one_line=True)
    text = Str()
    md = Markdown()
    image = Record(_image, {"url": Key(ImageUrl(issue_dir), True), "alt": Key(line, True),
                            "caption": Key(text)})
    return Record(
        dict,
        {
            "subject": Key(Str(one_line=True, max_length=250), True),
            "title": Key(line),
            "date": Key(Date(), True),
            "number": Key(Int(minimum=1)),
            "preheader": Key(Str(one_line=True, max_length=250), True),
            "lang": Key(Str(one_line=True, validate=check_lang), default="en"),
            "dir": Key(Choice("ltr", "rtl")),
            "hero": Key(image),
            "intro": Key(md),
            "sections": Key(ListOf(Record(Section, {
                "heading": Key(line, True),
                "body": Key(md),
                "images": Key(ListOf(image), default=()),
                "list": Key(ListOf(Record(ListItem, {
                    "title": Key(line, True),
                    "url": Key(url),
                    "links": Key(ListOf(Record(LabelledLink, {"label": Key(line, True), "url": Key(url, True)}),
                                        min_items=1), default=()),
                }, finish=_finish_list_item)), default=()),
                "cards": Key(ListOf(Record(Card, {
                    "url": Key(url, True), "title": Key(line), "description": Key(line), "site": Key(line)})),
                    default=()),
                "repos": Key(ListOf(Record(Repo, {
                    "name": Key(line, True), "url": Key(url, True), "quote": Key(text),
                    "description": Key(md)})), default=()),
                "dataset": Key(Record(Dataset, {
                    "name": Key(line, True), "url": Key(url, True), "description": Key(md),
                    "image": Key(image)})),
                "after": Key(md),
            }), min_items=1), True),
            "footer": Key(Record(Footer, {
                "signoff": Key(md),
                "social": Key(ListOf(Record(SocialLink, {"name": Key(line, True), "url": Key(url, True)})),
                              default=()),
            })),
            "layout": Key(LayoutName(layouts), default="default"),
            "extra": Key(ExtraFields(), default=Extra()),
        },
    )


def text_direction(lang: str) -> str:
    subtags = lang.lower().split("-")
    if subtags[0] in RTL_LANGUAGES or any(t in RTL_SCRIPTS for t in subtags[1:]):
        return "rtl"
    return "ltr"


_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def load_issue(path: Path | str, *, label: str | None = None, layouts: list[str] | None = None) -> Issue:
    """Load and validate an issue file; raise InputError listing every problem in it.

    `layouts`: the layouts it may choose (mailer.compose.render.available_layouts); None takes any name.
    """
    path = Path(path)
    file_label = label or str(path)
    if not _SLUG.fullmatch(path.stem):
        raise InputError([Problem(file_label, f"the file name {path.name!r} cannot be used in a web address",
                                  hint="rename it with letters, digits, '-' and '_' only, e.g. 2020-12-13.yaml")])
    fields = load_document(path, issue_schema(path.parent, layouts), file_label=file_label)
    return Issue(
        source_path=path,
        slug=issue_slug(path),
        subject=fields["subject"],
        title=fields["title"] or fields["subject"],
        date=fields["date"],
        number=fields["number"],
        preheader=fields["preheader"],
        lang=fields["lang"],
        dir=fields["dir"] or text_direction(fields["lang"]),
        hero=fields["hero"],
        intro=fields["intro"],
        sections=fields["sections"],
        footer=fields["footer"],
        layout=fields["layout"],
        extra=fields["extra"],
    )


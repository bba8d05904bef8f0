"""`mailer cards`: fill each card that has a `url` but no `title`, `description` or `site` from its page.

The issue file is edited line by line: its YAML node tree (the one mailer check reads, with the
line and column of every key and where every value ends) says where, and the new `title:` /
`description:` / `site:` lines are put in after the card's last value, each value written as
ruamel.yaml quotes it. Every other byte of the file stays as the editor wrote it,
comments and quoting included. A field the editor wrote is never overwritten; one left empty
(`title:`) is filled in its place.
The file is replaced in one move (a temporary file beside it, then a rename), so a failure or a
Ctrl-C never leaves half a file.

Fetching happens here only: building an issue never touches the network. Pages are cached on disk
(one JSON file per URL, with the time it was fetched), so a rerun is instant and offline.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailer.author.pagemeta import Fetched, PageFetcher, PageMeta
from mailer.errors import InputError, Problem
from mailer.files import PRIVATE_FILE, private_folder, tighten, write_atomic
from mailer.schema import compose_yaml, display_path, read_limited, read_utf8

FILLED = ("title", "description", "site")  # in the order they are written after the card's keys


@dataclass
class Card:
    """A card that lacks something, where it is in the file."""

    path: str  # sections[1].cards[0]
    url: str
    line: int  # 1-based line of its url
    missing: tuple[str, ...]
    insert_after: int  # 0-based index of the card's last line
    indent: int
    empty: dict[str, tuple[int, int]] = field(default_factory=dict)  # written empty: (line, column) of the key


@dataclass
class CardsReport:
    issue: Path
    filled: list[tuple[Card, dict[str, str]]] = field(default_factory=list)
    failed: list[tuple[Card, str]] = field(default_factory=list)
    notes: list[tuple[Card, str]] = field(default_factory=list)
    suggestions: list[tuple[Card, str]] = field(default_factory=list)  # picture URLs, never used by the email
    from_cache: int = 0
    fetched: int = 0
    complete: int = 0  # cards that needed nothing

    @property
    def changed(self) -> bool:
        return bool(self.filled)


class PageCache:
    """One JSON file per URL under `folder`, with the time it was fetched."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, url: str) -> Path:
        return self.folder / (hashlib.sha256(url.encode("utf-8")).hexdigest()[:32] + ".json")

    def get(self, url: str) -> PageMeta | None:
        try:
            data = json.loads(self._path(url).read_text(encoding="utf-8"))
            meta = PageMeta.from_json(data)
        except (OSError, ValueError, TypeError):
            return None  # missing or unreadable: fetched again
        for old in (self.folder, self._path(url)):  # as an older release may have left them (see private_folder)
            tighten(old)
        return meta if meta.url == url else None

    def put(self, meta: PageMeta) -> None:
        private_folder(self.folder, within=self.folder.parent)  # in the state folder, as its other files
        write_atomic(self._path(meta.url), json.dumps(meta.to_json(), ensure_ascii=False, indent=1).encode("utf-8"),
                     mode=PRIVATE_FILE)


def cards_needing(text: str, label: str) -> tuple[list[Card], int]:
    """The cards of an issue's text that lack a title, description or site; and how many lack nothing.

    Read with the YAML node tree mailer check uses (schema.compose_yaml): every key's line and column,
    and where each value ends (a quoted string or a block over several lines included).
    """
    import yaml

    root = compose_yaml(text, label)
    lines = text.split("\n")
    found: list[Card] = []
    complete = 0
    problems: list[Problem] = []
    for s, section in enumerate(_items(_child(root, "sections"))):
        for c, card in enumerate(_items(_child(section, "cards"))):
            path = f"sections[{s}].cards[{c}]"
            url = _child(card, "url")
            if not (isinstance(url, yaml.ScalarNode) and url.tag.endswith(":str")):
                continue  # not a card
            keys = {name.value: (name, value) for name, value in card.value if isinstance(name, yaml.ScalarNode)}
            # An empty field (`title:` or `title: ""`) is a slot to fill, and the build refuses it anyway.
            empty = {name: (keys[name][0].start_mark.line, keys[name][0].start_mark.column)
                     for name in FILLED if name in keys and _is_empty(keys[name][1])}
            missing = tuple(name for name in FILLED if name not in keys or name in empty)
            if not missing:
                complete += 1
                continue
            if card.flow_style or "<<" in keys:
                problems.append(Problem(label, "this card is written in a way mailer cards cannot add lines to "
                                        "(on one line as {url: …}, or with a YAML merge key)",
                                        line=card.start_mark.line + 1, field=path,
                                        hint="write it as a block: '- url: …' on its own line, one key a line"))
                continue
            url_key = keys["url"][0].start_mark
            found.append(Card(path, url.value.strip(), url_key.line + 1, missing, _last_line(card, lines),
                              url_key.column, empty))
    if problems:
        raise InputError(problems)
    return found, complete


def _last_line(card: Any, lines: list[str]) -> int:
    """The 0-based line a block-style card's last value ends on."""
    name, last = card.value[-1]
    end = last.end_mark
    # A value that ends at a line break ends on the line before; a block scalar's end also takes in
    # the blank lines after it, which stay after the new lines.
    line = end.line - 1 if end.column == 0 else end.line
    if getattr(last, "style", None) in ("|", ">"):
        while line > last.start_mark.line and not lines[line].strip():
            line -= 1
    return max(line, name.start_mark.line)


def fill_cards(issue: Path, *, cache: PageCache, fetcher_factory: Callable[[], PageFetcher], refresh: bool = False,
               progress: Callable[[Fetched], None] | None = None) -> CardsReport:
    """Fetch what the issue's cards lack and write it into the file; returns what happened to each card."""
    label = display_path(issue)
    raw = read_limited(issue, label)
    try:
        text = raw.decode("utf-8")  # a byte-order mark stays in the text, so it is written back
    except UnicodeDecodeError:
        read_utf8(issue, label)  # raises, naming the line and column of the byte
        raise
    cards, complete = cards_needing(text, label)
    report = CardsReport(issue, complete=complete)
    metas: dict[str, PageMeta] = {}
    to_fetch: list[str] = []
    for card in cards:
        cached = None if refresh else cache.get(card.url)
        if cached is not None:
            metas[card.url] = cached
        elif card.url not in to_fetch:
            to_fetch.append(card.url)
    report.from_cache = len({c.url for c in cards} - set(to_fetch))
    reasons: dict[str, str] = {}
    if to_fetch:
        with fetcher_factory() as fetcher:
            for result in fetcher.fetch_all(to_fetch, progress):
                report.fetched += result.asked
                if result.meta is not None and result.meta.title:
                    cache.put(result.meta)
                    metas[result.url] = result.meta
                else:
                    reasons[result.url] = result.reason or "no title found on the page"
    insertions: list[tuple[int, list[str]]] = []
    replacements: dict[tuple[int, int], str] = {}
    for card in cards:
        meta = metas.get(card.url)
        if meta is None:
            report.failed.append((card, reasons.get(card.url, "no title found on the page")))
            continue
        values = {name: getattr(meta, name) for name in card.missing if getattr(meta, name)}
        report.notes += [(card, note) for note in meta.notes if note.split(":")[0] in values]
        report.notes += [(card, f"{name} is empty and the page has none: write one, or remove the line "
                                "(the build refuses an empty field)")
                         for name in card.empty if name not in values]
        if meta.image:
            report.suggestions.append((card, meta.image))
        if not values:
            continue
        report.filled.append((card, values))
        new_lines = [_yaml_line(name, value, card.indent) for name, value in values.items() if name not in card.empty]
        if meta.image:
            new_lines.append(" " * card.indent + f"# picture on the page (not in the email unless you add it): "
                             f"{meta.image}")
        insertions.append((card.insert_after, new_lines))
        # Filled in place from the key on: whatever precedes it on the line ("- " for a first key) stays.
        replacements.update({card.empty[name]: _yaml_line(name, value, 0)
                             for name, value in values.items() if name in card.empty})
    if insertions:
        newline = "\r\n" if "\r\n" in text else "\n"  # a file written on Windows stays so
        lines = text.split(newline)
        for (index, column), line in replacements.items():
            lines[index] = lines[index][:column] + line
        for after, new_lines in sorted(insertions, key=lambda item: item[0], reverse=True):
            lines[after + 1:after + 1] = new_lines
        if issue.read_bytes() != raw:
            raise InputError([Problem(label, "the file changed while the pages were fetched: nothing was written",
                                      hint="run mailer cards again (the pages are cached now)")])
        _replace_file(issue, newline.join(lines))
    return report


def _is_empty(node: Any) -> bool:
    import yaml

    return isinstance(node, yaml.ScalarNode) and (node.tag.endswith(":null") or not node.value.strip())


def _items(node: Any) -> list[Any]:
    import yaml

    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _child(node: Any, key: str) -> Any:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for name, value in node.value:
            if isinstance(name, yaml.ScalarNode) and name.value == key:
                return value
    return None


def _yaml_line(name: str, value: str, indent: int) -> str:
    """`name: value` at `indent`, quoted as YAML needs it (ruamel.yaml decides: plain when it can be)."""
    from ruamel.yaml import YAML

    writer = YAML()
    writer.width = 4096  # one line, however long
    out = io.StringIO()
    writer.dump({name: value}, out)
    return " " * indent + out.getvalue().rstrip("\n")


def _replace_file(path: Path, text: str) -> None:
    """The issue, rewritten whole or not at all, keeping its permissions."""
    write_atomic(path, text.encode("utf-8"), mode=path.stat().st_mode & 0o777, sync=True)

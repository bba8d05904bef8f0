"""Validate a YAML document against a declared schema, keeping line numbers for every problem.

PyYAML's composer gives nodes with marks (line, column); we walk those nodes instead of the
plain loaded data so that every problem can name the line, the column and the field path, and
so that every problem in a file is collected before anything is reported.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from mailer.errors import InputError, Problem
from mailer.files import NotARegularFile, read_regular
from mailer.headers import header_problem

try:  # the C loader is about ten times faster; fall back where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MISSING = object()


class Collector:
    """Gathers problems for one file so that all of them are reported together."""

    def __init__(self, file_label: str, source: str = ""):
        self.file_label = file_label
        self.source = source  # the file's text, for positions inside a scalar's value
        self.problems: list[Problem] = []

    def add(self, node: yaml.Node | None, path: str | None, message: str, hint: str | None = None) -> None:
        line = column = None
        if node is not None:
            line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self.problems.append(Problem(self.file_label, message, line, column, path or None, hint))

    def add_within(self, node: yaml.ScalarNode, offset: int, path: str | None, message: str,
                   hint: str | None = None) -> None:
        """A problem at character `offset` of a scalar's value: a link on the third line of a body."""
        line, column = position_in_value(self.source, node, offset)
        self.problems.append(Problem(self.file_label, message, line, column, path or None, hint))

    def raise_if_any(self) -> None:
        if self.problems:
            self.problems.sort(key=lambda p: (p.line or 0, p.column or 0))
            raise InputError(self.problems)


# A file far larger than any issue (the sample is 12 KB, forty cards about 23 KB; a whole message of 512 KB
# is already a `mailer check` warning): past this, reading, checking and building it would take minutes
# and gigabytes, for every command and every preview page that reads the issues folder.
MAX_FILE_BYTES = 1_000_000


def read_limited(path: Path, file_label: str) -> bytes:
    """A file's bytes, refused past MAX_FILE_BYTES (a special file such as /dev/zero included)."""
    try:
        size = path.stat().st_size
        data = b"" if size > MAX_FILE_BYTES else read_regular(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise InputError([Problem(file_label, "file not found", hint="check the path")]) from None
    except NotARegularFile:
        raise InputError([Problem(file_label, "is not a regular file (a pipe, a device or a folder)",
                                  hint="an issue is a YAML file: is this the right path?")]) from None
    except OSError as err:
        raise InputError([Problem(file_label, f"cannot read the file: {err.strerror}")]) from err
    if size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:
        shown = f"{size / 1_000_000:,.1f} MB" if size > MAX_FILE_BYTES else "more than 1 MB"
        raise InputError([Problem(file_label, f"the file is {shown}; mailer reads files of at most 1 MB",
                                  hint="an issue is a few KB (the sample is 12 KB): is this the right file? "
                                  "Pictures go in files beside it (img/…), not in the YAML")])
    return data


def read_utf8(path: Path, file_label: str) -> str:
    """Read a text file (at most MAX_FILE_BYTES) as UTF-8, a BOM allowed, naming the line of an undecodable byte."""
    data = read_limited(path, file_label)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise InputError(
            [
                Problem(
                    file_label,
                    f"not valid UTF-8 (byte 0x{data[err.start]:02x})",
                    line,
                    column,
                    hint="save the file as UTF-8 (most editors: 'Save with encoding' > UTF-8)",
                )
            ]
        ) from None


def compose_yaml(text: str, file_label: str) -> yaml.Node | None:
    """Parse YAML into a node tree; a syntax error or an alias becomes a Problem with line and column."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = "invalid YAML: " + " ".join(p for p in (err.context, err.problem) if p)
        raise InputError(
            [
                Problem(
                    file_label,
                    message,
                    mark.line + 1 if mark else None,
                    mark.column + 1 if mark else None,
                    hint="check indentation, and quote values that contain ': ' or start with a "
                    "special character such as '*', '&', '[' or '{'",
                )
            ]
        ) from None
    except yaml.YAMLError as err:
        raise InputError([Problem(file_label, f"invalid YAML: {err}")]) from None
    finally:
        loader.dispose()
    if root is not None:
        shape = _shape(root)
        if shape == "alias":
            raise InputError(_alias_problems(text, file_label))
        if shape == "too many":
            raise InputError([Problem(file_label, f"the file holds more than {MAX_NODES:,} values (keys, texts, "
                                      "list items); mailer reads issues of at most that many",
                                      hint="an issue of 40 link cards holds about 1,000: split this one, or "
                                      "remove what was pasted in by mistake")])
    return root


# Values (keys, texts, list items) an issue may hold: the sample holds 381, an issue of 40 link cards
# about 1,000. Each costs the checks, the build and the preview a little; 38,000 tiny sections in a
# file under MAX_FILE_BYTES took 37 s and 340 MB to build.
MAX_NODES = 10_000


def _shape(root: yaml.Node) -> str | None:
    """'alias' when a node is reached twice (the composer makes an alias, `*name`, the very node it
    names), 'too many' past MAX_NODES nodes, None for a tree mailer reads."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return "alias"
        seen.add(id(node))
        if len(seen) > MAX_NODES:
            return "too many"
        if isinstance(node, yaml.MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


def _alias_problems(text: str, file_label: str) -> list[Problem]:
    """Each anchor's first alias, with the line of the anchor and how often it is used.

    Aliases are refused rather than expanded: each is the whole value it names, so a 3 KB file of
    aliases of aliases stands for millions of values, and every reader of the file (the checks, the
    build, the preview, mailer new and cards) would walk all of them.
    """
    anchors: dict[str, int] = {}
    first: dict[str, yaml.Mark] = {}
    uses: dict[str, int] = {}
    loader = _Loader(text)
    try:
        while (event := loader.get_event()) is not None and not isinstance(event, yaml.StreamEndEvent):
            if isinstance(event, yaml.AliasEvent):
                first.setdefault(event.anchor, event.start_mark)
                uses[event.anchor] = uses.get(event.anchor, 0) + 1
            elif getattr(event, "anchor", None):
                anchors.setdefault(event.anchor, event.start_mark.line + 1)
    finally:
        loader.dispose()
    problems = []
    for name, mark in first.items():
        times = f" ({uses[name]} uses in the file)" if uses[name] > 1 else ""
        problems.append(Problem(file_label, f"'*{name}' repeats the value marked '&{name}' on line "
                                f"{anchors.get(name, '?')}{times}: mailer does not read YAML aliases",
                                mark.line + 1, mark.column + 1,
                                hint=f"write the value out in full where '*{name}' stands, and remove "
                                f"'&{name}'"))
    return problems


# --- field types -----------------------------------------------------------------------------


class Type:
    """A field type: turns a node into a value or records problems and returns MISSING."""

    label = "a value"

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        raise NotImplementedError


def _scalar_text(node: yaml.Node, path: str, out: Collector, label: str) -> str | Any:
    if not isinstance(node, yaml.ScalarNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
        out.add(node, path, f"must be {label}, not {kind}")
        return MISSING
    # The raw text, not YAML's guess: `lang: no` must stay "no", not become False.
    return node.value


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class Str(Type):
    def __init__(self, *, label: str = "text", one_line: bool = False, max_length: int | None = None,
                 validate: Callable[[str], str | None] | None = None):
        self.label = label
        self.one_line = one_line
        self.max_length = max_length
        self.validate = validate

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        text = _scalar_text(node, path, out, self.label)
        if text is MISSING:
            return MISSING
        text = text.strip()
        if not text:
            out.add(node, path, "must not be empty", hint="write a value or remove the key")
            return MISSING
        if self.one_line and "\n" in text:
            out.add(node, path, "must be a single line", hint="remove the line breaks")
            return MISSING
        if self.one_line:
            # One-line values become mail headers (subject, names) or URLs: no line break in disguise.
            unsafe = header_problem(text)
            if unsafe:
                offset, message = unsafe
                lead = len(node.value) - len(node.value.lstrip())
                out.add_within(node, lead + offset, path, message,
                               hint="delete it (it usually comes from copying out of another program)")
                return MISSING
        control = _CONTROL.search(text)
        if control:
            # An escape such as "\x07" in a quoted string: no email client shows it, and the MJML
            # compiler refuses the whole email with an error that names no field.
            out.add(node, path, f"contains the control character U+{ord(control.group(0)):04X}",
                    hint="delete it (it usually comes from copying out of a PDF or a terminal)")
            return MISSING
        if self.max_length and len(text) > self.max_length:
            out.add(node, path, f"is {len(text)} characters long; at most {self.max_length} fit",
                    hint="shorten it")
            return MISSING
        if self.validate:
            message = self.validate(text)
            if message:
                out.add(node, path, message)
                return MISSING
        return text


class Int(Type):
    label = "a whole number"

    def __init__(self, *, minimum: int | None = None):
        self.minimum = minimum

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        text = _scalar_text(node, path, out, self.label)
        if text is MISSING:
            return MISSING
        if not re.fullmatch(r"[+-]?\d+", text.strip()):
            out.add(node, path, f"must be a whole number, not {text!r}")
            return MISSING
        digits = len(text.strip().lstrip("+-"))
        if digits > 18:  # Python refuses to read past 4,300 digits; no count of anything here has 19
            out.add(node, path, f"is a number of {digits:,} digits; at most 18 fit", hint="shorten it")
            return MISSING
        value = int(text)
        if self.minimum is not None and value < self.minimum:
            out.add(node, path, f"must be at least {self.minimum}")
            return MISSING
        return value


class Bool(Type):
    label = "true or false"

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        text = _scalar_text(node, path, out, self.label)
        if text is MISSING:
            return MISSING
        value = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}.get(
            text.strip().lower())
        if value is None:
            out.add(node, path, f"must be true or false, not {text!r}")
            return MISSING
        return value


class Date(Type):
    label = "a date (YYYY-MM-DD)"

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        text = _scalar_text(node, path, out, self.label)
        if text is MISSING:
            return MISSING
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            out.add(node, path, f"{text!r} is not a date", hint="write it as YYYY-MM-DD, e.g. 2020-12-13")
            return MISSING


class Choice(Type):
    def __init__(self, *choices: str):
        self.choices = choices
        self.label = " or ".join(repr(c) for c in choices)

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        text = _scalar_text(node, path, out, self.label)
        if text is MISSING:
            return MISSING
        if text.strip() not in self.choices:
            out.add(node, path, f"must be {self.label}, not {text!r}",
                    hint=suggestion(text.strip(), self.choices, None) or None)
            return MISSING
        return text.strip()


class PerLanguage(Type):
    """One text for every language, or a mapping from language (a BCP 47 tag: en, zh, pt-BR) to text."""

    def __init__(self, text: Str):
        self.text = text
        self.label = "a text, or a mapping from language to text"

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value = self.text.check(node, path, out)
            return MISSING if value is MISSING else {"": value}
        if not isinstance(node, yaml.MappingNode):
            out.add(node, path, f"must be {self.label}")
            return MISSING
        values: dict[str, str] = {}
        for key_node, value_node in node.value:
            lang = str(key_node.value).strip()
            key_path = f"{path}.{lang}"
            problem = check_lang(lang)
            if problem:
                out.add(key_node, key_path, problem)
                continue
            value = self.text.check(value_node, key_path, out)
            if value is not MISSING:
                values[lang.lower()] = value
        return values if len(values) == len(node.value) and values else MISSING


def for_language(texts: dict[str, str], lang: str, default: str) -> str:
    """The text for `lang` ('zh-Hant' falls back to 'zh'), else the one for every language, else English."""
    lang = lang.lower()
    primary = lang.split("-")[0]
    for key in (lang, primary, "", "en"):
        if key in texts:
            return texts[key]
    return default


class ListOf(Type):
    def __init__(self, item: Type, *, min_items: int = 0):
        self.item = item
        self.min_items = min_items
        self.label = "a list"

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        if not isinstance(node, yaml.SequenceNode):
            out.add(node, path, "must be a list (items starting with '- ')")
            return MISSING
        if len(node.value) < self.min_items:
            out.add(node, path, f"needs at least {self.min_items} item(s)")
            return MISSING
        values = [self.item.check(child, f"{path}[{i}]", out) for i, child in enumerate(node.value)]
        if any(v is MISSING for v in values):
            return MISSING
        return tuple(values)


@dataclass
class Key:
    """One key of a mapping: its type, whether it is required, its default."""

    type: Type
    required: bool = False
    default: Any = None


@dataclass
class Record(Type):
    """A mapping with known keys, built into a dataclass.

    `finish` may check relations between keys (e.g. "url or links, not both") and return
    the finished value or MISSING after recording problems.
    """

    build: Callable[..., Any]
    keys: dict[str, Key]
    finish: Callable[[Any, yaml.MappingNode, str, Collector], Any] | None = None
    label: str = field(default="a mapping of keys to values")

    def check(self, node: yaml.Node, path: str, out: Collector) -> Any:
        if not isinstance(node, yaml.MappingNode):
            out.add(node, path, "must be a mapping (key: value lines)")
            return MISSING
        values: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        failed = False
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            key_path = f"{path}.{key}" if path else key
            if key in seen:
                out.add(key_node, key_path, f"duplicate key (first at line {seen[key].start_mark.line + 1})",
                        hint="remove one of them: YAML would silently keep only the last")
                failed = True
                continue
            seen[key] = key_node
            spec = self.keys.get(key)
            if spec is None:
                out.add(key_node, key_path, "unknown key", hint=suggestion(key, list(self.keys), "known keys"))
                failed = True
                continue
            if _is_null(value_node):
                continue  # `intro:` with nothing after it means "not given"
            value = spec.type.check(value_node, key_path, out)
            if value is MISSING:
                failed = True
            else:
                values[key] = value
        for key, spec in self.keys.items():
            if not spec.required or key in values:
                continue
            key_path = f"{path}.{key}" if path else key
            if key not in seen:
                out.add(node, key_path, "is required", hint=f"add '{key}: …' to this block")
                failed = True
            elif _is_null(node_value(node, key)):
                out.add(seen[key], key_path, "is required but empty", hint="write a value after the colon")
                failed = True
        if failed:
            return MISSING
        for key, spec in self.keys.items():
            values.setdefault(key, spec.default)
        value = self.build(**values)
        if self.finish is not None:
            return self.finish(value, node, path, out)
        return value


def suggestion(word: str, known: Iterable[str], what: str | None) -> str:
    """The hint for an unknown `word` (a key, a setting's value, a segment, a placeholder): "did you mean
    'heading'?" when one of `known` is close, else "WHAT: " and all of them (nothing when `what` is None)."""
    known = list(known)
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"{what}: " + ", ".join(known) if what is not None and known else ""


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def node_value(mapping: yaml.MappingNode, key: str) -> yaml.Node | None:
    """The value node for `key` in a mapping node (for pointing at a field in a relation check)."""
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node
    return None


def _is_null(node: yaml.Node | None) -> bool:
    return (
        isinstance(node, yaml.ScalarNode)
        and node.tag == "tag:yaml.org,2002:null"
        and node.value in ("", "~", "null", "Null", "NULL")
    )


# What YAML folds, strips or indents with: everything else in the source is the value's text.
_LAYOUT = " \t\r\n\x85\u2028\u2029"


def position_in_value(text: str, node: yaml.ScalarNode, offset: int) -> tuple[int, int | None]:
    """The line (and, for a scalar on one line, column) of character `offset` of a scalar's value.

    Folding ('>', plain and quoted scalars over several lines), indentation and escapes change
    only layout characters or one unit into one character: count the value's other characters
    up to `offset`, then walk the source to the same count.
    """
    start = node.start_mark
    source = text[start.index: node.end_mark.index]  # libyaml's marks count characters, not bytes
    wanted = sum(1 for char in node.value[:offset] if char not in _LAYOUT)
    # A block scalar's text starts on the line after its indicator; a quoted one after its quote.
    index = source.find("\n") + 1 if node.style in ("|", ">") else 1 if node.style in ('"', "'") else 0
    # A U+2028 in a subject is itself a layout character: then stop at it, not at the text after it.
    on_layout = offset < len(node.value) and node.value[offset] in _LAYOUT
    seen = 0
    while index < len(source):
        width, counts = 1, source[index] not in _LAYOUT
        if node.style == '"' and source[index] == "\\":
            width, counts = _escape(source, index)
        elif node.style == "'" and source.startswith("''", index):
            width = 2
        if seen == wanted and (counts or on_layout):
            break
        seen += counts
        index += width
    line = start.line + 1 + source.count("\n", 0, index)
    one_line = start.line == node.end_mark.line and node.style not in ("|", ">")
    return line, start.column + 1 + index if one_line else None


def _escape(source: str, index: int) -> tuple[int, bool]:
    """How many characters the escape at `index` of a double-quoted scalar takes, and whether it makes text."""
    char = source[index + 1: index + 2]
    if char in yaml.scanner.Scanner.ESCAPE_CODES:
        digits = yaml.scanner.Scanner.ESCAPE_CODES[char]
        return 2 + digits, chr(int(source[index + 2: index + 2 + digits], 16)) not in _LAYOUT
    if char in yaml.scanner.Scanner.ESCAPE_REPLACEMENTS:
        return 2, yaml.scanner.Scanner.ESCAPE_REPLACEMENTS[char] not in _LAYOUT
    return 2, False  # an escaped line break joins the lines


def read_yaml(path: Path, file_label: str) -> tuple[str, yaml.Node | None]:
    """A YAML file's text and node tree: every reader of issue files comes through here.

    Refuses (InputError, with line and column) what no reader could take: a file past MAX_FILE_BYTES,
    bytes that are not UTF-8, a syntax error, an alias. Values are left as written: PyYAML's own
    reading of a scalar (`2026-02-30` as a date, 5,000 digits as a number) would raise ValueError.
    """
    text = read_utf8(path, file_label)
    return text, compose_yaml(text, file_label)


def values_yaml_cannot_build(root: yaml.Node, file_label: str) -> list[Problem]:
    """The scalars a YAML library would fail to turn into values (for a reader that loads, as ruamel.yaml does).

    `2026-02-30` and `0000-01-01` read as dates that do not exist, a number past 4,300 digits is past what
    Python reads, `!!float abc` is no float: PyYAML and ruamel.yaml raise ValueError (or worse) for them,
    naming no line.
    """
    constructor = yaml.constructor.SafeConstructor()
    problems = []
    for path, node in all_nodes(root):
        if not isinstance(node, yaml.ScalarNode) or node.tag not in _BUILT:
            continue
        try:
            constructor.construct_object(node)
        except (ValueError, KeyError, yaml.YAMLError) as err:
            kind = node.tag.rsplit(":", 1)[-1]
            if kind == "timestamp":
                message = f"{node.value!r} reads as a date, and there is no such day ({err})"
                hint = "write a real date as YYYY-MM-DD, or put the text in quotes"
            elif kind == "int" and re.fullmatch(r"[+-]?[\d_]+", node.value):
                message = f"a number of {len(node.value):,} digits is more than YAML can read"
                hint = "put it in quotes to keep it as text, or shorten it"
            else:
                message = f"{node.value!r} is not {_KINDS.get(kind, kind)}, as '!!{kind}' says"
                hint = f"remove the '!!{kind}' before it, or put the text in quotes"
            problems.append(Problem(file_label, message, node.start_mark.line + 1, node.start_mark.column + 1,
                                    path or None, hint))
    return problems


_KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "binary": "base64"}
_BUILT = {f"tag:yaml.org,2002:{name}" for name in ("timestamp", *_KINDS)}


def all_nodes(root: yaml.Node) -> list[tuple[str, yaml.Node]]:
    """Every node of a tree (keys included) with its field path, in the file's order; the tree holds no alias."""
    found = []
    stack: list[tuple[str, yaml.Node]] = [("", root)]
    while stack:
        path, node = stack.pop()
        found.append((path, node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                stack += [(path, key), (f"{path}.{name}" if path else str(name), value)]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(f"{path}[{index}]", value) for index, value in enumerate(node.value)]
    return sorted(found, key=lambda item: (item[1].start_mark.line, item[1].start_mark.column))


def load_document(path: Path, schema: Record, *, file_label: str) -> Any:
    """Read, parse and validate one YAML file; raise InputError with every problem found."""
    text, root = read_yaml(path, file_label)
    out = Collector(file_label, text)
    if root is None:
        out.add(None, None, "the file is empty", hint="see docs/issue-format.md: one complete example")
        out.raise_if_any()
    value = schema.check(root, "", out)
    out.raise_if_any()
    return value


# --- shared validators -----------------------------------------------------------------------

_LANG_TAG = re.compile(
    r"(?i)^[a-z]{2,3}(-[a-z]{3}){0,3}"  # language and extended language subtags
    r"(-[a-z]{4})?"  # script, e.g. Hant
    r"(-([a-z]{2}|\d{3}))?"  # region, e.g. TW or 419
    r"(-([a-z\d]{5,8}|\d[a-z\d]{3}))*$"  # variants
)


def check_lang(text: str) -> str | None:
    if not _LANG_TAG.match(text):
        return f"{text!r} is not a language tag (BCP 47), e.g. 'en', 'zh', 'zh-Hant', 'pt-BR'"
    return None


def check_http_url(text: str) -> str | None:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        return f"must be an absolute http(s) URL like https://example.com/page, not {text!r}"
    return None


def replace(value: Any, **changes: Any) -> Any:
    return dataclasses.replace(value, **changes)

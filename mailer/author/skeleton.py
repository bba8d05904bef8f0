"""`mailer new`: next week's issue file, written from the latest issue's structure.

What stays: the order of the parts, the newsletter's fixed parts (its title, the hero slot, the
footer, `lang`) and the section headings that recur from issue to issue. What goes: every text of
the week, replaced by a TODO that `mailer check` reports and `mailer send` refuses, and the week's
links, pictures and dataset (a comment says where they go). The date moves to the new one, in the
subject too when the subject carries it, and the issue number goes up by one (in the subject too:
'#41', 'No. 41', 'Issue 41').

The file is written with ruamel.yaml, so the comments, key order and quoting the editor keeps in
their issues carry over.
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from mailer.config import Config
from mailer.errors import InputError, Problem
from mailer.schema import all_nodes, display_path, node_value, read_yaml, values_yaml_cannot_build

TODO_TEXT = "TODO"
# Formats a date is written in, in subjects and titles ("The NLP Cypher | 12.13.20").
DATE_FORMATS = ("%Y-%m-%d", "%m.%d.%y", "%m.%d.%Y", "%d.%m.%Y", "%m/%d/%y", "%m/%d/%Y", "%d/%m/%Y",
                "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%B %-d, %Y", "%b %-d, %Y", "%-d %B %Y", "%Y年%-m月%-d日")
SUNDAY = 6
# Lists of the week's own items: emptied, with a comment saying what goes there.
WEEKLY_LISTS = {
    "cards": "this week's links, one '- url: https://…' each; `mailer cards` fills in titles and descriptions",
    "repos": "this week's repositories: '- name: owner/repo' and 'url: https://github.com/…'",
    "list": "this week's list: '- title: …' and 'url: https://…'",
    "images": "pictures: '- url: img/….png' and 'alt: what the picture shows'",
}


@dataclass(frozen=True)
class NewIssue:
    path: Path
    text: str
    source: Path
    kept_headings: tuple[str, ...]
    left_out: tuple[Problem, ...] = ()  # files in issues/ that do not read as an issue, and why
    passed_over: tuple[tuple[Path, str], ...] = ()  # newer drafts not started from, and why each is a draft
    source_is_draft: bool = False  # no finished issue to start from: the latest draft was taken


def next_sunday(today: date) -> date:
    """The first Sunday after today (a week on, when today is a Sunday)."""
    return today + timedelta(days=(SUNDAY - today.weekday() - 1) % 7 + 1)


def new_issue(issues_dir: Path, *, on: date, source: Path | None = None, config: Config | None = None,
              today: date | None = None) -> NewIssue:
    """Next week's issue text from `source` (default: the latest finished issue); raises InputError if it cannot be
    written.

    With `config`, the latest issue is the latest that is not a draft (mailer.checks.drafts: sent, or dated
    `today` or earlier without a check error): last week's unfinished file is no model for this week's.
    """
    from ruamel.yaml import YAML  # imported here: the CLI's --help must stay fast

    issues, left_out = _dated_issues(issues_dir)
    passed_over: list[tuple[Path, str]] = []
    source_is_draft = False
    if source is None:
        if not issues:
            raise InputError([Problem(display_path(issues_dir), "no issue to start from",
                                      hint="write the first one by hand: docs/issue-format.md is a complete example"),
                              *left_out])
        # The newsletter's own edition: a file named for its date alone (a translation is 2020-12-13-zh.yaml),
        # unless there is none.
        primary = [path for path, read in issues.items() if path.stem == read.date.isoformat()] or list(issues)
        latest = max(primary, key=lambda path: (issues[path].date, -len(path.name)))
        source = latest
        if config is not None:
            from mailer.checks.drafts import latest_finished

            finished, drafts = latest_finished(primary, config, today=today or date.today(),
                                               dates={path: issues[path].date for path in primary})
            passed_over = [(draft.path, draft.why) for draft in drafts]
            source = finished or latest
            source_is_draft = finished is None
    elif not source.is_file():
        raise InputError([Problem(display_path(source), "no such issue file", hint="give an issue file in issues/")])
    source_text, root = read_yaml(source, display_path(source))
    _refuse_what_ruamel_cannot_take(root, display_path(source))
    summary = issues.get(source) or _summary(root)
    old_date = summary.date if summary else None
    # 2020-12-13-zh.yaml → DATE-zh.yaml: a translation's next issue stays a translation.
    dated = old_date is not None and source.stem.startswith(old_date.isoformat())
    suffix = source.stem[len(old_date.isoformat()):] if dated and old_date else ""
    target = issues_dir / f"{on.isoformat()}{suffix}.yaml"
    if target.exists():
        raise InputError([Problem(display_path(target), "already exists: mailer new never overwrites an issue",
                                  hint="edit that file, or give another date: mailer new YYYY-MM-DD")])

    round_trip = YAML()
    round_trip.preserve_quotes = True
    round_trip.width = 4096  # never fold a long line the editor wrote on one
    round_trip.indent(mapping=2, sequence=4, offset=2)
    try:
        data = round_trip.load(source_text)
    except Exception as err:  # ruamel.yaml's errors have no common base worth naming
        raise InputError([Problem(display_path(source), f"does not read as YAML: {err}",
                                  hint="mailer check names the problem")]) from None
    spacing = _blank_lines_before(data, source_text)
    recurring = _recurring_headings(issues, source, summary)
    kept = _make_next(data, old_date=old_date, on=on, recurring=recurring)
    out = io.StringIO()
    round_trip.dump(data, out)
    text = _with_blank_lines(out.getvalue(), spacing, round_trip)
    return NewIssue(target, text, source, tuple(kept), tuple(left_out), tuple(passed_over), source_is_draft)


def write_new_issue(new: NewIssue) -> None:
    """Create the file; refuses (FileExistsError) if it appeared in the meantime."""
    with open(new.path, "x", encoding="utf-8", newline="\n") as handle:
        handle.write(new.text)
        handle.flush()
        os.fsync(handle.fileno())


def _make_next(data: Any, *, old_date: date | None, on: date, recurring: set[str]) -> list[str]:
    data["date"] = on
    number = data.get("number") if isinstance(data.get("number"), int) else None
    for key in ("subject", "title"):
        if key in data and isinstance(data[key], str):
            moved = _move_number(_move_date(data[key], old_date, on), number)
            if key == "subject" and moved == data[key]:
                moved = f"{TODO_TEXT}: this week's subject (last week: {data[key]})"
            data[key] = _same_style(data[key], moved)
    if number is not None:
        data["number"] = number + 1
    if "preheader" in data:
        data["preheader"] = _same_style(data["preheader"], f"{TODO_TEXT}: the line inboxes show after the subject")
    hero = data.get("hero")
    if isinstance(hero, dict):  # the slot stays, last week's picture with it until the editor replaces it
        hero["alt"] = _same_style(hero.get("alt"), f"{TODO_TEXT} (describe this week's picture, and change its url)")
        if "caption" in hero:
            hero["caption"] = _same_style(hero["caption"], TODO_TEXT)
    if "intro" in data:
        data["intro"] = _same_style(data["intro"], TODO_TEXT)
    kept = []
    for section in data.get("sections") or []:
        if not isinstance(section, dict):
            continue
        heading = section.get("heading")
        if isinstance(heading, str) and heading.strip() in recurring:
            kept.append(heading)
        else:
            section["heading"] = _same_style(heading, f"{TODO_TEXT} (this week's heading)")
        for key in ("body", "after"):
            if key in section:
                section[key] = _same_style(section[key], TODO_TEXT)
        for key, what in WEEKLY_LISTS.items():
            if key in section:
                section[key] = None
                section.yaml_add_eol_comment(f"{TODO_TEXT}: {what}", key)
        if "dataset" in section:
            section["dataset"] = None
            section.yaml_add_eol_comment(f"{TODO_TEXT}: this week's dataset: name, url, description", "dataset")
    return kept


def _blank_lines_before(data: Any, text: str) -> set[tuple[str, Any]]:
    """Which top-level keys and which sections the editor's file sets off with a blank line.

    ruamel.yaml keeps a blank line as part of the value before it, so emptying that value loses it.
    """
    lines = text.split("\n")
    found: set[tuple[str, Any]] = set()
    for key in data:
        line = data.lc.key(key)[0]
        if line > 0 and not lines[line - 1].strip():
            found.add(("key", key))
    sections = data.get("sections")
    if hasattr(sections, "lc"):
        for index in range(1, len(sections)):
            line = sections.lc.item(index)[0]
            if line > 0 and not lines[line - 1].strip():
                found.add(("section", index))
    return found


def _with_blank_lines(text: str, spacing: set[tuple[str, Any]], round_trip: Any) -> str:
    data = round_trip.load(text)
    lines = text.split("\n")
    wanted = {data.lc.key(key)[0] for kind, key in spacing if kind == "key" and key in data}
    sections = data.get("sections")
    if hasattr(sections, "lc"):
        wanted |= {sections.lc.item(index)[0] for kind, index in spacing
                   if kind == "section" and index < len(sections)}
    for line in sorted(wanted, reverse=True):
        if line > 0 and lines[line - 1].strip():
            lines.insert(line, "")
    return "\n".join(lines)


def _move_number(text: str, number: int | None) -> str:
    """'Digest #41' → 'Digest #42' (also 'No. 41', 'Issue 41'), when the issue has a number."""
    if number is None:
        return text
    return re.sub(rf"(#|\bNo\.\s?|\bIssue\s)({number})(?!\d)", lambda m: f"{m.group(1)}{number + 1}", text,
                  flags=re.IGNORECASE)


def _move_date(text: str, old: date | None, new: date) -> str:
    """The old date, in each format the text writes it, replaced by the new one in that format."""
    if old is None:
        return text
    # Longest first, and never inside a longer number: "12.13.2020" is not "12.13.20" followed by "20".
    for pattern in sorted(DATE_FORMATS, key=lambda p: -len(old.strftime(p))):
        written = re.compile(rf"(?<!\d){re.escape(old.strftime(pattern))}(?!\d)")
        text = written.sub(lambda _, pattern=pattern: new.strftime(pattern), text)
    return text


def _same_style(old: Any, text: str) -> Any:
    """`text` in the quoting the old value was written in (a literal block stays a block)."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString, SingleQuotedScalarString

    for kind in (LiteralScalarString, DoubleQuotedScalarString, SingleQuotedScalarString):
        if isinstance(old, kind):
            return kind(text + "\n" if kind is LiteralScalarString else text)
    return text


class _Summary(NamedTuple):
    """What mailer new needs of an existing issue, from one read of it."""

    date: date
    lang: str
    headings: frozenset[str]


def _dated_issues(issues_dir: Path) -> tuple[dict[Path, _Summary], list[Problem]]:
    """Every issue in the folder with what mailer new needs of it; and the files left out, with why."""
    found, left_out = {}, []
    for path in sorted(issues_dir.glob("*.yaml")):
        label = display_path(path)
        try:
            _, root = read_yaml(path, label)
            _refuse_what_ruamel_cannot_take(root, label)  # as a source it would stop mailer new
        except InputError as err:
            left_out.append(err.problems[0])
            continue
        read = _summary(root)
        if read:
            found[path] = read
            continue
        written = node_value(root, "date") if isinstance(root, yaml.MappingNode) else None
        if written is None:
            left_out.append(Problem(label, "has no date, so it is not an issue to start from", field="date"))
        else:
            left_out.append(Problem(label, f"{_text(written)!r} is not a date (YYYY-MM-DD)",
                                    written.start_mark.line + 1, written.start_mark.column + 1, "date"))
    return found, left_out


def _summary(root: yaml.Node | None) -> _Summary | None:
    """An issue's date, language and headings, as written; None for a file that does not read as an issue."""
    if not isinstance(root, yaml.MappingNode):
        return None
    try:
        day = date.fromisoformat(_text(node_value(root, "date")))
    except ValueError:
        return None
    sections = node_value(root, "sections")
    headings = frozenset(_text(node_value(section, "heading"))
                         for section in (sections.value if isinstance(sections, yaml.SequenceNode) else ())
                         if isinstance(section, yaml.MappingNode))
    return _Summary(day, _text(node_value(root, "lang")) or "en", headings)


def _text(node: yaml.Node | None) -> str:
    return node.value.strip() if isinstance(node, yaml.ScalarNode) else ""


def _refuse_what_ruamel_cannot_take(root: yaml.Node | None, label: str) -> None:
    """The source's problems that would stop ruamel.yaml's reading or the rewrite, with line and column."""
    if not isinstance(root, yaml.MappingNode) or root.tag != _MAP:  # a list, a `!!set`…
        where = (root.start_mark.line + 1, root.start_mark.column + 1) if root else (None, None)
        raise InputError([Problem(label, "is not an issue (a mapping of subject, date, sections…)", *where,
                                  hint="start from an issue file in issues/")])
    problems = values_yaml_cannot_build(root, label)
    # ruamel.yaml builds these as sets and ordered maps, and writes a set in a list as YAML it cannot read back.
    problems += [Problem(label, f"a YAML {node.tag.replace('tag:yaml.org,2002:', '!!')}: an issue holds "
                         "mappings and lists only", node.start_mark.line + 1, node.start_mark.column + 1, path or None,
                         hint="remove the tag, and write a list ('- ' items) or a mapping (key: value lines)")
                 for path, node in all_nodes(root) if node.tag in _SPECIAL]
    number = node_value(root, "number")
    if isinstance(number, yaml.ScalarNode) and number.tag != _NULL and \
            not re.fullmatch(r"[+-]?\d{1,18}", str(number.value).strip()):
        # ruamel.yaml reads 0x…, 0o… and numbers of any length, which the new file's number (one more) could
        # not be written from (Python's limit of 4,300 digits): what build and check take, nothing else.
        problems.append(Problem(label, f"must be a whole number of at most 18 digits, not "
                                f"{_shortened(str(number.value))!r}", number.start_mark.line + 1,
                                number.start_mark.column + 1, "number", hint="write the issue's number, e.g. 42"))
    sections = node_value(root, "sections")
    if sections is not None and sections.tag not in (_SEQ, _NULL, *_SPECIAL):  # a mapping, a text…
        problems.append(Problem(label, "must be a list (items starting with '- ')", sections.start_mark.line + 1,
                                sections.start_mark.column + 1, "sections"))
    if problems:
        raise InputError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))


_MAP, _SEQ, _NULL = (f"tag:yaml.org,2002:{name}" for name in ("map", "seq", "null"))


def _shortened(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"
_SPECIAL = {f"tag:yaml.org,2002:{name}" for name in ("set", "omap", "pairs")}


def _recurring_headings(issues: dict[Path, _Summary], source: Path, summary: _Summary | None) -> set[str]:
    """Headings that appear in two or more issues of the source's language, the source among them."""
    lang = summary.lang if summary else "en"
    counts: Counter[str] = Counter()
    for path, read in issues.items():
        if read.lang == lang and path != source:
            counts.update(read.headings)
    if summary is not None:
        counts.update(summary.headings)
    return {heading for heading, count in counts.items() if count >= 2}

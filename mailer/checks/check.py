"""`mailer check`: what breaks a newsletter, found before anyone receives it.

Each finding has a severity, a place (file:line and field path, or the layout file), what is
wrong and how to fix it. Three kinds of report: one per issue (its YAML and the email built from
it), one for the workspace (mailer.yaml and the layouts, shared by every issue) and one for a
subscribers file. The same functions serve the CLI, the preview page and `mailer send`.
"""

from __future__ import annotations

import html
import quopri
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from mailer.checks import textcheck
from mailer.compose import markdown, placeholders
from mailer.compose.build import RenderedIssue, render_issue
from mailer.compose.issue import load_issue
from mailer.compose.linebreak import display_width
from mailer.compose.render import available_layouts
from mailer.config import CONFIG_NAME, Config
from mailer.errors import InputError, MailerError, Problem
from mailer.schema import display_path, node_value, position_in_value, read_yaml

SEVERITIES = ("error", "warning", "info")
# The checks, in the order they are reported; a report lists those that found nothing as passed.
CHECKS = {
    "input": "The file loads",
    "size": "Size",
    "images": "Images",
    "links": "Links",
    "text": "Text",
    "compliance": "Compliance",
    "markup": "Layout markup",
    "subscribers": "Subscribers",
}
CLIP_WARN_BYTES = 90 * 1024  # warn this close to Gmail's limit: click tracking makes every link longer
MESSAGE_WARN_BYTES = 512 * 1024  # slow on a phone and scored by spam filters
IMAGE_WARN_BYTES = 1024 * 1024
SUBJECT_CHARS = 60  # phone inbox lists show about this many
PREHEADER_CHARS = (20, 140)  # shorter: the inbox fills the rest with the body; longer: cut off
# Fields holding markdown, by their last key.
_MARKDOWN_KEYS = {"intro", "body", "after", "signoff", "description"}
_PROSE_SKIP = {"url", "lang", "dir", "date", "number", "name"}  # not prose: for the language check
_ALT_FILLER = re.compile(r"^(image|img|picture|photo|screenshot|graphic|banner|logo)\s*\d*$|\.(png|jpe?g|gif|webp)$",
                         re.IGNORECASE)
_EXAMPLE_DOMAIN = re.compile(r"(^|\.)(example\.(com|org|net)|localhost|invalid|test)$")
_PLACEHOLDER_HREFS = {placeholders.UNSUBSCRIBE_URL, placeholders.WEB_URL}


@dataclass(frozen=True)
class Finding:
    severity: str  # "error", "warning" or "info"
    check: str  # a key of CHECKS
    code: str  # stable identifier, e.g. "text.mojibake"
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None
    hint: str | None = None

    @property
    def where(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.field}" if self.field else where

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "check": self.check, "code": self.code, "file": self.file,
                "line": self.line, "column": self.column, "field": self.field, "message": self.message,
                "hint": self.hint}


@dataclass
class CheckReport:
    """The findings for one thing checked: an issue file, the workspace or a subscribers file."""

    kind: str  # "issue", "workspace" or "subscribers"
    subject: str  # what was checked, as the user names it
    findings: list[Finding] = field(default_factory=list)
    checks: tuple[str, ...] = ()  # the checks that ran
    facts: dict[str, Any] = field(default_factory=dict)  # sizes, counts: shown, never judged
    rendered: RenderedIssue | None = None
    # Every http(s) link and image address of an issue with where it is written, for --links.
    addresses: list[tuple[str, Finding]] = field(default_factory=list, repr=False)

    def count(self, severity: str) -> int:
        return sum(1 for finding in self.findings if finding.severity == severity)

    @property
    def passed(self) -> list[str]:
        failed = {finding.check for finding in self.findings if finding.severity != "info"}
        return [name for name in self.checks if name not in failed]

    def failed(self, *, strict: bool = False) -> bool:
        return self.count("error") > 0 or (strict and self.count("warning") > 0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "errors": self.count("error"),
                "warnings": self.count("warning"), "info": self.count("info"), "passed": self.passed,
                "facts": self.facts, "findings": [finding.to_dict() for finding in self.sorted_findings()]}

    def sorted_findings(self) -> list[Finding]:
        order = {severity: index for index, severity in enumerate(SEVERITIES)}
        return sorted(self.findings, key=lambda f: (order[f.severity], f.file or "", f.line or 0, f.column or 0))


# --- an issue ------------------------------------------------------------------------------------


def check_issue(issue_path: Path, config: Config, *, rendered: RenderedIssue | None = None) -> CheckReport:
    """Check one issue file and the email built from it (build it here unless `rendered` is given)."""
    label = display_path(issue_path)
    report = CheckReport("issue", label)
    try:
        if rendered is None:
            rendered = render_issue(load_issue(issue_path, label=label, layouts=available_layouts(config.layouts_dir)),
                                    config)
    except MailerError as err:
        return unbuilt_report(issue_path, err)
    report.rendered = rendered
    report.checks = ("input", "size", "images", "links", "text", "compliance", "markup")
    text, root = read_yaml(issue_path, label)
    scalars = list(_scalars(root, "")) if root is not None else []
    source = _Source(label, issue_path.parent, text, scalars)
    report.findings += source.findings(rendered, config)
    report.findings += _rendered_findings(rendered, config, label, source, report.facts)
    report.findings += _same_as_another_issue(rendered, issue_path, config, source)
    report.addresses = source.addresses()
    return report


def unbuilt_report(issue_path: Path, err: MailerError) -> CheckReport:
    """The report of an issue that does not build: what stopped it, as errors of the input check."""
    label = display_path(issue_path)
    report = CheckReport("issue", label, checks=("input",))
    if isinstance(err, InputError):
        report.findings += [_from_problem(problem, "input", "input.invalid") for problem in err.problems]
    else:
        report.findings.append(Finding("error", "input", "input.build-failed", str(err), file=label))
    return report


def _same_as_another_issue(rendered: RenderedIssue, issue_path: Path, config: Config,
                           source: _Source) -> list[Finding]:
    """Last week's file copied and not updated: the same subject (any language) or date (same language).

    The other files are read as written (their text, not YAML's guess at a date or a number), so a
    draft with a date that does not exist is compared like any other; one that cannot be read at all
    is a warning naming it, and this issue's check goes on.
    """
    issue = rendered.issue
    found: list[Finding] = []
    for other_path in sorted(config.issues_dir.glob("*.yaml")):
        if other_path.resolve() == issue_path.resolve():
            continue
        shown = display_path(other_path)
        try:
            _, other = read_yaml(other_path, shown)
        except InputError as err:
            problem = err.problems[0]
            found.append(Finding("warning", "text", "text.other-issue-unread",
                                 f"not compared with this issue for a repeated subject or date: {problem.message}",
                                 shown, problem.line, problem.column, problem.field,
                                 f"mailer check {shown} says what to fix there"))
            continue
        if not isinstance(other, yaml.MappingNode):
            continue
        if _top_level_text(other, "subject") == issue.subject:
            found.append(source.at("warning", "text", "text.same-subject", "subject", source.by_path.get("subject"),
                                   f"{shown} has the same subject: readers and the archive would see two issues "
                                   "as one", "give this week's issue its own subject"))
        same_language = (_top_level_text(other, "lang") or "en").lower() == issue.lang.lower()
        if _top_level_text(other, "date") == issue.date.isoformat() and same_language:
            found.append(source.at("warning", "text", "text.same-date", "date", source.by_path.get("date"),
                                   f"{shown} has the same date: a copy of last week's file, not updated?",
                                   "set this issue's date (a translation is told apart by its lang)"))
    return found


def _top_level_text(root: yaml.MappingNode, key: str) -> str:
    """The text written for a top-level key ('' when it is missing or not a single value)."""
    value = node_value(root, key)
    return value.value.strip() if isinstance(value, yaml.ScalarNode) else ""


def _from_problem(problem: Problem, check: str, code: str) -> Finding:
    return Finding("error", check, code, problem.message, problem.file, problem.line, problem.column,
                   problem.field, problem.hint)


def _scalars(node: yaml.Node, path: str) -> Iterator[tuple[str, yaml.ScalarNode]]:
    """Every string in the YAML tree with its field path (sections[2].links[0].url)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(value, f"{path}.{key.value}" if path else str(key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            yield from _scalars(value, f"{path}[{index}]")
    elif isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        yield path, node


@dataclass
class _Link:
    url: str
    text: str
    path: str
    node: yaml.ScalarNode
    offset: int = 0


class _Source:
    """Checks that read the issue's YAML itself, so each finding has its line."""

    def __init__(self, label: str, issue_dir: Path, text: str, scalars: list[tuple[str, yaml.ScalarNode]]):
        self.label = label
        self.issue_dir = issue_dir
        self.text = text
        self.scalars = scalars
        self.by_path = dict(scalars)

    def at(self, severity: str, check: str, code: str, path: str, node: yaml.ScalarNode | None, message: str,
           hint: str | None = None, offset: int = 0) -> Finding:
        line = column = None
        if node is not None:
            line, column = position_in_value(self.text, node, offset)
        return Finding(severity, check, code, message, self.label, line, column, path or None, hint)

    def findings(self, rendered: RenderedIssue, config: Config) -> list[Finding]:
        found: list[Finding] = []
        for path, node in self.scalars:
            for kind, hits in (("mojibake", textcheck.find_mojibake(node.value)),
                               ("invisible", textcheck.find_invisible(node.value)),
                               ("unfinished", textcheck.find_leftovers(node.value)),
                               ("placeholder", textcheck.find_placeholder_problems(node.value))):
                check = "links" if kind == "placeholder" else "text"
                found += [self.at(hit.severity, check, f"{check}.{kind}", path, node, hit.message, hit.hint,
                                  hit.start) for hit in hits]
        found += self._images()
        found += self._links()
        found += self._text(rendered, config)
        found += self._untitled_cards(rendered)
        return found

    def _untitled_cards(self, rendered: RenderedIssue) -> list[Finding]:
        found = []
        for s, section in enumerate(rendered.issue.sections):
            for c, card in enumerate(section.cards):
                if not card.title:
                    path = f"sections[{s}].cards[{c}]"
                    found.append(self.at("error", "text", "text.card-untitled", path + ".url",
                                         self.by_path.get(path + ".url"), "this card has no title",
                                         f"run `mailer cards {self.label}` to fill titles and descriptions "
                                         "from the pages, or write 'title:' yourself"))
        return found

    # --- images

    def _images(self) -> list[Finding]:
        found: list[Finding] = []
        for path, node in self.scalars:
            if not (path.endswith(".alt") or path == "alt"):
                continue
            if _ALT_FILLER.search(node.value.strip()):
                found.append(self.at("warning", "images", "images.alt-filler", path, node,
                                     f"alt text {node.value!r} says nothing about the picture",
                                     "describe what the picture shows: readers with images off or a "
                                     "screen reader get only this"))
            url_node = self.by_path.get(path[: -len("alt")] + "url")
            if url_node is not None and not urlsplit(url_node.value).scheme:
                local = self.issue_dir / url_node.value
                if local.is_file() and local.stat().st_size > IMAGE_WARN_BYTES:
                    found.append(self.at("warning", "images", "images.heavy", path[: -len("alt")] + "url", url_node,
                                         f"image {url_node.value!r} is {local.stat().st_size / 1024 / 1024:.1f} MB",
                                         "resize it to about twice its shown width (1200 px) and compress it: "
                                         "phones on mobile data load every image"))
        sections = {re.match(r"sections\[\d+\]", path).group(0)  # type: ignore[union-attr]
                    for path, _ in self.scalars if path.startswith("sections[")}
        for section in sorted(sections):
            fields = {path[len(section) + 1:].split(".")[0].split("[")[0]
                      for path, _ in self.scalars if path.startswith(section + ".")}
            if "images" in fields and not fields - {"images", "heading"}:
                node = self.by_path.get(section + ".heading")
                found.append(self.at("warning", "images", "images.image-only", section, node,
                                     "this section's only content is images",
                                     "add a sentence in 'body': with images off (the default in many "
                                     "clients) the section is empty, and image-only mail looks like spam"))
        return found

    # --- links

    def links(self) -> list[_Link]:
        """Every link in the issue: url fields (with their title/label/name as text) and markdown links."""
        found: list[_Link] = []
        for path, node in self.scalars:
            key = path.rsplit(".", 1)[-1]
            parent = path[: -len(key) - 1] if "." in path else ""
            if key == "url":
                if (f"{parent}.alt" if parent else "alt") in self.by_path:
                    continue  # an image
                text_node = next((self.by_path[f"{parent}.{name}"] for name in ("title", "label", "name")
                                  if f"{parent}.{name}" in self.by_path), None)
                found.append(_Link(node.value, text_node.value if text_node else "", path, node))
            elif key.split("[")[0] in _MARKDOWN_KEYS:
                for target in markdown.targets(node.value):
                    if target.kind == "link":
                        found.append(_Link(target.url, target.text, path, node, target.offset))
        return found

    def addresses(self) -> list[tuple[str, Finding]]:
        """Every http(s) link and image address, with a location-only Finding to copy from."""
        found = []
        for link in self.links():
            if urlsplit(link.url).scheme.lower() in ("http", "https"):
                found.append((link.url, self.at("info", "links", "", link.path, link.node, "", offset=link.offset)))
        for path, node in self.scalars:
            image = path.endswith("url") and (path[: -len("url")] + "alt") in self.by_path
            if image and urlsplit(node.value).scheme == "https":
                found.append((node.value, self.at("info", "images", "", path, node, "")))
        return found

    def _links(self) -> list[Finding]:
        found: list[Finding] = []
        first_text: dict[str, _Link] = {}
        for link in self.links():
            scheme = urlsplit(link.url).scheme.lower()
            if link.url in _PLACEHOLDER_HREFS or scheme == "mailto":
                continue
            if link.path.startswith("footer.social"):
                continue  # named after the network ("Twitter"), not what the link is: never compared
            netloc = urlsplit(link.url).netloc
            tag = next((p for p in placeholders.KNOWN if p in netloc), None) or placeholders.SHAPE.search(netloc)
            if tag:
                tag = tag if isinstance(tag, str) else tag.group(0)
                found.append(self.at("error", "links", "links.placeholder-host", link.path, link.node,
                                     f"{link.url!r} has {tag} in its host: each reader would be sent to an "
                                     "address their own data makes up", "keep per-recipient fields in the "
                                     "path or the query (https://example.com/welcome?name=-first_name-)",
                                     link.offset + max(link.url.find(tag), 0)))
                continue
            if scheme == "http":
                found.append(self.at("warning", "links", "links.insecure", link.path, link.node,
                                     f"{link.url!r} is not https", "use the https:// address if the site has "
                                     "one: browsers warn about plain http", link.offset))
            text = " ".join(link.text.split()).casefold()
            earlier = first_text.setdefault(link.url, link)
            earlier_text = " ".join(earlier.text.split()).casefold()
            # "CrossNER" and "zliucr/CrossNER" name the same thing: only texts that share nothing.
            if earlier is not link and text and earlier_text and text not in earlier_text and earlier_text not in text:
                line = position_in_value(self.text, earlier.node, earlier.offset)[0]
                found.append(self.at("warning", "links", "links.same-url-different-text", link.path, link.node,
                                     f"{link.url} is linked as {link.text!r} here and as {earlier.text!r} on line "
                                     f"{line}", "if one of them should go somewhere else, fix its URL; "
                                     "otherwise use the same words", link.offset))
        return found

    # --- text

    def _text(self, rendered: RenderedIssue, config: Config) -> list[Finding]:
        found: list[Finding] = []
        subject = placeholders.fill(rendered.subject, {"first_name": config.fallback_for(rendered.issue.lang)})
        if display_width(subject) > SUBJECT_CHARS:
            found.append(self.at("warning", "text", "text.subject-long", "subject", self.by_path.get("subject"),
                                 f"the subject is {_length(subject)}; phone inboxes show about "
                                 f"{SUBJECT_CHARS}", "put what matters in the first 40 characters"))
        capitals = textcheck.subject_capitals(subject)
        if capitals:
            found.append(self.at("warning", "text", "text.subject-all-caps", "subject", self.by_path.get("subject"),
                                 f"every Latin letter of the subject is a capital ({capitals}): spam filters read "
                                 "it as shouting (SpamAssassin's SUBJ_ALL_CAPS counts only A to Z, so Chinese, "
                                 "Japanese and Korean text beside an acronym does not help)",
                                 "write a word with lower-case letters in it (the newsletter's name, 'The NLP "
                                 "Cypher 中文版', not 'NLP 密码'), or no Latin letters at all"))
        low, high = PREHEADER_CHARS
        preheader = rendered.preheader.strip()
        if display_width(preheader) < low:
            found.append(self.at("warning", "text", "text.preheader-short", "preheader",
                                 self.by_path.get("preheader"), f"the preheader is {_length(preheader)}",
                                 f"write {low}–{high}: inboxes fill the rest of the line with the start of the "
                                 "email (\"View in browser\")"))
        elif display_width(preheader) > high:
            found.append(self.at("warning", "text", "text.preheader-long", "preheader",
                                 self.by_path.get("preheader"), f"the preheader is {_length(preheader)}; "
                                 f"inboxes show at most about {high}", "put what matters first"))
        prose = [node.value for path, node in self.scalars if path.rsplit(".", 1)[-1].split("[")[0] not in _PROSE_SKIP]
        mismatch = textcheck.script_mismatch(rendered.issue.lang, prose)
        if mismatch:
            found.append(self.at("warning", "text", "text.lang-script", "lang", self.by_path.get("lang"), mismatch,
                                 "set 'lang' to the language the issue is written in: it picks the layout's "
                                 "words, the text direction, and what screen readers speak"))
        return found


def _length(text: str) -> str:
    """'72 characters', or with the room they take when that differs ('31 characters, as wide as 62')."""
    width = display_width(text)
    return f"{len(text)} characters" + (f", as wide as {width} Latin letters" if width != len(text) else "")


def _rendered_findings(rendered: RenderedIssue, config: Config, label: str, source: _Source,
                       facts: dict[str, Any]) -> list[Finding]:
    """Checks on the built email: what the layouts and settings put around the content."""
    found: list[Finding] = []
    layouts = display_path(config.layouts_dir) + "/"
    from mailer.deliver.message import sample_message

    message = sample_message(rendered, config)
    sizes = _sizes(rendered, config, message)
    facts.update(sizes)
    from mailer.deliver.message import GMAIL_CLIP_BYTES, kilobytes

    limit_kb = GMAIL_CLIP_BYTES / 1024
    html_kb = kilobytes(sizes["html_part_bytes"])
    if sizes["html_part_bytes"] > GMAIL_CLIP_BYTES:
        found.append(Finding("error", "size", "size.gmail-clip", f"the HTML part is {html_kb}: Gmail clips "
                             f"messages over {limit_kb:.0f} KB, hiding the end of the email and its unsubscribe "
                             "link behind \"[Message clipped]\"", label,
                             hint="shorten the issue or split it; fewer sections or shorter link descriptions"))
    elif sizes["html_part_bytes"] > CLIP_WARN_BYTES:
        found.append(Finding("warning", "size", "size.gmail-clip-close", f"the HTML part is {html_kb}, "
                             f"close to Gmail's {limit_kb:.0f} KB clipping limit", label,
                             hint="click tracking makes every link longer when the email is sent: leave room"))
    elif sizes["html_quoted_printable_bytes"] > GMAIL_CLIP_BYTES:
        found.append(Finding("warning", "size", "size.gmail-clip-encoded", "encoded as quoted-printable (as some "
                             f"relays re-encode mail) the HTML part would be "
                             f"{sizes['html_quoted_printable_bytes'] / 1024:.1f} KB, over Gmail's clipping limit",
                             label, hint="non-ASCII text triples in size when quoted-printable: shorten the issue"))
    if sizes["message_bytes"] > MESSAGE_WARN_BYTES:
        found.append(Finding("warning", "size", "size.message", f"the whole message is "
                             f"{sizes['message_bytes'] / 1024:.0f} KB", label,
                             hint="link to long content instead of including it"))
    # Placeholders the content does not have came from the layouts.
    content = "\n".join(node.value for _, node in source.scalars)
    for part_name, text in (("subject", rendered.subject), ("HTML part", rendered.html), ("text part", rendered.text)):
        for hit in textcheck.find_placeholder_problems(text):
            if hit.found not in content:
                found.append(Finding("error", "markup", "markup.placeholder", f"{hit.message} (in the {part_name})",
                                     layouts, hint=hit.hint))
        leftover = re.search(r"\{\{|\{%|\}\}|%\}", text)
        if leftover and leftover.group(0) not in content:
            found.append(Finding("error", "markup", "markup.template-syntax", f"template syntax "
                                 f"{text[leftover.start(): leftover.start() + 30]!r} reached the {part_name}",
                                 layouts, hint="a layout prints Jinja syntax as text: check its {{ }} and {% %}"))
    for tag in re.findall(r"<img\b[^>]*>", rendered.html):
        alt = re.search(r"\balt=(\"[^\"]*\"|'[^']*')", tag)
        if alt is None or not alt.group(1)[1:-1].strip():
            src = re.search(r"\bsrc=\"([^\"]*)\"", tag)
            found.append(Finding("error", "images", "images.alt-missing", f"an image has no alt text: "
                                 f"{src.group(1) if src else tag[:60]}", layouts,
                                 hint="give every <mj-image> an alt attribute"))
        src_match = re.search(r"\bsrc=\"([^\"]*)\"", tag)
        src = html.unescape(src_match.group(1)) if src_match else ""
        if src.startswith("data:"):
            found.append(Finding("error", "images", "images.data-uri", "an image is embedded as a data: URI",
                                 layouts, hint="Gmail and Outlook block data: images; serve it from web_base_url"))
        elif src and urlsplit(src).scheme != "https":
            found.append(Finding("error", "images", "images.not-https", f"image {src[:80]!r} is not an https URL",
                                 CONFIG_NAME if src.startswith(config.web_base_url) else layouts,
                                 field="web_base_url" if src.startswith(config.web_base_url) else None,
                                 hint="email clients block images that are not https"))
    for href in re.findall(r"<a\b[^>]*\bhref=\"([^\"]*)\"", rendered.html):
        href = html.unescape(href)
        scheme = urlsplit(href).scheme.lower()
        if href in _PLACEHOLDER_HREFS or scheme in ("http", "https", "mailto"):
            continue
        found.append(Finding("error", "links", "links.not-absolute", f"link {href[:80]!r} is not an absolute "
                             "http(s) or mailto: URL", layouts, hint="email has no current page: write the full "
                             "address, e.g. https://example.com/page"))
    found += _compliance(rendered, config, label, message)
    return found


def _sizes(rendered: RenderedIssue, config: Config, message: Any) -> dict[str, int]:
    from mailer.deliver.message import email_size

    html_bytes = rendered.html.encode("utf-8")
    quoted = quopri.encodestring(html_bytes)
    size = email_size(rendered, config, message)  # the one size build, preview and send show too
    return {
        "html_bytes": len(html_bytes),
        "html_part_bytes": size.html_part,
        "html_quoted_printable_bytes": len(quoted) + quoted.count(b"\n"),  # CRLF, as html_part_bytes
        "text_bytes": size.text_part,
        "message_bytes": size.message,
    }


def _compliance(rendered: RenderedIssue, config: Config, label: str, headers: Any) -> list[Finding]:
    found: list[Finding] = []
    layouts = display_path(config.layouts_dir) + "/"
    for part, text in (("HTML", rendered.html), ("text", rendered.text)):
        if placeholders.UNSUBSCRIBE_URL not in text:
            found.append(Finding("error", "compliance", "compliance.unsubscribe-link", f"the {part} part has no "
                                 "unsubscribe link", layouts, hint=f"the footer must link to "
                                 f"{placeholders.UNSUBSCRIBE_URL}: the law (CAN-SPAM, GDPR) and Gmail require it"))
        address = html.escape(config.postal_address, quote=False) if part == "HTML" else config.postal_address
        lines = [line.strip() for line in address.splitlines() if line.strip()]
        if not all(line in text for line in lines):
            found.append(Finding("error", "compliance", "compliance.postal-address", f"the {part} part does not "
                                 "show the postal address", layouts, hint="the footer must print postal_address "
                                 "from mailer.yaml: CAN-SPAM requires it"))
    # Managed by SendGrid: its subscription tracking (or unsubscribe group) adds these headers itself.
    for name in () if config.managed_unsubscribe else ("List-Unsubscribe", "List-Unsubscribe-Post"):
        if not headers.get(name):
            found.append(Finding("error", "compliance", "compliance.header", f"messages lack the {name} header",
                                 label, hint="Gmail and Yahoo require one-click unsubscribe (RFC 8058)"))
    return found


# --- the workspace: settings and layouts ---------------------------------------------------------


def check_workspace(config: Config) -> CheckReport:
    """Check mailer.yaml and the layouts: what every issue shares."""
    from mailer.compose.mjml_schema import scan_layouts

    report = CheckReport("workspace", display_path(config.workspace / CONFIG_NAME), checks=("compliance", "markup"))
    config_label = display_path(config.workspace / CONFIG_NAME)
    examples = [name for name, value in (("from.email", config.sender.email), ("reply_to", config.reply_to or ""),
                                         ("web_base_url", config.web_base_url),
                                         ("unsubscribe_url", config.unsubscribe_url))
                if value and _EXAMPLE_DOMAIN.search(_host(value))]
    if examples:
        report.findings.append(Finding("warning", "compliance", "compliance.example-address",
                                       "example addresses in the settings: " + ", ".join(examples), config_label,
                                       hint="replace them with your own before a live send: replies, images, "
                                       "\"view in browser\" and unsubscribe links would go nowhere"))
    if not config.managed_unsubscribe and not config.unsubscribe_by_mail:
        report.findings.append(Finding(
            "info", "compliance", "compliance.no-mailto", "List-Unsubscribe carries only the https link, no mailto: "
            "nothing here reads mail sent to it (neither MAILER_INBOUND_KEY nor MAILER_MAILBOX_URL is set)",
            config_label, hint="one-click unsubscribe (RFC 8058) needs only the https link; to offer the mailto: too, "
            "have it read: SendGrid's Inbound Parse into mailer serve, or an IMAP mailbox for `mailer suppressions "
            "pull` (docs/mail-that-comes-back.md)"))
    for name, value in (("web_base_url", config.web_base_url), ("unsubscribe_url", config.unsubscribe_url)):
        if value and urlsplit(value).scheme != "https":
            report.findings.append(Finding("warning", "compliance", "compliance.not-https", f"{name} is not https",
                                           config_label, field=name, hint="clients block http images, and "
                                           "Gmail's one-click unsubscribe needs https"))
    for problem in scan_layouts(config.layouts_dir):
        report.findings.append(Finding("error", "markup", "markup.mjml", problem.message,
                                       display_path(problem.path), problem.line, problem.column, hint=problem.hint))
    return report


def _host(value: str) -> str:
    if "@" in value and "://" not in value:
        return value.rpartition("@")[2].lower()
    return (urlsplit(value).hostname or "").lower()


# --- a subscribers file --------------------------------------------------------------------------

_LISTED = 10  # lines named in a summary finding before "…"


def check_subscribers(path: Path, *, encoding: str | None = None,
                      suppressed: Callable[[list[str]], dict[str, str]] | None = None,
                      cache_dir: Path | None = None) -> CheckReport:
    """Check a subscribers CSV: invalid rows (errors), duplicates (warnings), who will be skipped (info).

    `suppressed` maps addresses (case-folded) to why they are in the local suppression list.
    `cache_dir`: the state folder's checked lists (mailer.audience.listcache): a list with no invalid row
    checked here is not checked again by a send of the same bytes named the same way (the same path as
    errors show it), nor here the second time.
    """
    from mailer.audience.listcache import read_subscribers_cached
    from mailer.audience.subscribers import NOT_MAILED, read_subscribers

    label = display_path(path)
    report = CheckReport("subscribers", label, checks=("subscribers",))
    try:
        if cache_dir is None:
            found = read_subscribers(path, file_label=label, encoding=encoding, skip_invalid=True)
        else:
            found = read_subscribers_cached(path, cache_dir, file_label=label, encoding=encoding, skip_invalid=True)
    except InputError as err:
        report.findings += [_from_problem(problem, "subscribers", "subscribers.unreadable")
                            for problem in err.problems]
        return report
    not_mailed: list[int] = []
    statuses: dict[str, int] = {}
    for skipped in found.skipped:
        if skipped.reason in NOT_MAILED:
            not_mailed.append(skipped.line)
            statuses[skipped.reason] = statuses.get(skipped.reason, 0) + 1
        elif not skipped.reason.startswith("duplicate"):
            report.findings.append(Finding("error", "subscribers", "subscribers.invalid", skipped.reason, label,
                                           skipped.line, hint="fix or delete the row: `mailer send` stops on it "
                                           "(or leaves it out with --skip-invalid)"))
    for warning in found.warnings:
        report.findings.append(Finding("warning", "subscribers", "subscribers.duplicate", warning.message, label,
                                       warning.line, hint="delete the extra row; if the names differ, keep the "
                                       "right one first"))
    if not_mailed:
        what = ", ".join(f"{count} {status}" for status, count in statuses.items())
        if list(statuses) == ["unsubscribed"]:
            what = f"{len(not_mailed)} unsubscribed {_plural(len(not_mailed), 'row')}"
        else:
            what = f"{len(not_mailed)} {_plural(len(not_mailed), 'row')} not subscribed ({what})"
        report.findings.append(Finding("info", "subscribers", "subscribers.unsubscribed",
                                       f"{what} will not be mailed (lines {_lines(not_mailed)})", label))
    report.facts["subscribed"] = len(found.subscribers)
    report.facts["unsubscribed"] = len(not_mailed)
    if suppressed is not None:
        reasons = suppressed([subscriber.key for subscriber in found.subscribers])
        hit = [subscriber for subscriber in found.subscribers if subscriber.key in reasons]
        if hit:
            examples = ", ".join(f"{s.email} ({reasons[s.key]}, line {s.line})" for s in hit[:3])
            report.findings.append(Finding("info", "subscribers", "subscribers.suppressed",
                                           f"{len(hit)} {_plural(len(hit), 'address', 'addresses')} in the local "
                                           f"suppression list will be skipped: {examples}"
                                           + (", …" if len(hit) > 3 else ""), label,
                                           hint="they unsubscribed, bounced or complained through SendGrid: "
                                           "remove them from the CSV or mark them unsubscribed"))
        report.facts["suppressed"] = len(hit)
    return report


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return word if count == 1 else (plural or word + "s")


def _lines(lines: list[int]) -> str:
    shown = ", ".join(str(line) for line in lines[:_LISTED])
    return shown + (", …" if len(lines) > _LISTED else "")


def _network_unreachable(reports: list[CheckReport], results: dict[str, Any], why: str) -> None:
    """No link to a public host got an answer: one warning, once, instead of one broken link per link."""
    said = False
    for report in reports:
        public = {url.strip() for url, _ in report.addresses
                  if (result := results.get(url.strip())) is not None and result.fetched and not result.local}
        counts = {"ok": 0, "broken": 0, "unchecked": 0}
        for url in {url.strip() for url, _ in report.addresses if url.strip() in results}:
            result = results[url]
            counts["unchecked" if url in public else str(result.verdict)] += 1
        report.facts["links_checked"] = {**counts, "network_unreachable": True}
        if not said:
            report.findings.append(Finding(
                "warning", "links", "links.network-unreachable", f"network unreachable: links not checked ({why})",
                report.subject, hint="connect this machine to the internet (or fix its DNS) and run "
                "`mailer check --links` again; nothing is wrong with the links that this could tell"))
            said = True
            if "links" not in report.checks:  # on the other reports, "links" would read as passed
                report.checks += ("links",)


def errors_in(reports: list[CheckReport]) -> list[Finding]:
    return [finding for report in reports for finding in report.sorted_findings() if finding.severity == "error"]


def check_links(reports: list[CheckReport], *, timeout: float = 10.0, concurrency: int = 4) -> None:
    """Ask every link and image of the issues whether it answers (HEAD, then GET); add findings.

    Errors are what a reader would surely hit (404/410, a name that does not resolve, a bad
    certificate, a redirect loop); warnings what may pass (403 to robots, 5xx, timeouts, 429).
    """
    from mailer.checks.linkcheck import Verdict, network_unreachable
    from mailer.checks.linkcheck import check_links as fetch

    urls = [url for report in reports for url, _ in report.addresses]
    results = {result.url: result for result in fetch(urls, timeout=timeout, concurrency=concurrency)}
    offline = network_unreachable(results.values())
    if offline is not None:
        _network_unreachable(reports, results, offline)
        return
    for report in reports:
        counts = {"ok": 0, "broken": 0, "unchecked": 0}
        seen: set[str] = set()
        for url, where in report.addresses:
            result = results.get(url.strip())
            if result is None or url in seen:
                continue
            seen.add(url)
            counts[str(result.verdict)] += 1
            if result.verdict is Verdict.OK:
                continue
            sure = result.status in (404, 410) or any(
                (result.reason or "").startswith(prefix)
                for prefix in ("name not resolved", "TLS", "too many redirects", "redirect loop"))
            severity = "error" if result.verdict is Verdict.BROKEN and sure else "warning"
            kind = "image" if where.check == "images" else "link"
            report.findings.append(replace(
                where, severity=severity, check="links", code="links.broken" if sure else "links.unreachable",
                message=f"{kind} {url} does not answer: {result.reason}" if result.verdict is Verdict.BROKEN
                else f"{kind} {url} could not be checked: {result.reason}",
                hint="fix or remove the link" if sure else "open it in a browser: some sites refuse robots or "
                "are down for a moment"))
        report.facts["links_checked"] = counts
        if "links" not in report.checks:
            report.checks += ("links",)

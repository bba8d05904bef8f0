"""The README and docs/ are part of the product: the quickstart, the examples, the pages and their links are checked.

The README is a guide (what mailer is, the two set-up commands, the editor's week, one line a command); the
reference is in docs/, one page per command (docs/mailer-COMMAND.md) and one per subject, each linked from the
README's table of commands or its reference list.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import click
import pytest

from mailer.cli.main import cli
from mailer.compose.issue import load_issue
from mailer.config import load_config
from tests.conftest import REPO
from tests.docs_pages import DOCS, README, anchors, headings, links, page, pages_in_readme_order


def yaml_block_after(text: str, heading: str) -> str:
    section = text.split(heading, 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_quickstart_is_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert README.index("make demo") < 300


def test_issue_format_example_is_a_valid_issue(tmp_path: Path) -> None:
    shutil.copytree(REPO / "issues" / "img", tmp_path / "img")
    path = tmp_path / "2026-11-29.yaml"
    path.write_text(yaml_block_after(page("issue-format.md"), "# The issue format"), encoding="utf-8")
    issue = load_issue(path)
    assert issue.number == 42
    assert [s.heading for s in issue.sections] == ["Fuzzy Secrets", "Repo Cypher", "Dataset of the Week: CrossNER"]
    assert issue.sections[0].list[1].links[1].label == "slides"
    assert issue.layout == "minimal" and issue.extra["sponsor"]["name"] == "Acme Labs"


def test_settings_example_is_valid(tmp_path: Path) -> None:
    (tmp_path / "mailer.yaml").write_text(yaml_block_after(page("settings.md"), "# Newsletter settings"),
                                          encoding="utf-8")
    config = load_config(tmp_path)
    assert config.sender.email == "newsletter@example.com"


def all_commands() -> list[tuple[str, click.Command]]:
    """Every command, and every subcommand of a group ("suppressions pull")."""
    found = []
    for name, command in cli.commands.items():
        found.append((name, command))
        if isinstance(command, click.Group):
            found.extend((f"{name} {sub}", subcommand) for sub, subcommand in command.commands.items())
    return found


@pytest.mark.parametrize(("name", "command"), all_commands(), ids=[n for n, _ in all_commands()])
def test_every_command_is_documented_with_an_example(name: str, command: click.Command) -> None:
    top = name.split()[0]
    assert f"| [`mailer {top}`](docs/mailer-{top}.md) | " in README, f"`mailer {top}` has no line in the README's table"
    doc = page(f"mailer-{top}.md")
    assert doc.startswith(f"# `mailer {top}`\n")
    examples = "".join(re.findall(r"```sh\n(.*?)```", doc, re.S))
    assert re.search(rf"^mailer {name}( |$)", examples, re.M), f"docs/mailer-{top}.md has no example of `mailer {name}`"
    with click.Context(command, info_name=name) as ctx:
        help_text = command.get_help(ctx)
    assert "Examples:" in help_text and f"mailer {name} " in help_text
    for param in command.params:
        for option in getattr(param, "opts", []):
            if option.startswith("--") and option != "--help":
                assert option in doc, f"{option} of `mailer {name}` is not in docs/mailer-{top}.md"


def test_exit_codes_in_the_docs_match_the_enum() -> None:
    from mailer.errors import ExitStatus

    for status in ExitStatus:
        assert re.search(rf"^\| {status.value} \| ", page("errors.md"), re.M), status


def test_the_preview_page_shows_a_screenshot_of_the_preview() -> None:
    images = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", page("mailer-preview.md"))
    assert images, "docs/mailer-preview.md has no screenshot"
    for image in images:
        assert (DOCS / image).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), image


def test_the_readme_is_a_guide_with_one_line_a_command() -> None:
    sections = [heading for heading in headings(README) if heading.startswith("## ")]
    assert sections == ["## The editor's week", "## Commands", "## Reference"]
    table = README.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| \[`mailer ([a-z]+)`\]\(docs/mailer-\1\.md\) \| [^|\n]+ \|$", table, re.M)
    assert rows == list(dict.fromkeys(rows)) and set(rows) == set(cli.commands)
    assert len(re.findall(r"^\|", table, re.M)) == len(rows) + 2, "a line of the table is not one command's"


def test_every_page_of_docs_is_linked_from_the_readme() -> None:
    # What is not listed is neither found by a reader nor run by tests/test_readme_commands.py.
    assert sorted(pages_in_readme_order()) == sorted(path.name for path in DOCS.glob("*.md"))


@pytest.mark.parametrize("name", ["README.md", *sorted(path.name for path in DOCS.glob("*.md"))])
def test_every_relative_link_leads_to_a_file_and_heading_there_is(name: str) -> None:
    source = REPO / name if name == "README.md" else DOCS / name
    broken = []
    for target in links(source.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: (the web is not asked)
            continue
        path, _, anchor = target.partition("#")
        linked = (source.parent / path).resolve() if path else source
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked.read_text(encoding="utf-8"))):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == []


def test_every_environment_variable_send_names_is_documented_in_the_docs() -> None:
    from click.testing import CliRunner

    help_text = CliRunner().invoke(cli, ["send", "--help"]).output
    named = set(re.findall(r"^\s+([A-Z][A-Z0-9_]{5,})\s", help_text, re.M))
    assert {"SENDGRID_API_KEY", "MAILER_SMTP_URL", "MAILER_UNSUBSCRIBE_SECRET", "SSL_CERT_FILE"} <= named
    docs = "".join(page(path.name) for path in DOCS.glob("*.md"))
    assert [name for name in sorted(named) if f"`{name}`" not in docs] == []

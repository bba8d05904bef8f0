"""The README is part of the product: its quickstart, examples and command list are checked."""

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

README = (REPO / "README.md").read_text(encoding="utf-8")


def yaml_block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_quickstart_is_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    assert README.index("make demo") < 300


def test_issue_format_example_is_a_valid_issue(tmp_path: Path) -> None:
    shutil.copytree(REPO / "issues" / "img", tmp_path / "img")
    path = tmp_path / "2026-11-29.yaml"
    path.write_text(yaml_block_after("## The issue format"), encoding="utf-8")
    issue = load_issue(path)
    assert issue.number == 42
    assert [s.heading for s in issue.sections] == ["Fuzzy Secrets", "Repo Cypher", "Dataset of the Week: CrossNER"]
    assert issue.sections[0].list[1].links[1].label == "slides"
    assert issue.layout == "minimal" and issue.extra["sponsor"]["name"] == "Acme Labs"


def test_settings_example_is_valid(tmp_path: Path) -> None:
    (tmp_path / "mailer.yaml").write_text(yaml_block_after("## Newsletter settings"), encoding="utf-8")
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
    assert f"### `mailer {name.split()[0]}`" in README
    assert f"mailer {name}" in README
    with click.Context(command, info_name=name) as ctx:
        help_text = command.get_help(ctx)
    assert "Examples:" in help_text and f"mailer {name} " in help_text
    for param in command.params:
        for option in getattr(param, "opts", []):
            if option.startswith("--") and option != "--help":
                assert option in README, f"{option} of `mailer {name}` is not in the README"


def test_exit_codes_in_readme_match_the_enum() -> None:
    from mailer.errors import ExitStatus

    for status in ExitStatus:
        assert re.search(rf"^\| {status.value} \| ", README, re.M), status


def test_readme_shows_a_screenshot_of_the_preview_page() -> None:
    section = README.split("### `mailer preview`", 1)[1].split("\n### ", 1)[0]
    images = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", section)
    assert images, "the preview section has no screenshot"
    for image in images:
        assert (REPO / image).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), image


def test_the_contents_list_every_command() -> None:
    contents = README.split("## Commands", 1)[0]
    for name in cli.commands:
        assert f"[{name}](#mailer-{name})" in contents, name


def test_every_environment_variable_send_names_is_documented_in_the_readme() -> None:
    from click.testing import CliRunner

    help_text = CliRunner().invoke(cli, ["send", "--help"]).output
    named = set(re.findall(r"^\s+([A-Z][A-Z0-9_]{5,})\s", help_text, re.M))
    assert {"SENDGRID_API_KEY", "MAILER_SMTP_URL", "MAILER_UNSUBSCRIBE_SECRET", "SSL_CERT_FILE"} <= named
    assert [name for name in sorted(named) if f"`{name}`" not in README] == []

"""What `mailer send` and `mailer status` tell the editor to do next: every command they print runs as printed."""

from __future__ import annotations

import shlex
from email import policy
from email.parser import BytesParser
from pathlib import Path

from tests.conftest import SAMPLE_ISSUE
from tests.loopback_smtp import Recorder


def printed_commands(output: str) -> list[str]:
    """The commands an output tells the editor to run: its lines that start with `mailer ` once indented."""
    return [line.strip() for line in output.splitlines() if line.startswith("  mailer ")]


def run_printed(run_cli, command: str, *confirm: str):
    """Run a printed command as pasted into a shell (`--yes` answers the confirmation, as the editor would)."""
    words = shlex.split(command)
    assert words[0] == "mailer", command
    return run_cli(*words[1:], *confirm)


def test_the_smtp_dry_run_prints_a_test_send_and_a_send_that_keep_the_backend_and_workers(
        workspace: Path, smtp_server: Recorder, run_cli) -> None:
    dry = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--backend", "smtp",
                  "--workers", "4")
    assert dry.exit_code == 0, dry.stderr
    test_command, list_command = printed_commands(dry.stdout.split("To send for real")[1])
    assert "--backend smtp --workers 4" in list_command and "--backend smtp" in test_command

    tested = run_printed(run_cli, test_command)
    assert tested.exit_code == 0, tested.stderr
    ((_, recipients, data, _),) = smtp_server.messages  # through SMTP, not SendGrid (no key is set)
    assert recipients == ["editor@example.com"]  # mailer.yaml's reply_to: the editor
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert "Ada" in message.get_body(("plain",)).get_content()  # as the list's first reader
    (after_test,) = printed_commands(tested.stdout)
    assert after_test == list_command

    sent = run_printed(run_cli, list_command, "--yes")
    assert sent.exit_code == 0, sent.stderr
    assert len(smtp_server.messages) == 1 + 18


def test_a_test_send_without_a_list_says_it_used_a_made_up_reader_and_prints_no_command_that_fails(
        workspace: Path, sendgrid, run_cli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--test-to", "me@example.com", "--live")
    assert result.exit_code == 0, result.stderr
    assert "as a made-up reader" in result.stdout
    assert printed_commands(result.stdout) == []
    assert "add --subscribers FILE" in result.stdout


def test_a_test_send_dry_run_prints_the_live_test_send_with_its_reader(workspace: Path, sendgrid, run_cli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--test-to",
                     "me+news@example.com", "--as", "li.lei@example.com")
    assert result.exit_code == 0, result.stderr
    (command,) = printed_commands(result.stdout)
    live = run_printed(run_cli, command)
    assert live.exit_code == 0, live.stderr
    assert "Test message sent to me+news@example.com (as li.lei@example.com)" in live.stdout
    assert len(sendgrid.requests) == 1


def test_an_unapproved_send_names_the_test_send_of_this_very_command(workspace: Path, sendgrid, run_cli) -> None:
    refused = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes",
                      "--segment", "nlp")
    assert refused.exit_code == 1
    hint = refused.stderr.split("hint: ")[1].split(", check it")[0]
    assert hint == ("mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv --live "
                    "--test-to editor@example.com --segment nlp")
    assert run_printed(run_cli, hint).exit_code == 0
    assert run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes",
                   "--segment", "nlp").exit_code == 0


def test_a_path_with_a_space_is_quoted_in_the_printed_command(workspace: Path, sendgrid, run_cli) -> None:
    (workspace / "my list.csv").write_bytes((workspace / "subscribers.example.csv").read_bytes())
    dry = run_cli("send", SAMPLE_ISSUE, "--subscribers", "my list.csv")
    test_command, list_command = printed_commands(dry.stdout.split("To send for real")[1])
    assert "--subscribers 'my list.csv'" in list_command
    assert run_printed(run_cli, test_command).exit_code == 0
    assert run_printed(run_cli, list_command, "--yes").exit_code == 0

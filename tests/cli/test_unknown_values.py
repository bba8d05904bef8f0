"""Unknown values get the help unknown keys get: an error, with "did you mean" or the known ones."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import SAMPLE_ISSUE, write_subscribers


def test_an_unknown_segment_of_a_csv_list_is_an_error_with_did_you_mean(workspace: Path, sendgrid, run_cli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--segment", "resarch")
    assert result.exit_code == 1
    assert "no subscribed reader is tagged 'resarch': --segment resarch would send to nobody" in result.stderr
    assert "did you mean 'research'?" in result.stderr
    assert sendgrid.paths == []


def test_a_segment_nothing_resembles_lists_the_lists_tags(workspace: Path, run_cli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--segment", "sports")
    assert result.exit_code == 1
    assert "the list's tags: beta, nlp, research, weekly" in result.stderr


def test_a_known_segment_still_sends_to_its_readers(workspace: Path, run_cli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--segment", "research")
    assert result.exit_code == 0, result.stderr
    assert re.search(r"would send now +[1-9]", result.stdout), result.stdout


def test_an_unknown_segment_of_the_subscriber_store_gets_did_you_mean(workspace: Path, run_cli) -> None:
    csv = write_subscribers(workspace, ["ada@example.com,Ada,,subscribed,research;weekly"])
    assert run_cli("subscribers", "import", str(csv)).exit_code == 0
    result = run_cli("send", SAMPLE_ISSUE, "--segment", "resarch")
    assert result.exit_code == 1 and "did you mean 'research'?" in result.stderr


def test_a_misspelt_backend_in_mailer_yaml_gets_did_you_mean(workspace: Path, run_cli) -> None:
    config = workspace / "mailer.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("backend: sendgrid", "backend: sendgird"),
                      encoding="utf-8")
    result = run_cli("check", SAMPLE_ISSUE)
    assert result.exit_code == 1
    assert "mailer.yaml:21:10: backend: must be 'sendgrid' or 'smtp', not 'sendgird'" in result.stderr
    assert "hint: did you mean 'sendgrid'?" in result.stderr


def test_a_misspelt_placeholder_stops_a_live_send_with_did_you_mean(workspace: Path, sendgrid, run_cli) -> None:
    issue = workspace / SAMPLE_ISSUE
    issue.write_text(issue.read_text(encoding="utf-8").replace("welcome back!", "welcome back -firstname-!"),
                     encoding="utf-8")
    result = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--test-to",
                     "me@example.com", "--live")
    assert result.exit_code == 1
    assert "unknown placeholder -firstname-: it would be sent as written" in result.stderr
    assert "did you mean '-first_name-'?" in run_cli("check", SAMPLE_ISSUE).stdout  # which the send's error names

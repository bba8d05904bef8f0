"""What `mailer send` and `mailer status` tell the editor before and after: a live send's first screen says
whom it will reach and what it let through, and every command they print as the next step runs as printed."""

from __future__ import annotations

import shlex
from email import policy
from email.parser import BytesParser
from pathlib import Path

from mailer.deliver.ledger import Ledger
from mailer.deliver.suppressions import BOUNCE, Suppression, SuppressionList
from tests.conftest import SAMPLE_ISSUE, approve, write_subscribers
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


# -- the first screen of a live send -------------------------------------------------------------


LIVE = ("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live")


def test_force_says_it_let_an_untested_issue_through_the_approval_gate(workspace: Path, sendgrid, run_cli) -> None:
    result = run_cli(*LIVE, "--yes", "--force")
    assert result.exit_code == 0, result.stderr
    assert "warning: --force let through the approval gate: it was never test-sent" in result.stderr


def test_force_names_the_test_send_the_issue_changed_since(workspace: Path, sendgrid, run_cli) -> None:
    approve(run_cli)
    issue = workspace / SAMPLE_ISSUE
    issue.write_text(issue.read_text(encoding="utf-8").replace("The NLP Cypher", "The NLP Cipher", 1),
                     encoding="utf-8")
    result = run_cli(*LIVE, "--yes", "--force")
    assert result.exit_code == 0, result.stderr
    assert ("--force let through the approval gate: it changed since its last test send (to editor@example.com "
            "at ") in result.stderr


def test_force_says_so_when_it_let_nothing_through(workspace: Path, sendgrid, run_cli) -> None:
    approve(run_cli)
    result = run_cli(*LIVE, "--yes", "--force")
    assert result.exit_code == 0, result.stderr
    assert ("--force let nothing through: mailer check found no errors and the issue was test-sent as it is now"
            in result.stderr)


def test_force_names_the_check_errors_and_the_gate_it_let_through_together(workspace: Path, sendgrid,
                                                                          run_cli) -> None:
    issue = workspace / SAMPLE_ISSUE
    issue.write_text(issue.read_text(encoding="utf-8").replace("intro: |\n", "intro: |\n  TODO\n", 1),
                     encoding="utf-8")
    result = run_cli(*LIVE, "--yes", "--force")
    assert result.exit_code == 0, result.stderr
    assert ("warning: --force let through 1 error found by mailer check (listed above); and the approval gate: "
            "it was never test-sent") in result.stderr


def test_the_confirmation_counts_whom_the_send_will_reach_and_says_who_is_left_out_and_why(
        workspace: Path, sendgrid, run_cli, state_dir: Path) -> None:
    approve(run_cli)
    rows = [f"r{i}@example.com,R{i},,subscribed," for i in range(10)]
    rows += ["R3@example.com,Again,,subscribed,", "gone@example.com,Gone,,unsubscribed,",
             "bounced@example.com,B,,subscribed,", "done@example.com,D,,subscribed,"]
    csv = write_subscribers(workspace, rows)
    with Ledger(state_dir / "ledger.sqlite3") as ledger:
        ledger.mark_sending("2020-12-13", [("done@example.com", "done@example.com")], "run:00001")
        ledger.mark("2020-12-13", ["done@example.com"], "accepted", message_id="m1")
    with SuppressionList.open(state_dir) as stored:
        stored.replace([Suppression("bounced@example.com", BOUNCE, reason="550 5.1.1 no such user")])
    asked = run_cli("send", SAMPLE_ISSUE, "--subscribers", str(csv), "--live")
    assert asked.exit_code == 2  # no terminal to ask on: the question is in the refusal
    # 14 rows; 12 subscribed and distinct: 10 go, one was sent before, one is suppressed.
    assert 'to 10 readers via sendgrid now? Not confirmed' in asked.stderr
    assert "subs.csv: 14 rows; left out: " in asked.stderr
    left_out = asked.stderr.split("left out: ")[1].splitlines()[0]
    assert set(left_out.split(", ")) == {"1 duplicate", "1 unsubscribed", "1 already sent (an earlier run)",
                                         "1 on the suppression list"}


def record_complaints(state_dir: Path, issue: str, *, delivered: int, complaints: int) -> None:
    """SendGrid's events for an earlier issue, as mailer serve records them from the Event Webhook."""
    rows = [(f"d{i}", issue, f"r{i}@example.com", "delivered", "2026-12-06T08:00:00+00:00", None)
            for i in range(delivered)]
    rows += [(f"s{i}", issue, f"r{i}@example.com", "spamreport", "2026-12-06T09:00:00+00:00", None)
             for i in range(complaints)]
    with Ledger(state_dir / "ledger.sqlite3") as ledger:
        ledger.record_events(rows)


def test_a_complaint_rate_between_0_1_and_0_3_percent_is_a_warning_on_the_first_screen(
        workspace: Path, sendgrid, run_cli, state_dir: Path) -> None:
    approve(run_cli)
    record_complaints(state_dir, "2020-12-06", delivered=1000, complaints=2)
    asked = run_cli(*LIVE)
    warning = ("warning: 0.20% of the readers who got 2020-12-06 reported it as spam (2 of 1000): Gmail and Yahoo "
               "ask for under 0.1 %")
    assert warning in asked.stderr
    assert asked.stderr.index(warning) < asked.stderr.index("Not confirmed")  # before the question
    sent = run_cli(*LIVE, "--yes")
    assert sent.exit_code == 0 and warning in sent.stderr


def test_a_complaint_rate_over_0_3_percent_refuses_before_the_question(workspace: Path, sendgrid, run_cli,
                                                                       state_dir: Path) -> None:
    approve(run_cli)
    record_complaints(state_dir, "2020-12-06", delivered=1000, complaints=4)
    refused = run_cli(*LIVE)
    assert refused.exit_code == 1 and "Not confirmed" not in refused.stderr
    assert "0.40% of the readers who got 2020-12-06 reported it as spam (4 of 1000)" in refused.stderr
    anyway = run_cli(*LIVE, "--yes", "--despite-complaints")
    assert anyway.exit_code == 0 and "(sending anyway: --despite-complaints)" in anyway.stderr


def test_under_0_1_percent_there_is_no_complaint_warning(workspace: Path, sendgrid, run_cli, state_dir: Path) -> None:
    approve(run_cli)
    record_complaints(state_dir, "2020-12-06", delivered=1000, complaints=0)
    assert "spam" not in run_cli(*LIVE, "--yes").stderr


def test_status_tells_a_send_killed_between_its_batches_from_one_that_finished(workspace: Path, sendgrid, run_cli,
                                                                              state_dir: Path) -> None:
    approve(run_cli)
    assert run_cli(*LIVE, "--yes").exit_code == 0
    assert "is running" not in run_cli("status", SAMPLE_ISSUE).stdout  # it finished
    # As a send killed after a batch was accepted and before the next left leaves the ledger: no `sending`
    # row, no row for the readers it did not reach, and the run never marked as ended.
    with Ledger(state_dir / "ledger.sqlite3") as ledger:
        ledger.record_command("2020-12-13", "mailer send issues/2020-12-13.yaml --live --yes", str(workspace))
    status = run_cli("status", SAMPLE_ISSUE).stdout
    assert "No send of 2020-12-13 is running: the last one stopped before it finished" in status
    assert "it was stopped between its batches" in status
    assert printed_commands(status) == ["mailer send issues/2020-12-13.yaml --live --yes"]

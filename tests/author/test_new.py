"""`mailer new`: next week's file from the latest issue, with TODOs that check reports and send refuses."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import yaml

from mailer.author.skeleton import next_sunday
from tests.conftest import mark_sent, write


def test_next_sunday_is_after_today() -> None:
    assert next_sunday(date(2026, 11, 28)) == date(2026, 11, 29)  # a Saturday: tomorrow
    assert next_sunday(date(2026, 11, 29)) == date(2026, 12, 6)  # a Sunday: a week on
    assert next_sunday(date(2026, 11, 30)) == date(2026, 12, 6)


def test_new_writes_next_sundays_issue_from_the_latest_one(workspace: Path, run_cli) -> None:
    result = run_cli("new")
    sunday = next_sunday(date.today())
    path = workspace / "issues" / f"{sunday.isoformat()}.yaml"
    assert result.exit_code == 0, result.stderr
    assert f"issues/{sunday.isoformat()}.yaml ← the structure of issues/2020-12-13.yaml" in result.stdout
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert data["date"] == sunday
    assert data["subject"] == f"The NLP Cypher | {sunday.strftime('%m.%d.%y')}"  # the date in the subject moved
    assert data["title"] == "The NLP Cypher" and data["lang"] == "en"
    assert data["preheader"].startswith("TODO") and data["intro"].startswith("TODO")
    assert data["hero"]["url"] == "img/hero-storm.png" and data["hero"]["alt"].startswith("TODO")
    assert len(data["sections"]) == 9
    assert all(s["heading"].startswith("TODO") and set(s) <= {"heading", "body", "cards", "images", "list", "repos",
                                                               "dataset", "after"} for s in data["sections"])
    assert all(s.get(key) is None for s in data["sections"] for key in ("cards", "images", "list", "repos", "dataset"))
    # What goes where is said in comments; the footer, a fixed part, is kept as it was.
    assert "    cards:  # TODO: this week's links, one '- url: https://…' each; `mailer cards`" in text
    assert data["footer"] == yaml.safe_load((workspace / "issues" / "2020-12-13.yaml").read_text())["footer"]
    # The sections stay set off by blank lines, as in the editor's file.
    assert text.count("\n\n  - heading:") == 8

    check = run_cli("check", str(path))
    assert check.exit_code == 1 and check.stdout.count("unfinished copy: 'TODO'") >= 10
    dry_run = run_cli("send", str(path), "--subscribers", "subscribers.example.csv")
    assert "a live send would refuse until they are fixed" in dry_run.stderr


def test_new_never_overwrites_and_keeps_comments_quoting_and_recurring_headings(workspace: Path, run_cli) -> None:
    earlier = """\
# The Sunday digest. Keep the footer as it is.
subject: 'Digest #{n} — {day:%B %-d, %Y}'
date: {day}
number: {n}
preheader: "Preheader of issue {n}, long enough for an inbox"
sections:
  - heading: News   # always first
    body: News of issue {n}.
  - heading: A one-off heading {n}
    body: Text.
  - heading: Repos of the week
    repos:
      - name: owner/repo{n}
        url: https://github.com/owner/repo{n}
"""
    for n, day in ((1, date(2026, 11, 15)), (2, date(2026, 11, 22))):
        write(workspace / "issues" / f"{day.isoformat()}.yaml", earlier.format(n=n, day=day))
    result = run_cli("new", "2026-11-29")
    assert result.exit_code == 0, result.stderr
    assert "kept headings: News, Repos of the week" in result.stdout
    text = (workspace / "issues" / "2026-11-29.yaml").read_text(encoding="utf-8")
    assert text == """\
# The Sunday digest. Keep the footer as it is.
subject: 'Digest #3 — November 29, 2026'
date: 2026-11-29
number: 3
preheader: "TODO: the line inboxes show after the subject"
sections:
  - heading: News   # always first
    body: TODO
  - heading: TODO (this week's heading)
    body: TODO
  - heading: Repos of the week
    repos:  # TODO: this week's repositories: '- name: owner/repo' and 'url: https://github.com/…'
"""
    again = run_cli("new", "2026-11-29")
    assert again.exit_code == 1 and "2026-11-29.yaml: already exists: mailer new never overwrites" in again.stderr
    assert (workspace / "issues" / "2026-11-29.yaml").read_text(encoding="utf-8") == text


def test_new_from_a_chosen_issue_keeps_its_language_suffix(workspace: Path, run_cli) -> None:
    day = date(2020, 12, 13) + timedelta(days=7)
    result = run_cli("new", day.isoformat(), "--from", "issues/2020-12-13-zh.yaml")
    assert result.exit_code == 0, result.stderr
    data = yaml.safe_load((workspace / "issues" / f"{day.isoformat()}-zh.yaml").read_text(encoding="utf-8"))
    assert data["lang"] == "zh" and data["date"] == day and data["subject"] == "The NLP Cypher 中文版 | 12.20.20 🔥"


def test_a_four_digit_year_moves_whole_and_the_primary_edition_is_the_default(workspace: Path, run_cli) -> None:
    write(workspace / "issues" / "2020-12-20.yaml", """\
subject: "Digest | 12.20.2020 and 2020-12-20"
date: 2020-12-20
preheader: "A preheader long enough for an inbox preview"
sections:
  - heading: News
    body: Text.
""")
    # A translation of a later date does not make it the latest issue to start from.
    write(workspace / "issues" / "2020-12-27-zh.yaml", (workspace / "issues" / "2020-12-13-zh.yaml").read_text()
          .replace("date: 2020-12-13", "date: 2020-12-27"))
    result = run_cli("new", "2021-01-03")
    assert result.exit_code == 0, result.stderr
    assert "← the structure of issues/2020-12-20.yaml" in result.stdout
    data = yaml.safe_load((workspace / "issues" / "2021-01-03.yaml").read_text(encoding="utf-8"))
    assert data["subject"] == "Digest | 01.03.2021 and 2021-01-03"  # each format moves whole


def test_a_source_that_is_not_an_issue_is_a_clear_error(workspace: Path, run_cli) -> None:
    write(workspace / "drafts" / "broken.yaml", "subject: [unclosed\n")
    write(workspace / "drafts" / "list.yaml", "- a\n- b\n")
    (workspace / "drafts" / "latin1.yaml").write_bytes("subject: Caf\u00e9\n".encode("latin-1"))
    latin1 = run_cli("new", "2026-12-06", "--from", "drafts/latin1.yaml")
    assert latin1.exit_code == 1 and "drafts/latin1.yaml:1:13: not valid UTF-8 (byte 0xe9)" in latin1.stderr
    for name, where in (("broken", "2:1: invalid YAML"), ("list", "1:1: is not an issue")):
        result = run_cli("new", "2026-12-06", "--from", f"drafts/{name}.yaml")
        assert result.exit_code == 1 and "Traceback" not in result.stderr
        assert f"drafts/{name}.yaml:{where}" in result.stderr


def test_new_starts_from_the_latest_finished_issue_not_last_weeks_draft(workspace: Path, run_cli) -> None:
    sunday = next_sunday(date.today())
    first = run_cli("new")
    assert first.exit_code == 0, first.stderr
    assert "(the latest finished issue)" in first.stdout and "passed over" not in first.stdout
    # The week after: next Sunday's file is still a draft (TODOs, a date to come), so it is no model.
    later = sunday + timedelta(days=7)
    second = run_cli("new", later.isoformat())
    assert second.exit_code == 0, second.stderr
    assert (f"issues/{later.isoformat()}.yaml ← the structure of issues/2020-12-13.yaml (the latest finished issue)"
            in second.stdout)
    assert (f"passed over the draft issues/{sunday.isoformat()}.yaml: dated {sunday.isoformat()}, after today, and "
            "not sent; 21 errors found by mailer check, 21 of them unfinished copy" in second.stdout)
    assert "warning" not in second.stderr
    data = yaml.safe_load((workspace / "issues" / f"{later.isoformat()}.yaml").read_text(encoding="utf-8"))
    assert data["subject"] == f"The NLP Cypher | {later.strftime('%m.%d.%y')}"  # not the draft's TODO subject


def test_a_sent_issue_is_finished_and_a_date_in_the_past_is_a_warning(workspace: Path, run_cli,
                                                                      state_dir: Path) -> None:
    sunday = next_sunday(date.today())
    assert run_cli("new").exit_code == 0
    mark_sent(state_dir, sunday.isoformat())  # sent (scheduled) with its TODOs: readers have it, so it counts
    later = run_cli("new", (sunday + timedelta(days=7)).isoformat())
    assert f"← the structure of issues/{sunday.isoformat()}.yaml (the latest finished issue)" in later.stdout
    past = run_cli("new", "2020-11-29")
    assert past.exit_code == 0, past.stderr
    assert (f"warning: 2020-11-29 is in the past (today is {date.today().isoformat()}): readers will see that date"
            in past.stderr)


def test_with_only_drafts_it_starts_from_the_latest_and_says_so(workspace: Path, run_cli) -> None:
    for path in (workspace / "issues").glob("*.yaml"):
        path.unlink()
    write(workspace / "issues" / "2099-01-04.yaml", "subject: 'Digest 2099-01-04'\ndate: 2099-01-04\n"
          "preheader: 'A preheader long enough for an inbox'\nsections:\n  - heading: News\n    body: Text.\n")
    result = run_cli("new", "2099-01-11")
    assert result.exit_code == 0, result.stderr
    assert "warning: no finished issue to start from: started from the draft issues/2099-01-04.yaml" in result.stderr
    assert "← the structure of issues/2099-01-04.yaml (the latest draft)" in result.stdout


def test_cards_without_a_file_fills_the_draft_mailer_new_just_wrote(workspace: Path, run_cli) -> None:
    written = run_cli("new", "2026-12-20")
    assert written.exit_code == 0, written.stderr
    result = run_cli("cards")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("issues/2026-12-20.yaml (the latest issue still to come)")


def test_cards_without_a_file_never_takes_a_finished_issue_of_a_past_date(workspace: Path, run_cli) -> None:
    result = run_cli("cards")  # only the samples of 2020 here, never sent: nothing is still to come
    assert result.exit_code == 1 and "no issue still to come" in result.stderr
    assert "hint: start next week's with `mailer new`" in result.stderr

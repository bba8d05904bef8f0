"""The report's parts on their own: scanner rules, odd events, the events export's checks, the ledger's upgrade."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.deliver.events import read_batch, record
from mailer.deliver.ledger import Ledger, ledger_path
from mailer.deliver.suppressions import PullError
from mailer.environment import Environment
from mailer.report.charts import sparkline
from mailer.report.figures import issue_figures
from mailer.report.links import Link
from mailer.report.remote import _read_page
from mailer.report.scanners import AGENT, BURST, EARLY, Click, scanner_rules
from tests.conftest import SAMPLE_ISSUE

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"


def test_a_reader_who_reads_then_clicks_is_a_person_and_machines_are_caught_by_their_rule() -> None:
    person = [Click(1000.0, "https://a/", 1, BROWSER), Click(1090.0, "https://b/", 2, BROWSER)]
    assert scanner_rules(person, delivered_at=0.0) == [None, None]
    assert scanner_rules([Click(5.0, "https://a/", 1, BROWSER)], delivered_at=0.0) == [EARLY]
    assert scanner_rules([Click(5.0, "https://a/", 1, BROWSER)], delivered_at=None) == [None]
    gateway = [Click(500.0, "https://a/", 1, "Mozilla/5.0 (compatible; Mimecast Link Scanner)")]
    assert scanner_rules(gateway, delivered_at=0.0) == [AGENT]
    burst = [Click(600.0 + i, f"https://{i}/", i, BROWSER) for i in range(3)]
    assert scanner_rules(burst, delivered_at=0.0) == [BURST] * 3
    # The same link clicked three times in a row is a person double-clicking, not a scanner.
    again = [Click(600.0 + i / 2, "https://a/", 1, BROWSER) for i in range(3)]
    assert scanner_rules(again, delivered_at=0.0) == [None] * 3


def test_sparklines_run_from_lowest_to_highest_and_leave_a_gap_for_unknown() -> None:
    assert sparkline([0, 7, 3.5]) == "▁█▅"
    assert sparkline([None, 2, 2]) == " ▁▁"
    assert sparkline([None]) == " "


def event(kind: str, email: str, at: float, **fields: object) -> dict:
    return {"email": email, "event": kind, "timestamp": int(at), "sg_event_id": f"{kind}-{email}-{at}-{fields}",
            "mailer_issue": "2020-12-13", **fields}


def test_odd_events_are_counted_apart_never_a_traceback(state_dir: Path) -> None:
    with Ledger(ledger_path(state_dir)) as ledger:
        ledger.queue("2020-12-13", [("ada@example.com", "ada@example.com")])
    now = time.time()
    items = [
        event("delivered", "ada@example.com", now - 3600),
        event("click", "ada@example.com", now - 1000, useragent=BROWSER),  # no URL, no position
        event("click", "ada@example.com", now + 86_400 * 30, url="https://a.example/", useragent=BROWSER,
              url_offset={"index": 0, "type": "html"}),  # a month ahead
        event("click", "stranger@example.com", now - 900, url="https://a.example/", useragent=BROWSER),
        event("click", "ada@example.com", now - 800, url="https://a.example/", useragent=BROWSER,
              url_offset={"index": "zero", "type": "html"}),  # a position that is no number: the URL decides
        {"event": "click"}, "not an event", None,  # unusable items: skipped by the webhook
    ]
    batch = read_batch(items)
    assert batch.skipped == 3
    record(state_dir, batch)
    record(state_dir, read_batch(items))  # the same batch again: nothing doubles
    with Ledger(ledger_path(state_dir)) as ledger:
        figures = issue_figures(ledger, "2020-12-13", [Link(0, "https://a.example/", "A card", "News")])
    assert figures.odd == {"click_without_url": 1, "future": 1, "unknown_readers": 1}
    assert figures.clicks_human_unique == 2 and figures.links[0].human_unique == 2  # Ada and the stranger


def test_a_million_position_or_a_negative_one_is_no_position() -> None:
    for index in (-1, 10**9, True, 2.5):
        (row,) = read_batch([event("click", "a@example.com", 0, url="https://a/", url_offset={"index": index})]).events
        assert row[7] is None, index


def test_a_remote_export_that_is_not_mailers_is_refused_field_by_field() -> None:
    good = ["id", "2020-12-13", "ada@example.com", "click", datetime.now(UTC).isoformat(), None, "https://a/", 3,
            BROWSER, None]
    assert _read_page({"events": [good], "next": 5, "more": False}, "http://x", 0)[1] == 5
    for page in ({"events": "no"}, {"events": [], "next": "5", "more": False}, {"events": [], "next": 4, "more": True},
                 {"events": [good[:9]], "next": 9, "more": False},
                 {"events": [[*good[:3], "DROP", *good[4:]]], "next": 9, "more": False},
                 {"events": [[*good[:4], "yesterday", *good[5:]]], "next": 9, "more": False},
                 {"events": [[*good[:7], -1, *good[8:]]], "next": 9, "more": False},
                 {"events": [[*good[:6], "x" * 3000, *good[7:]]], "next": 9, "more": False},
                 {"events": [[*good[:9], 2]], "next": 9, "more": False}):
        with pytest.raises(PullError, match="not mailer's events export"):
            _read_page(page, "http://x", 4)


def test_a_ledger_written_before_the_report_is_upgraded_in_place(state_dir: Path) -> None:
    path = ledger_path(state_dir)
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE deliveries (issue TEXT NOT NULL, recipient TEXT NOT NULL, email TEXT NOT NULL, state TEXT NOT NULL,
            batch TEXT, message_id TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL, PRIMARY KEY (issue, recipient));
        CREATE TABLE events (event_id TEXT PRIMARY KEY, issue TEXT NOT NULL, recipient TEXT NOT NULL,
            event TEXT NOT NULL, at TEXT NOT NULL, detail TEXT);
        INSERT INTO events VALUES ('e1', '2020-12-13', 'ada@example.com', 'click', '2026-12-01T10:00:00+00:00', NULL);
        PRAGMA user_version=3;
    """)
    old.close()
    with Ledger(path) as ledger:
        assert ledger.openers("2020-12-13") == (0, 0)
        assert list(ledger.clicks("2020-12-13")) == [("ada@example.com", "2026-12-01T10:00:00+00:00", None, None,
                                                     None, None)]
    indexes = {row[1] for row in sqlite3.connect(path).execute("PRAGMA index_list(events)")}
    assert "events_by_kind" in indexes


def test_the_trend_names_events_for_issues_never_sent_from_here(workspace: Path, state_dir: Path, run_cli) -> None:
    record(state_dir, read_batch([{**event("delivered", "ada@example.com", time.time()), "mailer_issue": "elsewhere"}]))
    result = run_cli("report", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["events_for_issues_not_sent_here"] == {"elsewhere": 1}
    table = run_cli("report")
    assert "1 event(s) for issue elsewhere, which was not sent from here" in table.stdout
    assert run_cli("report", SAMPLE_ISSUE).exit_code == 0


HOSTILE_TITLE = '=HYPERLINK("http://evil.example")<script>alert(1)</script>"'


def hostile_workspace(workspace: Path) -> None:
    issue = workspace / "issues" / "2020-12-13.yaml"
    text = issue.read_text(encoding="utf-8")
    first_title = text.split("title: ", 2)[2].split("\n", 1)[0]  # the first card's title (after the issue's)
    issue.write_text(text.replace(first_title, json.dumps(HOSTILE_TITLE), 1), encoding="utf-8")


def test_the_csv_never_hands_a_spreadsheet_a_formula(workspace: Path, run_cli) -> None:
    hostile_workspace(workspace)
    result = run_cli("report", SAMPLE_ISSUE, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    import csv
    import io

    cards = [row["card"] for row in csv.DictReader(io.StringIO(result.stdout))]
    assert "'" + HOSTILE_TITLE in cards and HOSTILE_TITLE not in cards


def test_the_page_escapes_what_the_issue_says(workspace: Path, run_cli, tmp_path: Path) -> None:
    hostile_workspace(workspace)
    page = tmp_path / "page.html"
    assert run_cli("report", SAMPLE_ISSUE, "--html", str(page)).exit_code == 0
    html = page.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html.replace("&amp;lt;", "&lt;")
    assert "default-src 'none'" in html


def test_the_trend_counts_the_stores_sign_ups_and_losses_week_by_week(workspace: Path, state_dir: Path,
                                                                       run_cli) -> None:
    from mailer.audience.store import SubscriberStore, store_path

    SubscriberStore.open(state_dir).close()
    today = datetime.now(UTC).isoformat(timespec="seconds")
    with sqlite3.connect(store_path(state_dir)) as db:
        for address, status, source in (("a@example.com", "confirmed", "form"), ("b@example.com", "confirmed", "form"),
                                        ("c@example.com", "unsubscribed", "import"),
                                        ("d@example.com", "confirmed", "import")):
            db.execute("INSERT INTO readers (address, email, status, source, created_at, updated_at, confirmed_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (address, address, status, source, today, today, today))
    report = json.loads(run_cli("report", "--format", "json").stdout)
    this_week = report["weeks"][-1]
    assert (this_week["signups_confirmed"], this_week["readers_lost"]) == (2, 1)  # the import is no sign-up
    assert "sign-ups confirmed" in run_cli("report").stdout


def test_open_writes_the_page_into_build_and_hands_it_to_the_browser(workspace: Path, run_cli, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n', encoding="utf-8")
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(browser))  # what Python's webbrowser runs, as a reader's desktop would
    result = run_cli("report", SAMPLE_ISSUE, "--open")
    assert result.exit_code == 0, result.stderr
    page = workspace / "build" / "reports" / "2020-12-13.html"
    assert page.is_file() and opened.read_text(encoding="utf-8").strip() == page.as_uri()


def test_a_card_written_with_capitals_in_its_scheme_and_a_text_naming_a_longer_url_keep_their_cards(
        workspace: Path, run_cli) -> None:
    issue = workspace / "issues" / "2020-12-13.yaml"
    text = issue.read_text(encoding="utf-8")
    # The Depix card written HTTPS://…, and the intro linking a page under it: neither may take the other's clicks.
    text = text.replace("url: https://github.com/beurtschipper/Depix", "url: HTTPS://github.com/beurtschipper/Depix", 1)
    issue.write_text(text, encoding="utf-8")
    figures = json.loads(run_cli("report", SAMPLE_ISSUE, "--format", "json").stdout)
    assert not any("by URL alone" in note for note in figures["notes"])
    cards = {link["url"]: link["card"] for link in figures["clicks"]["links"]}
    assert cards["HTTPS://github.com/beurtschipper/Depix"] == "beurtschipper/Depix"
    assert "the layout's own link" not in cards.values()
    assert list(cards.values())[0] == "view in browser"


def test_a_clicker_whose_only_open_was_a_machines_is_one_person_who_opened(state_dir: Path) -> None:
    with Ledger(ledger_path(state_dir)) as ledger:
        ledger.queue("2020-12-13", [("ada@example.com", "ada@example.com"), ("alan@example.com", "alan@example.com")])
    now = time.time() - 3600
    record(state_dir, read_batch([
        event("delivered", "ada@example.com", now), event("delivered", "alan@example.com", now),
        event("open", "ada@example.com", now + 1, sg_machine_open=True),
        event("open", "alan@example.com", now + 1, sg_machine_open=True),
        event("click", "ada@example.com", now + 600, url="https://a.example/", useragent=BROWSER)]))
    with Ledger(ledger_path(state_dir)) as ledger:
        figures = issue_figures(ledger, "2020-12-13", [Link(0, "https://a.example/", "A card", "News")])
        ledger.check_newsletter("2020-12-13", "The NLP Cypher <list.example.com>", claim=True)
        ledger.record_tracking("2020-12-13", "sendgrid", clicks=True, opens=None)
        first = ledger.live_sends()
        assert [issue for issue, _ in first] == ["2020-12-13"]
        time.sleep(0.002)  # (the times are to the millisecond: a second record must be able to differ)
        ledger.record_tracking("2020-12-13", "sendgrid", clicks=False, opens=None)  # a resumed send
        assert ledger.live_sends() == first and ledger.tracking("2020-12-13") == ("sendgrid", False, None)
    assert (figures.opens_human, figures.opens_machine) == (1, 1)  # Ada read it; only Alan's open is a machine's


def test_a_remote_ledger_replaced_since_the_last_copy_is_copied_again_from_its_start(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailer.report import remote

    stamp = datetime.now(UTC).isoformat()
    pages = {0: {"events": [["fresh", "2020-12-13", "ada@example.com", "open", stamp, None, None, None, None, None]],
                 "next": 1, "more": False, "last": 1}}
    asked: list[int] = []

    # The remote service, its ledger restored from a backup of 1 event.
    def answer(environment: Environment, path: str, **_: object) -> dict:
        after = int(path.split("after=")[1].split("&")[0])
        asked.append(after)
        return pages.get(after, {"events": [], "next": after, "more": False, "last": 1})

    monkeypatch.setattr(remote, "fetch_from_serve", answer)
    with Ledger(ledger_path(state_dir)) as ledger:
        ledger.record_remote_events("https://serve.example.com", [], 5000)  # copied up to 5,000 before
    assert remote.pull_events(state_dir, Environment(serve_url="https://serve.example.com")) == 1
    assert asked == [5000, 0]


def test_a_reader_refused_then_bounced_for_good_is_one_hard_bounce(state_dir: Path) -> None:
    now = time.time() - 3600
    record(state_dir, read_batch([
        event("bounce", "ada@example.com", now, type="blocked", reason="452 mailbox full"),
        event("bounce", "ada@example.com", now + 60, type="bounce", status="5.1.1", reason="550 no such user"),
        event("bounce", "alan@example.com", now, type="blocked", reason="451 greylisted")]))
    with Ledger(ledger_path(state_dir)) as ledger:
        assert ledger.bounce_kinds("2020-12-13") == (1, 1)  # Ada hard only; Alan soft


def test_the_page_is_written_only_over_a_page_of_its_own(workspace: Path, run_cli, tmp_path: Path) -> None:
    import os

    mine = tmp_path / "notes.html"
    mine.write_text("the editor's own notes", encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.html")
    (tmp_path / "link.html").symlink_to(mine)
    for taken in (mine, tmp_path / "pipe.html", tmp_path / "link.html"):
        refused = run_cli("report", SAMPLE_ISSUE, "--html", str(taken))
        assert refused.exit_code == 2 and "--html" in refused.stderr, taken
    assert mine.read_text(encoding="utf-8") == "the editor's own notes"
    assert (tmp_path / "link.html").is_symlink()
    page = tmp_path / "report.html"
    for _ in range(2):  # a page it wrote before is its own to replace
        assert run_cli("report", SAMPLE_ISSUE, "--html", str(page)).exit_code == 0


def test_a_remote_position_past_sqlites_integers_or_a_reader_with_an_escape_is_refused() -> None:
    good = ["id", "2020-12-13", "ada@example.com", "open", datetime.now(UTC).isoformat(), None, None, None, None, None]
    with pytest.raises(PullError, match="not mailer's events export"):
        _read_page({"events": [], "next": 10**30, "more": False}, "http://x", 0)
    with pytest.raises(PullError, match="control character"):
        _read_page({"events": [[good[0], "\x1b[2J", *good[2:]]], "next": 9, "more": False}, "http://x", 0)
    bounced = [*good[:3], "bounce", good[4], "550 mailbox\tfull", *good[6:]]  # a server's words may hold a tab
    assert _read_page({"events": [bounced], "next": 9, "more": False}, "http://x", 0)[1] == 9


def test_an_export_token_that_cannot_be_a_header_is_refused_and_never_shown(
        workspace: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_SERVE_URL", "http://127.0.0.1:9")
    for token in ("secret-token-0123456789abcdef0123456789\nX-Evil: 1", "secret-token-0123456789abcdef0123456789€"):
        monkeypatch.setenv("MAILER_EXPORT_TOKEN", token)
        result = run_cli("report", SAMPLE_ISSUE)
        assert result.exit_code == 0 and "MAILER_EXPORT_TOKEN holds a space" in result.stderr
        assert "secret-token" not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_a_remote_that_sends_its_answer_a_byte_at_a_time_is_given_up_on() -> None:
    import socket
    import threading

    from mailer.deliver.suppressions import fetch_from_serve

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:  # headers at once, then the body a byte at a time: each read is quick, the whole never
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        while not stop.wait(0.05):
            try:
                connection.sendall(b" ")
            except OSError:
                break
        connection.close()

    threading.Thread(target=trickle, daemon=True).start()
    environment = Environment(serve_url=f"http://127.0.0.1:{listener.getsockname()[1]}", export_token="t" * 40)
    try:
        with pytest.raises(PullError, match="sends its answer too slowly"):
            fetch_from_serve(environment, "/export/events?after=0", timeout=0.5)
    finally:
        stop.set()
        listener.close()

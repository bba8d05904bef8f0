"""Sending through SendGrid as a user does, against a local server that checks requests like SendGrid."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import threading
import time
import unicodedata
from collections import Counter, deque
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mailer.audience.subscribers import read_subscribers
from mailer.compose.build import build_issue
from mailer.deliver.backends.sendgrid import JSON_CONTENT_TYPE, SendGridBackend
from mailer.deliver.ledger import Ledger, issue_lock, ledger_path
from mailer.deliver.live import send_issue
from mailer.deliver.options import SendOptions
from mailer.deliver.retry import RetryPolicy
from mailer.environment import Environment
from tests.conftest import (
    SAMPLE_ISSUE,
    UNSUBSCRIBE_SECRET,
    approve,
    config_of,
    ledger_states,
    make_subscribers,
    read_ledger,
    sendgrid_environment,
)
from tests.fake_sendgrid import API_KEY, FakeSendGrid, validate_mail_send

ISSUE = SAMPLE_ISSUE


def send_live(run_cli, subscribers: Path, *extra: str):
    """`mailer send ISSUE --subscribers FILE --live --yes`, as the editor confirms it."""
    return run_cli("send", ISSUE, "--subscribers", str(subscribers), "--live", "--yes", *extra)


# -- dry run -------------------------------------------------------------------------------------


def test_dry_run_is_the_default_and_sends_nothing(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                  tmp_path: Path) -> None:
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv")
    assert result.exit_code == 0, result.stderr
    assert sendgrid.paths == []
    assert "DRY RUN" in result.stdout
    assert "would send to: ada.lovelace@example.com, alan.turing@example.com" in result.stdout
    assert "skip francois.lefevre@example.org (line 10): unsubscribed" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == (
        "  mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv --live")
    outbox = tmp_path / "state" / "outbox" / "2020-12-13"
    manifest = [json.loads(line) for line in (outbox / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    assert Counter(entry["action"] for entry in manifest) == {"send": 18, "skip": 2}
    emls = sorted((outbox / "eml").iterdir())
    assert len(emls) == 5
    body = json.loads((outbox / "sendgrid" / "request-00001.json").read_text(encoding="utf-8"))
    assert validate_mail_send(body) == []
    assert len(body["personalizations"]) == 18
    assert not (tmp_path / "state" / "ledger.sqlite3").exists()


def test_dry_run_after_a_crash_shows_the_interrupted_batch_as_held_back(workspace: Path, sendgrid: FakeSendGrid,
                                                                        run_cli, tmp_path: Path) -> None:
    from mailer.deliver.ledger import Ledger

    # What a run killed between request and answer leaves: rows committed `sending`.
    with Ledger(tmp_path / "state" / "ledger.sqlite3") as ledger:
        ledger.mark_sending("2020-12-13", [("ada.lovelace@example.com", "ada.lovelace@example.com")], "run:00001")
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv")
    assert result.exit_code == 0, result.stderr
    # The live run will hold Ada back as uncertain: the dry run must say so, not promise to mail her.
    assert "ada.lovelace@example.com" not in result.stdout.split("would send to:")[1].splitlines()[0]
    assert "skip ada.lovelace@example.com (line 2): uncertain" in result.stdout
    assert ledger_states(tmp_path / "state") == {"sending": 1}  # a dry run changes nothing


def test_dry_run_eml_is_a_complete_message(workspace: Path, sendgrid, run_cli, tmp_path: Path) -> None:
    from email import policy
    from email.parser import BytesParser

    run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv")
    eml = next(p for p in (tmp_path / "state/outbox/2020-12-13/eml").iterdir() if "li.lei" in p.name)
    message = BytesParser(policy=policy.default).parse(eml.open("rb"))
    assert str(message["To"]) == "李雷 <li.lei@example.com>"
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_payload()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert "Hey 李雷, welcome back!" in text.get_content()
    assert "Hey 李雷, welcome back!" in html.get_content()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://newsletter.example.com/unsubscribe?token=")
    # Nothing reads mail to the sender here (no MAILER_INBOUND_KEY, no MAILER_MAILBOX_URL): no mailto: offered.
    assert "mailto:" not in message["List-Unsubscribe"] and message["List-Unsubscribe"].endswith(">")
    assert "-first_name-" not in html.get_content() and "-unsubscribe_url-" not in text.get_content()


@pytest.mark.parametrize("variable", ["MAILER_INBOUND_KEY", "MAILER_MAILBOX_URL"])
def test_the_mailto_is_offered_only_when_something_reads_that_mail(
        workspace: Path, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    from email import policy
    from email.parser import BytesParser

    monkeypatch.setenv(variable, "imaps://bounces:pw@imap.example.com/INBOX" if "MAILBOX" in variable else "k" * 40)
    assert run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv").exit_code == 0
    eml = next(p for p in (tmp_path / "state/outbox/2020-12-13/eml").iterdir() if "li.lei" in p.name)
    header = str(BytesParser(policy=policy.default).parse(eml.open("rb"))["List-Unsubscribe"])
    https, mailto = header.split(", ")
    token = https.removesuffix(">").split("token=")[1]
    assert mailto == f"<mailto:newsletter@example.com?subject=unsubscribe%20{token}>"


def test_dry_run_emls_name_east_asian_readers_family_name_first_and_say_mime_version_once(
        workspace: Path, sendgrid, run_cli, tmp_path: Path) -> None:
    from email import policy
    from email.parser import BytesParser

    run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv")
    outbox = tmp_path / "state/outbox/2020-12-13"
    names = {}
    for path in (outbox / "eml").iterdir():
        raw = path.read_bytes()
        assert raw.count(b"MIME-Version: 1.0") == 1, path.name  # the top only, never in a part
        message = BytesParser(policy=policy.default).parse(path.open("rb"))
        assert [part["MIME-Version"] for part in message.iter_parts()] == [None, None]
        names[message["To"].addresses[0].addr_spec] = message["To"].addresses[0].display_name
    assert names["han.meimei@example.org"] == "韩梅梅"  # was '梅梅 韩'
    assert names["hanako.yamada@example.net"] == "山田花子"
    assert names["ada.lovelace@example.com"] == "Ada Lovelace"
    # The SendGrid request of the same dry run names them the same way (SendGrid writes the MIME itself).
    body = json.loads((outbox / "sendgrid" / "request-00001.json").read_text(encoding="utf-8"))
    to = {p["to"][0]["email"]: p["to"][0].get("name") for p in body["personalizations"]}
    assert to["han.meimei@example.org"] == "韩梅梅" and to["hanako.yamada@example.net"] == "山田花子"
    assert to["zoe.muller@example.net"] == "Zoë Müller"
    assert "MIME-Version" not in body.get("headers", {})


def test_segment_and_skip_invalid_choose_who_a_send_is_for(workspace: Path, sendgrid: FakeSendGrid, run_cli) -> None:
    path = workspace / "subs.csv"
    path.write_text("email,first_name,status,tags\nada@example.com,Ada,subscribed,nlp\nbob@,Bob,subscribed,nlp\n"
                    "cy@example.com,Cy,subscribed,weekly\n", encoding="utf-8")
    refused = run_cli("send", ISSUE, "--subscribers", str(path), "--segment", "nlp")
    assert refused.exit_code == 1 and "subs.csv:3: invalid email address 'bob@'" in refused.stderr
    result = run_cli("send", ISSUE, "--subscribers", str(path), "--segment", "nlp", "--skip-invalid")
    assert result.exit_code == 0, result.stderr
    assert "  would send to: ada@example.com\n" in result.stdout
    assert "skip bob@ (line 3): invalid email address 'bob@'" in result.stdout
    assert "skip cy@example.com (line 4): not tagged 'nlp'" in result.stdout
    assert sendgrid.paths == []


# -- live sends ----------------------------------------------------------------------------------


def test_live_send_needs_an_approved_test_send(workspace: Path, sendgrid: FakeSendGrid, run_cli) -> None:
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert result.exit_code == 1
    assert "has not been test-sent as it is now" in result.stderr
    assert sendgrid.paths == []


def test_an_edit_after_the_test_send_is_refused_until_test_sent_again(workspace: Path, sendgrid: FakeSendGrid,
                                                                      run_cli, tmp_path: Path) -> None:
    approve(run_cli)
    issue = workspace / ISSUE
    issue.write_text(issue.read_text(encoding="utf-8").replace("welcome back!", "welcome back, friend!"),
                     encoding="utf-8")
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert result.exit_code == 1
    assert "it changed since its last test send (to editor@example.com at " in result.stderr
    assert "--force" in result.stderr
    assert len(sendgrid.paths) == 1 and ledger_states(tmp_path / "state") == Counter()  # only the approval went out
    forced = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert ledger_states(tmp_path / "state") == {"accepted": 18}
    assert "welcome back, friend!" in sendgrid.requests[-1]["content"][0]["value"]


def test_test_send_is_one_message_identical_but_for_recipient_and_subject(workspace: Path, sendgrid, run_cli,
                                                                         tmp_path: Path) -> None:
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--test-to", "me@example.com",
                     "--as", "li.lei@example.com", "--live")
    assert result.exit_code == 0, result.stderr
    assert len(sendgrid.requests) == 1
    body = sendgrid.requests[0]
    assert body["subject"] == "[TEST] The NLP Cypher | 12.13.20"
    (personalization,) = body["personalizations"]
    assert personalization["to"] == [{"email": "me@example.com", "name": "李雷"}]
    assert personalization["substitutions"]["-first_name-"] == "李雷"
    assert sendgrid.accepted == ["me@example.com"]
    assert ledger_states(tmp_path / "state") == Counter()  # a test send is not a delivery


def test_a_message_id_with_terminal_escapes_is_shown_and_kept_as_text(workspace: Path, sendgrid: FakeSendGrid,
                                                                        run_cli) -> None:
    # A host that is not SendGrid answers 202 with an X-Message-Id that would clear the editor's screen.
    sendgrid.script = deque(["202-odd-id"])
    result = run_cli("send", ISSUE, "--test-to", "me@example.com", "--live")
    assert result.exit_code == 0, result.stderr
    assert "message id \\x1b[2J\\x1b[31mxxx" in result.stdout and "\x1b" not in result.stdout
    shown = result.stdout.split("message id ", 1)[1].split(".", 1)[0]
    assert len(shown) <= 200 + 2 * len("\\x1b") and shown.endswith("x")


def test_test_send_defaults_to_the_first_subscriber_and_matches_their_real_message(workspace: Path,
                                                                                   sendgrid: FakeSendGrid,
                                                                                   run_cli) -> None:
    test = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--test-to", "me@example.com", "--live")
    assert test.exit_code == 0, test.stderr
    assert "(as ada.lovelace@example.com)" in test.stdout
    sent = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert sent.exit_code == 0, sent.stderr
    test_body, list_body = sendgrid.requests
    assert test_body["subject"] == "[TEST] " + list_body["subject"]
    for part in ("from", "reply_to", "content", "headers"):
        assert test_body[part] == list_body[part], part
    # Told apart in SendGrid's statistics and in every event it posts back (see tests/web/test_webhook.py).
    assert (test_body["categories"], list_body["categories"]) == (["mailer", "test-2020-12-13"],
                                                                  ["mailer", "issue-2020-12-13"])
    assert test_body["custom_args"] == {"mailer_issue": "2020-12-13@test", "mailer_batch": "test", "mailer_test": "1"}
    assert list_body["custom_args"]["mailer_issue"] == "2020-12-13" and "mailer_test" not in list_body["custom_args"]
    (as_sent_to_me,) = test_body["personalizations"]
    ada = next(p for p in list_body["personalizations"] if p["to"][0]["email"] == "ada.lovelace@example.com")
    assert as_sent_to_me["to"] == [{"email": "me@example.com", "name": "Ada Lovelace"}]
    mine, hers = as_sent_to_me["substitutions"], ada["substitutions"]
    assert {k: v for k, v in mine.items() if k != "-unsubscribe_url-"} == {
        k: v for k, v in hers.items() if k != "-unsubscribe_url-"}
    # The test copy looks the same, but its unsubscribe link names nobody: clicking it in the editor's
    # inbox must not unsubscribe Ada.
    from mailer.deliver.message import TEST_COPY, verify_unsubscribe_token

    token = mine["-unsubscribe_url-"].split("token=")[1]
    list_id = "The NLP Cypher <the-nlp-cypher.newsletter.example.com>"
    assert verify_unsubscribe_token(token, list_id, UNSUBSCRIBE_SECRET.encode()) == TEST_COPY
    assert verify_unsubscribe_token(hers["-unsubscribe_url-"].split("token=")[1], list_id,
                                    UNSUBSCRIBE_SECRET.encode()) == "ada.lovelace@example.com"
    assert as_sent_to_me["headers"]["List-Unsubscribe"] == ada["headers"]["List-Unsubscribe"].replace(
        hers["-unsubscribe_url-"].split("token=")[1], token)


def test_send_to_everyone_then_resume_sends_nobody_twice(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                         tmp_path: Path) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 2500)
    result = send_live(run_cli, path)
    assert result.exit_code == 0, result.stderr
    mail_sends = [b for b in sendgrid.requests if b["subject"].startswith("The NLP")]
    # Batches are prepared and sent side by side: they may arrive in any order.
    assert sorted(len(b["personalizations"]) for b in mail_sends) == [500, 1000, 1000]
    assert all(validate_mail_send(b) == [] for b in mail_sends)
    accepted = [a for a in sendgrid.accepted if a != "editor@example.com"]
    assert len(accepted) == len(set(accepted)) == 2500
    assert ledger_states(tmp_path / "state") == {"accepted": 2500}
    # Without a terminal: plain log lines, then the table.
    assert "sending to 2500 recipient(s)" in result.stderr
    so_far = [int(n) for n in re.findall(r"accepted so far: (\d+)", result.stderr)]
    assert len(so_far) == 3 and so_far == sorted(so_far) and so_far[-1] == 2500
    assert re.search(r"^  intended +2500$", result.stdout, re.M)
    assert re.search(r"^  accepted +2500$", result.stdout, re.M)
    # SendGrid's X-Message-Id is kept per batch: one id for each request's recipients.
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    ids = db.execute("SELECT message_id, COUNT(*) FROM deliveries GROUP BY message_id").fetchall()
    db.close()
    assert sorted(count for _, count in ids) == [500, 1000, 1000]
    assert all(message_id and message_id.startswith("msg-") for message_id, _ in ids)
    again = send_live(run_cli, path)
    assert again.exit_code == 0
    assert len(sendgrid.accepted) == 2501  # nobody twice
    assert "2500" in again.stdout


def test_the_same_command_after_a_finished_send_answers_from_the_ledger(workspace: Path, sendgrid: FakeSendGrid,
                                                                      run_cli, tmp_path: Path) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 1200, extra="gone@example.com,Gone,,unsubscribed,weekly\n")
    first = send_live(run_cli, path)
    assert first.exit_code == 0, first.stderr
    requests = len(sendgrid.paths) + len(sendgrid.gets)
    again = send_live(run_cli, path)
    assert again.exit_code == 0, again.stderr
    assert "Nothing left to send" in again.stderr and "subscribers-1200.csv" in again.stderr
    assert len(sendgrid.paths) + len(sendgrid.gets) == requests  # not one: no suppressed reader to screen again
    assert re.search(r"^  accepted +1200$", again.stdout, re.M)
    assert re.search(r"^    of which in earlier runs +1200$", again.stdout, re.M)
    assert re.search(r"^  skipped +1$", again.stdout, re.M)
    # Someone who joined since is sent to, and only they; then nobody is left again.
    path.write_text(path.read_text(encoding="utf-8") + "newcomer@example.com,New,Comer,subscribed,weekly\n",
                    encoding="utf-8")
    joined = send_live(run_cli, path)
    assert joined.exit_code == 0, joined.stderr
    assert "Nothing left to send" not in joined.stderr
    assert sendgrid.accepted[-1] == "newcomer@example.com"
    assert len(sendgrid.accepted) == len(set(sendgrid.accepted)) == 1 + 1201  # the editor's test, then the list
    assert "Nothing left to send" in send_live(run_cli, path).stderr
    # A row changed behind the ledger's back (here by hand, as a user with the sqlite3 shell could) is
    # seen: the ledger's rows are checked, not only what was recorded at the end of the send.
    with closing(sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")) as db, db:
        db.execute("UPDATE deliveries SET state='failed' WHERE recipient='reader00007@example.com'")
    retried = send_live(run_cli, path, "--retry-failed")
    assert retried.exit_code == 0, retried.stderr
    assert "Nothing left to send" not in retried.stderr
    assert sendgrid.accepted[-1] == "reader00007@example.com"
    # A reader's row re-keyed by hand (the address changed in place: as many rows, all accepted) voids
    # the record too: that reader has no row now, and is sent to.
    assert "Nothing left to send" in send_live(run_cli, path).stderr
    with closing(sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")) as db, db:
        db.execute("UPDATE deliveries SET recipient='someone.else@example.com' "
                   "WHERE recipient='reader00003@example.com'")
    rekeyed = send_live(run_cli, path)
    assert rekeyed.exit_code == 0, rekeyed.stderr
    assert "Nothing left to send" not in rekeyed.stderr
    assert sendgrid.accepted[-1] == "reader00003@example.com"
    # The same file read another way (here --segment, which every reader has) is another list: planned.
    count = len(sendgrid.accepted)
    segmented = send_live(run_cli, path, "--segment", "weekly")
    assert segmented.exit_code == 0, segmented.stderr
    assert "Nothing left to send" not in segmented.stderr and len(sendgrid.accepted) == count


@pytest.mark.parametrize("record", ["not json {", '["a", "list"]', '{"intended": "many"}', '{"suppressed": []}'])
def test_a_finished_record_of_another_shape_is_no_record(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                         tmp_path: Path, record: str) -> None:
    approve(run_cli)
    first = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert first.exit_code == 0, first.stderr
    with closing(sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")) as db, db:
        assert db.execute("UPDATE finished SET report=?", (record,)).rowcount == 1  # edited, or another release's
    again = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert again.exit_code == 0, again.stderr
    assert "Nothing left to send" not in again.stderr and "Traceback" not in again.stderr
    assert "sending to 0 recipient(s)" in again.stderr  # planned as before: nobody twice
    assert len([a for a in sendgrid.accepted if a != "editor@example.com"]) == 18


def test_a_finished_record_holds_while_the_issues_rows_are_as_many_and_all_accepted(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        ledger.queue("2020-12-13", [("a@example.com", "a@example.com")])
        ledger.mark("2020-12-13", ["a@example.com"], "accepted")
        ledger.record_finished("2020-12-13", "list-1", {"intended": 1})
        assert ledger.finished("2020-12-13", ("list-1",))[0] == {"intended": 1}
        assert ledger.finished("2020-12-13", ("list-2",)) is None
        ledger.queue("2020-12-20", [("b@example.com", "b@example.com")])  # another issue: no matter
        assert ledger.finished("2020-12-13", ("list-1",)) is not None
        ledger.queue("2020-12-13", [("b@example.com", "b@example.com")])
        assert ledger.finished("2020-12-13", ("list-1",)) is None  # a row not accepted
        ledger.mark("2020-12-13", ["b@example.com"], "accepted")
        assert ledger.finished("2020-12-13", ("list-1",)) is None  # all accepted, but one row more than then


def test_the_ledger_keeps_each_address_as_sent_beside_its_key(tmp_path: Path) -> None:
    # Most keys are the address itself and are written once; the others keep both, in either write.
    pairs = [("ada@example.com", "Ada@Example.COM"), ("zoë@example.com", "zoë@example.com"),
             ("[1,2]@example.com", "[1,2]@example.com"), ("محمد@مثال.example", "محمد@مثال.example")]
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        ledger.mark_sending("2020-12-13", pairs[:2], "run:00001")
        ledger.queue("2020-12-13", [("ada@example.com", "ADA@example.com"), *pairs[2:]])  # a row kept as it is
        ledger.mark_sending("2020-12-13", [("bob@example.com", "Bob@example.com")], "run:00002")
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    rows = db.execute("SELECT recipient, email, state FROM deliveries").fetchall()
    db.close()
    assert sorted(rows) == sorted([("ada@example.com", "Ada@Example.COM", "sending"),
                                   ("zoë@example.com", "zoë@example.com", "sending"),
                                   ("[1,2]@example.com", "[1,2]@example.com", "queued"),
                                   ("محمد@مثال.example", "محمد@مثال.example", "queued"),
                                   ("bob@example.com", "Bob@example.com", "sending")])


def test_one_address_in_two_unicode_forms_is_one_recipient(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                           tmp_path: Path) -> None:
    # "josé" composed (NFC, as most tools write it) or decomposed (NFD, as macOS exports often do)
    # is one mailbox: a list re-exported between two runs must not mail it again.
    composed, decomposed = (unicodedata.normalize(form, "José.Núñez@example.com") for form in ("NFC", "NFD"))
    assert composed != decomposed
    approve(run_cli)
    first = make_subscribers(workspace, 1, extra=f"{composed},José,,subscribed,\n")
    assert run_cli("send", ISSUE, "--subscribers", str(first), "--live", "--yes").exit_code == 0
    again = workspace / "re-exported.csv"
    again.write_text(first.read_text(encoding="utf-8").replace(composed, decomposed), encoding="utf-8")
    result = run_cli("send", ISSUE, "--subscribers", str(again), "--live", "--yes")
    assert result.exit_code == 0, result.stderr
    both = make_subscribers(workspace, 2,
                            extra=f"{composed},José,,subscribed,\n{decomposed.upper()},José,,subscribed,\n")
    result = run_cli("send", ISSUE, "--subscribers", str(both), "--live", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "duplicate of line 4" in result.stderr
    received = Counter(unicodedata.normalize("NFC", a).casefold() for a in sendgrid.accepted)
    assert received[composed.casefold()] == 1
    assert max(received.values()) == 1


def test_a_ledger_from_before_composed_keys_sends_nobody_twice(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                                tmp_path: Path) -> None:
    # A ledger written by a release that keyed "josé" as typed (decomposed here) and saw them accepted.
    composed, decomposed = (unicodedata.normalize(form, "josé@example.com") for form in ("NFC", "NFD"))
    approve(run_cli)
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    with db:
        for key, state in ((decomposed, "accepted"), ("reader00000@example.com", "accepted"),
                           (unicodedata.normalize("NFD", "zoë@example.com"), "queued"),
                           ("zoë@example.com", "uncertain")):
            db.execute("INSERT INTO deliveries (issue, recipient, email, state, created_at, updated_at) "
                       "VALUES ('2020-12-13', ?, ?, ?, '2026-11-22', '2026-11-22')", (key, key, state))
        db.execute("PRAGMA user_version=0")
    db.close()
    subscribers = make_subscribers(workspace, 2, extra=f"{composed},José,,subscribed,\nzoë@example.com,Zoë,,"
                                                       "subscribed,\n")
    result = run_cli("send", ISSUE, "--subscribers", str(subscribers), "--live", "--yes")
    assert result.exit_code == 3  # Zoë is still uncertain: held back, not sent
    assert [a for a in sendgrid.accepted if a != "editor@example.com"] == ["reader00001@example.com"]
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    rows = dict(db.execute("SELECT recipient, state FROM deliveries").fetchall())
    db.close()
    assert rows == {composed: "accepted", "reader00000@example.com": "accepted", "reader00001@example.com": "accepted",
                    "zoë@example.com": "uncertain"}


def as_sendgrid_fills_it(text: str, substitutions: dict[str, str]) -> str:
    """What SendGrid does with a personalization: each tag replaced by its value, once."""
    pattern = re.compile("|".join(re.escape(tag) for tag in sorted(substitutions, key=len, reverse=True)))
    return pattern.sub(lambda m: substitutions[m.group(0)], text)


def test_a_long_first_name_is_wrapped_with_its_paragraph_in_the_text_part(workspace: Path, sendgrid: FakeSendGrid,
                                                                         run_cli) -> None:
    approve(run_cli)
    long_name = "Maria-Magdalena Wilhelmina Alexandrina"
    path = make_subscribers(workspace, 1, extra=f"maria@example.com,{long_name},,subscribed,\n")
    assert send_live(run_cli, path).exit_code == 0
    body = sendgrid.requests[-1]
    text = body["content"][0]["value"]
    assert "Hey -first_name-" not in text  # the paragraph is a value of its own in this batch
    for personalization in body["personalizations"]:
        received = as_sendgrid_fills_it(text, personalization["substitutions"])
        assert max(len(line) for line in received.splitlines() if "://" not in line) <= 72
        name = long_name if personalization["to"][0]["email"] == "maria@example.com" else "Reader 0"
        assert f"Hey {name}, welcome back!" in " ".join(received.split()), name

    # A batch of short names (here: the one reader not sent to yet) shares the text part as it is.
    assert send_live(run_cli, make_subscribers(workspace, 2)).exit_code == 0
    assert [p["to"][0]["email"] for p in sendgrid.requests[-1]["personalizations"]] == ["reader00001@example.com"]
    assert "Hey -first_name-, welcome back!" in sendgrid.requests[-1]["content"][0]["value"]


def test_per_recipient_values_headers_and_opaque_ids(workspace: Path, sendgrid: FakeSendGrid, run_cli) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 1, extra="tom@example.com,Tom & <Jerry>,,subscribed,\n")
    assert send_live(run_cli, path).exit_code == 0
    body = sendgrid.requests[-1]
    tom = next(p for p in body["personalizations"] if p["to"][0]["email"] == "tom@example.com")
    assert tom["substitutions"]["-first_name-"] == "Tom & <Jerry>"
    assert tom["substitutions"]["-first_name_html-"] == "Tom &amp; &lt;Jerry&gt;"
    html = body["content"][1]["value"]
    assert "Hey -first_name_html-, welcome back!" in html
    # The text part has it as written (13 characters, wider than its placeholder: its paragraph is
    # wrapped for Tom and sent as a value of its own).
    assert "Hey Tom & <Jerry>, welcome back!" in as_sendgrid_fills_it(body["content"][0]["value"], tom["substitutions"])
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body["headers"]["List-Id"] == "The NLP Cypher <the-nlp-cypher.newsletter.example.com>"
    assert tom["substitutions"]["-unsubscribe_url-"] in tom["headers"]["List-Unsubscribe"]
    assert "@" not in json.dumps(tom["custom_args"]) + json.dumps(body["custom_args"]) + json.dumps(body["categories"])


def test_the_request_is_the_json_the_sendgrid_library_would_write(workspace: Path, sendgrid: FakeSendGrid,
                                                                  run_cli) -> None:
    # The body is written as text, not by json.dumps: it must parse to what was meant and be
    # exactly what json.dumps writes for it (ASCII, its escapes and separators), whatever the names.
    approve(run_cli)
    names = ['李雷,Li', '"Quoted" \\ back\\slash', "ليلى حداد", "Zoë 🎉", "Tab\tin;name", "Tom & <Jerry>"]
    extra = "".join(f'reader{i}@example.com,"{name.replace(chr(34), chr(34) * 2)}",Ö,subscribed,\n'
                    for i, name in enumerate(names))
    assert send_live(run_cli, make_subscribers(workspace, 1, extra=extra)).exit_code == 0
    raw = sendgrid.raw_requests[-1]
    assert raw.isascii() and json.dumps(json.loads(raw)).encode() == raw
    got = {p["to"][0]["email"]: p for p in json.loads(raw)["personalizations"]}
    for i, name in enumerate(names):
        person = got[f"reader{i}@example.com"]
        assert person["substitutions"]["-first_name-"] == name
        assert person["to"][0]["name"] == f"{name} Ö".replace(",", " ").replace(";", " ")


def test_requests_go_where_and_as_the_sendgrid_library_would_post_them(workspace: Path, start_sendgrid,
                                                                        tmp_path: Path) -> None:
    # mailer posts Mail Send itself, not through the library's call (which formats every body into a
    # debug line first): the URL, under an API host with a path of its own too, and the headers must
    # be the library's.
    from sendgrid import SendGridAPIClient

    fake, url = start_sendgrid(FakeSendGrid(path_prefix="/sendgrid"), environment=False)
    report = core_send(workspace, make_subscribers(workspace, 1200), sendgrid_environment(f"{url}/sendgrid"))
    assert report.complete and sorted(fake.accepted) == [f"reader{i:05d}@example.com" for i in range(1200)]
    library = SendGridAPIClient(api_key=API_KEY, host=f"{url}/sendgrid").client
    assert fake.paths == [urlsplit(library.mail.send._build_url(None)).path] * 2 == ["/sendgrid/v3/mail/send"] * 2
    for headers in fake.post_headers:
        assert headers["User-Agent"] == library.request_headers["User-Agent"]
        assert headers["User-Agent"].startswith("sendgrid/") and headers["Content-Type"] == JSON_CONTENT_TYPE
        assert headers["Authorization"] == f"Bearer {API_KEY}" and headers["Accept"] == "application/json"
    with Ledger(ledger_path(tmp_path / "state")) as ledger:  # each batch's X-Message-Id, read from the answer's headers
        assert {row.message_id for row in ledger.rows(ledger.issues()[0], ["accepted"])} == {"msg-1", "msg-2"}


class EndlessAnswers:
    """A host that is not SendGrid: it answers each Mail Send with `status` and a body that never ends
    (GETs, the suppression pull, with an empty list), until stopped."""

    def __init__(self, status: str, *, endless_get: bool = False):
        import socket

        self.status, self.endless_get, self.stopped = status, endless_get, threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            connection, _ = self.server.accept()
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection) -> None:
        with connection, connection.makefile("rb") as request:
            method = request.readline().split(b" ")[0]
            length = 0
            while (line := request.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            request.read(length)
            try:
                if method == b"GET" and not self.endless_get:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                       b"Content-Length: 2\r\nConnection: close\r\n\r\n[]")
                    return
                connection.sendall(f"HTTP/1.1 {self.status}\r\nX-Message-Id: endless-1\r\n"
                                   "Content-Type: application/json\r\nConnection: close\r\n\r\n".encode())
                chunk = b'{"errors": [' + b" " * 65536
                while not self.stopped.is_set():
                    connection.sendall(chunk)
            except OSError:  # the client hung up: what it should do once it has read enough
                pass


@pytest.mark.parametrize("status", ["202 Accepted", "400 Bad Request"])
def test_an_answer_that_never_ends_is_read_no_further_than_a_message_needs(workspace: Path, tmp_path: Path,
                                                                          status: str) -> None:
    # A wrong SENDGRID_API_HOST may answer with a body that never ends: the send must neither read it
    # forever nor hold it; an accepted batch is accepted, a refused one fails with a short message.
    host = EndlessAnswers(status)
    done: list = []
    sending = threading.Thread(target=lambda: done.append(core_send(workspace, make_subscribers(workspace, 10),
                                                                    sendgrid_environment(host.url))), daemon=True)
    sending.start()
    sending.join(20)
    host.stopped.set()
    assert not sending.is_alive(), "the send is still reading the answer"
    (report,) = done
    if status.startswith("202"):
        assert report.complete and ledger_states(tmp_path / "state") == {"accepted": 10}
        assert {row.message_id for row in read_ledger_rows(tmp_path)} == {"endless-1"}
    else:
        assert report.failed == 10 and ledger_states(tmp_path / "state") == {"failed": 10}
        (error,) = {row.error for row in read_ledger_rows(tmp_path)}
        assert error.startswith("SendGrid rejected the request (400)") and len(error) < 1000, error[:300]


def test_a_suppression_page_that_never_ends_stops_the_pull_with_a_message(workspace: Path, run_cli,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    host = EndlessAnswers("200 OK", endless_get=True)
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    monkeypatch.setenv("SENDGRID_API_HOST", host.url)
    done: list = []
    pulling = threading.Thread(target=lambda: done.append(run_cli("suppressions", "pull")), daemon=True)
    pulling.start()
    pulling.join(20)
    host.stopped.set()
    assert not pulling.is_alive(), "the pull is still reading the page"
    (result,) = done
    assert result.exit_code == 3 and "Traceback" not in result.stderr
    assert "is not a list of suppressions" in result.stderr and "local suppression list is unchanged" in result.stderr


def read_ledger_rows(tmp_path: Path) -> list:
    with Ledger(ledger_path(tmp_path / "state")) as ledger:
        return ledger.rows(ledger.issues()[0], ["accepted", "failed"])


def test_throttling_and_server_errors_are_retried(workspace: Path, sendgrid: FakeSendGrid, tmp_path: Path) -> None:
    sendgrid.script = deque(["429", "500", "429"])
    report = core_send(workspace, make_subscribers(workspace, 1500), sendgrid_environment(sendgrid.url))
    assert report.complete and report.accepted == 1500
    assert len(sendgrid.accepted) == 1500
    assert ledger_states(tmp_path / "state") == {"accepted": 1500}


def test_a_throttle_reset_already_past_backs_off_instead_of_retrying_at_once() -> None:
    # X-RateLimit-Reset a few seconds in the past means this machine's clock runs ahead of SendGrid's:
    # retrying at once would burn every attempt while SendGrid still throttles.
    from python_http_client.exceptions import TooManyRequestsError

    from mailer.deliver.backends.sendgrid import _retry_after

    def throttled(headers: dict[str, str]) -> TooManyRequestsError:
        return TooManyRequestsError(429, "Too Many Requests", b"{}", headers)

    policy = RetryPolicy(base_seconds=1.0, cap_seconds=60.0)
    past = _retry_after(throttled({"X-RateLimit-Reset": str(int(time.time()) - 5), "Retry-After": "0"}))
    waits = [policy.delay(3, past) for _ in range(200)]
    assert all(0 <= wait <= 8 for wait in waits) and max(waits) > 2  # back-off, not an instant retry
    future = _retry_after(throttled({"X-RateLimit-Reset": str(int(time.time()) + 30)}))
    assert future is not None and 28 < policy.delay(3, future) <= 30  # a reset ahead is waited for
    assert policy.delay(0, 5000.0) == policy.max_wait_seconds


def test_dropped_connection_is_uncertain_and_not_resent(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                        tmp_path: Path) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 2000)
    sendgrid.script = deque(["accept_drop"])
    result = send_live(run_cli, path, "--workers", "1")
    assert result.exit_code == 3
    assert ledger_states(tmp_path / "state") == {"uncertain": 1000, "accepted": 1000}
    assert "may have received the issue" in result.stdout
    again = send_live(run_cli, path)
    assert again.exit_code == 3  # still uncertain: reported, never silently resent
    # Each recipient in exactly one row of the summary: the uncertain are not "skipped" as well.
    rows = dict(re.findall(r"^  (\w[\w ]*?) +(\d+)$", again.stdout, re.M))
    assert (rows["intended"], rows["accepted"], rows["uncertain"], rows["skipped"]) == ("2000", "1000", "1000", "0")
    dry = run_cli("send", ISSUE, "--subscribers", str(path))
    assert re.search(r"^  held back: uncertain or failed earlier +1000$", dry.stdout, re.M)
    assert re.search(r"^  skipped +0$", dry.stdout, re.M)
    received = Counter(a for a in sendgrid.accepted if a != "editor@example.com")
    assert max(received.values()) == 1 and len(received) == 2000
    status = run_cli("status", ISSUE)
    assert "uncertain" in status.stdout and "reader00000@example.com" in status.stdout


def test_resend_uncertain_on_request(workspace: Path, sendgrid: FakeSendGrid, run_cli, tmp_path: Path) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 10)
    sendgrid.script = deque(["drop"])
    assert send_live(run_cli, path).exit_code == 3
    assert ledger_states(tmp_path / "state") == {"uncertain": 10}
    result = send_live(run_cli, path, "--resend-uncertain")
    assert result.exit_code == 0, result.stdout
    assert ledger_states(tmp_path / "state") == {"accepted": 10}


def test_rejected_batch_fails_and_retry_failed_retries_only_failures(workspace: Path, sendgrid: FakeSendGrid,
                                                                    run_cli, tmp_path: Path) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 1200)
    sendgrid.script = deque(["accept", "500", "500", "500", "500", "500", "500"])
    result = send_live(run_cli, path, "--workers", "1")
    assert result.exit_code == 3
    assert ledger_states(tmp_path / "state") == {"accepted": 1000, "failed": 200}
    assert "--retry-failed" in result.stdout
    # A first send of the issue counts from the rows it wrote; the runs after it, from the readers due.
    for line in ("intended +1200", "accepted +1000", "  of which in earlier runs +0", "failed +200",
                 "not sent yet +0"):
        assert re.search(f"^  {line}$", result.stdout, re.M), result.stdout
    plain_rerun = send_live(run_cli, path)
    assert plain_rerun.exit_code == 3 and ledger_states(tmp_path / "state") == {"accepted": 1000, "failed": 200}
    retry = send_live(run_cli, path, "--retry-failed")
    assert retry.exit_code == 0
    # The report counts each reader once, in the state this run left them in.
    for line in ("accepted  +1200", "  of which in earlier runs +1000", "failed +0", "not sent yet +0"):
        assert re.search(f"^  {line}$", retry.stdout, re.M), retry.stdout
    received = Counter(a for a in sendgrid.accepted if a != "editor@example.com")
    assert len(received) == 1200 and max(received.values()) == 1


def test_a_batch_sendgrid_rejects_fails_at_once_with_its_message(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                                 tmp_path: Path) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 1200)
    sendgrid.script = deque(["400"])
    result = send_live(run_cli, path, "--workers", "1")
    assert result.exit_code == 3
    assert ledger_states(tmp_path / "state") == {"failed": 1000, "accepted": 200}
    assert sendgrid.paths.count("/v3/mail/send") == 3  # the approval, the rejected batch (never retried), the rest
    status = run_cli("status", ISSUE)
    assert ("reader00000@example.com: SendGrid rejected the request (400): content.1.value: The content value "
            "must be a string") in status.stdout


def test_an_error_message_with_terminal_escapes_or_half_a_surrogate_pair_is_shown_as_text(
        workspace: Path, sendgrid: FakeSendGrid, run_cli, tmp_path: Path) -> None:
    # A wrong SENDGRID_API_HOST's "error": an escape that clears the editor's terminal, and half of a surrogate
    # pair, which stopped the send on a UnicodeEncodeError's traceback as the ledger recorded the failure.
    approve(run_cli)
    path = make_subscribers(workspace, 1200)
    sendgrid.script = deque(["400-not-text"])
    result = send_live(run_cli, path, "--workers", "1")
    assert result.exit_code == 3 and "Traceback" not in result.stderr
    assert ledger_states(tmp_path / "state") == {"failed": 1000, "accepted": 200}
    shown = "from: \\x1b[2J\\x1b[31mcleared \\ud800 screen"
    status = run_cli("status", ISSUE)
    assert shown in status.stdout and "\x1b" not in status.stdout + result.stderr


@pytest.mark.parametrize("answer", ["400-odd-field", "400-deep"])
def test_an_error_answer_of_odd_json_fails_its_batch_and_the_send_goes_on(workspace: Path, sendgrid: FakeSendGrid,
                                                                          run_cli, tmp_path: Path, answer) -> None:
    # A field that is a number, a message that is a list, JSON nested past the parser's depth: each was a
    # TypeError's or RecursionError's traceback mid-send, every batch in flight left `sending`.
    approve(run_cli)
    path = make_subscribers(workspace, 1200)
    sendgrid.script = deque([answer])
    result = send_live(run_cli, path, "--workers", "1")
    assert result.exit_code == 3 and "Traceback" not in result.stderr
    assert ledger_states(tmp_path / "state") == {"failed": 1000, "accepted": 200}


def test_a_broken_status_line_with_terminal_escapes_is_uncertain_and_shown_as_text(
        workspace: Path, sendgrid: FakeSendGrid, run_cli, tmp_path: Path, monkeypatch) -> None:
    # http.client's BadStatusLine carries the server's own line: it reached the ledger and every status raw.
    import socket
    import threading

    approve(run_cli)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:  # the pull's GETs get empty lists; Mail Send gets a status line no client can read
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                received = connection.recv(65536)
                if received.startswith(b"GET"):
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                                       b"Connection: close\r\n\r\n[]")
                    continue
                length = int(re.search(rb"Content-Length: (\d+)", received).group(1))
                while len(received.split(b"\r\n\r\n", 1)[-1]) < length:
                    received += connection.recv(65536)
                connection.sendall(b"HTTP/1.1 2\x1b[2J00 OK\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv("SENDGRID_API_HOST", f"http://127.0.0.1:{listener.getsockname()[1]}")
    result = run_cli("send", ISSUE, "--subscribers", str(make_subscribers(workspace, 3)), "--live", "--yes",
                     "--force")
    assert result.exit_code == 3 and "Traceback" not in result.stderr and "\x1b" not in result.stderr
    assert ledger_states(tmp_path / "state") == {"uncertain": 3}
    listener.close()
    status = run_cli("status", ISSUE).stdout
    assert "BadStatusLine" in status and "\\x1b[2J" in status and "\x1b" not in status


def test_a_redirect_is_never_followed_with_the_key_or_counted_as_accepted(workspace: Path, sendgrid: FakeSendGrid,
                                                                          start_sendgrid, run_cli,
                                                                          tmp_path: Path) -> None:
    # urllib re-sent a redirected POST as a GET, the API key with it, and a 2xx there counted as accepted.
    elsewhere, url = start_sendgrid(FakeSendGrid(), environment=False)
    approve(run_cli)
    path = make_subscribers(workspace, 1200)
    sendgrid.script = deque(["302"])
    sendgrid.redirect_to = f"{url}/v3/mail/send"
    result = send_live(run_cli, path, "--workers", "1")
    assert result.exit_code == 3 and "answered 302" in result.stderr and "Traceback" not in result.stderr
    assert elsewhere.paths == [] and elsewhere.gets == [] and elsewhere.auth_headers == []
    states = ledger_states(tmp_path / "state")
    assert states["accepted"] == 0 and states["sending"] == 0 and states["uncertain"] == 0


def test_a_request_too_large_stops_the_send_and_loses_nobody(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                             tmp_path: Path) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 1200)
    sendgrid.script = deque(["413"])
    result = send_live(run_cli, path, "--workers", "1")
    assert result.exit_code == 3
    assert "SendGrid says the request is too large (413): Payload too large" in result.stderr
    assert sendgrid.paths.count("/v3/mail/send") == 2  # the approval, then one refused: nothing more
    assert ledger_states(tmp_path / "state") == {"queued": 1200}


def test_one_backend_sends_then_schedules_and_cancels(workspace: Path, sendgrid: FakeSendGrid) -> None:
    # Mail Send bodies go as JSON text with their own Content-Type; a dict body after that must still work.
    from mailer.deliver.backends import Recipient
    from mailer.deliver.backends.sendgrid import SendGridOptions
    from mailer.deliver.message import personalise

    config = config_of(workspace)
    rendered = build_issue(workspace / ISSUE, config)
    subscriber = read_subscribers(workspace / "subscribers.example.csv").subscribers[0]
    backend = sendgrid_backend(sendgrid.url)
    backend.send(backend.prepare(rendered, config, [Recipient(subscriber, personalise(subscriber, rendered, config,
                                                                                      b"s"))],
                                 batch_id="t", options=SendGridOptions()))
    batch = backend.create_schedule_id()
    backend.cancel_schedule(batch)
    assert sendgrid.accepted == ["ada.lovelace@example.com"] and sendgrid.scheduled == {batch: "cancel"}


def test_a_429_waits_until_sendgrids_rate_limit_reset(workspace: Path, sendgrid: FakeSendGrid) -> None:
    from mailer.deliver.backends import Recipient
    from mailer.deliver.backends.sendgrid import SendGridOptions
    from mailer.deliver.batch import deliver
    from mailer.deliver.message import personalise

    class RecordedWaits(threading.Event):
        """A stop event that records how long the sender would wait instead of waiting."""

        def __init__(self) -> None:
            super().__init__()
            self.waits: list[float] = []

        def wait(self, timeout: float | None = None) -> bool:
            self.waits.append(timeout or 0.0)
            return False

    config = config_of(workspace)
    rendered = build_issue(workspace / ISSUE, config)
    subscriber = read_subscribers(workspace / "subscribers.example.csv").subscribers[0]
    backend = sendgrid_backend(sendgrid.url)
    payload = backend.prepare(rendered, config, [Recipient(subscriber, personalise(subscriber, rendered, config,
                                                                                   b"s"))],
                              batch_id="t", options=SendGridOptions())
    sendgrid.script = deque(["429"])
    sendgrid.rate_limit_reset_in = 30  # X-RateLimit-Reset: 30 s from now (Retry-After says 0)
    stop = RecordedWaits()
    outcome = deliver(backend, payload, RetryPolicy(), stop)
    assert outcome.state == "accepted"
    (waited,) = stop.waits
    assert 28 < waited <= 30
    assert sendgrid.accepted == ["ada.lovelace@example.com"]


def test_bad_api_key_stops_at_once_and_loses_nobody(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                    tmp_path: Path, monkeypatch) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 3000)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.revoked")
    result = send_live(run_cli, path, "--workers", "1")
    assert result.exit_code == 3
    assert "SendGrid refused the API key (401)" in result.stderr
    assert "The provided authorization grant is invalid" in result.stderr
    # The pull before the send is refused first: not one Mail Send request past the approval.
    assert len([p for p in sendgrid.paths if p == "/v3/mail/send"]) == 1
    assert "could not be pulled" in result.stderr and "Nothing was sent" in result.stderr
    assert ledger_states(tmp_path / "state") == {}
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    assert send_live(run_cli, path).exit_code == 0
    assert ledger_states(tmp_path / "state") == {"accepted": 3000}


def test_consecutive_failures_stop_the_send(workspace: Path, sendgrid: FakeSendGrid, tmp_path: Path) -> None:
    sendgrid.default = "500"
    report = core_send(workspace, make_subscribers(workspace, 8000), sendgrid_environment(sendgrid.url),
                       max_consecutive_failures=3, workers=1)
    assert report.stopped and "3 failed batches in a row" in report.stopped
    assert ledger_states(tmp_path / "state") == {"failed": 3000, "queued": 5000}
    assert (report.failed, report.not_sent, report.accepted) == (3000, 5000, 0)
    assert sendgrid.accepted == []


def test_a_stopping_send_does_not_wait_for_its_rate_before_it_stops(workspace: Path, sendgrid: FakeSendGrid,
                                                                    tmp_path: Path) -> None:
    # --rate 200 gives each batch of 1,000 a five-second slot: a send stopped by its first batch's
    # failure must stop then, not wait for the next slot first.
    class Waits(threading.Event):
        def __init__(self) -> None:
            super().__init__()
            self.asked: list[float | None] = []

        def wait(self, timeout: float | None = None) -> bool:
            self.asked.append(timeout)
            return super().wait(0)

    sendgrid.default = "500"
    config = config_of(workspace)
    interrupt = Waits()
    options = SendOptions(live=True, force=True, workers=1, rate=200, max_consecutive_failures=1,
                          retry=RetryPolicy(attempts=2, base_seconds=0.01, cap_seconds=0.02))
    report = send_issue(build_issue(workspace / ISSUE, config), config,
                        read_subscribers(make_subscribers(workspace, 3000)), sendgrid_backend(sendgrid.url), options,
                        interrupt=interrupt, environment=sendgrid_environment(sendgrid.url))
    assert report.stopped and report.failed == 1000 and report.not_sent == 2000
    assert interrupt.asked == []  # the limiter never waited


def test_a_stopped_send_that_cannot_queue_the_readers_not_reached_says_so_and_counts_them(
        workspace: Path, sendgrid: FakeSendGrid, tmp_path: Path) -> None:
    # The ledger's file cannot grow once the third failed batch is recorded (RLIMIT_FSIZE, as a full
    # disk): the readers not reached get no row, the send says so, and its report still counts them.
    import resource
    import signal

    from mailer.deliver.progress import Progress

    sendgrid.default = "500"
    notes: list[str] = []
    failed = []
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal's kill

    def full_after_the_third(count: int, outcome: str) -> None:
        failed.append(count)
        if len(failed) == 3:
            resource.setrlimit(resource.RLIMIT_FSIZE, (1024, limits[1]))

    config = config_of(workspace)
    rendered = build_issue(workspace / ISSUE, config)
    options = SendOptions(live=True, force=True, workers=1, max_consecutive_failures=3,
                          retry=RetryPolicy(attempts=2, base_seconds=0.01, cap_seconds=0.02))
    try:
        report = send_issue(rendered, config, read_subscribers(make_subscribers(workspace, 8000)),
                            sendgrid_backend(sendgrid.url), options,
                            progress=Progress(on_batch=full_after_the_third, on_note=notes.append),
                            environment=sendgrid_environment(sendgrid.url))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    assert report.stopped and (report.failed, report.not_sent, report.accepted) == (3000, 5000, 0)
    assert ledger_states(tmp_path / "state") == {"failed": 3000}
    told = [note for note in notes if "did not reach" in note]
    assert len(told) == 1 and "could not be recorded as not sent yet" in told[0] and "disk I/O error" in told[0], notes


def test_addresses_sendgrid_refuses_fail_alone_and_the_rest_of_their_batch_is_sent(
        workspace: Path, sendgrid: FakeSendGrid, run_cli, tmp_path: Path) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 1500)
    sendgrid.refuse_addresses = {"reader00003@example.com", "reader00007@example.com", "reader01200@example.com"}
    result = send_live(run_cli, path)
    assert result.exit_code == 3  # not everyone was accepted
    assert ledger_states(tmp_path / "state") == {"accepted": 1497, "failed": 3}
    received = Counter(a for a in sendgrid.accepted if a != "editor@example.com")
    assert len(received) == 1497 and max(received.values()) == 1
    assert not received.keys() & sendgrid.refuse_addresses
    status = run_cli("status", ISSUE).stdout
    # Grouped by reason: one line per distinct error, however many recipients share it.
    assert re.search(r"failed +2 recipients, e\.g\. reader\d+@example\.com: SendGrid rejected the request \(400\)",
                     status), status
    assert status.count("SendGrid rejected the request (400)") == 2
    assert "Does not contain a valid address" in status
    listed = run_cli("status", ISSUE, "--list", "failed").stdout.split()
    assert "reader00007@example.com" in listed and len(listed) == 3


def test_ctrl_c_while_a_partly_refused_batch_is_on_the_wire_starts_no_new_request(workspace: Path,
                                                                                   sendgrid: FakeSendGrid,
                                                                                   tmp_path: Path) -> None:
    from mailer.deliver.progress import Interrupted

    sendgrid.refuse_addresses = {"reader00003@example.com"}
    config = config_of(workspace)
    rendered = build_issue(workspace / ISSUE, config)
    interrupt = threading.Event()
    sendgrid.while_answering = interrupt.set  # Ctrl-C while the first request waits for its answer
    with pytest.raises(Interrupted):
        send_issue(rendered, config, read_subscribers(make_subscribers(workspace, 10)), sendgrid_backend(sendgrid.url),
                   SendOptions(live=True, force=True, workers=1), interrupt=interrupt,
                   environment=sendgrid_environment(sendgrid.url))
    assert sendgrid.accepted == []  # the rest of the refused batch was not sent after the Ctrl-C
    assert ledger_states(tmp_path / "state") == {"failed": 1, "queued": 9}  # and nobody is held back as uncertain


class ListInterruptedOnItsSecondPass(list):
    """A list of subscribers whose second pass (the one a send reads its batches from) gets a Ctrl-C
    at reader `at`: a KeyboardInterrupt inside the send's own pass over the list."""

    def __init__(self, items: list, at: int):
        super().__init__(items)
        self.at, self.passes = at, 0

    def __iter__(self):
        self.passes += 1
        for number, item in enumerate(super().__iter__()):
            if self.passes == 2 and number == self.at:
                raise KeyboardInterrupt
            yield item


@pytest.mark.parametrize("where", ["between batches", "inside the list"])
def test_a_keyboard_interrupt_mid_send_queues_the_readers_not_reached(workspace: Path, sendgrid: FakeSendGrid,
                                                                      tmp_path: Path, where: str) -> None:
    # A send writes each reader's row as it reaches them. Stopped by Ctrl-C (KeyboardInterrupt when
    # mailer is used as a library, or the CLI's second), the readers it did not reach are queued, so
    # that status counts them: also when the Ctrl-C lands in the send's own pass over the list.
    from mailer.deliver.progress import Interrupted, Progress

    def ctrl_c(count: int, outcome: str) -> None:
        raise KeyboardInterrupt

    config = config_of(workspace)
    rendered = build_issue(workspace / ISSUE, config)
    readers = read_subscribers(make_subscribers(workspace, 15000))
    if where == "inside the list":
        readers = dataclasses.replace(readers, subscribers=ListInterruptedOnItsSecondPass(readers.subscribers, 5000))
    with pytest.raises(Interrupted):
        send_issue(rendered, config, readers, sendgrid_backend(sendgrid.url),
                   SendOptions(live=True, force=True, workers=1),
                   progress=Progress(on_batch=ctrl_c) if where == "between batches" else Progress(),
                   environment=sendgrid_environment(sendgrid.url))
    sent = 1000 if where == "between batches" else 5000
    assert len(sendgrid.accepted) == sent
    assert ledger_states(tmp_path / "state") == {"accepted": sent, "queued": 15000 - sent}


def test_gateway_timeout_is_uncertain_not_retried(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                  tmp_path: Path) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 1500)
    sendgrid.script = deque(["accept", "504"])
    result = send_live(run_cli, path, "--workers", "1")
    assert result.exit_code == 3
    # One request for the second batch, never a retry: the 504 may hide an accepted batch.
    assert len([p for p in sendgrid.paths if p == "/v3/mail/send"]) == 3  # approval, batch 1, batch 2
    assert ledger_states(tmp_path / "state") == {"accepted": 1000, "uncertain": 500}
    assert "504" in run_cli("status", ISSUE).stdout


def test_stalled_request_times_out_as_uncertain(workspace: Path, sendgrid: FakeSendGrid, tmp_path: Path) -> None:
    sendgrid.default = "stall"
    sendgrid.stall_seconds = 2
    report = core_send(workspace, make_subscribers(workspace, 5), sendgrid_environment(sendgrid.url), timeout=0.3)
    assert report.uncertain == 5 and not report.complete


def test_missing_api_key_sends_nothing(workspace: Path, sendgrid: FakeSendGrid, run_cli, monkeypatch) -> None:
    monkeypatch.delenv("SENDGRID_API_KEY")
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes", "--force")
    assert result.exit_code == 1
    assert "SENDGRID_API_KEY is not set" in result.stderr
    assert sendgrid.paths == []


def test_bad_subscribers_file_sends_nothing(workspace: Path, sendgrid: FakeSendGrid, run_cli) -> None:
    path = make_subscribers(workspace, 3, extra="bob@,Bob,,subscribed,\n")
    result = send_live(run_cli, path, "--force")
    assert result.exit_code == 1
    assert "subscribers-3.csv:5: invalid email address 'bob@'" in result.stderr
    assert sendgrid.paths == []


def test_two_sends_of_one_issue_cannot_run_at_once(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                   tmp_path: Path) -> None:
    with issue_lock(tmp_path / "state", "2020-12-13"):
        result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes", "--force")
    assert result.exit_code == 3
    assert "another `mailer send` of 2020-12-13 is running" in result.stderr
    assert sendgrid.paths == []


def test_a_malformed_api_key_is_refused_without_showing_it(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                           monkeypatch) -> None:
    # Two keys pasted into one variable: http.client refuses the header and quotes it, key and all,
    # in a ValueError that no handler expects (a traceback on the terminal, the key in any CI log).
    monkeypatch.setenv("SENDGRID_API_KEY", f"{API_KEY}\nSG.second-key")
    for args in (("--test-to", "editor@example.com", "--live"),
                 ("--subscribers", "subscribers.example.csv", "--live", "--yes", "--force")):
        result = run_cli("send", ISSUE, *args)
        assert result.exit_code == 1
        assert "SENDGRID_API_KEY is not a single API key" in result.stderr
        assert "test-key" not in result.stdout + result.stderr and "second-key" not in result.stdout + result.stderr
    result = run_cli("suppressions", "pull")
    assert result.exit_code == 1 and "test-key" not in result.stdout + result.stderr
    assert sendgrid.paths == [] and sendgrid.gets == []


def test_live_send_without_terminal_needs_yes(workspace: Path, sendgrid, run_cli) -> None:
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--force")
    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
    assert sendgrid.paths == []


def test_secrets_never_appear_in_output_outbox_or_ledger(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                         tmp_path: Path) -> None:
    approve(run_cli)
    outputs = [run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv"),
               run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes"),
               run_cli("status", ISSUE)]
    assert sendgrid.auth_headers[-1] == f"Bearer {API_KEY}"  # the key was really used
    for result in outputs:
        assert API_KEY not in result.stdout + result.stderr and UNSUBSCRIBE_SECRET not in result.stdout + result.stderr
    for file in (tmp_path / "state").rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert API_KEY.encode() not in data and UNSUBSCRIBE_SECRET.encode() not in data, file


# -- scheduling and sandbox ----------------------------------------------------------------------


def test_schedule_within_72_hours_and_cancel(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                             tmp_path: Path) -> None:
    approve(run_cli)
    when = (datetime.now(UTC) + timedelta(hours=10)).strftime("%Y-%m-%d %H:%M")
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes",
                     "--at", f"{when} UTC")
    assert result.exit_code == 0, result.stderr
    body = sendgrid.requests[-1]
    assert body["batch_id"].startswith("batch-")
    assert abs(body["send_at"] - (datetime.now(UTC) + timedelta(hours=10)).timestamp()) < 120
    status = run_cli("status", ISSUE)
    assert "scheduled for" in status.stdout
    cancelled = run_cli("cancel", ISSUE)
    assert cancelled.exit_code == 0, cancelled.stderr
    assert sendgrid.scheduled == {body["batch_id"]: "cancel"}
    assert ledger_states(tmp_path / "state") == {"cancelled": 18}
    # The scheduled send had left nobody to send to; the cancel changed that, and the same list sent
    # again now reaches all of them (not "nothing left to send" from before the cancel).
    again = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert again.exit_code == 0, again.stderr
    assert "Nothing left to send" not in again.stderr
    assert ledger_states(tmp_path / "state") == {"accepted": 18}
    assert len(sendgrid.requests[-1]["personalizations"]) == 18 and "send_at" not in sendgrid.requests[-1]


def schedule_in_ten_hours(run_cli) -> None:
    approve(run_cli)
    when = (datetime.now(UTC) + timedelta(hours=10)).strftime("%Y-%m-%d %H:%M")
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes",
                     "--at", f"{when} UTC")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("minutes_left", [-60, 5])
def test_cancel_too_late_for_sendgrid_keeps_the_deliveries(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                          tmp_path: Path, minutes_left: int) -> None:
    schedule_in_ten_hours(run_cli)
    # Time passes: the send is now due (or gone). SendGrid cancels no later than 10 minutes before.
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    db.execute("UPDATE schedules SET send_at=?", ((datetime.now(UTC) + timedelta(minutes=minutes_left)).isoformat(),))
    db.commit()
    db.close()
    result = run_cli("cancel", ISSUE)
    assert result.exit_code == 3
    assert "too late to cancel" in result.stderr
    assert sendgrid.scheduled == {}
    assert ledger_states(tmp_path / "state") == {"accepted": 18}
    again = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert again.exit_code == 0, again.stderr
    received = Counter(a for a in sendgrid.accepted if a != "editor@example.com")
    assert len(received) == 18 and max(received.values()) == 1  # nobody twice


def test_cancel_also_cancels_the_uncertain_recipients_of_the_schedule(workspace: Path, sendgrid: FakeSendGrid,
                                                                       run_cli, tmp_path: Path) -> None:
    approve(run_cli)
    sendgrid.script = deque(["accept_drop"])  # queued at SendGrid under the batch id, answer lost
    when = (datetime.now(UTC) + timedelta(hours=10)).strftime("%Y-%m-%d %H:%M")
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes",
                     "--at", f"{when} UTC")
    assert result.exit_code == 3
    assert ledger_states(tmp_path / "state") == {"uncertain": 18}
    # SendGrid discards every message of a cancelled batch: whether or not it got them, they will
    # not arrive, so they are owed the issue like the accepted ones.
    assert run_cli("cancel", ISSUE).exit_code == 0
    assert ledger_states(tmp_path / "state") == {"cancelled": 18}
    again = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert again.exit_code == 0, again.stderr
    assert ledger_states(tmp_path / "state") == {"accepted": 18}


def test_cancel_waits_for_a_running_send_of_the_issue(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                     tmp_path: Path) -> None:
    schedule_in_ten_hours(run_cli)
    # A send still adding batches to the schedule would record them `accepted` after the cancel.
    with issue_lock(tmp_path / "state", "2020-12-13"):
        result = run_cli("cancel", ISSUE)
    assert result.exit_code == 3
    assert "another `mailer send` of 2020-12-13 is running" in result.stderr
    assert sendgrid.scheduled == {}
    assert ledger_states(tmp_path / "state") == {"accepted": 18}
    assert run_cli("cancel", ISSUE).exit_code == 0
    assert ledger_states(tmp_path / "state") == {"cancelled": 18}


def test_schedule_refused_by_sendgrid_is_exit_3_with_its_message(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                                 tmp_path: Path, monkeypatch) -> None:
    approve(run_cli)
    assert run_cli("suppressions", "pull").exit_code == 0  # fresh: the send may go on when a pull fails
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.revoked")  # refused when the batch id is asked for
    when = (datetime.now(UTC) + timedelta(hours=10)).strftime("%Y-%m-%d %H:%M")
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes",
                     "--at", f"{when} UTC")
    assert result.exit_code == 3
    assert "SendGrid refused the API key (401)" in result.stderr
    assert "The provided authorization grant is invalid" in result.stderr
    # Nothing was sent after the approval (the suppression pull was refused too, and said so).
    assert [path for path in sendgrid.paths[1:] if path.startswith("/v3/mail")] == ["/v3/mail/batch"]
    assert "the suppression list could not be pulled" in result.stderr
    assert ledger_states(tmp_path / "state") == Counter()  # stopped before its first request: no row written


@pytest.mark.parametrize("answer", [{"id": "b1"}, {"batch_id": 5}, {"batch_id": "\x1b[2Jb1"}, ["b1"], "b1"])
def test_a_schedule_answered_without_a_batch_id_is_exit_3_and_sends_nothing(workspace: Path, sendgrid: FakeSendGrid,
                                                                            run_cli, tmp_path: Path, answer) -> None:
    # A host that is not SendGrid: a traceback (KeyError, TypeError…), or an id that would reach every request.
    approve(run_cli)
    sendgrid.batch_answer = answer
    when = (datetime.now(UTC) + timedelta(hours=10)).strftime("%Y-%m-%d %H:%M")
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes",
                     "--at", f"{when} UTC")
    assert result.exit_code == 3 and "Traceback" not in result.stderr
    assert "SendGrid gave no batch id for the scheduled send" in result.stderr
    assert "holds no batch id" in result.stderr and "\x1b" not in result.stderr
    assert [path for path in sendgrid.paths[1:] if path.startswith("/v3/mail")] == ["/v3/mail/batch"]
    assert ledger_states(tmp_path / "state") == Counter()


@pytest.mark.parametrize(("offset", "message"), [(-1, "is in the past"), (80, "more than 72 hours ahead")])
def test_schedule_outside_sendgrids_window_is_refused(workspace: Path, sendgrid, run_cli, offset, message) -> None:
    when = (datetime.now(UTC) + timedelta(hours=offset)).isoformat(timespec="minutes")
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes", "--at", when)
    assert result.exit_code == 3
    assert message in result.stderr
    assert sendgrid.paths == []


def test_sandbox_validates_and_delivers_nothing(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                               tmp_path: Path) -> None:
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes", "--sandbox")
    assert result.exit_code == 0, result.stderr
    assert sendgrid.requests[-1]["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert sendgrid.accepted == []
    assert ledger_states(tmp_path / "state") == Counter()  # the real issue's ledger is untouched
    assert ledger_states(tmp_path / "state", "2020-12-13@sandbox") == {"accepted": 18}
    # The sandbox send reached nobody: the real one, with the same list, reaches everyone.
    approve(run_cli)
    real = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert real.exit_code == 0, real.stderr
    assert "Nothing left to send" not in real.stderr
    assert len([a for a in sendgrid.accepted if a != "editor@example.com"]) == 18


def core_send(workspace: Path, subscribers_path: Path, environment: Environment, *, timeout: float | None = None,
              max_consecutive_failures: int = 5, workers: int = 2):
    """A live send of the sample issue through the library, handed `environment` (SendGrid's key and host, the
    unsubscribe secret) as the CLI hands it what it read."""
    config = config_of(workspace)
    rendered = build_issue(workspace / ISSUE, config)
    options = SendOptions(live=True, force=True, workers=workers, max_consecutive_failures=max_consecutive_failures,
                          retry=RetryPolicy(attempts=5, base_seconds=0.01, cap_seconds=0.05))
    backend = sendgrid_backend(environment.sendgrid_api_host, **({"timeout": timeout} if timeout else {}))
    return send_issue(rendered, config, read_subscribers(subscribers_path), backend, options, environment=environment)


def sendgrid_backend(url: str, **options: float) -> SendGridBackend:
    """A SendGrid backend that sends to the fake at `url`, as the CLI makes it from SENDGRID_API_KEY and _HOST."""
    return SendGridBackend(key=API_KEY, host=url, **options)


def test_large_dry_run_writes_every_batch_in_order(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                   tmp_path: Path) -> None:
    # Four batches or more are prepared by two worker processes, a batch or a few at a time, and come
    # back in any order: the outbox must read as if written by one.
    path = make_subscribers(workspace, 4500)
    result = run_cli("send", ISSUE, "--subscribers", str(path))
    assert result.exit_code == 0, result.stderr
    outbox = tmp_path / "state" / "outbox" / "2020-12-13"
    manifest = [json.loads(line) for line in (outbox / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [m["email"] for m in manifest] == [f"reader{i:05d}@example.com" for i in range(4500)]
    assert [m["batch"] for m in manifest[::1000]] == [1, 2, 3, 4, 5]
    bodies = [json.loads(p.read_text()) for p in sorted((outbox / "sendgrid").iterdir())]
    assert [len(b["personalizations"]) for b in bodies] == [1000, 1000, 1000, 1000, 500]
    assert [b["personalizations"][0]["to"][0]["email"] for b in bodies] == [
        f"reader{i:05d}@example.com" for i in range(0, 4500, 1000)]
    assert all(validate_mail_send(b) == [] for b in bodies)
    assert sendgrid.paths == []


def test_rate_option_caps_messages_per_second(workspace: Path, sendgrid: FakeSendGrid, run_cli) -> None:
    approve(run_cli)
    path = make_subscribers(workspace, 2500)
    start = time.monotonic()
    result = send_live(run_cli, path, "--rate", "1000")
    elapsed = time.monotonic() - start
    assert result.exit_code == 0, result.stderr
    # 1000 a second: the second batch of 1000 may start after 1 s, the third after 2 s.
    assert elapsed >= 2.0
    assert len(sendgrid.accepted) == 2501


def test_rate_limiter_spaces_batches() -> None:
    from mailer.deliver.rate import RateLimiter

    slept: list[float] = []
    limiter = RateLimiter(100.0, sleep=slept.append)
    for _ in range(4):
        limiter.acquire(50)  # 200 messages at 100/s: the last batch may start 1.5 s after the first
    # The clock does not move while nothing really sleeps: each wait is "start + sent/rate - now".
    assert [round(s, 2) for s in slept] == [0.5, 1.0, 1.5]
    unlimited = RateLimiter(None, sleep=slept.append)
    unlimited.acquire(10_000)
    assert len(slept) == 3


# -- mailer check before sending -----------------------------------------------------------------


def _break_the_issue(workspace: Path) -> None:
    issue = workspace / ISSUE
    issue.write_text(issue.read_text(encoding="utf-8").replace("Hey -first_name-", "TODO Hey -frist_name-"),
                     encoding="utf-8")


def test_a_live_send_refuses_an_issue_with_check_errors(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                        tmp_path: Path) -> None:
    _break_the_issue(workspace)
    for args in (("--test-to", "editor@example.com"), ("--subscribers", "subscribers.example.csv", "--yes")):
        result = run_cli("send", ISSUE, *args, "--live")
        assert result.exit_code == 1, result.stderr
        assert "mailer check found 2 errors; nothing was sent" in result.stderr
        assert "issues/2020-12-13.yaml:" in result.stderr and "unfinished copy: 'TODO'" in result.stderr
        assert "unknown placeholder -frist_name-" in result.stderr and "--force" in result.stderr
    assert sendgrid.paths == []
    assert not (tmp_path / "state" / "ledger.sqlite3").exists() or ledger_states(tmp_path / "state") == Counter()


def test_a_dry_run_shows_check_errors_and_force_sends_anyway(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                             tmp_path: Path) -> None:
    _break_the_issue(workspace)
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv")
    assert result.exit_code == 0 and "DRY RUN" in result.stdout
    assert "check: 2 errors; a live send would refuse until they are fixed" in result.stderr
    result = run_cli("send", ISSUE, "--test-to", "editor@example.com", "--live", "--force")
    assert result.exit_code == 0, result.stderr
    assert "warning: sending despite 2 errors found by mailer check (--force)" in result.stderr
    assert len(sendgrid.paths) == 1


def test_check_warnings_do_not_stop_a_send(workspace: Path, sendgrid: FakeSendGrid, run_cli) -> None:
    result = run_cli("send", ISSUE, "--test-to", "editor@example.com", "--live")
    assert result.exit_code == 0, result.stderr
    assert "check: 1 warning (mailer check issues/2020-12-13.yaml shows them)" in result.stderr


def test_an_unapproved_send_is_refused_before_anyone_is_asked_to_confirm(workspace: Path, sendgrid: FakeSendGrid,
                                                                          run_cli) -> None:
    # No --yes and no terminal: were the confirmation asked first, the editor would answer it for nothing.
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live")
    assert result.exit_code == 1
    assert "has not been test-sent as it is now" in result.stderr
    assert "Not confirmed" not in result.stdout + result.stderr
    assert sendgrid.paths == []


def test_cancel_with_nothing_scheduled_leaves_no_empty_ledger_behind(workspace: Path, sendgrid: FakeSendGrid,
                                                                     run_cli, tmp_path: Path) -> None:
    result = run_cli("cancel", ISSUE)
    assert result.exit_code == 3
    assert "2020-12-13 has no scheduled send to cancel" in result.stderr
    assert not (tmp_path / "state" / "ledger.sqlite3").exists()
    assert "nothing sent yet" in run_cli("status", ISSUE).stdout
    assert sendgrid.paths == []


def test_scheduling_needs_sendgrid(workspace: Path, run_cli) -> None:
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--backend", "smtp", "--live",
                     "--yes", "--at", "2099-01-01 08:00 UTC")
    assert result.exit_code == 2
    assert "--at needs the sendgrid backend: SMTP has no scheduling" in result.stderr


def test_a_ledger_keyed_by_an_older_release_is_re_keyed_once(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                               state_dir: Path) -> None:
    # Release 1 case-folded keys ('straße@' became 'strasse@') and kept punycode domains apart.
    approve(run_cli)
    with closing(sqlite3.connect(state_dir / "ledger.sqlite3")) as db, db:
        for key, email in (("strasse@example.com", "straße@example.com"),
                           ("kunde@xn--bcher-kva.example", "kunde@xn--bcher-kva.example")):
            db.execute("INSERT INTO deliveries (issue, recipient, email, state, created_at, updated_at) "
                       "VALUES ('2020-12-13', ?, ?, 'accepted', '2026-11-22', '2026-11-22')", (key, email))
        db.execute("CREATE INDEX deliveries_state ON deliveries (issue, state)")  # as releases before 3 made it
        db.execute("PRAGMA user_version=1")
    subscribers = make_subscribers(workspace, 0, extra="straße@example.com,S,,subscribed,\n"
                                                       "strasse@example.com,T,,subscribed,\n"
                                                       "kunde@bücher.example,K,,subscribed,\n")
    assert send_live(run_cli, subscribers).exit_code == 0
    # Straße and Kunde got it in the earlier run; only the other mailbox, strasse@, gets it now.
    assert [a for a in sendgrid.accepted if a != "editor@example.com"] == ["strasse@example.com"]
    assert dict(read_ledger(state_dir, "SELECT recipient, state FROM deliveries")) == {
        "straße@example.com": "accepted", "kunde@bücher.example": "accepted", "strasse@example.com": "accepted"}
    # Version 3 dropped the index on state (two index moves per recipient and send); status counts as before.
    assert read_ledger(state_dir, "SELECT name FROM sqlite_master WHERE type='index' AND name='deliveries_state'") == []
    assert read_ledger(state_dir, "PRAGMA user_version") == [(5,)]  # and, since, 4 and 5 (the events)
    status = run_cli("status", ISSUE)
    assert status.exit_code == 0 and re.search(r"accepted\s+3\b", status.stdout), status.stdout


# -- a misconfigured environment -------------------------------------------------------------------


def test_an_smtp_url_that_is_not_a_url_is_an_error_that_hides_the_password(workspace: Path, run_cli,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_SMTP_URL", "smtp+insecure://editor:s3cretpw@[::1")
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    result = run_cli("send", ISSUE, "--backend", "smtp", "--test-to", "editor@example.com", "--live")
    assert result.exit_code == 1
    assert "MAILER_SMTP_URL is not a URL" in result.stderr and "s3cretpw" not in result.stdout + result.stderr


@pytest.mark.parametrize("host", ["http://127.0.0.1:9/v3 extra", "ftp://127.0.0.1", "http://[::1", "127.0.0.1:8080"])
def test_a_malformed_sendgrid_api_host_stops_before_anything_is_marked(workspace: Path, sendgrid: FakeSendGrid,
                                                                      run_cli, tmp_path: Path, host: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    approve(run_cli)
    monkeypatch.setenv("SENDGRID_API_HOST", host)
    result = send_live(run_cli, make_subscribers(workspace, 200))
    assert result.exit_code == 1 and "SENDGRID_API_HOST is not an http(s) address" in result.stderr
    assert ledger_states(tmp_path / "state") == Counter()  # nobody queued, nobody called uncertain


def test_a_user_and_password_in_sendgrid_api_host_are_never_shown_nor_sent(
        workspace: Path, sendgrid: FakeSendGrid, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailer.deliver.backends import BackendConfigError
    from mailer.deliver.suppressions import fetch_suppressions

    approve(run_cli)
    assert run_cli("suppressions", "pull").exit_code == 0  # a list pulled: a send goes on if the next pull fails
    sendgrid.requests.clear()
    sendgrid.paths.clear()
    port = urlsplit(sendgrid.url).port
    # urllib took `mailer-user:s3cret-pw@127.0.0.1` for a host name: every request failed, and each retry
    # note and error showed the password, and the ledger's failed rows kept it.
    for host in (f"http://mailer-user:s3cret-pw@127.0.0.1:{port}x", "ftp://mailer-user:s3cret-pw@127.0.0.1",
                 f"http://mailer-user:s3c/ret-pw@127.0.0.1:{port}", f"http://mailer-user:s3cret-pw@127.0.0.1:{port}",
                 f"https://mailer-user:s3cret-pw@127.0.0.1:{port}/"):
        monkeypatch.setenv("SENDGRID_API_HOST", host)
        for command in (["send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes"],
                        ["send", ISSUE, "--test-to", "editor@example.com", "--live"],
                        ["send", ISSUE, "--subscribers", "subscribers.example.csv"],
                        ["suppressions", "pull"]):
            result = run_cli(*command)
            said = result.stdout + result.stderr
            assert result.exit_code == 1 and "SENDGRID_API_HOST" in said and "Traceback" not in said, (host, said)
            assert "mailer-user" not in said and "s3c" not in said, said
            assert "***@127.0.0.1" in said, said
    assert sendgrid.requests == [] and sendgrid.paths == []
    assert f"hint: export SENDGRID_API_HOST=https://127.0.0.1:{port}\n" in said
    for given in (lambda host: SendGridBackend(host=host), lambda host: fetch_suppressions(key=API_KEY, host=host)):
        with pytest.raises(BackendConfigError) as refused:
            given(f"http://mailer-user:s3cret-pw@127.0.0.1:{port}")
        assert "s3cret" not in str(refused.value) and "mailer-user" not in str(refused.value)
    run_cli("status", ISSUE)
    for path in (tmp_path / "state").rglob("*"):
        assert not path.is_file() or b"s3c" not in path.read_bytes(), path


def test_a_host_that_is_not_sendgrid_is_one_readable_error_not_six_pages_of_bytes(
        workspace: Path, sendgrid: FakeSendGrid, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    approve(run_cli)
    assert run_cli("suppressions", "pull").exit_code == 0  # fresh: the send goes on to the wrong host

    class Quiet(SimpleHTTPRequestHandler):  # answers POST with an HTML 501 page, as a wrong host would
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        monkeypatch.setenv("SENDGRID_API_HOST", f"http://127.0.0.1:{server.server_address[1]}")
        result = send_live(run_cli, make_subscribers(workspace, 30))
    finally:
        server.shutdown()
        server.server_close()
    output = result.stdout + result.stderr
    assert result.exit_code == 3
    assert output.count("answered 501: not SendGrid's answer (Error response") == 1, output
    assert "b'" not in output and "<html" not in output.lower() and "is SENDGRID_API_HOST right?" in output
    assert ledger_states(tmp_path / "state") == {"queued": 30}  # refused, not sent: nobody is uncertain


def test_smtp_progress_without_a_terminal_is_a_line_per_hundred(workspace: Path, run_cli,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.loopback_smtp import Recorder, start_smtp_server

    controller = start_smtp_server(Recorder())
    monkeypatch.setenv("MAILER_SMTP_URL", f"smtp+insecure://127.0.0.1:{controller.port}")
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    try:
        result = run_cli("send", ISSUE, "--backend", "smtp", "--subscribers", str(make_subscribers(workspace, 250)),
                         "--live", "--yes", "--force")
    finally:
        controller.stop()
    assert result.exit_code == 0, result.stderr
    assert re.findall(r"accepted so far: (\d+)", result.stderr) == ["100", "200"]
    assert "batch of 1" not in result.stderr


@pytest.mark.parametrize(("typed", "said"), [
    ("tomorrow at 8", "mailer did not understand 'at 8'; it understood only 'tomorrow'"),
    ("2026-11-30 08:00 Mars/Olympus", "no time zone is called 'Mars/Olympus'"),
    ("banana", "mailer did not understand 'banana'"),
])
def test_a_send_time_mailer_cannot_read_shows_the_form_it_can(workspace: Path, run_cli, typed: str,
                                                              said: str) -> None:
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--at", typed)
    assert result.exit_code == 2 and said in result.stderr and "isoformat" not in result.stderr


def test_a_list_read_from_its_file_sends_and_resumes_as_one_held_in_memory(
        workspace: Path, sendgrid: FakeSendGrid, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailer.audience import subscribers as subscribers_module

    approve(run_cli)
    path = make_subscribers(workspace, 2500, extra="reader00007@example.com,Again,,subscribed,\n"
                                                   "gone@example.com,Gone,,unsubscribed,\n")
    held = run_cli("send", ISSUE, "--subscribers", str(path))
    outbox = tmp_path / "state" / "outbox" / "2020-12-13"
    held_manifest = (outbox / "manifest.jsonl").read_text(encoding="utf-8")
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)  # every list is read from its file
    streamed = run_cli("send", ISSUE, "--subscribers", str(path))
    assert streamed.stdout == held.stdout and (outbox / "manifest.jsonl").read_text(encoding="utf-8") == held_manifest
    assert "duplicate of line 9" in streamed.stderr and "2500" in streamed.stdout
    # Live: one of the three requests is refused; the rerun sends its batch, and nobody twice.
    sendgrid.script.extend(["accept", "accept", "400"])
    first = send_live(run_cli, path)
    # (which batch gets the refusal depends on which request arrives third: one of 1000 or the 500)
    assert first.exit_code == 3 and re.search(r"^  failed +(1000|500)$", first.stdout, re.M)
    again = send_live(run_cli, path, "--retry-failed")
    accepted = [a for a in sendgrid.accepted if a != "editor@example.com"]
    assert len(accepted) == len(set(accepted)) == 2500, (first.stdout, again.stdout)
    assert ledger_states(tmp_path / "state") == {"accepted": 2500}
    assert again.exit_code == 0 and re.search(r"^  accepted +2500$", again.stdout, re.M)


def test_a_list_file_changed_during_a_send_leaves_the_send_as_it_was_checked(
        workspace: Path, sendgrid: FakeSendGrid, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailer.audience import subscribers as subscribers_module
    from mailer.deliver.ledger import Ledger

    approve(run_cli)
    monkeypatch.setattr(subscribers_module, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr("mailer.deliver.plan.PLAN_CHUNK", 1000)  # the list is read on as the batches go
    path = make_subscribers(workspace, 3000)
    mark = Ledger.mark

    def editor_saves_the_list(self, issue, keys, state, **kwargs):
        if state == "accepted" and "appended@example.com" not in path.read_text(encoding="utf-8"):
            text = path.read_text(encoding="utf-8").replace("reader02999@example.com", "not-an-address")
            path.write_text(text + "appended@example.com,New,,subscribed,\n")
        return mark(self, issue, keys, state, **kwargs)

    monkeypatch.setattr(Ledger, "mark", editor_saves_the_list)
    result = send_live(run_cli, path, "--workers", "2")
    # The send goes on with the rows it checked: the new row (nobody checked it) is not sent, the
    # row made invalid is (it was valid when the send began), and the next run reads the file afresh.
    assert result.exit_code == 0, result.stderr
    accepted = [a for a in sendgrid.accepted if a != "editor@example.com"]
    assert len(accepted) == len(set(accepted)) == 3000 and "appended@example.com" not in accepted
    assert ledger_states(tmp_path / "state") == {"accepted": 3000}
    again = send_live(run_cli, path)
    assert again.exit_code == 1 and "invalid email address 'not-an-address'" in again.stderr


def test_a_reader_let_go_by_the_suppression_list_during_a_send_waits_for_the_next_run(
        workspace: Path, sendgrid: FakeSendGrid, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailer.deliver.suppressions import Screener

    approve(run_cli)
    path = make_subscribers(workspace, 3)
    calls = []

    def suppressed_only_at_first(self, keys):
        calls.append(list(keys))
        first = len(calls) == 1  # the planning that queues; later, the reader has resubscribed
        return {"reader00001@example.com": "suppressed: unsubscribed"} if first else {}

    monkeypatch.setattr(Screener, "reasons", suppressed_only_at_first)
    result = send_live(run_cli, path)
    assert result.exit_code == 0, result.stderr
    assert [a for a in sendgrid.accepted if a != "editor@example.com"] == [
        "reader00000@example.com", "reader00002@example.com"]
    assert ledger_states(tmp_path / "state") == {"accepted": 2}
    again = send_live(run_cli, path)
    assert again.exit_code == 0
    assert [a for a in sendgrid.accepted if a != "editor@example.com"].count("reader00001@example.com") == 1

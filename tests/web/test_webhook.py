"""SendGrid's Event Webhook into `mailer serve`, a running process: signed batches in, ledger and suppressions out."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.deliver.ledger import Ledger, ledger_path
from tests.conftest import SAMPLE_ISSUE, approve
from tests.fake_sendgrid import EventWebhook, FakeSendGrid
from tests.web.test_service import Running, serving

WEBHOOK = "/webhooks/sendgrid"
ALAN, LI_LEI = "alan.turing@example.com", "li.lei@example.com"


@pytest.fixture
def events() -> EventWebhook:
    return EventWebhook()


@pytest.fixture
def service(workspace: Path, state_dir: Path, events: EventWebhook) -> Iterator[Running]:
    with serving(workspace, state_dir, SENDGRID_WEBHOOK_PUBLIC_KEY=events.public_key) as running:
        yield running


@pytest.fixture
def sent(workspace: Path, sendgrid: FakeSendGrid, run_cli) -> FakeSendGrid:
    """The sample issue, sent live to the 18 subscribed readers of subscribers.example.csv."""
    approve(run_cli)
    sendgrid.requests.clear()  # the approval's test copy is not a delivery to the list
    result = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert result.exit_code == 0, result.stderr
    return sendgrid


def post(service: Running, events: EventWebhook, body: bytes, **signing: int) -> tuple[int, str]:
    status, _, text = service.request("POST", WEBHOOK, body, events.signed(body, **signing))
    return status, text


def event_counts(state_dir: Path) -> dict[str, tuple[int, int]]:
    with Ledger(ledger_path(state_dir)) as ledger:
        return ledger.event_counts("2020-12-13")


def test_signed_batches_are_recorded_once_and_bad_addresses_are_suppressed(
        service: Running, events: EventWebhook, sent: FakeSendGrid, state_dir: Path, run_cli) -> None:
    batch = events.events(sent)  # processed and delivered, for all 18
    batch += events.events(sent, ("bounce",), only={ALAN}, type="bounce", status="5.1.1",
                           reason="550 5.1.1 mailbox unavailable")
    batch += events.events(sent, ("spamreport",), only={LI_LEI})
    batch += events.events(sent, ("open",), only={"ada.lovelace@example.com"})
    body = json.dumps(batch).encode()
    assert post(service, events, body) == (200, json.dumps(
        {"events": 39, "new": 39, "suppressed": 2, "skipped": 0}, separators=(",", ":")))
    # SendGrid retries a batch it got no 2xx for: the same events again change nothing.
    assert json.loads(post(service, events, body)[1])["new"] == 0
    assert event_counts(state_dir) == {"processed": (18, 18), "delivered": (18, 18), "bounce": (1, 1),
                                       "spamreport": (1, 1), "open": (1, 1)}
    assert service.reasons(ALAN) == ["bounce (550 5.1.1 mailbox unavailable, via the event webhook)"]
    assert service.reasons(LI_LEI) == ["spam report (via the event webhook)"]
    # The next issue skips them (this one's readers already got it).
    dry_run = run_cli("send", "issues/2020-12-13-zh.yaml", "--subscribers", "subscribers.example.csv")
    assert "skip alan.turing@example.com (line 3): suppressed: bounce" in dry_run.stdout
    assert "suppressed: spam report (via the event webhook)" in dry_run.stdout


def test_events_carry_no_address_of_their_own_making(events: EventWebhook, sent: FakeSendGrid) -> None:
    (event,) = events.events(sent, ("delivered",), only={ALAN})
    assert event["mailer_issue"] == "2020-12-13" and "@" not in event["mailer_recipient"]


def test_a_blocked_bounce_is_recorded_but_not_suppressed(service: Running, events: EventWebhook,
                                                         sent: FakeSendGrid, state_dir: Path) -> None:
    body = json.dumps(events.events(sent, ("bounce",), only={ALAN}, type="blocked", reason="452 mailbox full"))
    assert post(service, events, body.encode())[0] == 200
    assert event_counts(state_dir) == {"bounce": (1, 1)} and service.reasons(ALAN) == []


def test_forged_stale_and_broken_batches_are_refused_and_change_nothing(
        service: Running, events: EventWebhook, sent: FakeSendGrid, state_dir: Path) -> None:
    import time

    good = json.dumps(events.events(sent, ("spamreport",), only={ALAN})).encode()
    forger = EventWebhook()  # another key: a forged batch
    cases = {
        "forged": service.request("POST", WEBHOOK, good, forger.signed(good)),
        "tampered": service.request("POST", WEBHOOK, good.replace(b"spamreport", b"delivered"), events.signed(good)),
        "truncated": service.request("POST", WEBHOOK, good[:-5], events.signed(good)),
        "stale": service.request("POST", WEBHOOK, good, events.signed(good, timestamp=int(time.time()) - 3600)),
        "unsigned": service.request("POST", WEBHOOK, good, {"Content-Type": "application/json"}),
        "garbage signature": service.request("POST", WEBHOOK, good, {**events.signed(good), "X-Twilio-Email-Event-"
                                                                     "Webhook-Signature": "é%%%not base64"}),
        "too large": service.request("POST", WEBHOOK, b"[" + b" " * 9_000_000 + b"]", events.signed(b"[]")),
        "not JSON": service.request("POST", WEBHOOK, b"{oops", events.signed(b"{oops")),
        "not a list": service.request("POST", WEBHOOK, b'{"a": 1}', events.signed(b'{"a": 1}')),
    }
    assert {name: status for name, (status, _, _) in cases.items()} == {
        "forged": 403, "tampered": 403, "truncated": 403, "stale": 403, "unsigned": 403, "garbage signature": 403,
        "too large": 413, "not JSON": 400, "not a list": 400}
    assert event_counts(state_dir) == {} and service.reasons(ALAN) == []


def test_a_signed_batch_escaping_half_a_surrogate_pair_is_recorded_without_it(service: Running, events: EventWebhook,
                                                                              state_dir: Path) -> None:
    # JSON allows the escape, no text holds it, SQLite cannot store it: the whole batch was answered 500 (and
    # SendGrid retries a batch for days). A reason keeps U+FFFD where the half was; an address with one in it
    # is nobody's, and its event is left out.
    stamp = 1_700_000_000
    batch = [{"email": "a\ud800@example.com", "event": "bounce", "sg_event_id": "e1", "timestamp": stamp,
              "mailer_issue": "2020-12-13"},
             {"email": ALAN, "event": "bounce", "sg_event_id": "e2", "timestamp": stamp, "mailer_issue": "2020-12-13",
              "status": "5.1.1", "reason": "550 no such user \udfff"},
             {"email": LI_LEI, "event": "delivered", "sg_event_id": "e3", "timestamp": stamp,
              "mailer_issue": "2020-12-13"}]
    body = json.dumps(batch).encode()
    assert b"\\ud800" in body and post(service, events, body)[0] == 200
    assert event_counts(state_dir) == {"bounce": (1, 1), "delivered": (1, 1)}
    assert service.reasons(ALAN) == ["bounce (550 no such user \ufffd, via the event webhook)"]
    assert service.reasons("a@example.com") == []


def test_without_a_key_there_is_no_webhook(workspace: Path, state_dir: Path, events: EventWebhook) -> None:
    with serving(workspace, state_dir) as running:
        body = b"[]"
        assert running.request("POST", WEBHOOK, body, events.signed(body))[0] == 404


def test_a_key_that_is_not_a_key_stops_serve(workspace: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", "x")
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", "not-a-key-at-all")
    result = run_cli("serve", "--port", "1")
    assert result.exit_code == 1 and "SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA public key" in result.stderr
    assert "not-a-key-at-all" not in result.stderr


def test_uncertain_recipients_are_resolved_from_events_and_only_the_unheard_are_sent_again(
        service: Running, events: EventWebhook, workspace: Path, sendgrid: FakeSendGrid, run_cli,
        state_dir: Path) -> None:
    import sqlite3
    from collections import Counter, deque
    from contextlib import closing

    from tests.conftest import ledger_states, make_subscribers

    approve(run_cli)
    subscribers = str(make_subscribers(workspace, 1200))
    # Batch 1 reached SendGrid but the answer was lost; batch 2 never arrived. Both are uncertain.
    sendgrid.script = deque(["accept_drop", "drop"])
    live = ("send", SAMPLE_ISSUE, "--subscribers", subscribers, "--live", "--yes", "--workers", "1")
    assert run_cli(*live).exit_code == 3
    assert ledger_states(state_dir) == {"uncertain": 1200}
    delivered = {a for a in sendgrid.accepted if a != "editor@example.com"}
    assert len(delivered) == 1000
    body = json.dumps(events.events(sendgrid, ("processed", "delivered"), only=delivered)).encode()
    assert post(service, events, body)[0] == 200

    dry_run = run_cli("send", SAMPLE_ISSUE, "--subscribers", subscribers, "--resend-uncertain")
    assert re.search(r"of which uncertain, resolved by events +1000\n", dry_run.stdout), dry_run.stdout
    assert re.search(r"would send now +0\n", dry_run.stdout), dry_run.stdout
    assert "uncertain: no event from the provider yet; --resend-uncertain sends again after" in dry_run.stdout

    within_grace = run_cli(*live, "--resend-uncertain")
    assert within_grace.exit_code == 3  # the 200 are still uncertain: too early to tell
    assert ledger_states(state_dir) == {"accepted": 1000, "uncertain": 200}
    assert len(sendgrid.accepted) == 1 + 1000  # the approval, and batch 1: nothing more

    with closing(sqlite3.connect(state_dir / "ledger.sqlite3")) as db, db:  # the grace period passes
        db.execute("UPDATE deliveries SET updated_at='2026-01-01T00:00:00+00:00' WHERE state='uncertain'")
    after_grace = run_cli(*live, "--resend-uncertain")
    assert after_grace.exit_code == 0, after_grace.stderr
    received = Counter(a for a in sendgrid.accepted if a != "editor@example.com")
    assert len(received) == 1200 and max(received.values()) == 1  # nobody twice, nobody missed


def test_a_test_copys_events_count_nowhere_and_resolve_no_list_reader(
        service: Running, events: EventWebhook, sendgrid: FakeSendGrid, run_cli, state_dir: Path) -> None:
    from collections import deque

    from tests.conftest import ledger_states, read_ledger

    # The editor test-sends to addresses that are on the list too (their own, a colleague's).
    for to in (ALAN, LI_LEI):
        assert run_cli("send", SAMPLE_ISSUE, "--test-to", to, "--live").exit_code == 0
    copies = events.events(sendgrid, ("processed", "delivered", "open", "click"), only={ALAN})
    copies += events.events(sendgrid, ("delivered", "spamreport"), only={LI_LEI})
    # As a copy sent before test copies were marked carries them: the issue's own key, the batch `test`.
    older = [{key: value for key, value in {**event, "mailer_issue": "2020-12-13",
                                            "sg_event_id": event["sg_event_id"] + "-old"}.items()
              if key != "mailer_test"} for event in copies]
    sendgrid.script = deque(["drop"])  # the list's one request arrives; its answer never does
    live = ("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert run_cli(*live).exit_code == 3 and ledger_states(state_dir) == {"uncertain": 18}

    status, answer = post(service, events, json.dumps(copies + older).encode())
    assert status == 200 and json.loads(answer)["new"] == 0
    assert event_counts(state_dir) == {}
    assert json.loads(run_cli("status", SAMPLE_ISSUE, "--format", "json").stdout)["events"] is None
    dry_run = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--resend-uncertain")
    assert "resolved by events" not in dry_run.stdout, dry_run.stdout
    assert run_cli(*live, "--resend-uncertain").exit_code == 0
    # Alan gets the issue: their test copy's delivery did not pass for their list copy (it had: a silent miss).
    assert sendgrid.accepted.count(ALAN) == 2  # the test copy, then the list's
    assert read_ledger(state_dir, "SELECT state FROM deliveries WHERE recipient=?", ALAN) == [("accepted",)]
    # SendGrid will not mail a complainant again, whichever copy they reported: neither will mailer.
    assert service.reasons(LI_LEI) == ["spam report (via the event webhook)"]
    assert {(event["mailer_issue"], event["mailer_test"]) for event in copies} == {("2020-12-13@test", "1")}


def test_status_counts_the_events_and_complaints_stop_the_next_send(
        service: Running, events: EventWebhook, sent: FakeSendGrid, run_cli) -> None:
    batch = events.events(sent, ("processed", "delivered"))
    batch += events.events(sent, ("open",), only={"ada.lovelace@example.com", ALAN})
    batch += events.events(sent, ("open", "click"), only={"ada.lovelace@example.com"})  # a second open: one reader
    batch += events.events(sent, ("spamreport",), only={LI_LEI})
    assert post(service, events, json.dumps(batch).encode())[0] == 200

    text = run_cli("status", SAMPLE_ISSUE)
    assert text.exit_code == 0
    assert re.search(r"delivered +18\n", text.stdout) and re.search(r"unique opens +2\n", text.stdout)
    assert re.search(r"complaints +1\n", text.stdout) and re.search(r"unique clicks +1\n", text.stdout)
    assert "opens are unreliable" in text.stdout
    assert "warning: 5.56% of delivered readers reported this issue as spam" in text.stderr
    as_json = json.loads(run_cli("status", SAMPLE_ISSUE, "--format", "json").stdout)
    assert as_json["events"]["delivered"] == 18 and as_json["states"]["accepted"] == 18
    assert as_json["events"]["complaint_rate"] == pytest.approx(1 / 18)

    # The next issue: its live send refuses until the editor says they know.
    zh = "issues/2020-12-13-zh.yaml"
    assert run_cli("send", zh, "--test-to", "editor@example.com", "--live").exit_code == 0
    before = len(sent.accepted)
    refused = run_cli("send", zh, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert refused.exit_code == 1 and "reported it as spam (1 of 18)" in refused.stderr
    assert "--despite-complaints" in refused.stderr and len(sent.accepted) == before
    anyway = run_cli("send", zh, "--subscribers", "subscribers.example.csv", "--live", "--yes",
                     "--despite-complaints")
    assert anyway.exit_code == 0, anyway.stderr


def test_deep_json_and_unsigned_bodies_never_reach_the_parser(service: Running, events: EventWebhook) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert post(service, events, deep) == (400, "not JSON")
    # No signature headers: refused before the 1.9 MB body is read.
    status, _, text = service.request("POST", WEBHOOK, b"[" + b" " * 1_900_000 + b"]",
                                      {"Content-Type": "application/json"})
    assert (status, text) == (403, "bad signature")


def test_a_key_of_another_kind_stops_serve(workspace: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    der = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", "x")
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", base64.b64encode(der).decode())
    result = run_cli("serve", "--port", "1")
    assert result.exit_code == 1 and "is not an ECDSA public key" in result.stderr


def test_a_bounce_and_a_complaint_move_readers_of_the_subscriber_store(
        service: Running, events: EventWebhook, sent: FakeSendGrid, state_dir: Path, run_cli) -> None:
    from mailer.audience.store import SubscriberStore

    assert run_cli("subscribers", "import", "subscribers.example.csv").exit_code == 0
    batch = events.events(sent, ("bounce",), only={ALAN}, type="bounce", status="5.1.1",
                          reason="550 5.1.1 mailbox unavailable")
    batch += events.events(sent, ("spamreport",), only={LI_LEI})
    assert post(service, events, json.dumps(batch).encode())[0] == 200
    with SubscriberStore.open(state_dir) as store:
        assert store.get(ALAN).status == "bounced" and "550 5.1.1" in store.get(ALAN).status_reason
        assert store.get(LI_LEI).status == "complained"
        assert store.counts()["confirmed"] == 16
    again = run_cli("subscribers", "import", "subscribers.example.csv")  # the list still says subscribed
    assert "stays bounced" in again.stdout and "stays complained" in again.stdout


def test_a_damaged_subscriber_store_never_fails_a_webhook_batch(
        service: Running, events: EventWebhook, sent: FakeSendGrid, state_dir: Path) -> None:
    # SendGrid retries a batch it got no 2xx for, for days: the store's damage must not cost the bounce.
    (state_dir / "subscribers.sqlite3").write_bytes(b"not a database " * 100)
    batch = events.events(sent, ("bounce",), only={ALAN}, type="bounce", status="5.1.1", reason="550 5.1.1 gone")
    assert post(service, events, json.dumps(batch).encode())[0] == 200
    assert service.reasons(ALAN) == ["bounce (550 5.1.1 gone, via the event webhook)"]


def alone_in_file(state_dir: Path, query: str) -> int:
    """What a query finds in the ledger file itself (a copy of it without its write-ahead log)."""
    import shutil
    import sqlite3
    import tempfile
    from contextlib import closing

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "ledger.sqlite3"
        shutil.copyfile(ledger_path(state_dir), copy)
        with closing(sqlite3.connect(copy)) as db:
            return db.execute(query).fetchone()[0]


def test_a_ledger_moved_aside_while_serving_gets_the_next_batches_in_its_place(
        service: Running, events: EventWebhook, sent: FakeSendGrid, state_dir: Path) -> None:
    # mailer serve keeps its ledger connection open between batches: a file moved aside (as the damage hints
    # say) must not keep receiving events meant for the ledger the next send reads.
    first = json.dumps(events.events(sent, ("delivered",), only={ALAN})).encode()
    assert post(service, events, first)[0] == 200
    # Between bursts (a second after the last batch) the ledger file alone holds every event: moved without
    # its write-ahead log, as the hint says, it misses none.
    deadline = time.monotonic() + 10
    while alone_in_file(state_dir, "SELECT COUNT(*) FROM events") != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    moved = state_dir / "ledger.sqlite3.broken"
    ledger_path(state_dir).rename(moved)
    second = json.dumps(events.events(sent, ("delivered",), only={LI_LEI})).encode()
    assert json.loads(post(service, events, second)[1])["new"] == 1
    assert event_counts(state_dir) == {"delivered": (1, 1)}  # Li Lei's, in the new ledger
    aside = Ledger(moved)
    try:
        assert aside.event_counts("2020-12-13") == {"delivered": (1, 1)}  # Alan's only
    finally:
        aside.close()


def test_a_ledger_from_before_version_5_keeps_its_events_once_each(tmp_path: Path) -> None:
    # Releases before 5 kept events under a primary key on sg_event_id, with an index on (issue, recipient):
    # the table is made again, its rows in their order, and a batch SendGrid retries is still recorded once.
    import sqlite3
    from contextlib import closing

    path = ledger_path(tmp_path)
    Ledger(path).close()
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript("""
            DROP TABLE events;
            CREATE TABLE events (event_id TEXT PRIMARY KEY, issue TEXT NOT NULL, recipient TEXT NOT NULL,
                event TEXT NOT NULL, at TEXT NOT NULL, detail TEXT, url TEXT, link INTEGER, agent TEXT,
                machine INTEGER);
            CREATE INDEX events_recipient ON events (issue, recipient);
            CREATE INDEX events_by_kind ON events (issue, event, recipient, machine);
            PRAGMA user_version=4;""")
        db.executemany("INSERT INTO events VALUES (?, '2020-12-13', ?, ?, '2026-12-01T08:00:00+00:00', NULL, ?, ?, "
                       "NULL, ?)",
                       [("e1", ALAN, "delivered", None, None, None), ("e2", ALAN, "open", None, None, 1),
                        ("e3", LI_LEI, "click", "https://example.com/", 3, None)])
    with Ledger(path) as ledger:
        assert ledger.event_counts("2020-12-13") == {"delivered": (1, 1), "open": (1, 1), "click": (1, 1)}
        assert list(ledger.clicks("2020-12-13")) == [(LI_LEI, "2026-12-01T08:00:00+00:00", "https://example.com/", 3,
                                                      None, None)]
        assert ledger.record_events([("e2", "2020-12-13", ALAN, "open", "2026-12-01T08:00:00+00:00", None)]) == 0
        assert ledger.record_events([("e4", "2020-12-13", ALAN, "open", "2026-12-01T09:00:00+00:00", None)]) == 1
        assert ledger.heard_among("2020-12-13", [ALAN, "nobody@example.com"]) == {ALAN}
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (5,)
        assert sorted(name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'events' "
                                                     "AND type = 'index'")) == ["events_by_kind", "events_once"]
        assert [row[0] for row in db.execute("SELECT event_id FROM events ORDER BY rowid")] == ["e1", "e2", "e3", "e4"]

"""The local suppression list: pulled from a local server that answers like SendGrid's suppression
endpoints (paginated, throttling, failing), stored in a real SQLite file, and honoured by `send`."""

from __future__ import annotations

import sqlite3
import threading
import time
import unicodedata
from collections import deque
from contextlib import closing
from pathlib import Path

import pytest

from mailer.deliver.retry import RetryPolicy
from mailer.deliver.suppressions import (
    BOUNCE,
    GROUP_UNSUBSCRIBE,
    PullError,
    PullProgress,
    Suppression,
    SuppressionList,
    screen_recipients,
    suppressions_path,
)
from tests.conftest import SAMPLE_ISSUE as ISSUE
from tests.conftest import approve, ledger_states, read_ledger, sendgrid_environment
from tests.fake_sendgrid import API_KEY, FakeSendGrid

FAST = RetryPolicy(attempts=4, base_seconds=0.01, cap_seconds=0.02)
UNSUBSCRIBES, GROUPS, BOUNCES, SPAM, INVALID = (
    "/v3/suppression/unsubscribes", "/v3/asm/suppressions", "/v3/suppression/bounces",
    "/v3/suppression/spam_reports", "/v3/suppression/invalid_emails")


def bounces(count: int, *, start: int = 0) -> list[dict]:
    return [{"created": 1_700_000_000 + i, "email": f"Bounced{i:05d}@Example.com",
             "reason": "550 5.1.1 mailbox unavailable", "status": "5.1.1"} for i in range(start, start + count)]


def sample_lists() -> dict[str, list[dict]]:
    return {
        UNSUBSCRIBES: [{"created": 1_443_651_141 + i, "email": f"left{i:04d}@example.com"} for i in range(500)],
        GROUPS: [{"email": "Grace.Hopper@example.net", "group_id": 12, "group_name": "Weekly News",
                  "created_at": 1_410_986_704},
                 {"email": "grace.hopper@example.net", "group_id": 13, "group_name": "Daily News",
                  "created_at": 1_411_493_671}],
        BOUNCES: bounces(1200),
        SPAM: [{"created": 1_443_651_154, "email": "angry@example.org", "ip": "10.63.202.100"}],
        INVALID: [{"created": 1_620_141_015, "email": "nobody@invalid.example",
                   "reason": "Mail domain mentioned in email address is unknown"}],
    }


@pytest.fixture
def sendgrid(start_sendgrid) -> FakeSendGrid:
    """The local SendGrid-like server, holding the sample suppression lists."""
    return start_sendgrid(FakeSendGrid(suppressions=sample_lists()))[0]


def pull(state_dir: Path, sendgrid: FakeSendGrid, *, key: str = API_KEY, **kwargs):
    """A pull from `sendgrid` with `key`, as the library is called (the settings handed in)."""
    with SuppressionList.open(state_dir) as suppressions:
        return suppressions.pull(sendgrid_environment(sendgrid.url, sendgrid_api_key=key),
                                 retry=kwargs.pop("retry", FAST), **kwargs)


def rows_in_file(state_dir: Path) -> list[tuple]:
    db = sqlite3.connect(suppressions_path(state_dir))
    try:
        return list(db.execute("SELECT address, source, group_id, reason, created_at, pulled_at FROM suppressions "
                               "ORDER BY address, source, group_id"))
    finally:
        db.close()


# -- pulling -------------------------------------------------------------------------------------


def test_pull_fetches_every_page_of_every_list(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    result = pull(state_dir, sendgrid)
    assert result.counts == {"global_unsubscribe": 500, "group_unsubscribe": 2, "bounce": 1200,
                             "spam_report": 1, "invalid_email": 1}
    assert result.addresses == 500 + 1 + 1200 + 1 + 1  # Grace left two groups: one address
    assert sendgrid.gets == [
        # exactly one full page, so a second (empty) page proves there is nothing more
        f"{UNSUBSCRIBES}?limit=500&offset=0", f"{UNSUBSCRIBES}?limit=500&offset=500",
        GROUPS,  # documented without pagination: one answer holds every group
        f"{BOUNCES}?limit=500&offset=0", f"{BOUNCES}?limit=500&offset=500", f"{BOUNCES}?limit=500&offset=1000",
        f"{SPAM}?limit=500&offset=0",
        f"{INVALID}?limit=500&offset=0",
    ]
    assert set(sendgrid.auth_headers) == {f"Bearer {API_KEY}"}
    stored = rows_in_file(state_dir)
    assert len(stored) == 1704
    assert ("bounced01199@example.com", BOUNCE, None, "550 5.1.1 mailbox unavailable",
            "2023-11-14T22:33:19+00:00", result.pulled_at) in stored


def test_reasons_match_any_case_and_say_why(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    pull(state_dir, sendgrid)
    with SuppressionList.open(state_dir) as suppressions:
        (bounce,) = suppressions.reasons("BOUNCED00007@example.COM")
        assert bounce.describe() == "bounce (550 5.1.1 mailbox unavailable)"
        assert bounce.status == "5.1.1" and bounce.created_at == "2023-11-14T22:13:27+00:00"
        groups = suppressions.reasons("grace.hopper@EXAMPLE.net")
        assert [g.describe() for g in groups] == ["group unsubscribe (Weekly News, group 12)",
                                                  "group unsubscribe (Daily News, group 13)"]
        assert [r.describe() for r in suppressions.reasons("angry@example.org")] == ["spam report"]
        assert [r.describe() for r in suppressions.reasons("left0042@example.com")] == ["global unsubscribe"]
        assert suppressions.reasons("nobody@invalid.example")[0].describe() == (
            "invalid email (Mail domain mentioned in email address is unknown)")
        assert suppressions.reasons("ada.lovelace@example.com") == []


def test_an_address_matches_in_either_unicode_form(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    # SendGrid keeps an address as it was sent; a CSV may spell "é" as one character or two.
    composed, decomposed = (unicodedata.normalize(form, "José@example.com") for form in ("NFC", "NFD"))
    sendgrid.suppressions[SPAM] = [{"created": 1_443_651_154, "email": decomposed}]
    pull(state_dir, sendgrid)
    for spelling in (composed, decomposed, composed.upper()):
        assert list(screen_recipients(state_dir, [spelling]).reasons.values()) == ["suppressed: spam report"], spelling


def test_a_list_pulled_before_addresses_were_composed_still_matches(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    composed, decomposed = (unicodedata.normalize(form, "José@example.com") for form in ("NFC", "NFD"))
    sendgrid.suppressions[SPAM] = [{"created": 1_443_651_154, "email": decomposed}]
    pull(state_dir, sendgrid)
    db = sqlite3.connect(state_dir / "suppressions.sqlite3")
    with db:  # as an earlier release stored it: keyed on the address as SendGrid spelled it
        assert db.execute("UPDATE suppressions SET address=? WHERE email=?",
                          (decomposed.casefold(), decomposed)).rowcount == 1
        db.execute("PRAGMA user_version=0")
    db.close()
    assert list(screen_recipients(state_dir, [composed]).reasons.values()) == ["suppressed: spam report"]


def test_a_429_waits_for_the_rate_limit_reset_then_succeeds(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    # Two pages of unsubscribes, the groups, the first page of bounces; then throttled on the second.
    sendgrid.get_script = deque(["ok", "ok", "ok", "ok", "429"])
    sendgrid.rate_limit_reset_in = 2
    waits: list[float] = []
    started = time.monotonic()
    result = pull(state_dir, sendgrid, progress=PullProgress(on_retry=lambda message, delay: waits.append(delay)))
    # X-RateLimit-Reset is a whole second two seconds ahead: between one and two seconds from now,
    # not the 0.01-0.02 s the backoff would have waited.
    assert len(waits) == 1 and 1.0 <= waits[0] <= 2.0
    assert time.monotonic() - started >= waits[0]
    assert result.counts["bounce"] == 1200
    assert sendgrid.gets.count(f"{BOUNCES}?limit=500&offset=500") == 2


def test_server_errors_and_dropped_connections_are_retried(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    sendgrid.get_script = deque(["500", "drop", "ok", "ok", "500"])
    result = pull(state_dir, sendgrid)
    assert result.total == 1704
    assert sendgrid.gets[:3] == [f"{UNSUBSCRIBES}?limit=500&offset=0"] * 3


def test_a_refused_key_fails_at_once_with_sendgrids_message(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    with pytest.raises(PullError) as refused:
        pull(state_dir, sendgrid, key="SG.revoked")
    message = str(refused.value)
    assert "SendGrid refused the API key (401)" in message
    assert "The provided authorization grant is invalid, expired, or revoked" in message
    assert '"Suppressions" read scope' in message
    assert len(sendgrid.gets) == 1  # not retried
    assert "SG.revoked" not in message


def test_a_key_without_the_suppressions_scope_fails_at_once(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    sendgrid.get_script = deque(["403"])
    with pytest.raises(PullError) as refused:
        pull(state_dir, sendgrid)
    assert "SendGrid refused the API key (403)" in str(refused.value) and "access forbidden" in str(refused.value)
    assert '"Suppressions" read scope' in str(refused.value)
    assert len(sendgrid.gets) == 1


def test_a_500_mid_pagination_leaves_the_previous_list_intact(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    first = pull(state_dir, sendgrid)
    before = rows_in_file(state_dir)
    sendgrid.suppressions[BOUNCES] = bounces(1500, start=5000)  # SendGrid's list has changed since
    sendgrid.suppressions[UNSUBSCRIBES] = []
    sendgrid.gets.clear()
    sendgrid.get_script = deque(["ok", "ok", "ok"])  # the (now empty) unsubscribes, groups, bounces' first page
    sendgrid.get_default = "500"
    with pytest.raises(PullError) as failed:
        pull(state_dir, sendgrid)
    assert "failed 4 times" in str(failed.value) and "unchanged" in str(failed.value)
    assert sendgrid.gets[2:] == [f"{BOUNCES}?limit=500&offset=0"] + [f"{BOUNCES}?limit=500&offset=500"] * 4
    assert rows_in_file(state_dir) == before
    with SuppressionList.open(state_dir) as suppressions:
        assert suppressions.last_pull().pulled_at == first.pulled_at
        assert suppressions.reasons("bounced00001@example.com")
        assert suppressions.reasons("bounced05001@example.com") == []


def test_text_that_is_not_unicode_in_an_answer_is_a_clear_error_and_changes_nothing(
        sendgrid: FakeSendGrid, state_dir: Path, workspace: Path, run_cli) -> None:
    # JSON can escape half of a surrogate pair, which no UTF-8 text holds: SendGrid never sends one, a
    # wrong SENDGRID_API_HOST may. Pairs that make a character are an emoji like any other.
    first = pull(state_dir, sendgrid)
    before = rows_in_file(state_dir)
    sendgrid.suppressions[SPAM] = [{"created": 1_443_651_154, "email": "party\U0001f389@example.org"},
                                   {"created": 1_443_651_155, "email": "angry@example.org", "reason": "x\ud800y"}]
    with pytest.raises(PullError) as failed:
        pull(state_dir, sendgrid)
    message = str(failed.value)
    assert "/v3/suppression/spam_reports" in message and "half of a surrogate pair" in message
    assert "unchanged" in message
    assert rows_in_file(state_dir) == before
    with SuppressionList.open(state_dir) as suppressions:
        assert suppressions.last_pull().pulled_at == first.pulled_at
    result = run_cli("suppressions", "pull")
    assert result.exit_code == 3 and "Traceback" not in result.stderr and "half of a surrogate pair" in result.stderr
    sendgrid.suppressions[SPAM] = sendgrid.suppressions[SPAM][:1]
    pull(state_dir, sendgrid)
    with SuppressionList.open(state_dir) as suppressions:
        assert suppressions.reasons("party\U0001f389@example.org")


def test_an_interrupted_pull_leaves_the_previous_list_intact(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    pull(state_dir, sendgrid)
    before = rows_in_file(state_dir)
    sendgrid.suppressions[BOUNCES] = []

    def ctrl_c_on_the_second_list(source: str, fetched: int) -> None:
        if source == GROUP_UNSUBSCRIBE:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull(state_dir, sendgrid, progress=PullProgress(on_page=ctrl_c_on_the_second_list))
    assert rows_in_file(state_dir) == before


def test_replacing_is_one_transaction(state_dir: Path) -> None:
    with SuppressionList.open(state_dir) as suppressions:
        suppressions.replace([Suppression("a@example.com", BOUNCE, reason="550")])
        # The CHECK constraint refuses the second row after the old rows were deleted and the
        # first new one written: the whole replacement must roll back.
        with pytest.raises(sqlite3.IntegrityError):
            suppressions.replace([Suppression("b@example.com", BOUNCE), Suppression("c@example.com", "blocks")])
        assert [s.email for s in suppressions.all()] == ["a@example.com"]
        assert suppressions.last_pull().counts[BOUNCE] == 1


def test_a_stop_while_waiting_to_retry_stops_at_once(sendgrid: FakeSendGrid, state_dir: Path) -> None:
    sendgrid.get_default = "500"
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    with pytest.raises(PullError, match="stopped while waiting to retry"):
        pull(state_dir, sendgrid, retry=RetryPolicy(base_seconds=30, cap_seconds=30), stop=stop)
    assert time.monotonic() - started < 5
    assert not suppressions_path(state_dir).exists() or rows_in_file(state_dir) == []


def test_screening_100000_addresses_finds_exactly_the_suppressed(state_dir: Path) -> None:
    # How fast: `make bench` measures it (speed targets live in benchmarks, not in unit tests).
    with SuppressionList.open(state_dir) as suppressions:
        suppressions.replace(Suppression(f"gone{i:06d}@example.com", BOUNCE, reason="550") for i in range(50_000))
    recipients = [f"Reader{i:06d}@example.com" for i in range(99_000)] + [
        f"GONE{i:06d}@example.com" for i in range(0, 50_000, 50)]
    screening = screen_recipients(state_dir, recipients)
    assert len(screening.reasons) == 1000
    assert screening.reasons["gone000050@example.com"] == "suppressed: bounce (550)"
    assert "gone000051@example.com" not in screening.reasons


def test_no_list_pulled_screens_nobody_and_creates_nothing(state_dir: Path) -> None:
    screening = screen_recipients(state_dir, ["ada@example.com"])
    assert screening.reasons == {} and screening.pulled_at is None
    assert not suppressions_path(state_dir).exists()


# -- the commands --------------------------------------------------------------------------------


def test_pull_command_prints_counts_and_where_and_list_explains(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                                tmp_path: Path) -> None:
    before = run_cli("suppressions", "list")
    assert before.exit_code == 0 and "No suppression list pulled yet" in before.stdout
    pulled = run_cli("suppressions", "pull")
    assert pulled.exit_code == 0, pulled.stderr
    lines = pulled.stdout.splitlines()
    assert lines[0].startswith("Pulled SendGrid's suppression list at ")
    assert [line.split() for line in lines[1:7]] == [
        ["global", "unsubscribes", "500"], ["group", "unsubscribes", "2"], ["bounces", "1200"],
        ["spam", "reports", "1"], ["invalid", "emails", "1"], ["addresses", "in", "all", "1703"]]
    assert lines[7] == f"Saved to {tmp_path / 'state' / 'suppressions.sqlite3'}; `mailer send` skips these addresses."

    listed = run_cli("suppressions", "list")
    assert listed.exit_code == 0
    assert "pulled " in listed.stdout.splitlines()[0] and "bounces" in listed.stdout and "1200" in listed.stdout
    why = run_cli("suppressions", "list", "--email", "Grace.Hopper@Example.NET")
    assert why.stdout.splitlines()[1:] == [
        "  group unsubscribe (Weekly News, group 12), since 2014-09-17T20:45:04+00:00",
        "  group unsubscribe (Daily News, group 13), since 2014-09-23T17:34:31+00:00"]
    assert "is suppressed" in why.stdout.splitlines()[0]
    fine = run_cli("suppressions", "list", "--email", "ada.lovelace@example.com")
    assert "ada.lovelace@example.com is not suppressed" in fine.stdout
    every = run_cli("suppressions", "list", "--all")
    assert "angry@example.org\tspam report\t2015-09-30T22:12:34+00:00" in every.stdout.splitlines()
    assert len(every.stdout.splitlines()) == 7 + 1704


def test_odd_fields_from_sendgrid_are_kept_readable_and_never_stop_the_pull(sendgrid: FakeSendGrid,
                                                                           run_cli) -> None:
    # A bounce's reason is the reader's mail server's own words; a group id SendGrid never sends stopped the pull
    # on a traceback ("²" is a digit int() refuses; SQLite's integers are 64-bit).
    sendgrid.suppressions[BOUNCES] = [{"created": 1_700_000_000, "email": "gone@example.com",
                                       "reason": "550 no such user \x1b[2J\x1b]0;owned\x07", "status": "5.1.1"}]
    sendgrid.suppressions[GROUPS] = [
        {"email": "two@example.net", "group_id": "²", "group_name": "Weekly News", "created_at": 1_410_986_704},
        {"email": "huge@example.net", "group_id": 10**30, "group_name": "Daily News", "created_at": 1_411_493_671}]
    pulled = run_cli("suppressions", "pull")
    assert pulled.exit_code == 0, pulled.stderr
    why = run_cli("suppressions", "list", "--email", "gone@example.com").stdout
    assert "bounce (550 no such user \\x1b[2J\\x1b]0;owned\\x07)" in why and "\x1b" not in why
    every = run_cli("suppressions", "list", "--all").stdout
    assert "two@example.net" in every and "huge@example.net" in every and "\x1b" not in every
    assert "group unsubscribe (Weekly News)" in run_cli("suppressions", "list", "--email", "two@example.net").stdout


def test_pull_command_errors_and_exit_codes(workspace: Path, sendgrid: FakeSendGrid, run_cli, monkeypatch) -> None:
    assert run_cli("suppressions", "pull").exit_code == 0
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.revoked-key-never-shown")
    refused = run_cli("suppressions", "pull")
    assert refused.exit_code == 3
    assert "SendGrid refused the API key (401)" in refused.stderr and "Suppressions" in refused.stderr
    assert "SG.revoked-key-never-shown" not in refused.stdout + refused.stderr
    monkeypatch.delenv("SENDGRID_API_KEY")
    missing = run_cli("suppressions", "pull")
    assert missing.exit_code == 1
    assert "SENDGRID_API_KEY is not set" in missing.stderr
    listed = run_cli("suppressions", "list")  # the first pull is still there
    assert listed.exit_code == 0 and "1200" in listed.stdout


def test_the_key_never_reaches_output_or_the_database(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                      tmp_path: Path) -> None:
    sendgrid.get_script = deque(["500"])
    results = [run_cli("suppressions", "pull"), run_cli("suppressions", "list", "--all"),
               run_cli("suppressions", "list", "--email", "angry@example.org")]
    assert sendgrid.auth_headers[-1] == f"Bearer {API_KEY}"  # the key was really used
    for result in results:
        assert result.exit_code == 0
        assert API_KEY not in result.stdout + result.stderr
    files = [f for f in (tmp_path / "state").rglob("*") if f.is_file()]
    assert suppressions_path(tmp_path / "state") in files
    for file in files:
        assert API_KEY.encode() not in file.read_bytes(), file


# -- sending -------------------------------------------------------------------------------------


SUBSCRIBED = 18  # of the 20 rows in subscribers.example.csv, two are unsubscribed
# Alan bounced and Li Lei unsubscribed at SendGrid (written in another case than in the CSV), and
# Grace Hopper left two unsubscribe groups (see sample_lists).
SUPPRESSED = {"alan.turing@example.com", "li.lei@example.com", "grace.hopper@example.net"}


def summary(stdout: str) -> dict[str, int]:
    """The end-of-send table: label → number."""
    return {" ".join(line.split()[:-1]): int(line.split()[-1]) for line in stdout.splitlines()
            if line.startswith("  ") and line.split()[-1].isdigit()}


def suppress_three(sendgrid: FakeSendGrid, run_cli) -> None:
    sendgrid.suppressions[BOUNCES].append({"created": 1_700_000_000, "email": "Alan.Turing@EXAMPLE.com",
                                           "reason": "550 mailbox unavailable", "status": "5.1.1"})
    sendgrid.suppressions[UNSUBSCRIBES] = [{"created": 1_700_000_100, "email": "LI.LEI@example.com"}]
    assert run_cli("suppressions", "pull").exit_code == 0


def test_dry_run_skips_suppressed_addresses_with_the_reason(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                            tmp_path: Path) -> None:
    import json

    suppress_three(sendgrid, run_cli)
    posts = len(sendgrid.paths)
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv")
    assert result.exit_code == 0, result.stderr
    assert "skip alan.turing@example.com (line 3): suppressed: bounce (550 mailbox unavailable)" in result.stdout
    assert "skip li.lei@example.com (line 4): suppressed: global unsubscribe" in result.stdout
    assert ("skip grace.hopper@example.net (line 12): suppressed: group unsubscribe (Weekly News, group 12); "
            "group unsubscribe (Daily News, group 13)") in result.stdout
    table = summary(result.stdout)
    assert table["intended recipients"] == SUBSCRIBED - 3
    assert table["would send now"] == SUBSCRIBED - 3
    assert table["skipped"] == 5 and table["of which suppressed"] == 3
    assert "suppression list: pulled " in result.stdout
    outbox = tmp_path / "state" / "outbox" / "2020-12-13"
    manifest = [json.loads(line) for line in (outbox / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    sent = [m["email"] for m in manifest if m["action"] == "send"]
    assert len(sent) == SUBSCRIBED - 3 and not SUPPRESSED & set(sent)
    skipped = {m["email"]: m["reason"] for m in manifest if m["action"] == "skip"}
    assert skipped["alan.turing@example.com"] == "suppressed: bounce (550 mailbox unavailable)"
    body = json.loads((outbox / "sendgrid" / "request-00001.json").read_text(encoding="utf-8"))
    assert [p["to"][0]["email"] for p in body["personalizations"]] == sent
    assert len(sendgrid.paths) == posts  # a dry run sends nothing


def test_live_send_never_mails_or_records_a_suppressed_address(workspace: Path, sendgrid: FakeSendGrid, run_cli,
                                                               tmp_path: Path) -> None:
    approve(run_cli)
    suppress_three(sendgrid, run_cli)
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr  # complete: the suppressed are not owed the issue
    received = [a for a in sendgrid.accepted if a != "editor@example.com"]
    assert len(received) == SUBSCRIBED - 3
    assert not {a.casefold() for a in received} & SUPPRESSED
    assert ledger_states(tmp_path / "state") == {"accepted": SUBSCRIBED - 3}
    recorded = {r for (r,) in read_ledger(tmp_path / "state", "SELECT recipient FROM deliveries")}
    assert not recorded & SUPPRESSED
    table = summary(result.stdout)
    assert table["intended"] == table["accepted"] == SUBSCRIBED - 3
    assert table["skipped"] == 5 and table["of which suppressed"] == 3
    # The same command again: nobody is left, but the three are screened again after a fresh pull.
    def pulls() -> int:  # each pull asks for the first page of bounces once
        return sum(path.startswith(BOUNCES + "?") and "offset=0" in path for path in sendgrid.gets)

    pulled = pulls()
    again = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert again.exit_code == 0, again.stderr
    assert "Nothing left to send" in again.stderr
    assert pulls() == pulled + 1
    assert summary(again.stdout) == {**table, "of which in earlier runs": SUBSCRIBED - 3}
    # A later pull that lifts the bounce lets the next run mail Alan, and nobody twice.
    sendgrid.suppressions[BOUNCES] = sendgrid.suppressions[BOUNCES][:-1]
    assert run_cli("suppressions", "pull").exit_code == 0
    again = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert again.exit_code == 0
    received = [a for a in sendgrid.accepted if a != "editor@example.com"]
    assert received[-1] == "alan.turing@example.com" and len(received) == len(set(received)) == SUBSCRIBED - 2
    assert "Nothing left to send" not in again.stderr


def test_without_a_pulled_list_sending_is_unchanged_and_says_so(workspace: Path, sendgrid: FakeSendGrid,
                                                               run_cli, tmp_path: Path) -> None:
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv")
    assert result.exit_code == 0
    assert "suppression list: none pulled yet" in result.stdout and "mailer suppressions pull" in result.stdout
    table = summary(result.stdout)
    assert table["would send now"] == table["intended recipients"] == SUBSCRIBED
    assert table["of which suppressed"] == 0
    assert not suppressions_path(tmp_path / "state").exists()


def test_a_live_test_send_to_a_suppressed_address_is_refused(workspace: Path, sendgrid: FakeSendGrid,
                                                             run_cli) -> None:
    suppress_three(sendgrid, run_cli)
    posts = len(sendgrid.paths)
    refused = run_cli("send", ISSUE, "--test-to", "alan.turing@EXAMPLE.COM", "--live")
    assert refused.exit_code == 1
    assert "is on the suppression list (suppressed: bounce (550 mailbox unavailable))" in refused.stderr
    assert len(sendgrid.paths) == posts  # nothing sent, so nothing approved
    dry = run_cli("send", ISSUE, "--test-to", "alan.turing@example.com")
    assert dry.exit_code == 0
    assert "warning: alan.turing@example.com is on the suppression list" in dry.stderr
    assert "was written to" in dry.stdout


def test_a_live_send_pulls_first_so_a_fresh_unsubscribe_is_honoured(workspace: Path, sendgrid: FakeSendGrid,
                                                                     run_cli) -> None:
    approve(run_cli)
    # Li Lei unsubscribed at SendGrid after the last pull (or there never was one): the send asks first.
    sendgrid.suppressions[UNSUBSCRIBES] = [{"created": 1_700_000_100, "email": "li.lei@example.com"}]
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "suppression list pulled from SendGrid" in result.stderr
    assert "li.lei@example.com" not in [a.casefold() for a in sendgrid.accepted]


def test_a_live_send_refuses_when_the_pull_fails_and_the_last_one_is_old(workspace: Path, sendgrid: FakeSendGrid,
                                                                         run_cli, state_dir: Path) -> None:
    approve(run_cli)
    assert run_cli("suppressions", "pull").exit_code == 0
    with closing(sqlite3.connect(state_dir / "suppressions.sqlite3")) as db, db:
        db.execute("UPDATE pulls SET pulled_at='2026-01-01T00:00:00+00:00'")  # a day and more ago
    sendgrid.get_default = "403"
    sent_before = len(sendgrid.accepted)
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert result.exit_code == 3
    assert "could not be pulled" in result.stderr and "was pulled at 2026-01-01T00:00:00+00:00" in result.stderr
    assert "Nothing was sent" in result.stderr and len(sendgrid.accepted) == sent_before

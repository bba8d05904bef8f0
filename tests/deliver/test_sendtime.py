"""`mailer send --at`: times as an editor says them, in the newsletter's time zone, and every doubt refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailer.deliver.sendtime import PastSendTimeError, SendTimeError, parse_send_time
from tests.conftest import SAMPLE_ISSUE, approve, read_ledger

NEW_YORK = "America/New_York"
# A Thursday afternoon in New York.
NOW = datetime(2026, 12, 10, 15, 0, tzinfo=ZoneInfo(NEW_YORK))


@pytest.mark.parametrize(("typed", "meant"), [
    ("sunday 08:00", "2026-12-13T08:00:00-05:00"),
    ("Sunday 8am", "2026-12-13T08:00:00-05:00"),
    ("sun 8:00", "2026-12-13T08:00:00-05:00"),
    ("tomorrow 07:30", "2026-12-11T07:30:00-05:00"),
    ("today 18:00", "2026-12-10T18:00:00-05:00"),
    ("2026-12-13 08:00", "2026-12-13T08:00:00-05:00"),
    ("13 December 08:00", "2026-12-13T08:00:00-05:00"),
    ("sunday 08:00 Europe/Berlin", "2026-12-13T08:00:00+01:00"),
    ("2026-12-13 08:00 UTC", "2026-12-13T08:00:00+00:00"),
    ("2026-12-13T08:00+01:00", "2026-12-13T08:00:00+01:00"),
])
def test_a_time_as_an_editor_says_it_is_read_in_the_newsletters_zone(typed: str, meant: str) -> None:
    assert parse_send_time(typed, zone_name=NEW_YORK, now=NOW).when.isoformat() == meant


def test_it_says_what_it_understood() -> None:
    assert parse_send_time("sunday 08:00", zone_name=NEW_YORK, now=NOW).describe() == (
        "Sunday 13 December 2026, 08:00 EST (America/New_York)")


@pytest.mark.parametrize(("typed", "said"), [
    ("sunday at 8", "did not understand 'at 8'; it understood only 'sunday'"),
    ("sunday 08:00 banana", "did not understand 'banana'"),
    ("08:00", "names no day (read as Thursday 10 December 2026, 08:00 EST (America/New_York))"),
    ("sunday", "names no time of day mailer can read (read as the day Sunday 13 December 2026)"),
    ("tomorrow morning", "names no time of day"),
    ("sunday 25:00", "names no time of day"),
    ("next sunday 08:00", "is ambiguous: 'next' sunday means the coming one to some and the one after to others "
                          "(mailer read Sunday 20 December)"),
    ("thursday 18:00", "is ambiguous: today is thursday (mailer read Thursday 17 December, a week ahead)"),
    ("12/13 08:00", "a date with slashes reads differently by country"),
    ("2027-03-14 02:30", "2027-03-14 02:30 does not exist in America/New_York"),
    ("2027-11-07 01:30", "2027-11-07 01:30 happens twice in America/New_York (the clocks go back then: EDT or EST)"),
    ("sunday 08:00 Europe/Berln", "no time zone is called 'Europe/Berln'"),
])
def test_a_time_that_reads_two_ways_or_not_at_all_is_refused_saying_how_it_was_read(typed: str, said: str) -> None:
    with pytest.raises(SendTimeError) as refused:
        parse_send_time(typed, zone_name=NEW_YORK, now=NOW)
    assert said in str(refused.value)


def test_a_time_in_the_past_says_when_it_was_and_how_long_ago() -> None:
    with pytest.raises(PastSendTimeError) as refused:
        parse_send_time("today 08:00", zone_name=NEW_YORK, now=NOW)
    assert "is in the past: read as Thursday 10 December 2026, 08:00 EST (America/New_York), 7 hours ago" in (
        str(refused.value))


def test_without_a_time_zone_setting_a_time_must_name_its_zone() -> None:
    with pytest.raises(SendTimeError, match="mailer.yaml has no time_zone"):
        parse_send_time("sunday 08:00", zone_name=None, now=NOW)
    assert parse_send_time("sunday 08:00 UTC", zone_name=None, now=NOW).when.isoformat() == (
        "2026-12-13T08:00:00+00:00")


def test_tomorrow_is_tomorrow_in_the_newsletters_zone_not_the_machines() -> None:
    # 23:00 in New York is already tomorrow in UTC.
    late = datetime(2026, 12, 10, 23, 0, tzinfo=ZoneInfo(NEW_YORK)).astimezone(UTC)
    assert parse_send_time("tomorrow 07:30", zone_name=NEW_YORK, now=late).when.isoformat() == (
        "2026-12-11T07:30:00-05:00")


def test_a_misspelt_time_zone_in_mailer_yaml_gets_did_you_mean(workspace: Path, run_cli) -> None:
    config = workspace / "mailer.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("time_zone: America/New_York",
                                                                 "time_zone: America/New_Yrok"), encoding="utf-8")
    result = run_cli("check", SAMPLE_ISSUE)
    assert result.exit_code == 1
    assert "time_zone: must be a time zone from the tz database" in result.stderr
    assert "did you mean 'America/New_York'?" in result.stderr


def test_a_send_scheduled_for_tomorrow_morning_goes_to_sendgrid_at_that_time_in_the_zone(
        workspace: Path, sendgrid, run_cli, state_dir: Path) -> None:
    approve(run_cli)
    result = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes",
                     "--at", "tomorrow 07:30")
    assert result.exit_code == 0, result.stderr
    tomorrow = datetime.now(ZoneInfo(NEW_YORK)).date() + timedelta(days=1)
    meant = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 7, 30, tzinfo=ZoneInfo(NEW_YORK))
    assert f"--at 'tomorrow 07:30': {meant:%A} {meant.day} {meant:%B %Y}, 07:30" in result.stderr
    assert {request["send_at"] for request in sendgrid.requests[1:]} == {int(meant.timestamp())}
    ((recorded,),) = read_ledger(state_dir, "SELECT send_at FROM schedules")
    assert datetime.fromisoformat(recorded) == meant

"""The trend over the last issues: how many were sent to, and what share of them read, clicked, left,
or complained; with the subscriber store, the sign-ups confirmed and the readers lost each week."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from mailer.report.figures import IssueFigures


@dataclass(frozen=True)
class TrendRow:
    issue: str
    sent_at: str
    recipients: int
    delivery_rate: float | None
    human_open_rate: float | None
    click_through_rate: float | None
    unsubscribe_rate: float | None
    complaint_rate: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class WeekRow:
    week: str  # the Monday that starts it, YYYY-MM-DD
    signups_confirmed: int
    readers_lost: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def trend_row(figures: IssueFigures) -> TrendRow:
    unsubscribed = sum(figures.unsubscribes.values())
    return TrendRow(
        issue=figures.issue, sent_at=(figures.sent_at or "")[:10], recipients=figures.recipients,
        delivery_rate=figures.delivered / figures.recipients if figures.recipients and figures.delivered else None,
        human_open_rate=figures.rate(figures.opens_human), click_through_rate=figures.rate(figures.clicks_human_unique),
        unsubscribe_rate=figures.rate(unsubscribed), complaint_rate=figures.complaint_rate)


def trend(sent: list[tuple[str, str]], figures_of: Callable[[str, str, str | None], IssueFigures],
          *, last: int) -> list[TrendRow]:
    """The last `last` issues of `sent` ((issue, sent at), oldest first), each through `figures_of(issue,
    sent_at, next issue's sent_at)`."""
    chosen = sent[-last:] if last > 0 else []
    offset = len(sent) - len(chosen)
    rows = []
    for index, (issue, sent_at) in enumerate(chosen):
        following = sent[offset + index + 1][1] if offset + index + 1 < len(sent) else None
        rows.append(trend_row(figures_of(issue, sent_at, following)))
    return rows


def weeks(confirmed: list[tuple[str, int]], lost: list[tuple[str, int]], *, since: date) -> list[WeekRow]:
    """Per-day counts (YYYY-MM-DD, n) gathered into weeks starting on Monday, from `since`'s week to today's."""
    def monday(day: date) -> date:
        return day - timedelta(days=day.weekday())

    start, today = monday(since), datetime.now().date()
    gained: dict[date, int] = {}
    gone: dict[date, int] = {}
    for into, rows in ((gained, confirmed), (gone, lost)):
        for day, count in rows:
            try:
                week = monday(date.fromisoformat(day[:10]))
            except ValueError:
                continue
            into[week] = into.get(week, 0) + count
    found = []
    week = start
    while week <= today:
        found.append(WeekRow(week.isoformat(), gained.get(week, 0), gone.get(week, 0)))
        week += timedelta(days=7)
    return found

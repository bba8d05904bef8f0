"""The report's pictures: SVG charts drawn by pygal (pure Python, no browser, no network), and
sparklines for the terminal."""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailer.report.figures import IssueFigures
from mailer.report.trend import TrendRow, WeekRow

SPARKS = "▁▂▃▄▅▆▇█"
# pygal puts its tooltip settings in a <script>: the page needs none, and draws the same without it.
_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL | re.IGNORECASE)


def sparkline(values: Sequence[float | None]) -> str:
    """One character per value, the lowest ▁ and the highest █; a gap for an unknown value."""
    known = [value for value in values if value is not None]
    if not known:
        return " " * len(values)
    low, high = min(known), max(known)
    span = high - low
    return "".join(" " if value is None else SPARKS[0 if not span else round((value - low) / span * 7)]
                   for value in values)


def _style() -> object:
    from pygal.style import Style

    # The report page's colours: dark enough on white for AA contrast, told apart without colour vision.
    return Style(background="transparent", plot_background="transparent", foreground="#1f2933",
                 foreground_strong="#111827", foreground_subtle="#52606d",
                 colors=("#1d4ed8", "#b45309", "#047857", "#b91c1c", "#6d28d9"),
                 font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
                 label_font_size=12, major_label_font_size=12, legend_font_size=13, value_font_size=11,
                 title_font_size=15)


def _svg(chart: object) -> str:
    svg = chart.render(is_unicode=True)  # type: ignore[attr-defined]
    return _SCRIPT.sub("", svg)


def _chart(kind: str, title: str, **options: object) -> object:
    import pygal

    settings = dict(js=[], disable_xml_declaration=True, style=_style(), width=760, height=320,
                    explicit_size=False, margin=16, legend_at_bottom=True, truncate_label=40, title=title)
    settings.update(options)
    return getattr(pygal, kind)(**settings)


def _short(label: str, width: int = 42) -> str:
    return label if len(label) <= width else label[:width - 1].rstrip() + "…"


def _whole(chart: object, values: Sequence[int]) -> None:
    """Whole numbers on the axis of a chart of people: never 0.2 of a reader."""
    most = max(values, default=0)
    step = max(1, -(-most // 8))
    chart.y_labels = list(range(0, most + step, step))  # type: ignore[attr-defined]


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}" if value >= 0.001 or value == 0 else f"{value:.2%}"


def cards_chart(figures: IssueFigures, *, top: int = 12) -> str:
    """The cards people clicked, most first: readers who clicked each."""
    cards = [card for card in figures.cards if card.human_unique][:top]
    chart = _chart("HorizontalBar", "Readers who clicked each card (people, not scanners)",
                   show_legend=False, print_values=True, height=max(160, 34 * len(cards) + 90))
    chart.x_labels = [_short(card.card) for card in reversed(cards)]  # type: ignore[attr-defined]
    chart.add("readers", [card.human_unique for card in reversed(cards)])  # type: ignore[attr-defined]
    _whole(chart, [card.human_unique for card in cards])
    return _svg(chart)


def reach_chart(figures: IssueFigures) -> str:
    """From the list to the people who clicked, and the clicks taken out as scanners'."""
    chart = _chart("Bar", "From sending to clicking", show_legend=False, print_values=True)
    labels = ["sent to", "delivered", "opened (people)", "opened (machines)", "clicked (people)"]
    values = [figures.recipients, figures.delivered, figures.opens_human, figures.opens_machine,
              figures.clicks_human_unique]
    chart.x_labels = labels  # type: ignore[attr-defined]
    chart.add("readers", values)  # type: ignore[attr-defined]
    _whole(chart, values)
    return _svg(chart)


def rates_chart(rows: list[TrendRow]) -> str:
    """Open, click, unsubscribe and complaint rates issue by issue."""
    chart = _chart("Line", "Rates per issue (of messages delivered)", dots_size=4, show_y_guides=True,
                   value_formatter=lambda value: percent(value), x_label_rotation=20)
    chart.x_labels = [row.issue for row in rows]  # type: ignore[attr-defined]
    for label, values in (("opened (people)", [row.human_open_rate for row in rows]),
                          ("clicked (people)", [row.click_through_rate for row in rows]),
                          ("unsubscribed", [row.unsubscribe_rate for row in rows]),
                          ("complained", [row.complaint_rate for row in rows])):
        chart.add(label, values)  # type: ignore[attr-defined]
    return _svg(chart)


def recipients_chart(rows: list[TrendRow]) -> str:
    chart = _chart("Bar", "Readers each issue was sent to", show_legend=False, print_values=True,
                   x_label_rotation=20)
    chart.x_labels = [row.issue for row in rows]  # type: ignore[attr-defined]
    chart.add("recipients", [row.recipients for row in rows])  # type: ignore[attr-defined]
    _whole(chart, [row.recipients for row in rows])
    return _svg(chart)


def weeks_chart(rows: list[WeekRow]) -> str:
    chart = _chart("Bar", "Readers gained and lost each week (subscriber store)", print_values=False,
                   x_label_rotation=30)
    chart.x_labels = [row.week for row in rows]  # type: ignore[attr-defined]
    chart.add("sign-ups confirmed", [row.signups_confirmed for row in rows])  # type: ignore[attr-defined]
    chart.add("readers lost", [row.readers_lost for row in rows])  # type: ignore[attr-defined]
    return _svg(chart)

"""The click map: the issue's email as it was sent, each link badged with the people who clicked it."""

from __future__ import annotations

import html as entities
from collections.abc import Mapping

from mailer.compose import placeholders
from mailer.report.figures import IssueFigures
from mailer.report.links import tracked_anchors

# Inline styles: the map is shown inside an email's own document, whose stylesheet must not restyle it.
_BADGE = ('<span class="mailer-clickmap-badge" data-position="{position}" style="display:inline-block;'
          "margin:0 0 0 6px;padding:1px 7px;border-radius:9px;background:{background};color:#ffffff;"
          'font:bold 12px/18px system-ui,sans-serif;white-space:nowrap;vertical-align:middle" '
          'title="{title}">{label}</span>')


def click_map(email_html: str, figures: IssueFigures, values: Mapping[str, str]) -> str:
    """`email_html` (the HTML part as sent, its placeholders still in) with a badge after each link SendGrid
    tracks: its readers who clicked, and their share of everyone who clicked; then the placeholders filled
    with `values` (nobody's: the web version's). Badged before filling: a link that is all placeholder is no
    tracked link, and must not shift the positions."""
    counts = {link.position: link for link in figures.links if link.position is not None}
    most = max((link.human_unique for link in counts.values()), default=0) or 1
    pieces, cursor = [], 0
    for position, anchor in enumerate(tracked_anchors(email_html)):
        link = counts.get(position)
        if link is None:
            continue
        pieces.append(email_html[cursor:anchor.end])
        # The busiest links stand out: the badge's blue darkens with its share of the clicks.
        strength = link.human_unique / most
        background = "#1e3a8a" if strength > 0.66 else "#1d4ed8" if strength > 0.33 else "#475569"
        label = f"{link.human_unique} · {link.share:.0%}" if link.human_unique else "0"
        title = f"{link.card} — {link.human_unique} reader(s) clicked"
        pieces.append(_BADGE.format(position=position, background=background, label=entities.escape(label),
                                    title=entities.escape(title, quote=True)))
        cursor = anchor.end
    pieces.append(email_html[cursor:])
    return placeholders.fill("".join(pieces), values, escape_html=True)

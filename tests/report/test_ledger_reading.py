"""The ledger's counts for mailer report, against the same counts made by hand over the rows."""

from __future__ import annotations

import random
from pathlib import Path

from mailer.deliver.ledger import Ledger, ledger_path

KINDS = ("processed", "delivered", "deferred", "bounce", "open", "click", "spamreport")


def test_the_reports_counts_are_the_rows_counted_by_hand(tmp_path: Path) -> None:
    chooser = random.Random(27)
    with Ledger(ledger_path(tmp_path)) as ledger:
        sent = [f"reader{n:03d}@example.com" for n in range(0, 300, 2)]  # half of those with events
        ledger.mark_sending("2020-12-13", [(key, key) for key in sent], "b1")
        ledger.mark("2020-12-13", sent, "accepted")
        rows = []
        for number in range(2000):
            issue = chooser.choice(("2020-12-13", "2020-12-13", "2020-12-06"))
            rows.append((f"e{number}", issue, f"reader{chooser.randrange(300):03d}@example.com",
                         chooser.choice(KINDS), "2026-12-01T08:00:00+00:00", None, None, None, None,
                         chooser.choice((None, 1))))
        rows += rows[:50]  # SendGrid's retries: kept once
        assert ledger.record_events(rows) == 2000
        mine = [row for row in rows[:2000] if row[1] == "2020-12-13"]
        readers = {kind: {row[2] for row in mine if row[3] == kind} for kind in KINDS}
        assert ledger.event_counts("2020-12-13") == {
            kind: (sum(row[3] == kind for row in mine), len(readers[kind])) for kind in KINDS if readers[kind]}
        assert ledger.readers_by_kind("2020-12-13", ("delivered", "spamreport", "dropped")) == {
            "delivered": len(readers["delivered"]), "spamreport": len(readers["spamreport"]), "dropped": 0}
        assert ledger.readers_unknown("2020-12-13") == len({row[2] for row in mine} - set(sent))
        human = {row[2] for row in mine if row[3] == "open" and row[9] is None}
        assert ledger.openers("2020-12-13") == (len(human), len(readers["open"] - human))
        assert ledger.heard_of("2020-12-13") and not ledger.heard_of("2020-11-29")

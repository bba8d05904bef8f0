"""A ledger as a live send of 1,000,000 and a week of SendGrid's Event Webhook leave it: 3,000,000 events.

For `make bench`'s report rows. The ledger is made by the real `Ledger` (its schema and migrations),
then filled straight with SQL, a kind of event at a time, from a count of readers: a million signed
webhook posts would take longer than everything else the bench measures. Who did what is decided by
the reader's number (`n % 1000`), so the figures the report must give are known (EXPECTED):

- every reader processed; 1 % bounced (0.8 % for good, 0.2 % `blocked`), 0.5 % dropped, 4 % deferred
  first, 98.5 % delivered;
- 640,000 opens: a third flagged `sg_machine_open` (Apple Mail Privacy Protection's pre-fetch), the
  rest people's, some twice;
- 317,000 clicks on the sample's real links at their real positions (`url_offset.index`; its CrossNER
  URL is written three times): 170,000 by 120,000 people, one or two links each, minutes apart; a
  security gateway's user agent on 14,000; 10,000 within seconds of delivery; and 3,000 readers whose
  gateway follows all 41 web links within 3 seconds (123,000 clicks);
- 500 spam reports, 2,000 unsubscribes and 500 group unsubscribes.

Run alone it writes the ledger into a state folder: `python tests/bench/report_ledger.py STATE_DIR [READERS]`.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "issues" / "2020-12-13.yaml"
ISSUE = "2020-12-13"  # the sample's key in the ledger, as a live send writes it
READERS = 1_000_000
BROWSERS = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
            "Safari/605.1.15",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
            "Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Mobile/15E148")
APPLE_PROXY = "Mozilla/5.0"  # Apple Mail Privacy Protection's image proxy
GATEWAY = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"

# What the report of this ledger must say (its JSON's figures), for READERS readers.
EXPECTED = {"recipients": 1_000_000, "delivered": 985_000, "deferred": 40_000, "dropped": 5_000,
            "bounced_hard": 8_000, "bounced_soft": 2_000, "opens_human": 387_000, "opens_machine": 213_000,
            "clicks_human_unique": 120_000, "clicks_human": 170_000, "clicks_scanner": 147_000,
            "complaints": 500, "events": 3_000_000}


def sample_links() -> list[str]:
    """The sample issue's tracked links as SendGrid counts them (their index is url_offset.index)."""
    from mailer.compose.build import build_issue
    from mailer.config import load_config
    from mailer.report.links import html_links

    return html_links(build_issue(SAMPLE, load_config(REPO)).html)


def write_report_ledger(state_dir: Path, *, list_id: str, readers: int = READERS,
                        sent_at: float | None = None) -> float:
    """The ledger of `state_dir` with the sample issue sent live to `readers` readers
    (reader0000000@example.com …) `sent_at` (default: three days ago) and their events; the seconds it took."""
    from mailer.deliver.ledger import Ledger, ledger_path

    if readers % 1000:
        raise ValueError("readers: a multiple of 1,000 (the mix is per thousand)")
    started = time.perf_counter()
    path = ledger_path(state_dir)
    Ledger(path).close()  # the schema and every migration, as mailer makes them
    sent = int(time.time() - 3 * 86400 if sent_at is None else sent_at)
    links = sample_links()
    web = [(position, url) for position, url in enumerate(links) if url.startswith("http")]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA cache_size=-262144")  # 256 MiB for the build: 3,000,000 random keys
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
        # The indexes are made again once the rows are in (faster than keeping them up row by row):
        # the same statements, as the migrations wrote them.
        indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='events' "
                             "AND sql IS NOT NULL").fetchall()
        for name, _ in indexes:
            db.execute(f"DROP INDEX {name}")
        db.execute("CREATE TEMP TABLE links (k INTEGER PRIMARY KEY, position INTEGER, url TEXT)")
        db.executemany("INSERT INTO temp.links VALUES (?, ?, ?)",
                       [(k, position, url) for k, (position, url) in enumerate(web)])
        db.execute("CREATE TEMP TABLE agents (k INTEGER PRIMARY KEY, agent TEXT)")
        db.executemany("INSERT INTO temp.agents VALUES (?, ?)", list(enumerate(BROWSERS)))
        db.execute("CREATE TEMP TABLE readers (n INTEGER PRIMARY KEY, m INTEGER, key TEXT, sent INTEGER, "
                   "delivered INTEGER)")
        db.execute(
            "INSERT INTO temp.readers WITH RECURSIVE r(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM r WHERE n + 1 < ?) "
            "SELECT n, n % 1000, printf('reader%07d@example.com', n), ? + n / 1000, ? + n / 1000 + 2 + n % 7 FROM r",
            (readers, sent, sent))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(sent))
        db.execute("INSERT INTO newsletters VALUES (?, ?, ?)", (ISSUE, list_id, stamp))
        db.execute("INSERT INTO tracking VALUES (?, 'sendgrid', 1, 1, ?)", (ISSUE, stamp))
        db.execute("INSERT INTO deliveries SELECT ?, key, key, 'accepted', printf('bench:%d', n / 1000), "
                   "printf('msg%d.filter0001', n / 1000), NULL, 1, ?, ? FROM temp.readers", (ISSUE, stamp, stamp))

        def events(kind: str, at: str, where: str, *, detail: str = "NULL", url: str = "NULL", link: str = "NULL",
                   agent: str = "NULL", machine: str = "NULL", source: str = "temp.readers") -> None:
            db.execute(
                "INSERT INTO events (event_id, issue, recipient, event, at, detail, url, link, agent, machine) "
                "SELECT lower(hex(randomblob(11))), ?, key, ?, "
                f"strftime('%Y-%m-%dT%H:%M:%S+00:00', {at}, 'unixepoch'), "
                f"{detail}, {url}, {link}, {agent}, {machine} FROM {source} WHERE {where}", (ISSUE, kind))

        browser = "(SELECT agent FROM temp.agents WHERE k = n % 3)"
        events("processed", "sent", "true")
        events("bounce", "delivered", "m < 8", detail="'5.1.1 550 5.1.1 The email account does not exist bounce'")
        events("bounce", "delivered", "m BETWEEN 8 AND 9",
               detail="'4.2.2 452 4.2.2 The recipient''s mailbox is full blocked'")
        events("dropped", "sent", "m BETWEEN 10 AND 14", detail="'Bounced Address'")
        events("deferred", "sent + 1", "m BETWEEN 15 AND 54", detail="'4.7.1 421 Try again later deferred'")
        events("delivered", "delivered + CASE WHEN m BETWEEN 15 AND 54 THEN 600 ELSE 0 END", "m >= 15")
        # Opens: machines' a minute after delivery, people's within a day, some twice.
        events("open", "delivered + 60", "m BETWEEN 100 AND 312", agent=f"'{APPLE_PROXY}'", machine="1")
        events("open", "delivered + 600 + n % 80000", "m BETWEEN 313 AND 699", agent=browser)
        events("open", "delivered + 90000 + n % 3600", "m BETWEEN 313 AND 352", agent=browser)
        # Clicks, on the links as SendGrid numbers them: the lower of two picks, so that links high in the
        # email are clicked more, as they are.
        pick = f"min((n * 31) % {len(web)}, (n * 37 + 11) % {len(web)})"
        other = f"min((n * 17 + 5) % {len(web)}, (n * 13 + 3) % {len(web)})"

        def on(choice: str, column: str) -> str:
            return f"(SELECT {column} FROM temp.links WHERE k = {choice})"

        events("click", "delivered + 630 + n % 80000", "m BETWEEN 400 AND 519", url=on(pick, "url"),
               link=on(pick, "position"), agent=browser)
        events("click", "delivered + 930 + n % 80000", "m BETWEEN 400 AND 449", url=on(other, "url"),
               link=on(other, "position"), agent=browser)
        events("click", "delivered + 3600", "m BETWEEN 520 AND 526", url=on(pick, "url"), link=on(pick, "position"),
               agent=f"'{GATEWAY}'")
        events("click", "delivered + 3700", "m BETWEEN 520 AND 526", url=on(other, "url"),
               link=on(other, "position"), agent=f"'{GATEWAY}'")
        events("click", "delivered + 3", "m BETWEEN 993 AND 997", url=on(pick, "url"), link=on(pick, "position"),
               agent=browser)
        events("click", "delivered + 4", "m BETWEEN 993 AND 997", url=on(other, "url"), link=on(other, "position"),
               agent=browser)
        events("click", "delivered + 60 + l.k / 15", "m BETWEEN 990 AND 992", url="l.url", link="l.position",
               agent=browser, source="temp.readers JOIN temp.links AS l")
        events("spamreport", "delivered + 7200", "m = 600 AND n / 1000 % 2 = 0")
        events("unsubscribe", "delivered + 7300", "m BETWEEN 601 AND 602")
        events("group_unsubscribe", "delivered + 7400", "m = 603 AND n / 1000 % 2 = 0")
        for _, sql in indexes:
            db.execute(sql)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return time.perf_counter() - started


def expected(readers: int = READERS) -> dict[str, int]:
    """EXPECTED for another count of readers (a multiple of 1,000)."""
    return {key: value * readers // READERS for key, value in EXPECTED.items()}


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from mailer.config import load_config
    from mailer.deliver.message import list_id as newsletter_id

    folder = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else READERS
    seconds = write_report_ledger(folder, list_id=newsletter_id(load_config(REPO)), readers=count)
    print(f"{folder}: {count:,} readers, {expected(count)['events']:,} events in {seconds:.1f} s")

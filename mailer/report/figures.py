"""One issue's figures: deliveries, people who opened and clicked (per link and per card), scanners
and machine opens taken out, unsubscribes by route, complaints."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from mailer.compose import placeholders
from mailer.deliver.events import complaint_level
from mailer.deliver.ledger import ACCEPTED, UNCERTAIN, Ledger
from mailer.report.links import Link
from mailer.report.scanners import RULES, Click, scanner_rules

# The kinds of event whose readers the figures count (opens and clicks are read apart: people from machines).
PEOPLE_KINDS = ("delivered", "deferred", "dropped", "spamreport", "unsubscribe", "group_unsubscribe")
CHUNK = 5_000  # readers asked about at a time: never one set of a million
FUTURE_SLACK_SECONDS = 3600.0  # a clock a little ahead is a clock; an hour is a wrong timestamp


@dataclass(frozen=True)
class LinkFigure:
    position: int
    url: str
    card: str
    section: str
    human_unique: int
    share: float  # of the issue's human clickers


@dataclass(frozen=True)
class CardFigure:
    card: str
    section: str
    human_unique: int
    share: float


@dataclass
class IssueFigures:
    """What one issue's readers did, from the provider's events, people only where it can tell."""

    issue: str
    sent_at: str | None = None
    backend: str | None = None
    tracking: dict[str, bool | None] = field(default_factory=dict)  # clicks, opens: None = the account's setting
    recipients: int = 0  # accepted by the provider (or uncertain): those the issue was sent to
    delivered: int = 0
    deferred: int = 0
    bounced_hard: int = 0
    bounced_soft: int = 0
    dropped: int = 0
    opens_human: int = 0
    opens_machine: int = 0
    clicks_human_unique: int = 0
    clicks_human: int = 0  # click events kept as people's
    clicks_scanner: int = 0  # click events taken out
    scanner_by_rule: dict[str, int] = field(default_factory=dict)
    links: list[LinkFigure] = field(default_factory=list)
    cards: list[CardFigure] = field(default_factory=list)
    unsubscribes: dict[str, int] = field(default_factory=dict)  # by route
    complaints: int = 0
    odd: dict[str, int] = field(default_factory=dict)  # what was counted apart, and why (see ODD)
    notes: list[str] = field(default_factory=list)

    @property
    def complaint_rate(self) -> float | None:
        return self.complaints / self.delivered if self.delivered else None

    @property
    def complaint_level(self) -> str:
        return complaint_level(self.complaint_rate) or "unknown"

    def rate(self, count: int) -> float | None:
        return count / self.delivered if self.delivered else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue": self.issue, "sent_at": self.sent_at, "backend": self.backend, "tracking": self.tracking,
            "recipients": self.recipients, "delivered": self.delivered, "deferred": self.deferred,
            "bounced": {"hard": self.bounced_hard, "soft": self.bounced_soft}, "dropped": self.dropped,
            "opens": {"human": self.opens_human, "machine": self.opens_machine,
                      "human_rate": self.rate(self.opens_human)},
            "clicks": {"human_unique": self.clicks_human_unique, "human": self.clicks_human,
                       "scanner": self.clicks_scanner, "scanner_by_rule": self.scanner_by_rule,
                       "click_through_rate": self.rate(self.clicks_human_unique),
                       "links": [{"position": link.position, "url": link.url, "card": link.card,
                                  "section": link.section, "human_unique": link.human_unique,
                                  "share": link.share} for link in self.links],
                       "cards": [{"card": card.card, "section": card.section, "human_unique": card.human_unique,
                                  "share": card.share} for card in self.cards]},
            "unsubscribes": self.unsubscribes, "complaints": self.complaints,
            "complaint_rate": self.complaint_rate, "odd": self.odd, "notes": self.notes,
        }


# What is counted apart from the figures, with the words the report shows.
ODD = {
    "click_without_url": "clicks with no link on record (kept before mailer kept links): people's, on no card",
    "click_not_in_issue": "clicks on links this issue does not hold (edited since it was sent?)",
    "future": "clicks dated in the future (counted, at their own time)",
    "unknown_readers": "readers with events whom this issue was not sent to from here",
}


def issue_figures(ledger: Ledger, issue: str, links: list[Link] | None, *, sent_at: str | None = None,
                  unsubscribed: list[tuple[str, str]] = ()) -> IssueFigures:
    """The figures of `issue` from the ledger's events; `links` is the email's link map (links.map_links; None
    when the issue file is not at hand: clicks are then counted per reader, not per link),
    `unsubscribed` the (address key, how) of readers who unsubscribed through mailer serve after it.

    The readers of each kind are counted on a connection of their own, in a thread, while this one reads
    the clicks: SQLite works outside the interpreter lock, so the two halves take both cores (make bench:
    a million readers' 3,000,000 events, 1.6 s of SQLite on one side, 2 s of SQLite and Python on the other).
    """
    figures = IssueFigures(issue=issue, sent_at=sent_at)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report") as pool:
        counting = pool.submit(_count_readers, ledger.path, issue)
        clickers = _count_clicks(ledger, issue, links, figures)
        clickers_unopened = _clickers_without_open(ledger, issue, clickers)
        served = _unsubscribes_of(ledger, issue, unsubscribed)
        readers = counting.result()
    if readers.tracked:
        figures.backend, clicks, opens = readers.tracked
        figures.tracking = {"clicks": clicks, "opens": opens}
    figures.recipients = readers.states.get(ACCEPTED, 0) + readers.states.get(UNCERTAIN, 0)

    def people(kind: str) -> int:
        return readers.by_kind.get(kind, 0)

    figures.delivered, figures.deferred, figures.dropped = people("delivered"), people("deferred"), people("dropped")
    figures.bounced_hard, figures.bounced_soft = readers.bounced
    figures.complaints = people("spamreport")
    if people("unsubscribe"):
        figures.unsubscribes["SendGrid's unsubscribe link"] = people("unsubscribe")
    if people("group_unsubscribe"):
        figures.unsubscribes["SendGrid's group unsubscribe"] = people("group_unsubscribe")
    for how, count in served.items():
        figures.unsubscribes[f"mailer serve ({how})"] = count
    human_openers, machine_only = readers.openers
    unopened, machine_opened = clickers_unopened
    # A reader who clicked read it: a person's opener, whatever SendGrid's flag said of their opens.
    figures.opens_human = human_openers + unopened
    figures.opens_machine = machine_only - machine_opened
    if readers.unknown:
        figures.odd["unknown_readers"] = readers.unknown
    _notes(figures, heard=readers.heard)
    return figures


def unsent_figures(issue: str, links: list[Link]) -> IssueFigures:
    """An issue nothing was sent of from here: its links and cards, every figure zero."""
    figures = IssueFigures(issue=issue, notes=["nothing was sent from this state folder yet"])
    figures.links = [LinkFigure(link.position, link.url, link.card, link.section, 0, 0.0) for link in links]
    cards = dict.fromkeys((link.card, link.section) for link in links)
    figures.cards = [CardFigure(card, section, 0, 0.0) for card, section in cards]
    return figures


@dataclass(frozen=True)
class _Readers:
    """What issue_figures counts beside the clicks."""

    tracked: tuple[str, bool | None, bool | None] | None
    states: dict[str, int]
    by_kind: dict[str, int]
    bounced: tuple[int, int]
    openers: tuple[int, int]
    unknown: int
    heard: bool


def _count_readers(path: Path, issue: str) -> _Readers:
    """The issue's recipients by state, and its readers by kind of event, on a connection of this thread."""
    with Ledger(path) as ledger:
        return _Readers(tracked=ledger.tracking(issue), states=ledger.counts(issue),
                        by_kind=ledger.readers_by_kind(issue, PEOPLE_KINDS), bounced=ledger.bounce_kinds(issue),
                        openers=ledger.openers(issue), unknown=ledger.readers_unknown(issue),
                        heard=ledger.heard_of(issue))


def _count_clicks(ledger: Ledger, issue: str, links: list[Link] | None, figures: IssueFigures) -> set[str]:
    """Per link and card, readers who clicked; scanners counted apart. The human clickers."""
    known = links is not None
    links = links or []
    by_position = {link.position: link for link in links}
    by_url: dict[str, Link] = {}
    for link in links:
        by_url.setdefault(link.url, link)
    per_link: dict[int, set[str]] = defaultdict(set)  # readers by the link's position
    rules: Counter[str] = Counter()
    clickers: set[str] = set()
    later = time.time() + FUTURE_SLACK_SECONDS
    future = 0
    figures.odd.setdefault("future", 0)  # (first among the odd counts, as it was when counted reader by reader)
    for reader, clicks, delivered_at in _by_reader(ledger.clicks(issue)):
        for click, rule in zip(clicks, scanner_rules(clicks, delivered_at), strict=True):
            if click.at > later:
                future += 1
            if rule:
                rules[rule] += 1
                continue
            if not click.url and click.link is None:
                # Recorded before mailer kept each click's link (or the provider sent none): a person's click
                # all the same, on no card.
                figures.odd["click_without_url"] = figures.odd.get("click_without_url", 0) + 1
                figures.clicks_human += 1
                clickers.add(reader)
                continue
            link = _link_of(click, by_position, by_url)
            if link is None and not known:
                figures.clicks_human += 1
                clickers.add(reader)
                continue
            if link is None:  # (a link of an earlier version of the issue, or someone else's event)
                figures.odd["click_not_in_issue"] = figures.odd.get("click_not_in_issue", 0) + 1
                continue
            per_link[link.position].add(reader)
            figures.clicks_human += 1
            clickers.add(reader)
    figures.odd["future"] += future
    figures.odd = {key: count for key, count in figures.odd.items() if count}
    figures.clicks_scanner = sum(rules.values())
    figures.scanner_by_rule = {rule: rules[rule] for rule in RULES if rules[rule]}
    figures.clicks_human_unique = len(clickers)
    total = len(clickers) or 1
    for link in links:
        readers = per_link.get(link.position, set())
        figures.links.append(LinkFigure(link.position, link.url, link.card, link.section, len(readers),
                                        len(readers) / total))
    cards: dict[tuple[str, str], set[str]] = defaultdict(set)
    for link in links:
        cards[(link.card, link.section)] |= per_link.get(link.position, set())
    figures.cards = sorted((CardFigure(card, section, len(readers), len(readers) / total)
                            for (card, section), readers in cards.items()),
                           key=lambda card: -card.human_unique)
    return clickers


def _link_of(click: Click, by_position: dict[int, Link], by_url: dict[str, Link]) -> Link | None:
    """The issue's link a click was on: by its position when that position holds its URL, else the first link
    with its URL. A placeholder inside a link (`?email=-email_url-`) stands for each reader's own value: the
    link is theirs when the URL is the same up to it."""
    link = by_position.get(click.link) if click.link is not None else None
    if link is not None and (click.url is None or _same_link(link.url, click.url)):
        return link
    if not click.url:
        return None
    return by_url.get(click.url) or next((link for link in by_url.values() if _same_link(link.url, click.url)),
                                         None)


def _same_link(written: str, clicked: str) -> bool:
    if written == clicked:
        return True
    tag = placeholders.SHAPE.search(written)
    return tag is not None and tag.start() > 0 and clicked.startswith(written[:tag.start()])


def _by_reader(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[str, list[Click], float | None]]:
    """The ledger's clicks (sorted by reader, then time) a reader at a time."""
    for reader, group in groupby(rows, key=itemgetter(0)):
        rows_of_reader = list(group)
        delivered = rows_of_reader[0][5]
        clicks = [Click(_seconds(at), url, link, agent) for _, at, url, link, agent, _ in rows_of_reader]
        yield reader, clicks, _seconds(delivered) if delivered else None


def _seconds(at: str) -> float:
    try:
        return datetime.fromisoformat(at).timestamp()
    except ValueError:
        return 0.0


def _clickers_without_open(ledger: Ledger, issue: str, clickers: set[str]) -> tuple[int, int]:
    """Human clickers with no open of their own on record (opens not tracked, images blocked, or only a
    machine's open): how many, and how many of them SendGrid saw only machine opens of."""
    readers = sorted(clickers)
    missing = machine = 0
    for start in range(0, len(readers), CHUNK):
        chunk = readers[start:start + CHUNK]
        human, any_open = ledger.openers_among(issue, chunk)
        missing += len(chunk) - len(human)
        machine += len(any_open - human)
    return missing, machine


def _unsubscribes_of(ledger: Ledger, issue: str, unsubscribed: list[tuple[str, str]]) -> Counter[str]:
    """Of those who unsubscribed through mailer serve after the issue, the issue's readers, by how."""
    hows: Counter[str] = Counter()
    for start in range(0, len(unsubscribed), CHUNK):
        chunk = unsubscribed[start:start + CHUNK]
        received = ledger.received_among(issue, [address for address, _ in chunk])
        hows.update(how for address, how in chunk if address in received)
    return hows


def _notes(figures: IssueFigures, *, heard: bool) -> None:
    """What the figures cannot say, in words."""
    if figures.backend == "smtp":
        figures.notes.append("sent through SMTP: no provider reports deliveries, opens or clicks for it")
    elif not heard:
        figures.notes.append("no event of this issue was received: is `mailer serve` receiving SendGrid's Event "
                             "Webhook (SENDGRID_WEBHOOK_PUBLIC_KEY), or MAILER_SERVE_URL set to reach it?")
    for kind in ("clicks", "opens"):
        setting = figures.tracking.get(kind)
        if setting is False:
            figures.notes.append(f"{kind} were not tracked (mailer.yaml: tracking.{kind}: false)")
        elif setting is None and figures.backend != "smtp":
            figures.notes.append(f"{kind}: tracked only if the SendGrid account tracks them (mailer.yaml sets no "
                                 f"tracking.{kind})")
    figures.notes.append("machine opens are a lower bound: SendGrid flags Apple Mail Privacy Protection's opens; "
                         "other proxies' opens count as people's")

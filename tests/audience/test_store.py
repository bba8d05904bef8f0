"""The subscriber store in its SQLite file: who is in, in which status, and what can never bring them back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mailer.audience.store import (
    BOUNCED,
    COMPLAINED,
    CONFIRMED,
    UNSUBSCRIBED,
    Consent,
    Incoming,
    SubscriberStore,
)

ADA, ALAN = "ada.lovelace@example.com", "alan.turing@example.com"


def test_an_import_adds_updates_and_never_brings_back_a_reader_who_left(tmp_path: Path) -> None:
    with SubscriberStore.open(tmp_path) as store:
        first = store.import_readers([Incoming(ADA, "Ada", tags=("nlp",), line=2), Incoming(ALAN, "Alan", line=3),
                                      Incoming("li.lei@example.com", "李雷", status=UNSUBSCRIBED, line=4)],
                                     form="a.csv")
        assert (first.added, first.updated, first.unchanged, first.refused) == (3, 0, 0, 0)
        assert store.counts() == {"pending": 0, "confirmed": 2, "unsubscribed": 1, "bounced": 0, "complained": 0}
        assert store.set_status([(ALAN, UNSUBSCRIBED, "one-click"), (ADA, BOUNCED, "550 no such user")]) == 2
        again = store.import_readers([Incoming(ADA, "Ada", tags=("nlp",), line=2), Incoming(ALAN, "Al", line=3),
                                      Incoming("li.lei@example.com", "李雷", line=4)], form="b.csv")
        assert (again.added, again.updated, again.unchanged) == (0, 1, 2) and again.notes["updated"] == [
            (3, ALAN, "names and tags, stays unsubscribed (one-click): an import never subscribes again someone who "
                      "left")]
        assert (2, ADA, "stays bounced (550 no such user): an import never subscribes again someone who left") \
            in again.notes["unchanged"]
        assert store.get(ALAN).status == UNSUBSCRIBED and store.get(ALAN).first_name == "Al"
        assert store.get("li.lei@example.com").status == UNSUBSCRIBED
        assert store.get(ADA).status == BOUNCED


def test_a_dry_run_import_changes_nothing(tmp_path: Path) -> None:
    with SubscriberStore.open(tmp_path) as store:
        outcome = store.import_readers([Incoming(ADA, line=2)], form="a.csv", dry_run=True)
        assert outcome.added == 1 and store.get(ADA) is None and store.counts()["confirmed"] == 0


def test_a_forgotten_reader_leaves_a_keyed_hash_only_and_no_import_or_editor_adds_them_back(tmp_path: Path) -> None:
    with SubscriberStore.open(tmp_path) as store:
        store.import_readers([Incoming(ADA, "Ada", line=2)], form="a.csv")
        assert store.forget("Ada.Lovelace@EXAMPLE.com")
    with SubscriberStore.open(tmp_path) as store:  # the key outlives the process that made it
        assert store.get(ADA) is None and store.consents(ADA) == [] and store.is_forgotten(ADA)
        refused = store.import_readers([Incoming(ADA, "Ada", line=7)], form="b.csv").notes["refused"]
        assert refused and refused[0][:2] == (7, ADA) and "asked to be forgotten" in refused[0][2]
        consent = Consent("2026-12-07T10:00:00+00:00", "editor", "added by the editor", "editor")
        assert store.add(Incoming(ADA), consent=consent) == "forgotten" and store.get(ADA) is None
    database = sqlite3.connect(tmp_path / "subscribers.sqlite3")
    dump = "\n".join(database.iterdump())
    assert ADA not in dump.lower() and "lovelace" not in dump.lower()  # (the hashes are hex: "ada" may be in one)


def test_statuses_move_only_as_the_reader_or_their_server_said(tmp_path: Path) -> None:
    with SubscriberStore.open(tmp_path) as store:
        store.import_readers([Incoming(ADA, line=2), Incoming(ALAN, line=3)], form="a.csv")
        assert store.set_status([(ADA, UNSUBSCRIBED, "one-click")]) == 1
        assert store.set_status([(ADA, CONFIRMED, "resubscribed on the page")]) == 1  # their own undo
        assert store.set_status([(ALAN, COMPLAINED, "spam report")]) == 1
        assert store.set_status([(ALAN, CONFIRMED, "resubscribed on the page")]) == 0  # a complaint stays
        assert store.set_status([("nobody@example.com", BOUNCED, "bounce")]) == 0  # not in the store: nothing made
        assert store.get(ADA).status == CONFIRMED and store.get(ALAN).status == COMPLAINED
        assert [row[0] for chunk in store.confirmed_rows() for row in chunk] == [ADA]

"""Sign-up without HTTP: the store's decisions (one email a day an address, the per-IP limit, who may never be
sent one), the reader's confirmation, the signed form time and links, and the submission's checks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mailer.audience import signup as rules
from mailer.audience.store import (
    CONFIRMED,
    GONE,
    KNOWN,
    QUEUED,
    RATE_LIMITED,
    RECENT,
    STOPPED,
    Consent,
    Incoming,
    SignupRequest,
    SubscriberStore,
)
from mailer.config import Signup

KEY = rules.signup_key("test-secret")
LIST_ID = "The NLP Cypher <the-nlp-cypher.newsletter.example.com>"
SIGNUP = Signup(consent="I want it.", consent_version="v1", description="Weekly.")
ADA = "ada@example.com"


def ask(email: str = ADA, ip: str | None = "192.0.2.1", **extra: str) -> SignupRequest:
    return SignupRequest(email=email, consent_text="I want it.", consent_version="v1", ip=ip, **extra)


def confirm(store: SubscriberStore, email: str = ADA) -> str:
    """Press the button of the latest link sent to `email` (the nonce its waiting request holds)."""
    row = store._db.execute("SELECT nonce FROM confirmations WHERE address=?", (email.lower(),)).fetchone()
    return store.confirm(email, nonce=row[0] if row else "")


@pytest.fixture
def store(tmp_path: Path):
    with SubscriberStore(tmp_path / "subscribers.sqlite3") as store:
        yield store


def test_a_new_address_is_a_pending_reader_sent_one_email_and_confirmed_only_by_its_own_post(store) -> None:
    assert store.request_confirmations([ask(first_name="Ada")], per_ip_hourly=20) == [QUEUED]
    reader = store.get(ADA)
    assert (reader.status, reader.source, reader.first_name, reader.confirmed_at) == ("pending", "form", "Ada", None)
    assert store.consents(ADA) == []  # given by confirming, not by a form anyone can fill in
    assert [claimed.email for claimed in store.claim_confirmations()] == [ADA]
    assert store.claim_confirmations() == []  # claimed once
    assert confirm(store, ADA) == CONFIRMED
    reader = store.get(ADA)
    assert reader.status == "confirmed" and reader.confirmed_at
    (consent,) = store.consents(ADA)
    assert (consent.form, consent.text, consent.version, consent.ip) == ("subscribe", "I want it.", "v1", None)
    assert confirm(store, ADA) == KNOWN  # the button pressed twice


def test_at_most_one_email_a_day_whatever_the_ip_and_a_failed_one_frees_the_day(store) -> None:
    now = time.time()
    outcomes = store.request_confirmations([ask(ip=f"192.0.2.{n}") for n in range(50)], per_ip_hourly=20, at=now)
    assert outcomes == [QUEUED] + [RECENT] * 49
    (claimed,) = store.claim_confirmations()
    store.confirmation_sent(ADA, claimed[1], ok=False)  # the provider refused: the reader may ask again
    assert store.request_confirmations([ask()], per_ip_hourly=20, at=now + 60) == [QUEUED]
    (claimed,) = store.claim_confirmations()
    store.confirmation_sent(ADA, claimed[1], ok=True)
    assert store.request_confirmations([ask()], per_ip_hourly=20, at=now + 23 * 3600) == [RECENT]
    assert store.request_confirmations([ask()], per_ip_hourly=20, at=now + 25 * 3600) == [QUEUED]


def test_the_per_ip_limit_counts_an_hour_and_keeps_no_ip(store, tmp_path: Path) -> None:
    now = time.time()
    outcomes = store.request_confirmations([ask(f"r{n}@example.com", ip="198.51.100.7") for n in range(22)],
                                           per_ip_hourly=20, at=now)
    assert outcomes == [QUEUED] * 20 + [RATE_LIMITED] * 2
    assert store.get("r21@example.com") is None  # refused: nothing recorded of the address
    assert store.request_confirmations([ask("x@example.com", ip="198.51.100.8")], per_ip_hourly=20, at=now) == [QUEUED]
    assert store.request_confirmations([ask("y@example.com", ip="198.51.100.7")], per_ip_hourly=20,
                                       at=now + 3601) == [QUEUED]
    assert b"198.51.100.7" not in (tmp_path / "subscribers.sqlite3").read_bytes()


def test_nothing_is_sent_to_confirmed_bounced_or_complained_readers_and_they_do_not_change(store) -> None:
    for email in ("c@example.com", "b@example.com", "s@example.com"):
        store.add(Incoming(email), consent=Consent("2026-01-01", "editor", "added", "editor"))
    store.set_status([("b@example.com", "bounced", "hard bounce"), ("s@example.com", "complained", "spam report")])
    outcomes = store.request_confirmations([ask("c@example.com"), ask("b@example.com"), ask("s@example.com")],
                                           per_ip_hourly=20)
    assert outcomes == [KNOWN, STOPPED, STOPPED]
    assert store.claim_confirmations() == []
    assert [store.get(e).status for e in ("c@example.com", "b@example.com", "s@example.com")] == [
        "confirmed", "bounced", "complained"]
    assert len(store.consents("c@example.com")) == 1


def test_an_unsubscribed_reader_is_sent_a_confirmation_and_stays_unsubscribed_until_they_confirm(store) -> None:
    store.add(Incoming(ADA), consent=Consent("2026-01-01", "editor", "added", "editor"))
    store.set_status([(ADA, "unsubscribed", "one-click")])
    assert store.request_confirmations([ask()], per_ip_hourly=20) == [QUEUED]
    assert store.get(ADA).status == "unsubscribed"
    assert confirm(store, ADA) == CONFIRMED
    assert store.get(ADA).status == "confirmed" and len(store.consents(ADA)) == 2


def test_a_forgotten_reader_may_sign_up_again_and_only_their_confirmation_adds_them_back(store) -> None:
    store.add(Incoming(ADA), consent=Consent("2026-01-01", "editor", "added", "editor"))
    store.forget(ADA)
    assert store.request_confirmations([ask()], per_ip_hourly=20) == [QUEUED]
    assert store.get(ADA) is None and store.is_forgotten(ADA)  # no row an import could turn into a reader
    assert confirm(store, ADA) == CONFIRMED
    assert store.get(ADA).status == "confirmed" and not store.is_forgotten(ADA)


def test_forgetting_a_pending_sign_up_leaves_nothing_to_confirm(store) -> None:
    store.request_confirmations([ask()], per_ip_hourly=20)
    store.forget(ADA)
    assert confirm(store, ADA) == GONE and store.get(ADA) is None


def test_the_ip_goes_with_the_consent_only_when_asked(store) -> None:
    store.request_confirmations([ask(consent_ip="192.0.2.1")], per_ip_hourly=20)
    confirm(store, ADA)
    assert store.consents(ADA)[0].ip == "192.0.2.1"


def test_a_thousand_concurrent_sign_ups_of_one_address_from_two_stores_queue_one_email(tmp_path: Path) -> None:
    path = tmp_path / "subscribers.sqlite3"
    SubscriberStore(path).close()
    outcomes: list[str] = []

    def sign_up(first: int) -> None:
        with SubscriberStore(path) as store:
            for n in range(first, first + 100):
                outcomes.extend(store.request_confirmations([ask(ip=f"10.0.{n % 50}.1")], per_ip_hourly=20))

    threads = [threading.Thread(target=sign_up, args=(n * 100,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(QUEUED) == 1 and len(outcomes) == 1000


# -- the signed form time and links ---------------------------------------------------------------------


def test_the_form_must_be_at_least_two_seconds_old_and_at_most_a_day() -> None:
    now = time.time()
    stamp = rules.form_stamp(KEY, LIST_ID, at=now)
    assert rules.check_stamp(stamp, KEY, LIST_ID, at=now + 1) == rules.STAMP_TOO_FAST
    assert rules.check_stamp(stamp, KEY, LIST_ID, at=now + 2.1) == rules.STAMP_OK
    assert rules.check_stamp(stamp, KEY, LIST_ID, at=now + 86401) == rules.STAMP_STALE
    assert rules.check_stamp(stamp, KEY, "Other <other.example.com>", at=now + 3) == rules.STAMP_STALE
    served, signature = stamp.split(".")
    assert rules.check_stamp(f"{int(served) - 10_000}.{signature}", KEY, LIST_ID, at=now + 3) == rules.STAMP_STALE
    for junk in (None, "", "x" * 100, "é.é", 12):
        assert rules.check_stamp(junk, KEY, LIST_ID) == rules.STAMP_STALE


def test_a_link_is_bound_to_the_newsletter_the_address_and_seven_days() -> None:
    now = time.time()
    token = rules.confirmation_token(KEY, LIST_ID, "Ada@Example.com", nonce="n0nce", at=now)
    assert rules.read_confirmation_token(token, KEY, LIST_ID, at=now + 6 * 86400) == (rules.TOKEN_OK, ADA, "n0nce")
    assert rules.read_confirmation_token(token, KEY, LIST_ID, at=now + 8 * 86400).verdict == rules.TOKEN_EXPIRED
    other_key = rules.signup_key("another")
    who, issued, nonce, signature = token.split(".")
    forged_who = rules._b64(b"eve@example.com")
    for bad in (rules.confirmation_token(other_key, LIST_ID, ADA, nonce="n0nce", at=now),  # forged
                rules.confirmation_token(KEY, "Other <other.example.com>", ADA, nonce="n0nce", at=now),  # another list
                f"{forged_who}.{issued}.{nonce}.{signature}", f"{who}.{int(issued) + 86400 * 30}.{nonce}.{signature}",
                f"{who}.{issued}.other.{signature}", f"{who}.{issued}.{signature}",  # tampered, the nonce dropped
                token[:-2], "", "a.b", "..", "...", "x" * 600, "é.1.é"):
        assert rules.read_confirmation_token(bad, KEY, LIST_ID, at=now)[0] == rules.TOKEN_INVALID, bad


def test_the_secret_is_the_unsubscribe_secret_and_is_required() -> None:
    from mailer.deliver.message import SECRET_ENV

    assert rules.SECRET_ENV == SECRET_ENV
    with pytest.raises(Exception, match="MAILER_UNSUBSCRIBE_SECRET is not set"):
        rules.signup_key("")
    # Derived for a purpose of its own: the unsubscribe key itself signs no sign-up token.
    assert KEY != b"test-secret"


# -- a submission ---------------------------------------------------------------------------------------


def fields(**values: object) -> dict[str, object]:
    return {"email": ADA, "consent": "yes", "stamp": rules.form_stamp(KEY, LIST_ID, at=time.time() - 5), **values}


def read(**values: object) -> rules.Submission:
    return rules.read_submission(fields(**values), SIGNUP, KEY, LIST_ID, ip="192.0.2.1")


def test_a_good_submission_becomes_a_request_with_the_consent_shown() -> None:
    submission = read(first_name="  Ada ")
    assert submission.request == SignupRequest(email=ADA, consent_text="I want it.", consent_version="v1",
                                               first_name="Ada", ip="192.0.2.1", consent_ip=None)


def test_the_honeypot_and_a_fast_form_are_bots_and_a_missing_stamp_shows_the_form_again() -> None:
    assert read(website="http://spam.example").bot == "honeypot"
    assert read(stamp=rules.form_stamp(KEY, LIST_ID)).bot == "too fast"
    assert read(stamp=None).stale and read(stamp="nonsense").stale


@pytest.mark.parametrize(("values", "field"), [
    ({"email": "ada@example.com\r\nBcc: victim@example.org"}, "email"),
    ({"email": "=?utf-8?q?X=0D=0ABcc:_x@evil.example?=@example.com"}, "email"),
    ({"email": "x:ada@example.org"}, "email"),
    ({"email": "a" * 5000 + "@example.com"}, "email"),
    ({"email": ["ada@example.com"]}, "email"),
    ({"first_name": "Ada\r\nBcc: x@evil.example"}, "first_name"),
    ({"first_name": "=?utf-8?q?A=0D=0ABcc:_x@evil.example?="}, "first_name"),
    ({"first_name": "A\x1b[31m"}, "first_name"),
    ({"first_name": "A" * 101}, "first_name"),
    ({"first_name": 5}, "first_name"),
    ({"first_name": "Ada \u202eexample.com"}, "first_name"),
    ({"first_name": "Ada\u2066x\u2069"}, "first_name"),
    ({"first_name": "A\u200bda"}, "first_name"),
    ({"first_name": "\ufeffAda"}, "first_name"),
    ({"consent": None}, "consent"),
], ids=["crlf", "encoded-word", "colon", "long-address", "list", "name-crlf", "name-encoded-word", "name-escape",
        "long-name", "name-number", "name-rlo", "name-isolate", "name-zero-width-space", "name-bom", "no-consent"])
def test_hostile_fields_are_refused_with_the_field_named(values: dict[str, object], field: str) -> None:
    submission = read(**values)
    assert submission.request is None and field in dict(submission.problems)


def test_markup_in_a_name_is_kept_as_text_for_the_pages_to_escape() -> None:
    assert read(first_name="<b>Ada</b>").request.first_name == "<b>Ada</b>"


# -- after an attack run ----------------------------------------------------------------------------------


def test_one_email_a_day_holds_through_a_confirmation_an_unsubscribe_and_a_forget(store, tmp_path: Path) -> None:
    now = time.time()
    assert store.request_confirmations([ask()], per_ip_hourly=20, at=now) == [QUEUED]
    assert confirm(store) == CONFIRMED
    store.set_status([(ADA, "unsubscribed", "one-click")])
    assert store.request_confirmations([ask(ip="192.0.2.2")], per_ip_hourly=20, at=now + 60) == [RECENT]
    store.forget(ADA)
    assert store.request_confirmations([ask(ip="192.0.2.3")], per_ip_hourly=20, at=now + 120) == [RECENT]
    assert store.claim_confirmations(at=now + 120) == []
    assert b"ada@" not in (tmp_path / "subscribers.sqlite3").read_bytes()  # the day is kept as a keyed hash
    assert store.request_confirmations([ask(ip="192.0.2.4")], per_ip_hourly=20, at=now + 86401) == [QUEUED]
    assert store._db.execute("SELECT COUNT(*) FROM signup_emails WHERE at <= ?", (now,)).fetchone()[0] == 0


def test_an_uncertain_send_keeps_the_day_and_an_interrupted_one_too(store) -> None:
    now = time.time()
    store.request_confirmations([ask()], per_ip_hourly=20, at=now)
    (claimed,) = store.claim_confirmations(at=now)
    store.confirmation_sent(ADA, claimed.requested, ok=True)  # what the sender says of an uncertain send
    assert store.request_confirmations([ask(ip="192.0.2.2")], per_ip_hourly=20, at=now + 60) == [RECENT]
    store.request_confirmations([ask("bob@example.com")], per_ip_hourly=20, at=now)
    store.claim_confirmations(at=now)
    assert store.abandon_interrupted_confirmations() == 1  # a restart mid-send
    assert store.request_confirmations([ask("bob@example.com", ip="192.0.2.2")], per_ip_hourly=20,
                                       at=now + 60) == [RECENT]


def test_only_the_latest_requests_link_confirms(store) -> None:
    now = time.time()
    store.request_confirmations([ask()], per_ip_hourly=20, at=now)
    (first,) = store.claim_confirmations(at=now)
    store.confirmation_sent(ADA, first.requested, ok=True)
    store.forget(ADA)
    assert store.confirm(ADA, nonce=first.nonce) == GONE
    store.request_confirmations([ask()], per_ip_hourly=20, at=now + 86401)  # their own sign-up, a day later
    (second,) = store.claim_confirmations(at=now + 86401)
    assert second.nonce != first.nonce
    assert store.confirm(ADA, nonce=first.nonce) == GONE  # the link sent before the forget
    assert store.get(ADA) is None and store.is_forgotten(ADA)
    assert store.confirm(ADA, nonce=second.nonce) == CONFIRMED


def test_a_pending_sign_up_is_purged_once_its_link_can_no_longer_work(store) -> None:
    old = time.time() - 9 * 86400
    store.request_confirmations([ask("stranger@example.com", first_name='=HYPERLINK("x")'),
                                 ask("kept@example.com")], per_ip_hourly=20, at=old)
    assert confirm(store, "kept@example.com") == CONFIRMED
    store.import_readers([Incoming("imported@example.com", status="pending")], form="list.csv")
    store.claim_confirmations()  # the sender's round (every 30 s) purges, as a sign-up does
    assert store.get("stranger@example.com") is None and store.confirmation_state("stranger@example.com") is None
    assert store.get("kept@example.com").status == "confirmed"  # confirmed meanwhile: kept
    assert store.get("imported@example.com").status == "pending"  # not the form's: not the form's to purge
    recent = time.time() - 6 * 86400
    store.request_confirmations([ask("recent@example.com")], per_ip_hourly=20, at=recent)
    store.claim_confirmations()
    assert store.get("recent@example.com").status == "pending"


def test_a_store_of_the_release_before_keeps_its_waiting_links_and_its_day(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "subscribers.sqlite3"
    with SubscriberStore(path) as store:
        store.request_confirmations([ask()], per_ip_hourly=20)
        requested = store.claim_confirmations()[0].requested
    db = sqlite3.connect(path)  # as the release before left it: no nonce, no signup_emails, version 0
    db.executescript("DROP TABLE signup_emails; ALTER TABLE confirmations DROP COLUMN nonce; PRAGMA user_version=0")
    db.execute("UPDATE confirmations SET state='sent'")
    db.commit()
    db.close()
    old_link = rules.confirmation_token(KEY, LIST_ID, ADA, nonce="", at=requested)
    assert old_link.count(".") == 2  # the old form, `who.issued.signature`
    link = rules.read_confirmation_token(old_link, KEY, LIST_ID)
    assert link == (rules.TOKEN_OK, ADA, "")
    with SubscriberStore(path) as store:
        assert store.request_confirmations([ask(ip="192.0.2.2")], per_ip_hourly=20) == [RECENT]
        assert store.confirm(ADA, nonce=link.nonce) == CONFIRMED


def test_names_keep_the_joiners_scripts_and_emoji_need() -> None:
    persian, emoji, devanagari = ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\U0001F469\u200d\U0001F4BB Ada",
                                  "\u0905\u0930\u094d\u200d\u0925")
    for name in (persian, emoji, devanagari):
        assert read(first_name=name).request.first_name == name

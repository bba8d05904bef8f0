"""`mailer serve`'s sign-up as a running process over HTTP: the form, the confirmation email (caught by the
SendGrid stand-in, and by the SMTP sink), its link's page and button, and every defence, each with its test."""

from __future__ import annotations

import asyncio
import email
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from email import policy
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import pytest

from mailer.audience import signup as rules
from mailer.audience.store import SubscriberStore
from tests.conftest import UNSUBSCRIBE_SECRET
from tests.web import serve_load
from tests.web.test_service import LIST_ID, Running, serving

KEY = rules.signup_key(UNSUBSCRIBE_SECRET)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
ORIGIN = "https://www.example.com"
SIGNUP = f"""
signup:
  description: "One email every Sunday: the week's NLP papers."
  consent: "I want The NLP Cypher by email. <b>Unsubscribe</b> any time."
  consent_version: "2026-12-01"
  cors_origins: ["{ORIGIN}"]
  trusted_proxies: [127.0.0.1]
"""


def enable_signup(workspace: Path, extra: str = "") -> None:
    with (workspace / "mailer.yaml").open("a", encoding="utf-8") as settings:
        settings.write(SIGNUP + extra)


def stamp(age: float = 3.0) -> str:
    """The form's signed time, as if it had been served `age` seconds ago (the tests need not wait 2 s)."""
    return rules.form_stamp(KEY, LIST_ID, at=time.time() - age)


def form(address: str, **values: str) -> bytes:
    return urlencode({"email": address, "first_name": "", "consent": "yes", "stamp": stamp(), "website": "",
                      **values}).encode()


@pytest.fixture
def signup_service(workspace: Path, state_dir: Path, start_sendgrid) -> Iterator[tuple[Running, object]]:
    fake, url = start_sendgrid()
    enable_signup(workspace)
    with serving(workspace, state_dir, SENDGRID_API_HOST=url) as running:
        yield running, fake


def wait_for(condition, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def sent_to(fake) -> list[str]:
    return [p["to"][0]["email"] for body in fake.requests for p in body["personalizations"]]


MARKER = "marker@example.com"


def sent_once_the_queue_is_done(service: Running, fake) -> list[str]:
    """Who got a confirmation email from everything done so far: waits for the emails that are still to go.

    One more reader signs up (from an address and an IP of their own) and the test waits for their email: the
    service sends the queued emails one at a time, oldest first, so by then any email that the requests before
    could cause has gone too. An event to wait for, not a guess at how long sending takes. The marker's own
    email is left out of the answer."""
    service.request("POST", "/subscribe", form(MARKER), {**FORM, "X-Forwarded-For": "198.51.100.250"})
    wait_for(lambda: MARKER in sent_to(fake))
    return [address for address in sent_to(fake) if address != MARKER]


def link_in(text: str) -> str:
    """The confirmation link's path (the public host is the proxy's; the test talks to the service itself)."""
    return urlsplit(re.search(r"https://\S+/confirm/\S+", text).group(0)).path


def reader(state_dir: Path, address: str):
    with SubscriberStore.open(state_dir) as store:
        return store.get(address), store.consents(address)


def confirmation_state(service: Running, address: str) -> str | None:
    """How the service's sender recorded the address's confirmation email: queued, sending, sent or failed."""
    with SubscriberStore.open(service.state_dir) as store:
        return store.confirmation_state(address)


def test_a_visitor_signs_up_and_confirms_from_the_email(signup_service, state_dir: Path) -> None:
    service, fake = signup_service
    status, headers, page = service.request("GET", "/subscribe")
    assert status == 200 and headers["content-security-policy"].startswith("default-src 'none'")
    assert "One email every Sunday" in page and "&lt;b&gt;Unsubscribe&lt;/b&gt;" in page
    assert 'href="https://newsletter.example.com/"' in page and 'name="website"' in page
    status, _, page = service.request("POST", "/subscribe", form("ada@example.com", first_name="Ada"), FORM)
    assert status == 200 and "Check your inbox" in page
    wait_for(lambda: fake.requests)
    (body,) = fake.requests
    assert sent_to(fake) == ["ada@example.com"] and body["subject"] == "Confirm your subscription to The NLP Cypher"
    assert body["tracking_settings"]["click_tracking"]["enable"] is False
    text, html = (part["value"] for part in body["content"])
    assert "Ada" not in text + html  # nothing the visitor typed but the address
    assert "prefers-color-scheme: dark" in html and 'lang="en"' in html
    path = link_in(text)
    assert path in html
    reader_before, _ = reader(state_dir, "ada@example.com")
    assert reader_before.status == "pending"
    status, _, page = service.request("GET", path)  # a mail scanner: shows the button, confirms nobody
    assert status == 200 and ">Yes, subscribe me</button>" in page and "a•••@example.com" in page
    assert 'name="first_name" value="Ada"' in page  # the name to greet them by, theirs to change
    assert reader(state_dir, "ada@example.com")[0].status == "pending"
    status, _, page = service.post_form(path, "first_name=Ada")
    assert status == 200 and "You are subscribed to The NLP Cypher" in page
    assert 'href="https://newsletter.example.com/2020-12-13/"' in page  # the latest issue's web version
    confirmed, (consent,) = reader(state_dir, "ada@example.com")
    assert confirmed.status == "confirmed" and confirmed.confirmed_at and confirmed.first_name == "Ada"
    assert (consent.form, consent.version, consent.ip) == ("subscribe", "2026-12-01", None)
    assert consent.text == "I want The NLP Cypher by email. <b>Unsubscribe</b> any time."
    assert "already subscribed" in service.post_form(path, "")[2]  # pressed twice: nothing changes
    assert len(fake.requests) == 1


def test_json_and_the_form_take_one_path_and_cors_is_for_the_editors_site_only(signup_service,
                                                                              state_dir: Path) -> None:
    service, fake = signup_service
    status, headers, body = service.request("GET", "/subscribe", headers={"Accept": "application/json",
                                                                           "Origin": ORIGIN})
    fields = json.loads(body)
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN
    assert fields["honeypot"] == "website" and fields["consent_version"] == "2026-12-01"
    status, headers, _ = service.request("OPTIONS", "/subscribe", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert status == 204 and headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in headers["access-control-allow-methods"] and "Content-Type" in headers[
        "access-control-allow-headers"]
    status, headers, _ = service.request("OPTIONS", "/subscribe", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert status == 403 and "access-control-allow-origin" not in headers
    status, headers, _ = service.request("GET", "/subscribe", headers={"Origin": "https://evil.example",
                                                                        "Accept": "application/json"})
    assert "access-control-allow-origin" not in headers
    time.sleep(2.1)  # the stamp the script got is as old as a person's typing
    payload = {"email": "grace@example.com", "consent": True, "stamp": fields["stamp"], "website": ""}
    status, headers, body = service.request("POST", "/subscribe", json.dumps(payload).encode(),
                                            {**JSON, "Origin": ORIGIN})
    assert status == 202 and json.loads(body) == {"status": "check-your-inbox", "message": rules_message()}
    assert headers["access-control-allow-origin"] == ORIGIN
    wait_for(lambda: sent_to(fake) == ["grace@example.com"])


def rules_message() -> str:
    from mailer.web.signup import SAME_ANSWER

    return SAME_ANSWER["message"]


def test_every_submission_gets_the_same_answer_and_only_a_new_address_an_email(workspace: Path, state_dir: Path,
                                                                               start_sendgrid) -> None:
    fake, url = start_sendgrid()
    enable_signup(workspace, "  per_ip_hourly: 3\n")
    from mailer.audience.store import Consent, Incoming

    with SubscriberStore.open(state_dir) as store:
        for address in ("reader@example.com", "bounced@example.com", "spam@example.com"):
            store.add(Incoming(address), consent=Consent("2026-01-01", "editor", "added", "editor"))
        store.set_status([("bounced@example.com", "bounced", "hard"), ("spam@example.com", "complained", "report")])
    with serving(workspace, state_dir, SENDGRID_API_HOST=url) as service:
        def post(address: str, ip: str, **values: object) -> tuple[int, str]:
            payload = {"email": address, "consent": True, "stamp": stamp(), "website": "", **values}
            status, _, body = service.request("POST", "/subscribe", json.dumps(payload).encode(),
                                              {**JSON, "X-Forwarded-For": ip})
            return status, body

        answers = {
            "new": post("new@example.com", "192.0.2.1"),
            "confirmed reader": post("reader@example.com", "192.0.2.2"),
            "bounced": post("bounced@example.com", "192.0.2.2"),
            "complained": post("spam@example.com", "192.0.2.2"),
            "honeypot": post("bot1@example.com", "192.0.2.3", website="http://spam.example"),
            "too fast": post("bot2@example.com", "192.0.2.3", stamp=stamp(age=0.5)),
            "again at once": post("new@example.com", "192.0.2.4"),
            "rate limited": post("limited@example.com", "192.0.2.2"),  # the 4th from .2 within the hour
        }
        assert len(set(answers.values())) == 1, answers
        assert answers["new"][0] == 202
        assert sent_once_the_queue_is_done(service, fake) == ["new@example.com"]
        html = {address: service.request("POST", "/subscribe", form(address), FORM)[2]
                for address in ("new@example.com", "reader@example.com")}
        assert html["new@example.com"].replace("new@", "reader@") == html["reader@example.com"]
    with SubscriberStore.open(state_dir) as store:
        assert [store.get(a).status for a in ("reader@example.com", "bounced@example.com", "spam@example.com")] == [
            "confirmed", "bounced", "complained"]
        assert store.get("bot1@example.com") is None and store.get("limited@example.com") is None


def test_an_unsubscribed_reader_gets_a_confirmation_and_is_subscribed_only_by_its_post(signup_service,
                                                                                      state_dir: Path) -> None:
    from mailer.audience.store import Consent, Incoming

    service, fake = signup_service
    with SubscriberStore.open(state_dir) as store:
        store.add(Incoming("ada@example.com"), consent=Consent("2026-01-01", "editor", "added", "editor"))
        store.set_status([("ada@example.com", "unsubscribed", "one-click")])
    service.request("POST", "/subscribe", form("ada@example.com"), FORM)
    wait_for(lambda: fake.requests)
    path = link_in(fake.requests[0]["content"][0]["value"])
    service.request("GET", path)
    assert reader(state_dir, "ada@example.com")[0].status == "unsubscribed"
    service.post_form(path, "")
    assert reader(state_dir, "ada@example.com")[0].status == "confirmed"


def test_the_confirmation_goes_through_smtp_too(workspace: Path, state_dir: Path, smtp_server) -> None:
    enable_signup(workspace)
    settings = workspace / "mailer.yaml"
    settings.write_text(settings.read_text(encoding="utf-8").replace("backend: sendgrid", "backend: smtp"),
                        encoding="utf-8")
    with serving(workspace, state_dir) as service:
        service.request("POST", "/subscribe", form("ada@example.com"), FORM)
        wait_for(lambda: smtp_server.messages)
        sender, recipients, data, _ = smtp_server.messages[0]
        message = email.message_from_bytes(data, policy=policy.default)
        assert (sender, recipients) == ("newsletter@example.com", ["ada@example.com"])
        assert message["Subject"] == "Confirm your subscription to The NLP Cypher"
        assert "List-Unsubscribe" not in message and message["Auto-Submitted"] == "auto-generated"
        text = message.get_body(("plain",)).get_content()
        assert service.post_form(link_in(text), "")[0] == 200
    assert reader(state_dir, "ada@example.com")[0].status == "confirmed"


@pytest.mark.parametrize("case", ["forged", "tampered", "other newsletter", "cut", "junk"])
def test_a_bad_confirmation_link_is_a_400_page_and_changes_nothing(signup_service, state_dir: Path,
                                                                   case: str) -> None:
    service, fake = signup_service
    service.request("POST", "/subscribe", form("ada@example.com"), FORM)
    wait_for(lambda: fake.requests)
    good = link_in(fake.requests[0]["content"][0]["value"]).rsplit("/", 1)[1]
    who, issued, nonce, signature = good.split(".")
    token = {
        "forged": rules.confirmation_token(rules.signup_key("guess"), LIST_ID,
                                           "ada@example.com", nonce=nonce),
        "tampered": f"{rules._b64(b'eve@example.com')}.{issued}.{nonce}.{signature}",
        "other newsletter": rules.confirmation_token(KEY, "Other <other.example.com>", "ada@example.com", nonce=nonce),
        "cut": good[:-4],
        "junk": "%00..%C3%A9" + "x" * 600,
    }[case]
    for method in ("GET", "POST"):
        status, _, page = service.request(method, f"/confirm/{quote(token, safe='%.')}", b"" if method == "POST"
                                          else None, FORM if method == "POST" else {})
        assert status == 400 and "This link is not valid" in page and "Traceback" not in page
    assert reader(state_dir, "ada@example.com")[0].status == "pending"
    assert reader(state_dir, "eve@example.com")[0] is None


def test_an_expired_link_offers_to_sign_up_again(signup_service, state_dir: Path) -> None:
    service, _ = signup_service
    old = rules.confirmation_token(KEY, LIST_ID, "ada@example.com", nonce="x", at=time.time() - 8 * 86400)
    for method in ("GET", "POST"):
        status, _, page = service.request(method, f"/confirm/{old}", b"" if method == "POST" else None)
        assert status == 400 and "This link has expired" in page
        assert 'href="https://newsletter.example.com/subscribe"' in page and "Sign up again" in page


def test_hostile_submissions_are_refused_and_nothing_is_sent(signup_service, state_dir: Path) -> None:
    service, fake = signup_service
    answers = {
        "1 MB body": service.request("POST", "/subscribe", b"email=" + b"a" * 1_000_000, FORM),
        "1 MB JSON": service.request("POST", "/subscribe", b'{"email": "' + b"a" * 1_000_000 + b'"}', JSON),
        "header injection": service.request("POST", "/subscribe",
                                            form("ada@example.com\r\nBcc: victim@example.org"), FORM),
        "encoded word": service.request("POST", "/subscribe",
                                        form("=?utf-8?q?X=0D=0ABcc:_x@evil.example?=@example.com"), FORM),
        "control character": service.request("POST", "/subscribe", form("ada\x1b[2J@example.com"), FORM),
        "long address": service.request("POST", "/subscribe", form("a" * 4000 + "@example.com"), FORM),
        "long name": service.request("POST", "/subscribe", form("ada@example.com", first_name="A" * 500), FORM),
        "name with a line break": service.request("POST", "/subscribe",
                                                  form("ada@example.com", first_name="A\r\nBcc: x@evil.example"), FORM),
        "not JSON": service.request("POST", "/subscribe", b"{nope", JSON),
        "not UTF-8": service.request("POST", "/subscribe", b"email=\xff\xfe@example.com", FORM),
    }
    statuses = {name: status for name, (status, _, _) in answers.items()}
    assert statuses == {"1 MB body": 413, "1 MB JSON": 413, **{name: 400 for name in list(answers)[2:]}}
    for _, _, page in answers.values():
        assert "Traceback" not in page and "evil.example</" not in page
    with SubscriberStore.open(state_dir) as store:
        assert store.counts()["pending"] == 0
    assert sent_once_the_queue_is_done(service, fake) == []


def test_markup_in_the_fields_is_shown_escaped(signup_service, state_dir: Path) -> None:
    service, fake = signup_service
    status, _, page = service.request("POST", "/subscribe", form("<script>@example.com", first_name="<b>x</b>"),
                                      FORM)
    assert status == 400 and "<script>" not in page and "&lt;script&gt;@example.com" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    status, _, page = service.request("POST", "/subscribe", form("ada@example.com", first_name="<i>Ada</i>"), FORM)
    assert status == 200 and "<i>Ada</i>" not in page
    wait_for(lambda: fake.requests)
    assert "<i>" not in json.dumps(fake.requests[0]) and "Ada" not in json.dumps(fake.requests[0])
    assert reader(state_dir, "ada@example.com")[0].first_name == "<i>Ada</i>"  # kept as text, escaped where shown


def test_a_missing_or_old_stamp_shows_the_form_again_with_the_address(signup_service) -> None:
    service, fake = signup_service
    body = urlencode({"email": "ada@example.com", "consent": "yes"}).encode()  # a plain form on another site
    status, _, page = service.request("POST", "/subscribe", body, FORM)
    assert status == 200 and "One more step" in page and 'value="ada@example.com"' in page
    status, _, page = service.request("POST", "/subscribe", form("ada@example.com", stamp=stamp(age=2 * 86400)), FORM)
    assert status == 200 and "One more step" in page
    assert sent_once_the_queue_is_done(service, fake) == []


def test_a_thousand_sign_ups_of_one_address_from_fifty_ips_send_one_email(signup_service, state_dir: Path) -> None:
    service, fake = signup_service
    payload = json.dumps({"email": "ada@example.com", "consent": True, "stamp": stamp(), "website": ""}).encode()

    def request(ip: str) -> bytes:
        return (f"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"X-Forwarded-For: {ip}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
                ).encode() + payload

    answers = asyncio.run(serve_load.burst(service.port, [request(f"203.0.113.{n % 50}") for n in range(1000)],
                                           timeout=60))
    assert {answer.status for answer in answers} == {202}
    assert sent_once_the_queue_is_done(service, fake) == ["ada@example.com"]


WRITER = """
import sys, time
from pathlib import Path
from mailer.audience.store import Incoming, SubscriberStore
deadline = time.monotonic() + float(sys.argv[2])
n = 0
with SubscriberStore.open(Path(sys.argv[1])) as store:
    while time.monotonic() < deadline:
        store.import_readers([Incoming(f"imported{n + i}@example.com") for i in range(200)], form="big.csv")
        if n == 0:
            print("writing", flush=True)  # the test's burst starts now
        n += 200
print(n)
"""


def test_a_burst_of_sign_ups_while_another_process_writes_the_store_loses_none(signup_service,
                                                                              state_dir: Path) -> None:
    service, fake = signup_service
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(state_dir), "8"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n", writer.communicate()  # it is writing by now
    requests = []
    for n in range(300):
        payload = json.dumps({"email": f"burst{n}@example.com", "consent": True, "stamp": stamp(),
                              "website": ""}).encode()
        requests.append((f"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         f"X-Forwarded-For: 198.51.100.{n % 30}\r\nContent-Length: {len(payload)}\r\n"
                         "Connection: close\r\n\r\n").encode() + payload)
    answers = asyncio.run(serve_load.burst(service.port, requests, timeout=60))
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0 and "locked" not in err, err
    assert {answer.status for answer in answers} == {202}
    with SubscriberStore.open(state_dir) as store:
        assert store.counts()["pending"] == 300 and store.counts()["confirmed"] == int(out)
    wait_for(lambda: len(fake.requests) == 300, seconds=60)


def test_serve_lists_its_endpoints_and_refuses_sign_up_without_its_secret_or_backend(
        workspace: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.loopback_smtp import free_port

    enable_signup(workspace)
    monkeypatch.delenv("MAILER_UNSUBSCRIBE_SECRET", raising=False)
    result = run_cli("serve", "--port", str(free_port()))
    assert result.exit_code == 1 and "MAILER_UNSUBSCRIBE_SECRET is not set" in result.stderr
    assert "sign-up" in result.stderr
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    result = run_cli("serve", "--port", str(free_port()))
    assert result.exit_code == 1 and "SENDGRID_API_KEY is not set" in result.stderr
    assert "confirmation emails" in result.stderr


def test_the_start_line_names_each_endpoint_that_is_on(workspace: Path, state_dir: Path, start_sendgrid) -> None:
    import os

    from tests.loopback_smtp import free_port

    _, url = start_sendgrid()
    enable_signup(workspace)
    port = free_port()
    env = {**os.environ, "MAILER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET, "MAILER_STATE_DIR": str(state_dir),
           "SENDGRID_API_HOST": url, "MAILER_EXPORT_TOKEN": "t" * 40}
    process = subprocess.Popen([sys.executable, "-m", "mailer", "serve", "--port", str(port)], cwd=workspace,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = "".join(process.stdout.readline() for _ in range(5))
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert "Traceback" not in err
    listed = {line.split(":", 1)[0].strip(): line for line in lines.splitlines()[1:]}
    assert listed.keys() == {"unsubscribe", "sign-up", "export", "events export"}
    assert f"http://127.0.0.1:{port}/unsubscribe" in listed["unsubscribe"]
    assert f"http://127.0.0.1:{port}/subscribe and /confirm/…" in listed["sign-up"]
    assert "(public address: https://newsletter.example.com/subscribe)" in listed["sign-up"]
    assert f"http://127.0.0.1:{port}/export/suppressions" in listed["export"]
    assert f"http://127.0.0.1:{port}/export/events" in listed["events export"]
    assert len({line.index("http://") for line in listed.values()}) == 1  # the addresses in one column


def test_signing_up_again_after_unsubscribing_lifts_the_readers_own_unsubscribe(signup_service,
                                                                               state_dir: Path) -> None:
    from mailer.audience.store import Consent, Incoming
    from mailer.deliver.suppressions import BOUNCE, Suppression, SuppressionList, sync_store
    from tests.web.test_service import token_for

    service, fake = signup_service
    with SubscriberStore.open(state_dir) as store:
        for address in ("ada@example.com", "bob@example.com"):
            store.add(Incoming(address), consent=Consent("2026-01-01", "editor", "added", "editor"))
    for address in ("ada@example.com", "bob@example.com"):
        assert service.post_form(f"/unsubscribe?token={token_for(address)}", "List-Unsubscribe=One-Click")[0] == 200
    with SuppressionList.open(state_dir) as suppressions:  # and SendGrid's own list holds bob's address
        suppressions.record_reported([Suppression("bob@example.com", BOUNCE, reason="550 no such user")])
    for address in ("ada@example.com", "bob@example.com"):
        service.request("POST", "/subscribe", form(address), {**FORM, "X-Forwarded-For": "192.0.2.9"})
    wait_for(lambda: len(fake.requests) == 2)
    links = {body["personalizations"][0]["to"][0]["email"]: link_in(body["content"][0]["value"])
             for body in fake.requests}
    status, _, page = service.post_form(links["ada@example.com"], "")
    assert status == 200 and "You are subscribed" in page and "sending service" not in page
    status, _, page = service.post_form(links["bob@example.com"], "")
    assert status == 200 and "sending service's own list" in page  # said, not hidden
    assert service.reasons("ada@example.com") == []
    assert service.reasons("bob@example.com") == ["bounce (550 no such user)"]
    sync_store(state_dir)  # what the next `mailer subscribers list` or `mailer send` does
    assert reader(state_dir, "ada@example.com")[0].status == "confirmed"
    assert reader(state_dir, "bob@example.com")[0].status == "bounced"  # SendGrid's list is not lifted here


def test_an_uncertain_send_counts_as_sent_and_a_refused_one_does_not(signup_service) -> None:
    service, fake = signup_service
    fake.default = "accept_drop"  # accepted, then the connection dropped: the email may well have left
    service.request("POST", "/subscribe", form("ada@example.com"), {**FORM, "X-Forwarded-For": "192.0.2.1"})
    wait_for(lambda: len(fake.requests) == 1)
    fake.default = "400"  # refused: surely not sent
    service.request("POST", "/subscribe", form("bob@example.com"), {**FORM, "X-Forwarded-For": "192.0.2.1"})
    wait_for(lambda: len(fake.paths) == 2)  # refused: not among the requests taken
    wait_for(lambda: confirmation_state(service, "bob@example.com") == "failed")  # the sender recorded it
    fake.default = "accept"
    for address in ("ada@example.com", "bob@example.com"):
        service.request("POST", "/subscribe", form(address), {**FORM, "X-Forwarded-For": "192.0.2.2"})
    assert sent_once_the_queue_is_done(service, fake) == ["ada@example.com", "bob@example.com"]
    assert len(fake.paths) == 3 + 1  # bob's second, and the marker's: ada's day was kept


def test_no_second_email_within_a_day_after_confirming_unsubscribing_or_forgetting(signup_service,
                                                                                  state_dir: Path) -> None:
    from tests.web.test_service import token_for

    service, fake = signup_service
    service.request("POST", "/subscribe", form("ada@example.com"), {**FORM, "X-Forwarded-For": "192.0.2.1"})
    service.request("POST", "/subscribe", form("bob@example.com"), {**FORM, "X-Forwarded-For": "192.0.2.1"})
    wait_for(lambda: len(fake.requests) == 2)
    links = {body["personalizations"][0]["to"][0]["email"]: link_in(body["content"][0]["value"])
             for body in fake.requests}
    assert "You are subscribed" in service.post_form(links["ada@example.com"], "")[2]
    service.post_form(f"/unsubscribe?token={token_for('ada@example.com')}", "List-Unsubscribe=One-Click")
    with SubscriberStore.open(state_dir) as store:  # `mailer subscribers remove --forget bob@example.com`
        store.forget("bob@example.com")
    for n in range(3):  # anyone, from anywhere
        for address in ("ada@example.com", "BOB@example.com"):
            service.request("POST", "/subscribe", form(address), {**FORM, "X-Forwarded-For": f"192.0.2.{n + 2}"})
    assert sent_once_the_queue_is_done(service, fake) == ["ada@example.com", "bob@example.com"]
    status, _, page = service.post_form(links["bob@example.com"], "")  # the link from before the forget
    assert status == 400 and "no longer valid" in page
    assert reader(state_dir, "bob@example.com")[0] is None


def test_a_mail_servers_words_reach_the_log_without_any_address_whatever_its_case() -> None:
    from mailer.web.signup import scrub

    said = "550 5.1.1 <ADA@EXAMPLE.COM>: Recipient address rejected (Ada@Example.com; see postmaster@mx.example)"
    assert scrub(said, "ada@example.com") == ("550 5.1.1 <<the address>>: Recipient address rejected (<the address>; "
                                             "see <an address>)")


def test_the_per_ip_limit_reads_every_x_forwarded_for_line_of_the_trusted_proxy(workspace: Path, state_dir: Path,
                                                                                  start_sendgrid) -> None:
    fake, url = start_sendgrid()
    enable_signup(workspace, "  per_ip_hourly: 3\n")
    with serving(workspace, state_dir, SENDGRID_API_HOST=url) as service:
        requests = []
        for n in range(6):  # the client's own line varies; the proxy's line, added after it, is the real IP
            payload = json.dumps({"email": f"r{n}@example.com", "consent": True, "stamp": stamp()}).encode()
            requests.append((f"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             f"X-Forwarded-For: 198.51.100.{n + 1}\r\nX-Forwarded-For: 203.0.113.7\r\n"
                             f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload)
        answers = asyncio.run(serve_load.burst(service.port, requests, timeout=30))
        assert {answer.status for answer in answers} == {202}
        assert len(sent_once_the_queue_is_done(service, fake)) == 3


def test_a_body_that_is_not_plainly_the_form_or_json_is_refused_and_nothing_is_sent(signup_service,
                                                                                    state_dir: Path) -> None:
    service, fake = signup_service
    good = form("ada@example.com")
    payload = json.dumps({"email": "ada@example.com", "consent": True, "stamp": stamp()}).encode()
    answers = {
        "undecodable escape": service.request("POST", "/subscribe", form("%FF@example.com").replace(b"%25FF", b"%FF"),
                                              FORM),
        "a field twice": service.request("POST", "/subscribe", good + b"&email=bob%40example.com", FORM),
        "a JSON key twice": service.request("POST", "/subscribe", payload[:-1] + b', "email": "bob@example.com"}',
                                            JSON),
        "text/plain": service.request("POST", "/subscribe", good, {"Content-Type": "text/plain"}),
        "no type": service.request("POST", "/subscribe", good),
        "application/jsonx": service.request("POST", "/subscribe", payload, {"Content-Type": "application/jsonx"}),
        "UTF-16 form": service.request("POST", "/subscribe", good, {"Content-Type": FORM["Content-Type"] +
                                                                    "; charset=utf-16"}),
        "gzip": service.request("POST", "/subscribe", good, {**FORM, "Content-Encoding": "gzip"}),
    }
    assert form("%FF@example.com").count(b"%25FF") == 1  # the test's own encoding, undone above
    statuses = {name: status for name, (status, _, _) in answers.items()}
    assert statuses == {"undecodable escape": 400, "a field twice": 400, "a JSON key twice": 400,
                        **{name: 415 for name in list(answers)[3:]}}
    with SubscriberStore.open(state_dir) as store:
        assert store.counts()["pending"] == 0
    assert sent_once_the_queue_is_done(service, fake) == []


def test_the_name_a_stranger_typed_is_shown_on_the_confirm_page_and_only_the_readers_own_is_kept(
        signup_service, state_dir: Path) -> None:
    service, fake = signup_service
    name = "Visit <evil.example> — claim your prize"
    assert service.request("POST", "/subscribe", form("ada@example.com", first_name="Ada\u202egro.live"),
                           FORM)[0] == 400  # a bidi override: refused
    for address in ("ada@example.com", "bob@example.com", "cy@example.com"):
        service.request("POST", "/subscribe", form(address, first_name=name), {**FORM, "X-Forwarded-For": "192.0.2.1"})
    wait_for(lambda: len(fake.requests) == 3)
    links = {body["personalizations"][0]["to"][0]["email"]: link_in(body["content"][0]["value"])
             for body in fake.requests}
    page = service.request("GET", links["ada@example.com"])[2]
    assert "We will greet you as" in page and 'value="Visit &lt;evil.example&gt; — claim your prize"' in page
    status, _, page = service.post_form(links["ada@example.com"], "first_name=Ada%E2%80%AE")
    assert status == 400 and "cannot go into an email" in page
    assert reader(state_dir, "ada@example.com")[0].status == "pending"
    assert service.post_form(links["ada@example.com"], "first_name=Ada")[0] == 200  # changed by the reader
    assert service.post_form(links["bob@example.com"], "")[0] == 200  # a POST without the field: no name
    assert service.post_form(links["cy@example.com"], urlencode({"first_name": name}))[0] == 200  # kept, seen
    assert [reader(state_dir, a)[0].first_name for a in ("ada@example.com", "bob@example.com", "cy@example.com")] == [
        "Ada", "", name]


def test_a_store_damaged_while_serving_gets_the_short_500_page_and_no_traceback(
        workspace: Path, state_dir: Path, start_sendgrid) -> None:
    fake, url = start_sendgrid()
    enable_signup(workspace)
    with serving(workspace, state_dir, SENDGRID_API_HOST=url) as service:
        service.request("POST", "/subscribe", form("ada@example.com"), FORM)
        wait_for(lambda: fake.requests)
        path = link_in(fake.requests[0]["content"][0]["value"])
        with (state_dir / "subscribers.sqlite3").open("r+b") as file:  # overwritten in place, under the service
            file.write(b"\x8f" * 8192)
        for n in range(2):
            status, _, page = service.request("POST", "/subscribe", form("bob@example.com"),
                                              {**FORM, "X-Forwarded-For": f"192.0.2.{n + 7}"})
            assert status == 500 and "Something went wrong" in page and "sqlite" not in page
        status, _, page = service.post_form(path, "")
        assert status == 500 and "Something went wrong" in page
        time.sleep(0.5)
    # On leaving, `serving` checks the log holds no traceback (Starlette's handler logged one per request, and
    # the sender thread one each round): each fault is one line naming the file.

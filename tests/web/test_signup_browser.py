"""A newcomer signs up in a real browser (Debian's chromium through Playwright) and confirms from the email,
caught by the local SendGrid stand-in; then they are a confirmed reader with a consent record, in the next send."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mailer.audience.store import SubscriberStore
from tests.conftest import ARTIFACTS, SAMPLE_ISSUE
from tests.web.test_service import serving
from tests.web.test_signup import enable_signup, wait_for


@pytest.mark.browser
def test_a_newcomer_signs_up_in_a_browser_confirms_from_the_email_and_is_in_the_next_send(
        workspace: Path, state_dir: Path, start_sendgrid, browser, run_cli) -> None:
    from playwright.sync_api import expect

    fake, url = start_sendgrid()
    enable_signup(workspace)
    with serving(workspace, state_dir, SENDGRID_API_HOST=url) as service:
        base = f"http://127.0.0.1:{service.port}"
        page = browser.new_page(viewport={"width": 900, "height": 900})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        try:
            page.goto(f"{base}/subscribe")
            expect(page.locator("h1")).to_have_text("Subscribe to The NLP Cypher")
            expect(page.locator("input[name=website]")).not_to_be_in_viewport()  # the honeypot: for bots only
            page.fill("input[name=email]", "newcomer@example.com")
            page.fill("input[name=first_name]", "Nia")
            page.check("input[name=consent]")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "signup-form.png"))
            page.wait_for_timeout(2100)  # a person takes longer than 2 s; a bot posting at once is not believed
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Check your inbox")
            wait_for(lambda: fake.requests)
            (body,) = fake.requests
            assert body["personalizations"][0]["to"] == [{"email": "newcomer@example.com"}]
            link = re.search(r"https://\S+/confirm/\S+", body["content"][0]["value"]).group(0)
            page.goto(base + urlsplit(link).path)
            button = page.get_by_role("button", name="Yes, subscribe me")
            expect(button).to_be_visible()
            with SubscriberStore.open(state_dir) as store:
                assert store.get("newcomer@example.com").status == "pending"  # opening the link is not enough
            button.click()
            expect(page.locator("h1")).to_have_text("You are subscribed to The NLP Cypher")
            expect(page.get_by_role("link", name="Read the latest issue")).to_have_attribute(
                "href", "https://newsletter.example.com/2020-12-13/")
            assert all(request.startswith(base) for request in requests)  # no outside resource on any page
        finally:
            page.close()
    with SubscriberStore.open(state_dir) as store:
        reader = store.get("newcomer@example.com")
        (consent,) = store.consents("newcomer@example.com")
    assert (reader.status, reader.source, reader.first_name) == ("confirmed", "form", "Nia")
    assert (consent.form, consent.version) == ("subscribe", "2026-12-01") and "by email" in consent.text
    dry_run = run_cli("send", SAMPLE_ISSUE)  # no --subscribers: the store's confirmed readers
    assert dry_run.exit_code == 0, dry_run.stderr
    assert "newcomer@example.com" in dry_run.stdout
    exported = run_cli("subscribers", "export")  # the consent as the reader gave it, in the editor's export
    (row,) = [row for row in csv.DictReader(io.StringIO(exported.stdout)) if row["email"] == "newcomer@example.com"]
    assert (row["status"], row["source"], row["consent_form"], row["consent_version"]) == (
        "confirmed", "form", "subscribe", "2026-12-01")
    assert row["consent_text"] == consent.text and row["consent_given_at"]

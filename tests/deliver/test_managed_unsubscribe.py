"""`unsubscribe: sendgrid`: SendGrid fills each reader's link, adds the one-click headers and records the click."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_ISSUE, approve
from tests.fake_sendgrid import FakeSendGrid, validate_mail_send
from tests.loopback_smtp import parse

SUBSCRIPTION_TAG = "[sendgrid_unsubscribe_url]"
ASM_TAG = "<%asm_group_unsubscribe_raw_url%>"


def manage(workspace: Path, extra: str = "") -> None:
    settings = workspace / "mailer.yaml"
    text = settings.read_text(encoding="utf-8").replace(
        "unsubscribe_url: https://newsletter.example.com/unsubscribe\n", f"unsubscribe: sendgrid\n{extra}")
    settings.write_text(text, encoding="utf-8")


@pytest.fixture
def managed(workspace: Path, sendgrid: FakeSendGrid, monkeypatch: pytest.MonkeyPatch) -> FakeSendGrid:
    manage(workspace)
    monkeypatch.delenv("MAILER_UNSUBSCRIBE_SECRET")  # SendGrid's links need no secret of ours
    return sendgrid


def test_sendgrid_fills_the_link_and_mailer_adds_no_unsubscribe_header_of_its_own(managed: FakeSendGrid,
                                                                                  run_cli) -> None:
    approve(run_cli)
    result = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert result.exit_code == 0, result.stderr
    test_copy, body = managed.requests
    for request in (test_copy, body):
        assert validate_mail_send(request) == []
        assert request["tracking_settings"] == {"subscription_tracking": {"enable": True,
                                                                          "substitution_tag": SUBSCRIPTION_TAG}}
        text, html = (part["value"] for part in request["content"])
        assert f'href="{SUBSCRIPTION_TAG}"' in html and SUBSCRIPTION_TAG in text
        assert "-unsubscribe_url-" not in html + text and "token=" not in html + text
        assert "List-Unsubscribe" not in request["headers"] and "List-Unsubscribe-Post" not in request["headers"]
        assert request["headers"]["List-Id"] == "The NLP Cypher <the-nlp-cypher.newsletter.example.com>"
        for personalization in request["personalizations"]:
            assert "headers" not in personalization and "-unsubscribe_url-" not in personalization["substitutions"]


def test_an_unsubscribe_group_uses_sendgrids_group_link(workspace: Path, managed: FakeSendGrid, run_cli) -> None:
    settings = workspace / "mailer.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + "unsubscribe_group: 4242\n", encoding="utf-8")
    approve(run_cli)
    (request,) = managed.requests
    assert request["asm"] == {"group_id": 4242} and "tracking_settings" not in request
    assert f'href="{ASM_TAG}"' in request["content"][1]["value"]  # raw: SendGrid matches it as written


def test_check_and_the_dry_run_understand_the_mode(managed: FakeSendGrid, run_cli, state_dir: Path) -> None:
    check = run_cli("check", SAMPLE_ISSUE, "--format", "json")
    codes = [f["code"] for report in json.loads(check.stdout)["reports"] for f in report["findings"]]
    assert "compliance.header" not in codes and "compliance.unsubscribe-link" not in codes
    dry_run = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    assert dry_run.exit_code == 0, dry_run.stderr
    assert f"unsubscribe: managed by SendGrid: it puts each reader's link where {SUBSCRIPTION_TAG}" in dry_run.stdout
    eml = next((state_dir / "outbox" / "2020-12-13" / "eml").iterdir())
    message = parse(eml.read_bytes())
    assert message["List-Unsubscribe"] is None  # SendGrid adds it; the sample does not invent one
    assert SUBSCRIPTION_TAG in message.get_payload()[1].get_content()


def test_the_mode_needs_sendgrid_and_says_so(workspace: Path, managed: FakeSendGrid, run_cli) -> None:
    result = run_cli("send", SAMPLE_ISSUE, "--backend", "smtp", "--test-to", "editor@example.com")
    assert result.exit_code == 2 and "only SendGrid fills in its unsubscribe links" in result.stderr


@pytest.mark.parametrize(("changes", "message"), [
    ([("unsubscribe_url: https://newsletter.example.com/unsubscribe\n", ""), ("backend: sendgrid", "backend: smtp")],
     "unsubscribe_url is missing"),
    ([("backend: sendgrid\n", "backend: sendgrid\nunsubscribe_group: 7\n")], "it needs `unsubscribe: sendgrid`"),
])
def test_settings_that_do_not_fit_together_are_refused(workspace: Path, run_cli, changes: list[tuple[str, str]],
                                                      message: str) -> None:
    settings = workspace / "mailer.yaml"
    text = settings.read_text(encoding="utf-8")
    for change in changes:
        text = text.replace(*change)
    settings.write_text(text, encoding="utf-8")
    result = run_cli("build", SAMPLE_ISSUE)
    assert result.exit_code == 1 and message in result.stderr


def test_without_an_unsubscribe_url_sendgrid_manages_unsubscribes_by_default(workspace: Path, run_cli,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    settings = workspace / "mailer.yaml"
    settings.write_text(settings.read_text(encoding="utf-8").replace(
        "unsubscribe_url: https://newsletter.example.com/unsubscribe\n", ""), encoding="utf-8")
    monkeypatch.delenv("MAILER_UNSUBSCRIBE_SECRET", raising=False)
    dry_run = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    assert dry_run.exit_code == 0 and "unsubscribe: managed by SendGrid" in dry_run.stdout


def test_the_preview_says_who_fills_the_link_instead_of_inventing_one(workspace: Path, managed: FakeSendGrid) -> None:
    from tests.web.test_preview import get, start

    running = start(workspace)
    try:
        status, _, body = get(running, "/issues/2020-12-13/email.html")
    finally:
        running.shutdown()
        running.server_close()
    assert status == 200 and b'href="#unsubscribe-link-filled-in-by-sendgrid"' in body and b"token=" not in body

"""`mailer report` after a live send: the SendGrid stand-in's readers open and click (and so do machines and
link scanners), the events go through `mailer serve` as a running process, and the report says who was a person."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, SAMPLE_ISSUE, approve
from tests.fake_sendgrid import APPLE_PROXY, BROWSER, GATEWAY, EventWebhook, FakeSendGrid, tracked_links
from tests.web.test_service import Running, serving, token_for

ADA, ALAN, LI_LEI, MEIMEI = "ada.lovelace@example.com", "alan.turing@example.com", "li.lei@example.com", \
    "han.meimei@example.org"
HANAKO, LAYLA, JOSE, ZOE = "hanako.yamada@example.net", "layla.haddad@example.org", "jose.garcia@example.com", \
    "zoe.muller@example.net"
NGUYEN, GRACE, SEAN, PRIYA = "n.nguyen@example.com", "grace.hopper@example.net", "sean.obrien@example.com", \
    "priya.sharma@example.org"
NEURIPS = "https://www.topbots.com/neurips-2020-nlp-research-papers/"
DEPIX = "https://github.com/beurtschipper/Depix"
CROSSNER = "https://github.com/zliucr/CrossNER"  # the dataset: its name, its picture's button and more


@pytest.fixture
def events() -> EventWebhook:
    return EventWebhook()


@pytest.fixture
def tracked_workspace(workspace: Path) -> Path:
    with (workspace / "mailer.yaml").open("a", encoding="utf-8") as config:
        config.write("tracking:\n  clicks: true\n  opens: true\n")
    return workspace


@pytest.fixture
def service(tracked_workspace: Path, state_dir: Path, events: EventWebhook) -> Iterator[Running]:
    with serving(tracked_workspace, state_dir, SENDGRID_WEBHOOK_PUBLIC_KEY=events.public_key) as running:
        yield running


@pytest.fixture
def sent(tracked_workspace: Path, sendgrid: FakeSendGrid, run_cli) -> FakeSendGrid:
    approve(run_cli)
    test_copy = list(sendgrid.requests)
    sendgrid.requests.clear()
    result = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes")
    assert result.exit_code == 0, result.stderr
    sendgrid.test_copy = test_copy  # type: ignore[attr-defined]
    return sendgrid


def test_tracking_is_asked_for_as_set_and_left_to_the_account_when_unset(
        workspace: Path, sendgrid: FakeSendGrid, run_cli) -> None:
    approve(run_cli)
    assert "click_tracking" not in sendgrid.requests[-1].get("tracking_settings", {})
    with (workspace / "mailer.yaml").open("a", encoding="utf-8") as config:
        config.write("tracking:\n  clicks: false\n")
    approve(run_cli)
    assert sendgrid.requests[-1]["tracking_settings"]["click_tracking"] == {"enable": False, "enable_text": False}
    assert "open_tracking" not in sendgrid.requests[-1]["tracking_settings"]
    figures = report_json(run_cli, SAMPLE_ISSUE)  # nothing sent live yet
    assert figures["clicks"]["human_unique"] == 0 and figures["clicks"]["links"][1]["card"].startswith("NeurIPS")


def post(service: Running, events: EventWebhook, batch: list[dict]) -> dict:
    body = json.dumps(batch).encode()
    status, _, text = service.request("POST", "/webhooks/sendgrid", body, events.signed(body))
    assert status == 200, text
    return json.loads(text)


def report_json(run_cli, *args: str) -> dict:
    result = run_cli("report", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def clicked(service: Running, events: EventWebhook, sent: FakeSendGrid) -> dict[str, object]:
    """What the stand-in's readers did after the live send, posted through mailer serve: the positions clicked."""
    links = tracked_links(sent, ADA)
    neurips, depix = links.index(NEURIPS), links.index(DEPIX)
    crossner = [index for index, url in enumerate(links) if url == CROSSNER]
    assert len(crossner) >= 2  # the same URL twice: only the position tells which link was clicked
    base = time.time() - 3 * 3600
    readers = [each["to"][0]["email"] for body in sent.requests for each in body["personalizations"]]
    batch = [events.reader_event(sent, email, kind, at=base) for email in readers
             for kind in ("processed", "delivered")]
    opened = [(ADA, False), (ALAN, False), (LI_LEI, False), (ADA, True), (MEIMEI, True), (HANAKO, True)]
    batch += [events.reader_event(sent, email, "open", at=base + 2 if machine else base + 600,
                                  useragent=APPLE_PROXY if machine else BROWSER, sg_machine_open=machine)
              for email, machine in opened]
    batch += [
        events.click(sent, ADA, neurips, at=base + 700),
        events.click(sent, ALAN, neurips, at=base + 800),
        events.click(sent, ALAN, depix, at=base + 900),
        events.click(sent, LI_LEI, crossner[1], at=base + 1000),
        events.click(sent, JOSE, depix, at=base + 1200),  # no open on record: images off, still a reader
        events.click(sent, ZOE, neurips, at=base + 3000, agent=GATEWAY),  # rule: agent
        events.click(sent, NGUYEN, neurips, at=base + 3),  # rule: within seconds of delivery
        *[events.click(sent, GRACE, index, at=base + 5000 + index / 10) for index in range(1, 6)],  # rule: burst
        events.reader_event(sent, SEAN, "spamreport", at=base + 4000),
        events.reader_event(sent, PRIYA, "click", at=base + 4100, url="https://elsewhere.example/", useragent=BROWSER),
    ]
    answer = post(service, events, batch)
    assert answer["new"] == len(batch)
    assert post(service, events, batch)["new"] == 0  # SendGrid's retry of the same batch changes nothing
    # The editor's own test copy: opened and clicked, and never counted.
    test_copy = FakeSendGrid()
    test_copy.requests = sent.test_copy  # type: ignore[attr-defined]
    post(service, events, [events.reader_event(test_copy, "editor@example.com", "open", at=base + 50),
                           events.click(test_copy, "editor@example.com", neurips, at=base + 60)])
    # A reader unsubscribes with their mail client's one-click button, through the service.
    status, _, _ = service.post_form(f"/unsubscribe?token={token_for(MEIMEI)}", "List-Unsubscribe=One-Click")
    assert status == 200
    return {"neurips": neurips, "depix": depix, "crossner": crossner, "readers": readers, "links": links}


def test_the_report_counts_people_per_card_and_takes_scanners_and_machines_out(clicked: dict, run_cli) -> None:
    neurips, depix, crossner, readers = (clicked[key] for key in ("neurips", "depix", "crossner", "readers"))
    figures = report_json(run_cli, SAMPLE_ISSUE)
    assert figures["tracking"] == {"clicks": True, "opens": True}
    assert figures["recipients"] == len(readers) == figures["delivered"]
    assert figures["opens"] == {"human": 4, "machine": 2, "human_rate": pytest.approx(4 / len(readers))}
    assert figures["clicks"]["human_unique"] == 4  # Ada, Alan, Li Lei, José
    assert figures["clicks"]["scanner"] == 7
    assert figures["clicks"]["scanner_by_rule"] == {"agent": 1, "early": 1, "burst": 5}
    by_position = {link["position"]: link for link in figures["clicks"]["links"]}
    assert by_position[neurips]["human_unique"] == 2
    assert by_position[neurips]["card"].startswith("NeurIPS 2020: Key Research Papers in Natural Language")
    assert by_position[neurips]["section"] == "Neural Complications"
    assert by_position[depix]["human_unique"] == 2 and by_position[depix]["card"] == "beurtschipper/Depix"
    assert by_position[crossner[1]]["human_unique"] == 1 and by_position[crossner[0]]["human_unique"] == 0
    assert by_position[crossner[1]]["card"] == "CrossNER"
    cards = {card["card"]: card["human_unique"] for card in figures["clicks"]["cards"]}
    assert cards["CrossNER"] == 1 and cards["beurtschipper/Depix"] == 2
    assert figures["odd"] == {"click_not_in_issue": 1}
    assert figures["complaints"] == 1
    assert figures["complaint_rate"] == pytest.approx(1 / len(readers))
    assert figures["unsubscribes"] == {"mailer serve (one-click)": 1}

    table = run_cli("report", SAMPLE_ISSUE)
    assert table.exit_code == 0, table.stderr
    assert "NeurIPS 2020" in table.stdout and "scanner clicks taken out" in table.stdout
    assert "1 a security gateway's or an HTTP library's user agent" in table.stdout
    # The editor's test copy counts nowhere: not in status either.
    status_json = json.loads(run_cli("status", SAMPLE_ISSUE, "--format", "json").stdout)
    assert status_json["events"]["unique_clicks"] == 4 + 1 + 3  # people and scanners, never the test copy

    trend = report_json(run_cli)
    (row,) = trend["issues"]
    assert row["issue"] == "2020-12-13" and row["recipients"] == len(readers)
    assert row["click_through_rate"] == pytest.approx(4 / len(readers))


@pytest.mark.browser
def test_the_html_page_shows_the_charts_and_the_click_map_offline(clicked: dict, run_cli, browser,
                                                                     tmp_path: Path) -> None:
    page_path = tmp_path / "report.html"
    result = run_cli("report", SAMPLE_ISSUE, "--html", str(page_path))
    assert result.exit_code == 0, result.stderr
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    asked: list[str] = []
    context.on("request", lambda request: asked.append(request.url))
    page = context.new_page()
    try:
        page.goto(page_path.as_uri())
        # Both charts are drawn (SVG in the page), the cards chart naming the cards people clicked.
        assert page.locator("#reach-chart svg").count() == 1
        assert "beurtschipper/Depix" in page.locator("#cards-chart").inner_text()
        assert page.locator("#cards-chart svg").bounding_box()["height"] > 100  # drawn, not an empty box
        assert page.locator("script").count() == 0
        # The click map: the email as sent, every link badged; the NeurIPS card's link with its 2 readers of 4.
        email = page.frame_locator("iframe.clickmap")
        badges = email.locator(".mailer-clickmap-badge")
        assert badges.count() == len(tracked_links_of(clicked))
        neurips = email.locator(f".mailer-clickmap-badge[data-position='{clicked['neurips']}']")
        assert neurips.inner_text() == "2 · 50%"
        assert neurips.is_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-charts.png"))
        # The click map's first cards in the window (an element screenshot of an iframe comes out blank).
        page.evaluate("() => window.scrollTo(0, document.querySelector('iframe.clickmap').offsetTop + 400)")
        page.screenshot(path=str(ARTIFACTS / "report-click-map.png"))
    finally:
        context.close()
    # Nothing but the page itself was asked for: no font, script, image or chart library from the network.
    assert asked == [page_path.as_uri()] or all(url.startswith(("file:", "about:", "data:")) for url in asked)


def tracked_links_of(clicked: dict) -> list[str]:
    return clicked["links"]  # type: ignore[return-value]


EXPORT_TOKEN = "export-token-for-tests-0123456789abcdef"


def test_events_received_by_a_mailer_serve_elsewhere_are_copied_once(
        tracked_workspace: Path, sent: FakeSendGrid, events: EventWebhook, tmp_path: Path, run_cli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    links = tracked_links(sent, ADA)
    base = time.time() - 3600
    with serving(tracked_workspace, tmp_path / "remote-state", SENDGRID_WEBHOOK_PUBLIC_KEY=events.public_key,
                 MAILER_EXPORT_TOKEN=EXPORT_TOKEN) as remote:
        post(remote, events, [events.reader_event(sent, ADA, "delivered", at=base),
                              events.click(sent, ADA, links.index(DEPIX), at=base + 600)])
        monkeypatch.setenv("MAILER_SERVE_URL", f"http://127.0.0.1:{remote.port}")
        monkeypatch.setenv("MAILER_EXPORT_TOKEN", EXPORT_TOKEN)
        first = run_cli("report", SAMPLE_ISSUE, "--format", "json")
        assert first.exit_code == 0, first.stderr
        assert "2 new event(s) from the mailer serve" in first.stderr
        assert json.loads(first.stdout)["clicks"]["human_unique"] == 1
        post(remote, events, [events.click(sent, ALAN, links.index(DEPIX), at=base + 700)])
        second = run_cli("report", SAMPLE_ISSUE, "--format", "json")
        assert "1 new event(s)" in second.stderr  # only what is new is copied
        assert json.loads(second.stdout)["clicks"]["human_unique"] == 2
        # A wrong token: a warning, and the report of what was copied before.
        monkeypatch.setenv("MAILER_EXPORT_TOKEN", "y" * 40)
        third = run_cli("report", SAMPLE_ISSUE, "--format", "json")
        assert third.exit_code == 0 and "answered 401 to /export/events" in third.stderr
        assert "y" * 40 not in third.stdout + third.stderr
        assert json.loads(third.stdout)["clicks"]["human_unique"] == 2
        assert remote.request("GET", "/export/events?after=0")[0] == 401
        bad = {"Authorization": f"Bearer {EXPORT_TOKEN}"}
        for query in ("after=-1", "after=x", "limit=0", "limit=10001", "after=1e3", "limit=" + "9" * 5000):
            assert remote.request("GET", f"/export/events?{query}", headers=bad)[0] == 400, query

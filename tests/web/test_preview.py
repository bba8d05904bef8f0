"""`mailer preview`: a real server on 127.0.0.1, driven by Debian's chromium and by plain HTTP requests.

Screenshots are kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import html
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.web.preview import PreviewServer, create_server, sample_reader
from tests.conftest import ARTIFACTS, MINIMAL_ISSUE, REPO, write

SUBJECT = "The NLP Cypher | 12.13.20"
LIVE_TIMEOUT_MS = 2000  # "within about a second of saving"; 2 s leaves room for a slow test machine


def start(workspace: Path, **options) -> PreviewServer:
    server = create_server(workspace, port=0, **options)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def server(workspace: Path) -> Iterator[PreviewServer]:
    running = start(workspace)
    yield running
    running.shutdown()
    running.server_close()


def get(server: PreviewServer, target: str, *, host: str | None = None) -> tuple[int, str, bytes]:
    """One raw request: the target is sent exactly as given, never normalised by a client library."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", host or f"127.0.0.1:{server.port}")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, response.getheader("Content-Type") or "", body




@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    yield page
    page.close()


def shot(page, name: str, **options) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), **options)


# --- in the browser ----------------------------------------------------------------------------


@pytest.mark.browser
def test_index_lists_the_issues_newest_first(server, page, workspace: Path) -> None:
    from playwright.sync_api import expect

    write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE)
    page.goto(server.url)
    rows = page.locator("table.issues tbody tr")
    expect(rows).to_have_count(3)
    assert rows.locator(".date").all_inner_texts() == ["2026-11-29", "2020-12-13", "2020-12-13"]
    subjects = rows.locator("a.subject").all_inner_texts()
    assert subjects == ["Weekly digest #1", SUBJECT, "The NLP Cypher 中文版 | 12.13.20 🔥"]
    assert rows.locator(".badge").all_inner_texts() == ["Builds"] * 3
    shot(page, "preview-index.png")
    page.locator("a.subject", has_text=SUBJECT).click()
    expect(page.locator("#subject")).to_have_text(SUBJECT)


@pytest.mark.browser
def test_index_shows_drafts_with_their_error_count_and_why(server, page, workspace: Path, run_cli) -> None:
    from datetime import date

    from playwright.sync_api import expect

    from mailer.author.skeleton import next_sunday

    assert run_cli("new").exit_code == 0  # next Sunday's draft, TODOs and all
    sunday = next_sunday(date.today()).isoformat()
    write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE.replace("Hello -first_name-,", "Hello -frist_name-,"))
    page.goto(server.url)
    rows = page.locator("table.issues tbody tr")
    expect(rows).to_have_count(4)
    draft = page.locator(f'tr[data-slug="{sunday}"]')
    expect(draft.locator(".badge")).to_have_text(["Draft", "21 errors"])
    expect(draft.locator(".first-problem")).to_contain_text(f"dated {sunday}, after today, and not sent")
    expect(draft.locator(".first-problem")).to_contain_text("unfinished copy: 'TODO'")
    due = page.locator('tr[data-slug="2026-11-29"]')  # its date has come, but a check error keeps it a draft
    expect(due.locator(".badge")).to_have_text(["Draft", "1 error"])
    expect(due.locator(".first-problem")).to_contain_text("-frist_name-")
    for finished in ("2020-12-13", "2020-12-13-zh"):
        expect(page.locator(f'tr[data-slug="{finished}"] .badge')).to_have_text(["Builds"])
    shot(page, "preview-index-drafts.png")


@pytest.mark.browser
def test_issue_page_shows_the_email_as_readers_see_it(server, page) -> None:
    from playwright.sync_api import expect

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{server.url}preview/2020-12-13")

    # The headers a reader sees, with the sample reader's fields filled.
    expect(page.locator("#subject")).to_have_text(SUBJECT)
    envelope = page.locator(".envelope").inner_text()
    assert "The NLP Cypher <newsletter@example.com>" in envelope
    assert "Ada <ada@example.com>" in envelope
    assert "GPT-3 wins at NeurIPS" in page.locator("#preheader").inner_text()
    size = page.locator(".size").inner_text()
    assert re.search(r"\d+\.\d KB HTML part, as sent", size) and "below Gmail's 102 KB clipping limit" in size
    assert page.locator(".checks li.error").count() == 0

    frames = {name: page.frame_locator(f"#frame-{name}") for name in ("desktop", "phone", "dark")}
    for frame in frames.values():
        expect(frame.locator("h1")).to_have_text("The NLP Cypher")
        expect(frame.locator("text=Hey Ada, welcome back!")).to_be_visible()
    widths = {name: frame.locator("html").evaluate("e => [e.clientWidth, e.scrollWidth]")
              for name, frame in frames.items()}
    assert widths["desktop"][0] >= 600
    # The phone frames are 375 px wide and nothing in the email scrolls sideways.
    for name in ("phone", "dark"):
        client, scroll = widths[name]
        assert client == 375 and scroll <= 375, (name, widths[name])

    # Dark mode: the email's own dark colours, not the light ones.
    def card_background(name: str) -> str:
        return frames[name].locator("div.mailer-card").first.evaluate("e => getComputedStyle(e).backgroundColor")

    assert card_background("phone") == "rgb(255, 255, 255)"
    assert card_background("dark") == "rgb(22, 27, 34)"

    # The plain-text part, filled like the HTML.
    text = page.locator(".text-part pre").inner_text()
    assert "Hey Ada, welcome back!" in text
    assert "Unsubscribe: https://newsletter.example.com/unsubscribe?token=preview" in text

    # Every image came from this server: nothing left the machine.
    for name in frames:
        loaded = frames[name].locator("img").evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
        assert loaded and all(loaded)
    assert requests and all(url.startswith(server.url) for url in requests), requests
    shot(page, "preview-issue.png")


@pytest.mark.browser
def test_saving_the_issue_updates_the_open_page(server, page, workspace: Path) -> None:
    from playwright.sync_api import expect

    page.goto(f"{server.url}preview/2020-12-13")
    phone = page.frame_locator("#frame-phone")
    expect(phone.locator("h2").first).to_have_text("Neural Complications")
    page.evaluate("window.notReloaded = true")
    phone.locator("html").evaluate("e => e.ownerDocument.defaultView.scrollTo(0, 600)")

    issue = workspace / "issues" / "2020-12-13.yaml"
    issue.write_text(issue.read_text(encoding="utf-8").replace(SUBJECT, "Fresh subject").replace(
        "heading: Neural Complications", "heading: Neural Surprises"), encoding="utf-8")

    expect(page.locator("#subject")).to_have_text("Fresh subject", timeout=LIVE_TIMEOUT_MS)
    expect(phone.locator("h2").first).to_have_text("Neural Surprises", timeout=LIVE_TIMEOUT_MS)
    expect(page.frame_locator("#frame-desktop").locator("h2").first).to_have_text("Neural Surprises")
    # Updated in place: no full reload, and the reader's place in the phone frame is kept.
    assert page.evaluate("window.notReloaded") is True
    page.wait_for_function("() => document.querySelector('#frame-phone').contentWindow.scrollY === 600",
                           timeout=LIVE_TIMEOUT_MS)


@pytest.mark.browser
def test_saving_a_layout_or_the_settings_updates_the_open_page(server, page, workspace: Path) -> None:
    from playwright.sync_api import expect

    page.goto(f"{server.url}preview/2020-12-13")
    desktop = page.frame_locator("#frame-desktop")
    expect(desktop.locator(".mailer-header a")).to_have_text("View in browser")

    strings = workspace / "layouts" / "strings.j2"
    strings.write_text(strings.read_text(encoding="utf-8").replace(
        '"view_in_browser": "View in browser"', '"view_in_browser": "Read it online"'), encoding="utf-8")
    expect(desktop.locator(".mailer-header a")).to_have_text("Read it online", timeout=LIVE_TIMEOUT_MS)

    settings = workspace / "mailer.yaml"
    settings.write_text(settings.read_text(encoding="utf-8").replace(
        "from:\n  name: The NLP Cypher", "from:\n  name: Cypher Weekly"), encoding="utf-8")
    expect(page.locator(".envelope")).to_contain_text("Cypher Weekly <newsletter@example.com>",
                                                      timeout=LIVE_TIMEOUT_MS)


@pytest.mark.browser
def test_a_broken_issue_is_shown_in_the_page_which_recovers_when_fixed(server, page, workspace: Path) -> None:
    from playwright.sync_api import expect

    page.goto(f"{server.url}preview/2020-12-13")
    problems = page.locator("#problems")
    expect(problems).to_be_hidden()
    issue = workspace / "issues" / "2020-12-13.yaml"
    good = issue.read_text(encoding="utf-8")
    issue.write_text(good.replace(f'subject: "{SUBJECT}"', f'subject: "{SUBJECT}'), encoding="utf-8")

    expect(problems).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(problems.locator("h2")).to_have_text("issues/2020-12-13.yaml does not build: 1 problem")
    expect(problems.locator(".where")).to_have_text(re.compile(r"^issues/2020-12-13\.yaml:\d+:\d+$"))
    expect(problems.locator(".message")).to_contain_text("invalid YAML")
    expect(problems.locator(".hint")).to_contain_text("quote values")
    # The last good version stays visible, dimmed, so the editor keeps their bearings.
    expect(page.locator("#frames")).to_have_class(re.compile(r"\bstale\b"))
    expect(page.frame_locator("#frame-phone").locator("h1")).to_have_text("The NLP Cypher")
    shot(page, "preview-problem.png")

    issue.write_text(good.replace("date: 2020-12-13", "date: 2020-13-13"), encoding="utf-8")
    expect(problems.locator(".where")).to_have_text("issues/2020-12-13.yaml:3:7", timeout=LIVE_TIMEOUT_MS)
    expect(problems.locator(".message")).to_contain_text("not a date")

    issue.write_text(good, encoding="utf-8")
    expect(problems).to_be_hidden(timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#frames")).not_to_have_class(re.compile(r"\bstale\b"))
    expect(page.locator("#subject")).to_have_text(SUBJECT)


@pytest.mark.browser
def test_an_issue_broken_from_the_start_appears_once_fixed(page, workspace: Path) -> None:
    from playwright.sync_api import expect

    issue = write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE.replace("heading: News", "heding: News"))
    running = start(workspace)
    try:
        page.goto(f"{running.url}preview/2026-11-29")
        expect(page.locator("#problems h2")).to_have_text("issues/2026-11-29.yaml does not build: 2 problems")
        expect(page.locator("#problems .where")).to_have_text(["issues/2026-11-29.yaml:5:5"] * 2)
        expect(page.locator("#problems li").filter(has_text="unknown key")).to_contain_text(
            "Hint: did you mean 'heading'?")
        expect(page.locator("#frames iframe")).to_have_count(0)
        issue.write_text(MINIMAL_ISSUE, encoding="utf-8")
        expect(page.frame_locator("#frame-phone").locator("h2")).to_have_text("News", timeout=LIVE_TIMEOUT_MS)
        expect(page.locator("#problems")).to_be_hidden()
        expect(page.locator("#subject")).to_have_text("Weekly digest #1")
    finally:
        running.shutdown()
        running.server_close()


@pytest.mark.browser
def test_the_index_follows_new_and_broken_issues(server, page, workspace: Path) -> None:
    from playwright.sync_api import expect

    page.goto(server.url)
    rows = page.locator("table.issues tbody tr")
    expect(rows).to_have_count(2)
    write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE.replace("date: 2026-11-29", "date: soon"))
    expect(rows).to_have_count(3, timeout=LIVE_TIMEOUT_MS)
    broken = page.locator("tr[data-slug='2026-11-29']")
    expect(broken.locator(".badge")).to_have_text("1 problem")
    expect(broken.locator(".first-problem")).to_contain_text("'soon' is not a date")


# --- over plain HTTP --------------------------------------------------------------------------


def test_a_layout_error_names_the_layout_file_and_line(server, workspace: Path) -> None:
    hero = workspace / "layouts" / "partials" / "hero.mjml.j2"
    hero.write_text(hero.read_text().replace("{{ issue.intro | markdown }}", "{{ issue.intro_text }}"))
    status, _, body = get(server, "/preview/2020-12-13")
    assert status == 200
    html = body.decode()
    line = next(n for n, text in enumerate(hero.read_text().splitlines(), 1) if "intro_text" in text)
    assert f'<code class="where">layouts/partials/hero.mjml.j2:{line}</code>' in html
    assert "has no attribute &#39;intro_text&#39;" in html


@pytest.mark.parametrize("target", [
    "/../pyproject.toml",
    "/../../pyproject.toml",
    "/%2e%2e/pyproject.toml",
    "/%2E%2E/%2E%2E/pyproject.toml",
    "/%252e%252e/pyproject.toml",
    "/..%2fpyproject.toml",
    "/..%5cpyproject.toml",
    "/issues/2020-12-13/../../mailer.yaml",
    "/issues/2020-12-13/%2e%2e/%2e%2e/mailer.yaml",
    "/issues/2020-12-13/img/..%2f..%2f2020-12-13.yaml",
    "/issues/2020-12-13/img/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
    "/assets/../../pyproject.toml",
    "/assets/%2e%2e%2f%2e%2e%2fpreview.py",
    "/preview/..%2f..%2fpyproject.toml",
    "//etc/passwd",
    "/etc/passwd",
    "/%00/etc/passwd",
    "http://127.0.0.1/../pyproject.toml",
    "/pyproject.toml",
    "/mailer.yaml",
    "/.env",
    "/layouts/email.mjml.j2",
    "/issues/2020-12-13.yaml",
    "/issues/2020-12-13/2020-12-13.yaml",
    "/issues/2020-12-13/email.mjml",
    "/issues/2020-12-13/img/",
    "/issues/2020-12-13/img/unused.png",
    "/issues/2020-12-13/img/hero-storm.png/",
    "/issues/no-such-issue/",
    "/assets/",
    "/api/version?issue=../mailer",
])
def test_only_the_preview_is_served(workspace: Path, tmp_path: Path, target: str) -> None:
    write(tmp_path / "pyproject.toml", "[project]\nname = 'canary-outside-the-workspace'\n")
    write(workspace / ".env", "SENDGRID_API_KEY=SG.canary-in-the-workspace\n")
    (workspace / "issues" / "img" / "unused.png").write_bytes((REPO / "issues/img/depix.png").read_bytes())
    running = start(workspace)
    try:
        status, _, body = get(running, target)
    finally:
        running.shutdown()
        running.server_close()
    assert status == 404
    for canary in (b"canary", b"web_base_url", b"[project]", b"root:", b"<mjml", b"\x89PNG", b"subject:"):
        assert canary not in body


def test_what_the_preview_does_serve(server) -> None:
    assert get(server, "/issues/2020-12-13/img/hero-storm.png")[:2] == (200, "image/png")
    assert get(server, "/issues/2020-12-13/img/hero-storm.png")[2] == (REPO / "issues/img/hero-storm.png").read_bytes()
    assert get(server, "/assets/preview.js")[:2] == (200, "text/javascript")
    status, kind, body = get(server, "/api/version?issue=2020-12-13")
    assert (status, kind) == (200, "application/json") and b'"version"' in body


def test_email_and_web_version_point_at_the_preview_not_the_internet(server) -> None:
    _, _, body = get(server, "/issues/2020-12-13/email.html")
    email = body.decode()
    assert "https://newsletter.example.com/2020-12-13/" not in email
    sources = re.findall(r'<img [^>]*src="([^"]+)"', email)
    assert sources and all(src.startswith("/issues/2020-12-13/img/") for src in sources)
    assert 'href="/issues/2020-12-13/"' in email  # "view in browser" opens the web version here
    assert "Hey Ada, welcome back!" in email and "-first_name-" not in email

    status, _, body = get(server, "/issues/2020-12-13/")
    web = body.decode()
    assert status == 200 and "Hey there, welcome back!" in web
    assert "Ada" not in web and "Unsubscribe" not in web and "unsubscribe?token" not in web
    assert get(server, "/issues/2020-12-13")[0] == 301
    assert get(server, "/issues/")[0] == 302  # the web version's "All issues" link: the index


def test_only_requests_for_this_machine_are_answered(server) -> None:
    # A page on another site that rebinds its name to 127.0.0.1 sends its own name as Host.
    status, _, body = get(server, "/preview/2020-12-13", host=f"attacker.example:{server.port}")
    assert status == 421 and b"Ada" not in body
    assert get(server, "/", host=f"localhost:{server.port}")[0] == 200


def test_secrets_from_the_environment_never_appear(workspace: Path, monkeypatch) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.canary-key-7f3a")
    monkeypatch.setenv("MAILER_SMTP_URL", "smtp://user:canary-password@mail.example.com")
    running = start(workspace)
    try:
        targets = ["/", "/preview/2020-12-13", "/preview/2020-12-13-zh", "/issues/2020-12-13/email.html",
                   "/issues/2020-12-13/email.html?view=dark", "/issues/2020-12-13/", "/api/version",
                   "/assets/preview.js", "/assets/preview.css", "/no-such-page"]
        bodies = b"".join(get(running, target)[2] for target in targets)
    finally:
        running.shutdown()
        running.server_close()
    assert b"canary" not in bodies


def test_preview_as_a_subscriber_from_the_csv(workspace: Path) -> None:
    csv_path = write(workspace / "readers.csv", "\ufeffemail,first_name,last_name,status\n"
                     "gone@example.com,Gone,,unsubscribed\n"
                     "bob@example.com,<b>Bob & Co</b>,Smith,subscribed\n")
    running = start(workspace, reader=sample_reader(csv_path, "BOB@example.com"))
    try:
        email = get(running, "/issues/2020-12-13/email.html")[2].decode()
        page = get(running, "/preview/2020-12-13")[2].decode()
    finally:
        running.shutdown()
        running.server_close()
    assert "Hey &lt;b&gt;Bob &amp; Co&lt;/b&gt;, welcome back!" in email and "<b>Bob" not in email
    assert "&lt;b&gt;Bob &amp; Co&lt;/b&gt; Smith &lt;bob@example.com&gt;" in page
    assert "readers.csv:3" in page
    # Without --as: the file's first reader who is still subscribed.
    assert sample_reader(csv_path).email == "bob@example.com"


def test_the_page_shows_mailer_checks_findings(server, workspace: Path) -> None:
    page = get(server, "/preview/2020-12-13")[2].decode()
    assert '<li class="error">' not in page and "Layout markup" in page
    issue = workspace / "issues" / "2020-12-13.yaml"
    issue.write_text(issue.read_text(encoding="utf-8").replace("Hey -first_name-", "Hey -frist_name-"))
    page = get(server, "/preview/2020-12-13")[2].decode()
    assert re.search(r'<li class="error">.*unknown placeholder -frist_name-: it would be sent as written', page)
    quote = "(&#39;|&#x27;|')"  # as the page escapes it
    assert re.search(rf"issues/2020-12-13.yaml:\d+: intro — did you mean {quote}-first_name-{quote}\?", page)
    # The workspace's settings are checked too: the sample's example.com addresses are a warning.
    assert re.search(r'<li class="warn">.*example addresses in the settings', page)


def test_a_card_without_a_title_shows_its_url_and_the_hint_to_run_mailer_cards(server, workspace: Path) -> None:
    issue = workspace / "issues" / "2020-12-13.yaml"
    text = issue.read_text(encoding="utf-8")
    issue.write_text(text.replace('        title: "NeurIPS 2020: Key Research Papers in Natural Language Processing '
                                  '(NLP) & Conversational AI"\n', ""), encoding="utf-8")
    assert issue.read_text(encoding="utf-8") != text
    page = get(server, "/preview/2020-12-13")[2].decode()
    assert re.search(r'<li class="error">.*this card has no title', page)
    assert "run `mailer cards issues/2020-12-13.yaml` to fill titles and descriptions from the pages" in \
        html.unescape(page)
    email = get(server, "/issues/2020-12-13/email.html")[2].decode()
    assert ">https://www.topbots.com/neurips-2020-nlp-research-papers/</a>" in email  # the URL stands in


def test_an_issue_outside_issues_folder_can_be_previewed(workspace: Path) -> None:
    draft = write(workspace / "drafts" / "next-week.yaml", MINIMAL_ISSUE)
    running = start(workspace, extra_issues=(draft,))
    try:
        index = get(running, "/")[2].decode()
        status, _, body = get(running, "/preview/next-week")
    finally:
        running.shutdown()
        running.server_close()
    assert "Weekly digest #1" in index and status == 200 and b"Weekly digest #1" in body


# --- the command -------------------------------------------------------------------------------


def test_port_taken_is_a_clear_error(workspace: Path, run_cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("preview", "--port", str(port))
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "hint:" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_subscriber_not_in_the_file_is_a_clear_error(workspace: Path, run_cli) -> None:
    result = run_cli("preview", "--subscribers", "subscribers.example.csv", "--as", "nobody@example.com")
    assert result.exit_code == 1
    assert "subscribers.example.csv: no subscribed reader with the address 'nobody@example.com'" in result.stderr
    assert "ada.lovelace@example.com" in result.stderr  # the hint shows addresses that are there
    assert run_cli("preview", "--as", "ada.lovelace@example.com").exit_code == 2


def test_the_command_serves_until_ctrl_c(workspace: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "mailer", "preview", "issues/2020-12-13.yaml", "--port", "0"],
                               cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_line = process.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:(\d+)/preview/2020-12-13)$", first_line.strip())
        assert match, first_line
        assert first_line.startswith("Previewing 2 issues from issues/ at ")
        connection = http.client.HTTPConnection("127.0.0.1", int(match.group(2)), timeout=10)
        connection.request("GET", "/preview/2020-12-13")
        assert connection.getresponse().status == 200
        connection.close()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Preview stopped." in out and "Traceback" not in err
    assert "warning" not in err  # 127.0.0.1: nobody else can see it


def test_widening_the_host_warns_who_can_see_the_preview(workspace: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "mailer", "preview", "--host", "0.0.0.0", "--port", "0"],
                               cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_line = process.stdout.readline()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert re.search(r"at http://127\.0\.0\.1:\d+/$", first_line.strip()), first_line
    assert ("warning: listening on 0.0.0.0: other machines that can reach this one can see the preview, "
            "including the sample reader Ada <ada@example.com>") in err

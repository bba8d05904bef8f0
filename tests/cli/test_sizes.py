"""One size everywhere: build, check, preview and send show the HTML part as sent, which is what Gmail clips."""

from __future__ import annotations

import json
import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

from mailer.config import load_config
from mailer.deliver.message import email_size, kilobytes
from tests.conftest import SAMPLE_ISSUE


def html_part_on_the_wire(eml: Path) -> int:
    """The bytes of the HTML part's body in a written message, each line ended by CRLF as SMTP sends it."""
    message = BytesParser(policy=policy.SMTP).parsebytes(eml.read_bytes())
    html = message.get_body(("html",))
    body = html.get_payload()
    return len(body.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"))


def test_build_check_preview_and_send_show_the_one_size_of_the_html_part_as_sent(
        workspace: Path, run_cli, state_dir: Path) -> None:
    from mailer.compose.build import build_issue
    from tests.web.test_preview import get, start

    sent = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    assert sent.exit_code == 0, sent.stderr
    eml = next((state_dir / "outbox" / "2020-12-13" / "eml").iterdir())
    on_the_wire = html_part_on_the_wire(eml)
    config = load_config(workspace)
    size = email_size(build_issue(workspace / SAMPLE_ISSUE, config), config)
    # The sample reader's name and token differ from the first subscriber's by a few bytes at most.
    assert abs(size.html_part - on_the_wire) < 64
    assert size.html_part > 30 * 1024
    shown = kilobytes(size.html_part)

    assert f"html:    {shown} (" in sent.stdout
    built = run_cli("build", SAMPLE_ISSUE)
    assert f"html:      {shown} (" in built.stdout
    html_file = (workspace / "build" / "2020-12-13" / "email.html").read_bytes()
    assert len(html_file) < size.html_part  # the file has LF endings: not the number shown
    checked = run_cli("check", SAMPLE_ISSUE)
    assert f"size ({shown} of HTML as sent)" in checked.stdout
    facts = json.loads(run_cli("check", SAMPLE_ISSUE, "--format", "json").stdout)["reports"][0]["facts"]
    assert facts["html_part_bytes"] == size.html_part

    server = start(workspace)
    try:
        page = get(server, "/preview/2020-12-13")[2].decode()
        listing = get(server, "/")[2].decode()
    finally:
        server.shutdown()
    assert re.search(rf'<strong id="html-size">{re.escape(shown)}</strong>', page)
    assert f"the HTML part as sent: {shown} (" in page
    assert shown in listing


def test_the_confirmation_of_a_live_send_shows_the_same_size(workspace: Path, sendgrid, run_cli) -> None:
    from mailer.compose.build import build_issue

    config = load_config(workspace)
    size = email_size(build_issue(workspace / SAMPLE_ISSUE, config), config)
    asked = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--force")
    assert f"  html: {size.describe()}" in asked.stderr

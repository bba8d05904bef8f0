"""The sample issue as a reader's server receives it, scored by SpamAssassin (Debian's, local rules only).

`make test` installs spamassassin with the browser's Debian packages. Network tests (DNS blocklists,
Razor, Pyzor) are off: they need the internet, and what they judge is the sending domain, not the email.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_ISSUE, write_subscribers
from tests.loopback_smtp import Recorder

SPAMASSASSIN = "/usr/bin/spamassassin"


def score(message: bytes) -> tuple[float, list[str]]:
    """SpamAssassin's score for a message and the names of the rules that fired."""
    report = subprocess.run([SPAMASSASSIN, "-L", "-t"], input=message, capture_output=True, timeout=120,
                            check=True).stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)[^\n]*\n?((?:\s+.*\n)*)", report, re.M)
    assert status, report[:2000]
    rules = re.search(r"tests=([^\n]*(?:\n\s+[^\n]*)*)", status.group(0))
    names = re.findall(r"[A-Z][A-Z0-9_]+", rules.group(1)) if rules else []
    return float(status.group(1)), names


@pytest.mark.parametrize(("issue", "most"), [
    (SAMPLE_ISSUE, 0.1),
    # SUBJ_ALL_CAPS (0.5) fires on "NLP 密码 | 12.13.20 🔥": the rule reads Chinese, which has no
    # lower case, as capitals. It is the subject the editor wrote, so it is allowed here, and only it.
    ("issues/2020-12-13-zh.yaml", 0.6),
])
def test_the_sample_as_received_scores_at_most_a_tenth(workspace: Path, smtp_server: Recorder, run_cli,
                                                       issue: str, most: float) -> None:
    csv = str(write_subscribers(workspace, ["ada@example.com,Ada,Lovelace,subscribed,"]))
    sent = run_cli("send", issue, "--backend", "smtp", "--subscribers", csv, "--live", "--yes", "--force")
    assert sent.exit_code == 0, sent.stderr
    ((_, _, data, _),) = smtp_server.messages
    points, rules = score(data)
    assert "HTML_FONT_LOW_CONTRAST" not in rules  # the hidden preheader is hidden by size, not colour
    assert points <= most, rules

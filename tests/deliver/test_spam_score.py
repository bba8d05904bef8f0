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


@pytest.mark.parametrize("issue", [SAMPLE_ISSUE, "issues/2020-12-13-zh.yaml"])
def test_the_sample_as_received_scores_at_most_a_tenth(workspace: Path, smtp_server: Recorder, run_cli,
                                                       issue: str) -> None:
    csv = str(write_subscribers(workspace, ["ada@example.com,Ada,Lovelace,subscribed,"]))
    sent = run_cli("send", issue, "--backend", "smtp", "--subscribers", csv, "--live", "--yes", "--force")
    assert sent.exit_code == 0, sent.stderr
    ((_, _, data, _),) = smtp_server.messages
    points, rules = score(data)
    assert "HTML_FONT_LOW_CONTRAST" not in rules  # the hidden preheader is hidden by size, not colour
    assert "SUBJ_ALL_CAPS" not in rules  # mailer check warns of it (text.subject-all-caps)
    assert points <= 0.1, rules


# Subjects on both sides of each of SpamAssassin's conditions (one word, under 10 bytes, a reply prefix,
# no Latin letter, one lower-case letter), as mailer writes them into a message (RFC 2047 UTF-8 words).
SUBJECTS = ["NLP 密码 | 12.13.20 🔥", "The NLP Cypher 中文版 | 12.13.20 🔥", "BIG NEWS: GPT-3 WINS",
            "Re: FREE NLP NEWS", "NLP密码周报第三期", "密码 周报 第三期 | 12.13.20", "NLP 周报", "AI 周报",
            "GPT-3 wins BIG"]


def test_the_subject_check_fires_exactly_where_spamassassin_does() -> None:
    from email.message import EmailMessage

    from mailer.checks.textcheck import subject_capitals
    from mailer.deliver.message import POLICY

    for subject in SUBJECTS:
        message = EmailMessage(policy=POLICY)
        message["From"] = "The NLP Cypher <newsletter@example.com>"
        message["To"] = "ada@example.com"
        message["Subject"] = subject
        message["Date"] = "Sun, 13 Dec 2020 08:00:00 +0000"
        message["Message-ID"] = "<1@example.com>"
        message.set_content("A short note about this week's papers, with nothing else in it.\n")
        _, rules = score(message.as_bytes())
        assert ("SUBJ_ALL_CAPS" in rules) == (subject_capitals(subject) is not None), subject

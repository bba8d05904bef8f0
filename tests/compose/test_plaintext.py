"""The plain-text part: exact output matters here, so one golden file, plus the rules it follows."""

from __future__ import annotations

import os
from pathlib import Path

from mailer.compose.issue import load_issue
from mailer.compose.plaintext import TextWriter, display_width, render_text
from mailer.config import load_config
from tests.conftest import write

GOLDEN = Path(__file__).parent / "golden" / "small-issue.txt"

SMALL_ISSUE = """\
subject: "Small digest"
title: "Small Digest"
date: 2026-11-29
number: 7
preheader: "A short one"
intro: |
  Hey -first_name-, a *short* issue this week with a [first link](https://example.com/one) and a
  sentence long enough that it has to be wrapped at seventy-two columns by the writer.
sections:
  - heading: "Reading"
    body: |
      - a bullet with [a link](https://example.com/two)
      - another bullet

      > A quoted line.
    list:
      - title: "Talk"
        url: https://example.com/talk
      - title: "Tutorial"
        links:
          - {label: video, url: "https://example.com/video"}
          - {label: slides, url: "https://example.com/one"}
    cards:
      - url: https://www.example.org/card
        title: "A card"
        description: "What the card is about."
    repos:
      - name: owner/repo
        url: https://github.com/owner/repo
        quote: "Does one thing well."
  - heading: "数据集 😎"
    dataset:
      name: CrossNER
      url: https://github.com/zliucr/CrossNER
      description: "命名实体识别数据集，涵盖五个领域。"
footer:
  signoff: "See you next Sunday."
  social:
    - {name: Twitter, url: "https://twitter.com/example"}
"""


def small_text(workspace: Path) -> str:
    issue = load_issue(write(workspace / "issues" / "small.yaml", SMALL_ISSUE))
    return render_text(issue, load_config(workspace))


def test_small_issue_matches_golden_file(workspace: Path) -> None:
    text = small_text(workspace)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_links_are_numbered_once_and_listed(workspace: Path) -> None:
    text = small_text(workspace)
    assert "first link [1]" in text
    assert "slides [1]" in text  # the same URL keeps its number
    links = text.split("\nLinks\n-----\n", 1)[1]
    assert links.startswith("[1] https://example.com/one\n[2] https://example.com/two\n")


def test_lines_wrap_at_72_columns_without_breaking_urls(workspace: Path) -> None:
    for line in small_text(workspace).splitlines():
        assert display_width(line) <= 72 or "://" in line or " " not in line.strip()


def test_wrap_never_splits_placeholders_or_cjk() -> None:
    writer = TextWriter(width=20)
    assert writer.wrap("Hello -first_name-, this is a long line") == "Hello -first_name-,\nthis is a long line"
    cjk = "命名实体识别数据集涵盖五个不同的领域政治自然科学音乐文学和人工智能"
    assert writer.wrap(cjk) == cjk


def test_underline_counts_wide_characters() -> None:
    assert TextWriter().underline("数据集 😎") == "=" * 9

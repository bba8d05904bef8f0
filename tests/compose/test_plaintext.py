"""The plain-text part: exact output matters here, so one golden file, plus the rules it follows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailer.compose.build import build_issue
from mailer.compose.issue import load_issue
from mailer.compose.linebreak import NO_LINE_END, NO_LINE_START
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


def test_wrap_never_splits_placeholders_urls_or_words() -> None:
    writer = TextWriter(width=20)
    assert writer.wrap("Hello -first_name-, this is a long line") == "Hello -first_name-,\nthis is a long line"
    assert writer.wrap("see state-of-the-art models") == "see state-of-the-art\nmodels"
    # A link with Chinese in it is one word, however wide.
    url = "https://zh.wikipedia.org/wiki/自然语言处理"
    assert writer.wrap(f"见 {url} 一文") == f"见\n{url}\n一文"


def test_chinese_wraps_by_display_width_between_characters() -> None:
    writer = TextWriter(width=20)
    cjk = "命名实体识别数据集涵盖五个不同的领域政治自然科学音乐文学和人工智能"
    lines = writer.wrap(cjk).split("\n")
    assert "".join(lines) == cjk
    assert [display_width(line) for line in lines] == [20, 20, 20, 6]


@pytest.mark.parametrize(("text", "expected"), [
    # Closing punctuation never starts a line: the character before it moves down with it.
    ("一二三四五六七八九，十一二", "一二三四五六七八\n九，十一二"),
    ("一二三四五六七八九。」十一", "一二三四五六七八\n九。」十一"),
    # Opening punctuation never ends a line: it moves down with what it opens.
    ("一二三四五六七八「九十", "一二三四五六七八\n「九十"),
    ("一二三四五六七（八九十", "一二三四五六七\n（八九十"),
    # A link reference stays with the word it follows; a Latin word inside Chinese stays whole.
    ("一二三四五六七八论文[3]", "一二三四五六七八\n论文[3]"),
    ("一二三四五六七 NeurIPS", "一二三四五六七\nNeurIPS"),
    # An emoji sequence is one character: never cut at its joiner or skin tone.
    ("一二三四五六七八👨‍💻", "一二三四五六七八\n👨‍💻"),
    ("一二三四五六七八👍🏽", "一二三四五六七八\n👍🏽"),
    ("一二三四五六七八🇯🇵", "一二三四五六七八\n🇯🇵"),
])
def test_chinese_line_breaking_rules(text: str, expected: str) -> None:
    assert TextWriter(width=16).wrap(text) == expected


def test_the_chinese_sample_fits_72_columns_and_keeps_the_rules(workspace: Path) -> None:
    text = render_text(load_issue(workspace / "issues" / "2020-12-13-zh.yaml"), load_config(workspace))
    lines = text.splitlines()
    too_wide = [line for line in lines if display_width(line) > 72 and "://" not in line]
    assert too_wide == []
    assert max(display_width(line) for line in lines) > 66  # the lines are filled, not just short
    # (Latin punctuation may start a line after a space: "… calls to\n.cuda()".)
    chinese_start = {c for c in NO_LINE_START if not c.isascii()}
    chinese_end = {c for c in NO_LINE_END if not c.isascii()}
    assert [line for line in lines if line.lstrip()[:1] in chinese_start] == []
    assert [line for line in lines if line.rstrip()[-1:] in chinese_end] == []


def test_pictures_stand_alone_with_their_alt_text_and_caption(workspace: Path) -> None:
    text = render_text(load_issue(workspace / "issues" / "2020-12-13.yaml"), load_config(workspace))
    paragraphs = text.split("\n\n")
    depix = next(p for p in paragraphs if p.startswith("[Image: A pixelated password"))
    assert depix == ("[Image: A pixelated password in a screenshot being recovered into\n"
                     "readable text by Depix]")  # no caption in the issue: the alt text alone
    hero = next(p for p in paragraphs if p.startswith("[Image: Claude-Joseph Vernet"))
    assert hero.endswith("clouded sky]\nSoldiers in a Mountain Gorge, with a Storm | Vernet")
    assert text.count("[Image: ") == 4


def test_a_long_first_name_is_wrapped_with_its_paragraph(workspace: Path) -> None:
    rendered = build_issue(workspace / "issues" / "2020-12-13.yaml", load_config(workspace))
    values = {"email": "ada@example.com", "unsubscribe_url": "https://x.example/u", "web_url": "https://x.example/"}
    long_name = rendered.text_for({**values, "first_name": "Maria-Magdalena Wilhelmina Alexandrina"})
    assert max(display_width(line) for line in long_name.splitlines() if "://" not in line) <= 72
    assert "Hey Maria-Magdalena Wilhelmina Alexandrina, welcome back! Another week" in " ".join(long_name.split())
    # A name no wider than the placeholder keeps the shared wrapping, only filled in.
    short = rendered.text_for({**values, "first_name": "Ada"})
    assert short == rendered.text.replace("-first_name-", "Ada").replace("-web_url-", "https://x.example/").replace(
        "-unsubscribe_url-", "https://x.example/u")
    chinese = build_issue(workspace / "issues" / "2020-12-13-zh.yaml", load_config(workspace))
    wide = chinese.text_for({**values, "first_name": "欧阳娜娜欧阳娜娜欧阳"})
    assert max(display_width(line) for line in wide.splitlines() if "://" not in line) <= 72
    assert "嘿欧阳娜娜欧阳娜娜欧阳，欢迎回来" in "".join(wide.split())


def test_a_name_that_still_fits_its_line_is_filled_in_place_as_wrapping_again_would(workspace: Path) -> None:
    # grows() skips wrapping again in some cases: the result must then be the very text wrapping
    # again gives, for the sample's paragraphs and for placeholders at every position of a line.
    import random

    from mailer.compose import placeholders

    rng = random.Random(13)
    paragraphs = [p for issue in ("2020-12-13.yaml", "2020-12-13-zh.yaml")
                  for p in build_issue(workspace / "issues" / issue, load_config(workspace)).text_named]
    writer = TextWriter()
    for k in range(40, 75):  # the placeholder at the start, the middle and the end of a line
        writer.wrap("a" * k + " -first_name- tail of the sentence, and more words after it to wrap")
        writer.wrap("这" * (k // 2) + "-first_name-，欢迎回来。这是本周的新闻" + "很" * 30)
        writer.wrap("Hi " + "b" * (k - 20) + " -first_name- (-email-) hello there, welcome to the list, dear reader")
        writer.wrap("c " * (k // 2) + "-first_name-")
        writer.wrap("Dear " + "d" * (k - 30) + " -email- " + "word " * 12 + "and hello -first_name- again, with words")
    paragraphs += writer.named
    names = ["Reader 100000", "Maria-Magdalena", "Jean Baptiste", "欧阳娜娜欧阳娜", "，欧阳娜娜欧阳", "Zoë 🎉 Ångström",
             "e\u0301lodie-marguerite", "A" * 40, "Al"]
    names += ["".join(rng.choice("abcdef 李雷é，") for _ in range(rng.randint(13, 30))).strip() or "x"
              for _ in range(40)]
    emails = ["a@b.c", "al@x.io", "a-very-long-address-indeed@example.com"]
    checked = filled_in_place = 0
    for paragraph in paragraphs:
        for name in names:
            for email in emails:
                values = {"first_name": name, "email": email, "unsubscribe_url": "https://x.example/u",
                          "web_url": "https://x.example/"}
                if " ".join(name.split()) != name:
                    continue
                checked += 1
                wider = any(display_width(values[n]) > len(placeholders.ALL[n]) for n in paragraph.names)
                if wider and not paragraph.grows(values):
                    filled_in_place += 1
                    assert placeholders.fill(paragraph.wrapped, values) == paragraph.filled(values), (
                        paragraph.source, name, email)
    assert checked > 5000 and filled_in_place > 200  # both ways were taken
    # The sample's "Hey -first_name-, welcome back!" line has room for a name a little longer.
    sample = paragraphs[0]
    assert "Hey -first_name-" in sample.wrapped and not sample.grows(
        {"first_name": "Reader 100000", "email": "r@x.io", "unsubscribe_url": "https://x.example/u",
         "web_url": "https://x.example/"})


def named_paragraphs(workspace: Path) -> list:
    """The sample's paragraphs with a reader's value, and others with placeholders anywhere in a line, twice in
    one, beside other placeholders, alone in a paragraph (the address), in lines that are not ASCII."""
    writer = TextWriter()
    for k in range(30, 75, 3):
        writer.wrap("a" * k + " -first_name- tail of the sentence, and more words after it to wrap")
        writer.wrap("Hi " + "b" * (k - 20) + " -first_name- (-email-) hello there, welcome -first_name-, dear reader")
        writer.wrap("Hi " + "b" * (k - 20) + " -first_name- hello there, welcome -first_name-, dear reader")
        writer.wrap("Dear " + "d" * (k - 30) + " -email- see -web_url- and hello -first_name- again, with words")
        writer.wrap("Ça " + "é" * (k - 25) + " -first_name- vous souhaite la bienvenue, chers lecteurs de la liste")
        writer.wrap("Your address " + "c" * (k - 20) + " -email- is on our list, and we write to it every week")
    return writer.named + list(build_issue(workspace / "issues" / "2020-12-13.yaml", load_config(workspace)).text_named)


def test_an_ascii_name_is_measured_as_filling_the_line_and_measuring_it_would(workspace: Path) -> None:
    # grows() counts an ASCII line's width instead of filling it: it must answer as filling does, for
    # placeholders anywhere in a line, with other placeholders beside them, in lines that are not ASCII.
    import dataclasses

    paragraphs = named_paragraphs(workspace)
    counted_paragraphs = [p for p in paragraphs if p._ascii_lines is not None]
    assert 0 < len(counted_paragraphs) < len(paragraphs)  # both kinds of paragraph are in the test
    answers = set()
    for paragraph in paragraphs:
        measured = dataclasses.replace(paragraph)
        measured.__dict__["_ascii_lines"] = None  # fill and measure each line, as grows() did before
        for length in range(1, 40):
            for name in ("N" * length, ("Jo " * length)[:length].strip() or "J", "Zoë" + "e" * length):
                for email in ("a@b.c", "a-very-long-address-indeed@example.com"):
                    values = {"first_name": name, "email": email, "unsubscribe_url": "https://x.example/u",
                              "web_url": "https://x.example/web"}
                    answer = paragraph.grows(values)
                    assert answer == measured.grows(values), (paragraph.wrapped, name, email)
                    answers.add(answer)
    assert answers == {True, False}


def test_a_batch_of_readers_is_measured_at_once_as_one_at_a_time(workspace: Path) -> None:
    # grows_for_any() decides a batch from its longest value where it can: it must answer as asking
    # grows() of each reader does, whatever the batch holds.
    paragraphs = named_paragraphs(workspace)
    assert any(p._ascii_fit is not None for p in paragraphs) and any(p._ascii_fit is None for p in paragraphs)
    assert any(p.names == ("email",) and p._ascii_fit is not None for p in paragraphs)
    plain = [f"Reader {n}" for n in range(1, 400, 7)]
    # Each odd one first, in the middle and last of a batch: spaces at a value's ends, a doubled one, wide
    # characters whose length fits and whose width does not, a tab, values too long or short.
    odd = ["Reader  12345 double", " Reader 123456", "Reader 123456 ", "山田太郎山田太郎山田太郎",
           "Zoë Ångström-Lindqvist", "Tab\tin the name", "A" * 30, "Al", "Reader 123456", "Reader 1234567890123"]
    batches = [plain, [*plain, "A" * 14]]
    batches += [batch for name in odd
                for batch in ([name, *plain[:9]], [*plain[:5], name, *plain[5:9]], [*plain[:9], name])]
    addresses = [f"reader{n}@example.com" for n in range(10)]
    long_addresses = [f"a-rather-long-address-of-reader-{n}@example.com" for n in range(10)]
    answers = set()
    for paragraph in paragraphs:
        for batch in batches:
            for emails in (addresses, long_addresses, [*addresses[:9], "山田@例え.jp"]):
                columns = {"first_name": batch, "email": (emails * 10)[:len(batch)]}
                one_by_one = any(paragraph.grows({"first_name": name, "email": email}) for name, email
                                 in zip(columns["first_name"], columns["email"], strict=True))
                assert paragraph.grows_for_any(columns) == one_by_one, (paragraph.wrapped, columns)
                answers.add(one_by_one)
    assert answers == {True, False}


def test_underline_counts_wide_characters() -> None:
    assert TextWriter().underline("数据集 😎") == "=" * 9

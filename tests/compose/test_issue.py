"""Loading issues: the sample issues load, and every kind of bad input is reported precisely."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from mailer.compose.issue import load_issue, text_direction
from mailer.errors import InputError
from tests.conftest import MINIMAL_ISSUE, REPO, write

GOOD_HEAD = """\
subject: "Digest"
date: 2026-11-29
preheader: "Preview"
"""

# (name, YAML text, expected "line:column: field: message" fragment, expected hint fragment)
BAD_INPUTS = [
    ("malformed YAML", GOOD_HEAD + "sections:\n  - heading: A\n   body: x\n", "6:4: invalid YAML", "indentation"),
    ("unknown top-level key", GOOD_HEAD + "sectons:\n  - heading: A\n", "4:1: sectons: unknown key", None,
     ),
    ("unknown nested key", GOOD_HEAD + "sections:\n  - heding: A\n", "5:5: sections[0].heding: unknown key",
     "did you mean 'heading'?"),
    ("missing required field", "date: 2026-11-29\npreheader: P\nsections:\n  - heading: A\n",
     "1:1: subject: is required", "add 'subject: …'"),
    ("wrong type", GOOD_HEAD + "sections:\n  heading: A\n", "5:3: sections: must be a list", None),
    ("date that does not parse", "subject: S\ndate: 2020-13-45\npreheader: P\nsections:\n  - heading: A\n",
     "2:7: date: '2020-13-45' is not a date", "YYYY-MM-DD"),
    ("lang that is not a tag", GOOD_HEAD + "lang: english!\nsections:\n  - heading: A\n",
     "4:7: lang: 'english!' is not a language tag", None),
    ("relative card URL", GOOD_HEAD + "sections:\n  - heading: A\n    cards:\n      - url: www.example.com\n"
     "        title: T\n", "7:14: sections[0].cards[0].url: must be an absolute http(s) URL", None),
    ("image without alt", GOOD_HEAD + "sections:\n  - heading: A\n    images:\n      - url: https://e.com/a.png\n",
     "7:9: sections[0].images[0].alt: is required", None),
    ("http image", GOOD_HEAD + "hero:\n  url: http://e.com/a.png\n  alt: A\nsections:\n  - heading: A\n",
     "5:8: hero.url: images must be https URLs or files beside the issue", "img/hero.png"),
    ("missing local image", GOOD_HEAD + "hero:\n  url: img/nope.png\n  alt: A\nsections:\n  - heading: A\n",
     "5:8: hero.url: image file 'img/nope.png' not found", None),
    ("image path leaving the folder", GOOD_HEAD + "hero:\n  url: ../secret.png\n  alt: A\nsections:\n"
     "  - heading: A\n", "5:8: hero.url: image path '../secret.png' must stay inside", None),
    ("list item with url and links", GOOD_HEAD + "sections:\n  - heading: A\n    list:\n      - title: T\n"
     "        url: https://e.com/\n        links:\n          - {label: v, url: 'https://e.com/v'}\n",
     "7:9: sections[0].list[0]: needs either 'url'", None),
    ("relative markdown link", GOOD_HEAD + "intro: |\n  Hello.\n\n  See [this](/about) page.\n"
     "sections:\n  - heading: A\n", "7: intro: link '/about' must be an absolute", None),
    ("markdown image", GOOD_HEAD + "sections:\n  - heading: A\n    body: \"![x](https://e.com/x.png)\"\n",
     "6:17: sections[0].body: markdown image", "images:"),
    ("relative link whose address is also in the prose", GOOD_HEAD + "intro: |\n  Mention www.example.com/p "
     "here.\n  [the page](www.example.com/p)\nsections:\n  - heading: A\n",
     "6: intro: link 'www.example.com/p' must be an absolute", None),
    ("relative link after leading spaces", GOOD_HEAD + 'intro: "      see [x](bad) now"\nsections:\n'
     "  - heading: A\n", "4:23: intro: link 'bad' must be an absolute", None),
    ("relative link in a wrapped folded paragraph", GOOD_HEAD + "intro: >\n  A paragraph that wraps\n"
     "  onto a second line with [a link](about.html)\n  and a third.\nsections:\n  - heading: A\n",
     "6: intro: link 'about.html' must be an absolute", None),
    ("duplicate key", GOOD_HEAD + "subject: Again\nsections:\n  - heading: A\n",
     "4:1: subject: duplicate key (first at line 1)", None),
    ("number that is not a number", GOOD_HEAD + "number: twelve\nsections:\n  - heading: A\n",
     "4:9: number: must be a whole number", None),
    ("multi-line subject", "subject: |\n  two\n  lines\ndate: 2026-11-29\npreheader: P\nsections:\n"
     "  - heading: A\n", "1:10: subject: must be a single line", None),
    ("empty sections", GOOD_HEAD + "sections: []\n", "4:11: sections: needs at least 1 item", None),
    ("bad dir", GOOD_HEAD + "dir: up\nsections:\n  - heading: A\n", "4:6: dir: must be 'ltr' or 'rtl'", None),
    ("empty file", "", " the file is empty", None),
    ("required but empty", GOOD_HEAD + "sections:\n  - heading:\n", "5:5: sections[0].heading: is required but "
     "empty", None),
]


@pytest.mark.parametrize(("name", "text", "expected", "hint"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_names_file_line_field_and_fix(tmp_path: Path, name, text, expected, hint) -> None:
    path = write(tmp_path / "issue.yaml", text)
    with pytest.raises(InputError) as info:
        load_issue(path, label="issues/issue.yaml")
    message = str(info.value)
    assert f"issues/issue.yaml:{expected}" in message
    if hint:
        assert hint in message


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "issue.yaml", """\
        subject: S
        date: someday
        preheader: P
        lang: "??"
        sections:
          - heading: A
            cards:
              - url: nope
                title: T
                descripton: typo
        """)
    with pytest.raises(InputError) as info:
        load_issue(path)
    found = [(p.line, p.field) for p in info.value.problems]
    assert found == [(2, "date"), (4, "lang"), (8, "sections[0].cards[0].url"),
                     (10, "sections[0].cards[0].descripton")]
    assert "did you mean 'description'?" in str(info.value)


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "issue.yaml"
    path.write_bytes(b"subject: S\ndate: 2026-11-29\npreheader: caf\xe9\n")
    with pytest.raises(InputError) as info:
        load_issue(path, label="x.yaml")
    assert "x.yaml:3:15: not valid UTF-8" in str(info.value)
    assert "save the file as UTF-8" in str(info.value)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "issue.yaml"
    path.write_bytes("\ufeff".encode() + MINIMAL_ISSUE.encode())
    assert load_issue(path).subject == "Weekly digest #1"


def test_values_yaml_would_retype_stay_text(tmp_path: Path) -> None:
    # YAML 1.1 reads `no` as False and `1984` as a number; a subject or lang must stay as written.
    path = write(tmp_path / "issue.yaml", """\
        subject: 1984
        date: 2026-11-29
        preheader: yes
        lang: no
        sections:
          - heading: 3.10
        """)
    issue = load_issue(path)
    assert (issue.subject, issue.preheader, issue.lang, issue.sections[0].heading) == ("1984", "yes", "no", "3.10")


def test_defaults_and_derived_fields(tmp_path: Path) -> None:
    issue = load_issue(write(tmp_path / "2026-11-29.yaml", MINIMAL_ISSUE))
    assert issue.slug == "2026-11-29"
    assert issue.title == issue.subject
    assert issue.date == date(2026, 11, 29)
    assert (issue.lang, issue.dir) == ("en", "ltr")


@pytest.mark.parametrize(("lang", "direction"), [("ar", "rtl"), ("he-IL", "rtl"), ("fa", "rtl"), ("zh", "ltr"),
                                                 ("az-Arab", "rtl"), ("en-US", "ltr")])
def test_direction_follows_language(lang: str, direction: str) -> None:
    assert text_direction(lang) == direction


def test_file_name_must_work_in_a_web_address(tmp_path: Path) -> None:
    path = write(tmp_path / "my issue.yaml", MINIMAL_ISSUE)
    with pytest.raises(InputError, match="cannot be used in a web address"):
        load_issue(path)


@pytest.mark.parametrize("path", sorted((REPO / "issues").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_issues_load(path: Path) -> None:
    issue = load_issue(path)
    assert issue.sections
    assert all(image.alt for image in issue.images())


def test_the_sample_digest_is_whole() -> None:
    # The 12.13.20 digest, every part of it, in English and in Chinese (issue 2: "Sample content").
    for name, lang in (("2020-12-13.yaml", "en"), ("2020-12-13-zh.yaml", "zh")):
        issue = load_issue(REPO / "issues" / name)
        assert issue.lang == lang and issue.date == date(2020, 12, 13)
        assert len(issue.sections) == 9
        assert [len(s.list) for s in issue.sections if s.list] == [12]  # the video list
        assert [len(s.repos) for s in issue.sections if s.repos] == [4]
        assert [s.dataset.name for s in issue.sections if s.dataset] == ["CrossNER"]
        assert issue.hero and issue.footer and issue.footer.signoff and issue.footer.social
        assert all(image.local_path for image in issue.images())  # pictures of its own, no network

"""Loading issues: the sample issues load, and every kind of bad input is reported precisely."""

from __future__ import annotations

import shutil
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


# --- layout: and extra: ---------------------------------------------------------------------------


def test_an_issue_chooses_its_layout_and_carries_fields_of_its_own(workspace: Path) -> None:
    from mailer.compose.build import build_issue
    from mailer.config import load_config

    # A layout of the editor's own: a copy of the minimal one, with a sponsor line read from the issue's extra fields.
    shutil.copytree(workspace / "layouts" / "minimal", workspace / "layouts" / "sponsored")
    shell = (workspace / "layouts" / "sponsored" / "email.mjml.j2").read_text(encoding="utf-8")
    write(workspace / "layouts" / "sponsored" / "email.mjml.j2", shell.replace(
        "        <mj-divider />",
        '        <mj-text css-class="mailer-prose"><p>{{ issue.extra.sponsor.line }} '
        '<a href="{{ issue.extra.sponsor.url }}">{{ issue.extra.sponsor.name }}</a> '
        '({{ issue.extra.tags | join(", ") }})</p></mj-text>\n        <mj-divider />'))
    path = write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE + """\
layout: sponsored
extra:
  sponsor:
    name: "Acme <Labs>"
    url: https://acme.example.com/
    line: This week's issue is brought to you by
  tags: [nlp, weekly]
""")
    rendered = build_issue(path, load_config(workspace))
    assert rendered.issue.layout == "sponsored"
    assert rendered.issue.extra["sponsor"]["name"] == "Acme <Labs>"
    assert ('This week\'s issue is brought to you by <a href="https://acme.example.com/"' in rendered.html
            and "Acme &lt;Labs&gt;</a> (nlp, weekly)" in rendered.html)  # escaped like every field
    assert "Three links worth your Sunday" in rendered.html and "mailer-card" not in rendered.html
    # The default layout stays the default, and reads no extra field it does not know.
    default = build_issue(write(workspace / "issues" / "plain.yaml", MINIMAL_ISSUE + "extra:\n  sponsor: Acme\n"),
                          load_config(workspace))
    assert default.issue.layout == "default" and "mailer-card" in default.html and "Acme" not in default.html


@pytest.mark.parametrize(("tail", "expected", "hint"), [
    ("layout: minimall\n", "8:9: layout: unknown layout 'minimall': the layouts are default, minimal",
     "did you mean 'minimal'?"),
    ("layout: newspaper\n", "8:9: layout: unknown layout 'newspaper': the layouts are default, minimal",
     "a layout is a folder of layouts/ holding its own email.mjml.j2"),
    ("layout: ../layouts\n", "8:9: layout: unknown layout '../layouts'", None),
    ("layout: partials\n", "8:9: layout: unknown layout 'partials'", None),  # a folder, but no email shell
    ("extra: Acme\n", "8:8: extra: must be a mapping", "e.g. 'extra:' and, indented below it"),
    ("extra:\n  sponsor name: Acme\n", "9:3: extra.sponsor name: 'sponsor name' cannot be read by a layout",
     "letters, digits and '_'"),
    ("extra:\n  items: [a]\n", "9:3: extra.items: 'items' cannot be read by a layout", "not get, items"),
    ("extra:\n  __class__: x\n", "9:3: extra.__class__: '__class__' cannot be read by a layout", "a letter first"),
    ("extra:\n  sponsor:\n    name: ''\n", "10:11: extra.sponsor.name: must not be empty", None),
    ("extra:\n  a: {b: {c: {d: {e: {f: x}}}}}\n", "extra.a.b.c.d.e: is nested more than 4 levels deep", None),
    ("extra:\n  sponsor: Acme\n  sponsor: Other\n", "10:3: extra.sponsor: duplicate key", None),
])
def test_layout_and_extra_are_checked_with_their_line(workspace: Path, tail: str, expected: str,
                                                      hint: str | None) -> None:
    from mailer.compose.build import build_issue
    from mailer.config import load_config

    path = write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE + tail)
    with pytest.raises(InputError) as info:
        build_issue(path, load_config(workspace))
    assert expected in str(info.value)
    if hint:
        assert hint in str(info.value)


def test_a_field_outside_extra_is_still_an_error_in_a_layout(workspace: Path) -> None:
    from mailer.compose.build import build_issue
    from mailer.config import load_config
    from mailer.errors import RenderError

    shell = workspace / "layouts" / "minimal" / "email.mjml.j2"
    text = shell.read_text(encoding="utf-8")
    shell.write_text(text.replace("<mj-divider />", "<mj-text>{{ issue.sponsor }}</mj-text>"), encoding="utf-8")
    path = write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE + "layout: minimal\nextra:\n  sponsor: A\n")
    with pytest.raises(RenderError) as info:
        build_issue(path, load_config(workspace))
    assert "layouts/minimal/email.mjml.j2:" in str(info.value) and "has no attribute 'sponsor'" in str(info.value)

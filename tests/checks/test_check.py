"""`mailer check`: every check has a file that triggers it and one that does not."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mailer.checks.check import Finding, check_issue, check_subscribers, check_workspace
from mailer.config import load_config
from tests.checks.test_linkcheck import Site, make_site  # noqa: F401 - make_site: the fixture that starts local web sites
from tests.conftest import MINIMAL_ISSUE, REPO, write

# The garbled seed the sample issues were made from (UTF-8 read as cp1252, and its "decoded" copy).
SEED_RAW = Path(__file__).resolve().parent / "data" / "nlp-cypher-12-13-20.raw.txt"
SEED_DECODED = SEED_RAW.with_name("nlp-cypher-12-13-20.decoded.txt")


def check(workspace: Path, text: str, name: str = "t.yaml") -> list[Finding]:
    path = write(workspace / "issues" / name, text)
    return check_issue(path, load_config(workspace)).findings


def codes(findings: list[Finding]) -> set[str]:
    return {finding.code for finding in findings}


def only(findings: list[Finding], code: str) -> Finding:
    matching = [finding for finding in findings if finding.code == code]
    assert len(matching) == 1, findings
    return matching[0]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


# --- the sample issues pass -----------------------------------------------------------------------


@pytest.mark.parametrize("issue", sorted(p.name for p in (REPO / "issues").glob("*.yaml")))
def test_the_sample_issues_have_no_errors_or_warnings(workspace: Path, issue: str) -> None:
    report = check_issue(workspace / "issues" / issue, load_config(workspace))
    assert report.findings == []
    assert report.passed == ["input", "size", "images", "links", "text", "compliance", "markup"]


def test_a_minimal_issue_passes(workspace: Path) -> None:
    assert check(workspace, MINIMAL_ISSUE) == []


# --- input ----------------------------------------------------------------------------------------


def test_an_issue_that_does_not_load_reports_every_problem_as_an_error(workspace: Path) -> None:
    found = check(workspace, MINIMAL_ISSUE.replace("preheader:", "preheder:").replace("2026-11-29", "2026-13-40"))
    assert {f.severity for f in found} == {"error"} and len(found) >= 3
    assert any(f.field == "preheder" and f.hint == "did you mean 'preheader'?" for f in found)
    assert all(f.file == "issues/t.yaml" and f.line for f in found)


# --- size -----------------------------------------------------------------------------------------


def _long_issue(sections: int) -> str:
    paragraph = "A sentence about research that goes on for a while to fill the email. " * 12
    body = "".join(f"  - heading: Section {n}\n    body: |\n      {paragraph}\n" for n in range(sections))
    return MINIMAL_ISSUE.split("sections:")[0] + "sections:\n" + body


def test_an_issue_over_gmails_clipping_limit_is_an_error(workspace: Path) -> None:
    finding = only(check(workspace, _long_issue(90)), "size.gmail-clip")
    assert finding.severity == "error" and "Gmail clips" in finding.message and "unsubscribe" in finding.message


def test_a_message_over_512_kb_is_a_warning(workspace: Path) -> None:
    paragraph = "A sentence about research that goes on for a while to fill the email. " * 12
    huge = MINIMAL_ISSUE.replace("Hello -first_name-", "\n\n      ".join([paragraph] * 330) + "\n\n      Hello")
    finding = only(check(workspace, huge), "size.message")
    assert finding.severity == "warning" and finding.message.startswith("the whole message is 5")
    assert not [f for f in check(workspace, _long_issue(90)) if f.code == "size.message"]  # clipped, not huge


def test_an_issue_close_to_the_limit_is_a_warning(workspace: Path) -> None:
    sizes = {}
    for sections in range(24, 120):
        report = check_issue(write(workspace / "issues" / "t.yaml", _long_issue(sections)), load_config(workspace))
        sizes[sections] = report.facts["html_part_bytes"]
        if 90 * 1024 < sizes[sections] <= 102 * 1024:
            assert only(report.findings, "size.gmail-clip-close").severity == "warning"
            return
    pytest.fail(f"no issue size landed between 90 and 102 KB: {sizes}")


def test_cjk_text_that_quoted_printable_would_push_over_the_limit_is_a_warning(workspace: Path) -> None:
    # Short lines: the message keeps the part 8bit (a line over 998 bytes would make it quoted-printable).
    paragraph = "\n      ".join(["自然语言处理的研究进展非常迅速，本周我们介绍几篇有趣的论文和数据集。"] * 30)
    sizes = {}
    for sections in range(4, 40):
        body = "".join(f"  - heading: 第 {n} 节\n    body: |\n      {paragraph}\n" for n in range(sections))
        text = "lang: zh\n" + MINIMAL_ISSUE.split("sections:")[0] + "sections:\n" + body
        report = check_issue(write(workspace / "issues" / "t.yaml", text), load_config(workspace))
        sizes[sections] = (report.facts["html_part_bytes"], report.facts["html_quoted_printable_bytes"])
        if report.facts["html_part_bytes"] < 90 * 1024 and report.facts["html_quoted_printable_bytes"] > 102 * 1024:
            assert only(report.findings, "size.gmail-clip-encoded").severity == "warning"
            return
    pytest.fail(f"no issue size landed in the window: {sizes}")


# --- images ---------------------------------------------------------------------------------------


def test_alt_text_that_says_nothing_is_a_warning(workspace: Path) -> None:
    text = MINIMAL_ISSUE + "    images:\n      - url: https://example.com/a.png\n        alt: IMG_2041.png\n"
    finding = only(check(workspace, text), "images.alt-filler")
    assert finding.field == "sections[0].images[0].alt" and finding.line == 10
    good = MINIMAL_ISSUE + "    images:\n      - url: https://example.com/a.png\n        alt: A cat reading a paper\n"
    assert check(workspace, good) == []


def test_a_section_made_only_of_images_is_a_warning(workspace: Path) -> None:
    text = MINIMAL_ISSUE + ("  - heading: Pictures\n    images:\n"
                            "      - url: https://example.com/a.png\n        alt: A chart of results\n")
    finding = only(check(workspace, text), "images.image-only")
    assert finding.field == "sections[1]" and finding.line == 8


def test_a_heavy_local_image_is_a_warning(workspace: Path) -> None:
    (workspace / "issues" / "img" / "huge.png").write_bytes(b"\x89PNG" + bytes(1_200_000))
    text = MINIMAL_ISSUE + "    images:\n      - url: img/huge.png\n        alt: A chart of results\n"
    finding = only(check(workspace, text), "images.heavy")
    assert "1.1 MB" in finding.message and finding.field == "sections[0].images[0].url"


def test_layout_images_without_alt_or_as_data_uris_are_errors(workspace: Path) -> None:
    edit(workspace / "layouts" / "partials" / "footer.mjml.j2", "<mj-column>",
         '<mj-column>\n<mj-image src="https://example.com/logo.png"></mj-image>'
         '<mj-image alt="logo" src="data:image/png;base64,iVBORw0KGgo="></mj-image>')
    found = check(workspace, MINIMAL_ISSUE)
    assert "https://example.com/logo.png" in only(found, "images.alt-missing").message
    assert only(found, "images.data-uri").file == "layouts/"


def test_images_served_from_a_plain_http_web_base_url_are_errors(workspace: Path) -> None:
    edit(workspace / "mailer.yaml", "web_base_url: https://", "web_base_url: http://")
    text = MINIMAL_ISSUE + "    images:\n      - url: img/depix.png\n        alt: A pixelated password\n"
    finding = only(check(workspace, text), "images.not-https")
    assert finding.file == "mailer.yaml" and finding.field == "web_base_url"


# --- links ----------------------------------------------------------------------------------------


def test_the_same_url_with_different_link_texts_is_a_warning(workspace: Path) -> None:
    text = MINIMAL_ISSUE + ("    cards:\n      - url: https://example.com/a\n        title: The pricing page\n")
    finding = only(check(workspace, text), "links.same-url-different-text")
    assert finding.severity == "warning" and finding.line == 9 and "line 7" in finding.message
    same_words = MINIMAL_ISSUE + ("    cards:\n      - url: https://example.com/a\n        title: A link\n")
    assert check(workspace, same_words) == []


def test_plain_http_links_are_warnings(workspace: Path) -> None:
    finding = only(check(workspace, MINIMAL_ISSUE.replace("https://example.com/a", "http://example.com/a")),
                   "links.insecure")
    assert finding.line == 7 and finding.field == "sections[0].body"
    wrapped = MINIMAL_ISSUE.replace("here is [a link](https://", "here is\n      [a link](http://")
    assert only(check(workspace, wrapped), "links.insecure").line == 8  # the paragraph starts on line 7


def test_a_relative_link_in_a_layout_is_an_error(workspace: Path) -> None:
    edit(workspace / "layouts" / "partials" / "footer.mjml.j2", "{{ config.postal_address }}",
         '{{ config.postal_address }} <a href="/privacy">Privacy</a>')
    finding = only(check(workspace, MINIMAL_ISSUE), "links.not-absolute")
    assert "'/privacy'" in finding.message and finding.file == "layouts/"


@pytest.mark.parametrize(("written", "message"), [
    ("-frist_name-", "did you mean '-first_name-'?"),
    ("-firstname-", "did you mean '-first_name-'?"),
    ("-emial-", "did you mean '-email-'?"),
    ("-Email-", "did you mean '-email-'?"),
    ("-unsubscribe-", "did you mean '-unsubscribe_url-'?"),
    ("-first_name", "write -first_name-, with a dash on both sides"),
    ("{{ first_name }}", "another tool's placeholder syntax"),
    ("*|FNAME|*", "another tool's placeholder syntax"),
    ("{% if first_name %}", "another tool's placeholder syntax"),
    ("${first_name}", "another tool's placeholder syntax"),
    ("<%= first_name %>", "another tool's placeholder syntax"),
])
def test_placeholders_the_sender_would_not_fill_are_errors(workspace: Path, written: str, message: str) -> None:
    finding = only(check(workspace, MINIMAL_ISSUE.replace("-first_name-", written)), "links.placeholder")
    assert finding.severity == "error" and finding.line == 7 and finding.column is None
    assert message in f"{finding.message} {finding.hint}"


def test_a_word_between_dashes_that_is_no_misspelt_placeholder_passes(workspace: Path) -> None:
    text = MINIMAL_ISSUE.replace("here is", "a state-of-the-art model -note- the -best- one; here is")
    assert check(workspace, text) == []


def test_placeholder_syntax_shown_as_markdown_code_passes(workspace: Path) -> None:
    text = MINIMAL_ISSUE.replace("here is", "Jinja prints `{{ name }}`, Mailchimp `*|FNAME|*`, Liquid "
                                 "`{% if x %}`, ERB `<%= x %>`; here is")
    assert check(workspace, text) == []


@pytest.mark.parametrize("link", ["javascript:alert(document.cookie)", "JavaScript:void(0)", "data:text/html,hi",
                                  "vbscript:msgbox", "file:///etc/passwd"])
def test_a_script_or_data_link_is_an_error_not_literal_text(workspace: Path, run_cli, link: str) -> None:
    write(workspace / "issues" / "x.yaml", MINIMAL_ISSUE.replace("https://example.com/a", link))
    result = run_cli("check", "issues/x.yaml")
    assert result.exit_code == 1
    assert f"issues/x.yaml:7: sections[0].body: link {link!r} is not an address a reader can open" in (
        result.stdout), result.stdout


def test_a_placeholder_typo_in_a_layout_names_the_layouts(workspace: Path) -> None:
    edit(workspace / "layouts" / "partials" / "footer.mjml.j2", "{{ config.postal_address }}",
         "{{ config.postal_address }} -unsubscribe_link-")
    finding = only(check(workspace, MINIMAL_ISSUE), "markup.placeholder")
    assert finding.file == "layouts/" and finding.severity == "error"
    assert "-unsubscribe_link-" in finding.message and "in the HTML part" in finding.message


@pytest.mark.parametrize("leftover", ["TODO: add the link", "TK", "Lorem ipsum dolor sit amet", "FIXME"])
def test_unfinished_copy_is_an_error(workspace: Path, leftover: str) -> None:
    text = MINIMAL_ISSUE.replace("here is", f"{leftover} here is")
    finding = only(check(workspace, text), "text.unfinished")
    assert finding.line == 7 and finding.severity == "error"


def test_findings_in_folded_plain_and_escaped_text_point_at_their_line(workspace: Path) -> None:
    text = MINIMAL_ISSUE + (
        '    cards:\n      - url: https://example.com/b\n        title: "Caf\\u00e9 TODO"\n'
        "        description: >\n          A folded description\n          that goes on, FIXME.\n"
        "  - heading: Plain\n    body: A plain scalar\n      on two lines, TK.\n")
    lines = text.splitlines()
    found = [(f.line, f.column, f.message) for f in check(workspace, text) if f.code == "text.unfinished"]
    assert found == [(10, lines[9].index("TODO") + 1, "unfinished copy: 'TODO'"),
                     (13, None, "unfinished copy: 'FIXME'"), (16, None, "unfinished copy: 'TK'")]


@pytest.mark.parametrize("words", ["Tkinter, tk and todos are here, as is", "Todo el mundo habla de GPT-3, y",
                                   "gracias por todo, here is", "a todo list app, and here is"])
def test_words_that_only_look_like_leftovers_pass(workspace: Path, words: str) -> None:
    assert check(workspace, MINIMAL_ISSUE.replace("here is", words)) == []


def test_a_finished_markdown_link_named_link_is_not_a_leftover(workspace: Path) -> None:
    assert check(workspace, MINIMAL_ISSUE.replace("[a link]", "[link]")) == []
    assert only(check(workspace, MINIMAL_ISSUE.replace("here is", "here is [link] and")), "text.unfinished")


# --- text -----------------------------------------------------------------------------------------


def test_the_seeds_mojibake_is_found_with_its_repair_as_the_hint(workspace: Path) -> None:
    garbled = [line for line in SEED_RAW.read_text(encoding="utf-8").splitlines() if line.startswith("é¦–å…ˆ")][0]
    text = MINIMAL_ISSUE.replace("Hello -first_name-, here is", f"{garbled} Hello -first_name-,")
    finding = only(check(workspace, text), "text.mojibake")
    assert finding.severity == "error" and finding.line == 7 and finding.field == "sections[0].body"
    assert "首先" in (finding.hint or "")  # 'é¦–å…ˆ' is 首先 read as cp1252


def test_the_mojibake_excerpt_in_text_without_spaces_is_short(workspace: Path) -> None:
    from mailer.checks.textcheck import find_mojibake

    chinese = "这是本周的自然语言处理新闻摘要，我们整理了会议论文、开源项目和数据集，希望你喜欢。"
    found = find_mojibake(chinese * 3 + "å¯†ç" + chinese * 3)[0]
    assert found.found.startswith(chinese[-10:] + "å¯†ç") and len(found.found) == 40


def test_every_garbled_line_of_the_seed_is_found(workspace: Path) -> None:
    from mailer.checks.textcheck import find_mojibake

    lines = [line for line in SEED_RAW.read_text(encoding="utf-8").splitlines() if any(c in line for c in "åæèç")]
    assert len(lines) > 20
    assert [line for line in lines if not find_mojibake(line)] == []


def test_replacement_characters_from_the_decoded_seed_are_errors(workspace: Path) -> None:
    decoded = SEED_DECODED.read_text(encoding="utf-8").splitlines()[0]  # '# NLP 密�| 12.13.20'
    found = check(workspace, MINIMAL_ISSUE.replace('"Weekly digest #1"', json.dumps(decoded[2:])))
    assert any("U+FFFD" in f.message and f.field == "subject" and f.line == 1 for f in found)


@pytest.mark.parametrize("fixed", ["It’s a café — naïve résumé", "«Привет», 日本語, مرحبا 😀",
                                   "À la carte, São Paulo, Straße, ½ cup",
                                   # A word's last letter, then closing quotes or an ellipsis.
                                   "Er sagte „Fuß“ und »Gruß«, wie heiß…", "He said “I love the ‘café’”",
                                   "«\u00a0ÉTÉ\u00a0» au CAFÉ’S, GROß‘", "Größe: 3×½"])
def test_text_with_accents_and_other_scripts_is_not_mojibake(workspace: Path, fixed: str) -> None:
    from mailer.checks.textcheck import find_mojibake

    assert find_mojibake(fixed) == []


@pytest.mark.parametrize(("garbled", "meant"), [("sÄ…", "są"), ("coÅ›", "coś"), ("Ð¸Ñ…", "их"), ("NoÃ«l", "Noël"),
                                                # Capitals before closing punctuation: Polish, Hungarian.
                                                ("SÄ…", "Są"), ("FÅ‘", "Fő")])
def test_mojibake_at_the_end_of_a_word_is_found_with_its_repair(workspace: Path, garbled: str, meant: str) -> None:
    from mailer.checks.textcheck import find_mojibake

    assert f"probably meant: 'To {meant}, a word.'" in (find_mojibake(f"To {garbled}, a word.")[0].hint or "")


@pytest.mark.parametrize(("escape", "severity"), [("\\u200b", "warning"), ("\\u202e", "error"),
                                                   ("\\u00ad", "warning"), ("\\ufeff", "warning")])
def test_invisible_and_control_characters(workspace: Path, escape: str, severity: str) -> None:
    text = MINIMAL_ISSUE.replace('"Three links worth your Sunday"', f'"Three links{escape} worth your Sunday"')
    finding = only(check(workspace, text), "text.invisible")
    assert finding.severity == severity and finding.field == "preheader" and finding.line == 3


def test_a_control_character_stops_the_issue_from_loading_with_its_field(workspace: Path) -> None:
    text = MINIMAL_ISSUE.replace('"Three links worth your Sunday"', '"Three links\\x07 worth your Sunday"')
    finding = only(check(workspace, text), "input.invalid")
    assert (finding.field, finding.line, finding.message) == ("preheader", 3, "contains the control character U+0007")


def test_joiners_and_right_to_left_marks_are_allowed(workspace: Path) -> None:
    text = MINIMAL_ISSUE.replace('"Three links worth your Sunday"', '"Three links 👩\\u200d💻 for \\u200fSunday"')
    assert check(workspace, text) == []


def test_a_closed_bidi_isolate_is_allowed_and_an_open_one_is_an_error(workspace: Path) -> None:
    # (GPT-3 Weekly, not GPT-3 alone: an Arabic subject whose only Latin letters are capitals shouts, as in Chinese)
    subject = '"نشرة \\u2066GPT-3 Weekly\\u2069 الأسبوعية"'
    assert check(workspace, MINIMAL_ISSUE.replace('"Weekly digest #1"', subject)) == []
    unclosed = MINIMAL_ISSUE.replace('"Weekly digest #1"', subject.replace("\\u2069", ""))
    assert only(check(workspace, unclosed), "text.invisible").severity == "error"
    # An override inside a closed isolate is not hidden by it ("Trojan Source": 'exe.pdf' shown reversed).
    trojan = MINIMAL_ISSUE.replace('"Weekly digest #1"', '"Open \\u2066\\u202efdp.exe\\u2069 now"')
    finding = only(check(workspace, trojan), "text.invisible")
    assert finding.severity == "error" and "U+202E" in finding.message


def test_a_zero_width_space_is_allowed_only_between_words_of_scripts_without_spaces(workspace: Path) -> None:
    khmer = "ខ្ញុំ\\u200bស្រឡាញ់\\u200bភាសា"  # Khmer words, separated the way Khmer keyboards type them
    assert check(workspace, MINIMAL_ISSUE.replace('"Weekly digest #1"', f'"{khmer}"')) == []
    latin = MINIMAL_ISSUE.replace('"Weekly digest #1"', '"Weekly\\u200bdigest"')
    assert only(check(workspace, latin), "text.invisible").message == "invisible U+200B ZERO WIDTH SPACE"


def test_tag_characters_are_allowed_only_in_flags(workspace: Path) -> None:
    scotland = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    text = MINIMAL_ISSUE.replace("Three links worth", f"Three links {scotland} worth")
    assert check(workspace, text) == []
    hidden = MINIMAL_ISSUE.replace("Three links worth", f"Three links {scotland[1:]} worth")
    assert only(check(workspace, hidden), "text.invisible").message == "invisible tag characters spelling 'gbsct'"


def test_a_lang_that_does_not_match_the_script_is_a_warning(workspace: Path) -> None:
    chinese = MINIMAL_ISSUE.replace("Hello -first_name-, here is", "你好 -first_name-，这是本周的自然语言处理新闻摘要，"
                                    "我们整理了会议论文、开源项目和数据集，希望你喜欢。这里有")
    chinese = chinese.replace("Three links worth your Sunday", "本周值得一读的三个链接和一些新闻")
    finding = only(check(workspace, chinese), "text.lang-script")
    assert "'en'" in finding.message and "Cjk" in finding.message and "(lang: zh?)" in finding.message
    assert check(workspace, "lang: zh\n" + chinese) == []


def test_vowel_signs_count_as_text_of_their_script(workspace: Path) -> None:
    # Thai words and English names about half and half: the vowel signs above and below are Thai text.
    thai = write(workspace / "issues" / "th.yaml", """\
        subject: "จดหมายข่าว NLP weekly ประจำสัปดาห์"
        date: 2026-11-29
        preheader: "GPT-3 ได้รับรางวัล และ Depix กู้คืนรหัสผ่าน"
        sections:
          - heading: ข่าว
            body: |
              สัปดาห์นี้: Transformer models ใหม่ เปรียบเทียบ BERT และ GPT-3 และการฝึก sharded training ใน
              PyTorch Lightning ที่ช่วยประหยัดหน่วยความจำ (Mixed Precision, DeepSpeed ZeRO Offload)
              [ลิงก์](https://example.com/a)
        """)
    finding = only(check_issue(thai, load_config(workspace)).findings, "text.lang-script")
    assert finding.message.endswith("is in Thai script (lang: th?)")  # the Thai issue without its lang
    edit(thai, "date:", "lang: th\ndate:")
    assert check_issue(thai, load_config(workspace)).findings == []


def test_subject_and_preheader_lengths(workspace: Path) -> None:
    long_subject = MINIMAL_ISSUE.replace('"Weekly digest #1"', '"' + "A very long subject line " * 4 + '"')
    assert only(check(workspace, long_subject), "text.subject-long").line == 1
    short = MINIMAL_ISSUE.replace("Three links worth your Sunday", "Hi")
    assert only(check(workspace, short), "text.preheader-short").field == "preheader"
    long = MINIMAL_ISSUE.replace("Three links worth your Sunday", "Three links worth your Sunday " * 6)
    assert only(check(workspace, long), "text.preheader-long").severity == "warning"


def test_subject_length_counts_the_room_cjk_emoji_and_vowel_signs_take(workspace: Path) -> None:
    chinese = "NeurIPS 落幕：GPT-3 获最佳论文，Depix 还原马赛克密码，340 密码被破解"
    finding = only(check(workspace, MINIMAL_ISSUE.replace("Weekly digest #1", chinese)), "text.subject-long")
    assert finding.message.startswith(f"the subject is {len(chinese)} characters, as wide as 68 Latin letters;")
    # 74 code points, as wide as 60 letters: the vowel signs sit on their consonants.
    hindi = "प्राकृतिक भाषा प्रसंस्करण पर साप्ताहिक न्यूज़लेटर: GPT-3 और Depix की खबरें"
    family = "Weekly digest #1 for the whole " + "👨‍👩‍👧‍👦" * 8  # 8 emoji, 56 code points
    assert check(workspace, "lang: hi\n" + MINIMAL_ISSUE.replace("Weekly digest #1", hindi)) == []
    assert check(workspace, MINIMAL_ISSUE.replace("Weekly digest #1", family)) == []


@pytest.mark.parametrize(("subject", "shouts"), [
    ("NLP 密码 | 12.13.20 🔥", "NLP"),  # the Chinese sample's subject until it was fixed: its only Latin letters
    ("BIG NEWS: GPT-3 WINS", "BIG NEWS GPT WINS"),
    ("Re: FREE MONEY FOR NLP", "FREE MONEY FOR NLP"),  # a reply prefix is not counted, as SpamAssassin does
    ("The NLP Cypher 中文版 | 12.13.20 🔥", None),  # one word in lower case is enough
    ("密码 周报 第三期 | 12.13.20", None),  # no Latin letter at all
    ("NLP密码周报第三期", None),  # one word: SpamAssassin never fires on it
    ("NLP 周报", "NLP"),  # 6 characters but 10 bytes: SpamAssassin counts the bytes
    ("AI 周报", None),  # under 10 bytes
])
def test_a_subject_whose_latin_letters_are_all_capitals_is_a_warning(workspace: Path, subject: str,
                                                                      shouts: str | None) -> None:
    findings = check(workspace, MINIMAL_ISSUE.replace("Weekly digest #1", subject))
    if shouts is None:
        assert "text.subject-all-caps" not in codes(findings)
        return
    finding = only(findings, "text.subject-all-caps")
    assert (finding.severity, finding.line, finding.field) == ("warning", 1, "subject")
    assert f"({shouts})" in finding.message and "SUBJ_ALL_CAPS" in finding.message
    assert "lower-case" in finding.hint


# --- compliance -----------------------------------------------------------------------------------


def test_a_footer_without_unsubscribe_link_or_postal_address_is_an_error(workspace: Path) -> None:
    footer = workspace / "layouts" / "partials" / "footer.mjml.j2"
    edit(footer, '<a href="{{ placeholder.unsubscribe_url }}">{{ t.unsubscribe }}</a>', "")
    edit(footer, "{{ config.postal_address }}", "")
    found = check(workspace, MINIMAL_ISSUE)
    assert {f.message for f in found if f.code == "compliance.unsubscribe-link"} == {
        "the HTML part has no unsubscribe link"}  # the text part still has its own
    assert {f.message for f in found if f.code == "compliance.postal-address"} == {
        "the HTML part does not show the postal address"}


def test_example_addresses_and_http_settings_are_workspace_warnings(workspace: Path) -> None:
    report = check_workspace(replace(load_config(workspace), unsubscribe_by_mail=True))
    assert codes(report.findings) == {"compliance.example-address"}
    assert "from.email" in report.findings[0].message
    write(workspace / "mailer.yaml", """\
        name: Weekly
        from: {email: news@weekly.dev}
        postal_address: 1 Main St
        web_base_url: http://weekly.dev/
        unsubscribe_url: https://weekly.dev/unsubscribe
        """)
    report = check_workspace(replace(load_config(workspace), unsubscribe_by_mail=True))
    assert [(f.code, f.field) for f in report.findings] == [("compliance.not-https", "web_base_url")]


def test_check_notes_once_that_no_mailto_is_offered_when_nothing_reads_that_mail(
        workspace: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli("check", "issues/2020-12-13.yaml", "issues/2020-12-13-zh.yaml")
    assert result.stdout.count("List-Unsubscribe carries only the https link, no mailto:") == 1
    assert "one-click unsubscribe (RFC 8058) needs only the https link" in result.stdout
    monkeypatch.setenv("MAILER_INBOUND_KEY", "k" * 40)
    assert "no mailto:" not in run_cli("check", "issues/2020-12-13.yaml").stdout
    monkeypatch.delenv("MAILER_INBOUND_KEY")
    monkeypatch.setenv("MAILER_MAILBOX_URL", "imaps://bounces:pw@imap.example.com/INBOX")
    assert "no mailto:" not in run_cli("check", "issues/2020-12-13.yaml").stdout


def test_every_message_carries_one_click_unsubscribe_headers(workspace: Path) -> None:
    report = check_issue(workspace / "issues" / "2020-12-13.yaml", load_config(workspace))
    assert "compliance" in report.passed
    assert not [f for f in report.findings if f.code == "compliance.header"]


def test_messages_without_one_click_unsubscribe_headers_are_errors(workspace: Path, monkeypatch) -> None:
    from mailer.deliver import message

    personalise = message.Personaliser.__call__

    def without_one_click(self, subscriber):  # a sender that forgot RFC 8058's second header
        personal = personalise(self, subscriber)
        del personal.headers["List-Unsubscribe-Post"]
        return personal

    monkeypatch.setattr(message.Personaliser, "__call__", without_one_click)
    finding = only(check(workspace, MINIMAL_ISSUE), "compliance.header")
    assert finding.severity == "error" and "List-Unsubscribe-Post" in finding.message


def test_settings_without_a_sender_do_not_check(workspace: Path, run_cli) -> None:
    config = workspace / "mailer.yaml"
    edit(config, "from:\n  name: The NLP Cypher\n  email: newsletter@example.com\n", "")
    result = run_cli("check", "issues/2020-12-13.yaml")
    assert result.exit_code == 1
    assert "mailer.yaml:3:1: from: is required" in result.stderr  # line 3: the first setting


# --- markup ---------------------------------------------------------------------------------------


def test_unknown_mjml_tags_and_attributes_in_layouts_are_errors_with_their_line(workspace: Path) -> None:
    header = workspace / "layouts" / "partials" / "header.mjml.j2"
    edit(header, 'padding="8px 24px"', 'paddng="8px 24px"')
    report = check_workspace(load_config(workspace))
    finding = only(report.findings, "markup.mjml")
    assert finding.file == "layouts/partials/header.mjml.j2" and finding.hint == "did you mean 'padding'?"
    line = next(n for n, text in enumerate(header.read_text().splitlines(), 1) if "paddng" in text)
    assert finding.line == line
    edit(header, "<mj-text", "<mj-txt")
    report = check_workspace(load_config(workspace))
    assert any(f.message.startswith("unknown MJML tag <mj-txt>") and f.hint == "did you mean <mj-text>?"
               for f in report.findings)


def test_markup_in_an_html_comment_is_not_scanned(workspace: Path) -> None:
    header = workspace / "layouts" / "partials" / "header.mjml.j2"
    edit(header, "<mj-text", '<!-- <mj-txt paddng="0">an old banner</mj-txt> -->\n<mj-text')
    assert [f for f in check_workspace(load_config(workspace)).findings if f.check == "markup"] == []
    edit(header, "<!-- <mj-txt", "<mj-txt")
    assert codes(check_workspace(load_config(workspace)).findings) >= {"markup.mjml"}


def test_the_shipped_layouts_use_only_known_markup(workspace: Path) -> None:
    assert [f for f in check_workspace(load_config(workspace)).findings if f.check == "markup"] == []


# --- subscribers ----------------------------------------------------------------------------------


def test_subscribers_invalid_duplicate_unsubscribed_and_suppressed(workspace: Path) -> None:
    csv_path = write(workspace / "subs.csv", """\
        email,first_name,status
        ada@example.com,Ada,subscribed
        bob@,Bob,subscribed
        ADA@example.com,Ada again,subscribed
        gone@example.com,Gone,unsubscribed
        bounced@example.com,Bounce,subscribed
        """)
    report = check_subscribers(csv_path, suppressed=lambda keys: {k: "bounce" for k in keys if k.startswith("bou")})
    by_code = {f.code: f for f in report.findings}
    assert by_code["subscribers.invalid"].line == 3 and "'bob@'" in by_code["subscribers.invalid"].message
    assert by_code["subscribers.duplicate"].line == 4 and by_code["subscribers.duplicate"].severity == "warning"
    assert "lines 5" in by_code["subscribers.unsubscribed"].message
    assert "bounced@example.com (bounce, line 6)" in by_code["subscribers.suppressed"].message
    assert report.failed() and report.facts == {"subscribed": 2, "unsubscribed": 1, "suppressed": 1}


def test_check_reads_the_pulled_suppression_list(workspace: Path, run_cli, tmp_path: Path) -> None:
    from mailer.deliver.suppressions import BOUNCE, Suppression, SuppressionList

    with SuppressionList.open(tmp_path / "state") as suppressions:
        suppressions.replace([Suppression("Alan.Turing@example.com", BOUNCE, reason="550 mailbox unavailable")])
    result = run_cli("check", "issues/2020-12-13.yaml", "--subscribers", "subscribers.example.csv")
    assert result.exit_code == 0
    assert ("1 address in the local suppression list will be skipped: alan.turing@example.com "
            "(bounce (550 mailbox unavailable), line 3)") in result.stdout


def test_the_example_subscribers_have_no_errors(workspace: Path) -> None:
    report = check_subscribers(workspace / "subscribers.example.csv")
    assert not report.failed(strict=True)
    assert [f.code for f in report.findings] == ["subscribers.unsubscribed"]


# --- the command ----------------------------------------------------------------------------------


def test_check_exits_0_with_warnings_and_1_with_errors_or_strict(workspace: Path, run_cli) -> None:
    result = run_cli("check", "issues/2020-12-13.yaml")
    assert result.exit_code == 0 and "0 errors, 1 warning: ready to send" in result.stdout
    strict = run_cli("check", "issues/2020-12-13.yaml", "--strict")
    assert strict.exit_code == 1
    # Only warnings: --strict fails the check, but mailer send would not refuse.
    assert "0 errors, 1 warning: --strict counts warnings as errors" in strict.stdout
    assert "mailer send refuses" not in strict.stdout
    write(workspace / "issues" / "bad.yaml", MINIMAL_ISSUE.replace("here is", "TODO here is"))
    result = run_cli("check", "issues/")
    assert result.exit_code == 1
    out = result.stdout
    assert out.index("errors (1)") < out.index("issues/bad.yaml:7: sections[0].body: unfinished copy: 'TODO'")
    assert "hint: write the final text" in out and "Traceback" not in out + result.stderr


def test_json_output_is_stable_and_machine_readable(workspace: Path, run_cli) -> None:
    write(workspace / "issues" / "bad.yaml", MINIMAL_ISSUE.replace("here is", "TODO here is"))
    result = run_cli("check", "issues", "--format", "json", "--subscribers", "subscribers.example.csv")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert set(data) == {"version", "ok", "strict", "errors", "warnings", "info", "reports"}
    assert data["version"] == 1 and data["ok"] is False and data["errors"] == 1
    assert [r["kind"] for r in data["reports"]] == ["issue", "issue", "issue", "workspace", "subscribers"]
    bad = next(r for r in data["reports"] if r["subject"] == "issues/bad.yaml")
    assert set(bad) == {"kind", "subject", "errors", "warnings", "info", "passed", "facts", "findings"}
    assert bad["findings"] == [{"severity": "error", "check": "text", "code": "text.unfinished",
                                "file": "issues/bad.yaml", "line": 7, "column": None, "field": "sections[0].body",
                                "message": "unfinished copy: 'TODO'",
                                "hint": "write the final text (or remove the line) before sending"}]
    zh = next(r for r in data["reports"] if r["subject"] == "issues/2020-12-13-zh.yaml")
    assert zh["errors"] == 0 and zh["facts"]["html_part_bytes"] > 30_000


def test_a_missing_path_is_a_clear_error(workspace: Path, run_cli) -> None:
    result = run_cli("check", "issues/nope.yaml")
    assert result.exit_code == 1 and "issues/nope.yaml: no such file or folder" in result.stderr


@pytest.fixture
def site(make_site) -> Site:  # noqa: F811 - make_site is the imported fixture
    return make_site()


def test_links_mode_asks_every_link_of_the_issue(workspace: Path, site: Site, run_cli) -> None:
    text = MINIMAL_ISSUE.replace("https://example.com/a", f"{site.url}/ok") + (
        f"    cards:\n      - url: {site.url}/missing\n        title: Gone\n"
        f"      - url: {site.url}/error\n        title: Flaky\n"
        f"      - url: {site.url}/ok\n        title: a link\n")
    write(workspace / "issues" / "t.yaml", text)
    result = run_cli("check", "issues/t.yaml", "--links", "--timeout", "2")
    assert result.exit_code == 1
    assert f"issues/t.yaml:9:14: sections[0].cards[0].url: link {site.url}/missing does not answer: HTTP 404" \
        in result.stdout
    assert f"link {site.url}/error does not answer: HTTP 500" in result.stdout.split("warnings (")[1]
    assert "links answered: 1 ok, 2 broken, 0 not checked" in result.stdout
    assert site.hits[("HEAD", "/ok")] == 1  # asked once although linked twice
    # Off by default: no request at all.
    before = site.total_hits()
    assert run_cli("check", "issues/t.yaml").exit_code == 0
    assert site.total_hits() == before


def test_last_weeks_file_copied_and_not_updated_is_a_warning(workspace: Path) -> None:
    copied = (workspace / "issues" / "2020-12-13.yaml").read_text(encoding="utf-8")
    findings = check(workspace, copied, name="2020-12-20.yaml")
    subject, day = only(findings, "text.same-subject"), only(findings, "text.same-date")
    assert subject.severity == day.severity == "warning"
    assert "issues/2020-12-13.yaml has the same subject" in subject.message and subject.line == 1
    assert "issues/2020-12-13.yaml has the same date" in day.message
    # Updated: nothing to say. A translation shares its date with the original, in another language.
    updated = copied.replace('subject: "The NLP Cypher | 12.13.20"', 'subject: "The NLP Cypher | 12.20.20"')
    updated = updated.replace("date: 2020-12-13", "date: 2020-12-20")
    assert not codes(check(workspace, updated, name="2020-12-20.yaml")) & {"text.same-subject", "text.same-date"}
    shipped = check_issue(workspace / "issues" / "2020-12-13-zh.yaml", load_config(workspace)).findings
    assert not codes(shipped) & {"text.same-subject", "text.same-date"}


def test_another_file_that_does_not_read_is_named_and_the_check_goes_on(workspace: Path) -> None:
    write(workspace / "issues" / "draft.yaml", "subject: [unclosed\n")
    findings = check_issue(workspace / "issues" / "2020-12-13.yaml", load_config(workspace)).findings
    unread = only(findings, "text.other-issue-unread")
    assert unread.severity == "warning" and (unread.file, unread.line, unread.column) == ("issues/draft.yaml", 2, 1)
    assert unread.message.startswith("not compared with this issue for a repeated subject or date: invalid YAML")
    assert unread.hint == "mailer check issues/draft.yaml says what to fix there"
    assert not [finding for finding in findings if finding.severity == "error"]

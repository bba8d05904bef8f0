"""Building issues: what a subscriber's email client receives, and the library traps around it."""

from __future__ import annotations

import html as htmllib
import logging
import re
import socket
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from mailer.compose import placeholders
from mailer.compose.build import RenderedIssue, build_issue, write_build
from mailer.compose.inline import inline_css
from mailer.compose.render import compile_mjml
from mailer.config import load_config
from mailer.deliver.message import GMAIL_CLIP_BYTES, email_size
from mailer.errors import InputError, RenderError
from tests.bench.forty_cards import write_forty_card_issue
from tests.conftest import MINIMAL_ISSUE, REPO, write

SAMPLES = sorted((REPO / "issues").glob("*.yaml"))
# The English sample in the second layout (`layout: minimal`): it must pass what the default passes.
MINIMAL = "2020-12-13-minimal"


class Elements(HTMLParser):
    """Collects every start tag with its attributes (values unescaped, as a browser reads them)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def attr_values(self, tag: str, name: str) -> list[str]:
        return [attrs[name] for t, attrs in self.tags if t == tag and name in attrs]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, RenderedIssue]:
    config = load_config(REPO)
    found = {path.stem: build_issue(path, config) for path in SAMPLES}
    found[MINIMAL] = build_issue(minimal_sample(tmp_path_factory.mktemp("minimal")), load_config(REPO))
    return found


def minimal_sample(folder: Path) -> Path:
    """The English sample with `layout: minimal`, in a copy of the workspace (its pictures beside it)."""
    import shutil

    for name in ("mailer.yaml", "layouts", "issues"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, folder / name)
    text = (REPO / "issues" / "2020-12-13.yaml").read_text(encoding="utf-8")
    return write(folder / "issues" / f"{MINIMAL}.yaml", text.replace("\nlang: en\n", "\nlang: en\nlayout: minimal\n"))


SOURCES = {**{path.stem: path for path in SAMPLES}, MINIMAL: REPO / "issues" / "2020-12-13.yaml"}


def yaml_strings(value, key=None):
    """Every (key, string) in a loaded YAML document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from yaml_strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from yaml_strings(v, key)
    elif isinstance(value, str):
        yield key, value


def yaml_urls(path: Path) -> set[str]:
    """Every URL an editor wrote in an issue: URL fields and links inside markdown."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    urls = set()
    for key, text in yaml_strings(data):
        if key == "url" and text.startswith(("http://", "https://")):
            urls.add(text)
        urls.update(re.findall(r"\]\((https?://[^)\s]+)\)", text))
    return urls


@pytest.mark.parametrize("slug", SOURCES)
def test_every_url_in_the_issue_reaches_both_parts(slug: str, built) -> None:
    rendered = built[slug]
    hrefs = set(Elements(rendered.html).attr_values("a", "href"))
    urls = yaml_urls(SOURCES[slug])
    assert len(urls) > 20
    assert urls - hrefs == set()
    assert [url for url in urls if url not in rendered.text] == []


@pytest.mark.parametrize("slug", SOURCES)
def test_local_images_point_at_the_published_web_folder(slug: str, built) -> None:
    rendered = built[slug]
    sources = Elements(rendered.html).attr_values("img", "src")
    expected = {f"https://newsletter.example.com/{slug}/{image.relative_path}"
                for image in rendered.local_images()}
    assert expected and expected <= set(sources)


def test_every_image_has_alt_text(built) -> None:
    for rendered in built.values():
        images = [attrs for tag, attrs in Elements(rendered.html).tags if tag == "img"]
        assert images
        assert all(attrs.get("alt", "").strip() for attrs in images)


@pytest.mark.parametrize("slug", ["2020-12-13", MINIMAL])
def test_body_text_carries_inline_styles(built, slug: str) -> None:
    # Gmail's apps drop <style> blocks in many cases: paragraphs and links must be styled inline.
    elements = Elements(built[slug].html)
    for tag in ("p", "a", "h2", "li"):
        styled = [attrs for t, attrs in elements.tags if t == tag]
        assert styled, tag
        assert all("style" in attrs for attrs in styled), tag
    link_styles = elements.attr_values("a", "style")
    assert all("color:" in style.replace(" ", "") for style in link_styles)


@pytest.mark.parametrize("slug", ["2020-12-13", MINIMAL])
def test_desktop_media_rules_keep_important(built, slug: str) -> None:
    html = built[slug].html
    rules = re.findall(r"@media only screen and \(min-width:480px\)\s*\{(.*?)\}\s*\}", html, re.S)
    assert rules
    assert all("width:100% !important" in rule for rule in rules)


def test_doctype_is_kept(built) -> None:
    for rendered in built.values():
        assert rendered.html.lstrip().lower().startswith("<!doctype html>")


@pytest.mark.parametrize("slug", ["2020-12-13-zh", MINIMAL])
def test_charset_language_direction_and_dark_mode_are_declared(built, slug: str) -> None:
    zh = built[slug].html
    assert re.search(r'<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"', zh)
    assert f'<html lang="{built[slug].issue.lang}" dir="ltr"' in zh
    assert '<meta name="color-scheme" content="light dark"' in zh
    assert "@media (prefers-color-scheme: dark)" in zh
    assert "color:#000000" not in zh.replace(" ", "")  # no pure black text


def test_colours_and_fonts_live_in_the_head_partial_only() -> None:
    # Design tokens in one place per layout (mj-attributes / mj-class / the CSS in its head.mjml.j2): a
    # colour or font written in another email layout file would escape a change of the palette or of dark mode.
    tokens = re.compile(r"#[0-9a-fA-F]{3,8}\b|\brgba?\(|font-family|\bcolor=", re.I)
    heads = [REPO / "layouts" / "partials" / "head.mjml.j2", REPO / "layouts" / "minimal" / "partials" / "head.mjml.j2"]
    assert all(tokens.search(head.read_text(encoding="utf-8")) for head in heads)
    elsewhere = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
                 for path in sorted((REPO / "layouts").rglob("*.mjml.j2")) if path not in heads
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if tokens.search(line)]
    assert elsewhere == []


class InboxPreview(HTMLParser):
    """The body's text in order, as an inbox builds its preview line: hidden text included, the
    head's title and style left out, runs of ASCII white space one space, zero-width characters gone."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.in_body = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.in_body = self.in_body or tag == "body"

    def handle_data(self, data):
        if self.in_body:
            self.parts.append(data)

    @property
    def text(self) -> str:
        text = re.sub(r"[ \t\r\n]+", " ", "".join(self.parts)).strip()
        return re.sub("[\u200b-\u200d\u034f\ufeff]", "", text)


@pytest.mark.parametrize("slug", ["2020-12-13", "2020-12-13-zh", MINIMAL])
def test_preheader_is_hidden_and_the_inbox_preview_stops_after_it(built, slug: str) -> None:
    rendered = built[slug]
    match = re.search(r'<div class="mailer-preheader" style="([^"]*)">(.*?)</div>', rendered.html, re.S)
    assert match
    style, content = match.groups()
    assert "display:none" in style and "max-height:0" in style and "mso-hide:all" in style
    # Hidden by size, not by colour: white-on-white is what SpamAssassin scores as hidden text.
    assert "color" not in style
    assert htmllib.unescape(content).strip().startswith(rendered.preheader)
    # A phone shows about 90 characters of preview, a desktop inbox up to 200: the preheader, then
    # only blank padding, never "View in browser · The NLP Cypher · …".
    preview = InboxPreview(rendered.html).text
    assert preview.startswith(rendered.preheader)
    assert preview[len(rendered.preheader):200].strip(" \u00a0") == ""


def test_footer_has_address_view_in_browser_and_unsubscribe(built) -> None:
    for rendered in built.values():
        hrefs = Elements(rendered.html).attr_values("a", "href")
        assert placeholders.UNSUBSCRIBE_URL in hrefs
        assert placeholders.WEB_URL in hrefs
        assert "123 Example Street" in rendered.html
        assert f": {placeholders.UNSUBSCRIBE_URL}" in rendered.text
        assert "123 Example Street" in rendered.text


def test_placeholders_survive_every_step(built) -> None:
    rendered = built["2020-12-13"]
    assert "Hey -first_name-, welcome back!" in rendered.html
    assert "Hey -first_name-, welcome back!" in rendered.text
    leftovers = [m for m in placeholders.SHAPE.findall(rendered.html + rendered.text)
                 if m not in placeholders.ALL.values()]
    assert leftovers == []
    assert "{{" not in rendered.html and "{%" not in rendered.html and "{{" not in rendered.text


def test_cjk_and_emoji_are_byte_identical_in_html_and_text(workspace: Path) -> None:
    path = workspace / "issues" / "2020-12-13-zh.yaml"
    rendered = build_issue(path, load_config(workspace))
    files = write_build(rendered, workspace / "build" / "zh")
    html_bytes = files[0].read_bytes()
    text_bytes = files[1].read_bytes()
    # The text part wraps Chinese between characters: a line break and its indent or quote mark may
    # fall inside a run.
    unwrapped_text = re.sub(rb"\n[ >]*", b"", text_bytes)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    checked = 0
    for key, value in yaml_strings(data):
        for run in re.findall(r"[^\x00-\x7f]+", value):
            assert run.encode("utf-8") in html_bytes, (key, run)
            if key not in ("preheader", "subject"):
                assert run.encode("utf-8") in unwrapped_text, (key, run)
            checked += 1
    assert checked > 100
    assert "👨‍💻".encode() in html_bytes and "👨‍💻".encode() in text_bytes  # a ZWJ sequence, intact


def image_widths(html: str) -> list[tuple[str, str]]:
    """(the image cell's CSS width, the <img> width attribute Outlook for Windows lays out by)."""
    return re.findall(r'<td style="width:(\d+)px;?">\s*<img[^>]*?\bwidth="(\d+)"', html)


def test_outlook_image_widths_are_the_column_minus_the_padding(built) -> None:
    # The hero has no side padding (600); the other figures have 24 px on each side (552), as the
    # official MJML compiler writes it. mjml-python alone wrote 600 for all four.
    assert image_widths(built["2020-12-13"].html) == [("600", "600")] + [("552", "552")] * 3


@pytest.mark.parametrize(("padding", "width"), [
    # Each expectation is what the official compiler (mjml 4.18) writes for the same MJML.
    ('padding="0 24px 12px"', "552"), ('padding="0 24px"', "552"), ('padding="4px 24px 0"', "552"),
    ('padding="0 0 8px"', "600"), ('padding="0"', "600"), ('padding="24px"', "552"),
    ('padding-left="0" padding-right="50px" padding="0px"', "550"),
])
def test_unitless_zero_padding_still_narrows_the_image(padding: str, width: str) -> None:
    mjml = (f'<mjml><mj-body><mj-section><mj-column><mj-image src="https://x.example/a.png" {padding} />'
            '</mj-column></mj-section></mj-body></mjml>')
    assert image_widths(compile_mjml(mjml, layout="test")) == [(width, width)]


def test_sample_stays_far_below_gmail_clipping(built, workspace: Path) -> None:
    config = load_config(workspace)
    for rendered in built.values():
        size = email_size(rendered, config)
        assert size.html_part < 70 * 1024
        assert size.headroom == GMAIL_CLIP_BYTES - size.html_part


def test_a_forty_card_issue_stays_under_gmail_clipping(workspace: Path) -> None:
    # A busy week: the sample and eleven more sections of three cards. It was 113 KB (clipped) when
    # each section was its own MJML section with its own text blocks and the inlined CSS was spaced out.
    rendered = build_issue(write_forty_card_issue(workspace / "issues"), load_config(workspace))
    assert sum(len(section.cards) for section in rendered.issue.sections) == 40
    assert email_size(rendered, load_config(workspace)).html_part < GMAIL_CLIP_BYTES
    assert rendered.html.count('class="mailer-link-card"') == 40 + sum(len(s.repos) for s in rendered.issue.sections)


def test_inlined_css_carries_no_spaces_between_declarations(built) -> None:
    styles = re.findall(r'\sstyle="([^"]*)"', built["2020-12-13"].html)
    assert len(styles) > 100
    assert [style for style in styles if re.search(r"[;:,] |;$", style)] == []


def test_build_makes_no_network_request(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    config = load_config(workspace)
    for path in sorted((workspace / "issues").glob("*.yaml")):
        rendered = build_issue(path, config)
        assert "fonts.googleapis.com" not in rendered.html
        assert "<link" not in rendered.html
    assert attempts == []


def test_layout_css_import_is_refused_rather_than_fetched(workspace: Path) -> None:
    head = workspace / "layouts" / "partials" / "head.mjml.j2"
    head.write_text(head.read_text().replace("/* mailer:inline */",
                                             "/* mailer:inline */ @import url(https://fonts.example/x.css);"))
    with pytest.raises(RenderError, match="@import"):
        build_issue(workspace / "issues" / "2020-12-13.yaml", load_config(workspace))


def test_markdown_raw_html_is_escaped(workspace: Path) -> None:
    path = write(workspace / "issues" / "raw.yaml", MINIMAL_ISSUE.replace(
        "here is [a link](https://example.com/a).", "<div style='display:none'>unclosed <script>x</script>"))
    rendered = build_issue(path, load_config(workspace))
    assert "&lt;div style=&#x27;display:none&#x27;&gt;unclosed" in rendered.html or (
        "&lt;div style='display:none'&gt;unclosed" in rendered.html)
    assert "<script" not in rendered.html
    assert placeholders.UNSUBSCRIBE_URL in rendered.html  # the footer still follows


def test_user_text_is_escaped_everywhere(workspace: Path) -> None:
    path = write(workspace / "issues" / "esc.yaml", MINIMAL_ISSUE.replace(
        "heading: News", 'heading: "<b>Tom & Jerry</b>"'))
    rendered = build_issue(path, load_config(workspace))
    assert "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in rendered.html
    assert "<b>Tom" not in rendered.html
    assert "<b>Tom & Jerry</b>" in rendered.text  # plain text is not HTML


def test_non_ascii_urls_are_not_percent_encoded(workspace: Path) -> None:
    url = "https://例え.jp/パス?q=café&x=2"
    text = MINIMAL_ISSUE + f"    cards:\n      - url: \"{url}\"\n        title: Card\n"
    rendered = build_issue(write(workspace / "issues" / "idn.yaml", text), load_config(workspace))
    assert url in Elements(rendered.html).attr_values("a", "href")
    assert url in rendered.text


@pytest.mark.parametrize("href", ["{{ x }}", "<%x%>", "-unsubscribe_url-", "https://例え.jp/パス"])
def test_inliner_leaves_placeholders_and_urls_alone(href: str) -> None:
    escaped = htmllib.escape(href)
    page = ('<!doctype html><html><head><style>/* mailer:inline */ a { color: red; }</style></head>'
            f'<body><a href="{escaped}">x</a><img src="{escaped}" alt="y"></body></html>')
    out = inline_css(page)
    assert f'href="{escaped}"' in out and f'src="{escaped}"' in out
    assert 'style="color:red"' in out


def test_inliner_is_quiet_and_leaves_logging_as_it_was(capfd: pytest.CaptureFixture[str]) -> None:
    css_logger = logging.getLogger("CSSUTILS")
    before = (css_logger.level, list(css_logger.handlers), list(logging.getLogger().handlers))
    page = ('<!doctype html><html><head><style>/* mailer:inline */ p { word-break: break-word; '
            'mso-line-height-rule: exactly; bogus-prop: 1 } </style></head><body><p>x</p></body></html>')
    out = inline_css(page)
    assert "word-break" in out
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    assert (css_logger.level, list(css_logger.handlers), list(logging.getLogger().handlers)) == before


def test_unknown_mjml_tag_is_an_error_naming_the_layout(workspace: Path) -> None:
    shell = workspace / "layouts" / "email.mjml.j2"
    shell.write_text(shell.read_text().replace("{% include \"partials/footer.mjml.j2\" %}",
                                               "<mj-buton href=\"https://e.com\">Go</mj-buton>"))
    with pytest.raises(RenderError) as info:
        build_issue(workspace / "issues" / "2020-12-13.yaml", load_config(workspace))
    message = str(info.value)
    assert "layouts/email.mjml.j2" in message
    assert "unknown MJML tag <mj-buton>" in message
    assert re.search(r"rendered MJML line \d+", message)


def test_mjml_error_offset_becomes_a_line(workspace: Path) -> None:
    head = workspace / "layouts" / "partials" / "head.mjml.j2"
    head.write_text(head.read_text().replace("<mj-breakpoint", "<mj-section></mj-section>\n    <mj-breakpoint"))
    config = load_config(workspace)
    with pytest.raises(RenderError) as info:
        build_issue(workspace / "issues" / "2020-12-13.yaml", config)
    message = str(info.value)
    match = re.search(r"rendered MJML line (\d+): '([^']*)'", message)
    assert match, message
    assert "<mj-section></mj-section>" in match.group(2)
    assert "MJML error: unexpected element" in message
    assert "position" not in message


def test_layout_syntax_error_names_file_and_line(workspace: Path) -> None:
    footer = workspace / "layouts" / "partials" / "footer.mjml.j2"
    lines = footer.read_text().split("\n")
    lines.insert(5, "{% if %}")
    footer.write_text("\n".join(lines))
    with pytest.raises(RenderError, match=r"layouts/partials/footer.mjml.j2:6: layout syntax error"):
        build_issue(workspace / "issues" / "2020-12-13.yaml", load_config(workspace))


def test_layout_undefined_variable_names_file_and_line(workspace: Path) -> None:
    hero = workspace / "layouts" / "partials" / "hero.mjml.j2"
    hero.write_text(hero.read_text().replace("{{ issue.intro | markdown }}", "{{ issue.intro_text }}"))
    with pytest.raises(RenderError, match=r"layouts/partials/hero.mjml.j2:\d+: .*intro_text"):
        build_issue(workspace / "issues" / "2020-12-13.yaml", load_config(workspace))


def test_write_build_writes_parts_and_images(workspace: Path, built) -> None:
    out = workspace / "build" / "2020-12-13"
    files = write_build(built["2020-12-13"], out)
    names = sorted(str(f.relative_to(out)) for f in files)
    assert names[:3] == ["email.html", "email.mjml", "email.txt"]
    assert (out / "img" / "hero-storm.png").read_bytes() == (REPO / "issues/img/hero-storm.png").read_bytes()
    assert [p.name for p in out.parent.iterdir()] == ["2020-12-13"]  # no staging folder left


def test_bad_issue_writes_nothing(workspace: Path, run_cli) -> None:
    bad = write(workspace / "issues" / "bad.yaml", MINIMAL_ISSUE.replace("date: 2026-11-29", "date: soon"))
    result = run_cli("build", str(workspace / "issues" / "2020-12-13.yaml"), str(bad))
    assert result.exit_code == 1
    assert "issues/bad.yaml:2:7: date: 'soon' is not a date" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workspace / "build").exists()


def test_input_error_is_raised_for_bad_markdown_link(workspace: Path) -> None:
    path = write(workspace / "issues" / "rel.yaml", MINIMAL_ISSUE.replace("https://example.com/a", "a.html"))
    with pytest.raises(InputError, match=r"rel.yaml:7: sections\[0\].body: link 'a.html'"):
        build_issue(path, load_config(workspace))


def test_right_to_left_issue_is_laid_out_right_to_left(workspace: Path) -> None:
    text = MINIMAL_ISSUE.replace("sections:", "lang: ar\nsections:").replace(
        "Hello -first_name-, here is", "مرحبا -first_name-، هذا")
    rendered = build_issue(write(workspace / "issues" / "ar.yaml", text), load_config(workspace))
    assert '<html lang="ar" dir="rtl"' in rendered.html
    assert "مرحبا -first_name-، هذا" in rendered.html
    block = re.search(r'<div style="([^"]*)">(?:(?!</div>).)*?مرحبا', rendered.html, re.S)
    assert block and "text-align:right" in block.group(1)

"""The built email in a real browser (Playwright driving Debian's chromium) at phone and desktop widths.

Screenshots are kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.compose.build import build_issue, write_build
from mailer.config import load_config
from tests.compose.test_build import MINIMAL, minimal_sample
from tests.conftest import ARTIFACTS, REPO

pytestmark = pytest.mark.browser




@pytest.fixture(scope="module")
def built_dirs(tmp_path_factory) -> dict[str, Path]:
    config = load_config(REPO)
    out = tmp_path_factory.mktemp("build")
    dirs = {}
    for path in sorted((REPO / "issues").glob("*.yaml")):
        dirs[path.stem] = out / path.stem
        write_build(build_issue(path, config), dirs[path.stem])
    # The second layout, `layout: minimal`, on the English sample (tests/compose/test_build.py).
    dirs[MINIMAL] = out / MINIMAL
    write_build(build_issue(minimal_sample(tmp_path_factory.mktemp("minimal")), config), dirs[MINIMAL])
    return dirs


def open_email(browser, folder: Path, width: int):
    """Load email.html; the web base URL is answered from the build folder, anything else refused."""
    page = browser.new_page(viewport={"width": width, "height": 800})
    requests: list[str] = []

    def serve(route):
        url = route.request.url
        requests.append(url)
        prefix = f"https://newsletter.example.com/{folder.name}/"
        if url.startswith(prefix) and (folder / url[len(prefix):]).is_file():
            route.fulfill(path=str(folder / url[len(prefix):]))
        else:
            route.abort()

    page.route(lambda url: url.startswith(("http://", "https://")), serve)
    page.goto(folder.joinpath("email.html").as_uri())
    page.wait_for_load_state("load")
    return page, requests


@pytest.mark.parametrize("width", [375, 600])
@pytest.mark.parametrize("slug", ["2020-12-13", "2020-12-13-zh", MINIMAL])
def test_email_fits_the_screen_and_shows_everything(browser, built_dirs, slug: str, width: int) -> None:
    page, requests = open_email(browser, built_dirs[slug], width)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"email-{slug}-{width}px.png"), full_page=True)

    # No horizontal scrolling: nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    overflowing = page.evaluate(
        """(w) => [...document.querySelectorAll('body *')]
            .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > w + 0.5; })
            .map(e => e.tagName + ' ' + (e.textContent || '').slice(0, 40))""",
        width,
    )
    assert overflowing == []

    # All content is visible: every heading, link card and image is rendered with a size.
    hidden = page.evaluate(
        """() => [...document.querySelectorAll('h1, h2, a, img, li, p')]
            .filter(e => !e.closest('[style*="display:none"]'))
            .filter(e => { const r = e.getBoundingClientRect(); return r.width === 0 || r.height === 0; })
            .map(e => e.outerHTML.slice(0, 80))"""
    )
    assert hidden == []
    headings = page.locator("h2").all_inner_texts()
    assert len(headings) == 9

    # Every image loaded from the published web folder and scaled to the screen.
    images = page.evaluate(
        "() => [...document.images].map(i => [i.complete && i.naturalWidth > 0, i.getBoundingClientRect().width])"
    )
    assert images and all(loaded for loaded, _ in images)
    assert all(shown_width <= width for _, shown_width in images)
    assert all(url.startswith("https://newsletter.example.com/") for url in requests)
    page.close()


@pytest.mark.parametrize("slug", ["2020-12-13", MINIMAL])
def test_desktop_columns_widen_to_600px(browser, built_dirs, slug: str) -> None:
    # The @media (min-width:480px) rules with !important are what widen MJML's mobile-first
    # columns; if the inliner stripped !important, the column would stay at its inline width.
    page, _ = open_email(browser, built_dirs[slug], 900)
    widths = page.evaluate("() => [...document.querySelectorAll('.mj-column-per-100')].map(e => e.offsetWidth)")
    assert widths and all(w == 600 for w in widths)
    page.close()


def test_the_minimal_layout_goes_dark_too(browser, built_dirs) -> None:
    page, _ = open_email(browser, built_dirs[MINIMAL], 600)
    body = "getComputedStyle(document.querySelector('div.mailer-body')).backgroundColor"
    heading = "getComputedStyle(document.querySelector('.mailer-prose h2')).color"
    light = page.evaluate(body), page.evaluate(heading)
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate(body), page.evaluate(heading)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"email-{MINIMAL}-dark-top.png"))
    assert light == ("rgb(255, 255, 255)", "rgb(31, 35, 40)")
    assert dark == ("rgb(13, 17, 23)", "rgb(230, 237, 243)")
    page.close()


def test_dark_mode_changes_the_background(browser, built_dirs) -> None:
    page, _ = open_email(browser, built_dirs["2020-12-13"], 600)
    light = page.evaluate("getComputedStyle(document.querySelector('div.mailer-card')).backgroundColor")
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate("getComputedStyle(document.querySelector('div.mailer-card')).backgroundColor")
    text = page.evaluate("getComputedStyle(document.querySelector('.mailer-card h2')).color")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "email-2020-12-13-dark.png"))
    assert light == "rgb(255, 255, 255)"
    assert dark == "rgb(22, 27, 34)"
    assert text == "rgb(230, 237, 243)"
    page.close()


# Every element that shows text, its colour, and the first opaque background behind it; the WCAG 2
# contrast ratio between the two (https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio).
CONTRASTS = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const seen = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!node.textContent.trim() || element.closest('.mailer-preheader')) continue;
    const r = element.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const fg = luminance(rgb(getComputedStyle(element).color)), bg = luminance(background(element));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    seen.push([Math.round(ratio * 100) / 100, element.tagName, node.textContent.trim().slice(0, 30),
               getComputedStyle(element).color, background(element).join(',')]);
  }
  return seen;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("slug", ["2020-12-13", "2020-12-13-zh", MINIMAL])
def test_every_text_is_readable_in_both_colour_schemes(browser, built_dirs, slug: str, scheme: str) -> None:
    # What Apple Mail, iOS Mail and Outlook.com show with the reader's dark mode on: the layouts'
    # prefers-color-scheme rules. WCAG AA asks 4.5:1 for body text.
    page, _ = open_email(browser, built_dirs[slug], 600)
    page.emulate_media(color_scheme=scheme)
    texts = page.evaluate(CONTRASTS)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"email-{slug}-{scheme}.png"), full_page=True)
    assert len(texts) > 100  # every paragraph, card, caption, button and footer line was measured
    assert [t for t in texts if t[0] < 4.5] == []
    page.close()

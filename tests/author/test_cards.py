"""`mailer cards` against a local web server: what it writes into the issue, byte for byte, and how it fails."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mailer.author import pagemeta
from mailer.author.pagemeta import PageFetcher
from mailer.environment import Environment
from tests.conftest import SELF_SIGNED_CERT, write
from tests.pages_server import PagesServer, start_pages_server


def issue_with_cards(workspace: Path, cards: str) -> Path:
    return write(workspace / "issues" / "2026-12-06.yaml", f"""\
# The week's links, pasted on Tuesday.
subject: "Cards | 12.06.26"
date: 2026-12-06
preheader: 'A preheader long enough for the inbox preview line'
sections:
  - heading: Links   # the usual heading
    body: |
      Some links.
    cards:
{cards}
  - heading: After
    body: The end.
""")


def test_cards_are_filled_from_each_kind_of_metadata_and_nothing_else_changes(workspace: Path, pages: PagesServer,
                                                                             run_cli) -> None:
    u = pages.url
    before = f"""\
      - url: {u('/og')}   # OpenGraph
      - url: "{u('/twitter')}"
        # a comment inside the card
      - url: {u('/json-ld')}
        description: "The editor's own words, kept."
      - url: {u('/redirect/1')}
        title:    # empty: filled in place
      - url: {u('/cjk')}
      - url: {u('/gbk')}
      - url: {u('/shift-jis')}
      - url: {u('/big')}
        title: Written by hand
        description: Also by hand
        site: Hand"""
    path = issue_with_cards(workspace, before)
    original = path.read_text(encoding="utf-8")
    result = run_cli("cards", str(path))
    assert result.exit_code == 0, result.stdout + result.stderr
    expected = original.replace(before, f"""\
      - url: {u('/og')}   # OpenGraph
        title: Sharded Training & Half the Memory
        description: Lightning 1.1 reveals Sharded Training — train models on multiple GPUs.
        site: PyTorch Lightning
        # picture on the page (not in the email unless you add it): {u('/cover.png')}
      - url: "{u('/twitter')}"
        title: 'Depix: recovers passwords'
        description: A tool for recovering passwords from pixelized screenshots.
        # a comment inside the card
      - url: {u('/json-ld')}
        description: "The editor's own words, kept."
        title: The Zodiac 340 cipher is cracked
        site: Cipher News
      - url: {u('/redirect/1')}
        title: Sharded Training & Half the Memory
        description: Lightning 1.1 reveals Sharded Training — train models on multiple GPUs.
        site: PyTorch Lightning
        # picture on the page (not in the email unless you add it): {u('/cover.png')}
      - url: {u('/cjk')}
        title: 自然语言处理周报：GPT-3 获奖
        description: 本周 NLP 新闻 😎，包括 NeurIPS 的最佳论文。
        site: 机器之心
      - url: {u('/gbk')}
        title: 数据集：CrossNER
        description: 跨领域命名实体识别
      - url: {u('/shift-jis')}
        title: 日本語の記事
        description: 自然言語処理のニュース
      - url: {u('/big')}
        title: Written by hand
        description: Also by hand
        site: Hand""")
    assert path.read_text(encoding="utf-8") == expected
    assert "7 cards filled (7 pages fetched, 0 from the cache); 1 already complete" in result.stdout
    # The file still builds: the email shows the fetched words, escaped, and the site beside the domain.
    assert run_cli("build", str(path)).exit_code == 0
    email = (workspace / "build" / "2026-12-06" / "email.html").read_text(encoding="utf-8")
    assert "Sharded Training &amp; Half the Memory" in email and "PyTorch Lightning · 127.0.0.1" in email
    assert "cover.png" not in email  # the picture stays a suggestion


def test_failures_leave_their_cards_as_they_were_and_are_listed(workspace: Path, pages: PagesServer,
                                                               run_cli) -> None:
    u = pages.url
    cards = "\n".join(f"      - url: {u(p)}" for p in ("/missing", "/paywall", "/paper.pdf", "/slow", "/no-metadata",
                                                       "/loop", "/og"))
    path = issue_with_cards(workspace, cards)
    original = path.read_text(encoding="utf-8")
    result = run_cli("cards", str(path), "--timeout", "1")
    assert result.exit_code == 3
    out = re.sub(r"\s+", " ", result.stdout)
    for url, reason in (("/missing", "HTTP 404 Not Found"), ("/paywall", "HTTP 403 Forbidden (a paywall or a login?)"),
                        ("/paper.pdf", "not a web page (application/pdf)"), ("/slow", "timed out after 1 s"),
                        ("/no-metadata", "no title found on the page"), ("/loop", "too many redirects")):
        assert f"{u(url)} {reason}" in out, url
    assert "1 card filled (7 pages fetched, 0 from the cache), 6 failed" in out
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines == original.replace(f"      - url: {u('/og')}\n", f"      - url: {u('/og')}\n"
                                     "        title: Sharded Training & Half the Memory\n"
                                     "        description: Lightning 1.1 reveals Sharded Training — train models on "
                                     "multiple GPUs.\n        site: PyTorch Lightning\n"
                                     f"        # picture on the page (not in the email unless you add it): "
                                     f"{u('/cover.png')}\n").split("\n")


def test_a_twenty_megabyte_page_is_read_only_as_far_as_its_metadata(pages: PagesServer) -> None:
    with PageFetcher(timeout=10) as fetcher:
        result = fetcher.fetch(pages.url("/big"))
    assert result.meta is not None and result.meta.title == "A very big page"
    pages.shutdown()  # wait for the handler to see the hang-up
    assert pages.big_bytes_sent < 10 * 1024 * 1024


def test_a_compressed_page_is_inflated_only_as_far_as_the_cap_and_never_twice(pages: PagesServer) -> None:
    import tracemalloc

    from tests.pages_server import bombs

    bombs()  # made before memory is measured: 64 MB of page, gzipped (64 KB), and gzipped again (1 KB)

    def fetch_measured(path: str) -> tuple[pagemeta.Fetched, float]:
        tracemalloc.start()
        try:
            with PageFetcher(timeout=10) as fetcher:
                fetched = fetcher.fetch(pages.url(path))
            return fetched, tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()

    bomb, bomb_peak = fetch_measured("/gzip-bomb")
    twice, twice_peak = fetch_measured("/gzip-gzip")
    assert bomb.meta is not None and bomb.meta.title == "A very big page"
    assert twice.meta is None and twice.reason == ("not read: compressed more than once (Content-Encoding: gzip, "
                                                   "gzip), so a few KB could stand for gigabytes")
    # Reading 2 MB of page and its metadata takes about 24 MB. Before, each 64 KB read was inflated
    # whole (64 MB) before the cap looked at it: 85 MB; and through both decoders when gzipped twice: 141 MB.
    assert bomb_peak < 48 and twice_peak < 4, (bomb_peak, twice_peak)
    with PageFetcher(timeout=10) as fetcher:
        for path in ("/gzip", "/deflate", "/raw-deflate"):
            meta = fetcher.fetch(pages.url(path)).meta
            assert meta is not None and meta.title == "Sharded Training & Half the Memory", path
        brotli = fetcher.fetch(pages.url("/brotli"))
    assert brotli.reason == "not read: compressed as br, which was not asked for"


def test_a_rerun_is_served_from_the_cache_offline_and_refresh_fetches_again(workspace: Path, pages: PagesServer,
                                                                           run_cli) -> None:
    path = issue_with_cards(workspace, f"      - url: {pages.url('/og')}\n      - url: {pages.url('/cjk')}")
    original = path.read_text(encoding="utf-8")
    assert run_cli("cards", str(path)).exit_code == 0
    filled = path.read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")  # the editor undid it
    pages.shutdown()
    pages.server_close()  # offline now
    again = run_cli("cards", str(path))
    assert again.exit_code == 0 and "(0 pages fetched, 2 from the cache)" in again.stdout
    assert path.read_text(encoding="utf-8") == filled
    path.write_text(original, encoding="utf-8")
    refreshed = run_cli("cards", str(path), "--refresh", "--timeout", "1")
    assert refreshed.exit_code == 3 and "connection refused" in refreshed.stdout
    assert path.read_text(encoding="utf-8") == original


def test_an_interrupted_run_leaves_the_file_as_it_was(workspace: Path, pages: PagesServer, run_cli,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = issue_with_cards(workspace, f"      - url: {pages.url('/og')}\n      - url: {pages.url('/twitter')}")
    original = path.read_bytes()

    def interrupted(self, url):
        raise KeyboardInterrupt

    monkeypatch.setattr(PageFetcher, "fetch", interrupted)
    assert run_cli("cards", str(path)).exit_code == 130
    assert path.read_bytes() == original
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


@pytest.fixture
def public_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PagesServer, Counter[str]]]:
    """A pages server on 127.0.0.2 standing for a public site, `news.example` (there is no DNS here).

    The guard's lookup (linkcheck._resolve) answers 127.0.0.2 for news.example and counts the lookups
    of each name; 127.0.0.2 is judged a public address. Every other name and address is looked up and
    judged as the real code does.
    """
    from mailer.checks import linkcheck

    server = start_pages_server(address=("127.0.0.2", 0))
    lookups: Counter[str] = Counter()
    resolve, is_private = linkcheck._resolve, linkcheck._is_private_address

    def counted(host: str, port: int, timeout: float) -> list:
        lookups[host] += 1
        return resolve("127.0.0.2" if host == "news.example" else host, port, timeout)

    monkeypatch.setattr(linkcheck, "_resolve", counted)
    monkeypatch.setattr(linkcheck, "_is_private_address", lambda address: str(address) != "127.0.0.2"
                        and is_private(address))
    yield server, lookups
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[PagesServer]:
    """A proxy from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) that records what it is asked."""
    server = start_pages_server()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, server.base)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield server
    server.shutdown()
    server.server_close()


def test_a_public_link_may_not_lead_into_this_machine_by_any_name(pages: PagesServer, public_site, proxy) -> None:
    news, lookups = public_site
    port = news.server_address[1]
    private = [pages.url("/og"), f"http://localhost:{pages.server_address[1]}/og", "http://localhost./",
               "http://127.0.0.1./", f"http://[::1]:{pages.server_address[1]}/", "http://2130706433/",
               "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/"]
    # Names this machine cannot look up: once fetched through a proxy (which looked them up itself).
    unresolved = ["http://metadata.google.internal/computeMetadata/v1/", "http://127.0.0.1.nip.io/"]
    # The proxy variable as the CLI reads it, for the fetch's error to name.
    with PageFetcher(timeout=2, proxy_variable=Environment.read(os.environ).proxy_variable) as fetcher:
        assert fetcher.fetch(f"http://news.example:{port}/og").meta is not None  # the public site itself
        for target in private + unresolved:
            result = fetcher.fetch(f"http://news.example:{port}/to?{target}")
            assert result.meta is None, target
            if target in private:
                assert result.reason == f"redirects to {target}, a private or local address", target
            else:
                assert (result.reason or "").startswith(f"name not resolved: {urlsplit(target).hostname} "), target
    assert sum(pages.hits.values()) == 0 and sum(proxy.hits.values()) == 0
    assert "HTTPS_PROXY is set and not used" in (result.reason or "")


def test_the_address_checked_is_the_address_connected_to(public_site, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailer.checks import linkcheck

    news, _ = public_site
    port = news.server_address[1]
    # A rebinding name: public (127.0.0.2) the first time a fetch asks, 127.0.0.1 every time after,
    # where another server listens on the same port.
    inside = start_pages_server(address=("127.0.0.1", port))
    asked: list[str] = []
    resolve = linkcheck._resolve

    def rebinding(host: str, p: int, timeout: float) -> list:
        if host == "news.example":
            asked.append(host)
            return resolve(host if len(asked) == 1 else "127.0.0.1", p, timeout)
        return resolve(host, p, timeout)

    monkeypatch.setattr(linkcheck, "_resolve", rebinding)
    try:
        with PageFetcher(timeout=2) as fetcher:
            fetched = fetcher.fetch(f"http://news.example:{port}/og")
            asked_for_it = len(asked)
            asked.clear()
            # A redirect to the same name is a new connection: looked up again, and judged again.
            redirected = fetcher.fetch(f"http://news.example:{port}/redirect/1")
    finally:
        inside.shutdown()
        inside.server_close()
    assert fetched.meta is not None and fetched.meta.title == "Sharded Training & Half the Memory"
    assert asked_for_it == 1 and news.hits["/og"] == 1
    assert redirected.reason == f"redirects to http://news.example:{port}/redirect/2, a private or local address"
    assert news.hits["/redirect/1"] == 1 and sum(inside.hits.values()) == 0
    assert set(news.host_headers) == {f"news.example:{port}"}  # the name, not the address connected to


def test_tls_is_checked_for_the_name_not_the_address_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailer.checks import linkcheck

    secure = start_pages_server(tls=True)  # on 127.0.0.1, with a certificate for 127.0.0.1 only
    port = secure.server_address[1]
    monkeypatch.setenv("SSL_CERT_FILE", str(SELF_SIGNED_CERT))
    resolve = linkcheck._resolve
    monkeypatch.setattr(linkcheck, "_resolve", lambda host, p, timeout: resolve(
        "127.0.0.1" if host == "cert.example" else host, p, timeout))
    try:
        with PageFetcher(timeout=2) as fetcher:
            trusted = fetcher.fetch(secure.url("/og"))
            named = fetcher.fetch(f"https://cert.example:{port}/og")  # connected to 127.0.0.1, checked as its name
    finally:
        secure.shutdown()
        secure.server_close()
    assert trusted.meta is not None and trusted.meta.title == "Sharded Training & Half the Memory"
    assert named.meta is None and named.reason == ("TLS certificate problem: Hostname mismatch, certificate is not "
                                                   "valid for 'cert.example'.")
    assert secure.hits == {"/og": 1}


def test_a_card_written_on_one_line_is_reported_not_rewritten(workspace: Path, pages: PagesServer, run_cli) -> None:
    path = issue_with_cards(workspace, f"      - {{url: {pages.url('/og')}}}")
    original = path.read_text(encoding="utf-8")
    result = run_cli("cards", str(path))
    assert result.exit_code == 1
    assert ("2026-12-06.yaml:10: sections[0].cards[0]: this card is written in a way mailer cards cannot add lines "
            "to (on one line as {url: …}" in result.stderr)
    assert path.read_text(encoding="utf-8") == original


def test_fetched_text_is_cleaned() -> None:
    page = ('<html><head><meta property="og:title" content="Caf\u00c3\u00a9 &amp;amp; cr\u00c3\u00a8me\u200b">'
            f'<meta property="og:description" content="{"word " * 80}"></head></html>')
    meta = pagemeta.read_page("https://example.org/", "https://example.org/", "text/html; charset=utf-8",
                              page.encode("utf-8"))
    assert meta.title == "Café & crème"  # mojibake repaired, entities decoded twice, zero-width space gone
    assert any("repaired mojibake" in note for note in meta.notes)
    assert meta.description is not None and meta.description.endswith("word…") and len(meta.description) <= 200
    assert html.unescape(meta.description) == meta.description


def test_metadata_escaping_half_a_surrogate_pair_is_written_without_it(workspace: Path, pages: PagesServer,
                                                                        run_cli) -> None:
    path = issue_with_cards(workspace, f"      - url: {pages.url('/half-surrogate')}")
    result = run_cli("cards", str(path))
    # The page's JSON-LD escapes half a pair in two fields: once a UnicodeEncodeError's traceback.
    assert result.exit_code == 0, result.stderr
    text = path.read_text(encoding="utf-8")
    assert "title: Half a pair\n        description: Bad text\n        site: Site\n" in text
    assert "left out what the page escaped as half of a surrogate pair" in result.stdout + result.stderr


def test_a_json_ld_block_nested_past_the_parsers_depth_is_passed_over(workspace: Path, pages: PagesServer,
                                                                        run_cli) -> None:
    path = issue_with_cards(workspace, f"      - url: {pages.url('/deep-json-ld')}")
    result = run_cli("cards", str(path))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "title: Deep but fine\n" in path.read_text(encoding="utf-8")


def test_a_servers_status_phrase_with_an_escape_is_shown_as_text(workspace: Path, pages: PagesServer,
                                                                   run_cli) -> None:
    path = issue_with_cards(workspace, f"      - url: {pages.url('/escaped-reason')}")
    result = run_cli("cards", str(path))
    assert result.exit_code == 3 and "\x1b" not in result.stdout + result.stderr
    assert "\\x1b]0;owned\\x07Not Found" in result.stdout + result.stderr


def test_a_title_of_a_hundred_thousand_combining_marks_gets_its_card(workspace: Path, pages: PagesServer) -> None:
    # In a child process, with a generous limit of its own: before, the title took 36 s and more (the
    # width measured again after every character), past --timeout, which did not cover reading a page.
    path = issue_with_cards(workspace, f"      - url: {pages.url('/stacked-title')}")
    result = subprocess.run([sys.executable, "-m", "mailer", "cards", str(path), "--timeout", "10"], cwd=workspace,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    title = re.search(r"\n        title: (.*)\n", path.read_text(encoding="utf-8"))
    assert title is not None and title.group(1).startswith("Z\u0301") and title.group(1).endswith("…")
    assert len(title.group(1)) <= 8 * 120 + 1  # at most 8 characters a column of the card's 120
    assert "title: stacks more than 960 characters in 1 columns (combining marks?): cut" in result.stdout


def test_reading_a_page_counts_against_the_timeout(pages: PagesServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import trafilatura.metadata

    extract = trafilatura.metadata.extract_metadata

    def slow(*args, **kwargs):  # stands for any step of reading a page that takes long
        time.sleep(1)
        return extract(*args, **kwargs)

    monkeypatch.setattr(trafilatura.metadata, "extract_metadata", slow)
    with PageFetcher(timeout=0.5) as fetcher:
        result = fetcher.fetch(pages.url("/og"))
    assert result.meta is None and result.reason == "timed out after 0.5 s"


def test_a_card_without_a_title_is_a_check_error_with_the_fix(workspace: Path, run_cli) -> None:
    path = issue_with_cards(workspace, "      - url: https://example.org/a")
    result = run_cli("check", str(path))
    assert result.exit_code == 1
    assert "2026-12-06.yaml:10:14: sections[0].cards[0].url: this card has no title" in result.stdout
    assert "run `mailer cards issues/2026-12-06.yaml`" in result.stdout
    dry_run = run_cli("send", str(path), "--subscribers", "subscribers.example.csv")
    assert "would refuse until they are fixed" in dry_run.stderr and "this card has no title" in dry_run.stderr


def test_odd_pages_and_urls_fail_alone_and_are_read_carefully(workspace: Path, pages: PagesServer, run_cli) -> None:
    u = pages.url
    cards = "\n".join(f"      - url: {address}" for address in (
        u("/xhtml"), u("/comment-only"), "https://ex..ample.com/", u("/piped-title"), u("/careful-text"),
        u("/slow-hop/0")))
    path = issue_with_cards(workspace, cards)
    result = run_cli("cards", str(path), "--timeout", "1")
    assert result.exit_code == 3 and "Traceback" not in result.stderr
    text = path.read_text(encoding="utf-8")
    out = re.sub(r"\s+", " ", result.stdout)
    assert "title: An XHTML page\n        description: Served as XHTML." in text
    assert f"{u('/comment-only')} no title found on the page" in out
    assert "https://ex..ample.com/ could not read the page" in out
    # The page's own <title> as written, not a guess from an <h1> or a split at "|".
    assert "title: Python 3.13 released | Python Insider\n" in text
    # Joiners kept (Persian spelling, an emoji family); an entity decoded once, or twice only when the page
    # escaped twice; the site's name as the site writes it.
    assert "title: 'می\u200cخواهم: family 👨\u200d👩\u200d👧 and AT&T'" in text
    assert "description: What does &nbsp; mean? a=1&copy=2\n        site: arXiv\n" in text
    # Five redirects of 0.4 s each do not fit in --timeout 1: the whole fetch is bounded.
    assert f"{u('/slow-hop/0')} timed out after 1 s" in out


def test_empty_fields_are_filled_in_place_and_a_multi_line_value_stays_whole(workspace: Path, pages: PagesServer,
                                                                             run_cli) -> None:
    u = pages.url
    before = f"""\
      - title:
        url: {u('/og')}
      - url: {u('/twitter')}
        description: "a long description
          that goes on here"
        site:"""
    path = issue_with_cards(workspace, before)
    original = path.read_text(encoding="utf-8")
    result = run_cli("cards", str(path))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert path.read_text(encoding="utf-8") == original.replace(before, f"""\
      - title: Sharded Training & Half the Memory
        url: {u('/og')}
        description: Lightning 1.1 reveals Sharded Training — train models on multiple GPUs.
        site: PyTorch Lightning
        # picture on the page (not in the email unless you add it): {u('/cover.png')}
      - url: {u('/twitter')}
        description: "a long description
          that goes on here"
        site:
        title: 'Depix: recovers passwords'""")
    assert "site is empty and the page has none: write one, or remove the line" in result.stdout


def test_a_windows_file_keeps_its_line_endings_and_an_edit_made_meanwhile_is_not_lost(
        workspace: Path, pages: PagesServer, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    path = issue_with_cards(workspace, f"      - url: {pages.url('/og')}")
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert run_cli("cards", str(path)).exit_code == 0
    data = path.read_bytes()
    assert b"title: Sharded Training & Half the Memory\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")

    path = issue_with_cards(workspace, f"      - url: {pages.url('/twitter')}")
    fetch = PageFetcher.fetch

    def editor_saves_meanwhile(self, url):
        path.write_text(path.read_text(encoding="utf-8") + "# saved by the editor\n", encoding="utf-8")
        return fetch(self, url)

    monkeypatch.setattr(PageFetcher, "fetch", editor_saves_meanwhile)
    result = run_cli("cards", str(path), "--refresh")
    assert result.exit_code == 1 and "the file changed while the pages were fetched" in result.stderr
    assert path.read_text(encoding="utf-8").endswith("# saved by the editor\n")


def test_links_that_are_never_fetched_are_not_fetched_here_either(workspace: Path, run_cli) -> None:
    # The same judgement as mailer check --links: a per-recipient link, another scheme, a malformed one.
    cards = "\n".join(f"      - url: {url}" for url in (
        "https://example.com/?name=-first_name-", "file:///etc/passwd", "javascript:alert(1)", '"http://[::1"'))
    path = issue_with_cards(workspace, cards)
    original = path.read_text(encoding="utf-8")
    result = run_cli("cards", str(path))
    out = re.sub(r"\s+", " ", result.stdout)
    assert result.exit_code == 3 and "Traceback" not in result.stderr
    assert "https://example.com/?name=-first_name- per-recipient link: -first_name- is filled in at send time" in out
    assert "file:///etc/passwd file: links are not fetched" in out
    assert "javascript:alert(1) javascript: links are not fetched" in out
    assert "http://[::1 invalid address" in out
    assert "0 cards filled (0 pages fetched, 0 from the cache), 4 failed" in out
    assert path.read_text(encoding="utf-8") == original


def test_an_issue_without_cards_says_where_links_go(workspace: Path, run_cli) -> None:
    assert run_cli("new", "2026-12-06").exit_code == 0
    result = run_cli("cards", "issues/2026-12-06.yaml")
    assert result.exit_code == 0
    assert "no card to fill: paste the week's links under a section's cards: as '- url: https://…'" in result.stdout

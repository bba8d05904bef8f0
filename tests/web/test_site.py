"""The public web output: each issue's web version, the archive page and the Atom feed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mailer.compose import placeholders
from mailer.config import load_config
from tests.conftest import MINIMAL_ISSUE, mark_sent, write

ATOM = "{http://www.w3.org/2005/Atom}"
BASE = "https://newsletter.example.com/"


class Page(HTMLParser):
    """The links and the text a reader sees (not the CSS) of an HTML page."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in_style = tag in ("style", "script")
        if tag == "a":
            self.links.append(attrs.get("href") or "")
        if tag == "img":
            self.images.append(attrs.get("src") or "")

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if not self._in_style and data.strip():
            self.text.append(data.strip())


def build_site(run_cli, out: Path):
    result = run_cli("build", "--all", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    return result


def test_build_writes_the_web_version_beside_the_email(workspace: Path, run_cli) -> None:
    result = run_cli("build", "issues/2020-12-13.yaml")
    assert result.exit_code == 0, result.stderr
    assert "web:       build/2020-12-13/index.html" in result.stdout
    page = Page((workspace / "build" / "2020-12-13" / "index.html").read_text(encoding="utf-8"))
    # A stranger reading it is greeted with the fallback, and finds the archive instead of an
    # unsubscribe link or a "view in browser" link to the page they are already on.
    assert "Hey there, welcome back!" in " ".join(page.text)
    assert "Unsubscribe" not in page.text and "View in browser" not in page.text
    assert BASE in page.links and "All issues" in page.text
    assert "You are reading the web version of The NLP Cypher." in page.text
    assert all(src.startswith(BASE + "2020-12-13/img/") for src in page.images)
    # The email itself still carries its per-recipient links.
    email = Page((workspace / "build" / "2020-12-13" / "email.html").read_text(encoding="utf-8"))
    assert placeholders.UNSUBSCRIBE_URL in email.links and placeholders.WEB_URL in email.links


def test_web_version_speaks_the_issue_language(workspace: Path, run_cli) -> None:
    build_site(run_cli, workspace / "site")
    html = (workspace / "site" / "2020-12-13-zh" / "index.html").read_text(encoding="utf-8")
    assert 'lang="zh"' in html
    assert "您正在阅读 The NLP Cypher 的网页版。" in Page(html).text
    assert "往期内容" in Page(html).text


def test_feed_is_atom_with_one_entry_per_issue(workspace: Path, run_cli) -> None:
    site = workspace / "site"
    result = build_site(run_cli, site)
    assert "archive: site/index.html" in result.stdout and "feed:    site/feed.xml" in result.stdout
    raw = (site / "feed.xml").read_bytes()
    assert raw.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    feed = ET.fromstring(raw)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}id") == BASE
    assert feed.findtext(f"{ATOM}title") == "The NLP Cypher"
    assert feed.findtext(f"{ATOM}updated") == "2020-12-13T00:00:00Z"
    assert feed.find(f"{ATOM}author/{ATOM}name").text == "The NLP Cypher"
    self_links = [link.get("href") for link in feed.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert self_links == [BASE + "feed.xml"]

    entries = {entry.findtext(f"{ATOM}id"): entry for entry in feed.findall(f"{ATOM}entry")}
    assert sorted(entries) == [BASE + "2020-12-13-zh/", BASE + "2020-12-13/"]
    english = entries[BASE + "2020-12-13/"]
    assert english.findtext(f"{ATOM}title") == "The NLP Cypher | 12.13.20"
    assert english.findtext(f"{ATOM}summary").endswith("the Zodiac 340 cipher is cracked & more")
    assert english.findtext(f"{ATOM}updated") == "2020-12-13T00:00:00Z"
    assert entries[BASE + "2020-12-13-zh/"].findtext(f"{ATOM}title") == "The NLP Cypher 中文版 | 12.13.20 🔥"
    for url, entry in entries.items():
        link = entry.find(f"{ATOM}link")
        assert link.get("href") == url and link.get("rel") == "alternate"
        # Every link lands on a page that was written: the URL minus the base is its folder.
        assert (site / url.removeprefix(BASE) / "index.html").is_file()


def test_archive_lists_issues_newest_first(workspace: Path, run_cli) -> None:
    write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE)
    site = workspace / "site"
    build_site(run_cli, site)
    page = Page((site / "index.html").read_text(encoding="utf-8"))
    issue_links = [link for link in page.links if link != BASE + "feed.xml"]
    assert issue_links == [BASE + "2026-11-29/", BASE + "2020-12-13/", BASE + "2020-12-13-zh/"]
    assert "Weekly digest #1" in page.text and "2026-11-29" in page.text
    assert "Three links worth your Sunday" in page.text
    feed = ET.fromstring((site / "feed.xml").read_bytes())
    assert feed.findtext(f"{ATOM}updated") == "2026-11-29T00:00:00Z"
    assert feed.find(f"{ATOM}entry").findtext(f"{ATOM}id") == BASE + "2026-11-29/"


def test_site_images_are_published_where_the_pages_point(workspace: Path, run_cli) -> None:
    site = workspace / "site"
    build_site(run_cli, site)
    for slug in ("2020-12-13", "2020-12-13-zh"):
        images = Page((site / slug / "index.html").read_text(encoding="utf-8")).images
        assert len(images) >= 4
        for src in images:
            assert src.startswith(BASE)
            assert (site / src.removeprefix(BASE)).is_file(), src
    # Only the public part: no email sources with their placeholders, no compiled MJML.
    assert sorted(p.name for p in (site / "2020-12-13").iterdir()) == ["img", "index.html"]


def test_no_personal_data_or_placeholder_in_the_web_output(workspace: Path, run_cli) -> None:
    personal = MINIMAL_ISSUE.replace(
        "subject: \"Weekly digest #1\"", "subject: \"-first_name-, your weekly digest\"").replace(
        "here is [a link](https://example.com/a).",
        "this copy is for -email-. [Unsubscribe here](-unsubscribe_url-) or [read it online](-web_url-).")
    write(workspace / "issues" / "2026-11-29.yaml", personal)
    site = workspace / "site"
    build_site(run_cli, site)
    config = load_config(workspace)
    subscribers = (workspace / "subscribers.example.csv").read_text(encoding="utf-8")
    addresses = set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", subscribers))
    assert addresses
    files = [p for p in site.rglob("*") if p.suffix in (".html", ".xml")]
    assert len(files) == 5
    for path in files:
        content = path.read_text(encoding="utf-8")
        assert placeholders.SHAPE.findall(content) == [], path
        assert config.unsubscribe_url not in content and "token=" not in content, path
        assert not [a for a in addresses if a in content], path
        assert config.sender.email not in content, path
    new = Page((site / "2026-11-29" / "index.html").read_text(encoding="utf-8"))
    assert "Hello there, this copy is for ." in " ".join(new.text)
    assert BASE + "2026-11-29/" in new.links  # the "read it online" link is the page itself
    feed = ET.fromstring((site / "feed.xml").read_bytes())
    assert feed.find(f"{ATOM}entry").findtext(f"{ATOM}title") == "there, your weekly digest"


def test_an_issue_that_does_not_build_is_skipped_with_its_problem_and_blocks_nothing(workspace: Path,
                                                                                    run_cli) -> None:
    write(workspace / "issues" / "bad-date.yaml", MINIMAL_ISSUE.replace("date: 2026-11-29", "date: soon"))
    write(workspace / "issues" / "no-sections.yaml", MINIMAL_ISSUE.split("sections:")[0])
    result = run_cli("build", "--all", "--out", "site")
    assert result.exit_code == 0, result.stderr
    assert "issues/bad-date.yaml: does not build: issues/bad-date.yaml:2:7: date: 'soon' is not a date" in result.stdout
    assert "issues/no-sections.yaml: does not build" in result.stdout and "sections" in result.stdout
    assert sorted(p.name for p in (workspace / "site").iterdir()) == ["2020-12-13", "2020-12-13-zh", "feed.xml",
                                                                     "index.html"]


def test_a_sent_issue_that_does_not_build_publishes_nothing(workspace: Path, run_cli, state_dir: Path) -> None:
    write(workspace / "issues" / "bad-date.yaml", MINIMAL_ISSUE.replace("date: 2026-11-29", "date: soon"))
    mark_sent(state_dir, "bad-date")
    result = run_cli("build", "--all")
    assert result.exit_code == 1
    assert "issues/bad-date.yaml: was sent, so its web version must be published" in result.stderr
    assert "'soon' is not a date" in result.stderr and not (workspace / "site").exists()


def test_next_weeks_draft_is_skipped_with_why_and_never_published_even_forced(workspace: Path, run_cli) -> None:
    from datetime import date

    from mailer.author.skeleton import next_sunday

    assert run_cli("new").exit_code == 0
    draft = f"issues/{next_sunday(date.today()).isoformat()}.yaml"
    for args in ((), ("--force",)):
        result = run_cli("build", "--all", *args)
        assert result.exit_code == 0, result.stderr
        assert "2 issues → site/" in result.stdout
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(draft))
        assert "after today, and not sent" in line and "unfinished copy: 'TODO'" in line
        assert sorted(p.name for p in (workspace / "site").iterdir()) == ["2020-12-13", "2020-12-13-zh",
                                                                         "feed.xml", "index.html"]
        site = (workspace / "site" / "index.html").read_text() + (workspace / "site" / "feed.xml").read_text()
        assert "TODO" not in site and Path(draft).stem not in site


def test_a_draft_published_by_an_earlier_build_is_taken_out(workspace: Path, run_cli) -> None:
    write(workspace / "site" / "2026-11-29" / "index.html", "<p>TODO</p>")  # as --force published drafts
    write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE.replace("Hello", "TODO: hello"))
    result = run_cli("build", "--all")
    assert result.exit_code == 0, result.stderr
    assert "(removed site/2026-11-29/, published before)" in result.stdout
    assert not (workspace / "site" / "2026-11-29").exists()


def test_a_sent_issue_is_published_whatever_its_date(workspace: Path, run_cli, state_dir: Path) -> None:
    # Scheduled for next week and sent (SendGrid holds it): its readers' "view in browser" links must work.
    write(workspace / "issues" / "2099-01-04.yaml", MINIMAL_ISSUE.replace("date: 2026-11-29", "date: 2099-01-04"))
    skipped = run_cli("build", "--all")
    assert "issues/2099-01-04.yaml: dated 2099-01-04, after today, and not sent" in skipped.stdout
    mark_sent(state_dir, "2099-01-04")
    mark_sent(state_dir, "2020-12-13@sandbox")  # a sandbox send delivers nothing: it counts for nothing
    published = run_cli("build", "--all")
    assert published.exit_code == 0, published.stderr
    assert "3 issues → site/" in published.stdout and "skipped" not in published.stdout
    assert (workspace / "site" / "2099-01-04" / "index.html").is_file()


def test_only_drafts_publish_nothing_and_say_why(workspace: Path, run_cli) -> None:
    for path in (workspace / "issues").glob("*.yaml"):
        path.unlink()
    write(workspace / "issues" / "2099-01-04.yaml", MINIMAL_ISSUE.replace("date: 2026-11-29", "date: 2099-01-04"))
    result = run_cli("build", "--all")
    assert result.exit_code == 1 and "no finished issue to publish" in result.stderr
    assert "skipped issues/2099-01-04.yaml: dated 2099-01-04, after today, and not sent" in result.stderr
    assert not (workspace / "site").exists()


def test_all_defaults_to_site_folder(workspace: Path, run_cli) -> None:
    result = run_cli("build", "--all")
    assert result.exit_code == 0, result.stderr
    assert (workspace / "site" / "feed.xml").is_file()
    assert f"Publish site/ at {BASE}" in result.stdout


@pytest.mark.parametrize("args", [("build",), ("build", "--all", "issues/2020-12-13.yaml")])
def test_all_or_files_is_a_usage_error(workspace: Path, run_cli, args) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2
    assert "--all" in result.stderr


def test_site_leaves_other_files_in_the_folder_alone(workspace: Path, run_cli) -> None:
    site = workspace / "site"
    write(site / "CNAME", "newsletter.example.com\n")
    build_site(run_cli, site)
    assert (site / "CNAME").read_text() == "newsletter.example.com\n"
    assert not [p for p in site.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_a_due_issue_with_check_errors_is_skipped_and_force_publishes_it_but_never_a_todo(workspace: Path,
                                                                                        run_cli) -> None:
    write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE.replace("Hello -first_name-,", "Hello -frist_name-,"))
    write(workspace / "issues" / "2026-11-22.yaml", MINIMAL_ISSUE.replace("date: 2026-11-29", "date: 2026-11-22")
          .replace("Weekly digest #1", "Weekly digest #0").replace("Hello", "TODO: finish this. Hello"))
    skipped = run_cli("build", "--all")
    assert skipped.exit_code == 0, skipped.stderr
    assert ("issues/2026-11-29.yaml: 1 error found by mailer check, the first: issues/2026-11-29.yaml:7"
            in skipped.stdout)
    assert "-frist_name-" in skipped.stdout and not (workspace / "site" / "2026-11-29").exists()
    forced = run_cli("build", "--all", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert "warning: publishing issues/2026-11-29.yaml despite 1 error found by mailer check" in forced.stderr
    assert (workspace / "site" / "2026-11-29" / "index.html").exists()
    # Unfinished copy is never published, --force or not.
    assert "issues/2026-11-22.yaml: 1 error found by mailer check, 1 of them unfinished copy" in forced.stdout
    assert not (workspace / "site" / "2026-11-22").exists()


def test_the_fallback_name_is_per_language(workspace: Path, run_cli) -> None:
    assert run_cli("build", "--all").exit_code == 0
    chinese = (workspace / "site" / "2020-12-13-zh" / "index.html").read_text(encoding="utf-8")
    english = (workspace / "site" / "2020-12-13" / "index.html").read_text(encoding="utf-8")
    assert "嘿 朋友，欢迎回来！" in chinese and "there" not in chinese.split("<body", 1)[1]
    assert "Hey there, welcome back!" in english


def test_one_fallback_for_every_language_still_works(workspace: Path, run_cli) -> None:
    settings = workspace / "mailer.yaml"
    text = settings.read_text(encoding="utf-8").replace("first_name_fallback:\n  en: there\n  zh: 朋友\n",
                                                        "first_name_fallback: friend\n")
    settings.write_text(text, encoding="utf-8")
    assert run_cli("build", "--all").exit_code == 0
    assert "嘿 friend" in (workspace / "site" / "2020-12-13-zh" / "index.html").read_text(encoding="utf-8")

"""Hostile input that crosses stages: each case is refused where it enters, and every command that reads it agrees.

docs/hostile-input.md lists what the suite tries and what each input gets.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.web.test_preview import get, start

CANARY = b"\x89PNG canary outside the issue folder"
ISSUE = "issues/2020-12-13.yaml"
HERO = Path("issues/img/hero-storm.png")  # issues/2020-12-13.yaml, line 8: `url: img/hero-storm.png`


def link_the_hero_image(workspace: Path, tmp_path: Path, kind: str) -> None:
    """Replace the sample's hero image with a symlink: to a file outside the workspace, or to a folder."""
    hero = workspace / HERO
    hero.unlink()
    if kind == "file outside":
        outside = tmp_path / "secret.png"
        outside.write_bytes(CANARY)
        hero.symlink_to(outside)
    elif kind == "folder outside":
        hero.symlink_to(tmp_path, target_is_directory=True)
    else:  # a folder inside the issue's folder, named like an image
        (workspace / "issues/img/folder.png").mkdir()
        hero.symlink_to("folder.png", target_is_directory=True)


@pytest.mark.parametrize("kind", ["file outside", "folder outside", "folder inside"])
def test_a_symlinked_image_is_refused_by_build_check_and_publish(workspace: Path, tmp_path: Path, run_cli,
                                                                  kind: str) -> None:
    link_the_hero_image(workspace, tmp_path, kind)
    reason = "is a folder, not an image file" if kind == "folder inside" else "outside issues/"
    for args in (["build", ISSUE], ["build", "--all"], ["check", ISSUE]):
        result = run_cli(*args)
        assert result.exit_code == 1, (args, result.stdout, result.stderr)
        output = result.stdout + result.stderr
        assert f"{ISSUE}:8:8: hero.url: image 'img/hero-storm.png'" in output and reason in output, args
        assert "Traceback" not in output
    written = [path for folder in ("build", "site") for path in (workspace / folder).rglob("*") if path.is_file()]
    assert not [path for path in written if CANARY in path.read_bytes()]
    assert not (workspace / "site").exists()  # publishing refused: nothing half-written


def test_the_preview_never_serves_a_symlinked_image(workspace: Path, tmp_path: Path) -> None:
    link_the_hero_image(workspace, tmp_path, "file outside")
    running = start(workspace)
    try:
        status, _, body = get(running, f"/issues/2020-12-13/{HERO.relative_to('issues').as_posix()}")
        page_status, _, page = get(running, "/preview/2020-12-13")
    finally:
        running.shutdown()
        running.server_close()
    assert status == 404 and CANARY not in body
    assert page_status == 200 and b"outside issues/" in page  # the editor sees why, in the page


def test_an_image_linked_inside_the_issue_folder_still_works(workspace: Path, run_cli) -> None:
    hero = workspace / HERO
    hero.rename(workspace / "issues/img/hero-original.png")
    hero.symlink_to("hero-original.png")
    assert run_cli("build", ISSUE).exit_code == 0
    copied = workspace / "build/2020-12-13/img/hero-storm.png"
    assert not copied.is_symlink() and copied.read_bytes() == (REPO / HERO).read_bytes()


# -- header injection ----------------------------------------------------------------------------

INJECTION = "=?utf-8?q?X=0D=0ABcc:_x@evil.example?="  # decodes to "X\r\nBcc: x@evil.example"


def set_subject(workspace: Path, subject: str) -> None:
    issue = workspace / ISSUE
    text = issue.read_text(encoding="utf-8")
    issue.write_text(text.replace('subject: "The NLP Cypher | 12.13.20"', f'subject: "{subject}"', 1), encoding="utf-8")


@pytest.mark.parametrize(("subject", "column", "reason"), [
    (f"Weekly {INJECTION}", 18, "contains an encoded word (=?utf-8?q?X=0D=0ABcc:_x@evil.…) that decodes to a "
                                "carriage return"),
    ("Weekly\\u2028Bcc: x@evil.example", 17, "contains a line separator (U+2028)"),
    ("Weekly\\u0085digest", 17, "contains a next-line character (U+0085)"),
    ("Weekly\\vdigest", 17, "contains a vertical tab"),
])
def test_a_subject_that_would_inject_a_header_is_refused_everywhere_with_its_column(
        workspace: Path, run_cli, subject: str, column: int, reason: str) -> None:
    set_subject(workspace, subject)
    for args in (["build", ISSUE], ["check", ISSUE], ["send", ISSUE, "--subscribers", "subscribers.example.csv"]):
        result = run_cli(*args)
        output = result.stdout + result.stderr
        assert result.exit_code == 1, (args, output)
        assert f"{ISSUE}:1:{column}: subject: " in output and reason in output, (args, output)
        assert "Traceback" not in output
    assert not (workspace / "build").exists()


def test_the_preview_shows_an_injecting_subject_as_a_problem_not_a_500(workspace: Path) -> None:
    set_subject(workspace, "Weekly\\u2028digest")
    running = start(workspace)
    try:
        page = get(running, "/preview/2020-12-13")
        email = get(running, "/issues/2020-12-13/email.html")
    finally:
        running.shutdown()
        running.server_close()
    assert page[0] == 200 and b"contains a line separator (U+2028)" in page[2]
    assert email[0] in (404, 200) and email[0] != 500


@pytest.mark.parametrize(("key", "line", "column"), [("name", 3, 7), ("from.name", 5, 9)])
def test_settings_that_would_inject_a_header_are_refused_at_load(workspace: Path, run_cli, key: str, line: int,
                                                                 column: int) -> None:
    settings = workspace / "mailer.yaml"
    text = settings.read_text(encoding="utf-8").splitlines()
    assert text[line - 1].lstrip().startswith(key.split(".")[-1] + ":")
    text[line - 1] = text[line - 1].split(":")[0] + f': "Cypher {INJECTION}"'
    settings.write_text("\n".join(text) + "\n", encoding="utf-8")
    result = run_cli("send", ISSUE, "--subscribers", "subscribers.example.csv")
    assert result.exit_code == 1
    assert f"mailer.yaml:{line}:{column + 8}: {key}: contains an encoded word" in result.stderr, result.stderr


# -- per-recipient values in links -----------------------------------------------------------------

LINK_ISSUE = """\
subject: "Weekly digest #1"
date: 2026-11-29
preheader: "Three links worth your Sunday, picked for you"
sections:
  - heading: News
    body: |
      Hello -first_name-, here is [your page](https://example.com/welcome?name=-first_name-&who=-email-).
"""
HOSTILE_NAME = "x&role=admin#"


def test_a_first_name_in_a_link_is_percent_encoded_in_every_part_and_backend(workspace: Path, run_cli,
                                                                            state_dir: Path) -> None:
    import json

    from tests.conftest import write, write_subscribers
    from tests.loopback_smtp import parse

    write(workspace / "issues" / "links.yaml", LINK_ISSUE)
    csv = write_subscribers(workspace, [f"ann@example.com,{HOSTILE_NAME},,subscribed,"])
    assert run_cli("send", "issues/links.yaml", "--subscribers", str(csv)).exit_code == 0
    outbox = state_dir / "outbox" / "links"
    body = json.loads((outbox / "sendgrid" / "request-00001.json").read_text(encoding="utf-8"))
    assert "?name=-first_name_url-&amp;who=-email_url-" in body["content"][1]["value"]
    assert "?name=-first_name_url-&who=-email_url-" in body["content"][0]["value"]
    substitutions = body["personalizations"][0]["substitutions"]
    assert substitutions["-first_name_url-"] == "x%26role%3Dadmin%23"
    assert substitutions["-email_url-"] == "ann%40example.com"
    assert substitutions["-first_name-"] == HOSTILE_NAME  # the greeting reads as the reader wrote it
    (eml,) = (outbox / "eml").iterdir()
    message = parse(eml.read_bytes())
    text, html = (part.get_content() for part in message.get_payload())
    assert 'href="https://example.com/welcome?name=x%26role%3Dadmin%23&amp;who=ann%40example.com"' in html
    assert "https://example.com/welcome?name=x%26role%3Dadmin%23&who=ann%40example.com" in text
    assert f"Hello {HOSTILE_NAME.replace('&', '&amp;')}," in html and f"Hello {HOSTILE_NAME}," in text


def test_a_placeholder_in_a_link_host_is_a_check_error(workspace: Path, run_cli) -> None:
    from tests.conftest import write

    write(workspace / "issues" / "host.yaml", LINK_ISSUE.replace("https://example.com/welcome?name=-first_name-",
                                                                 "https://-first_name-.example.com/welcome?x=1"))
    result = run_cli("check", "issues/host.yaml")
    assert result.exit_code == 1
    assert ("issues/host.yaml:7: sections[0].body: 'https://-first_name-.example.com/welcome?x=1&who=-email-' "
            "has -first_name- in its host") in result.stdout, result.stdout


def test_terminal_escapes_in_a_list_never_reach_the_terminal(workspace: Path, run_cli) -> None:
    from tests.conftest import write_subscribers

    csv = write_subscribers(workspace, ["ok@example.com,Ok,,subscribed,",
                                        "esc\x1b[2J@example.com,Esc,,subscribed,",
                                        "title@example.com,\x1b]0;owned\x07Ann,,subscribed,",
                                        "csi@example.com,Ann\x9b31m,,subscribed,"])
    result = run_cli("send", ISSUE, "--subscribers", str(csv), "--skip-invalid")
    assert result.exit_code == 0, result.stderr
    output = result.stdout + result.stderr
    assert "\x1b" not in output and "\x07" not in output and "\x9b" not in output
    assert "skip esc\\x1b[2J@example.com (line 3): invalid email address" in output
    assert "(line 4): first_name contains the control character U+001B" in output
    assert "would send to: ok@example.com" in output


# -- one bad file must not stop the others -------------------------------------------------------------

DRAFT = "issues/2026-03-01.yaml"  # the latest file in issues/: what `mailer new` would start from
# Values PyYAML and ruamel.yaml turn into a ValueError (a day that does not exist, a year 0, more digits
# than Python reads), and a `!!set` where the sections go; each with the line and column it is written at.
BAD_VALUES = {
    "impossible date": ("date: 2020-12-13", "date: 2026-02-30", "3:7: date: "),
    "year 0000": ("date: 2020-12-13", "date: 0000-01-01", "3:7: date: "),
    "5,000 digits": ("lang: en", "lang: en\nnumber: " + "9" * 5000, "6:9: number: "),
    "!!set sections": ("sections:\n", "sections: !!set {a, b}\nold_sections:\n", "17:11: sections: "),
}


def write_draft(workspace: Path, kind: str) -> None:
    old, new, _ = BAD_VALUES[kind]
    text = (workspace / ISSUE).read_text(encoding="utf-8").replace(old, new, 1)
    (workspace / DRAFT).write_text(text.replace("date: 2020-12-13", "date: 2026-03-01", 1), encoding="utf-8")


@pytest.mark.parametrize("kind", list(BAD_VALUES))
def test_a_bad_draft_beside_the_issue_stops_no_command_on_it(workspace: Path, run_cli, sendgrid, kind: str) -> None:
    write_draft(workspace, kind)
    for args in (["check", ISSUE], ["send", ISSUE, "--subscribers", "subscribers.example.csv"],
                 ["send", ISSUE, "--test-to", "editor@example.com", "--live"],
                 ["send", ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes"]):
        result = run_cli(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
    assert len(sendgrid.accepted) > 1  # the test send and the whole list
    new = run_cli("new", "2021-01-03")
    assert new.exit_code == 0, new.stderr
    assert "← the structure of issues/2020-12-13.yaml" in new.stdout
    assert f"warning: left out: {DRAFT}:" in new.stderr  # the draft it did not start from, named
    running = start(workspace)
    try:
        pages = [get(running, target) for target in ("/", "/preview/2020-12-13", "/preview/2026-03-01")]
    finally:
        running.shutdown()
        running.server_close()
    assert [status for status, _, _ in pages] == [200, 200, 200]


@pytest.mark.parametrize("kind", list(BAD_VALUES))
def test_a_bad_value_in_the_issue_itself_is_an_error_with_its_line_and_column(workspace: Path, run_cli,
                                                                             kind: str) -> None:
    write_draft(workspace, kind)
    where = f"{DRAFT}:{BAD_VALUES[kind][2]}"
    for args in (["build", DRAFT], ["check", DRAFT], ["new", "2026-03-08", "--from", DRAFT]):
        result = run_cli(*args)
        output = result.stdout + result.stderr
        assert result.exit_code == 1, (args, output)
        assert where in output and "Traceback" not in output, (args, output)
    assert not (workspace / "issues/2026-03-08.yaml").exists() and not (workspace / "build").exists()


def run_mailer(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mailer ARGS…` as a child process, stopped after 30 s: the input below used to run for minutes."""
    return subprocess.run([sys.executable, "-m", "mailer", *args], cwd=workspace, capture_output=True, text=True,
                          timeout=30, check=False)


def test_yaml_aliases_are_refused_with_their_line_not_expanded(workspace: Path) -> None:
    # 2.5 KB standing for 200 sections × 200 list items × 200 links: 8 million links once expanded.
    def repeated(name: str) -> str:
        return ", *".join([""] + [name] * 199)

    link = "&l {label: L, url: 'https://example.com/'}"
    item = f"&i {{title: T, links: [{link}{repeated('l')}]}}"
    section = f"&s {{heading: H, list: [{item}{repeated('i')}]}}"
    text = f"subject: Aliases\ndate: 2026-03-01\npreheader: Eight million links\nsections: [{section}{repeated('s')}]\n"
    (workspace / DRAFT).write_text(text, encoding="utf-8")
    refused = f"{DRAFT}:4:101: '*l' repeats the value marked '&l' on line 4 (199 uses in the file): mailer does " \
              "not read YAML aliases"
    for args in (["check", DRAFT], ["build", DRAFT], ["new", "2026-03-08", "--from", DRAFT], ["cards", DRAFT]):
        result = run_mailer(workspace, *args)
        assert result.returncode == 1 and refused in result.stdout + result.stderr, (args, result)
        assert "hint: write the value out in full where '*l' stands" in result.stdout + result.stderr
    # Beside this week's issue: named, and this week's check and the new file go on.
    check = run_mailer(workspace, "check", ISSUE)
    assert check.returncode == 0, check.stdout
    assert f"{DRAFT}:4:101: not compared with this issue for a repeated subject or date: '*l' repeats" in check.stdout
    new = run_mailer(workspace, "new", "2021-01-03")
    assert new.returncode == 0 and f"warning: left out: {DRAFT}:4:101: '*l' repeats" in new.stderr
    running = start(workspace)
    try:
        page = get(running, "/preview/2026-03-01")
        sample = get(running, "/preview/2020-12-13")
    finally:
        running.shutdown()
        running.server_close()
    assert page[0] == 200 and b"mailer does not read YAML aliases" in page[2]
    assert sample[0] == 200


def test_an_issue_of_tens_of_thousands_of_tiny_sections_is_refused_at_once(workspace: Path, run_cli) -> None:
    # Under the file-size limit, 38,000 sections of one short heading took 37 s and 340 MB to build.
    text = (workspace / ISSUE).read_text(encoding="utf-8").replace("date: 2020-12-13", "date: 2026-03-01", 1)
    many = text.replace("sections:\n", "sections:\n" + "  - heading: x\n" * 38_000, 1)
    assert len(many.encode()) < 1_000_000
    (workspace / DRAFT).write_text(many, encoding="utf-8")
    for args in (["check", DRAFT], ["build", DRAFT], ["send", DRAFT, "--subscribers", "subscribers.example.csv"]):
        result = run_cli(*args)
        assert result.exit_code == 1, (args, result)
        assert f"{DRAFT}: the file holds more than 10,000 values" in result.stdout + result.stderr, (args, result)
        assert "split this one" in result.stdout + result.stderr
    check = run_cli("check", ISSUE)  # beside the issue at hand, it is a warning naming it
    assert check.exit_code == 0 and f"{DRAFT}: not compared with this issue" in check.stdout


def test_an_issue_file_over_1_mb_is_refused_naming_its_size(workspace: Path, run_cli) -> None:
    text = (workspace / ISSUE).read_text(encoding="utf-8").replace("date: 2020-12-13", "date: 2026-03-01", 1)
    paragraph = "      " + "A sentence about research that goes on for a while. " * 20 + "\n\n"
    big = text.replace("    body: |\n", "    body: |\n" + paragraph * 1500, 1)  # 1.6 MB: a pasted log, say
    (workspace / DRAFT).write_text(big, encoding="utf-8")
    refused = f"{DRAFT}: the file is 1.6 MB; mailer reads files of at most 1 MB"
    for args in (["check", DRAFT], ["build", DRAFT], ["new", "2026-03-08", "--from", DRAFT], ["cards", DRAFT]):
        result = run_cli(*args)
        assert result.exit_code == 1 and refused in result.stdout + result.stderr, (args, result)
    check = run_cli("check", ISSUE)
    assert check.exit_code == 0 and f"{DRAFT}: not compared with this issue" in check.stdout
    new = run_cli("new", "2021-01-03")
    assert new.exit_code == 0 and f"warning: left out: {refused}" in new.stderr
    running = start(workspace)
    try:
        page, index = get(running, "/preview/2026-03-01"), get(running, "/")
    finally:
        running.shutdown()
        running.server_close()
    assert page[0] == index[0] == 200 and b"mailer reads files of at most 1 MB" in page[2]


def test_a_pipe_where_a_draft_or_a_cached_build_should_be_stops_nothing(workspace: Path, state_dir: Path) -> None:
    # A FIFO waits for a writer forever, and a link to /dev/zero never ends: both hung every command that
    # read them (and /dev/zero took gigabytes). Each is now named as not a regular file, or is a cache miss.
    import os

    os.mkfifo(workspace / DRAFT)
    for args in (["check", ISSUE], ["send", ISSUE, "--subscribers", "subscribers.example.csv"],
                 ["new", "2026-12-06"]):
        result = run_mailer(workspace, *args)  # a timeout here (a hang) fails the test
        assert result.returncode == 0, (args, result.stderr)
    assert "is not a regular file" in run_mailer(workspace, "check", ISSUE).stdout
    refused = run_mailer(workspace, "build", DRAFT)
    assert refused.returncode == 1 and f"{DRAFT}: is not a regular file" in refused.stderr
    (workspace / DRAFT).unlink()
    (workspace / "issues/2026-12-06.yaml").unlink()
    builds = state_dir / "builds"
    assert list(builds.glob("*.json")), "the sends above keep their build: what is planted here replaces it"
    for plant in ("fifo", "zero"):
        for cached in builds.glob("*.json"):
            cached.unlink()
            if plant == "fifo":
                os.mkfifo(cached)
            else:
                cached.symlink_to("/dev/zero")
        for args in (["status", ISSUE], ["send", ISSUE, "--subscribers", "subscribers.example.csv"]):
            result = run_mailer(workspace, *args)
            assert result.returncode == 0 and "Traceback" not in result.stderr, (plant, args, result.stderr)


def test_mailer_new_refuses_a_number_it_could_not_write_one_more_of(workspace: Path) -> None:
    # ruamel.yaml reads 0x… of any length; the next issue's number was a ValueError's traceback.
    text = (workspace / ISSUE).read_text(encoding="utf-8").replace("date: 2020-12-13", "date: 2026-03-01", 1)
    (workspace / DRAFT).write_text(text.replace("date: 2026-03-01", "date: 2026-03-01\nnumber: 0x" + "f" * 5000, 1),
                                   encoding="utf-8")
    started = run_mailer(workspace, "new", "2026-12-06")  # the draft is left out, with its line
    assert started.returncode == 0 and f"left out: {DRAFT}:4:9: number: must be a whole number of at most 18 " \
        "digits" in started.stderr
    refused = run_mailer(workspace, "new", "2026-12-13", "--from", DRAFT)
    assert refused.returncode == 1 and f"{DRAFT}:4:9: number: must be a whole number" in refused.stderr
    assert "Traceback" not in started.stderr + refused.stderr

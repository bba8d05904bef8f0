"""The build kept in the state folder: read back while nothing the build reads has changed, never stale."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mailer.compose import buildcache
from mailer.compose.build import build_issue
from mailer.config import load_config


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every real build the cache asks for."""
    made: list[Path] = []

    def counting(path: Path, config):
        made.append(path)
        return build_issue(path, config)

    monkeypatch.setattr(buildcache, "build_issue", counting)
    return made


def test_a_second_build_is_read_back_and_any_change_builds_afresh(workspace: Path, builds: list[Path]) -> None:
    issue = workspace / "issues" / "2020-12-13.yaml"
    cache = workspace / ".mailer" / "builds"

    def build():
        return buildcache.build_issue_cached(issue, load_config(workspace), cache)

    first = build()
    assert build() == first and len(builds) == 1  # the same issue, read back

    def edit(path: Path, old: str, new: str) -> None:
        path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")

    changes = [
        lambda: edit(issue, "welcome back", "welcome"),
        lambda: edit(workspace / "layouts" / "strings.j2", "View in browser", "Read online"),
        lambda: edit(workspace / "mailer.yaml", "123 Example Street", "9 Other Street"),
        lambda: os.utime(workspace / "issues" / "img" / "depix.png", ns=(1, 1)),  # a picture replaced
    ]
    for number, change in enumerate(changes, start=2):
        change()
        rendered = build()
        assert len(builds) == number, number
        assert build() == rendered and len(builds) == number  # and that one is kept in turn
    assert "Read online" in rendered.html and "9 Other Street" in rendered.html and "9 Other Street" not in first.html


def test_a_damaged_or_unwritable_cache_is_no_cache(workspace: Path, builds: list[Path]) -> None:
    issue = workspace / "issues" / "2020-12-13.yaml"
    cache = workspace / ".mailer" / "builds"
    config = load_config(workspace)
    expected = buildcache.build_issue_cached(issue, config, cache)
    (kept,) = cache.glob("*.json")
    kept.write_bytes(b"not a build")
    assert buildcache.build_issue_cached(issue, config, cache) == expected and len(builds) == 2
    blocked = workspace / "blocked"
    blocked.write_text("a file where the cache folder would go", encoding="utf-8")
    assert buildcache.build_issue_cached(issue, config, blocked / "builds") == expected and len(builds) == 3


def test_layouts_linked_from_elsewhere_are_part_of_the_key(workspace: Path, builds: list[Path]) -> None:
    # Jinja follows a linked folder of partials: an edit there must build afresh, not send the old email.
    shared = workspace.parent / "shared-partials"
    (workspace / "layouts" / "partials").rename(shared)
    (workspace / "layouts" / "partials").symlink_to(shared, target_is_directory=True)
    issue = workspace / "issues" / "2020-12-13.yaml"
    cache = workspace / ".mailer" / "builds"
    first = buildcache.build_issue_cached(issue, load_config(workspace), cache)
    footer = shared / "footer.mjml.j2"
    footer.write_text(footer.read_text(encoding="utf-8").replace("{{ t.why }}", "{{ t.why }} Thank you!"),
                      encoding="utf-8")
    again = buildcache.build_issue_cached(issue, load_config(workspace), cache)
    assert len(builds) == 2 and "Thank you!" in again.html and "Thank you!" not in first.html


class _RunsCode:
    """A pickle that, loaded, runs a shell command: what anyone who can write the state folder could plant."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_a_planted_pickle_is_never_run_and_the_issue_is_built_again(workspace: Path, tmp_path: Path,
                                                                    builds: list[Path]) -> None:
    import pickle

    issue = workspace / "issues" / "2020-12-13.yaml"
    cache = workspace / ".mailer" / "builds"
    config = load_config(workspace)
    expected = buildcache.build_issue_cached(issue, config, cache)
    marker = tmp_path / "code-ran"
    key = buildcache.cache_key(issue, config)
    planted = pickle.dumps(_RunsCode(marker))
    for name in (f"{key}.pickle", f"{key}.json"):  # where an older release kept it, and where this one does
        (cache / name).write_bytes(planted)
    again = buildcache.build_issue_cached(issue, config, cache)
    assert not marker.exists()
    assert again == expected and len(builds) == 2  # a miss: built again, and kept as JSON
    assert not (cache / f"{key}.pickle").exists()  # an older release's pickles are removed, never read
    assert buildcache.build_issue_cached(issue, config, cache) == expected and len(builds) == 2


@pytest.mark.parametrize("kept", [
    '{"format": "mailer-build-cache 2", "key": "KEY", "rendered": {"issue": 1}}',
    '{"format": "mailer-build-cache 2", "key": "KEY", "rendered": null}',
    '{"format": "mailer-build-cache 2", "key": "other", "rendered": RENDERED}',
    '{"format": "mailer-build-cache 2", "key": "KEY", "rendered": WRONG}',  # a card's title a number, deep inside
    '{"format": "mailer-build-cache 1", "key": "KEY", "rendered": RENDERED}',
    '[' * 100_000,
    '"\\ud800"',
])
def test_a_build_that_is_not_what_this_release_wrote_is_a_miss(workspace: Path, builds: list[Path],
                                                                kept: str) -> None:
    import json

    issue = workspace / "issues" / "2020-12-13.yaml"
    cache = workspace / ".mailer" / "builds"
    config = load_config(workspace)
    expected = buildcache.build_issue_cached(issue, config, cache)
    key = buildcache.cache_key(issue, config)
    path = cache / f"{key}.json"
    rendered = json.dumps(json.loads(path.read_text(encoding="utf-8"))["rendered"])
    wrong = re.sub(r'("cards": \[\{"url": "[^"]*", "title": )"[^"]*"', r"\g<1>7", rendered, count=1)
    assert wrong != rendered
    path.write_text(kept.replace("KEY", key).replace("RENDERED", rendered).replace("WRONG", wrong), encoding="utf-8")
    assert buildcache.build_issue_cached(issue, config, cache) == expected and len(builds) == 2


def test_an_issues_layout_and_extra_fields_are_kept_and_read_back(workspace: Path, builds: list[Path]) -> None:
    from tests.conftest import MINIMAL_ISSUE, write

    issue = write(workspace / "issues" / "2026-11-29.yaml", MINIMAL_ISSUE + "layout: minimal\nextra:\n"
                  "  sponsor: {name: Acme, url: 'https://acme.example.com/'}\n  tags: [nlp, weekly]\n")
    cache = workspace / ".mailer" / "builds"
    first = buildcache.build_issue_cached(issue, load_config(workspace), cache)
    again = buildcache.build_issue_cached(issue, load_config(workspace), cache)
    assert again == first and len(builds) == 1  # read back as it was built: kept, not built twice
    assert again.issue.layout == "minimal" and again.issue.extra["sponsor"]["url"] == "https://acme.example.com/"
    assert again.issue.extra["tags"] == ("nlp", "weekly")

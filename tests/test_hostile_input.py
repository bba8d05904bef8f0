"""Hostile input that crosses stages: each case is refused where it enters, and every command that reads it agrees.

docs/hostile-input.md lists what the suite tries and what each input gets.
"""

from __future__ import annotations

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

"""The state folder is its owner's alone: every folder 0700 and every file 0600, whatever the umask.

It holds the subscriber list (the checked copies, the ledger, the outbox) and the suppression list;
each command that writes there is run as a child process with the umask set, and the folder walked.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.files import open_private, private_folder
from tests.conftest import SAMPLE_ISSUE, sendgrid_env, write
from tests.pages_server import PagesServer


def run_with_umask(workspace: Path, env: dict[str, str], umask: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailer", *args], cwd=workspace, env=env, capture_output=True,
                          text=True, preexec_fn=lambda: os.umask(umask), timeout=120)


def modes(folder: Path) -> dict[str, str]:
    """Every folder and file under `folder` (itself included) with its permissions, e.g. {'ledger.sqlite3': '0o600'}."""
    found = {".": oct(stat.S_IMODE(folder.stat().st_mode))}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root) / name
            found[str(path.relative_to(folder))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def wrong(found: dict[str, str], folder: Path) -> dict[str, str]:
    return {name: mode for name, mode in found.items()
            if mode != ("0o700" if (folder / name).is_dir() else "0o600")}


# While a state database is open its -wal and -shm files exist (SQLite removes them with the last
# connection): a child opens both databases, writes, and lists the modes before closing them.
OPEN_AND_LIST = """
import json, os, stat, sys
from pathlib import Path
from mailer.deliver.ledger import Ledger, ledger_path
from mailer.deliver.suppressions import SuppressionList
state = Path(sys.argv[1])
with Ledger(ledger_path(state)) as ledger:
    ledger.queue("open-and-list", [("reader@example.com", "reader@example.com")])
    with SuppressionList.open(state) as suppressions:
        suppressions.unsubscribed_here()
        print(json.dumps({name: oct(stat.S_IMODE((state / name).stat().st_mode))
                          for name in sorted(os.listdir(state)) if ".sqlite3" in name}))
"""


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_every_folder_and_file_of_the_state_folder_is_private_whatever_the_umask(
        workspace: Path, tmp_path: Path, start_sendgrid, pages: PagesServer, umask: int) -> None:
    fake, url = start_sendgrid(environment=False)
    state = tmp_path / "new" / "state"  # its parent is made too
    env = sendgrid_env(url, state)
    cards = write(workspace / "issues" / "2026-12-06.yaml", f"""\
        subject: "Cards"
        date: 2026-12-06
        preheader: 'A preheader long enough for the inbox preview line'
        sections:
          - heading: Links
            cards:
              - url: {pages.url('/og')}
        """)
    commands = [
        ("cards", str(cards)),  # pages/
        ("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv"),  # outbox/, lists/, builds/
        ("send", SAMPLE_ISSUE, "--test-to", "editor@example.com"),  # outbox/…/test/
        ("send", SAMPLE_ISSUE, "--test-to", "editor@example.com", "--live"),  # the ledger, locks/
        ("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes"),
        ("suppressions", "pull"),  # the suppression list
    ]
    for command in commands:
        result = run_with_umask(workspace, env, umask, *command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    assert fake.accepted
    found = modes(state)
    for expected in ("pages", "outbox/2020-12-13/eml", "outbox/2020-12-13/sendgrid", "outbox/2020-12-13/test",
                     "outbox/2020-12-13/manifest.jsonl", "lists", "builds", "locks", "ledger.sqlite3",
                     "ledger.sqlite3.lock", "suppressions.sqlite3"):
        assert expected in found, (expected, sorted(found))
    assert [name for name in found if name.startswith("outbox/2020-12-13/eml/")]
    assert [name for name in found if name.startswith("outbox/2020-12-13/sendgrid/request-")]
    assert [name for name in found if name.startswith(("builds/", "lists/", "pages/")) and "/" in name]
    assert wrong(found, state) == {}
    assert oct(stat.S_IMODE(state.parent.stat().st_mode)) == "0o700"
    opened = subprocess.run([sys.executable, "-c", OPEN_AND_LIST, str(state)], env=env, capture_output=True,
                            text=True, preexec_fn=lambda: os.umask(umask), timeout=60, check=True)
    sides = json.loads(opened.stdout)
    assert {"ledger.sqlite3-wal", "ledger.sqlite3-shm", "suppressions.sqlite3-wal"} <= set(sides), sides
    assert set(sides.values()) == {"0o600"}, sides


def test_a_state_folder_an_older_release_left_readable_is_tightened_when_next_used(
        workspace: Path, tmp_path: Path, start_sendgrid) -> None:
    _, url = start_sendgrid(environment=False)
    state = tmp_path / "state"
    env = sendgrid_env(url, state)
    dry = ("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    test_send = ("send", SAMPLE_ISSUE, "--test-to", "editor@example.com", "--live")
    for command in (dry, test_send, ("suppressions", "pull")):
        assert run_with_umask(workspace, env, 0o022, *command).returncode == 0, command
    # As a release before this one left them with the umask 022: folders 0755, files 0644.
    for path in [state, *state.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert run_with_umask(workspace, env, 0o022, "suppressions", "list").returncode == 0
    assert oct(stat.S_IMODE(state.stat().st_mode)) == "0o700"  # the rest is out of reach from here on
    assert oct(stat.S_IMODE((state / "suppressions.sqlite3").stat().st_mode)) == "0o600"
    for command in (test_send, dry):  # the ledger, the locks, the caches read back, the outbox written again
        assert run_with_umask(workspace, env, 0o022, *command).returncode == 0, command
    assert wrong(modes(state), state) == {}


def test_private_files_and_folders_keep_what_the_owner_took_away(tmp_path: Path) -> None:
    read_only = tmp_path / "state" / "read-only"
    read_only.mkdir(parents=True)
    read_only.chmod(0o555)  # a user's own choice: tightened (no group, no others), never loosened
    try:
        private_folder(read_only, within=tmp_path / "state")
        assert oct(stat.S_IMODE(read_only.stat().st_mode)) == "0o500"
    finally:
        read_only.chmod(0o700)
    old = tmp_path / "state" / "old.jsonl"
    old.write_text("x\n", encoding="utf-8")
    old.chmod(0o666)
    with open_private(old, "a", encoding="utf-8") as out:
        out.write("y\n")
    assert oct(stat.S_IMODE(old.stat().st_mode)) == "0o600" and old.read_text(encoding="utf-8") == "x\ny\n"

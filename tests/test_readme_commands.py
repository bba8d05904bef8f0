"""Every `mailer` command in the README's examples, run as written in a shell, in a fresh copy of the workspace.

A command that needs SendGrid talks to the local SendGrid-like server (its address and key in the
environment, as a user's would be), and one that asks DNS (`mailer doctor`, a live send's domain check) the
local DNS server of the sample's domain (MAILER_DNS, set for every test by conftest's isolated_env; with no
network at all `mailer doctor` exits 3, "not checked"); one that runs until Ctrl-C must start and serve; a few
end otherwise by design, and say so in the README (a live send with no terminal to confirm on, --strict with the
sample's example addresses). Only `--links` is left out: it asks the internet, which the tests never do.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
NEEDS_THE_INTERNET = {"mailer check issues/2020-12-13.yaml --links"}
RUNS_UNTIL_STOPPED = ("mailer preview", "mailer serve")
# These start next week's issue (full of TODOs by design): run in a copy of their own, in order, so
# that the other commands see the workspace as the quickstart left it.
WRITE_A_NEW_ISSUE = ("mailer new", "mailer cards")
# What the README says these end with, when run one after the other from the top.
EXPECTED = {
    "mailer check issues/2020-12-13.yaml --strict": 1,  # the sample's example.com addresses are warnings
    # "(asks to confirm; --yes skips)": without a terminal to ask on, nothing is sent.
    "mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv --live": 2,
    "mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv --live --at": 2,
    "mailer cancel issues/2020-12-13.yaml": 3,  # nothing was scheduled (the --at send was not confirmed)
}


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.split(r"\s{2,}#", line)[0].strip()
            if command.startswith("mailer "):
                commands.append(" ".join(command.split()))
    return commands


def test_the_readme_has_the_commands_this_test_expects() -> None:
    commands = readme_commands()
    assert len(commands) >= 20 and set(commands) >= NEEDS_THE_INTERNET
    for start in EXPECTED:
        assert any(command.startswith(start) for command in commands), start
    assert set(commands) >= set(EXPECTED_EXACTLY)


# Whole commands: next week's draft (see below) is among "every issue", and its TODOs are errors.
EXPECTED_EXACTLY = {"mailer check": 1, "mailer check issues/ --format json": 1}


def _expected(command: str) -> int:
    if command in EXPECTED_EXACTLY:
        return EXPECTED_EXACTLY[command]
    return next((code for start, code in EXPECTED.items() if command.startswith(start)), 0)


def test_every_readme_command_runs_as_written(workspace: Path, sendgrid, state_dir: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "BROWSER": "true"}  # `--open` asks for a browser: a no-op one here
    # The editor's week as it is lived: next week's draft is started early (README: "The editor's week"), and
    # every command must work beside it, the web output publishing the finished issues only.
    started = subprocess.run("mailer new", shell=True, cwd=workspace, env=env, capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
    assert started.returncode == 0, started.stderr
    next_week = workspace.parent / "next-week"
    shutil.copytree(workspace, next_week)
    outcomes = {}
    for command in readme_commands():
        if command in NEEDS_THE_INTERNET:
            continue
        if command.startswith(RUNS_UNTIL_STOPPED):
            outcomes[command] = _starts_and_serves(command, workspace, env)
            continue
        folder = next_week if command.startswith(WRITE_A_NEW_ISSUE) else workspace
        result = subprocess.run(command, shell=True, cwd=folder, env=env, capture_output=True, text=True,
                                timeout=120, stdin=subprocess.DEVNULL)
        assert "Traceback" not in result.stderr, (command, result.stderr)
        outcomes[command] = "ok" if result.returncode == _expected(command) else (
            f"exit {result.returncode}: {result.stderr.strip()[-300:]}")
    assert len(outcomes) == len(readme_commands()) - len(NEEDS_THE_INTERNET)
    assert {command: outcome for command, outcome in outcomes.items() if outcome != "ok"} == {}


def _starts_and_serves(command: str, workspace: Path, env: dict[str, str]) -> str:
    process = subprocess.Popen(shlex.split(command), cwd=workspace, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        output = ""
        while time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline() if process.stdout else ""
            output += line
            if "Press Ctrl-C" in output:
                return "ok"
        return f"did not start: {output.strip()[-300:]}"
    finally:
        process.terminate()
        process.wait(timeout=10)

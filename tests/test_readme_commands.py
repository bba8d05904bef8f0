"""Every `mailer` command in the examples of the README and docs/, run as written in a shell, in a fresh workspace.

The order is the documented one: the README's own examples first, then each page of docs/ in the order the README
lists them (its table of commands, then its reference: the order the README had when it held them all), each
page's commands top to bottom, in one workspace as `make demo` leaves it with next week's draft started (the
editor's week). A command that needs SendGrid talks to the local SendGrid-like server (its address and key in the
environment, as a user's would be), and one that asks DNS (`mailer doctor`, a live send's domain check) the
local DNS server of the sample's domain (MAILER_DNS, set for every test by conftest's isolated_env; with no
network at all `mailer doctor` exits 3, "not checked"); one that runs until Ctrl-C must start and serve; a few
end otherwise by design, and their page says so (a live send with no terminal to confirm on, --strict with the
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

from tests.docs_pages import README, page, pages_in_readme_order

NEEDS_THE_INTERNET = {("mailer-check.md", "mailer check issues/2020-12-13.yaml --links")}
RUNS_UNTIL_STOPPED = ("mailer preview", "mailer serve")
# These start next week's issue (full of TODOs by design): run in a copy of their own, in order, so
# that the other commands see the workspace as the quickstart left it.
WRITE_A_NEW_ISSUE = ("mailer new", "mailer cards")
# What their pages say these end with, when run one after the other in the documented order.
EXPECTED = {
    ("mailer-check.md", "mailer check issues/2020-12-13.yaml --strict"): 1,  # the sample's example.com addresses warn
    # "(asks to confirm; --yes skips)": without a terminal to ask on, nothing is sent.
    ("mailer-send.md", "mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv --live"): 2,
    ("mailer-send.md", "mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv --live --at"): 2,
    ("mailer-cancel.md", "mailer cancel issues/2020-12-13.yaml"): 3,  # nothing was scheduled (--at not confirmed)
}


def sh_commands(text: str) -> list[str]:
    """The `mailer` commands of a page's ```sh blocks, as a shell would run them."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.split(r"\s{2,}#", line)[0].strip()
            if command.startswith("mailer "):
                commands.append(" ".join(command.split()))
    return commands


def readme_commands() -> list[tuple[str, str]]:
    """(page, command) for every example, in the documented order: the README's, then each page's."""
    found = [("README.md", command) for command in sh_commands(README)]
    for name in pages_in_readme_order():
        found.extend((name, command) for command in sh_commands(page(name)))
    return found


def test_the_docs_have_the_commands_this_test_expects() -> None:
    commands = readme_commands()
    assert len(commands) >= 20 and set(commands) >= NEEDS_THE_INTERNET
    for name, start in EXPECTED:
        assert any(where == name and command.startswith(start) for where, command in commands), (name, start)
    assert set(commands) >= set(EXPECTED_EXACTLY)


# Whole commands: next week's draft (see below) is among "every issue", and its TODOs are errors.
EXPECTED_EXACTLY = {("mailer-check.md", "mailer check"): 1,
                    ("mailer-check.md", "mailer check issues/ --format json"): 1}


def _expected(name: str, command: str) -> int:
    if (name, command) in EXPECTED_EXACTLY:
        return EXPECTED_EXACTLY[(name, command)]
    return next((code for (where, start), code in EXPECTED.items() if where == name and command.startswith(start)), 0)


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
    for name, command in readme_commands():
        if (name, command) in NEEDS_THE_INTERNET:
            continue
        if command.startswith(RUNS_UNTIL_STOPPED):
            outcomes[f"{name}: {command}"] = _starts_and_serves(command, workspace, env)
            continue
        folder = next_week if command.startswith(WRITE_A_NEW_ISSUE) else workspace
        result = subprocess.run(command, shell=True, cwd=folder, env=env, capture_output=True, text=True,
                                timeout=120, stdin=subprocess.DEVNULL)
        assert "Traceback" not in result.stderr, (name, command, result.stderr)
        outcomes[f"{name}: {command}"] = "ok" if result.returncode == _expected(name, command) else (
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


# Named in the week but not runnable as they stand there: what each needs, and where it is run instead.
WEEK_MENTIONS = {"mailer doctor --eml": "a message saved from the inbox: docs/mailer-doctor.md",
                 "mailer send": "the command named (step 3: it runs the same checks), run with its arguments in step 4"}


def week_commands() -> list[str]:
    """The `mailer` commands written in the README's editor's week, top to bottom, as an editor would type them."""
    week = README.split("## The editor's week", 1)[1].split("\n## ", 1)[0]
    found = [" ".join(span.split()) for span in re.findall(r"`(mailer [^`]+)`", week)]
    # A command named again further on ("the draft started with `mailer new`") is a mention, not a second run.
    return [command for command in dict.fromkeys(found) if command not in WEEK_MENTIONS]


def test_the_editors_week_runs_top_to_bottom_as_written(workspace: Path, sendgrid, state_dir: Path) -> None:
    """Each step's commands in a terminal of their own, as the editor runs them: a live send asks to confirm and
    is answered yes; next week's draft (step 1) is there all the while."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "BROWSER": "true"}
    commands = week_commands()
    assert commands[:2] == ["mailer new", "mailer cards"] and len(commands) >= 12
    outcomes = {}
    for command in commands:
        if command.startswith(RUNS_UNTIL_STOPPED):
            outcomes[command] = _starts_and_serves(command, workspace, env)
            continue
        code, output = _in_a_terminal(command, workspace, env)
        assert "Traceback" not in output, (command, output)
        outcomes[command] = "ok" if code == 0 else f"exit {code}: {output.strip()[-400:]}"
    failed = {command: outcome for command, outcome in outcomes.items() if outcome != "ok"}
    assert not failed, "\n".join(f"{command}\n    {outcome}" for command, outcome in failed.items())
    # What the week did: the draft is there, the issue went to the list once, and the report and site saw it.
    assert sorted(path.name for path in (workspace / "issues").glob("2026-*.yaml")), "no draft from mailer new"
    assert len([email for email in sendgrid.accepted if email != "me@example.com"]) == 18


def _in_a_terminal(command: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run `command` on a pseudo-terminal, answering yes to a confirmation, as an editor at a terminal would."""
    import pty
    import select

    controller, terminal = pty.openpty()
    process = subprocess.Popen(command, shell=True, cwd=cwd, env=env, stdin=terminal, stdout=terminal,
                               stderr=terminal, close_fds=True, start_new_session=True)
    os.close(terminal)
    output, answered = b"", False
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
                if not chunk:
                    break
                output += chunk
                if not answered and b"[y/N]" in output:
                    os.write(controller, b"y\n")
                    answered = True
            elif process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        os.close(controller)
    return process.returncode, output.decode("utf-8", "replace")

"""What `mailer send` shows on a real terminal (a pseudo-terminal): a progress bar with rate and ETA."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import SAMPLE_ISSUE as ISSUE
from tests.conftest import make_subscribers, sendgrid_env
from tests.fake_sendgrid import FakeSendGrid

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_a_terminal(args: list[str], cwd: Path, env: dict[str, str], *,
                      keep_colours: bool = False) -> tuple[int, str]:
    primary, secondary = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "mailer", *args], cwd=cwd, env=env, stdin=secondary,
                               stdout=secondary, stderr=secondary)
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    text = output.decode("utf-8")
    return process.wait(timeout=60), text if keep_colours else ANSI.sub("", text)


def test_a_live_send_on_a_terminal_shows_progress_rate_and_eta(workspace: Path, state_dir: Path,
                                                               start_sendgrid) -> None:
    # Slow enough for the bar to redraw.
    _, url = start_sendgrid(FakeSendGrid(delay_seconds=0.3, keep_bodies=False), environment=False)
    env = sendgrid_env(url, state_dir, COLUMNS="100", TERM="xterm")
    code, screen = run_on_a_terminal(["send", ISSUE, "--subscribers", str(make_subscribers(workspace, 3000)),
                                      "--live", "--yes", "--force", "--workers", "1"], workspace, env)
    assert code == 0, screen
    frames = [frame for frame in re.split(r"[\r\n]+", screen) if frame.startswith("sending ")]
    assert frames, screen
    assert "0/3000" in frames[0] and "3000/3000" in frames[-1]
    assert re.search(r" [\d,]+ msg/s \d:\d\d:\d\d$", frames[-1]), frames[-1]  # a readable rate, then the ETA
    assert "None" not in screen and not re.search(r"\d\.\d{3,} msg/s", screen)
    assert re.search(r"accepted +3000", screen)
    assert "batch of 1000: accepted" not in screen  # the plain log lines are for pipes, not terminals


def test_a_note_quoting_a_server_is_shown_as_written_not_read_as_markup(workspace: Path, state_dir: Path,
                                                                         start_sendgrid) -> None:
    # The pull fails with SendGrid's words, which hold "[/x]": the progress bar's library read them as its
    # markup and stopped the send with a MarkupError's traceback before its first request.
    fake, url = start_sendgrid(FakeSendGrid(keep_bodies=False), environment=False)
    env = sendgrid_env(url, state_dir, COLUMNS="200", TERM="xterm")
    subscribers = str(make_subscribers(workspace, 20))
    assert subprocess.run([sys.executable, "-m", "mailer", "suppressions", "pull"], cwd=workspace, env=env,
                          capture_output=True).returncode == 0  # a fresh list: the send goes on without a pull
    fake.get_default = "400-markup"
    code, screen = run_on_a_terminal(["send", ISSUE, "--subscribers", subscribers, "--live", "--yes", "--force"],
                                     workspace, env)
    assert code == 0, screen
    assert "Traceback" not in screen and "bad [/x] request [link=https://evil.example]click[/link]" in screen
    assert len(fake.accepted) == 20


def test_check_colours_its_findings_on_a_terminal_and_not_in_a_pipe(workspace: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MAILER_STATE_DIR": str(tmp_path / "state"), "TERM": "xterm"}
    code, coloured = run_on_a_terminal(["check", "issues/"], workspace, env, keep_colours=True)
    assert code == 0
    # The sample settings use example.com addresses: one warning, in yellow (SGR 33).
    assert re.search(r"\x1b\[33m(\x1b\[1m)?  warnings \(1\)", coloured), coloured
    piped = subprocess.run([sys.executable, "-m", "mailer", "check", "issues/"], cwd=workspace, env=env,
                           capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0
    assert "warnings (1)" in piped.stdout and "\x1b[" not in piped.stdout + piped.stderr
    assert ANSI.sub("", coloured).replace("\r\n", "\n") == piped.stdout + piped.stderr

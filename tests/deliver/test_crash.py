"""A live send killed with SIGKILL at a random moment, then resumed: nobody twice, nobody silently missed."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_ISSUE as ISSUE
from tests.conftest import make_subscribers, read_ledger, sendgrid_env
from tests.fake_sendgrid import FakeSendGrid


def run_send(workspace: Path, env: dict[str, str], subscribers: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mailer", "send", ISSUE, "--subscribers", str(subscribers), "--live", "--yes",
         "--force", "--workers", "2"],
        cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def slow_sendgrid(request, start_sendgrid, state_dir: Path):
    """A SendGrid-like server that takes its time, and the environment for a `mailer send` process."""
    fake, url = start_sendgrid(FakeSendGrid(delay_seconds=request.param, keep_bodies=False), environment=False)
    return fake, sendgrid_env(url, state_dir)


def wait_for_first_delivery(fake: FakeSendGrid, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while not fake.accepted and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)


@pytest.mark.parametrize("slow_sendgrid", [0.15], indirect=True)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_mid_send_then_resume(workspace: Path, tmp_path: Path, seed: int, slow_sendgrid) -> None:
    fake, env = slow_sendgrid
    subscribers = make_subscribers(workspace, 4000)
    process = run_send(workspace, env, subscribers)
    # Kill somewhere between the first request and the last (4 batches of 1000 at ~0.15 s each).
    wait_for_first_delivery(fake, process)
    time.sleep(random.Random(seed).uniform(0.0, 0.2))
    process.send_signal(signal.SIGKILL)
    process.wait()
    accepted_at_kill = len(fake.accepted)
    assert 0 < accepted_at_kill <= 4000

    resumed = run_send(workspace, env, subscribers)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode in (0, 3), err

    received = Counter(fake.accepted)
    assert max(received.values()) == 1, "someone received the issue twice"
    ledger = dict(read_ledger(tmp_path / "state", "SELECT email, state FROM deliveries WHERE issue='2020-12-13'"))
    everyone = {f"reader{i:05d}@example.com" for i in range(4000)}
    assert set(ledger) == everyone
    for email in everyone:
        if email in received:
            # Delivered: the ledger says so, or says it cannot know (killed before the answer).
            assert ledger[email] in ("accepted", "uncertain"), (email, ledger[email])
        else:
            # Not delivered: never claimed as accepted, and reported (uncertain), not silently dropped.
            assert ledger[email] == "uncertain", (email, ledger[email])
    if resumed.returncode == 0:
        assert set(received) == everyone
    else:
        assert "uncertain" in out


@pytest.mark.parametrize("slow_sendgrid", [0.3], indirect=True)
def test_ctrl_c_mid_send_records_everyone_and_resumes(workspace: Path, tmp_path: Path, slow_sendgrid) -> None:
    fake, env = slow_sendgrid
    subscribers = make_subscribers(workspace, 6000)
    process = run_send(workspace, env, subscribers)
    wait_for_first_delivery(fake, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Stopping after the requests in flight: their answers are recorded" in err
    assert "run the same command again to resume" in err
    ledger = Counter(state for (state,) in read_ledger(tmp_path / "state", "SELECT state FROM deliveries"))
    # In-flight requests were waited for and recorded: nothing is left `sending` or unknown.
    assert ledger["sending"] == 0 and ledger["uncertain"] == 0
    assert ledger["accepted"] == len(fake.accepted) < 6000
    # The readers not reached (their rows are written as a send reaches them) are queued as it stops.
    assert ledger["queued"] == 6000 - ledger["accepted"] and sum(ledger.values()) == 6000
    resumed = run_send(workspace, env, subscribers)
    resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    assert len(fake.accepted) == len(set(fake.accepted)) == 6000


@pytest.mark.parametrize("slow_sendgrid", [0.1], indirect=True)
def test_a_log_pipe_closed_mid_send_stops_the_lines_not_the_send(workspace: Path, tmp_path: Path,
                                                                 slow_sendgrid) -> None:
    # `mailer send … --live 2>&1 | head`: the reader of the progress lines goes away while batches are on the
    # wire. The send must go on and record every answer, not stop between a request and its record.
    fake, env = slow_sendgrid
    subscribers = make_subscribers(workspace, 8000)
    process = run_send(workspace, env, subscribers)
    assert process.stderr is not None
    wait_for_first_delivery(fake, process)
    process.stderr.close()  # the next progress line meets a closed pipe
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    assert "accepted                        8000" in out  # the report, on stdout, which is still read
    assert len(fake.accepted) == len(set(fake.accepted)) == 8000
    ledger = Counter(state for (state,) in read_ledger(tmp_path / "state", "SELECT state FROM deliveries"))
    assert ledger == {"accepted": 8000}


@pytest.mark.parametrize("slow_sendgrid", [0.1], indirect=True)
def test_a_pipe_closed_mid_send_for_the_lines_and_the_report_keeps_the_exit_code(workspace: Path, tmp_path: Path,
                                                                                  slow_sendgrid) -> None:
    # `mailer send … --live 2>&1 | head`: one pipe for the lines and the report, gone mid-send. The report is
    # lost; the exit code still says every reader was accepted.
    fake, env = slow_sendgrid
    subscribers = make_subscribers(workspace, 8000)
    process = subprocess.Popen(
        [sys.executable, "-m", "mailer", "send", ISSUE, "--subscribers", str(subscribers), "--live", "--yes",
         "--force", "--workers", "2"], cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    wait_for_first_delivery(fake, process)
    process.stdout.close()
    assert process.wait(timeout=120) == 0
    assert len(fake.accepted) == len(set(fake.accepted)) == 8000
    ledger = Counter(state for (state,) in read_ledger(tmp_path / "state", "SELECT state FROM deliveries"))
    assert ledger == {"accepted": 8000}


def test_status_after_a_crash_says_no_send_is_running_and_prints_the_command_that_resumes(
        workspace: Path, start_sendgrid, state_dir: Path) -> None:
    import shlex
    from collections import deque

    # The first batch is accepted, the next ones hang: the send is surely running when status asks.
    fake, url = start_sendgrid(FakeSendGrid(script=deque(["accept", "stall", "stall"]), keep_bodies=False),
                               environment=False)
    env = sendgrid_env(url, state_dir)
    subscribers = make_subscribers(workspace, 4000)
    process = run_send(workspace, env, subscribers)
    wait_for_first_delivery(fake, process)

    def status() -> str:
        result = subprocess.run([sys.executable, "-m", "mailer", "status", ISSUE], cwd=workspace, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    while_running = status()
    assert f"A send of 2020-12-13 is running now (process {process.pid})" in while_running
    process.send_signal(signal.SIGKILL)
    process.wait()

    after_the_crash = status()
    assert "No send of 2020-12-13 is running: the last one stopped before it finished" in after_the_crash
    assert "were on their way when it stopped" in after_the_crash
    (command,) = [line.strip() for line in after_the_crash.splitlines() if line.startswith("  mailer send")]
    assert command == (f"mailer send {ISSUE} --subscribers {subscribers} --live --yes --force --workers 2")
    resumed = subprocess.run([sys.executable, "-m", *shlex.split(command)], cwd=workspace, env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 3, resumed.stderr  # those on their way at the crash stay uncertain
    finished = status()
    assert "is running" not in finished
    assert Counter(fake.accepted).most_common(1)[0][1] == 1

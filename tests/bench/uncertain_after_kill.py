"""How many recipients `--resend-uncertain` mails again after a SIGKILL: without provider events, and with them.

`.venv/bin/python tests/bench/uncertain_after_kill.py` (about a minute): five live sends of 4,000 to a slow
local SendGrid-like server, each killed at a random moment; then the same command again, the grace period
made to pass, and `--resend-uncertain`. With events, the ones SendGrid accepted are fed to the same code the
Event Webhook uses (mailer.deliver.events) before the rerun. docs/performance.md's figure comes from this.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mailer.deliver.events import read_batch, record  # noqa: E402
from tests import fake_sendgrid  # noqa: E402
from tests.fake_sendgrid import API_KEY, EventWebhook, FakeSendGrid  # noqa: E402

RECIPIENTS = 4000


def trial(seed: int, *, with_events: bool, folder: Path) -> tuple[int, int, int, int]:
    """(uncertain after the kill, of which SendGrid had accepted, mailed again, mailed twice)."""
    workspace = folder / f"{seed}-{with_events}"
    workspace.mkdir()
    shutil.copy(REPO / "mailer.yaml", workspace / "mailer.yaml")
    shutil.copytree(REPO / "layouts", workspace / "layouts")
    shutil.copytree(REPO / "issues", workspace / "issues")
    (workspace / "s.csv").write_text("email,first_name\n" + "".join(f"r{i:05d}@example.com,R\n"
                                                                   for i in range(RECIPIENTS)), encoding="utf-8")
    fake = FakeSendGrid(delay_seconds=0.15)
    server, url = fake_sendgrid.start(fake)
    state = workspace / "state"
    env = {**os.environ, "SENDGRID_API_KEY": API_KEY, "SENDGRID_API_HOST": url, "MAILER_UNSUBSCRIBE_SECRET": "x",
           "MAILER_STATE_DIR": str(state)}
    command = [sys.executable, "-m", "mailer", "send", "issues/2020-12-13.yaml", "--subscribers", "s.csv", "--live",
               "--yes", "--force", "--workers", "2"]
    try:
        process = subprocess.Popen(command, cwd=workspace, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not fake.accepted and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(random.Random(seed).uniform(0.05, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        time.sleep(0.4)  # requests already on the wire reach the server
        with sqlite3.connect(state / "ledger.sqlite3") as db:
            sending = {r for (r,) in db.execute("SELECT recipient FROM deliveries WHERE state='sending'")}
        delivered = len(sending & set(fake.accepted))
        if with_events:
            record(state, read_batch(EventWebhook().events(fake, ("processed",))))
        subprocess.run(command, cwd=workspace, env=env, capture_output=True, check=False)
        with sqlite3.connect(state / "ledger.sqlite3") as db:  # the grace period passes
            db.execute("UPDATE deliveries SET updated_at='2026-01-01T00:00:00+00:00' WHERE state='uncertain'")
        before = len(fake.accepted)
        subprocess.run([*command, "--resend-uncertain"], cwd=workspace, env=env, capture_output=True, check=False)
        twice = sum(1 for count in Counter(fake.accepted).values() if count > 1)
        return len(sending), delivered, len(fake.accepted) - before, twice
    finally:
        server.shutdown()


def main() -> None:
    print(f"{'':<16} {'uncertain':>9} {'delivered':>9} {'re-sent':>8} {'twice':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for with_events in (False, True):
            totals = [0, 0, 0, 0]
            for seed in range(1, 6):
                totals = [a + b for a, b in zip(totals, trial(seed, with_events=with_events, folder=Path(tmp)),
                                                strict=True)]
            label = "with events" if with_events else "without events"
            print(f"{label:<16} {totals[0]:>9,} {totals[1]:>9,} {totals[2]:>8,} {totals[3]:>6,}")


if __name__ == "__main__":
    main()

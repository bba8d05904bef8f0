"""Events kept by a `mailer serve` on another machine (MAILER_SERVE_URL): fetched into this ledger."""

from __future__ import annotations

from pathlib import Path


def pull_events(state_dir: Path) -> int | None:
    """Fetch the events the remote service holds that this ledger lacks; how many were new (None: no remote)."""
    return None

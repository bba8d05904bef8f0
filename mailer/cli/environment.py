"""The environment a command runs in: read once, here at the CLI's edge (`mailer.environment.Environment`),
and handed to the library as settings (library code reads no variable: tests/test_layout.py checks)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailer.environment import Environment

if TYPE_CHECKING:
    from mailer.config import Config


def read_environment() -> Environment:
    """The process's environment as mailer reads it: the `mailer` group does this once per command."""
    import sys

    return replace(Environment.read(os.environ), stdin_is_terminal=_is_terminal(sys.stdin),
                   stderr_is_terminal=_is_terminal(sys.stderr))


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream is not None and stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


def environment() -> Environment:
    """The Environment of the command running now: the context's object, which the `mailer` group sets (or
    main(environment=…) gives)."""
    found = click.get_current_context().find_object(Environment)
    if found is None:  # pragma: no cover - every command runs under the `mailer` group
        raise RuntimeError("no Environment: run commands through the `mailer` group")
    return found


def workspace_config(start: Path) -> Config:
    """mailer.yaml of the workspace at or above `start`, its state folder MAILER_STATE_DIR's when set."""
    from mailer.config import find_workspace, load_config  # here: `mailer --help` imports no settings code

    return load_config(find_workspace(start), state_dir=environment().state_path)


def reading_mail(config: Config) -> Config:
    """`config`, offering the List-Unsubscribe mailto: when something reads that mail: mailer serve's Inbound Parse
    (MAILER_INBOUND_KEY) or `mailer suppressions pull`'s mailbox (MAILER_MAILBOX_URL)."""
    env = environment()
    reads = any(value.strip() for value in (env.inbound_key, env.mailbox_url))
    return replace(config, unsubscribe_by_mail=reads)

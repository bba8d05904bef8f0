"""The approval gate: a live send goes only once the issue, as it is now, was test-sent (or --force)."""

from __future__ import annotations

import hashlib
import shlex
from typing import TYPE_CHECKING

from mailer.config import Config
from mailer.deliver.ledger import ledger_path
from mailer.deliver.options import SendOptions, ledger_key, open_ledger
from mailer.errors import ExitStatus, MailerError
from mailer.schema import display_path

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue


class NotApprovedError(MailerError):
    exit_code = ExitStatus.INPUT_ERROR


def content_hash(rendered: RenderedIssue) -> str:
    digest = hashlib.sha256()
    for part in (rendered.subject, rendered.html, rendered.text):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def require_approval(last_test_hash: str | None, rendered: RenderedIssue, options: SendOptions, *,
                     test_command: str | None = None, why: str | None = None) -> None:
    if options.force or options.sandbox or last_test_hash == content_hash(rendered):
        return
    test_command = test_command or shlex.join(["mailer", "send", display_path(rendered.issue.source_path),
                                               "--test-to", "YOU@example.com", "--live"])
    why = why or "the content changed since the last test send, or there was none"
    raise NotApprovedError(
        f"{rendered.issue.slug} has not been test-sent as it is now: {why}\n"
        f"    hint: {test_command}, check it, then send again (or pass --force)")


def approval_gap(last_test: tuple[str, str, str] | None, rendered: RenderedIssue) -> str | None:
    """Why `rendered` is not approved by its last test send (Ledger.last_test_send); None when it is."""
    if last_test is None:
        return "it was never test-sent"
    test_hash, recipient, sent_at = last_test
    if test_hash == content_hash(rendered):
        return None
    return f"it changed since its last test send (to {recipient} at {sent_at[:16].replace('T', ' ')} UTC)"


def check_approved(rendered: RenderedIssue, config: Config, options: SendOptions, *,
                   test_command: str | None = None) -> str | None:
    """Raise NotApprovedError now, before the user is asked to confirm a send that would refuse anyway.

    Returns what --force lets through: why the issue is not approved (None when it is, or for a sandbox
    send, which needs no approval). `test_command` is the test send to suggest. send_issue checks again
    under the issue's lock: that check is the one that counts.
    """
    if options.sandbox:
        return None
    key = ledger_key(rendered, options)
    last = None
    if ledger_path(config.state_dir).exists():
        with open_ledger(config, key, claim=False) as ledger:
            last = ledger.last_test_send(key)
    gap = approval_gap(last, rendered)
    if gap is not None and not options.force:
        require_approval(last[0] if last else None, rendered, options, test_command=test_command, why=gap)
    return gap

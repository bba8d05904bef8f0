"""What a send tells: its progress as it goes (Progress), its report at the end (SendReport), and the
errors that stop it (SendError, Interrupted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailer.audience.subscribers import Skipped
from mailer.errors import ExitStatus, MailerError


class SendError(MailerError):
    """A send could not start or had to stop; nothing was sent that the ledger does not know of."""

    exit_code = ExitStatus.DELIVERY_FAILED


class Interrupted(MailerError):
    exit_code = ExitStatus.INTERRUPTED


@dataclass
class SendReport:
    intended: int = 0
    accepted_before: int = 0
    accepted_now: int = 0
    failed: int = 0
    uncertain: int = 0
    not_sent: int = 0  # still queued: the run stopped before reaching them
    skipped: list[Skipped] = field(default_factory=list)
    suppressed: int = 0  # of the skipped: on the local suppression list (not counted as intended)
    suppressions_pulled_at: str | None = None  # None: no suppression list has been pulled
    resolved: int = 0  # uncertain recipients the provider's events showed had the issue: now accepted
    held_back: int = 0  # of the skipped: intended, but uncertain or failed earlier and not retried now
    stopped: str | None = None
    batches: int = 0
    outbox_dir: Path | None = None
    request_bytes: list[int] = field(default_factory=list)
    first_recipients: list[str] = field(default_factory=list)  # a dry run's first few, to show
    live: bool = False
    finished_at: str | None = None  # answered from the ledger (finished_send): when the send that finished ended

    @property
    def accepted(self) -> int:
        return self.accepted_before + self.accepted_now

    @property
    def complete(self) -> bool:
        return self.accepted == self.intended

    @property
    def not_intended(self) -> int:
        """Skipped and not owed the issue (invalid, unsubscribed, suppressed…): each recipient in one row."""
        return len(self.skipped) - self.held_back


@dataclass(frozen=True)
class Progress:
    """Events for the CLI's progress bar or log lines."""

    on_start: Callable[[int], None] = lambda total: None
    on_batch: Callable[[int, str], None] = lambda count, outcome: None
    on_note: Callable[[str], None] = lambda message: None
    # The send saw `interrupt` set: no new request starts, the ones in flight are finished and recorded.
    on_stopping: Callable[[], None] = lambda: None

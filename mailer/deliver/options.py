"""What a send is asked to do (SendOptions, built once from the command line's values and checked), and the
ledger it does it under: the issue's key (a sandbox send keeps its own) and the ledger opened for it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mailer.addresses import AddressError, parse_address
from mailer.config import Config
from mailer.deliver.ledger import Ledger, ledger_path
from mailer.deliver.message import list_id
from mailer.deliver.progress import SendError
from mailer.deliver.retry import RetryPolicy
from mailer.errors import ExitStatus, MailerError

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue


SCHEDULE_HORIZON = timedelta(hours=72)  # SendGrid refuses send_at further ahead


class OptionsError(MailerError):
    """Options that do not go together, or a value no send can use: wrong usage, nothing was sent."""

    exit_code = ExitStatus.USAGE


@dataclass(frozen=True)
class SendOptions:
    live: bool = False
    workers: int | None = None  # requests at once; None: 4 batches (SendGrid), 1 connection (SMTP)
    rate: float | None = None  # messages per second
    resend_uncertain: bool = False
    retry_failed: bool = False
    max_consecutive_failures: int = 5
    retry: RetryPolicy = RetryPolicy()
    send_at: datetime | None = None
    sandbox: bool = False
    force: bool = False  # skip the approval gate
    despite_complaints: bool = False  # send although the last issue's complaint rate is over the limit
    # Read by the command line only: the library sends through the Backend it is given.
    backend: str = "sendgrid"  # the backend's name: --backend, else mailer.yaml's
    test_to: str | None = None  # a test send's one address (test_send is given it too)

    @classmethod
    def from_raw_args(cls, config: Config, *, live: bool, test_to: str | None, backend: str | None,
                      send_at: datetime | None, sandbox: bool, force: bool, rate: float | None, workers: int | None,
                      resend_uncertain: bool, retry_failed: bool, despite_complaints: bool) -> SendOptions:
        """The options of `mailer send` as given, checked against each other and mailer.yaml (`send_at`: --at
        as sendtime.parse_send_time read it): OptionsError (exit 2) for options that cannot go together or an
        address that is none, SendError (exit 3) for a time SendGrid cannot schedule."""
        if test_to is not None:
            try:
                test_to = parse_address(test_to)
            except AddressError as err:
                raise OptionsError(f"--test-to: {err}") from None
        name = backend or config.backend
        if sandbox and name != "sendgrid":
            raise OptionsError("--sandbox is SendGrid's sandbox mode: use it with --backend sendgrid")
        if name == "smtp" and config.managed_unsubscribe:
            raise OptionsError("--backend smtp cannot send with `unsubscribe: sendgrid`: only SendGrid fills in its "
                               "unsubscribe links\n    hint: leave out --backend, or set `unsubscribe: self-hosted`")
        if send_at is not None:
            if name != "sendgrid":
                raise OptionsError("--at needs the sendgrid backend: SMTP has no scheduling\n    hint: add --backend "
                                   "sendgrid, or leave out --at and send when you want it to go")
            check_send_at(send_at)
        return cls(live=live, workers=workers, rate=rate, resend_uncertain=resend_uncertain, retry_failed=retry_failed,
                   send_at=send_at, sandbox=sandbox, force=force, despite_complaints=despite_complaints, backend=name,
                   test_to=test_to)


def ledger_key(rendered: RenderedIssue, options: SendOptions) -> str:
    return issue_key(rendered.issue.slug, options)


def issue_key(slug: str, options: SendOptions) -> str:
    """The issue's key in the ledger (`slug`: mailer.files.issue_slug)."""
    # Sandbox sends deliver nothing: they must never count as deliveries of the real issue.
    return slug + ("@sandbox" if options.sandbox else "")


def open_ledger(config: Config, key: str, *, claim: bool) -> Ledger:
    """The state folder's ledger, refused if another newsletter sends this issue key (see check_newsletter).

    `claim` (a live send or test send) records this newsletter as the issue's sender, after checking
    the ledger can be written: a full disk shows before a request leaves.
    """
    ledger = Ledger(ledger_path(config.state_dir))
    try:
        if claim:
            ledger.check_writable()
        ledger.check_newsletter(key, list_id(config), claim=claim)
    except BaseException:
        ledger.close()
        raise
    return ledger


def existing_ledger(config: Config, key: str) -> Ledger | contextlib.nullcontext[None]:
    """The ledger as open_ledger opens it, or None where there is none yet: what sends nothing never creates it."""
    if not ledger_path(config.state_dir).exists():
        return contextlib.nullcontext()
    return open_ledger(config, key, claim=False)


def check_send_at(send_at: datetime, *, now: datetime | None = None) -> None:
    current = now or datetime.now(UTC)
    if send_at.tzinfo is None:
        raise SendError("--at needs a time zone, e.g. \"2026-11-29 08:00 Europe/Berlin\"")
    if send_at <= current:
        raise SendError(f"--at {send_at.isoformat()} is in the past\n    hint: give a time in the future")
    if send_at - current > SCHEDULE_HORIZON:
        raise SendError(f"--at {send_at.isoformat()} is more than 72 hours ahead, which SendGrid refuses\n"
                        "    hint: schedule it closer to the date, or run the send then")


def request_options(options: SendOptions, schedule_id: str) -> Any:
    from mailer.deliver.backends.sendgrid import SendGridOptions

    return SendGridOptions(send_at=options.send_at, schedule_id=schedule_id if options.send_at else None,
                           sandbox=options.sandbox)

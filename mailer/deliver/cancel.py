"""Cancelling a send scheduled with --at (SendGrid): its recipients become `cancelled`, for a later send."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mailer.config import Config
from mailer.deliver.backends import DeliveryError
from mailer.deliver.ledger import issue_lock, ledger_path
from mailer.deliver.options import open_ledger
from mailer.deliver.progress import SendError

if TYPE_CHECKING:  # the SendGrid client is loaded only when there is a schedule to cancel
    from mailer.deliver.backends.sendgrid import SendGridBackend

# SendGrid cancels a batch no later than this before its send_at; after that it goes out as scheduled.
# https://www.twilio.com/docs/sendgrid/api-reference/cancel-scheduled-sends
CANCEL_DEADLINE = timedelta(minutes=10)


def cancel_schedules(config: Config, key: str, backend: Callable[[], SendGridBackend], *, status_command: str,
                     on_cancelled: Callable[[str, int], None]) -> None:
    """Cancel every send of the issue keyed `key` still scheduled, telling `on_cancelled` when it was
    scheduled for and how many recipients will not receive it, as each is cancelled.

    `backend` is made only when there is a schedule to cancel. A schedule within CANCEL_DEADLINE of its
    time is left to go out, and SendError names it once the others are cancelled; `status_command` is
    the command that shows what was sent.
    """
    # A send still running could add batches to the schedule after it is cancelled: they would be
    # recorded `accepted` and then dropped by SendGrid. Cancel takes the send's lock, so while a send runs
    # it refuses at once (LockedError), as a second send would.
    nothing_scheduled = SendError(f"{key} has no scheduled send to cancel\n"
                                  f"    hint: `{status_command}` shows what was sent and when")
    if not ledger_path(config.state_dir).exists():  # never create an empty ledger just to find nothing
        raise nothing_scheduled
    with issue_lock(config.state_dir, key), open_ledger(config, key, claim=False) as ledger:
        schedules = ledger.active_schedules(key)
        if not schedules:
            raise nothing_scheduled
        sendgrid = backend()
        too_late = []
        for schedule_id, at in schedules:
            if datetime.fromisoformat(at) - datetime.now(UTC) < CANCEL_DEADLINE:
                # Marking its recipients cancelled would have the next send mail them a second time.
                too_late.append(at)
                continue
            try:
                sendgrid.cancel_schedule(schedule_id)
            except DeliveryError as err:
                raise SendError(f"SendGrid did not cancel the send scheduled for {at}: {err}") from None
            on_cancelled(at, ledger.cancel_schedule(key, schedule_id))
        if too_late:
            raise SendError(f"it is too late to cancel the send scheduled for {', '.join(too_late)}: SendGrid "
                            "cancels no later than 10 minutes before, so it goes out as scheduled\n"
                            "    its recipients stay recorded as accepted (`mailer status`)")

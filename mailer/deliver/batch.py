"""Delivering one batch: retry what is safe to retry, and classify the answer for the ledger."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from mailer.deliver import ledger as ledger_states
from mailer.deliver.backends import (
    Accepted,
    Backend,
    DeliveryError,
    FatalError,
    RejectedError,
    TransientError,
    UncertainError,
)
from mailer.deliver.retry import RetryPolicy


@dataclass(frozen=True)
class Outcome:
    state: str  # accepted | failed | uncertain | queued (not sent: fatal error or stopped)
    message_id: str | None = None
    error: str | None = None
    fatal: bool = False
    refused: tuple[int, ...] = ()  # failed because of these recipients (positions in the batch) only


def deliver(backend: Backend, payload: Any, policy: RetryPolicy, stop: threading.Event) -> Outcome:
    """Send one batch, retrying what is safe to retry; classify the result for the ledger."""
    last_error = ""
    for attempt in range(policy.attempts):
        try:
            accepted: Accepted = backend.send(payload)
            return Outcome(ledger_states.ACCEPTED, message_id=accepted.message_id)
        except TransientError as err:
            last_error = str(err)
            if attempt + 1 == policy.attempts:
                break
            if stop.wait(policy.delay(attempt, err.retry_after)):
                return Outcome(ledger_states.QUEUED, error=f"stopped while waiting to retry: {err}")
        except RejectedError as err:
            return Outcome(ledger_states.FAILED, error=str(err), refused=err.positions)
        except UncertainError as err:
            return Outcome(ledger_states.UNCERTAIN, error=str(err))
        except FatalError as err:
            return Outcome(ledger_states.QUEUED, error=str(err), fatal=True)
        except DeliveryError as err:  # pragma: no cover - every backend raises a subclass above
            return Outcome(ledger_states.UNCERTAIN, error=str(err))
    return Outcome(ledger_states.FAILED, error=f"gave up after {policy.attempts} attempts: {last_error}")

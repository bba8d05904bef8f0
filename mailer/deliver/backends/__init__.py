"""Delivery backends behind one small protocol: prepare a batch, then send it once.

`send` raises one of the errors below so that the sender (mailer/deliver/batch.py) can decide, in one
place, what is retried, what is failed, and what is uncertain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from mailer.audience.subscribers import Subscriber
from mailer.config import Config
from mailer.deliver.message import Personal, Personaliser
from mailer.errors import ExitStatus, MailerError

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue


class Recipient(NamedTuple):
    """One reader of a batch and what is theirs in it. (A tuple: a frozen dataclass took 0.8 µs to make,
    for each recipient of a send.)"""

    subscriber: Subscriber
    personal: Personal


@dataclass(frozen=True)
class Accepted:
    message_id: str | None


class DeliveryError(Exception):
    """Base of what a backend's send may raise."""


class TransientError(DeliveryError):
    """Not delivered, and worth retrying: throttling, a 5xx, a connection that never opened."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RejectedError(DeliveryError):
    """Not delivered, and retrying will not help: the provider refused these recipients."""

    def __init__(self, message: str, *, positions: tuple[int, ...] = ()):
        super().__init__(message)
        # The positions in the batch of the recipients the refusal is about ("550 5.1.1 no such user",
        # SendGrid's "personalizations.3.to.0.email"); empty when it is about the request or the server.
        # A refusal about recipients says nothing about the send as a whole, so it does not count
        # towards stopping it; and when it names only some of a batch, the others go again.
        self.positions = positions


class UncertainError(DeliveryError):
    """The request may have reached the provider: resending could deliver twice."""


class FatalError(DeliveryError):
    """Nothing was delivered and nothing will be until the user fixes something (a bad API key)."""


class BackendConfigError(MailerError):
    """A backend cannot start: missing key, malformed URL."""

    exit_code = ExitStatus.INPUT_ERROR


class Backend(Protocol):
    name: str
    max_batch: int

    def prepare(self, rendered: RenderedIssue, config: Config, recipients: list[Recipient], *,
                batch_id: str, options: Any) -> Any:
        """Build what `send` will transmit for these recipients (no I/O)."""

    def prepare_batch(self, rendered: RenderedIssue, config: Config, subscribers: list[Subscriber],
                      personaliser: Personaliser, *, batch_id: str, options: Any) -> Any:
        """prepare() for a batch of a send, each subscriber personalised by `personaliser`."""

    def send(self, payload: Any) -> Accepted:
        """Transmit one prepared batch; raise a DeliveryError subclass when it was not accepted."""

    def close(self) -> None: ...

"""The test send: one message with a [TEST] subject, as a subscriber would receive it; a live one
approves the issue as it is now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mailer.addresses import address_key
from mailer.audience.subscribers import Subscriber
from mailer.config import Config
from mailer.deliver import ledger as ledger_states
from mailer.deliver.approval import content_hash
from mailer.deliver.backends import Backend, Recipient
from mailer.deliver.batch import deliver
from mailer.deliver.dryrun import safe_filename
from mailer.deliver.ledger import StateError
from mailer.deliver.message import build_mime, personalise, unsubscribe_secret
from mailer.deliver.options import SendOptions, ledger_key, open_ledger
from mailer.deliver.progress import SendError
from mailer.deliver.suppressions import screen_recipients
from mailer.environment import Environment
from mailer.errors import ExitStatus, MailerError
from mailer.files import private_folder, write_private

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue


class SuppressedRecipientError(MailerError):
    """A live test send to an address on the local suppression list."""

    exit_code = ExitStatus.INPUT_ERROR


@dataclass
class TestSendReport:
    to: str
    as_email: str
    live: bool
    message_id: str | None = None
    eml_path: Path | None = None
    suppressed: str | None = None  # why `to` is on the suppression list (a dry run only warns)


def test_send(
    rendered: RenderedIssue,
    config: Config,
    subscriber: Subscriber,
    to: str,
    backend: Backend,
    options: SendOptions,
    *,
    environment: Environment = Environment(),
) -> TestSendReport:
    """Send exactly one message to `to`, as `subscriber` would receive it, with a [TEST] subject."""
    secret = unsubscribe_secret(environment.unsubscribe_secret, live=options.live and not config.managed_unsubscribe)
    personal = personalise(subscriber, rendered, config, secret, test_copy=True)  # its link unsubscribes nobody
    test_rendered = dataclasses.replace(rendered, subject=f"[TEST] {rendered.subject}")
    report = TestSendReport(to=to, as_email=subscriber.email, live=options.live)
    report.suppressed = screen_recipients(config.state_dir, [to]).reasons.get(address_key(to))
    if report.suppressed and options.live:
        # SendGrid itself drops mail to its bounces, spam reports and global unsubscribes: the test
        # message would be "accepted" and never arrive, and the approval gate would count it.
        raise SuppressedRecipientError(
            f"--test-to {to} is on the suppression list ({report.suppressed}); nothing was sent\n"
            "    hint: test-send to another address, or, if the address should get mail again, remove it "
            "from SendGrid's suppressions and run `mailer suppressions pull`")
    recipient = Recipient(dataclasses.replace(subscriber, email=to), personal)
    if not options.live:
        outbox = config.state_dir / "outbox" / rendered.issue.slug / "test"
        private_folder(outbox, within=config.state_dir)
        message = build_mime(test_rendered, config, subscriber, personal, to=to)
        report.eml_path = outbox / f"{safe_filename(to)}.eml"
        write_private(report.eml_path, bytes(message))
        return report
    payload = backend.prepare(test_rendered, config, [recipient], batch_id="test",
                              options=_TestOptions(to=to, sandbox=options.sandbox))
    # The test send is what approves the live one: the ledger must be able to record it before it leaves.
    key = ledger_key(rendered, options)
    with contextlib.nullcontext() if options.sandbox else open_ledger(config, key, claim=True) as ledger:
        outcome = deliver(backend, payload, options.retry, threading.Event())
        backend.close()
        if outcome.state != ledger_states.ACCEPTED:
            raise SendError(f"the test send to {to} was not accepted: {outcome.error}")
        report.message_id = outcome.message_id
        if ledger is not None:
            try:
                ledger.record_test_send(key, content_hash(rendered), to, outcome.message_id)
            except StateError as err:
                raise SendError(f"the test message to {to} was accepted (message id {outcome.message_id}) but "
                                f"could not be recorded: {str(err).splitlines()[0]}\n    a live send will not count "
                                "it as approval: send the test again once the state folder can be written") from None
    return report


@dataclass(frozen=True)
class _TestOptions:
    """Payload options for a test send: SendGrid's fields plus the SMTP backend's `to`."""

    to: str
    sandbox: bool = False
    send_at: datetime | None = None
    schedule_id: str | None = None
    test_copy: bool = True  # its events are not the issue's (see backends.sendgrid._request)

"""One transactional message (the sign-up's confirmation email) through the configured backend.

Not an issue: no list, no ledger, no List-Unsubscribe (the reader is not on the list yet), and no
tracking. SendGrid's click tracking would swap the confirmation link for one of its own, and its
subscription tracking would add an unsubscribe footer; both are switched off for this message.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, NamedTuple

from mailer.config import Config
from mailer.deliver import ledger
from mailer.deliver.backends import Backend
from mailer.deliver.batch import deliver
from mailer.deliver.message import POLICY, POLICY_UTF8, address_header, body_part
from mailer.deliver.retry import RetryPolicy
from mailer.environment import Environment

CATEGORY = "mailer-confirmation"  # how the confirmation emails are told apart in SendGrid's statistics
RETRY = RetryPolicy(attempts=3, base_seconds=2.0, cap_seconds=20.0, max_wait_seconds=60.0)


def notice_backend(config: Config, environment: Environment) -> Backend:
    """The backend mailer.yaml names, its key or URL from `environment`, checked now (a missing key or URL is a
    BackendConfigError at start)."""
    if config.backend == "smtp":
        from mailer.deliver.backends.smtp import SmtpBackend, smtp_settings

        return SmtpBackend(smtp_settings(environment.smtp_url))
    from mailer.deliver.backends.sendgrid import SendGridBackend, api_host, api_key

    return SendGridBackend(key=api_key(environment.sendgrid_api_key,
                                       "`mailer serve` sends the sign-up form's confirmation emails through SendGrid",
                                       " with Mail Send permission, or remove the `signup:` section"),
                           host=api_host(environment.sendgrid_api_host))


def notice_payload(backend: Backend, config: Config, *, to: str, subject: str, html: str, text: str) -> Any:
    """What `backend.send` takes for one message to `to`."""
    if backend.name == "sendgrid":
        from mailer.deliver.backends.sendgrid import Request

        sender: dict[str, str] = {"email": config.sender.email}
        if config.sender.name:
            sender["name"] = config.sender.name
        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": to}]}],
            "from": sender,
            "subject": subject,
            "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
            "categories": [CATEGORY],
            "tracking_settings": {"click_tracking": {"enable": False, "enable_text": False},
                                  "open_tracking": {"enable": False},
                                  "subscription_tracking": {"enable": False}},
        }
        if config.reply_to:
            body["reply_to"] = {"email": config.reply_to}
        return Request(json.dumps(body), (to,))
    from mailer.deliver.backends.smtp import Prepared

    needs_utf8 = not (to + config.sender.email).isascii()
    message = EmailMessage(policy=POLICY_UTF8 if needs_utf8 else POLICY)
    message["From"] = address_header(config.sender.name, config.sender.email)
    message["To"] = address_header("", to)
    if config.reply_to:
        message["Reply-To"] = config.reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=config.sender.email.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a confirmation
    message["MIME-Version"] = "1.0"
    message.make_alternative()
    message.attach(body_part(text, "plain", message.policy))
    message.attach(body_part(html, "html", message.policy))
    return Prepared(message.as_bytes(), str(message["Message-ID"]), config.sender.email, to)


SENT, NOT_SENT, MAYBE_SENT = "sent", "not sent", "maybe sent"


class Sent(NamedTuple):
    """How sending one notice went: SENT (accepted), NOT_SENT (it surely did not leave: refused, given up
    on, stopped before it went) or MAYBE_SENT (the request may have left: a dropped connection, a timeout)."""

    state: str
    error: str | None = None


def send_notice(backend: Backend, payload: Any, stop: threading.Event) -> Sent:
    """Send it, retrying what is safe to retry; how it went."""
    outcome = deliver(backend, payload, RETRY, stop)
    if outcome.state == ledger.ACCEPTED:
        return Sent(SENT)
    state = NOT_SENT if outcome.state in (ledger.FAILED, ledger.QUEUED) else MAYBE_SENT
    return Sent(state, outcome.error or outcome.state)

"""The last issue's spam complaints: a live send warns from 0.1 % and refuses above 0.3 % (Gmail, Yahoo)."""

from __future__ import annotations

from dataclasses import dataclass

from mailer.config import Config
from mailer.deliver.ledger import Ledger, ledger_path
from mailer.deliver.options import SendOptions, open_ledger
from mailer.errors import ExitStatus, MailerError


class ComplaintsError(MailerError):
    exit_code = ExitStatus.INPUT_ERROR


def refuse_on_complaints(ledger: Ledger, key: str, options: SendOptions) -> None:
    """Refuse a live send while the last issue's readers reported it as spam too often (Gmail, Yahoo: 0.3 %)."""
    check_complaints(_complaint_standing(ledger, key), options)


@dataclass(frozen=True)
class ComplaintStanding:
    """How often the readers of the last issue with events reported it as spam."""

    issue: str
    complaints: int
    delivered: int

    @property
    def rate(self) -> float:
        return self.complaints / self.delivered

    def describe(self) -> str:
        return (f"{self.rate:.2%} of the readers who got {self.issue} reported it as spam "
                f"({self.complaints} of {self.delivered})")


def _complaint_standing(ledger: Ledger, key: str) -> ComplaintStanding | None:
    from mailer.deliver.events import engagement

    last = ledger.last_issue_with_events(besides=key)
    seen = engagement(ledger, last) if last else None
    if last is None or seen is None or not seen.delivered:
        return None
    return ComplaintStanding(last, seen.complaints, seen.delivered)


def complaint_standing(config: Config, key: str) -> ComplaintStanding | None:
    """The last other issue's complaints, from SendGrid's events (None without any): for a live send's
    first screen, which warns from 0.1 % and refuses above 0.3 % (send_issue refuses again under the lock)."""
    if not ledger_path(config.state_dir).exists():
        return None
    with open_ledger(config, key, claim=False) as ledger:
        return _complaint_standing(ledger, key)


def check_complaints(standing: ComplaintStanding | None, options: SendOptions) -> None:
    """Raise ComplaintsError while the last issue's complaint rate is over 0.3 %, unless --despite-complaints."""
    from mailer.deliver.events import OVER, complaint_level

    if standing is None or complaint_level(standing.rate) != OVER or options.despite_complaints:
        return
    raise ComplaintsError(
        f"{standing.describe()}; above 0.3 % Gmail and Yahoo start refusing a sender's mail. Nothing was sent.\n"
        f"    hint: `mailer status` on {standing.issue} shows its events; make sure the list is opted in and "
        "the unsubscribe link is easy to find, then send with --despite-complaints")

"""`mailer doctor`'s whole run over the sending domain: SendGrid's view (when it can be asked), the DNS rows,
then the bulk-sender table. Everything it needs from the environment is handed in by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mailer.checks.bulk import built_headers, bulk_rows, complaints_row, latest_issue, one_click_row
from mailer.checks.dns import Resolver
from mailer.checks.domain import DomainFindings, Sending, check_domain
from mailer.checks.rows import DoctorReport
from mailer.config import Config


@dataclass(frozen=True)
class SendGridAccess:
    key: str
    host: str


def sending_of(config: Config, *, backend: str | None = None, smtp_host: str | None = None,
               dkim_selectors: tuple[str, ...] = (), return_path: str | None = None) -> Sending:
    """What the newsletter's mail must be authorised for, from mailer.yaml and what the caller read."""
    domain = config.sender.email.rpartition("@")[2].lower()
    reply = config.reply_to.rpartition("@")[2].lower() if config.reply_to else None
    return Sending(domain=domain, backend=backend or config.backend, smtp_host=smtp_host,
                   dkim_selectors=tuple(s.lower() for s in dkim_selectors),
                   return_path=return_path.lower().rstrip(".") if return_path else None, reply_domain=reply)


def run_doctor(config: Config, sending: Sending, resolver: Resolver, *, sendgrid: SendGridAccess | None = None,
               issue_path: Path | None = None) -> DoctorReport:
    """Every check of the sending domain, as rows."""
    report = DoctorReport(sending.domain)
    if sending.backend == "sendgrid" and sendgrid is not None:
        from mailer.checks.sendgridview import check_sendgrid

        view = check_sendgrid(sending.domain, key=sendgrid.key, host=sendgrid.host)
        report.rows += view.rows
        # What SendGrid says it signs and bounces with is what the DNS rows check, unless the editor said.
        sending = replace(sending, return_path=sending.return_path or view.return_path,
                          dkim_selectors=sending.dkim_selectors or view.dkim_selectors,
                          dkim_domain=sending.dkim_domain or view.dkim_domain)
    found = check_domain(resolver, sending)
    report.rows += found.rows
    issue = issue_path or latest_issue(config)
    headers = built_headers(issue, config) if issue is not None else None
    from mailer.schema import display_path

    report.rows += bulk_rows(found, one_click=one_click_row(config, headers, display_path(issue) if issue else ""),
                             complaints=complaints_row(config.state_dir))
    report.facts.update(_facts(sending, found))
    return report


def _facts(sending: Sending, found: DomainFindings) -> dict[str, object]:
    return {"domain": sending.domain, "backend": sending.backend, "return_path": sending.return_path,
            "dkim_selectors": list(sending.selectors), "dmarc_policy": found.policy,
            "dkim_aligned": found.dkim_aligned, "spf_aligned": found.spf_aligned,
            "dns_unreachable": found.unreachable}

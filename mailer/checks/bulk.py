"""The bulk-sender rules of Gmail and Yahoo (February 2024) and Microsoft (May 2025) as one table: each rule a
row naming who asks for it, drawn from the domain's rows, the built message and the events in the ledger.

https://support.google.com/a/answer/81126 · https://senders.yahooinc.com/best-practices/ ·
https://techcommunity.microsoft.com/blog/microsoftdefenderforoffice365blog/strengthening-email-ecosystem-outlook%E2%80%99s-new-requirements-for-high%E2%80%90volume-senders/4399730
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from mailer.checks.domain import DomainFindings
from mailer.checks.rows import FAIL, INFO, PASS, UNKNOWN, WARN, Row
from mailer.config import Config
from mailer.deliver.message import ONE_CLICK_POST as ONE_CLICK

ALL = ("Gmail", "Yahoo", "Microsoft")
_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}\.yaml$")


def bulk_rows(found: DomainFindings, *, one_click: Row, complaints: Row) -> list[Row]:
    """The rules as rows, from what the domain's checks found."""
    rows = []
    dkim = [row.status for row in found.rows if row.check.startswith("dkim.")]
    dkim_ok = True if PASS in dkim else None if UNKNOWN in dkim or not dkim else False
    if found.spf_ok and dkim_ok:
        rows.append(Row("bulk.authentication", "SPF and DKIM", PASS, "both published", group="bulk", providers=ALL))
    elif found.spf_ok is False or dkim_ok is False:
        missing = " and ".join(name for name, ok in (("SPF", found.spf_ok), ("DKIM", dkim_ok)) if ok is False)
        rows.append(Row("bulk.authentication", "SPF and DKIM", FAIL, f"{missing} not in order",
                        "see the SPF and DKIM rows above", group="bulk", providers=ALL))
    else:
        rows.append(Row("bulk.authentication", "SPF and DKIM", UNKNOWN, "not all could be checked",
                        "see the rows above", group="bulk", providers=ALL))
    if found.dmarc_ok:
        rows.append(Row("bulk.dmarc", "DMARC record (p=none at least)", PASS, f"p={found.policy}", group="bulk",
                        providers=ALL))
    else:
        rows.append(Row("bulk.dmarc", "DMARC record (p=none at least)", UNKNOWN if found.dmarc_ok is None else FAIL,
                        "no valid DMARC record" if found.dmarc_ok is False else "not checked",
                        "see the DMARC record row above", group="bulk", providers=ALL))
    if found.dkim_aligned or found.spf_aligned:
        rows.append(Row("bulk.alignment", "From aligned with SPF or DKIM", PASS,
                        "DKIM aligned" if found.dkim_aligned else "SPF aligned", group="bulk", providers=ALL))
    elif found.dkim_aligned is None and found.spf_aligned is None:
        rows.append(Row("bulk.alignment", "From aligned with SPF or DKIM", UNKNOWN, "not checked",
                        "see the DMARC alignment row above", group="bulk", providers=ALL))
    else:
        rows.append(Row("bulk.alignment", "From aligned with SPF or DKIM", FAIL, "neither is aligned",
                        "see the DMARC alignment row above", group="bulk", providers=ALL))
    return [*rows, one_click, complaints]


def latest_issue(config: Config) -> Path | None:
    """The latest issue in issues/ by its date (a file named for its date alone)."""
    dated = sorted(path for path in config.issues_dir.glob("*.yaml") if _DATED.match(path.name))
    return dated[-1] if dated else None


def built_headers(issue_path: Path, config: Config) -> Mapping[str, str]:
    """The headers of the message one reader of this issue would get, as the send builds it."""
    from mailer.compose.buildcache import build_issue_cached
    from mailer.deliver.message import sample_message

    rendered = build_issue_cached(issue_path, config, config.state_dir / "builds")
    message = sample_message(rendered, config)
    return {name: str(message[name]) for name in ("List-Unsubscribe", "List-Unsubscribe-Post") if message[name]}


def one_click_row(config: Config, headers: Mapping[str, str] | None, issue_label: str) -> Row:
    title = "One-click unsubscribe"
    providers = ("Gmail", "Yahoo")
    if config.managed_unsubscribe:
        return Row("bulk.one-click", title, PASS, "SendGrid adds List-Unsubscribe and List-Unsubscribe-Post "
                   "(unsubscribe: sendgrid)", group="bulk", providers=providers)
    if headers is None:
        return Row("bulk.one-click", title, INFO, "no issue to build in issues/", group="bulk", providers=providers)
    link = headers.get("List-Unsubscribe", "")
    post = headers.get("List-Unsubscribe-Post", "")
    if "<https://" in link and post.strip() == ONE_CLICK:
        return Row("bulk.one-click", title, PASS, f"{issue_label}: List-Unsubscribe with an https link, and "
                   f"List-Unsubscribe-Post: {ONE_CLICK} (RFC 8058)", group="bulk", providers=providers)
    return Row("bulk.one-click", title, FAIL, f"{issue_label}: the message lacks "
               + ("an https List-Unsubscribe link" if "<https://" not in link else "List-Unsubscribe-Post"),
               "set unsubscribe_url in mailer.yaml to the https address where mailer serve answers",
               group="bulk", providers=providers)


def complaints_row(state_dir: Path) -> Row:
    """The last issue's spam-complaint rate, from SendGrid's events recorded in the ledger."""
    from mailer.deliver import events
    from mailer.deliver.ledger import Ledger, ledger_path

    title = "Spam complaints under 0.3 %"
    providers = ("Gmail", "Yahoo")
    path = ledger_path(state_dir)
    none = Row("bulk.complaints", title, INFO, "no events recorded yet (mailer serve records SendGrid's Event "
               "Webhook)", group="bulk", providers=providers)
    if not path.is_file():
        return none
    with Ledger(path) as ledger:
        last = ledger.last_issue_with_events(besides="")
        seen = events.engagement(ledger, last) if last else None
    rate = seen.complaint_rate if seen else None
    if seen is None or rate is None:
        return none
    detail = f"{rate:.2%} for {last} ({seen.complaints} of {seen.delivered} delivered)"
    level = events.complaint_level(rate)
    if level == events.OVER:
        return Row("bulk.complaints", title, FAIL, detail, "above 0.3 % Gmail and Yahoo refuse mail: send only to "
                   "readers who opted in, and make the unsubscribe link easy to find", group="bulk",
                   providers=providers)
    if level == events.WARN:
        return Row("bulk.complaints", title, WARN, detail, "keep it under 0.1 %: Gmail's advice", group="bulk",
                   providers=providers)
    return Row("bulk.complaints", title, PASS, detail, group="bulk", providers=providers)

"""SendGrid's own view of the sending domain: its authenticated domains (GET /v3/whitelabel/domains) and
whether SendGrid validated each record it asked for.

https://www.twilio.com/docs/sendgrid/api-reference/domain-authentication/list-all-authenticated-domains
"""

from __future__ import annotations

import json
import urllib.error
from dataclasses import dataclass, field
from typing import Any

from mailer.checks.dns import shown
from mailer.checks.rows import FAIL, PASS, UNKNOWN, WARN, Row

PAGE = 200
MOST_PAGES = 10
TIMEOUT_SECONDS = 15.0
TITLE = "SendGrid domain authentication"


@dataclass
class SendGridView:
    rows: list[Row] = field(default_factory=list)
    return_path: str | None = None  # the mail_cname's host: emNNNN.<domain>, the envelope's domain
    dkim_selectors: tuple[str, ...] = ()
    dkim_domain: str | None = None


def check_sendgrid(domain: str, *, key: str, host: str, timeout: float = TIMEOUT_SECONDS) -> SendGridView:
    """What SendGrid says of `domain`: authenticated, and every record it asked for valid."""
    view = SendGridView()
    try:
        domains = _authenticated_domains(key, host, timeout)
    except _Refused as err:
        view.rows.append(Row("sendgrid.domain", TITLE, WARN, f"SendGrid refused the request ({err})",
                             "use an API key with the Sender Authentication read permission (or full access)",
                             group="sendgrid"))
        return view
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        view.rows.append(Row("sendgrid.domain", TITLE, UNKNOWN, f"cannot reach SendGrid: {shown(str(reason), 100)}",
                             "run mailer doctor again when the network is back", group="sendgrid"))
        return view
    names = [str(entry.get("domain", "")).lower() for entry in domains]
    match = next((e for e in domains if str(e.get("domain", "")).lower() == domain), None) or next(
        (e for e in domains if domain.endswith("." + str(e.get("domain", "")).lower())), None)
    if match is None:
        others = f" (it has {shown(', '.join(sorted(set(names))), 100)})" if names else ""
        view.rows.append(Row("sendgrid.domain", TITLE, FAIL, f"SendGrid has no authenticated domain for "
                             f"{domain}{others}: it signs with its own domain, which DMARC does not align",
                             f"in SendGrid: Settings > Sender Authentication > Authenticate Your Domain, enter "
                             f"{domain}, and add the records it gives at your DNS host", group="sendgrid"))
        return view
    dns = match.get("dns") if isinstance(match.get("dns"), dict) else {}
    view.dkim_domain = str(match.get("domain", "")).lower() or None
    view.return_path = _host_of(dns.get("mail_cname")) or (
        f"{match['subdomain']}.{view.dkim_domain}" if match.get("subdomain") and view.dkim_domain else None)
    selectors = []
    for name in ("dkim1", "dkim2", "dkim"):
        host = _host_of(dns.get(name))
        if host and "._domainkey." in host:
            selectors.append(host.split("._domainkey.")[0])
    view.dkim_selectors = tuple(selectors)
    invalid = [(name, record) for name, record in dns.items() if isinstance(record, dict) and not record.get("valid")]
    if match.get("valid") and not invalid:
        view.rows.append(Row("sendgrid.domain", TITLE, PASS, f"{view.dkim_domain} is authenticated and every record "
                             "validated", group="sendgrid"))
        return view
    listed = "; ".join(f"{shown(str(r.get('host')), 60)} {str(r.get('type', '')).upper()} → "
                       f"{shown(str(r.get('data')), 60)}" for _, r in invalid[:4])
    view.rows.append(Row("sendgrid.domain", TITLE, FAIL, f"SendGrid has not validated {view.dkim_domain}"
                         + (f": it does not see {listed}" if listed else ""),
                         "add exactly these records at your DNS host (a CNAME, not a TXT; without your domain "
                         "written twice), wait for them to appear, then press Verify under Settings > Sender "
                         "Authentication", group="sendgrid"))
    return view


class _Refused(Exception):
    pass


def _host_of(record: Any) -> str | None:
    if isinstance(record, dict) and isinstance(record.get("host"), str):
        return record["host"].lower().rstrip(".")
    return None


def _authenticated_domains(key: str, host: str, timeout: float) -> list[dict[str, Any]]:
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient

    from mailer.deliver.backends.sendgrid import api_request

    client = SendGridAPIClient(api_key=key, host=host).client
    found: list[dict[str, Any]] = []
    for page in range(MOST_PAGES):
        try:
            _, body = api_request(client, "GET", "/whitelabel/domains", timeout=timeout,
                                  query={"limit": PAGE, "offset": page * PAGE})
        except HTTPError as err:
            if int(getattr(err, "status_code", 0) or 0) >= 500:
                raise OSError(f"SendGrid answered {err.status_code}") from None
            raise _Refused(f"{err.status_code}") from None
        try:
            rows = json.loads(body or b"[]")
        except (ValueError, RecursionError):
            raise _Refused("its answer is not JSON") from None
        if not isinstance(rows, list):
            raise _Refused("its answer is not a list of domains")
        found += [row for row in rows if isinstance(row, dict)]
        if len(rows) < PAGE:
            break
    return found

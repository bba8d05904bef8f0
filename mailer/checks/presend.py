"""The sending domain checked before a live send: SPF, DKIM and DMARC (no MX, BIMI or SendGrid), a clean verdict
kept for a day in the state folder. A failure is a warning on the send's first screen; only a domain whose DMARC
policy is reject, and whose mail could align neither SPF nor DKIM, stops the send: every receiver would refuse it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from mailer.checks.dns import Resolver
from mailer.checks.domain import Sending, check_authentication
from mailer.checks.rows import FAIL, UNKNOWN, Row
from mailer.errors import ExitStatus, MailerError
from mailer.files import PRIVATE_FILE, private_folder, read_regular, tighten, write_atomic

CACHE_NAME = "domain-check.json"
CACHE_SECONDS = 24 * 3600
TIMEOUT_SECONDS = 2.0  # a send's first screen waits this long for an answer, twice at most (see GIVE_UP_AFTER)


class DomainWouldFail(MailerError):
    """Every receiver would refuse the mail: DMARC p=reject and nothing aligned. Nothing was sent."""

    exit_code = ExitStatus.INPUT_ERROR


@dataclass
class PreSendVerdict:
    failures: list[Row] = field(default_factory=list)  # each a warning on the first screen
    unknown: bool = False  # DNS did not answer: a note, never a stop
    blocked: bool = False
    policy: str | None = None
    from_cache: bool = False


def check_before_send(sending: Sending, resolver: Resolver, state_dir: Path, *, now: float | None = None
                      ) -> PreSendVerdict:
    """The verdict on the sending domain: from the cache when it is less than a day old, else asked of DNS."""
    current = time.time() if now is None else now
    path = state_dir / CACHE_NAME
    key = json.dumps([sending.domain, sending.backend, sending.smtp_host, list(sending.selectors)])
    cached = _read_cache(path).get(key)
    if cached and 0 <= current - float(cached.get("at", 0)) < CACHE_SECONDS:
        verdict = _verdict([Row.from_dict(row) for row in cached["rows"]], cached.get("policy"),
                           cached.get("blocked", False))
        verdict.from_cache = True
        return verdict
    found = check_authentication(resolver, sending)
    # Every receiver would refuse it: p=reject, no valid key under an aligned domain, and no aligned return path
    # (SendGrid's stays sendgrid.net unless the domain is authenticated, which publishes the keys too).
    blocked = found.policy == "reject" and found.dkim_aligned is False and not found.spf_aligned
    verdict = _verdict(found.rows, found.policy, blocked)
    # Only a clean verdict is kept: after a fix in DNS the next send asks again (no answer is no verdict either).
    if not verdict.unknown and not verdict.failures:
        entries = _read_cache(path)
        entries[key] = {"at": current, "policy": found.policy, "blocked": blocked,
                        "rows": [row.to_dict() for row in found.rows]}
        try:
            private_folder(state_dir)
            write_atomic(path, json.dumps(entries, ensure_ascii=False).encode("utf-8"), mode=PRIVATE_FILE)
        except OSError:
            pass  # a cache that cannot be written costs the next send a few lookups, nothing more
    return verdict


def _verdict(rows: list[Row], policy: str | None, blocked: bool) -> PreSendVerdict:
    return PreSendVerdict(failures=[row for row in rows if row.status == FAIL],
                          unknown=any(row.status == UNKNOWN for row in rows), blocked=blocked, policy=policy)


MAX_CACHE_BYTES = 1024 * 1024  # a day's verdicts of a few domains: kilobytes


def _read_cache(path: Path) -> dict[str, dict]:
    """The cached verdicts; nothing when the file is missing, too large, not JSON, or not a regular file (a
    FIFO planted there would hang the send). An older release's 0644 file is made private as it is read."""
    tighten(path)
    try:
        data = read_regular(path, MAX_CACHE_BYTES, follow=False)
        entries = json.loads(data.decode("utf-8")) if len(data) <= MAX_CACHE_BYTES else {}
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return entries if isinstance(entries, dict) else {}


def refusal(sending: Sending, verdict: PreSendVerdict) -> DomainWouldFail:
    listed = "\n".join(f"  {row.title}: {row.detail}" for row in verdict.failures[:6])
    fixes = "; ".join(dict.fromkeys(row.fix for row in verdict.failures if row.fix))
    return DomainWouldFail(
        f"{sending.domain} publishes DMARC p=reject, and this mail could pass neither SPF nor DKIM aligned with it: "
        f"every receiver would refuse it. Nothing was sent.\n{listed}\n"
        f"    hint: {fixes or 'set up DKIM for the From domain'}; `mailer doctor` shows every row")

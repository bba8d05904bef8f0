"""The rows `mailer doctor` shows: each check's result as data (status, what was found, the fix), as
checkdmarc's check_spf / check_dmarc return theirs; the CLI only renders them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASS, WARN, FAIL, INFO, UNKNOWN = "pass", "warn", "fail", "info", "unknown"
STATUSES = (PASS, WARN, FAIL, INFO, UNKNOWN)


@dataclass(frozen=True)
class Row:
    """One check of the sending domain or of a received message."""

    check: str  # a stable id: spf.record, dkim.s1, dmarc.policy, bulk.one-click, eml.dkim …
    title: str  # what an editor reads in the first column: "SPF record", "DKIM s1._domainkey"
    status: str  # pass, warn, fail, info, unknown (could not be checked: no answer from DNS or SendGrid)
    detail: str  # what was found, in a sentence
    fix: str = ""  # what to do about it, in words an editor can act on; empty when nothing is to be done
    group: str = "domain"  # domain, sendgrid, bulk, received
    providers: tuple[str, ...] = ()  # bulk rows: the mailbox providers whose rules ask for it

    def to_dict(self) -> dict[str, Any]:
        found = {"check": self.check, "title": self.title, "status": self.status, "detail": self.detail,
                 "fix": self.fix or None, "group": self.group}
        if self.providers:
            found["providers"] = list(self.providers)
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        return cls(check=str(data["check"]), title=str(data["title"]), status=str(data["status"]),
                   detail=str(data["detail"]), fix=str(data.get("fix") or ""), group=str(data.get("group", "domain")),
                   providers=tuple(data.get("providers") or ()))


@dataclass
class DoctorReport:
    """Everything one `mailer doctor` run found, and the facts the rows were drawn from."""

    subject: str  # the From domain, or the .eml file
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(row.status == status for row in self.rows)

    @property
    def failed(self) -> bool:
        return self.count(FAIL) > 0

    @property
    def unknown(self) -> bool:
        """A row that matters could not be checked (no answer): the run proves nothing about it."""
        return self.count(UNKNOWN) > 0

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "ok": not self.failed,
                "counts": {status: self.count(status) for status in STATUSES},
                "rows": [row.to_dict() for row in self.rows], "facts": self.facts}

"""Finished issues and drafts: what the web output publishes and what `mailer new` starts from.

An issue is finished when it was sent (a reader got it, so its "view in browser" page must exist), or
when it is dated today or earlier and `mailer check` finds no error in it. Anything else is a draft:
copy still unfinished (a TODO) or otherwise in error, a date still to come and not sent, a file that
does not build. Each draft carries why, in words an editor can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mailer.checks.check import CheckReport, check_issue
from mailer.config import Config
from mailer.deliver.ledger import Ledger, ledger_path
from mailer.files import issue_slug
from mailer.schema import display_path

UNFINISHED = "text.unfinished"  # leftover TODO, FIXME, TK, lorem ipsum: never published, --force or not


@dataclass(frozen=True)
class Standing:
    """Whether an issue is finished or a draft, and why."""

    path: Path
    report: CheckReport
    sent: bool = False
    future: date | None = None  # its date, when that is after today and it was not sent
    reasons: tuple[str, ...] = ()  # why it is a draft; none: finished

    @property
    def draft(self) -> bool:
        return bool(self.reasons)

    @property
    def builds(self) -> bool:
        return self.report.rendered is not None

    @property
    def errors(self) -> int:
        return self.report.count("error")

    @property
    def unfinished(self) -> int:
        return sum(1 for finding in self.report.findings if finding.code == UNFINISHED)

    @property
    def forceable(self) -> bool:
        """A draft only for check errors that --force may override: it builds, is due, has no TODO left."""
        return self.draft and self.builds and self.future is None and not self.unfinished

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)


def sent_issues(config: Config) -> set[str]:
    """The slugs of the issues some reader got, from the ledger (no ledger: none; it is never created here)."""
    path = ledger_path(config.state_dir)
    if not path.exists():
        return set()
    with Ledger(path) as ledger:
        return ledger.sent_issues()


def issue_standing(path: Path, config: Config, *, today: date, sent: set[str],
                   report: CheckReport | None = None) -> Standing:
    """Judge one issue file; `report` is its `check_issue` report when the caller has one already."""
    report = report if report is not None else check_issue(path, config)
    # The ledger keys a real send by the slug alone (a sandbox send, which delivers nothing, adds "@sandbox").
    if issue_slug(path) in sent:
        return Standing(path, report, sent=True)
    reasons = []
    future = None
    if report.rendered is None:
        first = report.sorted_findings()[0] if report.findings else None
        reasons.append("does not build" + (f": {first.where}: {first.message}" if first else ""))
    else:
        day = report.rendered.issue.date
        if day > today:
            future = day
            reasons.append(f"dated {day.isoformat()}, after today, and not sent")
        errors = [finding for finding in report.sorted_findings() if finding.severity == "error"]
        if errors:
            unfinished = [finding for finding in errors if finding.code == UNFINISHED]
            what = f"{len(errors)} {'error' if len(errors) == 1 else 'errors'} found by mailer check"
            if unfinished:
                what += f", {len(unfinished)} of them unfinished copy"
            first = unfinished[0] if unfinished else errors[0]
            reasons.append(f"{what}, the first: {first.where}: {first.message}")
    return Standing(path, report, future=future, reasons=tuple(reasons))


def latest_finished(paths: list[Path], config: Config, *, today: date,
                    dates: dict[Path, date]) -> tuple[Path | None, list[Standing]]:
    """The newest of `paths` (by `dates`) that is finished, and the drafts passed over on the way (newest first).

    Issues are judged newest first and only until a finished one is found: each judgement builds and checks.
    """
    sent = sent_issues(config)
    passed_over = []
    for path in sorted(paths, key=lambda p: (dates[p], -len(p.name)), reverse=True):
        standing = issue_standing(path, config, today=today, sent=sent)
        if not standing.draft:
            return path, passed_over
        passed_over.append(standing)
    return None, passed_over


def describe(standing: Standing) -> str:
    return f"{display_path(standing.path)}: {standing.why}"

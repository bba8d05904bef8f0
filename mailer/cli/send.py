"""`mailer send`: parse, confirm, show progress and the final table.

The sending machinery is imported inside the functions, so that `mailer --help` does not load it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from mailer.cli.commandline import command_line
from mailer.cli.environment import environment
from mailer.errors import ExitStatus, MailerError

if TYPE_CHECKING:  # the commands import the sending machinery when they run, so --help stays fast
    from mailer.audience.subscribers import Subscriber, SubscriberList
    from mailer.compose.build import RenderedIssue
    from mailer.config import Config
    from mailer.deliver.options import SendOptions
    from mailer.deliver.progress import Progress, SendReport
    from mailer.deliver.sendtime import SendTime


EPILOG_SEND = """\b
Examples:
  mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv              # dry run
  mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv \\
      --test-to me@example.com --live                                           # one real test message
  mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv --live       # everyone
  mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv --live \\
      --at "sunday 08:00"                       # scheduled (SendGrid), in mailer.yaml's time_zone
  mailer send issues/2020-12-13.yaml --subscribers subscribers.example.csv --live \\
      --backend smtp --workers 4                                                # over 4 SMTP connections

\b
Environment (a live send; a dry run needs none of it):
  SENDGRID_API_KEY           the SendGrid API key (Mail Send permission)
  MAILER_SMTP_URL            --backend smtp: smtp://user:pass@host:587 (STARTTLS), smtps://user:pass@host:465
  MAILER_UNSUBSCRIBE_SECRET  signs each reader's unsubscribe link
  SSL_CERT_FILE              a private CA's certificate, when the SMTP server's is signed by one
  MAILER_DNS                 HOST:PORT of the DNS server the domain check before a live send asks
  MAILER_INBOUND_KEY         set (mailer serve reads mail via SendGrid's Inbound Parse), or
  MAILER_MAILBOX_URL         set (mailer suppressions pull reads the mailbox): List-Unsubscribe
                             offers the mailto: too; with neither, only the https link
"""


@click.command(epilog=EPILOG_SEND)
@click.argument("issue_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--subscribers", "subscribers_path", type=click.Path(path_type=Path, dir_okay=False),
              help="The subscribers CSV (columns: email, first_name, last_name, status, tags). Without it: the "
                   "subscriber store's confirmed readers (mailer subscribers).")
@click.option("--live", is_flag=True, help="Really send. Without it, nothing leaves the machine (dry run).")
@click.option("--test-to", metavar="ADDRESS", help="Send one [TEST] message to ADDRESS only, never to the list.")
@click.option("--as", "as_email", metavar="EMAIL",
              help="With --test-to: use the data of this subscriber (default: the first one).")
@click.option("--backend", type=click.Choice(["sendgrid", "smtp"]),
              help="Delivery backend (default: from mailer.yaml).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation before a live send to the list.")
@click.option("--force", is_flag=True,
              help="Send even if mailer check finds errors or the content changed since the last test send.")
@click.option("--at", "send_at", metavar="TIME",
              help='Schedule (SendGrid, ≤ 72 h ahead): "sunday 08:00", "tomorrow 07:30", "2026-12-13 08:00", in '
                   "mailer.yaml's time_zone unless a zone follows (\"… Europe/Berlin\").")
@click.option("--sandbox", is_flag=True, help="SendGrid sandbox mode: requests are validated, nothing is delivered.")
@click.option("--rate", type=click.FloatRange(min=0.1), help="At most this many messages per second.")
@click.option("--workers", type=click.IntRange(1, 16),
              help="Requests at once: SendGrid batches (default 4), or SMTP connections (default 1).")
@click.option("--resend-uncertain", is_flag=True, help="Also send to recipients whose earlier delivery is uncertain.")
@click.option("--retry-failed", is_flag=True, help="Also retry recipients whose earlier delivery failed.")
@click.option("--segment", metavar="TAG", help="Only subscribers tagged TAG.")
@click.option("--skip-invalid", is_flag=True, help="Skip invalid CSV rows (listed) instead of refusing to send.")
@click.option("--encoding", metavar="NAME", help="The CSV's encoding when it is not UTF-8 (e.g. cp1252).")
@click.option("--despite-complaints", is_flag=True,
              help="Send although the last issue's spam-complaint rate (from SendGrid's events) is over 0.3 %.")
def send(issue_file: Path, subscribers_path: Path | None, live: bool, test_to: str | None, as_email: str | None,
         backend: str | None, yes: bool, force: bool, send_at: str | None, sandbox: bool, rate: float | None,
         workers: int | None, resend_uncertain: bool, retry_failed: bool, segment: str | None, skip_invalid: bool,
         encoding: str | None, despite_complaints: bool) -> ExitStatus:
    """Send ISSUE_FILE: a dry run unless --live.

    A dry run writes an outbox (.eml samples, a manifest line per recipient and, for SendGrid,
    the exact request bodies) under the state folder and sends nothing. A live send records every
    recipient in the ledger: running the same command again resumes, never mailing anyone twice.
    """
    from mailer.deliver.approval import check_approved
    from mailer.deliver.dryrun import dry_run
    from mailer.deliver.live import send_issue
    from mailer.deliver.options import SendOptions
    from mailer.deliver.plan import plan_send

    config = workspace_of(issue_file)
    scheduled = _read_send_at(send_at, config)
    when = scheduled.when if scheduled is not None else None
    options = SendOptions.from_raw_args(config, live=live, test_to=test_to, backend=backend, send_at=when,
                                        sandbox=sandbox, force=force, rate=rate, workers=workers,
                                        resend_uncertain=resend_uncertain, retry_failed=retry_failed,
                                        despite_complaints=despite_complaints)
    wanted = _ListChoice(subscribers_path, segment=segment, skip_invalid=skip_invalid, encoding=encoding)
    if _answered_from_the_ledger(issue_file, config, options, wanted):
        return ExitStatus.OK
    rendered = _build(issue_file, config)
    forced_checks = _refuse_on_check_errors(issue_file, config, rendered, live=live, force=force)
    subscribers = _read_list(config, wanted, needed=options.test_to is None)
    sender = backend_for(options.backend, live=live)
    if live:
        _check_domain(config, options.backend)
    if options.test_to is not None:
        if live and force:
            _say_what_force_let_through(forced_checks, None, gate=False)
        _run_test_send(rendered, config, subscribers, options.test_to, as_email, sender, options)
        return ExitStatus.OK
    assert subscribers is not None
    if not live:
        dry = dry_run(rendered, config, subscribers, sender, options, environment=environment())
        _after_the_work(lambda: _print_dry_run(dry, rendered, options.backend, subscribers_path, config))
        return ExitStatus.OK
    # The first screen, before asking: a yes must not be met by a refusal, nor a warning come after it.
    forced_approval = check_approved(rendered, config, options, test_command=_test_send_command(config))
    if force:
        _say_what_force_let_through(forced_checks, forced_approval, gate=not sandbox)
    _check_complaints(config, rendered, options, issue_file)
    if not yes:
        _confirm(rendered, config, plan_send(rendered, config, subscribers, options), subscribers, options.backend,
                 scheduled.describe() if scheduled is not None else None, sandbox)
    schedule = sender.create_schedule_id if when is not None else None
    with _graceful_ctrl_c() as interrupt:
        report = send_issue(rendered, config, subscribers, sender, options, progress=_progress(), schedule=schedule,
                            interrupt=interrupt, command=_resume_command(when), environment=environment())
    _after_the_work(lambda: _print_report(report, rendered.issue.slug, when))
    return ExitStatus.OK if report.complete else ExitStatus.DELIVERY_FAILED


class UsageError(MailerError):
    exit_code = ExitStatus.USAGE


def backend_for(name: str, *, live: bool):
    """The backend, with its credentials checked up front: a missing key must fail before any request."""
    env = environment()
    if name == "smtp":
        from mailer.deliver.backends.smtp import SmtpBackend, smtp_settings

        return SmtpBackend(smtp_settings(env.smtp_url) if live else None)
    from mailer.deliver.backends.sendgrid import SendGridBackend, api_host, api_key

    return SendGridBackend(key=api_key(env.sendgrid_api_key) if live else None, host=api_host(env.sendgrid_api_host))


def load_issue(issue_file: Path) -> tuple[Config, RenderedIssue]:
    config = workspace_of(issue_file)
    return config, _build(issue_file, config)


def workspace_of(issue_file: Path) -> Config:
    from mailer.cli.environment import reading_mail, workspace_config

    return reading_mail(workspace_config(issue_file.parent))


def _build(issue_file: Path, config: Config) -> RenderedIssue:
    from mailer.compose.buildcache import build_issue_cached

    # A send, its rerun, status and cancel build the same issue: built once, then read back.
    return build_issue_cached(issue_file, config, config.state_dir / "builds")


def _read_send_at(send_at: str | None, config: Config) -> SendTime | None:
    """--at as an editor says it, read in mailer.yaml's time zone, and said back as read."""
    if send_at is None:
        return None
    if not send_at.strip():  # `--at "$WHEN"` with WHEN unset: sending now instead would be the worst reading
        raise click.BadParameter("is empty: give the time to send, e.g. --at \"sunday 08:00\"", param_hint="--at")
    from mailer.deliver.sendtime import parse_send_time

    scheduled = parse_send_time(send_at, zone_name=config.time_zone, now=datetime.now(UTC))
    click.echo(f"--at {send_at!r}: {scheduled.describe()}", err=True)
    return scheduled


@dataclass(frozen=True)
class _ListChoice:
    """The list a send goes to: --subscribers FILE as read with --segment, --skip-invalid and --encoding
    (no path: the subscriber store's confirmed readers)."""

    path: Path | None
    segment: str | None
    skip_invalid: bool
    encoding: str | None


def _answered_from_the_ledger(issue_file: Path, config: Config, options: SendOptions, wanted: _ListChoice) -> bool:
    """The same live send again after one that reached everyone on the list: said from the ledger, with its
    report, and True; False when the list must be read and planned."""
    from mailer.audience import listcache
    from mailer.deliver.live import finished_send
    from mailer.deliver.options import issue_key
    from mailer.files import issue_slug
    from mailer.schema import display_path

    if not (options.live and options.test_to is None and options.send_at is None and wanted.path is not None
            and issue_file.is_file()):
        return False
    label = display_path(wanted.path)
    list_keys = listcache.list_keys(wanted.path, file_label=label, encoding=wanted.encoding,
                                    skip_invalid=wanted.skip_invalid, segment=wanted.segment)
    finished = list_keys and finished_send(config, issue_key(issue_slug(issue_file), options), list_keys,
                                           lambda: backend_for(options.backend, live=True), options,
                                           progress=_progress(), environment=environment())
    if not finished:
        return False
    click.echo(f"Nothing left to send: every reader on {label} is accepted (sent, or scheduled) or skipped, "
               f"as the ledger recorded at {finished.finished_at}, unchanged since.", err=True)
    _after_the_work(lambda: _print_report(finished, issue_slug(issue_file)))
    return True


def _read_list(config: Config, wanted: _ListChoice, *, needed: bool) -> SubscriberList | None:
    """The list to send to, its warnings shown; None only when there is none and it is not `needed` (see
    _store_list)."""
    from mailer.audience import listcache
    from mailer.audience.subscribers import require_segment
    from mailer.schema import display_path

    if wanted.path is None:
        return _store_list(config, segment=wanted.segment, needed=needed)
    # Checked once for the same bytes: a live send after its dry run, or a rerun, reads it back.
    subscribers = listcache.read_subscribers_cached(wanted.path, config.state_dir / "lists",
                                                    file_label=display_path(wanted.path), encoding=wanted.encoding,
                                                    skip_invalid=wanted.skip_invalid, segment=wanted.segment)
    # A misspelt --segment would send to nobody, silently: an error naming the list's tags.
    require_segment(subscribers, wanted.path, segment=wanted.segment, encoding=wanted.encoding)
    for warning in subscribers.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    return subscribers


def _check_domain(config: Config, backend_name: str) -> None:
    """The sending domain's SPF, DKIM and DMARC before a live send (kept a day): failures are warnings here; a
    DMARC p=reject that the mail would fail stops the send. No answer from DNS is a note, never a stop."""
    from mailer.checks.doctor import sending_of
    from mailer.checks.presend import TIMEOUT_SECONDS, check_before_send, refusal
    from mailer.cli.doctor import resolver_from_env, smtp_host_from_env

    sending = sending_of(config, backend=backend_name, smtp_host=smtp_host_from_env(backend_name))
    verdict = check_before_send(sending, resolver_from_env(timeout=TIMEOUT_SECONDS), config.state_dir)
    if verdict.blocked:
        raise refusal(sending, verdict)
    for row in verdict.failures:
        _log(f"warning: {sending.domain}: {row.title}: {row.detail}" + (f"\n    fix: {row.fix}" if row.fix else ""),
             fg="yellow")
    if verdict.failures:
        _log(f"warning: receivers may junk or refuse this mail; `mailer doctor` shows every check of {sending.domain}",
             fg="yellow")
    if verdict.unknown:
        _log(f"note: the sending domain {sending.domain} was not checked (DNS did not answer); sending anyway")


def _test_send_command(config: Config) -> str:
    """This command as a live test send to the editor (mailer.yaml's reply_to, else the sender), as its first reader."""
    return command_line(test_to=config.reply_to or config.sender.email, live=True, as_email=None, yes=None,
                        send_at=None)


def _resume_command(when: datetime | None, **changes: object) -> str:
    """This command, run again later: the same, with a scheduled time as the moment it was read as ("tomorrow
    07:30" said again tomorrow is another day), and `changes` (see command_line)."""
    return command_line(send_at=when.isoformat(timespec="minutes") if when is not None else None, **changes)


def _list_send_command() -> str:
    """This command as the live send to the list (a dry run's or a test send's next step)."""
    return command_line(test_to=None, as_email=None, live=True)


class CheckFailed(MailerError):
    """mailer check found errors in the issue: a live send refuses (exit 1) unless --force."""


def _refuse_on_check_errors(issue_file: Path, config: Config, rendered: RenderedIssue, *, live: bool,
                            force: bool) -> str | None:
    """Run `mailer check`'s checks on the issue: a live send stops on errors; a dry run shows them.

    Returns what --force let through ("2 errors"), else None."""
    from mailer.checks.check import check_issue, check_workspace, errors_in
    from mailer.cli.check import error_listing
    from mailer.schema import display_path

    reports = [check_issue(issue_file, config, rendered=rendered), check_workspace(config)]
    errors = errors_in(reports)
    warnings = sum(report.count("warning") for report in reports)
    shown = display_path(issue_file)
    if warnings and not errors:
        click.secho(f"check: {warnings} {'warning' if warnings == 1 else 'warnings'} "
                    f"(mailer check {shown} shows them)", fg="yellow", err=True)
    if not errors:
        return None
    count, listing = error_listing(errors)
    if not live:
        click.secho(f"check: {count}; a live send would refuse until they are fixed:\n{listing}", fg="red",
                    err=True)
    elif force:
        click.secho(f"warning: sending despite {count} found by mailer check (--force):\n{listing}", fg="yellow",
                    err=True)
        return count
    else:
        raise CheckFailed(f"{shown}: mailer check found {count}; nothing was sent:\n{listing}\n"
                          f"    hint: mailer check {shown} explains each one; fix them, or pass --force to "
                          "send anyway")


@contextmanager
def _graceful_ctrl_c() -> Iterator[threading.Event]:
    """First Ctrl-C: no new request; the ones in flight are finished and recorded, then the send stops.

    A second one cannot stop it sooner (the process ends only when the requests on the wire do, within
    their timeout), so it changes nothing while they are waited for; while the readers not reached are
    written down it stops that (the next run plans them again). Another while the answers are waited
    for stops the recording: their readers stay `sending`, which the next run calls uncertain."""
    interrupt = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        # Nothing is written here: the handler can run in the middle of a write to the same stream, which
        # would then fail (a reentrant call) and stop the send. The send tells Progress.on_stopping.
        if interrupt.is_set():
            raise KeyboardInterrupt
        interrupt.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_test_send(rendered: RenderedIssue, config: Config, subscribers: SubscriberList | None, to: str,
                   as_email: str | None, backend, options: SendOptions) -> None:
    from mailer.audience.subscribers import Subscriber
    from mailer.deliver.testsend import test_send
    from mailer.schema import display_path

    subscriber: Subscriber | None
    if as_email:
        if subscribers is None:
            raise UsageError("--as needs a list to find that subscriber in: --subscribers FILE, or readers in the "
                             "subscriber store (mailer subscribers)")
        subscriber = subscribers.find(as_email)
        if subscriber is None:
            raise UsageError(f"--as {as_email}: not a subscribed address in {subscribers.file_label}")
    elif subscribers is not None and subscribers.subscribers:
        subscriber = subscribers.subscribers[0]
    else:
        subscriber = Subscriber(email=to)
    report = test_send(rendered, config, subscriber, to, backend, options, environment=environment())
    if report.suppressed:
        click.secho(f"warning: {report.to} is on the suppression list ({report.suppressed}): a live test send "
                    "to it is refused", fg="yellow", err=True)
    reader = (f"as {report.as_email}" if subscribers is not None
              else "as a made-up reader: there is no list to take one from")
    if report.live:
        click.echo(f"Test message sent to {report.to} ({reader}); message id {report.message_id}.")
        if subscribers is None:
            click.echo("To send it to a list, name the list: add --subscribers FILE (or import readers with "
                       "`mailer subscribers import`).")
        else:
            click.echo(f"Check it, then send to the list:\n  {_list_send_command()}")
    else:
        click.echo(f"Dry run: the test message to {report.to} ({reader}) was written to "
                   f"{display_path(report.eml_path)}")
        click.echo(f"To send it for real:\n  {command_line(live=True)}")


def _say_what_force_let_through(checks: str | None, approval: str | None, *, gate: bool) -> None:
    """--force, every time: which of the gates it opened (mailer check's errors, the approval gate), or none."""
    let_through = []
    if checks:
        let_through.append(f"{checks} found by mailer check (listed above)")
    if approval:
        let_through.append(f"the approval gate: {approval}")
    if let_through:
        click.secho("warning: --force let through " + "; and ".join(let_through), fg="yellow", err=True)
        return
    passed = "mailer check found no errors" + (" and the issue was test-sent as it is now" if gate else "")
    click.echo(f"--force let nothing through: {passed}", err=True)


def _check_complaints(config: Config, rendered: RenderedIssue, options: SendOptions, issue_file: Path) -> None:
    """The last issue's spam complaints, on the first screen: a warning from 0.1 %, a refusal above 0.3 %."""
    from mailer.deliver.complaints import check_complaints, complaint_standing
    from mailer.deliver.events import OK, OVER, complaint_level
    from mailer.deliver.options import ledger_key

    standing = complaint_standing(config, ledger_key(rendered, options))
    check_complaints(standing, options)
    if standing is None or complaint_level(standing.rate) == OK:
        return
    over = complaint_level(standing.rate) == OVER
    click.secho(f"warning: {standing.describe()}: Gmail and Yahoo ask for under 0.1 %, and start refusing a "
                "sender's mail above 0.3 %" + (" (sending anyway: --despite-complaints)" if over else
                                                 "; this send goes, and the next refuses above 0.3 %"),
                fg="yellow", err=True)


def _confirm(rendered: RenderedIssue, config: Config, planned: SendReport, subscribers: SubscriberList,
             backend: str, when: str | None, sandbox: bool) -> None:
    """Ask before a live send, counting whom it will go to (not the list's rows) and what it leaves out."""
    what = f"Send \"{rendered.subject}\" to {planned.not_sent:,} {'reader' if planned.not_sent == 1 else 'readers'} "
    what += f"via {backend} " + (f"at {when}" if when else "now")
    what += " (sandbox: nothing is delivered)" if sandbox else ""
    from mailer.deliver.message import email_size

    size = email_size(rendered, config)
    click.echo(f"  html: {size.describe()}", err=True)
    left_out = _left_out(planned)
    rows = len(subscribers.subscribers) + len(subscribers.skipped)
    detail = f"  {subscribers.file_label}: {rows:,} {'row' if rows == 1 else 'rows'}"
    detail += ("; left out: " + ", ".join(f"{count:,} {why}" for why, count in left_out)) if left_out else ""
    if backend == "sendgrid" and not sandbox:
        detail += ("\n  (the send pulls SendGrid's suppression list first: anyone who unsubscribed, bounced or "
                   "complained since is left out too)")
    click.echo(detail, err=True)
    if not environment().stdin_is_terminal:
        raise UsageError(f"{what}? Not confirmed: no terminal to ask on\n    hint: pass --yes to confirm")
    if not click.confirm(what + "?", default=False):
        raise UsageError("Not sent.")


def _left_out(planned: SendReport) -> list[tuple[str, int]]:
    """Why readers of the list are not sent to now, most common first: ("unsubscribed", 2), ("duplicate", 1)…"""
    kinds: Counter[str] = Counter()
    for skipped in planned.skipped:
        reason = skipped.reason
        if reason.startswith("duplicate of line"):
            kinds["duplicate"] += 1
        elif reason.startswith("suppressed"):
            kinds["on the suppression list"] += 1
        elif reason.startswith("uncertain"):
            kinds["uncertain in an earlier run (--resend-uncertain)"] += 1
        elif reason.startswith("failed earlier"):
            kinds["failed in an earlier run (--retry-failed)"] += 1
        elif reason.startswith("not tagged") or " " not in reason:
            kinds[reason] += 1
        else:
            kinds["invalid (--skip-invalid)"] += 1
    if planned.accepted_before:
        kinds["already sent (an earlier run)"] = planned.accepted_before
    return kinds.most_common()


STOPPING = "\nStopping after the requests in flight: their answers are recorded, nobody is sent anything twice…"


def _log(line: str, *, fg: str | None = None) -> None:
    """A progress line on stderr. Once it cannot be written (its reader has gone, `mailer send … 2>&1 |
    head`, or a full disk under `2>log`), stderr goes to /dev/null and the send goes on: an error raised
    in the middle of a send would stop it between its requests and their records, and leave their
    readers uncertain."""
    try:
        click.secho(line, err=True, fg=fg)
    except OSError:
        _silence(sys.stderr)


def _after_the_work(show: Callable[[], None]) -> None:
    """Print a report once the work is done and recorded: if its reader has gone (`… | head`), the report
    is lost, but the exit code still says how the work went (a closed pipe is not bad input, exit 1)."""
    try:
        show()
    except BrokenPipeError:
        _silence(sys.stdout)


def _silence(stream: TextIO) -> None:
    """Point `stream`'s file descriptor at /dev/null: what is still buffered, and anything written later, goes
    nowhere instead of failing again (at exit too)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


def _progress() -> Progress:
    from mailer.deliver.progress import Progress

    if not environment().stderr_is_terminal:
        # A log, not a screen: a line per hundred recipients (SMTP sends one at a time), and every
        # batch that was not accepted.
        done = Counter()

        def logged(count: int, outcome: str) -> None:
            if outcome != "accepted":
                _log(f"batch of {count}: {outcome}")
                return
            before = done["accepted"]
            done["accepted"] += count
            if done["accepted"] // LOG_EVERY > before // LOG_EVERY or count >= LOG_EVERY:
                _log(f"accepted so far: {done['accepted']}")

        return Progress(
            on_start=lambda total: _log(f"sending to {total} recipient(s)"),
            on_batch=logged,
            on_note=lambda message: _log(f"note: {message}", fg="yellow"),
            on_stopping=lambda: _log(STOPPING),
        )
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar
    from rich.text import Text

    class Rate(ProgressColumn):
        """Messages per second as a whole number; a dash until the first batch is in."""

        def render(self, task) -> Text:  # type: ignore[no-untyped-def]
            return Text(f"{task.speed:,.0f} msg/s" if task.speed else "– msg/s")

    bar = Bar(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn(),
              transient=False)
    task: list[int] = []

    def start(total: int) -> None:
        bar.start()
        task.append(bar.add_task("send", total=total))

    def batch(count: int, outcome: str) -> None:
        bar.advance(task[0], count)
        if bar.finished:
            bar.stop()
        if outcome != "accepted":
            bar.console.print(f"[yellow]batch of {count}: {escape(outcome)}")

    # escape: a note can quote a server's words, which rich would read as its markup ("[/x]" raised an error).
    return Progress(on_start=start, on_batch=batch,
                    on_note=lambda m: bar.console.print(f"[yellow]note: {escape(m)}"),
                    on_stopping=lambda: bar.console.print(escape(STOPPING)))


def counts_table(rows: list[tuple[str, int]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value:>8}" for label, value in rows)


def _store_list(config: Config, *, segment: str | None, needed: bool) -> SubscriberList | None:
    """The subscriber store's confirmed readers, brought in line with the suppression list first; None when
    there are none and a list is not `needed` (a test send then renders as a made-up reader)."""
    from mailer.audience.roster import store_subscribers
    from mailer.deliver.suppressions import sync_store
    from mailer.errors import InputError

    sync_store(config.state_dir)
    try:
        return store_subscribers(config.state_dir, segment=segment)
    except InputError:
        if needed:
            raise
        return None


def _print_dry_run(report: SendReport, rendered: RenderedIssue, backend: str, subscribers_path: Path | None,
                   config: Config) -> None:
    from mailer.deliver.message import email_size
    from mailer.schema import display_path

    click.echo(f"DRY RUN of {rendered.issue.slug} via {backend}: nothing was sent.")
    click.echo(f"  subject: {rendered.subject}")
    click.echo(f"  html:    {email_size(rendered, config).describe()}")
    sizes = report.request_bytes
    click.echo(counts_table([
        ("intended recipients", report.intended),
        ("already accepted", report.accepted_before),
        *([("  of which uncertain, resolved by events", report.resolved)] if report.resolved else []),
        ("would send now", report.not_sent),
        *([("held back: uncertain or failed earlier", report.held_back)] if report.held_back else []),
        ("skipped", report.not_intended),
        ("  of which suppressed", report.suppressed),
        ("batches", report.batches),
    ]))
    click.echo(_suppression_note(report))
    if config.managed_unsubscribe:
        click.echo(f"  unsubscribe: managed by SendGrid: it puts each reader's link where {config.unsubscribe_tag} "
                   "stands in the outbox, and adds List-Unsubscribe itself")
    if backend == "sendgrid" and sizes:
        click.echo(f"  request sizes: {min(sizes) / 1024:.0f}–{max(sizes) / 1024:.0f} KB, "
                   f"{sum(sizes) / 1024 / 1024:.1f} MB in all")
    if report.first_recipients:
        more = report.not_sent - len(report.first_recipients)
        click.echo("  would send to: " + ", ".join(report.first_recipients) + (f" and {more} more" if more else ""))
    for skipped in report.skipped[:20]:
        where = f" (line {skipped.line})" if subscribers_path is not None else ""  # the store's readers have none
        click.echo(f"  skip {skipped.email or '(no address)'}{where}: {skipped.reason}")
    if len(report.skipped) > 20:
        click.echo(f"  … and {len(report.skipped) - 20} more skipped (see the manifest)")
    click.echo(f"Outbox: {display_path(report.outbox_dir)}/ (eml/ samples, manifest.jsonl"
               + (", sendgrid/ request bodies)" if backend == "sendgrid" else ")"))
    click.echo("To send for real, test-send it to yourself (as the first reader), check it, then send to the list:")
    click.echo(f"  {_test_send_command(config)}")
    click.echo(f"  {_list_send_command()}")


def _suppression_note(report: SendReport) -> str:
    if report.suppressions_pulled_at is None:
        return ("  suppression list: none pulled yet, so nobody was checked against SendGrid's unsubscribes "
                "and bounces (`mailer suppressions pull`)")
    return f"  suppression list: pulled {report.suppressions_pulled_at}"


def _print_report(report: SendReport, slug: str, when: datetime | None = None) -> None:
    click.echo(f"{slug}:")
    click.echo(counts_table([
        ("intended", report.intended),
        ("accepted", report.accepted),
        ("  of which in earlier runs", report.accepted_before),
        *([("  of which uncertain, resolved by events", report.resolved)] if report.resolved else []),
        ("failed", report.failed),
        ("uncertain", report.uncertain),
        ("not sent yet", report.not_sent),
        ("skipped", report.not_intended),  # the held-back uncertain and failed are counted above
        ("  of which suppressed", report.suppressed),
    ]))
    click.echo(_suppression_note(report))
    if report.stopped:
        click.secho(f"Stopped: {report.stopped}", fg="red", err=True)
    if report.failed:
        click.echo(f"Failed recipients can be retried (`mailer status` says why they failed):\n"
                   f"  {_resume_command(when, retry_failed=True)}")
    if report.uncertain:
        click.echo(f"Uncertain recipients may have received the issue; this sends to them again:\n"
                   f"  {_resume_command(when, resend_uncertain=True)}")
    if report.not_sent:
        click.echo(f"Run the same command again to send to the rest:\n  {_resume_command(when)}")


LOG_EVERY = 100  # without a terminal, progress is logged once per this many accepted recipients

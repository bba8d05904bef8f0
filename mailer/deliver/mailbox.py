"""The mailbox that mail comes back to (MAILER_MAILBOX_URL), read over IMAP: the SMTP backend's way of hearing of
unsubscribes by email, bounces and complaints (listmonk's bounce mailbox does the same).

`mailer suppressions pull` logs in, looks at the UNSEEN messages of the one mailbox the URL names
(INBOX unless it names another), and hands each to mailer.deliver.inbound. What it acted on, and
the reports it recognised and refused (a DSN for an address never mailed, a 4.x.x), are recorded
first and only then flagged \\Seen, so each is acted on once and a pull that breaks off is simply
done again. Anything else (a reader's reply, an unsubscribe request with no token of ours, which a
person should read) stays unseen and where it was: the mailbox may be the editor's own.
"""

from __future__ import annotations

import contextlib
import imaplib
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from mailer.addresses import printable, shown_url
from mailer.deliver.inbound import MAX_MESSAGE_BYTES, Newsletter, Outcome, parse_message, read_message, record
from mailer.deliver.suppressions import PullError

MAILBOX_URL_ENV = "MAILER_MAILBOX_URL"
TIMEOUT_SECONDS = 30.0  # for connecting, and for each answer of the server
MAX_MESSAGES = 1000  # unseen messages looked at in one pull: the newest
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
HINT = (f"{MAILBOX_URL_ENV}=imaps://user:password@imap.example.com/INBOX (993 unless a port is given; "
        "imap:// without TLS only to this machine, for tests)")


@dataclass(frozen=True)
class MailboxSettings:
    """Where the mailbox is and how to log in; `shown` is the URL without its password, for messages."""

    host: str
    port: int
    user: str
    password: str
    mailbox: str
    tls: bool
    shown: str


def parse_mailbox_url(raw: str) -> MailboxSettings:
    """MAILER_MAILBOX_URL's parts, or PullError (never with the password in it)."""
    shown = shown_url(raw.strip())
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError:  # an unclosed [ of an IPv6 address, a port that is no number
        raise PullError(f"{MAILBOX_URL_ENV} is not a URL: {shown} (the password is not shown)\n    hint: {HINT}"
                        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("imaps", "imap") or not parts.hostname or not parts.username or parts.password is None:
        raise PullError(f"{MAILBOX_URL_ENV} must name an IMAP server, a user and a password: {shown}\n    hint: {HINT}")
    if scheme == "imap" and parts.hostname not in _LOOPBACK:
        # Without TLS the password and the readers' mail would cross the network in the clear.
        raise PullError(f"{MAILBOX_URL_ENV} uses imap:// (no TLS) for {parts.hostname}, which is not this machine: "
                        f"{shown}\n    hint: use imaps://")
    mailbox = unquote(parts.path.lstrip("/")) or "INBOX"
    if not mailbox.isprintable() or not mailbox.isascii() or any(char in mailbox for char in '"\\') \
            or len(mailbox) > 200:
        raise PullError(f"{MAILBOX_URL_ENV} names a mailbox mailer will not quote: {printable(mailbox)!r}\n"
                        "    hint: a mailbox of its own with a plain ASCII name (INBOX, Bounces)")
    return MailboxSettings(host=parts.hostname, port=port or (993 if scheme == "imaps" else 143),
                           user=unquote(parts.username), password=unquote(parts.password), mailbox=mailbox,
                           tls=scheme == "imaps", shown=shown)


def read_mailbox(settings: MailboxSettings, newsletter: Newsletter, *,
                 timeout: float = TIMEOUT_SECONDS) -> Outcome:
    """Act on the mailbox's unseen mail (mailer.deliver.inbound), then flag what was handled \\Seen."""
    where = f"the mailbox at {settings.shown}"
    try:
        imap = (imaplib.IMAP4_SSL(settings.host, settings.port, ssl_context=ssl.create_default_context(),
                                  timeout=timeout) if settings.tls
                else imaplib.IMAP4(settings.host, settings.port, timeout=timeout))
    except ssl.SSLCertVerificationError as err:
        raise PullError(f"{where} sent a certificate this machine does not trust: {err.verify_message}\n"
                        "    hint: use the host name the certificate was issued for; for a private CA, point "
                        "SSL_CERT_FILE at its certificate") from None
    except (OSError, imaplib.IMAP4.error) as err:
        raise PullError(f"cannot reach {where}: {printable(str(err)) or type(err).__name__}") from None
    try:
        return _read(imap, settings, newsletter, where)
    except PullError:
        raise
    except (OSError, imaplib.IMAP4.error) as err:  # imaplib's abort and readonly are errors too
        raise PullError(f"{where} stopped answering as IMAP does: {printable(str(err))[:200]}\n"
                        "    What was recorded before stays; the messages not flagged \\Seen are read again next "
                        "time.") from None
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            imap.logout()


def _read(imap: imaplib.IMAP4, settings: MailboxSettings, newsletter: Newsletter, where: str) -> Outcome:
    try:
        imap.login(settings.user, settings.password)
    except imaplib.IMAP4.error:
        raise PullError(f"{where} refused the login\n    hint: check the user and password in {MAILBOX_URL_ENV}"
                        ) from None
    status, _ = imap.select(_quoted(settings.mailbox))
    if status != "OK":
        raise PullError(f"{where} has no mailbox {settings.mailbox!r}\n    hint: the URL's path names it "
                        "(imaps://…/INBOX)")
    status, found = imap.uid("SEARCH", "UNSEEN")
    if status != "OK":
        raise PullError(f"{where} did not answer the search for unseen mail: {printable(str(found))[:200]}")
    # The newest first: a mailbox holding thousands of unread mails of the editor's, which stay unseen, must not
    # keep this week's unsubscribes from being read before the send.
    uids = sorted((uid for uid in b" ".join(found or []).split() if uid.isdigit()), key=int)[-MAX_MESSAGES:]
    outcome = Outcome()
    readings, handled = [], []
    for uid in uids:
        size = _size(imap, uid)
        if size is None or size > MAX_MESSAGE_BYTES:
            outcome.ignored["too large to read (left unseen)"] += 1
            continue
        # BODY.PEEK: reading a message does not flag it \Seen; only what was handled is flagged, below.
        status, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
        raw = next((item[1] for item in data or [] if isinstance(item, tuple) and len(item) == 2), None)
        if status != "OK" or not isinstance(raw, bytes):
            outcome.ignored["could not be fetched (left unseen)"] += 1
            continue
        reading = read_message(parse_message(raw), newsletter)
        outcome.add(reading)
        readings.append(reading)
        if reading.handled:
            handled.append(uid)
    record_trouble = record(newsletter.state_dir, readings, newsletter.list_id)[1]
    if record_trouble:
        outcome.ignored[f"subscriber store not updated: {record_trouble}"] += 1
    if handled:  # recorded first, flagged after: a pull that breaks off in between only reads them again
        imap.uid("STORE", b",".join(handled), "+FLAGS.SILENT", r"(\Seen)")
    outcome.left_unseen = len(uids) - len(handled)
    return outcome


def _size(imap: imaplib.IMAP4, uid: bytes) -> int | None:
    status, data = imap.uid("FETCH", uid, "(RFC822.SIZE)")
    for item in data or []:
        text = item if isinstance(item, bytes) else item[0] if isinstance(item, tuple) else b""
        _, found, rest = text.partition(b"RFC822.SIZE ")
        digits = rest.split(b")")[0].split()[0] if found and rest.split(b")")[0].split() else b""
        if status == "OK" and digits.isdigit():
            return int(digits)
    return None


def _quoted(mailbox: str) -> str:
    """An ASCII mailbox name as an IMAP quoted string (RFC 3501; '&' is written '&-' in its modified UTF-7)."""
    return '"' + mailbox.replace("&", "&-") + '"'

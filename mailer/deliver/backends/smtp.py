"""SMTP delivery for self-hosted servers and test sends: a connection per sending thread, one message per reader."""

from __future__ import annotations

import base64
import contextlib
import re
import smtplib
import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from mailer.addresses import printable
from mailer.audience.subscribers import Subscriber
from mailer.config import Config
from mailer.deliver.backends import (
    Accepted,
    BackendConfigError,
    FatalError,
    Recipient,
    RejectedError,
    TransientError,
    UncertainError,
)
from mailer.deliver.message import POLICY, POLICY_UTF8, MessageWriter, Personaliser, build_mime

if TYPE_CHECKING:  # the renderer is not needed to send what it built
    from mailer.compose.build import RenderedIssue

URL_ENV = "MAILER_SMTP_URL"
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool  # smtps:// (port 465)
    starttls: bool
    username: str | None
    password: str | None

    def __repr__(self) -> str:  # never show the password, even in a traceback
        return f"SmtpSettings(host={self.host!r}, port={self.port}, user={self.username!r})"


def smtp_settings(url: str) -> SmtpSettings:
    """MAILER_SMTP_URL's value `url`, read: BackendConfigError when it is not set or not an SMTP URL."""
    raw = url.strip()
    if not raw:
        raise BackendConfigError(
            f"{URL_ENV} is not set\n"
            f"    hint: export {URL_ENV}=smtp://user:password@mail.example.com:587 (STARTTLS) or "
            "smtps://user:password@mail.example.com:465 (TLS)"
        )
    return parse_url(raw)


def parse_url(raw: str) -> SmtpSettings:
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        raise BackendConfigError(
            f"{URL_ENV} is not a URL (the value is not shown: it may hold a password)\n"
            "    hint: smtp://user:password@host:587, smtps://user:password@[2001:db8::1]:465") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps", "smtp+insecure") or not parts.hostname:
        raise BackendConfigError(
            f"{URL_ENV} must look like smtp://user:password@host:587 or smtps://user:password@host:465 "
            f"(got a {scheme or 'schemeless'} URL)"
        )
    try:
        port = parts.port
    except ValueError:
        raise BackendConfigError(f"{URL_ENV} has an invalid port") from None
    implicit = scheme == "smtps"
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if implicit else 587),
        implicit_tls=implicit,
        # smtp+insecure:// is for a local relay or test server with no TLS at all.
        starttls=scheme == "smtp",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


@dataclass(frozen=True)
class Prepared:
    data: bytes  # the whole message, CRLF line endings
    message_id: str
    sender: str
    recipient: str


class SmtpBackend:
    name = "smtp"
    max_batch = 1  # one message per recipient: each gets its own ledger outcome

    def __init__(self, settings: SmtpSettings | None = None, *, timeout: float = TIMEOUT_SECONDS,
                 tls_context: ssl.SSLContext | None = None):
        self._settings = settings
        self._timeout = timeout
        self._tls = tls_context
        self._local = threading.local()  # one connection per sending thread
        self._open: list[smtplib.SMTP] = []
        self._open_lock = threading.Lock()
        self._writer: MessageWriter | None = None

    def prepare_batch(self, rendered: RenderedIssue, config: Config, subscribers: list[Subscriber],
                      personaliser: Personaliser, *, batch_id: str, options: Any) -> Prepared:
        return self.prepare(rendered, config, [Recipient(s, personaliser(s)) for s in subscribers], batch_id=batch_id,
                            options=options)

    def prepare(self, rendered: RenderedIssue, config: Config, recipients: list[Recipient], *,
                batch_id: str, options: Any) -> Prepared:
        (recipient,) = recipients
        to = getattr(options, "to", None)
        test = getattr(options, "test", False)
        if to is None and not test:
            # A list send: the fast writer (the same message, a tenth of the time), made once per issue.
            if self._writer is None or self._writer.rendered is not rendered or self._writer.config is not config:
                self._writer = MessageWriter(rendered, config)
            written = self._writer.write(recipient.subscriber, recipient.personal)
            if written is not None:
                return Prepared(written[0], written[1], config.sender.email, recipient.subscriber.email)
        message = build_mime(rendered, config, recipient.subscriber, recipient.personal, to=to, test=test)
        recipient_address = to or recipient.subscriber.email
        needs_utf8 = not (config.sender.email + recipient_address).isascii()
        data = message.as_bytes(policy=POLICY_UTF8 if needs_utf8 else POLICY)
        return Prepared(data, str(message["Message-ID"]), config.sender.email, recipient_address)

    def _connect(self) -> smtplib.SMTP:
        settings = self._settings or smtp_settings("")  # none given (a dry run's backend): say what to set
        self._settings = settings
        context = self._tls or ssl.create_default_context()
        try:
            if settings.implicit_tls:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=self._timeout,
                                                      context=context)
            else:
                conn = smtplib.SMTP(settings.host, settings.port, timeout=self._timeout)
            conn.ehlo()
            if settings.starttls:
                conn.starttls(context=context)
                conn.ehlo()
            if settings.username:
                _login(conn, settings.username, settings.password or "")
        except smtplib.SMTPAuthenticationError as err:
            raise FatalError(f"the SMTP server refused the login ({err.smtp_code})\n"
                             f"    hint: check the user and password in {URL_ENV}") from None
        except smtplib.SMTPNotSupportedError as err:
            raise FatalError(f"the SMTP server at {settings.host}:{settings.port} does not support {err}\n"
                             "    hint: use smtps:// for implicit TLS, or check the port") from None
        except ssl.SSLCertVerificationError as err:
            # Not transient: retrying with back-off would only delay the same refusal.
            raise FatalError(f"the SMTP server at {settings.host}:{settings.port} sent a certificate this machine "
                             f"does not trust: {err.verify_message}\n"
                             "    hint: use the host name the certificate was issued for; for a private CA, point "
                             "SSL_CERT_FILE at its certificate") from None
        except (OSError, smtplib.SMTPException) as err:
            raise TransientError(f"cannot connect to {settings.host}:{settings.port}: {err}") from None
        return conn

    def send(self, payload: Prepared) -> Accepted:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._open_lock:
                self._open.append(conn)
        needs_utf8 = not (payload.sender + payload.recipient).isascii()
        options = []
        if needs_utf8:
            if not conn.has_extn("smtputf8"):
                raise RejectedError(f"{payload.recipient}: the server does not support SMTPUTF8, which this "
                                    "non-ASCII address needs", positions=(0,))
            options.append("SMTPUTF8")
        if conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        data = payload.data
        try:
            code, reply = _command(conn, "mail", "FROM:", payload.sender, options)
            if code != 250:
                self._reset(conn)
                raise _refused(code, reply, "MAIL FROM")
            code, reply = _command(conn, "rcpt", "TO:", payload.recipient, [])
            if code not in (250, 251):
                self._reset(conn)
                raise _refused(code, reply, f"RCPT TO {payload.recipient}", about_the_recipient=True)
        except (smtplib.SMTPServerDisconnected, OSError) as err:
            # Nothing was sent yet: the server had closed an idle connection. Reconnect and retry.
            self._drop(conn)
            raise TransientError(f"the SMTP connection dropped before sending: {err}") from None
        try:
            code, reply = _data(conn, data)
        except smtplib.SMTPDataError as err:
            # smtplib raises this when the DATA command itself is refused (not 354), before any of the
            # message is sent: a refusal, not an unknown outcome. Checked first: it is an OSError too.
            self._reset(conn)
            raise _refused(err.smtp_code, err.smtp_error, "DATA") from None
        except (smtplib.SMTPServerDisconnected, OSError) as err:
            self._drop(conn)
            raise UncertainError(f"the SMTP connection dropped while the message was sent: {err}") from None
        if code != 250:
            raise _refused(code, reply, "DATA")
        return Accepted(payload.message_id)

    @staticmethod
    def _reset(conn: smtplib.SMTP) -> None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            conn.rset()

    def _drop(self, conn: smtplib.SMTP) -> None:
        """Close this thread's connection (broken, or the server hung up): its next message opens another."""
        self._local.conn = None
        with self._open_lock:
            if conn in self._open:
                self._open.remove(conn)
        with contextlib.suppress(smtplib.SMTPException, OSError):
            conn.quit()

    def close(self) -> None:
        """Close every sending thread's connection (the send is over)."""
        with self._open_lock:
            open_now, self._open = self._open, []
        for conn in open_now:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.quit()
        self._local = threading.local()


# An address smtplib would write as <address> after parsing it with the email package (a tenth of
# what sending a message costs mailer): ours were checked when the list and the settings were read.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


def _command(conn: smtplib.SMTP, verb: str, prefix: str, address: str, options: list[str]) -> tuple[int, bytes]:
    """smtplib's mail() or rcpt(), writing the same command without parsing a plain ASCII address.

    SMTPUTF8 (which switches smtplib's command encoding) and any other address go through smtplib's own.
    """
    if not _PLAIN_ADDRESS.fullmatch(address) or "SMTPUTF8" in options or (options and not conn.does_esmtp):
        return conn.mail(address, options) if verb == "mail" else conn.rcpt(address, options)
    conn.putcmd(verb, f"{prefix}<{address}>{''.join(' ' + option for option in options)}")
    return conn.getreply()


def _data(conn: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """smtplib's data() for bytes: the same bytes sent, with the dots doubled by bytes.replace.

    A dot that starts a line is doubled (RFC 5321 4.5.2): smtplib does it with re.sub over the whole
    message, half a millisecond for ours (the CSS of every HTML part has such lines), more than a
    third of what sending a message costs mailer; bytes.replace does the same in a fiftieth of that.
    """
    conn.putcmd("data")
    code, reply = conn.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    quoted = (b"." if data.startswith(b".") else b"") + data.replace(b"\n.", b"\n..")
    conn.send(quoted + (b".\r\n" if quoted.endswith(b"\r\n") else b"\r\n.\r\n"))
    return conn.getreply()


def _login(conn: smtplib.SMTP, username: str, password: str) -> None:
    if (username + password).isascii():
        conn.login(username, password)
        return
    # smtplib encodes credentials as ASCII and would crash on "wörd"; AUTH PLAIN is defined over UTF-8
    # (RFC 4616), so send it ourselves.
    if "PLAIN" not in conn.esmtp_features.get("auth", "").upper().split():
        raise smtplib.SMTPNotSupportedError("AUTH PLAIN, which a non-ASCII user name or password needs")
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, reply = conn.docmd("AUTH", f"PLAIN {token}")
    if code == 334:  # a server that takes no initial response asks for it on a line of its own
        code, reply = conn.docmd(token)
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


# RFC 3463 enhanced status codes about the mailbox itself (5.1.x addressing, 5.2.x mailbox status):
# "550 5.1.1 no such user" is about one reader; "550 5.7.1 relaying denied" is about every one.
_MAILBOX_STATUS = re.compile(r"\s*5\.[12]\.\d{1,3}\b")


def _refused(code: int, reply: bytes, step: str, *, about_the_recipient: bool = False) -> Exception:
    # The server's words as printable text: they go to the ledger and the terminal, and a server may put
    # terminal escapes in them (a multi-line reply's line breaks are shown as \n).
    text = printable(reply.decode("utf-8", "replace"))
    if 400 <= code < 500:
        return TransientError(f"{step}: the server answered {code} {text} (temporary)")
    mailbox = about_the_recipient and _MAILBOX_STATUS.match(text)
    return RejectedError(f"{step}: the server answered {code} {text}", positions=(0,) if mailbox else ())

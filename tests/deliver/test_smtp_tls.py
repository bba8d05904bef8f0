"""The SMTP backend's TLS and login paths against a real aiosmtpd server on loopback.

The server uses tests/selfsigned-127.0.0.1.pem. The client trusts it only through SSL_CERT_FILE, the
standard OpenSSL variable a user with a private CA would set too: no test-only hook in the product.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import SELF_SIGNED_CERT, write_subscribers
from tests.loopback_smtp import Recorder, parse, start_smtp_server

USER, PASSWORD = "editor", "s3cret p@ss/wörd"
PASSWORD_IN_URL = "s3cret%20p%40ss%2Fw%C3%B6rd"


class TlsRecorder(Recorder):
    """Also records whether each message came over TLS and which login was offered."""

    def __init__(self) -> None:
        super().__init__()
        self.tls: list[bool] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.tls.append(server.transport.get_extra_info("ssl_object") is not None)
        return await super().handle_DATA(server, session, envelope)

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = (auth_data.login.decode(), auth_data.password.decode())
        self.logins.append(login)
        # handled=False: aiosmtpd then answers 535 itself (handled=True would leave the client waiting).
        return AuthResult(success=login == (USER, PASSWORD), handled=False)


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(SELF_SIGNED_CERT)
    return context


@pytest.fixture(params=["starttls", "implicit"])
def tls_server(request, monkeypatch: pytest.MonkeyPatch):
    recorder = TlsRecorder()
    if request.param == "starttls":
        # The server offers AUTH only after STARTTLS: a client that skipped it could not log in.
        controller = start_smtp_server(recorder, tls_context=_server_context(), require_starttls=True,
                                       auth_require_tls=True, authenticator=recorder.authenticate)
        scheme = "smtp"
    else:
        # aiosmtpd's auth_require_tls only knows STARTTLS; this whole connection is TLS from the first byte.
        controller = start_smtp_server(recorder, ssl_context=_server_context(), auth_require_tls=False,
                                       authenticator=recorder.authenticate)
        scheme = "smtps"
    url = f"{scheme}://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{controller.port}"
    monkeypatch.setenv("MAILER_SMTP_URL", url)
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", "smtp-tls-test-secret")
    yield recorder
    controller.stop()


def test_sends_over_tls_after_logging_in(workspace: Path, tls_server: TlsRecorder, run_cli,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(SELF_SIGNED_CERT))
    csv = str(write_subscribers(workspace, ["a@example.com,Ada,,subscribed,", "b@example.com,Bo,,subscribed,"]))
    test = run_cli("send", "issues/2020-12-13-zh.yaml", "--backend", "smtp", "--subscribers", csv,
                   "--test-to", "editor@example.com", "--live")
    assert test.exit_code == 0, test.stderr
    sent = run_cli("send", "issues/2020-12-13-zh.yaml", "--backend", "smtp", "--subscribers", csv, "--live", "--yes")
    assert sent.exit_code == 0, sent.stderr
    assert [m[1] for m in tls_server.messages] == [["editor@example.com"], ["a@example.com"], ["b@example.com"]]
    assert tls_server.tls == [True, True, True]
    # The URL's percent-encoded password arrives decoded, once per connection (test send, then the list).
    assert tls_server.logins == [(USER, PASSWORD), (USER, PASSWORD)]
    assert str(parse(tls_server.messages[1][2])["Subject"]) == "The NLP Cypher 中文版 | 12.13.20 🔥"
    for output in (test.stdout, test.stderr, sent.stdout, sent.stderr):
        assert PASSWORD not in output and PASSWORD_IN_URL not in output


def test_refused_login_fails_fast_and_never_shows_the_password(workspace: Path, tls_server: TlsRecorder, run_cli,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(SELF_SIGNED_CERT))
    wrong = "wr0ng-pass"
    monkeypatch.setenv("MAILER_SMTP_URL", tls_server_url(wrong))
    result = run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--test-to", "me@example.com", "--live")
    assert result.exit_code == 3
    assert "the SMTP server refused the login (535)" in result.stderr
    assert "check the user and password in MAILER_SMTP_URL" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert tls_server.messages == [] and set(tls_server.logins) == {(USER, wrong)}  # PLAIN, then LOGIN


def test_untrusted_certificate_stops_at_once_with_a_hint(workspace: Path, tls_server: TlsRecorder, run_cli,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(Path(__file__)))  # trusts nothing: the self-signed cert is refused
    result = run_cli("send", "issues/2020-12-13.yaml", "--backend", "smtp", "--test-to", "me@example.com", "--live")
    assert result.exit_code == 3
    assert "certificate" in result.stderr and "SSL_CERT_FILE" in result.stderr
    assert "retry" not in result.stderr.lower()  # a certificate does not fix itself: no back-off rounds
    assert tls_server.messages == [] and tls_server.logins == []


def tls_server_url(password: str) -> str:
    return os.environ["MAILER_SMTP_URL"].replace(PASSWORD_IN_URL, password)

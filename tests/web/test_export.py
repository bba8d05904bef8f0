"""`mailer serve` on another machine: `mailer suppressions pull` also copies its lists, with a bearer token."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fake_sendgrid import FakeSendGrid
from tests.web.test_service import ADA, Running, serving, token_for

EXPORT_TOKEN = "export-token-for-tests-0123456789abcdef"


@pytest.fixture
def remote(workspace: Path, tmp_path: Path) -> Running:
    with serving(workspace, tmp_path / "remote-state", MAILER_EXPORT_TOKEN=EXPORT_TOKEN) as running:
        yield running


def test_a_pull_on_the_sending_machine_brings_the_remote_unsubscribes(
        remote: Running, sendgrid: FakeSendGrid, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert remote.post_form(f"/unsubscribe?token={token_for(ADA)}", "List-Unsubscribe=One-Click")[0] == 200
    monkeypatch.setenv("MAILER_SERVE_URL", f"http://127.0.0.1:{remote.port}")
    monkeypatch.setenv("MAILER_EXPORT_TOKEN", EXPORT_TOKEN)
    pulled = run_cli("suppressions", "pull")
    assert pulled.exit_code == 0, pulled.stderr
    assert "unsubscribed (one-click, from the mail client)" in run_cli("suppressions", "list", "--email", ADA).stdout
    dry_run = run_cli("send", "issues/2020-12-13.yaml", "--subscribers", "subscribers.example.csv")
    assert f"skip {ADA} (line 2): suppressed: unsubscribed" in dry_run.stdout

    # A resubscribe there is a resubscribe here after the next pull: the copy is the remote's list.
    assert remote.post_form("/unsubscribe", f"token={token_for(ADA)}&action=resubscribe")[0] == 200
    assert run_cli("suppressions", "pull").exit_code == 0
    assert "is not suppressed" in run_cli("suppressions", "list", "--email", ADA).stdout


def test_a_wrong_token_fails_the_pull_and_keeps_the_previous_list(
        remote: Running, sendgrid: FakeSendGrid, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert remote.post_form(f"/unsubscribe?token={token_for(ADA)}", "List-Unsubscribe=One-Click")[0] == 200
    monkeypatch.setenv("MAILER_SERVE_URL", f"http://127.0.0.1:{remote.port}")
    monkeypatch.setenv("MAILER_EXPORT_TOKEN", EXPORT_TOKEN)
    assert run_cli("suppressions", "pull").exit_code == 0
    monkeypatch.setenv("MAILER_EXPORT_TOKEN", "x" * 40)
    failed = run_cli("suppressions", "pull")
    assert failed.exit_code == 3 and "answered 401 to the export; check MAILER_EXPORT_TOKEN" in failed.stderr
    assert "x" * 40 not in failed.stdout + failed.stderr
    assert "unsubscribed" in run_cli("suppressions", "list", "--email", ADA).stdout  # the previous copy stands


def test_the_export_needs_the_token(remote: Running) -> None:
    assert remote.request("GET", "/export/suppressions")[0] == 401
    assert remote.request("GET", "/export/suppressions", headers={"Authorization": "Bearer wrong"})[0] == 401
    status, _, body = remote.request("GET", "/export/suppressions",
                                     headers={"Authorization": f"Bearer {EXPORT_TOKEN}"})
    assert status == 200 and body.startswith('{"store":')
    for other in ("Basic", "Token", ""):
        assert remote.request("GET", "/export/suppressions",
                              headers={"Authorization": f"{other} {EXPORT_TOKEN}"})[0] == 401
    assert remote.request("GET", "/export/suppressions",
                          headers={"Authorization": f"Bearer {EXPORT_TOKEN.upper()}"})[0] == 401


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_the_schemes_name_is_case_insensitive(remote: Running, scheme: str) -> None:
    # RFC 9110 11.1: a client (or a proxy) may write the scheme in any case; the token itself is exact.
    status, _, body = remote.request("GET", "/export/suppressions",
                                     headers={"Authorization": f"{scheme} {EXPORT_TOKEN}"})
    assert status == 200 and body.startswith('{"store":')


def test_a_short_export_token_stops_serve(workspace: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", "x")
    monkeypatch.setenv("MAILER_EXPORT_TOKEN", "short")
    result = run_cli("serve", "--port", "1")
    assert result.exit_code == 1 and "MAILER_EXPORT_TOKEN is too short" in result.stderr


def _serve_once(answer: bytes, status: str = "200 OK", headers: str = "Content-Type: application/json") -> tuple:
    """A one-shot HTTP server on loopback: the remote end of a pull, misbehaving on purpose."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    seen: list[bytes] = []

    def run() -> None:
        connection, _ = listener.accept()
        with connection:
            seen.append(connection.recv(65536))
            connection.sendall(f"HTTP/1.1 {status}\r\n{headers}\r\nContent-Length: {len(answer)}\r\n"
                               f"Connection: close\r\n\r\n".encode() + answer)
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1], seen


def test_the_token_never_follows_a_redirect(sendgrid: FakeSendGrid, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere, stolen = _serve_once(b"{}")
    port, _ = _serve_once(b"", "302 Found", f"Location: http://127.0.0.1:{elsewhere}/steal")
    monkeypatch.setenv("MAILER_SERVE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MAILER_EXPORT_TOKEN", EXPORT_TOKEN)
    result = run_cli("suppressions", "pull")
    assert result.exit_code == 3 and "answered 302 to the export" in result.stderr
    assert stolen == []


@pytest.mark.parametrize("answer", [b'{"unsubscribes": [{"email": "a@example.com"}], "reported": []}',
                                    b'{"unsubscribes": [], "reported": [{"email": 1, "source": "bounce"}]}',
                                    b'{"unsubscribes": "none"}', b"[]",
                                    # a reader whose address smtplib would cut to another's, or a consent not text
                                    b'{"store": "s", "unsubscribes": [], "reported": [], "readers": [{"email": '
                                    b'"x:victim@example.net", "first_name": "", "last_name": "", "tags": [], '
                                    b'"confirmed_at": "", "consents": []}]}',
                                    b'{"store": "s", "unsubscribes": [], "reported": [], "readers": [{"email": '
                                    b'"a@example.com", "first_name": "", "last_name": "", "tags": [], '
                                    b'"confirmed_at": "", "consents": [{"given_at": 1}]}]}',
                                    b'{"store": "s", "unsubscribes": [], "reported": [], "readers": [{"email": '
                                    b'"a@example.com", "first_name": "A\\r\\nBcc: x@evil.example", "last_name": "", '
                                    b'"tags": [], "confirmed_at": "", "consents": []}]}'])
def test_an_export_that_is_not_mailers_fails_the_pull_cleanly(sendgrid: FakeSendGrid, run_cli, answer: bytes,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    port, _ = _serve_once(answer)
    monkeypatch.setenv("MAILER_SERVE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MAILER_EXPORT_TOKEN", EXPORT_TOKEN)
    result = run_cli("suppressions", "pull")
    assert result.exit_code == 3 and "is not mailer's export" in result.stderr and "Traceback" not in result.stderr


# Answers no text holds, from either end of a pull: once a UnicodeEncodeError's traceback from SQLite.
NOT_TEXT = {
    # Well-formed JSON but for one escape of half a surrogate pair.
    "escaped": ('"a\\udc80@example.com"', "half of a surrogate pair"),
    # A surrogate encoded in UTF-8 (json.loads would take it) and a whole answer in UTF-16 (json.loads reads that too).
    "encoded": ('"a\udc80@example.com"', "UTF-8"),
    "utf-16": ('"a@example.com"', "UTF-8"),
}


def _not_text_answer(kind: str, document: str) -> bytes:
    email, _ = NOT_TEXT[kind]
    text = document.replace('"EMAIL"', email)
    return text.encode("utf-16") if kind == "utf-16" else text.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("kind", NOT_TEXT)
def test_an_export_that_is_no_text_fails_the_pull_cleanly(sendgrid: FakeSendGrid, run_cli, kind: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    port, _ = _serve_once(_not_text_answer(kind, '{"store": "s", "unsubscribes": [{"email": "EMAIL", "how": "page", '
                                                 '"list_id": "x", "created_at": "2026-12-06T10:00:00+00:00"}], '
                                                 '"reported": []}'))
    monkeypatch.setenv("MAILER_SERVE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MAILER_EXPORT_TOKEN", EXPORT_TOKEN)
    result = run_cli("suppressions", "pull")
    assert result.exit_code == 3 and NOT_TEXT[kind][1] in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", NOT_TEXT)
def test_a_suppression_page_that_is_no_text_fails_the_pull_cleanly(run_cli, kind: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    port, _ = _serve_once(_not_text_answer(kind, '[{"created": 1443651141, "email": "EMAIL"}]'))
    monkeypatch.setenv("SENDGRID_API_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.not-a-real-key")
    result = run_cli("suppressions", "pull")
    expected = "half of a surrogate pair" if kind == "escaped" else "is not a list of suppressions"
    assert result.exit_code == 3 and expected in result.stderr and "unchanged" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_export_never_wipes_the_kept_copy(remote: Running, sendgrid: FakeSendGrid, run_cli,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert remote.post_form(f"/unsubscribe?token={token_for(ADA)}", "List-Unsubscribe=One-Click")[0] == 200
    monkeypatch.setenv("MAILER_SERVE_URL", f"http://127.0.0.1:{remote.port}")
    monkeypatch.setenv("MAILER_EXPORT_TOKEN", EXPORT_TOKEN)
    assert run_cli("suppressions", "pull").exit_code == 0
    port, _ = _serve_once(b'{"store": "new", "unsubscribes": [], "reported": []}')  # its state was reset
    monkeypatch.setenv("MAILER_SERVE_URL", f"http://127.0.0.1:{port}")
    result = run_cli("suppressions", "pull")
    assert result.exit_code == 3 and "was its state folder reset or replaced?" in result.stderr
    assert "unsubscribed" in run_cli("suppressions", "list", "--email", ADA).stdout


def test_a_user_and_password_in_mailer_serve_url_are_never_shown_nor_sent(
        sendgrid: FakeSendGrid, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import approve

    approve(run_cli)
    port, seen = _serve_once(b"{}")
    monkeypatch.setenv("MAILER_EXPORT_TOKEN", EXPORT_TOKEN)
    for url in ("https://mailer-user:s3cret-pw@[::1", f"https://mailer-user:s3c/ret-pw@127.0.0.1:{port}",
                f"http://mailer-user:s3cret-pw@127.0.0.1:{port}"):
        monkeypatch.setenv("MAILER_SERVE_URL", url)
        for command in (["suppressions", "pull"],
                        ["send", "issues/2020-12-13.yaml", "--subscribers", "subscribers.example.csv", "--live",
                         "--yes"]):
            result = run_cli(*command)
            said = result.stdout + result.stderr
            assert result.exit_code != 0 and "MAILER_SERVE_URL" in said and "Traceback" not in said, (url, said)
            assert "mailer-user" not in said and "s3c" not in said, said
    assert seen == []  # nothing was asked of the service, the token included
    assert f"holds a user name or password (http://***@127.0.0.1:{port})" in run_cli("suppressions", "pull").stderr
    for path in (tmp_path / "state").rglob("*"):
        assert not path.is_file() or b"s3c" not in path.read_bytes(), path


def test_readers_confirmed_at_the_remote_service_are_sent_to_from_the_sending_machine(
        remote: Running, sendgrid: FakeSendGrid, run_cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        state_dir: Path) -> None:
    from mailer.audience.store import Consent, Incoming, SubscriberStore

    with SubscriberStore.open(remote.state_dir) as there:  # two readers confirmed there (a sign-up, say)
        for email in (ADA, "grace.hopper@example.com"):
            there.add(Incoming(email, "Ada" if email == ADA else "Grace", tags=("weekly",)),
                      consent=Consent("2026-12-07T08:00:00+00:00", "subscribe", "Send me the weekly digest.", "v1"))
    with SubscriberStore.open(state_dir) as here:  # here, Ada left already: her word stands
        here.import_readers([Incoming(ADA, status="unsubscribed", line=2)], form="old.csv")
    monkeypatch.setenv("MAILER_SERVE_URL", f"http://127.0.0.1:{remote.port}")
    monkeypatch.setenv("MAILER_EXPORT_TOKEN", EXPORT_TOKEN)
    assert run_cli("suppressions", "pull").exit_code == 0
    with SubscriberStore.open(state_dir) as here:
        grace = here.get("grace.hopper@example.com")
        assert (grace.status, grace.source, grace.first_name, grace.tags) == ("confirmed", "form", "Grace", ("weekly",))
        assert [c.text for c in here.consents("grace.hopper@example.com")] == ["Send me the weekly digest."]
        assert here.get(ADA).status == "unsubscribed"
    dry_run = run_cli("send", "issues/2020-12-13.yaml")
    assert dry_run.exit_code == 0 and "would send to: grace.hopper@example.com\n" in dry_run.stdout
    assert run_cli("suppressions", "pull").exit_code == 0  # again: nothing doubles
    with SubscriberStore.open(state_dir) as here:
        assert here.counts()["confirmed"] == 1 and len(here.consents("grace.hopper@example.com")) == 1

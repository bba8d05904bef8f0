"""`mailer serve`, the public unsubscribe service, as a running process (Hypercorn) spoken to over HTTP."""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from mailer.deliver.message import TEST_COPY, unsubscribe_token
from mailer.deliver.suppressions import SuppressionList
from tests.conftest import SAMPLE_ISSUE, UNSUBSCRIBE_SECRET
from tests.loopback_smtp import free_port

LIST_ID = "The NLP Cypher <the-nlp-cypher.newsletter.example.com>"  # from the sample mailer.yaml
ADA = "ada.lovelace@example.com"  # the first subscriber of subscribers.example.csv


@dataclass
class Running:
    port: int
    process: subprocess.Popen
    state_dir: Path
    logs: str = ""  # what it wrote to stdout and stderr, once it stopped

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            # The service may answer (413) and close before a huge body is sent whole: its answer is still read.
            with contextlib.suppress(BrokenPipeError):
                connection.request(method, target, body=body, headers=headers or {})
            response = connection.getresponse()
            headers = {name.lower(): value for name, value in response.getheaders()}
            return response.status, headers, response.read().decode("utf-8", "replace")
        finally:
            connection.close()

    def post_form(self, target: str, body: str) -> tuple[int, dict[str, str], str]:
        return self.request("POST", target, body.encode(), {"Content-Type": "application/x-www-form-urlencoded"})

    def reasons(self, email: str) -> list[str]:
        with SuppressionList.open(self.state_dir) as suppressions:
            return [item.describe() for item in suppressions.reasons(email)]


def token_for(email: str, *, secret: str = UNSUBSCRIBE_SECRET, list_id: str = LIST_ID) -> str:
    return unsubscribe_token(email, list_id, secret.encode())


def wait_until_serving(running: Running) -> None:
    """Until `mailer serve` answers /healthz (20 s at most, and not after its process ended)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            if running.request("GET", "/healthz")[0] == 200:
                return
        except OSError:
            pass
        assert running.process.poll() is None, running.process.communicate()
        assert time.monotonic() < deadline, "mailer serve did not start"
        time.sleep(0.05)


@contextmanager
def serving(workspace: Path, state_dir: Path, **env: str) -> Iterator[Running]:
    """`mailer serve` as a child process on a free port, ready; on exit, its logs hold no secret or token."""
    port = free_port()
    env = {**os.environ, "MAILER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET, "MAILER_STATE_DIR": str(state_dir), **env}
    process = subprocess.Popen([sys.executable, "-m", "mailer", "serve", "--port", str(port)], cwd=workspace,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running = Running(port, process, state_dir)
    try:
        wait_until_serving(running)
        yield running
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
        running.logs = out + err
    assert "Traceback" not in err, err
    assert UNSUBSCRIBE_SECRET not in out + err
    for token in (token_for(ADA), ADA):  # no token and no address in the logs
        assert token not in out + err


@pytest.fixture
def service(workspace: Path, state_dir: Path) -> Iterator[Running]:
    with serving(workspace, state_dir) as running:
        yield running


def test_a_get_shows_the_page_and_never_unsubscribes(service: Running) -> None:
    status, headers, page = service.request("GET", f"/unsubscribe?token={token_for(ADA)}")
    assert status == 200 and headers["content-type"].startswith("text/html; charset=utf-8")
    assert "The NLP Cypher" in page and "a•••@example.com" in page and ADA not in page
    assert '<form method="post" action="/unsubscribe">' in page and ">Unsubscribe</button>" in page
    assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"
    assert "server" not in headers
    assert service.reasons(ADA) == []  # a link scanner following the link unsubscribed nobody


def test_one_click_unsubscribes_at_once_and_the_next_send_skips_the_reader(service: Running, run_cli) -> None:
    one_click = f"/unsubscribe?token={token_for(ADA)}"
    for _ in range(2):  # a mail client may retry: the second POST is fine
        status, _, page = service.post_form(one_click, "List-Unsubscribe=One-Click")
        assert status == 200 and "You are unsubscribed from The NLP Cypher" in page
    assert service.reasons(ADA) == ["unsubscribed (one-click, from the mail client)"]
    dry_run = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv")
    assert dry_run.exit_code == 0, dry_run.stderr
    assert f"skip {ADA} (line 2): suppressed: unsubscribed (one-click, from the mail client)" in dry_run.stdout
    assert ADA not in dry_run.stdout.split("would send to:")[1].splitlines()[0]


def test_the_button_unsubscribes_and_resubscribe_undoes_it(service: Running) -> None:
    token = token_for(ADA)
    status, _, page = service.post_form("/unsubscribe", f"token={token}&action=unsubscribe")
    assert status == 200 and ">Resubscribe</button>" in page
    assert service.reasons(ADA) == ["unsubscribed (the unsubscribe page)"]
    status, _, page = service.post_form("/unsubscribe", f"token={token}&action=resubscribe")
    assert status == 200 and "You are subscribed to The NLP Cypher again" in page
    assert service.reasons(ADA) == []


def test_a_test_copy_link_unsubscribes_nobody(service: Running) -> None:
    token = token_for(TEST_COPY)
    assert "test copy" in service.request("GET", f"/unsubscribe?token={token}")[2]
    status, _, page = service.post_form(f"/unsubscribe?token={token}", "List-Unsubscribe=One-Click")
    assert status == 200 and "nobody was unsubscribed" in page
    with SuppressionList.open(service.state_dir) as suppressions:
        assert list(suppressions.all()) == []


@pytest.mark.parametrize("token", [
    "", "abc", "abc.é", "abc.%C3%A9", "%00", "..", "a.b.c", "x" * 2000,
    token_for(ADA)[:-3],  # cut off when copied
    token_for(ADA, secret="another-secret"),  # forged
    token_for(ADA, list_id="Other <other.example.com>"),  # another newsletter's link
])
def test_a_bad_token_is_a_400_page_and_changes_nothing(service: Running, token: str) -> None:
    for method, target, body in (("GET", f"/unsubscribe?token={quote(token, safe='%')}", None),
                                 ("POST", f"/unsubscribe?token={quote(token, safe='%')}", "List-Unsubscribe=One-Click"),
                                 ("POST", "/unsubscribe", f"token={quote(token, safe='%')}")):
        status, _, page = (service.request(method, target) if body is None else service.post_form(target, body))
        assert status == 400, (method, target, status)
        assert "This link is not valid" in page and "Traceback" not in page
    with SuppressionList.open(service.state_dir) as suppressions:
        assert list(suppressions.all()) == []


def test_hostile_requests_get_short_pages_and_no_paths(service: Running, workspace: Path) -> None:
    token = token_for(ADA)
    answers = {
        "huge body": service.request("POST", f"/unsubscribe?token={token}", b"x" * 1_000_000,
                                     {"Content-Type": "application/x-www-form-urlencoded"}),
        "non-ASCII body": service.request("POST", "/unsubscribe", f"token={token}&x=Ön".encode(),
                                          {"Content-Type": "application/x-www-form-urlencoded"}),
        "unknown path": service.request("GET", "/mailer.yaml"),
        "traversal": service.request("GET", "/../../etc/passwd"),
        "another method": service.request("PUT", "/unsubscribe"),
    }
    assert {name: status for name, (status, _, _) in answers.items()} == {
        "huge body": 413, "non-ASCII body": 400, "unknown path": 404, "traversal": 404, "another method": 405}
    for _, _, page in answers.values():
        assert str(workspace) not in page and "Traceback" not in page and "root:" not in page
    assert service.reasons(ADA) == []


def test_serve_refuses_to_start_without_the_secret(workspace: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILER_UNSUBSCRIBE_SECRET", raising=False)
    result = run_cli("serve", "--port", str(free_port()))
    assert result.exit_code == 1 and "MAILER_UNSUBSCRIBE_SECRET is not set" in result.stderr


def test_serve_on_a_taken_port_says_so(workspace: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("MAILER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("serve", "--port", str(taken.getsockname()[1]))
    assert result.exit_code == 1 and "cannot listen on 127.0.0.1:" in result.stderr and "--port" in result.stderr


def test_a_multipart_one_click_unsubscribes(service: Running) -> None:
    # RFC 8058 allows multipart/form-data; the URL's token is the proof.
    boundary = "mailer-test-boundary"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                 f"One-Click\r\n--{boundary}--\r\n").encode()
    status, _, _ = service.request("POST", f"/unsubscribe?token={token_for(ADA)}", multipart,
                                   {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and service.reasons(ADA) == ["unsubscribed (one-click, from the mail client)"]


@pytest.mark.parametrize("body", [
    "Ö=Ö".encode("latin-1"),  # not ASCII
    "token={token}&action=resubscribe&caf\u00e9=1".encode(),  # a non-ASCII byte in a Resubscribe
    "&".join(["token={token}", "action=resubscribe"] + [f"f{n}=1" for n in range(10)]).encode(),  # 12 fields
], ids=["latin-1", "non-ascii-resubscribe", "twelve-fields-resubscribe"])
def test_a_body_that_cannot_be_read_changes_nothing(service: Running, body: bytes) -> None:
    # It used to be taken for a one-click request: a reader's Resubscribe became an unsubscribe.
    target = f"/unsubscribe?token={token_for(ADA)}"
    body = body.replace(b"{token}", token_for(ADA).encode())
    status, _, page = service.request("POST", target, body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and "Nothing was changed" in page
    assert service.reasons(ADA) == []
    assert service.post_form("/unsubscribe", f"token={token_for(ADA)}&action=unsubscribe")[0] == 200
    status, _, _ = service.request("POST", target, body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and service.reasons(ADA) == ["unsubscribed (the unsubscribe page)"]


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", b'{"List-Unsubscribe": "One-Click"}'),
    ("text/plain", b"List-Unsubscribe=One-Click"),
    ("application/x-www-form-urlencoded; charset=utf-16", "List-Unsubscribe=One-Click".encode("utf-16-le")),
    ("application/x-www-form-urlencoded", "List-Unsubscribe=One-Click".encode("utf-16-le")),  # NULs, no charset
    ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click\x00"),
    ("application/x-www-form-urlencoded", b"hello world"),  # not name=value: parse_qs dropped it
    ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click&stray"),
], ids=["json", "text-plain", "utf-16-declared", "utf-16", "nul", "no-equals", "stray-field"])
def test_a_body_of_another_kind_or_encoding_changes_nothing(service: Running, content_type: str, body: bytes) -> None:
    # Each was taken for a one-click request by a reader who had not asked (the URL's token is valid).
    status, _, page = service.request("POST", f"/unsubscribe?token={token_for(ADA)}", body,
                                      {"Content-Type": content_type})
    assert status == 400 and "Nothing was changed" in page and service.reasons(ADA) == []


def test_a_body_cut_short_changes_nothing_and_is_told_so(service: Running) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as client:
        client.sendall(f"POST /unsubscribe?token={token_for(ADA)} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       "application/x-www-form-urlencoded\r\nContent-Length: 26\r\n\r\nList-Unsub".encode())
        client.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    # 400 either way: the app's page when it was reading the body, or Hypercorn's own (empty) when the end of
    # the stream reached it first. Never the 413 page it was, and nothing changed.
    assert answer.startswith(b"HTTP/1.1 400") and b"Request too large" not in answer
    assert service.reasons(ADA) == []


def test_headers_past_16_kb_are_refused_however_they_arrive(service: Running) -> None:
    # Hypercorn bounds only headers still incomplete: one of 60 KB in a packet, or 6,000 short ones, went through.
    big = {"X-Padding": "x" * 60_000}
    assert service.request("GET", "/healthz", headers=big)[0] == 431
    many = {f"X-H{n}": "y" for n in range(3000)}
    assert service.request("GET", "/healthz", headers=many)[0] == 431
    assert service.request("GET", "/healthz", headers={"X-Padding": "x" * 8000})[0] == 200


@pytest.mark.parametrize("opening", [
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # HTTP/2 with prior knowledge
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
], ids=["prior-knowledge", "h2c-upgrade"])
def test_http2_is_not_spoken_and_the_connection_closes_at_once(service: Running, opening: bytes) -> None:
    # Over HTTP/2 a PING every few seconds kept a connection open for good: its idle timer restarted on each frame.
    import socket

    with socket.create_connection(("127.0.0.1", service.port), timeout=5) as client:
        client.sendall(opening)
        started, answer = time.monotonic(), b""
        while chunk := client.recv(65536):
            answer += chunk
        assert time.monotonic() - started < 3  # closed by the service, not by the 5 s timeout (which raises)
    assert b"\x00\x00" not in answer[:9]  # no HTTP/2 SETTINGS frame came back
    assert service.request("GET", "/healthz")[0] == 200


def test_a_final_slash_gets_the_same_page_and_nothing_is_built_from_the_host(service: Running) -> None:
    for target in (f"/unsubscribe/?token={token_for(ADA)}", f"/unsubscribe?token={token_for(ADA)}"):
        status, headers, page = service.request("GET", target, headers={"Host": "evil.example"})
        assert status == 200 and "location" not in headers and "evil.example" not in page
        assert "a•••@example.com" in page and headers["referrer-policy"] == "no-referrer"
    status, headers, _ = service.post_form(f"/unsubscribe/?token={token_for(ADA)}", "List-Unsubscribe=One-Click")
    assert status == 200 and service.reasons(ADA) == ["unsubscribed (one-click, from the mail client)"]
    status, headers, page = service.request("GET", "/healthz/", headers={"Host": "evil.example"})
    assert status == 404 and "location" not in headers and "evil.example" not in page


def test_resubscribe_says_so_when_another_list_still_holds_the_reader(service: Running) -> None:
    from mailer.deliver.suppressions import SPAM_REPORT, Suppression

    with SuppressionList.open(service.state_dir) as suppressions:
        suppressions.record_reported([Suppression(ADA, SPAM_REPORT, reason="via the event webhook")])
    token = token_for(ADA)
    assert service.post_form("/unsubscribe", f"token={token}&action=unsubscribe")[0] == 200
    status, _, page = service.post_form("/unsubscribe", f"token={token}&action=resubscribe")
    assert status == 200 and "Your click here is undone" in page and "will not reach it" in page
    assert service.reasons(ADA) == ["spam report (via the event webhook)"]


def test_serve_off_loopback_warns_that_tls_must_end_in_front_and_stops_cleanly_on_ctrl_c(workspace: Path,
                                                                                         state_dir: Path) -> None:
    import signal

    port = free_port()
    env = {**os.environ, "MAILER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET, "MAILER_STATE_DIR": str(state_dir)}
    process = subprocess.Popen([sys.executable, "-m", "mailer", "serve", "--host", "0.0.0.0", "--port", str(port)],
                               cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until_serving(Running(port, process, state_dir))
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0 and "Traceback" not in err
    assert f"http://0.0.0.0:{port}/unsubscribe" in out
    assert "warning: listening on 0.0.0.0 without TLS" in err and "reverse proxy" in err


def test_a_click_moves_the_reader_in_the_subscriber_store_and_resubscribe_moves_them_back(service: Running) -> None:
    from mailer.audience.store import Incoming, SubscriberStore

    with SubscriberStore.open(service.state_dir) as store:
        store.import_readers([Incoming(ADA, "Ada", line=2)], form="subscribers.example.csv")
    token = token_for(ADA)
    assert service.post_form(f"/unsubscribe?token={token}", "List-Unsubscribe=One-Click")[0] == 200
    with SubscriberStore.open(service.state_dir) as store:
        reader = store.get(ADA)
        assert (reader.status, reader.status_reason) == ("unsubscribed", "unsubscribed (one-click)")
    assert service.post_form("/unsubscribe", f"token={token}&action=resubscribe")[0] == 200
    with SubscriberStore.open(service.state_dir) as store:
        assert store.get(ADA).status == "confirmed"


def test_a_damaged_subscriber_store_never_costs_a_reader_their_unsubscribe(service: Running) -> None:
    # The suppression list, which every send obeys, records the click; the store follows when it can.
    service.state_dir.mkdir(parents=True, exist_ok=True)
    (service.state_dir / "subscribers.sqlite3").write_bytes(b"not a database " * 100)
    status, _, page = service.post_form(f"/unsubscribe?token={token_for(ADA)}", "List-Unsubscribe=One-Click")
    assert status == 200 and "You are unsubscribed" in page
    assert service.reasons(ADA) == ["unsubscribed (one-click, from the mail client)"]

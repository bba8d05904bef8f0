"""`mailer check --links` on a machine without a network: said once, not as one broken link per link."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mailer.checks import linkcheck
from mailer.checks.linkcheck import LinkResult, Verdict, network_unreachable
from tests.conftest import MINIMAL_ISSUE, write

PUBLIC = ("https://arxiv.org/abs/2012.00001", "https://github.com/mailer/mailer", "https://huggingface.co/gpt2")


@pytest.fixture
def dns_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DNS: every public name fails to resolve as a resolver no one answers does; local addresses still work."""
    resolve = linkcheck._resolve

    def down(host: str, port: int, timeout: float):
        if linkcheck.is_local_name(host):
            return resolve(host, port, timeout)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(linkcheck, "_resolve", down)


def issue_linking(workspace: Path, *urls: str) -> str:
    cards = "".join(f"      - url: {url}\n        title: Card {i}\n" for i, url in enumerate(urls))
    write(workspace / "issues" / "t.yaml", MINIMAL_ISSUE + "    cards:\n" + cards)
    return "issues/t.yaml"


def test_every_public_link_failing_alike_is_said_once_as_the_network(workspace: Path, pages, run_cli,
                                                                     dns_down) -> None:
    issue = issue_linking(workspace, *PUBLIC, pages.url("/og"))  # and a page on this machine, which answers
    result = run_cli("check", issue, "--links", "--timeout", "2")
    assert result.exit_code == 0, result.stdout  # a warning: nothing is known to be wrong with the links
    assert result.stdout.count("network unreachable: links not checked") == 1
    assert "every one of the 4 links to 4 hosts failed at name lookup" in result.stdout  # example.com/a too
    assert "does not answer" not in result.stdout
    assert "links answered: none: network unreachable, 4 not checked (1 local ok, 0 local broken)" in result.stdout
    assert run_cli("check", issue, "--links", "--timeout", "2", "--strict").exit_code == 1


def test_every_issue_checked_at_once_says_it_once(workspace: Path, run_cli, dns_down) -> None:
    issue_linking(workspace, *PUBLIC)
    result = run_cli("check", "issues/", "--links", "--timeout", "2", "--format", "json")
    import json

    report = json.loads(result.stdout)
    said = [finding for issue in report["reports"] for finding in issue.get("findings", [])
            if finding["code"] == "links.network-unreachable"]
    assert len(said) == 1 and said[0]["severity"] == "warning"
    assert not [finding for issue in report["reports"] for finding in issue.get("findings", [])
                if finding["code"] in ("links.broken", "links.unreachable")]


def test_one_dead_public_host_is_a_broken_link_not_a_network_outage(workspace: Path, run_cli, dns_down) -> None:
    issue = issue_linking(workspace)
    write(workspace / issue, (workspace / issue).read_text(encoding="utf-8").replace("    cards:\n", ""))
    result = run_cli("check", issue, "--links", "--timeout", "2")
    assert result.exit_code == 1
    assert "link https://example.com/a does not answer: name not resolved" in result.stdout
    assert "network unreachable" not in result.stdout


def test_local_links_are_judged_as_always(workspace: Path, pages, run_cli) -> None:
    issue = issue_linking(workspace, pages.url("/og"), pages.url("/gone-for-good"))
    write(workspace / issue, (workspace / issue).read_text(encoding="utf-8").replace("https://example.com/a",
                                                                                     pages.url("/og")))
    result = run_cli("check", issue, "--links", "--timeout", "2")
    assert "network unreachable" not in result.stdout
    assert "links answered: 1 ok, 1 broken, 0 not checked" in result.stdout


def result(url: str, *, no_network: str | None = None, status: int | None = None, local: bool = False) -> LinkResult:
    verdict = Verdict.OK if status == 200 else Verdict.BROKEN
    return LinkResult(url, verdict, status=status, no_network=no_network, fetched=True, local=local)


def test_one_public_answer_means_the_network_is_up() -> None:
    failed = [result(url, no_network="name lookup") for url in PUBLIC]
    assert network_unreachable(failed) is not None
    assert network_unreachable([*failed, result("https://example.org/", status=200)]) is None
    assert network_unreachable([*failed, result("https://example.org/", status=404)]) is None
    refused = LinkResult("https://example.net/", Verdict.BROKEN, reason="connection refused", fetched=True)
    assert network_unreachable([*failed, refused]) is None  # a refusal came from somewhere
    assert network_unreachable([*failed, result("http://127.0.0.1:9/", status=200, local=True)]) is not None
    assert network_unreachable(failed[:1]) is None  # one host: a dead link, as far as anyone can tell
    mixed = [result(PUBLIC[0], no_network="name lookup"), result(PUBLIC[1], no_network="a timeout")]
    assert "failed at a timeout or name lookup" in (network_unreachable(mixed) or "")

"""The environment as mailer reads it: every variable once, at the CLI's edge, into one Environment that keeps its
secrets out of sight; the library is handed it, so a test hands it one of its own (httpie's way)."""

from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path

import pytest

from mailer.environment import Environment
from tests.conftest import REPO

SECRET_FIELDS = {"unsubscribe_secret", "sendgrid_api_key", "sendgrid_api_host", "smtp_url", "inbound_key",
                 "serve_url", "export_token", "mailbox_url"}


def test_each_variable_is_read_into_its_field_and_an_unset_one_is_empty() -> None:
    variables = Environment.variables()
    environ = {name: f"value of {name}" for name in variables.values()}
    read = Environment.read(environ)
    assert {field: getattr(read, field) for field in variables} == {
        field: f"value of {name}" for field, name in variables.items()}
    assert Environment.read({}) == Environment()
    assert Environment.read({"MAILER_STATE_DIR": "/srv/state"}).state_path == Path("/srv/state")
    assert Environment().state_path is None


def test_the_proxy_named_is_the_first_one_set() -> None:
    assert Environment.read({"http_proxy": "http://p:3128", "ALL_PROXY": "socks5://p"}).proxy_variable == "http_proxy"
    assert Environment.read({"HTTPS_PROXY": ""}).proxy_variable == ""


def test_no_secret_is_shown_by_its_repr() -> None:
    values = {field.name: f"canary-{field.name}" for field in dataclasses.fields(Environment)}
    shown = repr(Environment(**values))
    for name in SECRET_FIELDS:
        assert values[name] not in shown, name
    assert "canary-state_dir" in shown and "canary-dns" in shown  # what is no secret helps a reader debug


def _env_constants() -> dict[str, str]:
    """Every NAME_ENV = "VARIABLE" constant of mailer/ (a variable some module names in its messages)."""
    found = {}
    for path in (REPO / "mailer").rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                for name, value in zip(names, values, strict=False):
                    if isinstance(name, ast.Name) and name.id.endswith("_ENV") and isinstance(value, ast.Constant):
                        found[f"{path.relative_to(REPO)}:{name.id}"] = value.value
    return found


def test_every_variable_a_module_names_is_one_the_edge_reads() -> None:
    constants = _env_constants()
    assert len(constants) >= 10  # the scan finds them (message.SECRET_ENV, sendgrid.API_KEY_ENV, …)
    read = set(Environment.variables().values())
    assert {where: name for where, name in constants.items() if name not in read} == {}


def test_a_command_runs_with_the_environment_it_is_handed(workspace: Path, tmp_path: Path, capsys) -> None:
    from mailer.cli.main import main

    elsewhere = tmp_path / "handed-in"
    with pytest.raises(SystemExit) as done:
        main(["suppressions", "list"], environment=Environment(state_dir=str(elsewhere)))
    assert done.value.code == 0
    assert "handed-in" in capsys.readouterr().out  # not MAILER_STATE_DIR's folder, which isolated_env set


@pytest.mark.parametrize(("answer", "sent"), [("y\n", True), ("n\n", False)])
def test_a_live_send_asks_a_person_at_a_terminal_and_does_what_they_answer(
        workspace: Path, sendgrid, run_cli, monkeypatch: pytest.MonkeyPatch, answer: str, sent: bool) -> None:
    # A terminal, said through the Environment as the CLI reads it at its edge: no pseudo-terminal needed.
    import io

    from mailer.cli.main import main
    from tests.conftest import SAMPLE_ISSUE, approve

    approve(run_cli)
    sendgrid.requests.clear()
    at_a_terminal = dataclasses.replace(Environment.read(os.environ), stdin_is_terminal=True)
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    with pytest.raises(SystemExit) as done:
        main(["send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live"], environment=at_a_terminal)
    assert done.value.code == (0 if sent else 2)
    assert bool(sendgrid.requests) is sent

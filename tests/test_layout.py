"""The house rules of mailer/: each stage imports only the stages before it, and no module imports itself back;
and only the CLI reads the environment.

The stages, in pipeline order, and what each may import (docs/development.md):
    top (config, errors, schema)  ← compose ← audience ← deliver ← checks ← report ← author ← web ← cli
Every import counts, including those inside functions and under TYPE_CHECKING: a lazy import that
runs back up a stage is still a dependency a reader has to hold in their head.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "mailer"
# What each stage may import besides itself; "top" is mailer/*.py (config, errors, schema).
MAY_IMPORT = {
    "top": set(),
    "compose": {"top"},
    "audience": {"top", "compose"},
    "deliver": {"top", "compose", "audience"},
    "checks": {"top", "compose", "audience", "deliver"},
    "report": {"top", "compose", "audience", "deliver", "checks"},
    "author": {"top", "compose", "audience", "deliver", "checks", "report"},
    "web": {"top", "compose", "audience", "deliver", "checks", "report", "author"},
    "cli": {"top", "compose", "audience", "deliver", "checks", "report", "author", "web"},
}
ENTRY_POINTS = {"mailer.__main__"}  # `python -m mailer`: may import the CLI, and nothing imports it
# The environment is read once, at the CLI's edge (mailer/cli/environment.py, into mailer.environment.Environment),
# and handed to the library, so that a test hands the library settings instead of patching the environment.
# Where library code must read it all the same, the module goes here with the reason. None does today: what the
# libraries read themselves (httpx's and ssl's SSL_CERT_FILE, webbrowser's BROWSER) is theirs, not mailer's.
READS_THE_ENVIRONMENT: dict[str, str] = {}
ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else "top"


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The mailer modules a file imports, anywhere in it; `from pkg import mod` names the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "mailer")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mailer":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(path, root): path for path in root.rglob("*.py")}
    modules = set(files)
    graph = {name: imports_of(path, modules) - {name} for name, path in files.items()}
    for name in list(graph):  # importing mailer.deliver.backends.smtp runs mailer.deliver.backends first
        graph[name] = {target for target in graph[name] if target in modules}
    return graph


def layout_violations(root: Path) -> list[str]:
    graph = import_graph(root)
    problems = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            if target in ENTRY_POINTS or stage_of(target) == "cli" and source not in ENTRY_POINTS \
                    and stage_of(source) != "cli":
                problems.append(f"{source} imports {target}: nothing but the entry point imports the CLI")
                continue
            if source in ENTRY_POINTS:
                continue
            allowed = MAY_IMPORT[stage_of(source)] | {stage_of(source)}
            if stage_of(target) not in allowed:
                problems.append(f"{source} imports {target}: {stage_of(source)} may import only "
                                f"{', '.join(sorted(allowed))}")
    problems += [f"import circle: {' → '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def environment_reads(root: Path) -> list[str]:
    """Each place outside mailer/cli/ that reads the process's environment (os.environ, os.getenv, or either
    imported from os), but for the modules READS_THE_ENVIRONMENT allows."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        if stage_of(module) == "cli" or module in ENTRY_POINTS or module in READS_THE_ENVIRONMENT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_NAMES:
                what = ast.unparse(node)
            elif isinstance(node, ast.ImportFrom) and node.module == "os" and \
                    ENVIRONMENT_NAMES & {alias.name for alias in node.names}:
                what = f"from os import {', '.join(alias.name for alias in node.names)}"
            else:
                continue
            found.append(f"{module}:{node.lineno} reads the environment ({what}): read it in "
                         "mailer/cli/environment.py (a field of mailer.environment.Environment) and hand it in")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected group of modules (Tarjan), shown as a path back to its start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(_path_through(sorted(group), graph))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _path_through(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A walk from the group's first module that comes back to it, for a readable message."""
    start, members = group[0], set(group)
    path, node = [start], start
    while True:
        node = min(target for target in graph[node] if target in members)
        path.append(node)
        if node == start or path.count(node) > 1:
            return path


def test_mailer_keeps_its_house_rules() -> None:
    assert layout_violations(PACKAGE) == []


def test_only_the_cli_reads_the_environment() -> None:
    assert environment_reads(PACKAGE) == []


@pytest.mark.parametrize(("files", "expected"), [
    pytest.param({"cli/__init__.py": "", "cli/environment.py": "import os\nvalue = os.environ.get('X')\n"}, [],
                 id="the-cli-may"),
    pytest.param({"deliver/__init__.py": "", "deliver/send.py": "import os\n\n\ndef f():\n    return os.getenv('X')\n"},
                 ["mailer.deliver.send:5 reads the environment (os.getenv)"], id="a-call-deep-down"),
    pytest.param({"config.py": "from os import environ\n"},
                 ["mailer.config:1 reads the environment (from os import environ)"], id="imported-by-name"),
    pytest.param({"web/__init__.py": "", "web/service.py": '"""Reads nothing: os.environ is a word here."""\n'}, [],
                 id="a-docstring-is-no-read"),
])
def test_the_environment_rule_catches_what_it_promises_to(tmp_path: Path, files: dict[str, str],
                                                          expected: list[str]) -> None:
    assert [problem.split(": read it in")[0] for problem in environment_reads(_tree(tmp_path, files))] == expected


def test_every_stage_is_a_folder_named_in_the_development_page() -> None:
    folders = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    assert folders == set(MAY_IMPORT) - {"top"}
    development = (REPO / "docs" / "development.md").read_text(encoding="utf-8")
    for folder in folders:
        assert f"`mailer/{folder}/`" in development, f"docs/development.md's map does not name mailer/{folder}/"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "mailer"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(("files", "expected"), [
    pytest.param({"compose/__init__.py": "", "compose/build.py": "",
                  "deliver/__init__.py": "", "deliver/send.py": "from mailer.compose.build import x\n"},
                 [], id="forward-is-fine"),
    pytest.param({"compose/__init__.py": "", "compose/build.py": "def f():\n    from mailer.deliver import send\n",
                  "deliver/__init__.py": "", "deliver/send.py": ""},
                 ["mailer.compose.build imports mailer.deliver.send: compose may import only compose, top"],
                 id="lazy-import-back-up-a-stage"),
    pytest.param({"deliver/__init__.py": "", "deliver/send.py": "from mailer.deliver.suppressions import a\n",
                  "deliver/suppressions.py": "if X:\n    from mailer.deliver.send import RetryPolicy\n"},
                 ["import circle: mailer.deliver.send → mailer.deliver.suppressions → mailer.deliver.send"],
                 id="circle-through-type-checking"),
    pytest.param({"config.py": "import mailer.cli.main\n", "cli/__init__.py": "", "cli/main.py": ""},
                 ["mailer.config imports mailer.cli.main: nothing but the entry point imports the CLI"],
                 id="core-imports-cli"),
])
def test_the_rules_catch_what_they_promise_to(tmp_path: Path, files: dict[str, str], expected: list[str]) -> None:
    assert layout_violations(_tree(tmp_path, files)) == expected

"""The `mailer` command as a user runs it: output, exit codes and start-up cost."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import MINIMAL_ISSUE, write


def test_build_prints_subject_preheader_and_size(workspace: Path, run_cli) -> None:
    result = run_cli("build", "issues/2020-12-13.yaml")
    assert result.exit_code == 0, result.stderr
    assert "subject:   The NLP Cypher | 12.13.20" in result.stdout
    assert "preheader: GPT-3 wins at NeurIPS" in result.stdout
    assert "below Gmail's 102 KB clipping limit" in result.stdout
    assert (workspace / "build" / "2020-12-13" / "email.html").is_file()
    assert (workspace / "build" / "2020-12-13" / "email.txt").is_file()


def test_build_warns_loudly_when_gmail_would_clip(workspace: Path, run_cli) -> None:
    long_body = "\n\n".join(f"Paragraph {i} " + "word " * 150 for i in range(150))
    text = MINIMAL_ISSUE.replace("    body: |\n      Hello", "    body: |\n      " + long_body.replace(
        "\n\n", "\n\n      ") + "\n\n      Hello")
    write(workspace / "issues" / "huge.yaml", text)
    result = run_cli("build", "issues/huge.yaml")
    assert result.exit_code == 0
    assert "OVER Gmail's 102 KB clipping limit" in result.stdout


def test_build_out_folder(workspace: Path, run_cli, tmp_path: Path) -> None:
    result = run_cli("build", "issues/2020-12-13.yaml", "issues/2020-12-13-zh.yaml", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["2020-12-13", "2020-12-13-zh"]


def test_missing_settings_file_is_explained(tmp_path: Path, run_cli, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "issues" / "a.yaml", MINIMAL_ISSUE)
    result = run_cli("build", "issues/a.yaml")
    assert result.exit_code == 1
    assert "no mailer.yaml found" in result.stderr and "hint:" in result.stderr


def test_bad_settings_name_the_line(workspace: Path, run_cli) -> None:
    config = workspace / "mailer.yaml"
    config.write_text(config.read_text().replace("web_base_url: https://", "web_base_url: ftp://"))
    result = run_cli("build", "issues/2020-12-13.yaml")
    assert result.exit_code == 1
    line = config.read_text().splitlines().index("web_base_url: ftp://newsletter.example.com/") + 1
    assert f"mailer.yaml:{line}:15: web_base_url: must be an absolute http(s) URL" in result.stderr


def test_usage_error_exits_2(run_cli) -> None:
    result = run_cli("build")
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr


def test_help_does_not_import_the_heavy_libraries() -> None:
    # `mailer --help` must start fast: premailer alone costs about 0.3 s to import.
    code = ("import sys; from mailer.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('premailer', 'mjml', 'cssutils', 'sendgrid') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_python_dash_m_works() -> None:
    out = subprocess.run([sys.executable, "-m", "mailer", "--help"], capture_output=True, text=True, check=True)
    assert "Usage: mailer" in out.stdout


def test_a_dry_run_read_by_a_pipe_that_closes_still_exits_0(workspace: Path, tmp_path: Path) -> None:
    # `mailer send ISSUE --subscribers FILE | head -1`: the outbox is written before the report, which then
    # meets the closed pipe. The work is done: the exit code says so, not "bad input".
    import os

    process = subprocess.Popen([sys.executable, "-m", "mailer", "send", "issues/2020-12-13.yaml", "--subscribers",
                                "subscribers.example.csv"], cwd=workspace, env=os.environ.copy(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the report: the process takes longer than this to start
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert (tmp_path / "state" / "outbox" / "2020-12-13" / "manifest.jsonl").is_file()


def test_status_and_cancel_answer_for_an_issue_whose_file_no_longer_builds(workspace: Path, sendgrid, run_cli) -> None:
    from tests.conftest import SAMPLE_ISSUE, approve

    approve(run_cli)
    assert run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--live", "--yes").exit_code == 0
    issue = workspace / SAMPLE_ISSUE
    issue.write_text(issue.read_text(encoding="utf-8") + "\nsections: [unfinished\n", encoding="utf-8")
    status = run_cli("status", SAMPLE_ISSUE)
    assert status.exit_code == 0, status.stderr
    assert re.search(r"accepted\s+18\b", status.stdout)  # what was sent shows while the file is being edited
    cancelled = run_cli("cancel", SAMPLE_ISSUE)
    assert cancelled.exit_code == 3 and "no scheduled send to cancel" in cancelled.stderr
    missing = run_cli("status", "issues/2020-12-31.yaml")
    assert missing.exit_code == 1 and "issues/2020-12-31.yaml" in missing.stderr


def test_an_empty_at_is_refused_never_read_as_now(workspace: Path, run_cli) -> None:
    from tests.conftest import SAMPLE_ISSUE

    result = run_cli("send", SAMPLE_ISSUE, "--subscribers", "subscribers.example.csv", "--at", "")
    assert result.exit_code == 2 and "--at" in result.stderr and "is empty" in result.stderr

"""`make bench`: speed and size figures for the README's performance section, printed as a table.

Targets are checked here, never in timed unit tests: a slow CI machine must not fail the suite.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "issues" / "2020-12-13.yaml"


def median_ms(func: Callable[[], object], *, runs: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        func()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_build() -> list[tuple[str, float, str, str]]:
    from mailer.build import build_issue
    from mailer.config import load_config
    from mailer.inline import inline_css
    from mailer.issue import load_issue
    from mailer.plaintext import render_text
    from mailer.render import HTML_LAYOUT, compile_mjml, render_template

    config = load_config(REPO)
    issue = load_issue(SAMPLE)
    mjml = render_template(HTML_LAYOUT, issue=issue, config=config)
    html = compile_mjml(mjml, layout=HTML_LAYOUT)
    rendered = build_issue(SAMPLE, config)
    rows = [
        ("build sample issue (median of 20, warm)", median_ms(lambda: build_issue(SAMPLE, config)), "ms", "< 80"),
        ("  load + validate YAML", median_ms(lambda: load_issue(SAMPLE)), "ms", ""),
        ("  render layouts (Jinja2)", median_ms(lambda: render_template(HTML_LAYOUT, issue=issue, config=config)),
         "ms", ""),
        ("  compile MJML (mjml-python)", median_ms(lambda: compile_mjml(mjml, layout=HTML_LAYOUT)), "ms", ""),
        ("  inline CSS (premailer)", median_ms(lambda: inline_css(html)), "ms", ""),
        ("  plain-text part", median_ms(lambda: render_text(issue, config)), "ms", ""),
        ("sample HTML size", rendered.html_bytes / 1024, "KB", "< 70"),
    ]
    return rows


def bench_startup() -> tuple[str, float, str, str]:
    command = [str(Path(sys.executable).parent / "mailer"), "--help"]
    def run() -> None:
        subprocess.run(command, check=True, capture_output=True)
    return ("`mailer --help` start-up (median of 10)", median_ms(run, runs=10, warmup=2), "ms", "< 300")


def meets(value: float, target: str) -> str:
    if not target:
        return ""
    return "yes" if value < float(target.split()[-1]) else "NO"


def main() -> int:
    rows = [*bench_build(), bench_startup()]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>9}  {'unit':<4}  {'target':<7}  met")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 4}  {'-' * 7}  ---")
    failed = False
    for name, value, unit, target in rows:
        verdict = meets(value, target)
        failed |= verdict == "NO"
        print(f"{name:<{width}}  {value:>9.1f}  {unit:<4}  {target:<7}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`: speed and size figures for docs/performance.md, printed as a table.

Targets are checked here, never in timed unit tests: a slow CI machine must not fail the suite.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    from mailer.compose.build import build_issue
    from mailer.compose.inline import inline_css
    from mailer.compose.issue import load_issue
    from mailer.compose.plaintext import render_text
    from mailer.compose.render import HTML_LAYOUT, compile_mjml, render_template
    from mailer.config import load_config
    from mailer.deliver.message import email_size

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
        ("sample HTML size (the HTML part as sent)", email_size(rendered, config).html_part / 1024, "KB", "< 70"),
        ("40-card issue HTML size (Gmail clips at 102)", forty_card_html_bytes(config) / 1024, "KB", "< 102"),
    ]
    return rows


def forty_card_html_bytes(config) -> int:
    import shutil
    import tempfile

    from mailer.compose.build import build_issue
    from mailer.deliver.message import email_size

    sys.path.insert(0, str(REPO))
    from tests.bench.forty_cards import write_forty_card_issue

    # In a copy of issues/ with the sample's images, which the generated issue shows too.
    with tempfile.TemporaryDirectory() as folder:
        issues = Path(folder) / "issues"
        shutil.copytree(REPO / "issues" / "img", issues / "img")
        return email_size(build_issue(write_forty_card_issue(issues), config), config).html_part


def bench_check() -> list[tuple[str, float, str, str]]:
    from mailer.checks.check import check_issue, check_workspace
    from mailer.config import load_config

    config = load_config(REPO)
    return [
        ("mailer check, sample issue (median of 20, warm)",
         median_ms(lambda: (check_issue(SAMPLE, config), check_workspace(config))), "ms", "< 150"),
    ]


def bench_suppressions(count: int = 100_000) -> list[tuple[str, float, str, str]]:
    import tempfile

    from mailer.deliver.suppressions import BOUNCE, Suppression, SuppressionList, screen_recipients

    with tempfile.TemporaryDirectory() as folder:
        state_dir = Path(folder)
        with SuppressionList.open(state_dir) as suppressions:
            suppressions.replace(Suppression(f"gone{i:06d}@example.com", BOUNCE, reason="550") for i in range(50_000))
        recipients = [f"reader{i:06d}@example.com" for i in range(count - 1000)]
        recipients += [f"GONE{i:06d}@example.com" for i in range(0, 50_000, 50)]
        elapsed = median_ms(lambda: screen_recipients(state_dir, recipients), runs=5, warmup=1)
    return [(f"screen {count:,} recipients against 50,000 suppressions", elapsed, "ms", "< 1500")]


def bench_pull(count: int = 50_000) -> list[tuple[str, float, str, str]]:
    """What a live send's pull-before-send costs: every page of a 50,000-row list from a local SendGrid."""
    import tempfile

    sys.path.insert(0, str(REPO))
    from mailer.deliver.suppressions import SuppressionList
    from mailer.environment import Environment
    from tests import fake_sendgrid

    bounces = [{"created": 1_700_000_000, "email": f"gone{i:06d}@example.com", "reason": "550", "status": "5.1.1"}
               for i in range(count)]
    fake = fake_sendgrid.FakeSendGrid(suppressions={"/v3/suppression/bounces": bounces})
    server, url = fake_sendgrid.start(fake)
    times = []
    try:
        for _ in range(5):  # each into a list of its own, the pull alone timed
            with tempfile.TemporaryDirectory() as folder, SuppressionList.open(Path(folder)) as stored:
                start = time.perf_counter()
                pulled = stored.pull(Environment(sendgrid_api_key=fake_sendgrid.API_KEY, sendgrid_api_host=url))
                times.append(time.perf_counter() - start)
            if pulled.addresses != count:
                raise SystemExit(f"the pull kept {pulled.addresses} addresses, expected {count}")
    finally:
        server.shutdown()
    elapsed = statistics.median(times)
    return [(f"pull before a send: {count:,} suppressions, local SendGrid (median of 5)", elapsed, "s", "< 1")]


@contextlib.contextmanager
def _serving(settings: str = "", **env_extra: str) -> Iterator[int]:
    """`mailer serve` on the sample workspace in a temporary folder (`settings` added to its mailer.yaml), ready:
    its port."""
    import http.client
    import os
    import shutil
    import socket
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        workspace = Path(tmp)
        for name in ("mailer.yaml", "layouts", "issues"):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, workspace / name)
        with (workspace / "mailer.yaml").open("a", encoding="utf-8") as yaml_file:
            yaml_file.write(settings)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        env = {**os.environ, "MAILER_STATE_DIR": str(workspace / "state"), "MAILER_UNSUBSCRIBE_SECRET": "bench",
               **env_extra}
        process = subprocess.Popen([sys.executable, "-m", "mailer", "serve", "--port", str(port)], cwd=workspace,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    connection.request("GET", "/healthz")
                    if connection.getresponse().status == 200:
                        break
                except OSError:
                    time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


def bench_events(batches: int = 10, size: int = 1000) -> list[tuple[str, float, str, str]]:
    """The Event Webhook into a running `mailer serve`: signed batches of 1,000 events, end to end over HTTP."""
    import http.client
    import json

    sys.path.insert(0, str(REPO))
    from tests.fake_sendgrid import EventWebhook

    signer = EventWebhook()
    with _serving(SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key) as port:
        bodies = []
        for batch in range(batches):
            events = [{"email": f"reader{batch * size + i:06d}@example.com", "event": "delivered",
                       "timestamp": int(time.time()), "sg_event_id": f"bench-{batch}-{i}",
                       "mailer_issue": "2020-12-13", "mailer_recipient": "opaque"} for i in range(size)]
            bodies.append(json.dumps(events).encode())
        start = time.perf_counter()
        for body in bodies:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/webhooks/sendgrid", body, signer.signed(body))
            answer = connection.getresponse()
            if answer.status != 200 or json.loads(answer.read())["new"] != size:
                raise SystemExit(f"the webhook answered {answer.status}")
        elapsed = time.perf_counter() - start
    return [(f"event webhook: {batches * size:,} events in batches of {size:,}", elapsed, "s", "< 2")]


def _report_workspace(folder: Path) -> Path:
    """A copy of the workspace in `folder`, tracking opens and clicks, as the report's ledger was sent."""
    import shutil

    for name in ("mailer.yaml", "layouts", "issues"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    with (folder / "mailer.yaml").open("a", encoding="utf-8") as config:
        config.write("tracking:\n  clicks: true\n  opens: true\n")
    return folder


def _report_process(workspace: Path, env: dict[str, str]) -> tuple[float, float, float, dict]:
    """One `mailer report ISSUE --format json`: wall time (s), peak resident memory (MiB, sampled every 20 ms
    as for the sends: ru_maxrss would count the bench's own memory, which a vforked child starts from), CPU
    time (s, user + system, all its threads: wait4) and the JSON it printed."""
    import json
    import tempfile

    command = [str(Path(sys.executable).parent / "mailer"), "report", "issues/2020-12-13.yaml", "--format", "json"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errors:
        wall, peak_kib, cpu, code = _measured(command, workspace, env, stdout=out, stderr=errors)
        if code != 0:
            errors.seek(0)
            raise SystemExit(f"mailer report exited {code}: {errors.read().decode()[-500:]}")
        out.seek(0)
        figures = json.load(out)
    return wall, peak_kib / 1024, cpu, figures


def _report_events(readers: int, batch: int, size: int, links: list[str]) -> list[dict]:
    """A webhook batch of opens and clicks of the report's issue, as SendGrid posts them: two opens for every
    click, a third of the opens flagged as Apple's pre-fetch, clicks on the issue's links at their positions."""
    import random

    sys.path.insert(0, str(REPO))
    from tests.bench.report_ledger import APPLE_PROXY, BROWSERS, ISSUE

    chooser = random.Random(batch)
    web = [(index, url) for index, url in enumerate(links) if url.startswith("http")]
    now = int(time.time())
    events = []
    for number in range(size):
        reader = chooser.randrange(readers)
        event = {"email": f"reader{reader:07d}@example.com", "timestamp": now - chooser.randrange(3600),
                 "sg_event_id": "".join(chooser.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                                        "-_", k=22)),
                 "sg_message_id": f"msg{reader // 1000}.filter0001.{batch}.{number}", "ip": "203.0.113.7",
                 "mailer_issue": ISSUE, "mailer_batch": f"bench:{reader // 1000}",
                 "mailer_recipient": f"r{reader:07d}"}
        if number % 3 == 2:
            index, url = chooser.choice(web)
            event.update(event="click", url=url, url_offset={"index": index, "type": "html"},
                         useragent=chooser.choice(BROWSERS))
        else:
            machine = number % 9 == 0
            event.update(event="open", sg_machine_open=machine,
                         useragent=APPLE_PROXY if machine else chooser.choice(BROWSERS))
        events.append(event)
    return events


def bench_report(readers: int = 1_000_000, batches: int = 100, size: int = 1000,
                 rounds: int = 3) -> list[tuple[str, float, str, str]]:
    """`mailer report` of an issue sent to a million readers with 3,000,000 events (tests/bench/report_ledger.py),
    then the Event Webhook into a running `mailer serve` on the same state folder while a report of that
    issue is read again and again in another process."""
    import http.client
    import json
    import os
    import tempfile
    import threading

    sys.path.insert(0, str(REPO))
    from tests.bench.report_ledger import expected, sample_links
    from tests.fake_sendgrid import EventWebhook

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workspace = _report_workspace(Path(tmp))
        state = workspace / "state"
        # In a process of its own: the build's page cache (256 MiB) is not this process's memory afterwards.
        started = time.perf_counter()
        subprocess.run([sys.executable, str(Path(__file__).with_name("report_ledger.py")), str(state), str(readers)],
                       check=True, stdout=subprocess.DEVNULL)
        built = time.perf_counter() - started
        os.sync()  # its 1.2 GB on the disk before the timing: the kernel's writeback otherwise runs beside the report
        rows.append((f"  (its ledger: {readers:,} recipients and {expected(readers)['events']:,} events, made by SQL)",
                     built, "s", ""))
        env = {**os.environ, "MAILER_STATE_DIR": str(state)}
        runs = [_report_process(workspace, env) for _ in range(3)]
        want = expected(readers)
        for _, _, _, figures in runs:
            found = {"recipients": figures["recipients"], "delivered": figures["delivered"],
                     "opens_human": figures["opens"]["human"], "opens_machine": figures["opens"]["machine"],
                     "clicks_human_unique": figures["clicks"]["human_unique"],
                     "clicks_scanner": figures["clicks"]["scanner"], "complaints": figures["complaints"]}
            if any(found[key] != want[key] for key in found):
                raise SystemExit(f"mailer report said {found}, expected {want}")
        walls = [wall for wall, _, _, _ in runs]
        rows.insert(0, (f"mailer report ISSUE --format json: {readers:,} recipients, {want['events']:,} events "
                        f"(whole process, median of 3: {_runs(walls)})", statistics.median(walls), "s", "< 5"))
        rows.insert(1, ("  its peak memory", max(peak for _, peak, _, _ in runs), "MiB", "< 300"))
        rows.insert(2, ("  its CPU time, user + system (two threads: it takes both cores)",
                        statistics.median(cpu for _, _, cpu, _ in runs), "s", ""))

        # The webhook, signed batches of opens and clicks, while reports of the issue are read meanwhile: three
        # rounds, the median taken (on this shared machine one round swung between 3,800 and 10,400 events/s
        # with the same code, as other work came and went).
        signer = EventWebhook()
        links = sample_links()
        reading, report_walls, rates = threading.Event(), [], []

        def read_reports() -> None:
            while not reading.is_set():
                report_walls.append(_report_process(workspace, env)[0])

        with _serving(SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key, MAILER_STATE_DIR=str(state)) as port:
            reader = threading.Thread(target=read_reports)
            reader.start()
            try:
                for round_ in range(rounds):
                    bodies = [json.dumps(_report_events(readers, round_ * batches + batch, size, links)).encode()
                              for batch in range(batches)]
                    time.sleep(1.0)  # a report under way: its start and the issue's build are behind it
                    start = time.perf_counter()
                    for body in bodies:
                        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                        connection.request("POST", "/webhooks/sendgrid", body, signer.signed(body))
                        answer = connection.getresponse()
                        if answer.status != 200 or json.loads(answer.read())["new"] != size:
                            raise SystemExit(f"the webhook answered {answer.status}")
                        connection.close()
                    rates.append(batches * size / (time.perf_counter() - start))
            finally:
                reading.set()
                reader.join()
        if not report_walls:
            raise SystemExit("no report was read during the webhook's batches: no figure under load")
        rows.append((f"event webhook: {batches * size:,} opens and clicks (batches of {size:,}) into that ledger, "
                     f"its report read in a loop meanwhile ({len(report_walls)} reports, "
                     f"{min(report_walls):.1f}-{max(report_walls):.1f} s), median of {rounds}: "
                     f"{', '.join(f'{rate:,.0f}' for rate in rates)}", statistics.median(rates), "ev/s", ">= 5000"))
    return rows


def bench_serve(burst_size: int = 500) -> list[tuple[str, float, str, str]]:
    """`mailer serve` itself: latency on a kept-alive connection, requests/s, and bursts of one-click requests.

    The load comes from one Python process on the same two cores (tests/web/serve_load.py): the figures
    are what the service gives with a client competing for the CPU, a floor for a real server.
    """
    import asyncio

    sys.path.insert(0, str(REPO))
    from mailer.deliver.message import unsubscribe_token
    from mailer.web.server import raise_open_files_limit
    from tests.web import serve_load

    raise_open_files_limit()
    list_id = "The NLP Cypher <the-nlp-cypher.newsletter.example.com>"
    health = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    async def latency(port: int, count: int = 500) -> float:
        reader, writer = await asyncio.open_connection(serve_load.HOST, port)
        times = []
        for _ in range(count):
            start = time.perf_counter()
            writer.write(health)
            await serve_load.read_answer(reader)
            times.append(time.perf_counter() - start)
        writer.close()
        return statistics.median(times) * 1000

    async def rate(port: int, connections: int = 8, each: int = 400) -> float:
        async def client() -> None:
            reader, writer = await asyncio.open_connection(serve_load.HOST, port)
            for _ in range(each):
                writer.write(health)
                if (await serve_load.read_answer(reader))[0] != 200:
                    raise SystemExit("mailer serve did not answer 200 to /healthz")
            writer.close()
        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        return connections * each / (time.perf_counter() - start)

    async def one_clicks(port: int, first: int) -> float:
        requests = [serve_load.one_click_request(
            f"/unsubscribe?token={unsubscribe_token(f'reader{n}@example.com', list_id, b'bench')}")
            for n in range(first, first + burst_size)]
        answers = await serve_load.burst(port, requests, timeout=60)
        if any(answer.status != 200 for answer in answers):
            raise SystemExit(f"mailer serve refused {sum(a.status != 200 for a in answers)} one-click requests")
        return serve_load.percentile([answer.seconds for answer in answers], 0.99)

    async def one_clicks_under_attack(port: int) -> float:
        idle = await serve_load.open_clients(port, 1000)
        slow = await serve_load.open_clients(port, 200, serve_load.SLOW_BODY.format(target="/unsubscribe").encode())
        try:
            return await one_clicks(port, burst_size)
        finally:
            serve_load.close_all(idle + slow)

    with _serving() as port:
        rows = [("mailer serve: GET on a kept-alive connection (median of 500)", asyncio.run(latency(port)), "ms",
                 "< 5"),
                ("mailer serve: requests/s, 8 kept-alive connections", asyncio.run(rate(port)), "req/s", "> 1000"),
                (f"mailer serve: {burst_size} one-click unsubscribes at once, p99", asyncio.run(one_clicks(port, 0)),
                 "s", "< 2"),
                ("  the same while 1,000 idle and 200 slow clients hold connections, p99",
                 asyncio.run(one_clicks_under_attack(port)), "s", "< 2")]
    return rows


def bench_signup(count: int = 2000, clients: int = 8, during: int = 25) -> list[tuple[str, float, str, str]]:
    """`POST /subscribe` on loopback: sign-ups a second and their p99, `clients` at a time, each a new address
    and a new connection (the confirmation emails go to the local SendGrid stand-in meanwhile)."""
    import asyncio
    import json

    sys.path.insert(0, str(REPO))
    from mailer.audience import signup as rules
    from tests import fake_sendgrid
    from tests.web import serve_load

    list_id = "The NLP Cypher <the-nlp-cypher.newsletter.example.com>"
    key = rules.signup_key("bench")
    settings = ("signup:\n  description: Weekly.\n  consent: I want it.\n  consent_version: v1\n"
                "  per_ip_hourly: 1000\n  trusted_proxies: [127.0.0.1]\n")

    def request(n: int, stamp: str) -> bytes:
        body = json.dumps({"email": f"reader{n}@example.com", "consent": True, "stamp": stamp}).encode()
        return (f"POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"X-Forwarded-For: 198.51.100.{n % 200}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode() + body

    async def sign_up_seconds(port: int, first: int, many: int) -> list[float]:
        stamp = rules.form_stamp(key, list_id, at=time.time() - 3)
        gate = asyncio.Semaphore(clients)

        async def one(n: int) -> serve_load.Answer:
            async with gate:
                return await serve_load.ask(port, request(n, stamp), timeout=60)

        answers = await asyncio.gather(*(one(n) for n in range(first, first + many)))
        if any(answer.status != 202 for answer in answers):
            raise SystemExit(f"mailer serve refused {sum(a.status != 202 for a in answers)} sign-ups")
        return [answer.seconds for answer in answers]

    async def sign_ups(port: int) -> tuple[float, float]:
        start = time.perf_counter()
        seconds = await sign_up_seconds(port, 0, count)
        return count / (time.perf_counter() - start), serve_load.percentile(seconds, 0.99) * 1000

    import os
    import tempfile

    fake = fake_sendgrid.FakeSendGrid(keep_bodies=False)
    server, url = fake_sendgrid.start(fake)
    rows = []
    try:
        with _serving(settings, SENDGRID_API_KEY=fake_sendgrid.API_KEY, SENDGRID_API_HOST=url) as port:
            rate, p99 = asyncio.run(sign_ups(port))
            rows += [(f"mailer serve: POST /subscribe, {count:,} new addresses, {clients} at a time", rate,
                      "sign-ups/s", "> 200"), ("  the same, p99", p99, "ms", "< 100")]
            # Again while a live send of 100,000 runs on the same machine (its own workspace, the same
            # SendGrid stand-in): the sign-ups start once the send is under way, and must end before it.
            # The send's own SendGrid stand-in, in a process of its own: in this one, parsing its requests
            # under the interpreter lock would slow the sign-ups' client, not the service.
            send_server = subprocess.Popen(
                [sys.executable, "-c", "import sys, time\nfrom tests import fake_sendgrid\n"
                 "fake = fake_sendgrid.FakeSendGrid(keep_bodies=False)\nserver, url = fake_sendgrid.start(fake)\n"
                 "print(url, flush=True)\nsys.stdin.read()\nprint(len(fake.accepted), flush=True)"],
                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            send_url = send_server.stdout.readline().strip()
            with tempfile.TemporaryDirectory() as tmp:
                workspace, csv = _bench_workspace(Path(tmp), 100_000)
                env = {**os.environ, "MAILER_STATE_DIR": str(workspace / "state"),
                       "SENDGRID_API_KEY": fake_sendgrid.API_KEY, "SENDGRID_API_HOST": send_url,
                       "MAILER_UNSUBSCRIBE_SECRET": "bench"}
                sending = subprocess.Popen(
                    [str(Path(sys.executable).parent / "mailer"), "send", "issues/2020-12-13.yaml", "--subscribers",
                     str(csv), "--live", "--yes", "--force"], cwd=workspace, env=env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
                try:
                    time.sleep(0.5)  # its start: the interpreter, the check, the list
                    started, seconds, done = time.perf_counter(), [], count
                    while sending.poll() is None and done < count + 10 * during:  # in rounds, while it lasts
                        round_seconds = asyncio.run(sign_up_seconds(port, done, during))
                        if sending.poll() is None:  # only rounds that ended within the send are counted
                            seconds += round_seconds
                            done += during
                    elapsed = time.perf_counter() - started
                finally:
                    sending.wait(timeout=300)
                    sent = int(send_server.communicate("", timeout=30)[0].strip() or 0)
            if sent != 100_000:
                raise SystemExit(f"the live send delivered {sent:,} messages during the sign-ups, expected 100,000")
            if not seconds:
                raise SystemExit(f"the live send ended before {during} sign-ups did: no figure under load")
            rows += [(f"  {len(seconds):,} more while a live send of 100,000 runs (rounds of {during})",
                      len(seconds) / elapsed, "sign-ups/s", "> 200"),
                     ("  the same, p99", serve_load.percentile(seconds, 0.99) * 1000, "ms", "< 100")]
    finally:
        server.shutdown()
        server.server_close()
    return rows


def bench_startup() -> tuple[str, float, str, str]:
    command = [str(Path(sys.executable).parent / "mailer"), "--help"]
    def run() -> None:
        subprocess.run(command, check=True, capture_output=True)
    return ("`mailer --help` start-up (median of 10)", median_ms(run, runs=10, warmup=2), "ms", "< 300")


def _send_process(args: list[str], workspace: Path, env: dict[str, str], *,
                  command: str = "send") -> tuple[float, float]:
    """Wall time (s) and peak memory (MiB) of one `mailer send` (or another `command`): the resident memory
    of the process and every process it starts (the worker processes), summed, sampled every 20 ms."""

    command_line = [str(Path(sys.executable).parent / "mailer"), command, *args]
    wall, peak_kib, _, _ = _measured(command_line, workspace, env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
    return wall, peak_kib / 1024


def _measured(command_line: list[str], workspace: Path, env: dict[str, str], *, stdout: Any,
              stderr: Any) -> tuple[float, int, float, int]:
    """One process: wall time (s), peak resident memory of it and every process it starts, summed and sampled
    every 20 ms (KiB: ru_maxrss would count the bench's own memory, which a vforked child starts from), CPU
    time (s, user + system, all its threads: wait4) and its exit code."""
    import os
    import threading

    start = time.perf_counter()
    process = subprocess.Popen(command_line, cwd=workspace, env=env, stdout=stdout, stderr=stderr)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kib(process.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, peak, usage.ru_utime + usage.ru_stime, process.returncode


def _tree_rss_kib(pid: int) -> int:
    """VmRSS of `pid` and all its descendants (Linux /proc), in KiB; 0 for a process already gone."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status", encoding="ascii") as status:
                total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def _bench_workspace(folder: Path, count: int) -> tuple[Path, Path]:
    """A copy of the workspace in `folder`, and a subscribers CSV of `count` readers in it."""
    import shutil

    for name in ("mailer.yaml", "layouts", "issues"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    csv = folder / "subscribers.csv"
    with csv.open("w", encoding="utf-8") as out:
        out.write("email,first_name,last_name,status,tags\n")
        for i in range(count):
            out.write(f"reader{i:07d}@example.com,Reader {i},Bench,subscribed,weekly\n")
    return folder, csv


def bench_store() -> list[tuple[str, float, str, str]]:
    """The subscriber store: `mailer subscribers import` of 100,000 and 1,000,000 rows (time, peak memory of
    the whole process tree), and a dry run of a million from the store beside the same list as a CSV."""
    import os
    import tempfile

    rows = []
    peaks = {}
    for count in (100_000, 1_000_000):
        with tempfile.TemporaryDirectory() as tmp:
            workspace, csv = _bench_workspace(Path(tmp), count)
            env = {**os.environ, "MAILER_STATE_DIR": str(workspace / "state")}
            wall, peaks[count] = _send_process(["import", csv.name], workspace, env, command="subscribers")
            rows.append((f"mailer subscribers import, {count:,} rows (whole process)", wall, "s",
                         "< 30" if count == 1_000_000 else ""))
            rows.append(("  its peak memory, all processes", peaks[count], "MiB", ""))
            if count == 1_000_000:
                from_store, _ = _send_process([str(SAMPLE.relative_to(REPO))], workspace, env)
                from_csv, _ = _send_process([str(SAMPLE.relative_to(REPO)), "--subscribers", csv.name], workspace,
                                            env)
                rows.append(("  1,000,000 ÷ 100,000 in memory", peaks[count] / peaks[100_000], "×", "< 1.25"))
                rows.append(("dry run, 1,000,000 confirmed readers from the store (whole process)", from_store, "s",
                             ""))
                rows.append(("  the same list as a CSV, never seen before", from_csv, "s", ""))
                rows.append(("  the store ÷ the CSV", from_store / from_csv, "×", "< 1.5"))
    return rows


def bench_send(count: int = 100_000, *, million: bool = False,
               small_peak: float | None = None) -> list[tuple[str, float, str, str]]:
    """Dry run and live send of `count` subscribers to a local SendGrid-like server, whole process tree.

    At 100,000 the live send is also set against the transport's floor; at 1,000,000 (`million`) the
    dry run's memory is set against the 100,000 one (`small_peak`): a list ten times longer should not
    take much more memory.
    """
    import os
    import shutil
    import tempfile

    sys.path.insert(0, str(REPO))
    from tests import fake_sendgrid

    targets = ({"dry": "< 12", "dry_memory": "< 250", "live": "< 60"} if million else
               {"dry": "< 3", "dry_memory": "< 200", "live": "< 10"})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workspace, csv = _bench_workspace(Path(tmp), count)
        fake = fake_sendgrid.FakeSendGrid(keep_bodies=False)
        server, url = fake_sendgrid.start(fake)
        env = {**os.environ, "MAILER_STATE_DIR": str(workspace / "state"), "SENDGRID_API_KEY": fake_sendgrid.API_KEY,
               "SENDGRID_API_HOST": url, "MAILER_UNSUBSCRIBE_SECRET": "bench"}
        try:
            if million:
                # `mailer check` of the list alone, in a state folder of its own (it keeps the list's checked
                # copy, which the dry run below must not find): the check in worker processes.
                checked, _ = _send_process(["issues/2020-12-13.yaml", "--subscribers", str(csv)], workspace,
                                           {**env, "MAILER_STATE_DIR": str(workspace / "state-check")},
                                           command="check")
                rows.append(("mailer check --subscribers, 1,000,000 rows (whole process, the issue's check too)",
                             checked, "s", ""))
            wall, peak = _send_process(["issues/2020-12-13.yaml", "--subscribers", str(csv)], workspace, env)
            rows.append((f"dry run, {count:,} subscribers (whole process)", wall, "s", targets["dry"]))
            rows.append((f"dry run, {count:,}: peak memory, all processes", peak, "MiB", targets["dry_memory"]))
            if million and small_peak:
                rows.append(("  1,000,000 ÷ 100,000 in memory (flat: within 25 %)", peak / small_peak, "×", "< 1.25"))
            if million:
                again, _ = _send_process(["issues/2020-12-13.yaml", "--subscribers", str(csv)], workspace, env)
                rows.append(("  the same dry run again, the list unchanged (its checked copy read back)", again, "s",
                             ""))
            shutil.rmtree(workspace / "state" / "outbox", ignore_errors=True)  # 0.8 GB at a million
            live = ["issues/2020-12-13.yaml", "--subscribers", str(csv), "--live", "--yes", "--force"]
            # At 100,000, three live sends, each followed by the floor: the figures are their medians, the
            # ratio the median of each send's against the floor measured right after it (a shared machine's
            # pace drifts within a minute, by a third on 2026-12-06).
            sends = []
            for attempt in range(1 if million else 3):
                if attempt:  # the same first send again: a new ledger, the list's checked copy kept
                    for ledger in (workspace / "state").glob("ledger.sqlite3*"):
                        ledger.unlink()
                    fake.accepted.clear()
                wall, peak = _send_process(live, workspace, env)
                if len(fake.accepted) != count or len(set(fake.accepted)) != count:
                    raise SystemExit(f"the live send delivered {len(fake.accepted)} messages, expected {count}")
                sends.append((wall, peak, None if million else _posting_floor(workspace, csv, url)))
            walls = [wall for wall, _, _ in sends]
            runs = "" if million else f" (median of {_runs(walls)})"
            rows.append((f"live send, {count:,} to a local SendGrid-like server{runs}", statistics.median(walls), "s",
                         targets["live"]))
            rows.append((f"live send, {count:,}: peak memory, all processes", max(peak for _, peak, _ in sends), "MiB",
                         ""))
            if not million:
                fake.accepted.clear()  # of the floor's requests too
                rerun, _ = _send_process(live, workspace, env)
                if fake.accepted:
                    raise SystemExit("the rerun of a finished send sent something")
                rows.append(("  the same command again, nothing left to send", rerun, "s", "< 0.5"))
                floors = [floor for _, _, floor in sends]
                ratios = [wall / floor for wall, _, floor in sends]
                rows.append((f"  floor: the same {count // 1000} request bodies, posted by 4 plain threads, each "
                             f"right after a live send (median of {_runs(floors)})",
                             statistics.median(floors), "s", ""))
                rows.append((f"  live send ÷ the floor after it (median of {_runs(ratios)}; "
                             "the rest is mailer's own work)", statistics.median(ratios), "×", "< 1.5"))
        finally:
            server.shutdown()
    return rows


def _runs(values: list[float]) -> str:
    """The runs a median was taken from, for its row: '2.09, 2.30, 2.33'."""
    return ", ".join(f"{value:.2f}" for value in values)


def bench_cards(links: int = 40, latency: float = 0.1) -> list[tuple[str, float, str, str]]:
    """`mailer cards` on an issue of 40 links, against a local server answering each page after 100 ms."""
    import os
    import shutil
    import tempfile

    sys.path.insert(0, str(REPO))
    from tests.pages_server import start_pages_server

    server = start_pages_server(latency=latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workspace = Path(tmp)
            for name in ("mailer.yaml", "layouts"):
                source = REPO / name
                (shutil.copytree if source.is_dir() else shutil.copy)(source, workspace / name)
            issue = workspace / "issues" / "2026-12-06.yaml"
            issue.parent.mkdir()
            cards = "".join(f"      - url: {server.url(f'/page/{n}')}\n" for n in range(links))
            text = (f'subject: "Bench"\ndate: 2026-12-06\npreheader: "A preheader for the benchmark issue"\n'
                    f"sections:\n  - heading: Links\n    cards:\n{cards}")
            issue.write_text(text, encoding="utf-8")
            env = {**os.environ, "MAILER_STATE_DIR": str(workspace / "state")}
            command = [str(Path(sys.executable).parent / "mailer"), "cards", str(issue)]

            def run() -> float:
                start = time.perf_counter()
                subprocess.run(command, cwd=workspace, env=env, check=True, capture_output=True)
                return time.perf_counter() - start

            cold = run()
            if issue.read_text(encoding="utf-8").count("title: Page ") != links:
                raise SystemExit("mailer cards did not fill every card")
            issue.write_text(text, encoding="utf-8")
            warm = run()
    finally:
        server.shutdown()
        server.server_close()
    return [(f"mailer cards, {links} links, cold ({latency * 1000:.0f} ms a page, whole process)", cold, "s", "< 2"),
            (f"mailer cards, {links} links, warm cache (whole process)", warm, "s", "< 1")]


def _posting_floor(workspace: Path, csv: Path, url: str, threads: int = 4) -> float:
    """Seconds for `threads` plain threads to post a live send's request bodies, made beforehand: the
    transport's pace on this machine, in this run, against which the live send is measured."""
    import http.client
    import queue
    import threading
    from urllib.parse import urlsplit

    from mailer.audience.subscribers import read_subscribers
    from mailer.compose.build import build_issue
    from mailer.config import load_config
    from mailer.deliver.backends import Recipient
    from mailer.deliver.backends.sendgrid import SendGridOptions, request_body
    from mailer.deliver.message import Personaliser
    from tests import fake_sendgrid

    config = load_config(workspace)
    rendered = build_issue(workspace / "issues" / "2020-12-13.yaml", config)
    personal = Personaliser(rendered, config, b"bench")
    readers = read_subscribers(csv).subscribers
    bodies: queue.Queue[bytes] = queue.Queue()
    for start in range(0, len(readers), 1000):
        recipients = [Recipient(s, personal(s)) for s in readers[start:start + 1000]]
        bodies.put(request_body(rendered, config, recipients, batch_id="floor", options=SendGridOptions()).encode())
    target = urlsplit(url)
    headers = {"Authorization": f"Bearer {fake_sendgrid.API_KEY}", "Content-Type": "application/json"}

    def post() -> None:
        while True:
            try:
                body = bodies.get_nowait()
            except queue.Empty:
                return
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            connection.request("POST", "/v3/mail/send", body, headers)
            if connection.getresponse().status != 202:
                raise SystemExit("the floor's request was refused")
            connection.close()

    workers = [threading.Thread(target=post) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def meets(value: float, target: str) -> str:
    if not target:
        return ""
    bound = float(target.split()[-1])
    if target.startswith(">="):
        return "yes" if value >= bound else "NO"
    return "yes" if (value > bound if target.startswith(">") else value < bound) else "NO"


MAILMERGE = "mailmerge==2.3.0"


def _mailmerge() -> Path | None:
    """mailmerge in the bench's own environment (.bench/mailmerge), never a dependency of mailer."""
    venv = REPO / ".bench" / "mailmerge"
    program = venv / "bin" / "mailmerge"
    if not program.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        installed = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                                    MAILMERGE], capture_output=True, text=True)
        if installed.returncode != 0:
            print(f"note: could not install {MAILMERGE}: {installed.stderr.strip()[-200:]}", file=sys.stderr)
            return None
    return program


def bench_smtp(count: int = 2000) -> list[tuple[str, float, str, str]]:
    """`mailer send` over SMTP against mailmerge, both to the same local sink (smtp_sink.py --bare), in
    this run; then mailer once more to aiosmtpd, the sink the tests use, which is the limit there."""
    import os
    import shutil
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workspace, csv = _bench_workspace(Path(tmp), count)
        command = [str(Path(sys.executable).parent / "mailer"), "send", "issues/2020-12-13.yaml",
                   "--subscribers", str(csv), "--backend", "smtp", "--live", "--yes", "--force"]

        def rate(port: int, *extra: str) -> float:
            shutil.rmtree(workspace / "state", ignore_errors=True)  # the same send again, from the start
            env = {**os.environ, "MAILER_STATE_DIR": str(workspace / "state"),
                   "MAILER_SMTP_URL": f"smtp+insecure://127.0.0.1:{port}", "MAILER_UNSUBSCRIBE_SECRET": "bench"}
            start = time.perf_counter()
            subprocess.run([*command, *extra], cwd=workspace, env=env, check=True, capture_output=True)
            return count / (time.perf_counter() - start)

        with _smtp_sink("--bare") as port:
            one = rate(port)
            rows.append((f"SMTP, {count:,} messages to a local sink, one connection (whole process)", one, "msg/s",
                         ""))
            rows.append(("  the same over 4 connections (--workers 4)", rate(port, "--workers", "4"), "msg/s",
                         "> 400"))
            program = _mailmerge()
            if program is not None:
                theirs = _run_mailmerge(program, workspace, port, count)
                rows.append((f"  {MAILMERGE}, the same {count:,} to the same sink", theirs, "msg/s", ""))
                rows.append(("  mailer's rate, one connection, ÷ mailmerge's", one / theirs, "×", "> 4"))
        with _smtp_sink() as port:
            rows.append(("  mailer over 4 connections to aiosmtpd (the tests' server; the sink is the limit)",
                         rate(port, "--workers", "4"), "msg/s", ""))
    return rows


@contextlib.contextmanager
def _smtp_sink(*options: str) -> Iterator[int]:
    """A sink (smtp_sink.py) running as its own process: its port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = subprocess.Popen([sys.executable, str(Path(__file__).with_name("smtp_sink.py")), str(port), *options],
                            stdout=subprocess.PIPE, text=True)
    try:
        if sink.stdout is None or sink.stdout.readline().strip() != "ready":
            raise SystemExit("the SMTP sink did not start")
        yield port
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def _run_mailmerge(program: Path, workspace: Path, port: int, count: int) -> float:
    """mailmerge sending the same email (text and HTML parts, the name filled in) to the same list."""
    from mailer.compose.build import build_issue
    from mailer.config import load_config

    rendered = build_issue(workspace / "issues" / "2020-12-13.yaml", load_config(workspace))
    fill = {"-first_name-": "{{first_name}}", "-email-": "{{email}}", "-unsubscribe_url-": "https://example.com/u",
            "-web_url-": "https://example.com/w", "-first_name_url-": "{{first_name}}", "-email_url-": "{{email}}"}

    def template(text: str) -> str:
        for tag, value in fill.items():
            text = text.replace(tag, value)
        return "{% raw %}" + text.replace("{{first_name}}", "{% endraw %}{{first_name}}{% raw %}").replace(
            "{{email}}", "{% endraw %}{{email}}{% raw %}") + "{% endraw %}"

    folder = workspace / "mailmerge"
    folder.mkdir()
    (folder / "mailmerge_template.txt").write_text(
        "TO: {{email}}\nSUBJECT: " + rendered.subject + "\nFROM: The NLP Cypher <newsletter@example.com>\n"
        "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"mailmerge-bench\"\n\n"
        "--mailmerge-bench\nContent-Type: text/plain; charset=utf-8\n\n" + template(rendered.text) +
        "\n--mailmerge-bench\nContent-Type: text/html; charset=utf-8\n\n" + template(rendered.html) +
        "\n--mailmerge-bench--\n", encoding="utf-8")
    with (folder / "mailmerge_database.csv").open("w", encoding="utf-8") as out:
        out.write("email,first_name\n")
        for i in range(count):
            out.write(f"reader{i:05d}@example.com,Reader {i}\n")
    (folder / "mailmerge_server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nsecurity = Never\nratelimit = 0\n", encoding="utf-8")
    start = time.perf_counter()
    subprocess.run([str(program), "--no-dry-run", "--no-limit", "--output-format", "raw"], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return count / (time.perf_counter() - start)


def main() -> int:
    # mailer's bytecode written first, as installing a package does: with PYTHONDONTWRITEBYTECODE set (this
    # machine sets it) an editable install's modules were compiled again by every command, 70-140 ms of
    # each start on 2026-12-06, which no user who installed mailer pays.
    import compileall

    compileall.compile_dir(REPO / "mailer", quiet=1)
    rows = [*bench_build(), *bench_check(), bench_startup(), *bench_suppressions(), *bench_pull(),
            *bench_events(), *bench_report(), *bench_serve(), *bench_signup(), *bench_cards(), *bench_smtp()]
    sent = bench_send()
    small_peak = next(value for name, value, unit, _ in sent if name.startswith("dry run") and unit == "MiB")
    rows += [*sent, *bench_send(1_000_000, million=True, small_peak=small_peak), *bench_store()]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>9}  {'unit':<5}  {'target':<7}  met")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 5}  {'-' * 7}  ---")
    failed = False
    for name, value, unit, target in rows:
        verdict = meets(value, target)
        failed |= verdict == "NO"
        print(f"{name:<{width}}  {value:>9.1f}  {unit:<5}  {target:<7}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""`mailer doctor` against a real DNS server on loopback (tests/dns_server.py) serving good and broken zones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailer.checks.dns import Resolver, parse_dns_server
from mailer.checks.doctor import SendGridAccess, run_doctor, sending_of
from mailer.config import load_config
from mailer.errors import ConfigError
from tests.dns_server import (
    Zone,
    dkim_record,
    good_zone,
    short_public_key,
    silent_server,
    split,
    start_dns,
)
from tests.fake_sendgrid import API_KEY, authenticated_domain

MAILER = str(Path(sys.executable).parent / "mailer")


def doctor(workspace: Path, address: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`mailer doctor` as the editor runs it: a process of its own, its lookups going to the server at `address`."""
    environment = {**os.environ, "MAILER_DNS": address, "COLUMNS": "200", **env}
    return subprocess.run([MAILER, "doctor", *args], cwd=workspace, env=environment, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def rows_of(workspace: Path, zone: Zone, *args: str) -> dict[str, dict]:
    server = start_dns(zone)
    try:
        result = doctor(workspace, server.address, "--format", "json", *args)
    finally:
        server.stop()
    assert "Traceback" not in result.stderr, result.stderr
    return {row["check"]: {**row, "exit": result.returncode} for row in json.loads(result.stdout)["rows"]}


def test_a_good_zone_passes_every_row_and_exits_0(workspace: Path) -> None:
    server = start_dns(good_zone())
    try:
        result = doctor(workspace, server.address, "--return-path", "em1234.example.com")
        as_json = doctor(workspace, server.address, "--return-path", "em1234.example.com", "--format", "json")
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✗" not in result.stdout and "0 failed, 0 warnings, 0 not checked" in result.stdout
    rows = json.loads(as_json.stdout)["rows"]
    assert {row["status"] for row in rows} == {"pass", "info"}
    statuses = {row["check"]: row["status"] for row in rows}
    for check in ("spf.record", "spf.lookups", "spf.backend", "dkim.s1", "dkim.s2", "dmarc.record", "dmarc.policy",
                  "dmarc.reports", "dmarc.alignment", "mx.replies", "bulk.authentication", "bulk.dmarc",
                  "bulk.alignment", "bulk.one-click"):
        assert statuses[check] == "pass", check
    assert statuses["bimi"] == "info" and statuses["bulk.complaints"] == "info"  # no events in a fresh ledger
    dkim = next(row for row in rows if row["check"] == "dkim.s1")
    assert "2048-bit RSA key" in dkim["detail"] and "s1.domainkey.u1234.wl.sendgrid.net" in dkim["detail"]


def test_a_broken_zone_names_each_problem_and_its_fix_and_exits_1(workspace: Path) -> None:
    zone = Zone()
    zone.txt("example.com", "v=spf1 include:mailgun.org ~all").txt("example.com", "v=spf1 include:sendgrid.net -all")
    zone.txt("s1._domainkey.example.com", dkim_record(short_public_key(512)))  # s2: none at all
    zone.txt("_dmarc.example.com.example.com", "v=DMARC1; p=none")  # typed in full into a form that adds the domain
    zone.a("www.example.com", "192.0.2.1")  # the domain exists, with no MX
    server = start_dns(zone)
    try:
        result = doctor(workspace, server.address)
    finally:
        server.stop()
    assert result.returncode == 1
    out = " ".join(result.stdout.split())
    assert "has 2 SPF records" in out and "merge them into one TXT record" in out
    assert "a 512-bit RSA key" in out and "make a 2048-bit key" in out
    assert "no DKIM key at s2._domainkey.example.com" in out and "Settings > Sender Authentication" in out
    assert "no DMARC record at _dmarc.example.com" in out
    assert "the record is at _dmarc.example.com.example.com" in out and "name it `_dmarc`" in out
    assert "example.com has no MX record" in out
    assert "✗" in result.stdout and "fix the rows marked ✗" in out


def test_eleven_includes_are_over_the_lookup_limit(workspace: Path) -> None:
    zone = good_zone()
    zone.records.pop("example.com")
    zone.txt("example.com", "v=spf1 include:sendgrid.net include:spf1.example.net ~all")
    for index in range(1, 11):  # a chain: each include one more lookup, 11 in all
        following = f" include:spf{index + 1}.example.net" if index < 10 else ""
        zone.txt(f"spf{index}.example.net", f"v=spf1 ip4:192.0.2.{index}{following} ~all")
    rows = rows_of(workspace, zone, "--return-path", "em1234.example.com")
    assert rows["spf.lookups"]["status"] == "fail" and "11 DNS lookups" in rows["spf.lookups"]["detail"]
    assert "remove the include: of services you no longer send with" in rows["spf.lookups"]["fix"]
    assert rows["spf.lookups"]["exit"] == 1


def test_a_record_split_into_strings_is_read_joined(workspace: Path) -> None:
    zone = good_zone()
    zone.records.pop("example.com")
    zone.txt("example.com", "v=spf1 include:sendg", "rid.net ~all").mx("example.com", "mx.example.com")
    rows = rows_of(workspace, zone, "--return-path", "em1234.example.com")
    assert rows["spf.record"]["status"] == "pass" and "include:sendgrid.net ~all" in rows["spf.record"]["detail"]
    assert rows["spf.backend"]["status"] == "pass"


def test_p_none_and_no_reports_are_warnings_not_failures(workspace: Path) -> None:
    zone = good_zone()
    zone.records.pop("_dmarc.example.com")
    zone.txt("_dmarc.example.com", "v=DMARC1; p=none")
    rows = rows_of(workspace, zone, "--return-path", "em1234.example.com")
    assert rows["dmarc.policy"]["status"] == "warn" and "p=quarantine" in rows["dmarc.policy"]["fix"]
    assert rows["dmarc.reports"]["status"] == "warn" and "rua=mailto:dmarc@example.com" in rows["dmarc.reports"]["fix"]
    assert rows["bulk.dmarc"]["status"] == "pass"  # p=none is what the bulk-sender rules ask for
    assert rows["dmarc.policy"]["exit"] == 0


def test_nxdomain_and_no_record_of_that_type_are_told_apart() -> None:
    zone = Zone().a("example.com", "192.0.2.1")
    server = start_dns(zone)
    try:
        resolver = Resolver(parse_dns_server(server.address), timeout=1)
        assert resolver.txt("example.com").status == "nodata"
        assert resolver.txt("missing.example.com").status == "nxdomain"
        assert resolver.lookup("example.com", "A").records == ("192.0.2.1",)
    finally:
        server.stop()


def test_servfail_and_a_name_that_never_answers_are_not_checked_not_failed(workspace: Path) -> None:
    zone = good_zone()
    zone.servfail.add("_dmarc.example.com")
    zone.silent.add("default._bimi.example.com")
    rows = rows_of(workspace, zone, "--return-path", "em1234.example.com", "--timeout", "0.5")
    assert rows["dmarc.record"]["status"] == "unknown" and "SERVFAIL" in rows["dmarc.record"]["detail"]
    assert "no answer for default._bimi.example.com TXT in time" in rows["bimi"]["detail"]
    assert rows["spf.record"]["status"] == "pass"
    assert rows["dmarc.record"]["exit"] == 3  # nothing failed, but not everything could be checked


def test_no_dns_at_all_is_a_note_per_row_and_exit_3_quickly(workspace: Path) -> None:
    sock, address = silent_server()
    try:
        started = time.monotonic()
        result = doctor(workspace, address, "--timeout", "0.5")
        took = time.monotonic() - started
    finally:
        sock.close()
    assert result.returncode == 3, result.stdout + result.stderr
    assert "no answer for example.com TXT in time" in " ".join(result.stdout.split())
    assert took < 10  # two lookups time out; the rest are not asked


def test_hostile_answers_a_huge_txt_and_a_cname_loop(workspace: Path) -> None:
    zone = good_zone()
    zone.txt("example.com", *(["x" * 255] * 240))  # 60 KB of TXT beside the SPF record: truncated over UDP, TCP
    zone.records.pop("s1._domainkey.example.com")
    zone.cname("s1._domainkey.example.com", "loop.example.com").cname("loop.example.com", "s1._domainkey.example.com")
    rows = rows_of(workspace, zone, "--return-path", "em1234.example.com")
    assert rows["spf.record"]["status"] == "pass"
    assert rows["dkim.s1"]["status"] == "fail" and "loop" in rows["dkim.s1"]["detail"]
    assert rows["dkim.s2"]["status"] == "pass"
    assert all(len(row["detail"]) < 1000 for row in rows.values())


def test_smtp_backend_spf_allows_the_smtp_servers_address(workspace: Path, monkeypatch) -> None:
    zone = Zone()
    zone.txt("example.com", "v=spf1 mx a:relay.example.net -all").a("relay.example.net", "192.0.2.25")
    zone.mx("example.com", "mx.example.com").a("mx.example.com", "192.0.2.10")
    zone.txt("mail._domainkey.example.com", *split(dkim_record(short_public_key(2048))))
    zone.txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:dmarc@example.com").a("other.example.org", "1.1.1.1")
    unset = rows_of(workspace, zone, "--backend", "smtp", "--dkim-selector", "mail")
    assert unset["spf.backend"]["status"] == "warn" and "MAILER_SMTP_URL is not set" in unset["spf.backend"]["detail"]
    server = start_dns(zone)
    try:
        for host, status in (("relay.example.net", "pass"), ("other.example.org", "fail")):
            result = doctor(workspace, server.address, "--backend", "smtp", "--dkim-selector", "mail", "--format",
                            "json", MAILER_SMTP_URL=f"smtp://u:p@{host}:587")
            rows = {row["check"]: row for row in json.loads(result.stdout)["rows"]}
            assert rows["spf.backend"]["status"] == status, rows["spf.backend"]
            assert rows["dkim.mail"]["status"] == "pass" and rows["dmarc.alignment"]["status"] in ("pass", "warn")
    finally:
        server.stop()
    assert "add a:other.example.org" in rows["spf.backend"]["fix"]


def test_mailer_dns_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(ConfigError, match="MAILER_DNS='dns.example:53' is not a DNS server's address"):
        parse_dns_server("dns.example:53")
    assert str(parse_dns_server("[::1]:5353")) == "[::1]:5353"
    assert parse_dns_server("127.0.0.1").port == 53


@pytest.mark.parametrize(("valid", "status"), [(True, "pass"), (False, "fail")])
def test_sendgrids_view_of_the_domain(workspace: Path, start_sendgrid, valid: bool, status: str) -> None:
    fake, url = start_sendgrid(environment=False)
    fake.whitelabel_domains = [authenticated_domain("other.example", user=9),
                               authenticated_domain("example.com", user=1234, valid=valid)]
    server = start_dns(good_zone())
    try:
        report = run_doctor(load_config(workspace), sending_of(load_config(workspace)),
                            Resolver(parse_dns_server(server.address), timeout=1),
                            sendgrid=SendGridAccess(key=API_KEY, host=url))
    finally:
        server.stop()
    rows = {row.check: row for row in report.rows}
    assert rows["sendgrid.domain"].status == status
    assert report.facts["return_path"] == "em1234.example.com"  # SendGrid's mail_cname: no --return-path needed
    assert rows["dmarc.alignment"].status == "pass"
    if not valid:
        assert "em1234.example.com CNAME → u1234.wl.sendgrid.net" in rows["sendgrid.domain"].detail
        assert "press Verify" in rows["sendgrid.domain"].fix
    assert any(path.startswith("/v3/whitelabel/domains?") for path in fake.gets)


def test_sendgrid_without_the_domain_or_refusing_the_key(start_sendgrid) -> None:
    fake, url = start_sendgrid(environment=False)
    fake.whitelabel_domains = [authenticated_domain("other.example", user=9)]
    from mailer.checks.sendgridview import check_sendgrid

    view = check_sendgrid("example.com", key=API_KEY, host=url)
    assert view.rows[0].status == "fail" and "no authenticated domain for example.com (it has other.example)" \
        in view.rows[0].detail
    refused = check_sendgrid("example.com", key="SG.wrong", host=url)
    assert refused.rows[0].status == "warn" and "401" in refused.rows[0].detail
    assert "Sender Authentication read permission" in refused.rows[0].fix


def test_a_zone_read_through_the_cli_never_shows_terminal_escapes(workspace: Path) -> None:
    zone = good_zone()
    zone.records.pop("_dmarc.example.com")
    zone.txt("_dmarc.example.com", "v=DMARC1; p=banana\x1b[2J[/x][link=https://evil.example]")
    server = start_dns(zone)
    try:
        result = doctor(workspace, server.address, "--return-path", "em1234.example.com")
    finally:
        server.stop()
    assert result.returncode == 1 and "\x1b[2J" not in result.stdout and "\\x1b[2J" in result.stdout
    assert "p= is missing or not none, quarantine or reject" in " ".join(result.stdout.split())


def test_a_resolver_that_says_nothing_exists_is_no_network_not_a_broken_domain(workspace: Path) -> None:
    # A sandbox's or a captive portal's DNS: every name "does not exist" (NXDOMAIN), answered at once. Read as
    # answers, every record would be missing and every check failed; the top-level domain tells.
    rows = rows_of(workspace, Zone())
    dns_rows = [row for row in rows.values() if row.get("group", "domain") == "domain"]
    assert rows["spf.record"]["exit"] == 3
    assert {row["status"] for row in dns_rows} <= {"unknown", "info"}, dns_rows
    assert "even the top-level domain com does not exist" in rows["spf.record"]["detail"]


def test_a_domain_that_does_not_exist_under_a_real_top_level_domain_fails(workspace: Path) -> None:
    zone = Zone()
    zone.txt("com", "v=a top-level domain that exists")  # the resolver knows the internet; the domain is missing
    rows = rows_of(workspace, zone)
    assert rows["spf.record"]["status"] == "fail" and rows["spf.record"]["exit"] == 1


@pytest.mark.parametrize("selector", ["../x", "", "s1 s2", "s1\x1b[2J", "a..b", "x" * 300])
def test_a_dkim_selector_that_is_no_dns_label_is_refused_before_any_lookup(workspace: Path, selector: str) -> None:
    result = doctor(workspace, "127.0.0.1:9", "--dkim-selector", selector)
    assert result.returncode == 2 and "is not a DKIM selector" in result.stderr
    assert "\x1b" not in result.stderr  # an escape is shown as text

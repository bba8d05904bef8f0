"""mailer.yaml's `signup:` section: read and checked like every other setting, each problem with its line and column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailer.config import load_config
from mailer.errors import ConfigError, InputError
from tests.conftest import REPO

GOOD = """
signup:
  description: "Weekly."
  consent: "I want it."
  consent_version: "v1"
"""


def settings(tmp_path: Path, signup: str, *, unsubscribe_url: bool = True) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    text = (REPO / "mailer.yaml").read_text(encoding="utf-8")
    if not unsubscribe_url:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("unsubscribe_url:")) + "\n"
    (tmp_path / "mailer.yaml").write_text(text + signup, encoding="utf-8")
    shutil.copytree(REPO / "layouts", tmp_path / "layouts")
    return tmp_path


def test_the_defaults_and_the_address_taken_from_unsubscribe_url(tmp_path: Path) -> None:
    signup = load_config(settings(tmp_path, GOOD)).signup
    assert signup.url == "https://newsletter.example.com/subscribe"
    assert (signup.per_ip_hourly, signup.record_ip, signup.trusted_proxies, signup.cors_origins) == (20, False, (), ())


def test_the_sample_has_no_form_until_its_section_is_uncommented() -> None:
    assert load_config(REPO).signup is None


def test_enabled_false_keeps_the_section_and_serves_no_form(tmp_path: Path) -> None:
    assert load_config(settings(tmp_path, GOOD + "  enabled: false\n")).signup is None


@pytest.mark.parametrize(("extra", "expected"), [
    ("  per_ip_hour: 5\n", "signup.per_ip_hour: unknown key"),
    ("  per_ip_hour: 5\n", "did you mean 'per_ip_hourly'?"),
    ("  cors_origins: [https://www.example.com/page]\n", "scheme and host, no path"),
    ("  trusted_proxies: [proxy.example.com]\n", "must be an IP address or network"),
    ("  record_ip: maybe\n", "must be true or false"),
    ("  per_ip_hourly: 0\n", "must be at least 1"),
    ("  lang: english!\n", "is not a language tag"),
])
def test_a_mistake_names_its_line_column_and_fix(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(InputError) as raised:
        load_config(settings(tmp_path, GOOD + extra))
    message = str(raised.value)
    assert expected in message and "mailer.yaml:" in message
    line = len((REPO / "mailer.yaml").read_text(encoding="utf-8").splitlines()) + GOOD.count("\n") + 1
    assert f":{line}:" in message


def test_the_consent_is_required(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="signup.consent: is required"):
        load_config(settings(tmp_path, GOOD.replace('  consent: "I want it."\n', "")))


def test_without_unsubscribe_url_the_form_needs_its_own_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="signup.url is missing"):
        load_config(settings(tmp_path, GOOD, unsubscribe_url=False))
    signup = load_config(settings(tmp_path / "b", GOOD + "  url: https://join.example.com/nl/subscribe\n",
                                  unsubscribe_url=False)).signup
    assert signup.url == "https://join.example.com/nl/subscribe"


@pytest.mark.parametrize("url", ["https://join.example.com", "https://join.example.com/"])
def test_a_signup_url_without_a_path_is_the_hosts_subscribe_page(tmp_path: Path, url: str) -> None:
    signup = load_config(settings(tmp_path, GOOD + f"  url: {url}\n")).signup
    assert signup.url == "https://join.example.com/subscribe"


@pytest.mark.parametrize("zone", ["Europe", "A" * 3000])
def test_a_time_zone_that_is_a_tz_folder_or_too_long_is_refused_with_its_line(workspace, zone: str) -> None:
    from mailer.config import load_config
    from mailer.errors import MailerError

    settings = workspace / "mailer.yaml"
    text = settings.read_text(encoding="utf-8")
    settings.write_text("\n".join(f"time_zone: {zone}" if line.startswith("time_zone:") else line
                                  for line in text.splitlines()) + "\n", encoding="utf-8")
    with pytest.raises(MailerError, match=r"mailer\.yaml:\d+:\d+: time_zone: must be a time zone"):
        load_config(workspace)

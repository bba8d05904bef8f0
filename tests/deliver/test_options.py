"""SendOptions.from_raw_args: `mailer send`'s options built once, and the rules they must keep, checked there."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailer.config import SENDGRID_MANAGED, Config, load_config
from mailer.deliver.options import OptionsError, SendOptions
from mailer.deliver.progress import SendError
from mailer.errors import ExitStatus

RAW = {"live": True, "test_to": None, "backend": None, "send_at": None, "sandbox": False, "force": False,
       "rate": None, "workers": None, "resend_uncertain": False, "retry_failed": False, "despite_complaints": False}


@pytest.fixture
def config(workspace: Path) -> Config:
    return load_config(workspace)


def test_the_options_are_the_values_given_with_the_backend_from_mailer_yaml(config: Config) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    options = SendOptions.from_raw_args(config, **{**RAW, "test_to": " Me@Example.com ", "send_at": soon,
                                                   "rate": 50.0, "workers": 2, "retry_failed": True})
    assert options == SendOptions(live=True, rate=50.0, workers=2, retry_failed=True, send_at=soon,
                                  backend=config.backend, test_to="Me@example.com")
    assert SendOptions.from_raw_args(config, **{**RAW, "backend": "smtp"}).backend == "smtp"


@pytest.mark.parametrize(("raw", "managed", "message"), [
    pytest.param({"test_to": "not an address"}, False, "--test-to: ", id="test-to-no-address"),
    pytest.param({"sandbox": True, "backend": "smtp"}, False, "--sandbox is SendGrid's sandbox mode",
                 id="sandbox-smtp"),
    pytest.param({"backend": "smtp"}, True, "--backend smtp cannot send with `unsubscribe: sendgrid`",
                 id="smtp-managed-unsubscribe"),
    pytest.param({"backend": "smtp", "send_at": datetime.now(UTC) + timedelta(hours=1)}, False,
                 "--at needs the sendgrid backend", id="at-smtp"),
])
def test_options_that_cannot_go_together_are_wrong_usage(config: Config, raw: dict, managed: bool,
                                                         message: str) -> None:
    if managed:
        config = dataclasses.replace(config, unsubscribe=SENDGRID_MANAGED)
    with pytest.raises(OptionsError, match=message) as error:
        SendOptions.from_raw_args(config, **{**RAW, **raw})
    assert error.value.exit_code == ExitStatus.USAGE == 2


@pytest.mark.parametrize(("ahead", "message"), [(timedelta(hours=-1), "is in the past"),
                                                (timedelta(hours=73), "more than 72 hours ahead")])
def test_a_time_sendgrid_cannot_schedule_is_refused_as_a_delivery_failure(config: Config, ahead: timedelta,
                                                                          message: str) -> None:
    with pytest.raises(SendError, match=message) as error:
        SendOptions.from_raw_args(config, **{**RAW, "send_at": datetime.now(UTC) + ahead})
    assert error.value.exit_code == ExitStatus.DELIVERY_FAILED

"""Every environment variable mailer reads, read once at the CLI's edge and handed to what needs it.

The `mailer` command group (mailer.cli.main) reads the process's environment into an `Environment`
(`Environment.read(os.environ)`) at the start of each command, or is handed one (`main(environment=…)`); the
library reads no variable itself (tests/test_layout.py checks), so a test hands any function the settings it
means, as httpie's tests hand theirs an `Environment` of their own.

Each value is the variable's text as set ("" when unset): the module that uses it checks it and names the
variable in its error, as before (a key with a line break, an address that is no URL). The secrets, and the
URLs that may hold a password, stay out of the repr: a traceback or a debug print shows that they are set,
never what they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

# The proxies a page fetch leaves unused (mailer.author.pagemeta): the first one set is named in its error.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _variable(name: str, *, secret: bool = False) -> str:
    """A field read from the variable `name`; `secret`: never in the repr."""
    return field(default="", repr=not secret, metadata={"variable": name})


@dataclass(frozen=True)
class Environment:
    """The environment a command runs in, as mailer reads it (docs/settings.md: the environment variables)."""

    state_dir: str = _variable("MAILER_STATE_DIR")  # the ledger's, lists' and outbox's folder; "": .mailer/
    unsubscribe_secret: str = _variable("MAILER_UNSUBSCRIBE_SECRET", secret=True)
    sendgrid_api_key: str = _variable("SENDGRID_API_KEY", secret=True)
    sendgrid_api_host: str = _variable("SENDGRID_API_HOST", secret=True)  # a user:pass in it is refused, unshown
    smtp_url: str = _variable("MAILER_SMTP_URL", secret=True)  # smtp://user:password@host:587
    webhook_public_key: str = _variable("SENDGRID_WEBHOOK_PUBLIC_KEY")  # a public key: no secret
    inbound_key: str = _variable("MAILER_INBOUND_KEY", secret=True)
    serve_url: str = _variable("MAILER_SERVE_URL", secret=True)  # a user:pass in it is refused, unshown
    export_token: str = _variable("MAILER_EXPORT_TOKEN", secret=True)
    mailbox_url: str = _variable("MAILER_MAILBOX_URL", secret=True)  # imaps://user:password@host/INBOX
    dns: str = _variable("MAILER_DNS")  # HOST:PORT of the one DNS server to ask; "": the system's resolver
    # The name of the first proxy variable set (PROXY_VARIABLES), or "": a page fetch says why it used none.
    proxy_variable: str = ""
    # Whether a person is there (httpie's Environment.stdin_isatty): a live send asks them to confirm only when
    # its input is a terminal, and draws a progress bar only when its errors go to one. The CLI reads them with
    # the variables; a test says what it plays (a terminal, or a log) without a pseudo-terminal.
    stdin_is_terminal: bool = False
    stderr_is_terminal: bool = False

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> Environment:
        """The variables mailer reads, from `environ` (the CLI passes os.environ)."""
        values = {item.name: environ.get(item.metadata["variable"], "") for item in fields(cls)
                  if "variable" in item.metadata}
        proxy = next((name for name in PROXY_VARIABLES if environ.get(name)), "")
        return cls(**values, proxy_variable=proxy)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name → the variable it is read from."""
        return {item.name: item.metadata["variable"] for item in fields(cls) if "variable" in item.metadata}

    @property
    def state_path(self) -> Path | None:
        """MAILER_STATE_DIR as a path; None when unset (the workspace's .mailer/)."""
        return Path(self.state_dir) if self.state_dir else None

"""What the environment a command runs in says about the newsletter's settings: read here, at the CLI's edge, and
handed to the library as settings (library code reads no variable for them)."""

from __future__ import annotations

import os
from dataclasses import replace

from mailer.config import Config
from mailer.deliver.mailbox import MAILBOX_URL_ENV
from mailer.web.inbound import INBOUND_KEY_ENV


def reading_mail(config: Config) -> Config:
    """`config`, offering the List-Unsubscribe mailto: when something reads that mail: mailer serve's Inbound Parse
    (MAILER_INBOUND_KEY) or `mailer suppressions pull`'s mailbox (MAILER_MAILBOX_URL)."""
    reads = any(os.environ.get(name, "").strip() for name in (INBOUND_KEY_ENV, MAILBOX_URL_ENV))
    return replace(config, unsubscribe_by_mail=reads)

"""Newsletter-wide settings: one `mailer.yaml` at the workspace root; secrets only from the environment."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from mailer.addresses import address_problem
from mailer.errors import ConfigError
from mailer.schema import (
    Bool,
    Choice,
    Int,
    Key,
    ListOf,
    PerLanguage,
    Record,
    Str,
    check_http_url,
    check_lang,
    display_path,
    for_language,
    load_document,
    suggestion,
)

CONFIG_NAME = "mailer.yaml"
SELF_HOSTED, SENDGRID_MANAGED = "self-hosted", "sendgrid"
# What SendGrid puts a reader's own unsubscribe link in place of. Subscription tracking replaces a
# tag of our choosing "with no additional formatting" (a bare URL); an unsubscribe group's link has
# SendGrid's own fixed tag.
SUBSCRIPTION_TAG = "[sendgrid_unsubscribe_url]"
ASM_TAG = "<%asm_group_unsubscribe_raw_url%>"


@dataclass(frozen=True)
class Sender:
    email: str
    name: str | None = None


@dataclass(frozen=True)
class Signup:
    """The sign-up form `mailer serve` answers (the `signup:` section of mailer.yaml)."""

    consent: str  # the exact text shown beside the box the reader ticks; kept with their consent
    consent_version: str  # changes whenever the text does: each consent records the version it agreed to
    description: str  # what readers will get, in a sentence: on the form and in the confirmation email
    enabled: bool = True
    url: str | None = None  # the form's public address; default: unsubscribe_url's host + /subscribe
    lang: str | None = None  # the pages' and the confirmation email's language; default: the latest issue's
    cors_origins: tuple[str, ...] = ()  # the editor's own sites, which may post the form from a script
    per_ip_hourly: int = 20  # sign-ups an hour from one address (IP)
    trusted_proxies: tuple[str, ...] = ()  # only their X-Forwarded-For is believed (IPs or networks)
    record_ip: bool = False  # keep the IP with each consent (off: privacy by default)


@dataclass(frozen=True)
class Tracking:
    """SendGrid's open and click tracking for the sends; None: the account's own setting applies."""

    clicks: bool | None = None
    opens: bool | None = None

    @property
    def set(self) -> bool:
        return self.clicks is not None or self.opens is not None


@dataclass(frozen=True)
class Config:
    workspace: Path
    name: str
    sender: Sender
    postal_address: str
    web_base_url: str  # always ends with "/"
    unsubscribe_url: str
    reply_to: str | None = None
    unsubscribe_mailbox: str | None = None
    # "Hey there" where a reader's name is unknown (and on the public web version): per language.
    first_name_fallbacks: tuple[tuple[str, str], ...] = (("", "there"),)
    backend: str = "sendgrid"
    unsubscribe: str = SELF_HOSTED  # or SENDGRID_MANAGED: SendGrid fills the links and records the unsubscribes
    unsubscribe_group: int | None = None  # SendGrid's unsubscribe group (ASM) for SENDGRID_MANAGED
    signup: Signup | None = None  # None: no sign-up form (no `signup:` section, or `enabled: false`)
    tracking: Tracking = Tracking()  # what SendGrid is asked to track; unset: the account decides
    # Whether List-Unsubscribe offers the mailto: too: only when something reads that mailbox (mailer serve's
    # Inbound Parse, or `mailer suppressions pull`'s IMAP). Not in mailer.yaml: the CLI sets it from the
    # environment it runs in (mailer.cli.environment.reading_mail), so library code reads no variable for it.
    unsubscribe_by_mail: bool = False
    time_zone: str | None = None  # the newsletter's zone (IANA): `mailer send --at "sunday 08:00"` is read in it
    # MAILER_STATE_DIR, handed in by the CLI (load_config's state_dir); None: .mailer/ in the workspace.
    state_dir_override: Path | None = None

    @property
    def first_name_fallback(self) -> str:
        """The fallback for English (the default); an issue in another language asks fallback_for."""
        return self.fallback_for("en")

    def fallback_for(self, lang: str) -> str:
        """The word that stands for an unknown first name in an issue written in `lang`."""
        return for_language(dict(self.first_name_fallbacks), lang, "there")

    @property
    def managed_unsubscribe(self) -> bool:
        """SendGrid, not mailer, puts each reader's unsubscribe link in and handles the click."""
        return self.unsubscribe == SENDGRID_MANAGED

    @property
    def unsubscribe_tag(self) -> str:
        """What SendGrid replaces with a reader's unsubscribe link (managed unsubscribes only)."""
        return ASM_TAG if self.unsubscribe_group else SUBSCRIPTION_TAG

    @property
    def unsubscribe_email(self) -> str:
        """The mailbox behind the List-Unsubscribe mailto: link (default: the sender)."""
        return self.unsubscribe_mailbox or self.sender.email

    @property
    def layouts_dir(self) -> Path:
        return self.workspace / "layouts"

    @property
    def issues_dir(self) -> Path:
        return self.workspace / "issues"

    @property
    def build_dir(self) -> Path:
        return self.workspace / "build"

    @property
    def state_dir(self) -> Path:
        """Ledger, outbox and locks: `.mailer/` unless MAILER_STATE_DIR says otherwise (state_dir_override)."""
        return self.state_dir_override or self.workspace / ".mailer"

    def web_url(self, slug: str) -> str:
        """The public web version of an issue."""
        return f"{self.web_base_url}{slug}/"


def zone_names() -> list[str]:
    """Every zone in the tz database (Python's, or the tzdata package's), sorted."""
    import zoneinfo

    return sorted(zoneinfo.available_timezones())


def _check_time_zone(text: str) -> str | None:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(text)
        return None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tz folder ("Europe"), a long name
        hint = suggestion(text, zone_names(), None)
        return (f"must be a time zone from the tz database, like Europe/Berlin or America/New_York, not {text!r}"
                + (f" ({hint})" if hint else ""))


def _check_origin(text: str) -> str | None:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query \
            or parts.fragment or "@" in parts.netloc or any(c.isspace() for c in text):
        return f"must be a site's origin like https://www.example.com (scheme and host, no path), not {text!r}"
    return None


def _check_network(text: str) -> str | None:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f"must be an IP address or network (127.0.0.1, 10.0.0.0/8, ::1), not {text!r}"
    return None


def _signup_schema() -> Record:
    url = Str(label="a URL", one_line=True, validate=check_http_url)
    return Record(Signup, {
        "enabled": Key(Bool(), default=True),
        "url": Key(url),
        "consent": Key(Str(max_length=1000), True),
        "consent_version": Key(Str(one_line=True, max_length=100), True),
        "description": Key(Str(max_length=500), True),
        "lang": Key(Str(one_line=True, validate=check_lang)),
        "cors_origins": Key(ListOf(Str(one_line=True, validate=_check_origin)), default=()),
        "per_ip_hourly": Key(Int(minimum=1), default=20),
        "trusted_proxies": Key(ListOf(Str(one_line=True, validate=_check_network)), default=()),
        "record_ip": Key(Bool(), default=False),
    })


def _config_schema() -> Record:
    url = Str(label="a URL", one_line=True, validate=check_http_url)
    email = Str(label="an email address", one_line=True, validate=address_problem)
    return Record(
        dict,
        {
            "name": Key(Str(one_line=True), True),
            "from": Key(Record(Sender, {"email": Key(email, True), "name": Key(Str(one_line=True))}), True),
            "reply_to": Key(email),
            "postal_address": Key(Str(), True),
            "web_base_url": Key(url, True),
            "unsubscribe_url": Key(url),
            "unsubscribe": Key(Choice(SELF_HOSTED, SENDGRID_MANAGED)),
            "unsubscribe_group": Key(Int(minimum=1)),
            "unsubscribe_email": Key(email),
            "first_name_fallback": Key(PerLanguage(Str(one_line=True)), default={"": "there"}),
            "backend": Key(Choice("sendgrid", "smtp"), default="sendgrid"),
            "signup": Key(_signup_schema()),
            "tracking": Key(Record(Tracking, {"clicks": Key(Bool()), "opens": Key(Bool())})),
            "time_zone": Key(Str(one_line=True, validate=_check_time_zone)),
        },
    )


def find_workspace(start: Path) -> Path:
    """The nearest folder at or above `start` that holds a mailer.yaml."""
    start = start.resolve()
    for folder in [start, *start.parents]:
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_NAME} found in {start} or any folder above it\n"
        f"    hint: run mailer inside a newsletter workspace, or create {CONFIG_NAME} (see docs/settings.md)"
    )


def load_config(workspace: Path, *, state_dir: Path | None = None) -> Config:
    """Read and validate the workspace's mailer.yaml, reporting every problem at once; `state_dir` is
    MAILER_STATE_DIR's folder when it is set (None: the workspace's .mailer/)."""
    path = workspace / CONFIG_NAME
    fields = load_document(path, _config_schema(), file_label=display_path(path))
    base = fields["web_base_url"]
    label = display_path(path)
    if fields["unsubscribe"] is None:
        # Unset: SendGrid handles unsubscribes (no server to run) unless a self-hosted address is given.
        managed = fields["backend"] == "sendgrid" and not fields["unsubscribe_url"]
        fields["unsubscribe"] = SENDGRID_MANAGED if managed else SELF_HOSTED
    if fields["unsubscribe"] == SELF_HOSTED and not fields["unsubscribe_url"]:
        raise ConfigError(f"{label}: unsubscribe_url is missing: each email's unsubscribe link points there\n"
                          "    hint: the address where `mailer serve` answers (https://…/unsubscribe), or "
                          "`unsubscribe: sendgrid` to let SendGrid handle unsubscribes")
    if fields["unsubscribe"] == SENDGRID_MANAGED and fields["backend"] == "smtp":
        raise ConfigError(f"{label}: unsubscribe: sendgrid needs backend: sendgrid (SMTP servers do not fill "
                          "SendGrid's unsubscribe links)\n    hint: use `unsubscribe: self-hosted` with SMTP")
    if fields["unsubscribe_group"] and fields["unsubscribe"] != SENDGRID_MANAGED:
        raise ConfigError(f"{label}: unsubscribe_group is SendGrid's unsubscribe group: it needs "
                          "`unsubscribe: sendgrid`")
    signup = fields["signup"]
    if signup is not None and not signup.enabled:
        signup = None
    if signup is not None and not signup.url:
        if not fields["unsubscribe_url"]:
            raise ConfigError(f"{label}: signup.url is missing: the confirmation email's link points next to it, "
                              "and there is no unsubscribe_url to take the host from\n"
                              "    hint: add `url: https://…/subscribe` (where `mailer serve` answers) to `signup:`")
        parts = urlsplit(fields["unsubscribe_url"])
        signup = replace(signup, url=f"{parts.scheme}://{parts.netloc}/subscribe")
    if signup is not None and urlsplit(signup.url).path in ("", "/"):
        # A host alone: the form is served at /subscribe, and every link to it (the JSON's action, the
        # expired page's "Sign up again") must say so, not point at the site's home page.
        parts = urlsplit(signup.url)
        signup = replace(signup, url=f"{parts.scheme}://{parts.netloc}/subscribe")
    return Config(
        workspace=workspace,
        name=fields["name"],
        sender=fields["from"],
        reply_to=fields["reply_to"],
        postal_address=fields["postal_address"],
        web_base_url=base if base.endswith("/") else base + "/",
        unsubscribe_url=fields["unsubscribe_url"] or "",
        unsubscribe_mailbox=fields["unsubscribe_email"],
        first_name_fallbacks=tuple(fields["first_name_fallback"].items()),
        backend=fields["backend"],
        unsubscribe=fields["unsubscribe"],
        unsubscribe_group=fields["unsubscribe_group"],
        signup=signup,
        tracking=fields["tracking"] or Tracking(),
        time_zone=fields["time_zone"],
        state_dir_override=state_dir,
    )


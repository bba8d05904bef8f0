"""Sign-up without HTTP: the form's signed time, the submission's checks, the confirmation link and email.

Double opt-in as Keila and Ghost do it, without leaks: the form carries a signed time (a bot that
posts within 2 seconds of loading it, or a form older than a day, is not believed); every
submission is answered alike whatever is known of the address (mailer.web.signup); the email holds
no text the visitor typed but the address (bots put spam in name fields); its link is a signed,
expiring token bound to this newsletter and the address, and confirms only on POST.

Both the form's time and the links are signed with a key derived from MAILER_UNSUBSCRIBE_SECRET and
a purpose of their own ("mailer sign-up v1"): one secret for the service to keep, and no token of
one kind is ever a token of another (an unsubscribe link cannot confirm anyone, nor the reverse).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import re
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

from mailer.addresses import HALF_PAIR, AddressError, address_key, parse_address
from mailer.audience.store import CONFIRMATION_SECONDS, SignupRequest
from mailer.config import Config, Signup
from mailer.errors import ConfigError, MailerError
from mailer.headers import header_problem

SECRET_ENV = "MAILER_UNSUBSCRIBE_SECRET"  # the variable of mailer.deliver.message.SECRET_ENV (tested)
PURPOSE = b"mailer sign-up v1"
MIN_FORM_SECONDS = 2.0  # a person reads the form and types an address; a bot posts at once
MAX_FORM_SECONDS = 86400.0  # a form left open longer is shown again with a fresh time
MAX_TOKEN_CHARS = 512
MAX_NAME_CHARS = 100
MAX_FIELD_CHARS = 320  # an address is at most 254 octets; anything longer is refused before it is parsed
HONEYPOT = "website"  # hidden from people by the page's CSS; bots fill in every field they find
FIELDS = ("email", "first_name", "consent", "stamp", HONEYPOT)
CONFIRM_LAYOUT, CONFIRM_TEXT_LAYOUT = "confirm.mjml.j2", "confirm.txt.j2"
CONFIRM_URL = "-confirm_url-"  # filled per reader after the layout is built once (as the issue's placeholders)
EMAIL = "-email-"


def signup_key(secret: str) -> bytes:
    """The key of the form's times and the confirmation links, from MAILER_UNSUBSCRIBE_SECRET's value `secret`;
    ConfigError when it is not set."""
    if not secret:
        raise ConfigError(
            f"{SECRET_ENV} is not set: the sign-up form's confirmation links are signed with it\n"
            f"    hint: export {SECRET_ENV}=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\", "
            "or remove the `signup:` section of mailer.yaml (or say `enabled: false`) to serve no form")
    return hmac.digest(secret.encode(), PURPOSE, "sha256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        return None


def _mac(key: bytes, *parts: str) -> str:
    return _b64(hmac.digest(key, "\n".join(parts).encode(), "sha256")[:18])


# -- the form's signed time -------------------------------------------------------------------------


def form_stamp(key: bytes, list_id: str, *, at: float | None = None) -> str:
    """The form's hidden `stamp`: when it was served, signed (milliseconds, then the signature)."""
    served = str(int((time.time() if at is None else at) * 1000))
    return f"{served}.{_mac(key, 'form', list_id, served)}"


STAMP_OK, STAMP_TOO_FAST, STAMP_STALE = "ok", "too-fast", "stale"


def check_stamp(stamp: Any, key: bytes, list_id: str, *, at: float | None = None) -> str:
    """STAMP_OK; STAMP_TOO_FAST (posted under MIN_FORM_SECONDS after it was served: a bot); STAMP_STALE
    (none, not ours, from the future, or older than MAX_FORM_SECONDS: the form is shown again)."""
    if not isinstance(stamp, str) or len(stamp) > 64 or not stamp.isascii():
        return STAMP_STALE
    served, _, signature = stamp.partition(".")
    if not served.isdigit() or not hmac.compare_digest(signature, _mac(key, "form", list_id, served)):
        return STAMP_STALE
    age = (time.time() if at is None else at) - int(served) / 1000
    if age < -5 or age > MAX_FORM_SECONDS:
        return STAMP_STALE
    return STAMP_TOO_FAST if age < MIN_FORM_SECONDS else STAMP_OK


# -- the confirmation link ----------------------------------------------------------------------------


def confirmation_token(key: bytes, list_id: str, email: str, *, nonce: str, at: float | None = None) -> str:
    """`who.issued.nonce.signature`: the address (its key), when the link was made and the request's nonce (the
    store's: only the latest request's link confirms), signed with this newsletter's id."""
    who = _b64(address_key(email).encode())
    issued = str(int(time.time() if at is None else at))
    if not nonce:  # a confirmation waiting from the release before nonces: its link as it was sent
        return f"{who}.{issued}.{_mac(key, 'confirm', list_id, who, issued)}"
    return f"{who}.{issued}.{nonce}.{_mac(key, 'confirm', list_id, who, issued, nonce)}"


TOKEN_OK, TOKEN_EXPIRED, TOKEN_INVALID = "ok", "expired", "invalid"


class Link(NamedTuple):
    """What a confirmation link says once its signature holds: TOKEN_OK with the address and nonce, or why not."""

    verdict: str
    email: str | None = None
    nonce: str = ""


def read_confirmation_token(token: Any, key: bytes, list_id: str, *, at: float | None = None) -> Link:
    """Link(TOKEN_OK, address, nonce), Link(TOKEN_EXPIRED) for a real link past CONFIRMATION_SECONDS, or
    Link(TOKEN_INVALID): cut, tampered, forged, another newsletter's. Nothing in a token is used before its
    signature holds. A link of the release before nonces (`who.issued.signature`) reads with nonce '', which
    only a confirmation waiting from then has."""
    if not isinstance(token, str) or not 5 <= len(token) <= MAX_TOKEN_CHARS or not token.isascii():
        return Link(TOKEN_INVALID)
    parts = token.split(".")
    if len(parts) == 3:
        parts.insert(2, "")
    if len(parts) != 4 or not parts[1].isdigit() or len(parts[1]) > 12:
        return Link(TOKEN_INVALID)
    who, issued, nonce, signature = parts
    signed = (who, issued, nonce) if nonce else (who, issued)
    if not hmac.compare_digest(signature, _mac(key, "confirm", list_id, *signed)):
        return Link(TOKEN_INVALID)
    age = (time.time() if at is None else at) - int(issued)
    if age < -300:
        return Link(TOKEN_INVALID)
    if age > CONFIRMATION_SECONDS:
        return Link(TOKEN_EXPIRED)
    raw = _unb64(who)
    try:
        return Link(TOKEN_OK, raw.decode("utf-8"), nonce) if raw else Link(TOKEN_INVALID)
    except UnicodeDecodeError:
        return Link(TOKEN_INVALID)


# -- a submission ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """What one POST of the form said, read and checked: a request for the store, or why there is none."""

    request: SignupRequest | None = None
    bot: str | None = None  # "honeypot" or "too fast": answered like a sign-up, nothing done
    stale: bool = False  # no signed time, or too old: the form is shown again (it names no address)
    problems: tuple[tuple[str, str], ...] = ()  # (field, what is wrong): the visitor's own typing
    email: str = ""  # as typed (for showing the form again), at most MAX_FIELD_CHARS
    first_name: str = ""


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# Zero-width non-joiner and joiner are format characters (Cf) that names need: Persian and the Indic scripts
# join and part letters with them, and emoji sequences are made with the joiner. They reorder nothing.
_JOINERS = frozenset("\u200c\u200d")


def name_problem(first: str) -> str | None:
    """Why `first` (stripped) cannot be a reader's name, or None.

    Beside line breaks, encoded words and control characters, every format character (Unicode
    category Cf) but the joiners is refused: the bidi overrides and isolates (U+202E turns
    `moc.elpmaxe` into an address on screen), zero-width spaces, the BOM. The name is typed by
    whoever signs the address up and goes into every issue the reader gets.
    """
    if len(first) > MAX_NAME_CHARS:
        return f"Please shorten your name to {MAX_NAME_CHARS} characters."
    if _CONTROL.search(first) or HALF_PAIR.search(first) or header_problem(first) or "=?" in first or any(
            unicodedata.category(char) == "Cf" and char not in _JOINERS for char in first):
        return "The name holds characters that cannot go into an email."
    return None


def read_submission(fields: Mapping[str, Any], signup: Signup, key: bytes, list_id: str, *, ip: str | None,
                    at: float | None = None) -> Submission:
    """Check a submission (the form's fields or the same keys in JSON) in the order that leaks least:
    the honeypot, the form's time, then the visitor's own fields."""
    typed = {name: fields.get(name) for name in FIELDS}
    email = typed["email"] if isinstance(typed["email"], str) else ""
    first = typed["first_name"] if isinstance(typed["first_name"], str) else ""
    shown = {"email": email[:MAX_FIELD_CHARS], "first_name": first[:MAX_NAME_CHARS * 2]}
    if typed[HONEYPOT] not in (None, ""):
        return Submission(bot="honeypot", **shown)
    stamp = check_stamp(typed["stamp"], key, list_id, at=at)
    if stamp == STAMP_STALE:
        return Submission(stale=True, **shown)
    if stamp == STAMP_TOO_FAST:
        return Submission(bot="too fast", **shown)
    problems = []
    address = ""
    if not isinstance(typed["email"], str) or not email.strip():
        problems.append(("email", "Please give your email address."))
    elif len(email) > MAX_FIELD_CHARS:
        problems.append(("email", f"This address is {len(email):,} characters long; an address has at most 254."))
    else:
        try:
            address = parse_address(email)
            if header_problem(address) or "=?" in address:
                raise AddressError("encoded words and line breaks have no place in an address")
        except AddressError:
            problems.append(("email", "This is not an email address we can send to. Please check it."))
    if typed["first_name"] is not None and not isinstance(typed["first_name"], str):
        problems.append(("first_name", "The name must be text."))
    first = first.strip()
    if problem := name_problem(first):
        problems.append(("first_name", problem))
    if typed["consent"] not in (True, "yes", "on", "true", "1"):
        problems.append(("consent", "Please tick the box to say you want the emails."))
    if problems:
        return Submission(problems=tuple(problems), **shown)
    return Submission(SignupRequest(email=address, consent_text=signup.consent, consent_version=signup.consent_version,
                                    first_name=first, ip=ip, consent_ip=ip if signup.record_ip else None), **shown)


# -- the confirmation email ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfirmationEmail:
    """The confirmation email, built once through the issue's pipeline; `for_reader` fills address and link."""

    subject: str
    html: str
    text: str

    def for_reader(self, email: str, url: str) -> tuple[str, str, str]:
        """(subject, html, text) for one reader: their address and link are the only values that vary."""
        escaped = html.escape(email)
        return (self.subject.replace(EMAIL, email),
                self.html.replace(CONFIRM_URL, html.escape(url)).replace(EMAIL, escaped),
                self.text.replace(CONFIRM_URL, url).replace(EMAIL, email))


@dataclass(frozen=True)
class Letter:
    """What the confirmation layouts see as `issue`: the head partial's subject, preheader, language."""

    subject: str
    preheader: str
    lang: str
    dir: str
    title: str


def build_confirmation_email(config: Config, lang: str) -> ConfirmationEmail:
    """layouts/confirm.mjml.j2 and confirm.txt.j2 → Jinja2 → MJML → inlined HTML, as an issue is built."""
    from mailer.compose.inline import inline_css
    from mailer.compose.issue import text_direction
    from mailer.compose.render import compile_mjml, render_layout
    from mailer.schema import display_path

    signup = config.signup
    assert signup is not None
    words = {"lang": lang, "description": signup.description, "confirm_url": CONFIRM_URL, "email": EMAIL}
    subject = " ".join(render_layout(CONFIRM_TEXT_LAYOUT, config=config, part="subject", **words).split())
    preheader = " ".join(render_layout(CONFIRM_TEXT_LAYOUT, config=config, part="preheader", **words).split())
    letter = Letter(subject=subject, preheader=preheader, lang=lang, dir=text_direction(lang), title=subject)
    context = {"issue": letter, "part": "email", "web": False, **words}
    mjml = render_layout(CONFIRM_LAYOUT, config=config, **context)
    page = inline_css(compile_mjml(mjml, layout=display_path(config.layouts_dir / CONFIRM_LAYOUT)))
    text = render_layout(CONFIRM_TEXT_LAYOUT, config=config, **context)
    return ConfirmationEmail(subject=subject, html=page, text=text.strip() + "\n")


def latest_issue(config: Config, *, today: date | None = None) -> Any:
    """The newest issue in issues/ dated today or earlier (the one readers saw last), or None.

    A draft that does not load is left out: the sign-up pages never fail for an issue being written. Of
    two issues of one day, the one with the shorter file name (a translation is usually `DATE-LANG`).
    """
    from mailer.compose.issue import load_issue

    today = today or date.today()
    newest = None
    for path in sorted(Path(config.issues_dir).glob("*.yaml")):
        try:
            issue = load_issue(path)
        except (MailerError, OSError):
            continue
        if issue.date <= today and (newest is None or (issue.date, -len(issue.slug)) > (newest.date,
                                                                                      -len(newest.slug))):
            newest = issue
    return newest


def signup_lang(config: Config, latest: Any) -> str:
    """The sign-up pages' and the confirmation email's language: the setting, the latest issue's, or English."""
    assert config.signup is not None
    return config.signup.lang or (latest.lang if latest is not None else "en")

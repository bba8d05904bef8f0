"""Email addresses: one strict grammar for every place an address enters, and one identity for each mailbox.

The grammar is email-validator's (RFC 5321/5322 dot-atom local parts, SMTPUTF8, IDNA domains, no
quoted local parts, no IP literals, no control, zero-width or bidi characters). It is the only
gate: the subscribers CSV, `--test-to`, mailer.yaml and the suppression list all go through
`parse_address`, and the address a server is given is exactly the one that came out of it.
Anything looser lets `x:ada@example.org` through, which smtplib turns into `ada@example.org`.

email-validator takes about 17 µs an address and 17 ms to import; a plain ASCII address (nearly
all of them) is checked by a stricter regular expression first, which accepts only what
email-validator accepts, with the same result (tests/test_addresses.py holds them to that).
"""

from __future__ import annotations

import re
import unicodedata

MAX_ADDRESS_OCTETS = 254  # RFC 5321 section 4.5.3.1.3, less the angle brackets
MAX_LOCAL_OCTETS = 64

# email-validator's special-use names (RFC 6761): never mailable. The fast path leaves any domain
# ending in one of them to email-validator, so a longer list there can only make it stricter.
SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# Letters only in the last label: email-validator wants the domain to end in a letter, and an
# xn-- (IDNA) top-level domain goes through the full check.
_PLAIN_ASCII = re.compile(rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@((?:{_LABEL}\.)+([A-Za-z]{{1,63}}))")


class AddressError(ValueError):
    """Why a text is not an address `mailer` will send to; str(err) is the reason, for a Problem."""


def parse_address(text: str) -> str:
    """The address, normalised (trimmed, NFC, domain lower-cased and IDNA-decoded), or AddressError."""
    text = text.strip()
    if not text:
        raise AddressError("missing email address")
    match = _PLAIN_ASCII.fullmatch(text)
    if match:  # the common case, a million times for a large list: one groups() call
        local, domain, top = match.groups()
        if ("--" not in domain and len(top) > 1 and top.lower() not in SPECIAL_USE_TLDS
                and len(local) <= MAX_LOCAL_OCTETS and len(text) <= MAX_ADDRESS_OCTETS):
            return f"{local}@{domain.lower()}"
    address = _validate(unicodedata.normalize("NFC", text))
    if len(address.rpartition(".")[2]) < 2:
        # email-validator allows it; no one-letter top-level domain exists, and `.c` is a typo of `.com`.
        raise AddressError(f"invalid email address {text!r}: the domain ends in a one-letter top-level domain "
                           f"'.{address.rpartition('.')[2]}', which does not exist (a typo?)")
    return address


def _validate(text: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=True, allow_quoted_local=False,
                                 allow_domain_literal=False, allow_display_name=False, allow_empty_local=False,
                                 strict=True)  # strict: the local part is at most 64 octets (RFC 5321)
    except EmailNotValidError as err:
        # repr: an ESC or a backspace in the address is shown, not obeyed by the terminal.
        raise AddressError(f"invalid email address {text!r}: {_sentence(str(err))}") from None
    return checked.normalized


def _sentence(reason: str) -> str:
    return reason[:1].lower() + reason[1:].rstrip(".")


def address_problem(text: str) -> str | None:
    """Why `text` is not a mailable address, or None."""
    try:
        parse_address(text)
    except AddressError as err:
        return str(err)
    return None


def address_key(address: str) -> str:
    """The identity of a mailbox: one key for the subscriber list, the ledger, the suppression list and tokens.

    Lower case, not case-folded: 'Ada@' and 'ada@' are one reader, but 'straße@' and 'strasse@',
    or 'ﬁsh@' and 'fish@', are different mailboxes. The domain is the IDNA-decoded one, so
    'kunde@xn--bcher-kva.example' and 'kunde@bücher.example' are one reader. An address that does
    not parse (an old suppression entry, say) still gets a key: trimmed, NFC, lower case.
    """
    try:
        return parse_address(address).lower()
    except AddressError:
        return unicodedata.normalize("NFC", address.strip()).lower()


def printable(text: str) -> str:
    """`text` to show on a terminal or a page: control, format and line-break characters as \\x1b-style escapes.

    An ESC in a CSV cell would otherwise recolour or rewrite the editor's terminal when a dry run
    lists the row; a right-to-left override would reorder what the editor reads.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char == " " else char.encode("unicode_escape").decode("ascii")
                   for char in text)


def shown_url(url: str) -> str:
    """`url` (a setting's: SENDGRID_API_HOST, MAILER_SERVE_URL) to show or record: a user name and password
    in it (`https://user:pass@host`) replaced by `***`, and printable.

    Everything between the scheme and the last `@` goes, even past a `/`: a password may hold one
    unencoded (the URL is then no URL, and is shown in the error that says so). A path with an `@` in
    it is hidden too; a setting's URL has no reason to hold one.
    """
    head, separator, rest = url.partition("//")
    if not separator:
        head, rest = "", url
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return printable(head + separator + rest)


# Half of a surrogate pair: JSON may escape one on its own ("\\ud800"), and json.loads returns it as it is.
# No text holds it, and nothing written in UTF-8 (SQLite, a file) can take it: what reads JSON from
# outside drops it or shows U+FFFD in its place (printable shows it escaped).
HALF_PAIR = re.compile("[\ud800-\udfff]")

"""What may not be in text that becomes a mail header (a subject, a display name): line breaks, in any disguise.

A line break in a header value ends the header and starts another: `Bcc: x@evil.example` slips in.
Python's email package refuses a raw CR or LF with a traceback, but it decodes an RFC 2047 encoded
word (`=?utf-8?q?X=0D=0ABcc:_x@evil.example?=`) and writes the CR/LF it decodes to out raw; and
SendGrid takes CR, LF, U+2028, U+2029, U+0085, VT and FF in `subject` and `to.name` as they are.
So such values are refused where they enter (the issue, mailer.yaml, the subscribers CSV), with
the position of the offending character.
"""

from __future__ import annotations

import re
from email.header import decode_header

# Every character some program treats as the end of a line, and every other C0/C1 control but the
# tab (which a header may hold).
_UNSAFE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[QqBb]\?[^?\s]*\?=")
_SUSPECT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]|=\?")  # one fast test before the closer look

_NAMES = {"\r": "a carriage return", "\n": "a line break", "\x0b": "a vertical tab", "\x0c": "a form feed",
          "\x85": "a next-line character (U+0085)", "\u2028": "a line separator (U+2028)",
          "\u2029": "a paragraph separator (U+2029)"}


def header_problem(text: str) -> tuple[int, str] | None:
    """Where (a character offset) and why `text` may not go into a mail header, or None."""
    if not _SUSPECT.search(text):
        return None
    unsafe = _UNSAFE_CHAR.search(text)
    if unsafe:
        char = unsafe.group(0)
        return unsafe.start(), f"contains {_NAMES.get(char, f'the control character U+{ord(char):04X}')}"
    for word in _ENCODED_WORD.finditer(text):
        decoded = _decode(word.group(0))
        hidden = _UNSAFE_CHAR.search(decoded)
        if hidden:
            char = hidden.group(0)
            what = _NAMES.get(char, f"the control character U+{ord(char):04X}")
            shown = word.group(0) if len(word.group(0)) <= 30 else word.group(0)[:29] + "…"
            return word.start(), f"contains an encoded word ({shown}) that decodes to {what}"
    return None


def _decode(word: str) -> str:
    try:
        ((raw, charset),) = decode_header(word)
    except (ValueError, LookupError):
        return ""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode(charset or "ascii", errors="replace")
    except LookupError:  # an unknown charset: look at the bytes as Latin-1, where CR and LF are themselves
        return raw.decode("latin-1")

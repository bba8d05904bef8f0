"""What a browser or a mail client POSTs to `mailer serve`: its declared type and charset, read one way."""

from __future__ import annotations

TEXT_CHARSETS = ("", "utf-8", "us-ascii")  # none named, or one UTF-8 reads as it is


def media_type(content_type: str) -> tuple[str, str]:
    """A Content-Type header's type and charset, lower-case ('' where absent): ('application/json', 'utf-8')."""
    kind, _, parameters = content_type.partition(";")
    charset = next((value.strip().strip('"').lower() for name, _, value in
                    (part.strip().partition("=") for part in parameters.split(";")) if name.strip().lower() ==
                    "charset"), "")
    return kind.strip().lower(), charset

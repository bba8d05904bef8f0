"""`mailer doctor --eml`: a test send as it arrived (saved from the inbox), read as its receiver read it: the DKIM
signatures verified again (their keys asked through our resolver), SPF and DMARC as the receiving server wrote
them in Authentication-Results (only its own: a sender can write any header it likes further down), alignment,
the one-click unsubscribe headers, sizes, and SpamAssassin's score where it is installed."""

from __future__ import annotations

import email
import email.utils
import os
import re
import shutil
import subprocess
from email.message import Message
from pathlib import Path

from mailer.checks.dns import Resolver, shown
from mailer.checks.domain import aligned
from mailer.checks.rows import FAIL, INFO, PASS, UNKNOWN, WARN, DoctorReport, Row
from mailer.deliver.message import GMAIL_CLIP_BYTES
from mailer.deliver.message import ONE_CLICK_POST as ONE_CLICK
from mailer.errors import MailerError
from mailer.files import read_regular
from mailer.schema import display_path

# A newsletter as received is well under a megabyte; Gmail takes messages up to 25 MB and SendGrid requests up to
# 30 MB. Past that the file is not a test send, and it is not read into memory to find out.
MAX_EML_BYTES = 30 * 1024 * 1024
SPAMASSASSIN_SECONDS = 120
MOST_SIGNATURES = 5
_COMMENT = re.compile(r"\([^()]*\)")


class ReceivedError(MailerError):
    """The .eml file cannot be read as a message (missing, too big, not a regular file)."""


def read_eml(path: Path) -> bytes:
    label = display_path(path)
    try:
        size = os.stat(path).st_size
        if size > MAX_EML_BYTES:
            raise ReceivedError(_too_big(label, size))
        data = read_regular(path, MAX_EML_BYTES)
    except OSError as err:
        raise ReceivedError(f"{label}: cannot read it: {err.strerror or err}\n    hint: save the message as it "
                            "arrived (Gmail: ⋮ > Download message; Outlook: Save as) and give that file") from None
    if len(data) > MAX_EML_BYTES:  # it grew while it was read
        raise ReceivedError(_too_big(label, len(data)))
    return data


def _too_big(label: str, size: int) -> str:
    return (f"{label} is {size / 1024 / 1024:.0f} MB: more than {MAX_EML_BYTES // 1024 // 1024} MB is no test send "
            "(Gmail accepts up to 25 MB), so it is not read\n    hint: give the .eml of one newsletter as "
            "received (Gmail: ⋮ > Download message), not a mailbox export")


def check_received(path: Path, resolver: Resolver, *, trusted: tuple[str, ...] = (),
                   spamassassin: str | None = "spamassassin") -> DoctorReport:
    """Every row about the message in `path` as its receiver saw it."""
    data = read_eml(path)
    message = email.message_from_bytes(data)
    report = DoctorReport(display_path(path))
    from_domain = _domain(str(message.get("From", "")))
    return_path = _domain(str(message.get("Return-Path", "")))
    report.facts.update({"from_domain": from_domain, "return_path_domain": return_path, "bytes": len(data)})
    signatures = _dkim(data, message, resolver, from_domain, report)
    results = _authentication_results(message, trusted, report)
    _alignment(from_domain, return_path, signatures, results, report)
    _unsubscribe(message, signatures, report)
    _size(data, message, report)
    report.rows.append(_spamassassin(data, spamassassin))
    return report


def _domain(header: str) -> str:
    address = email.utils.parseaddr(header)[1]
    return address.rpartition("@")[2].lower().rstrip(">").strip() if "@" in address else ""


def _tags(value: str) -> dict[str, str]:
    tags = {}
    for part in re.sub(r"\s+", "", value).split(";"):
        name, _, tag_value = part.partition("=")
        if name:
            tags[name.lower()] = tag_value
    return tags


def _dkim(data: bytes, message: Message, resolver: Resolver, from_domain: str,
          report: DoctorReport) -> list[tuple[dict[str, str], bool]]:
    """Each DKIM-Signature (the first few) verified: its tags, and whether it verified."""
    import dkim

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        answer = resolver.txt(text.rstrip("."))
        if not answer.answered:
            raise dkim.DnsTimeoutError(answer.why_unanswered())
        return answer.records[0].encode("utf-8") if answer.records else None

    headers = message.get_all("DKIM-Signature") or []
    checked: list[tuple[dict[str, str], bool]] = []
    rows = []
    for index, header in enumerate(headers[:MOST_SIGNATURES]):
        tags = _tags(str(header))
        where = f"d={shown(tags.get('d', '?'), 60)} s={shown(tags.get('s', '?'), 40)}"
        try:
            verified = dkim.DKIM(data).verify(idx=index, dnsfunc=dnsfunc)
            reason = "" if verified else "the body or a signed header changed after signing, or the key does not match"
        except dkim.DnsTimeoutError as err:
            rows.append(Row("eml.dkim", "DKIM signature", UNKNOWN, f"{where}: {err}", "run it again when DNS answers",
                            group="received"))
            continue
        except (dkim.DKIMException, ValueError, IndexError) as err:
            verified, reason = False, shown(str(err), 120)
        checked.append((tags, verified))
        domain = tags.get("d", "").lower()
        if verified and aligned(domain, from_domain):
            rows.append(Row("eml.dkim", "DKIM signature", PASS, f"{where}: verified, aligned with the From domain "
                            f"{from_domain}", group="received"))
        elif verified:
            rows.append(Row("eml.dkim", "DKIM signature", WARN, f"{where}: verified, but {domain} is not the From "
                            f"domain {from_domain}: it does not count for DMARC",
                            "authenticate the From domain with your provider (SendGrid: Sender Authentication)",
                            group="received"))
        else:
            rows.append(Row("eml.dkim", "DKIM signature", FAIL, f"{where}: does not verify: {reason}",
                            "check the key published at the selector (mailer doctor shows it); a forwarding or a "
                            "mailing list that rewrites the message breaks the signature too", group="received"))
    if not headers:
        rows.append(Row("eml.dkim", "DKIM signature", FAIL, "the message carries no DKIM-Signature",
                        "set up DKIM with your provider: Gmail and Yahoo refuse unsigned bulk mail", group="received"))
    report.rows += rows
    return checked


def parse_authentication_results(value: str) -> tuple[str, dict[str, tuple[str, dict[str, str]]]]:
    """(authserv-id, {method: (result, properties)}) of one Authentication-Results header (RFC 8601)."""
    text = value
    for _ in range(5):  # comments may nest a little; a hostile header gets no more passes than this
        text = _COMMENT.sub(" ", text)
    parts = [part.strip() for part in text.split(";")]
    authserv = parts[0].split()[0].lower() if parts and parts[0].split() else ""
    methods: dict[str, tuple[str, dict[str, str]]] = {}
    for part in parts[1:]:
        words = part.split()
        if not words or "=" not in words[0]:
            continue
        method, _, result = words[0].partition("=")
        properties = dict(word.partition("=")[::2] for word in words[1:] if "=" in word)
        methods.setdefault(method.lower(), (result.lower(), {k.lower(): v for k, v in properties.items()}))
    return authserv, methods


def receiving_servers(message: Message) -> set[str]:
    """The `by` hosts of the Received headers the receiver added: from the top through the hop where the message
    came in from outside (the first with a `from`). Every header below those was in the message when it came."""
    found = set()
    for header in message.get_all("Received") or []:
        text = " ".join(str(header).split())
        by = re.search(r"\bby\s+([^\s;()]+)", text, re.I)
        if by:
            found.add(by.group(1).lower().rstrip("."))
        if re.match(r"^from\s", text, re.I):
            break
    return found


def _authentication_headers(message: Message) -> list[tuple[str, bool]]:
    """Each Authentication-Results header, and whether the receiver can have added it: it stands above the
    Received header of the hop where the message came in (receivers put their verdict on top, RFC 8601 5). One
    below that was in the message when it arrived, whatever server it names."""
    found, added = [], True
    for name, value in message.items():
        lowered = name.lower()
        if lowered == "received" and re.match(r"^from\s", " ".join(str(value).split()), re.I):
            added = False  # the entry hop: what follows came with the message
        elif lowered == "authentication-results":
            found.append((value, added))
    return found


def _authentication_results(message: Message, trusted: tuple[str, ...],
                            report: DoctorReport) -> dict[str, tuple[str, dict[str, str]]]:
    ids = {t.lower() for t in trusted} or receiving_servers(message)
    believed: dict[str, tuple[str, dict[str, str]]] = {}
    believed_from = ""
    ignored = []
    for header, added in _authentication_headers(message):
        authserv, methods = parse_authentication_results(str(header))
        # The editor's --trust-authserv is their own word on a header; without it, where it stands is what counts.
        if authserv in ids and (added or trusted) and not believed_from:
            believed, believed_from = methods, authserv
        else:
            ignored.append(authserv or "(no authserv-id)")
    shown_ids = ", ".join(sorted(ids)) or "none found"
    if ignored:
        report.rows.append(Row("eml.forged", "Other Authentication-Results", WARN,
                               f"ignored {len(ignored)} not written by the receiving server ({shown_ids}): "
                               + shown(", ".join(ignored), 100) + ": anyone can write such a header before sending",
                               "nothing to fix if you did not add them; --trust-authserv ID believes another server",
                               group="received"))
    if not believed_from:
        report.rows.append(Row("eml.results", "Receiver's verdict", INFO, "no Authentication-Results from the "
                               f"receiving server ({shown_ids}): only this run's own DKIM check counts",
                               "save the message from the inbox it arrived in, or name the receiver's authserv-id "
                               "with --trust-authserv", group="received"))
        return {}
    for method, title, fix in (("spf", "SPF at the receiver", "see SPF in `mailer doctor`: the sending server's "
                                "address is not in the return path domain's record"),
                               ("dmarc", "DMARC at the receiver", "one of SPF or DKIM must pass for a domain "
                                "aligned with the From domain: see `mailer doctor`")):
        result, properties = believed.get(method, ("none", {}))
        about = properties.get("smtp.mailfrom") or properties.get("header.from") or ""
        detail = f"{believed_from} says {method}={shown(result, 20)}" + (f" ({shown(about, 60)})" if about else "")
        status = PASS if result == "pass" else WARN if result in ("none", "neutral", "softfail", "bestguesspass") \
            else FAIL
        report.rows.append(Row(f"eml.{method}", title, status, detail, "" if status == PASS else fix,
                               group="received"))
    return believed


def _alignment(from_domain: str, return_path: str, signatures: list[tuple[dict[str, str], bool]],
               results: dict[str, tuple[str, dict[str, str]]], report: DoctorReport) -> None:
    dkim_aligned = any(ok and aligned(tags.get("d", ""), from_domain) for tags, ok in signatures)
    mailfrom = _domain(results.get("spf", ("", {}))[1].get("smtp.mailfrom", "")) or return_path
    spf_pass = results.get("spf", ("",))[0] == "pass"
    spf_aligned = bool(mailfrom) and aligned(mailfrom, from_domain) and spf_pass
    detail = (f"From {from_domain or '(none)'}; DKIM " + ("aligned" if dkim_aligned else "not aligned")
              + f"; return path {mailfrom or '(unknown)'}: SPF " + ("aligned" if spf_aligned else
                                                                    "not aligned or not passed"))
    status = PASS if dkim_aligned and spf_aligned else WARN if dkim_aligned or spf_aligned else FAIL
    report.rows.append(Row("eml.alignment", "DMARC alignment", status, detail, "" if status == PASS else
                           "sign with a key under the From domain, and send with a return path under it "
                           "(SendGrid: Sender Authentication does both)", group="received"))


def _unsubscribe(message: Message, signatures: list[tuple[dict[str, str], bool]], report: DoctorReport) -> None:
    link = " ".join(str(message.get("List-Unsubscribe", "")).split())
    post = " ".join(str(message.get("List-Unsubscribe-Post", "")).split())
    title = "One-click unsubscribe"
    if "<https://" not in link or post != ONE_CLICK:
        missing = "an https List-Unsubscribe link" if "<https://" not in link else "List-Unsubscribe-Post"
        report.rows.append(Row("eml.unsubscribe", title, FAIL, f"the message as received lacks {missing}",
                               "Gmail and Yahoo want both headers (RFC 8058): check unsubscribe_url in mailer.yaml, "
                               "and that nothing on the way removed them", group="received"))
        return
    # RFC 8058 section 4: both headers must be covered by a valid DKIM signature.
    covered = any(ok and {"list-unsubscribe", "list-unsubscribe-post"} <= set(tags.get("h", "").lower().split(":"))
                  for tags, ok in signatures)
    report.rows.append(Row("eml.unsubscribe", title, PASS if covered else WARN, "List-Unsubscribe (https) and "
                           f"List-Unsubscribe-Post: {ONE_CLICK} kept" + ("" if covered else
                                                                          ", but no valid DKIM signature covers them"),
                           "" if covered else "RFC 8058 wants both headers signed: ask your provider to sign them",
                           group="received"))


def _size(data: bytes, message: Message, report: DoctorReport) -> None:
    html = 0
    for part in message.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            html = max(html, len(payload) if isinstance(payload, bytes) else 0)
    detail = f"{len(data) / 1024:.1f} KB in all, HTML part {html / 1024:.1f} KB"
    if html > GMAIL_CLIP_BYTES:
        report.rows.append(Row("eml.size", "Size", WARN, detail + ": over Gmail's 102 KB, which clips the rest (the "
                               "footer and its unsubscribe link)", "shorten the issue, or turn click tracking off "
                               "(it makes every link longer)", group="received"))
    else:
        report.rows.append(Row("eml.size", "Size", PASS, detail, group="received"))


def _spamassassin(data: bytes, command: str | None) -> Row:
    title = "SpamAssassin score"
    program = shutil.which(command) if command else None
    if program is None:
        return Row("eml.spamassassin", title, INFO, "spamassassin is not installed: not scored",
                   "apt-get install spamassassin, then run this again", group="received")
    try:
        # -L: local tests only (no DNS blocklists, no Razor or Pyzor: they judge the network, not the message).
        done = subprocess.run([program, "-L", "-t"], input=data, capture_output=True, timeout=SPAMASSASSIN_SECONDS,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return Row("eml.spamassassin", title, INFO, f"spamassassin did not finish: {shown(str(err), 100)}",
                   group="received")
    found = re.search(rb"^X-Spam-Status: \w+, score=(-?[\d.]+) required=(-?[\d.]+)[^\n]*((?:\n\s+[^\n]*)*)",
                      done.stdout, re.M)
    if not found:
        return Row("eml.spamassassin", title, INFO, "spamassassin gave no score", group="received")
    score, required = float(found.group(1)), float(found.group(2))
    rules = re.findall(r"[A-Z][A-Z0-9_]{2,}", re.sub(r"autolearn=\S+|version=\S+", "",
                                                    found.group(3).decode("ascii", "replace")))
    detail = f"{score:.1f} (spam from {required:.1f}); rules: {', '.join(rules[:8]) or 'none'}"
    if score >= required:
        return Row("eml.spamassassin", title, FAIL, detail, "look up each rule named; the usual causes are a "
                   "subject in capitals, an image with little text, or a link whose text names another site",
                   group="received")
    status = WARN if score >= required / 2 else PASS
    return Row("eml.spamassassin", title, status, detail, "" if status == PASS else "look up the rules named",
               group="received")

"""The sending domain as a mailbox provider checks it: SPF, DKIM, DMARC and its alignment, MX for replies and
BIMI. Each check returns rows (mailer/checks/rows.py) with the fix in an editor's words; nothing is printed."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from mailer.checks.dns import Answer, Resolver, shown
from mailer.checks.rows import FAIL, INFO, PASS, UNKNOWN, WARN, Row
from mailer.checks.spf import LOOKUP_LIMIT, VOID_LIMIT, spf_records, spf_result, walk_spf

SENDGRID_SPF = "sendgrid.net"
SENDGRID_SELECTORS = ("s1", "s2")
MIN_KEY_BITS = 1024
# A crude organizational domain (the part a company registers): the last two labels, or three under a
# country's second level (example.co.uk). Enough for alignment between a domain and its own subdomains,
# which is what an editor's records are; a public suffix list would decide the rare cases exactly.
_SECOND_LEVEL = {"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or", "go"}


@dataclass(frozen=True)
class Sending:
    """What the From domain must authorise, read from mailer.yaml, SendGrid and the environment by the caller."""

    domain: str  # the From address's domain
    backend: str = "sendgrid"  # sendgrid or smtp
    smtp_host: str | None = None  # MAILER_SMTP_URL's host (smtp backend)
    dkim_selectors: tuple[str, ...] = ()  # given (--dkim-selector); none: SendGrid's s1 and s2
    dkim_domain: str | None = None  # the d= of the signature; default: the From domain
    return_path: str | None = None  # the envelope's domain (SendGrid's emNNNN.<domain>); smtp: the From domain
    reply_domain: str | None = None  # where replies go (reply_to's domain); default: the From domain

    @property
    def selectors(self) -> tuple[str, ...]:
        return self.dkim_selectors or (SENDGRID_SELECTORS if self.backend == "sendgrid" else ())


@dataclass
class DomainFindings:
    rows: list[Row] = field(default_factory=list)
    policy: str | None = None  # the DMARC policy in force for the From domain (none, quarantine, reject)
    dkim_aligned: bool | None = None  # a valid key under an aligned domain; None: could not tell
    spf_aligned: bool | None = None  # the return path aligned and authorising the backend; None: could not tell
    spf_ok: bool | None = None
    dmarc_ok: bool | None = None
    unreachable: bool = False  # the DNS server never answered

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)


def org_domain(name: str) -> str:
    labels = name.lower().rstrip(".").split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


def aligned(one: str, other: str, *, strict: bool = False) -> bool:
    """DMARC alignment of two domains: the same (strict), or the same organizational domain (relaxed)."""
    one, other = one.lower().rstrip("."), other.lower().rstrip(".")
    return one == other if strict else org_domain(one) == org_domain(other)


def check_domain(resolver: Resolver, sending: Sending) -> DomainFindings:
    """Every DNS check of the sending domain, in the order a receiver makes them."""
    found = DomainFindings()
    resolver.check_reaches(sending.domain)
    check_spf(resolver, sending, found)
    check_dkim(resolver, sending, found)
    check_dmarc(resolver, sending, found)
    check_mx(resolver, sending, found)
    check_bimi(resolver, sending, found)
    found.unreachable = resolver.unreachable
    return found


def check_authentication(resolver: Resolver, sending: Sending) -> DomainFindings:
    """SPF, DKIM and DMARC only: what decides whether receivers accept the mail (a live send's first screen)."""
    found = DomainFindings()
    resolver.check_reaches(sending.domain)
    check_spf(resolver, sending, found)
    check_dkim(resolver, sending, found)
    check_dmarc(resolver, sending, found)
    found.unreachable = resolver.unreachable
    return found


def _unknown(check: str, title: str, answer: Answer, *, group: str = "domain") -> Row:
    return Row(check, title, UNKNOWN, answer.why_unanswered() + ": not checked",
               "run mailer doctor again when the network is back (MAILER_DNS names the DNS server asked, if set)",
               group=group)


def _doubled(resolver: Resolver, name: str, domain: str) -> str | None:
    """The name with the domain written twice (`_dmarc.example.com.example.com`), if a record sits there: a
    DNS host's form adds the domain to what is typed, so typing the full name puts the record at the wrong
    label."""
    wrong = f"{name}.{domain}"
    return wrong if resolver.txt(wrong).records or resolver.lookup(wrong, "CNAME").records else None


# --- SPF --------------------------------------------------------------------------------------------------


def check_spf(resolver: Resolver, sending: Sending, found: DomainFindings) -> None:
    domain = sending.domain
    walk = walk_spf(resolver, domain)
    if walk.unanswered and not walk.records:
        found.add(_unknown("spf.record", "SPF record", walk.unanswered))
        return
    records = walk.records
    if not records:
        doubled = _doubled(resolver, domain, domain)
        fix = (f"the record is at {doubled}: in your DNS host's form the name of a record at the domain itself is "
               "`@` (or empty), not the full domain" if doubled else
               f"add a TXT record at {domain} (name `@`): {_suggested_spf(sending)}")
        found.add(Row("spf.record", "SPF record", FAIL, f"{domain} has no SPF record (a TXT record starting "
                      "v=spf1): receivers cannot tell which servers may send as it", fix))
        found.spf_ok = False
        return
    if len(records) > 1:
        found.add(Row("spf.record", "SPF record", FAIL,
                      f"{domain} has {len(records)} SPF records: receivers treat that as a permanent error, and SPF "
                      "fails for every message (" + "; ".join(shown(r, 70) for r in records) + ")",
                      "merge them into one TXT record: v=spf1, every include: of both, then one ~all "
                      f"(e.g. {_merged(records)}), and delete the others"))
        found.spf_ok = False
        return
    record = records[0]
    qualifier = walk.all_qualifier
    if qualifier == "+":
        status, detail, fix = FAIL, "ends with +all: it lets every server on the internet send as you", \
            "end the record with ~all (or -all) instead of +all"
    elif qualifier in (None, "?"):
        status, detail, fix = WARN, "has no ~all or -all at the end: mail from other servers is neither passed nor " \
            "failed", "end the record with ~all (soft fail) or -all"
    else:
        status, detail, fix = PASS, "one record", ""
    found.add(Row("spf.record", "SPF record", status, f"{detail}: {shown(record)}", fix))
    _spf_lookups(walk, found)
    _spf_backend(resolver, sending, walk, found)
    found.spf_ok = all(row.status in (PASS, WARN) for row in found.rows if row.check.startswith("spf."))


def _suggested_spf(sending: Sending) -> str:
    if sending.backend == "sendgrid":
        return "v=spf1 include:sendgrid.net ~all"
    return f"v=spf1 a:{sending.smtp_host} ~all" if sending.smtp_host else "v=spf1 include:YOUR-MAIL-PROVIDER ~all"


def _merged(records: list[str]) -> str:
    terms: list[str] = []
    for record in records:
        for term in record.split()[1:]:
            if not term.lower().endswith("all") and term not in terms:
                terms.append(term)
    return shown("v=spf1 " + " ".join(terms) + " ~all", 120)


def _spf_lookups(walk, found: DomainFindings) -> None:  # noqa: ANN001 - an SpfWalk
    title = "SPF DNS lookups"
    if walk.unanswered:
        found.add(_unknown("spf.lookups", title, walk.unanswered))
        return
    count = f"more than {walk.lookups - 1}" if walk.cut else str(walk.lookups)
    if walk.lookups > LOOKUP_LIMIT:
        found.add(Row("spf.lookups", title, FAIL, f"{count} DNS lookups (include, a, mx, ptr, exists, redirect, "
                      f"counted through every include): over the limit of {LOOKUP_LIMIT}, receivers answer "
                      "permerror and SPF fails for every message",
                      "remove the include: of services you no longer send with; replace a and mx by ip4:/ip6: "
                      "addresses; or ask your DNS host for SPF flattening"))
    elif walk.problems:
        found.add(Row("spf.lookups", title, FAIL, "; ".join(shown(p, 120) for p in walk.problems[:3]),
                      "fix or remove the parts named (a typo in an include's domain, a service that moved)"))
    elif walk.void > VOID_LIMIT:
        found.add(Row("spf.lookups", title, FAIL, f"{walk.void} lookups find no record at all (the limit is "
                      f"{VOID_LIMIT}): a permanent error",
                      "remove the mechanisms that point at names that do not exist"))
    else:
        note = " (some use %{…} macros, which depend on each message: not counted further)" if walk.macros else ""
        found.add(Row("spf.lookups", title, PASS, f"{count} of {LOOKUP_LIMIT} DNS lookups{note}"))


def _spf_backend(resolver: Resolver, sending: Sending, walk, found: DomainFindings) -> None:  # noqa: ANN001
    if sending.backend == "sendgrid":
        title = "SPF allows SendGrid"
        if SENDGRID_SPF in walk.includes:
            found.add(Row("spf.backend", title, PASS, f"includes {SENDGRID_SPF}"))
            return
        if sending.return_path and _sendgrid_return_path(resolver, sending.return_path):
            found.add(Row("spf.backend", title, PASS, f"SendGrid sends with the return path {sending.return_path}, "
                          "whose SPF is SendGrid's (the record at the domain itself is not asked)"))
            return
        found.add(Row("spf.backend", title, FAIL, f"{sending.domain}'s SPF record does not include {SENDGRID_SPF}",
                      "add include:sendgrid.net before the ~all (or authenticate the domain in SendGrid: Settings > "
                      "Sender Authentication, which sets a return path of its own)"))
        return
    host = sending.smtp_host
    title = f"SPF allows {shown(host, 60)}" if host else "SPF allows the SMTP server"
    if not host:
        found.add(Row("spf.backend", title, WARN, "MAILER_SMTP_URL is not set: which server sends is unknown",
                      "export MAILER_SMTP_URL as for a live send, and run mailer doctor again"))
        return
    addresses, failed = resolver.addresses(host)
    if not addresses:
        found.add(_unknown("spf.backend", title, failed) if failed else
                  Row("spf.backend", title, WARN, f"{shown(host, 60)} has no address in DNS",
                      "check the host in MAILER_SMTP_URL"))
        return
    results = {address: spf_result(resolver, address, sending.domain) for address in addresses[:4]}
    passing = [address for address, result in results.items() if result == "pass"]
    if len(passing) == len(results):
        found.add(Row("spf.backend", title, PASS, f"{', '.join(results)}: pass"))
    elif any(result == "temperror" for result in results.values()):
        found.add(Row("spf.backend", title, UNKNOWN, "a lookup on the way got no answer: not checked",
                      "run mailer doctor again when the network is back"))
    else:
        shown_results = ", ".join(f"{address}: {result}" for address, result in results.items())
        found.add(Row("spf.backend", title, FAIL, f"the record does not let the SMTP server send ({shown_results})",
                      f"add a:{host} (or ip4:ADDRESS, or your provider's include:) before the ~all"))


def _sendgrid_return_path(resolver: Resolver, name: str) -> bool:
    answer = resolver.txt(name)
    return any(c == SENDGRID_SPF or c.endswith("." + SENDGRID_SPF) for c in answer.cnames) or \
        any(SENDGRID_SPF in record for record in spf_records(answer))


# --- DKIM -------------------------------------------------------------------------------------------------


def check_dkim(resolver: Resolver, sending: Sending, found: DomainFindings) -> None:
    domain = sending.dkim_domain or sending.domain
    if not sending.selectors:
        found.add(Row("dkim.selector", "DKIM", WARN, "no selector to look up: the SMTP server's signing key is "
                      "published under a name only it knows",
                      "give --dkim-selector NAME: the s= of the DKIM-Signature header in a message you received "
                      "from it (mailer doctor --eml shows it)"))
        return
    good = []
    for selector in sending.selectors:
        row = _dkim_key(resolver, selector, domain, sending)
        found.add(row)
        good.append(row.status == PASS if row.status != UNKNOWN else None)
    if any(good):
        found.dkim_aligned = aligned(domain, sending.domain)
    elif None not in good:
        found.dkim_aligned = False


def _dkim_key(resolver: Resolver, selector: str, domain: str, sending: Sending) -> Row:
    name = f"{selector}._domainkey.{domain}"
    title = f"DKIM {selector}._domainkey"
    check = f"dkim.{selector}"
    answer = resolver.txt(name)
    if not answer.answered:
        if answer.status == "error":
            return Row(check, title, FAIL, f"{name}: {answer.error}", "point the CNAME at the target your "
                       "provider gave (a CNAME pointing back at itself, or at another alias, never reaches a key)")
        return _unknown(check, title, answer)
    records = [r for r in answer.records if "p=" in r]
    if not records:
        doubled = _doubled(resolver, f"{selector}._domainkey.{domain}", domain)
        if doubled:
            fix = f"the record is at {doubled}: in your DNS host's form name it {selector}._domainkey"
        elif sending.backend == "sendgrid" and not sending.dkim_selectors:
            fix = (f"add the CNAME SendGrid gives under Settings > Sender Authentication: {name} → "
                   f"{selector}.domainkey.uNNNN.wlNNN.sendgrid.net")
        else:
            fix = f"publish the signing key at {name} (your mail provider gives the record)"
        via = f" (through {' → '.join(answer.cnames)})" if answer.cnames else ""
        return Row(check, title, FAIL, f"no DKIM key at {name}{via}", fix)
    tags = _tags(records[0])
    via = f" via {answer.cnames[-1]}" if answer.cnames else ""
    key = re.sub(r"\s+", "", tags.get("p", ""))
    if not key:
        return Row(check, title, FAIL, f"{name}{via}: the key is empty (p=): revoked", "publish the current key")
    kind = tags.get("k", "rsa").lower()
    bits = _key_bits(key, kind)
    if bits is None:
        return Row(check, title, FAIL, f"{name}{via}: p= is not a {kind} public key (a line break or quote "
                   "pasted into it?)", "copy the record again from your provider, as one line")
    if kind == "rsa" and bits < MIN_KEY_BITS:
        return Row(check, title, FAIL, f"{name}{via}: a {bits}-bit RSA key: Gmail and others ignore signatures "
                   f"with keys under {MIN_KEY_BITS} bits", "make a 2048-bit key with your provider and publish it")
    return Row(check, title, PASS, f"{name}{via}: a {bits}-bit {kind.upper()} key")


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, _, value = part.partition("=")
        if name.strip():
            tags[name.strip().lower()] = value.strip()
    return tags


def _key_bits(key: str, kind: str) -> int | None:
    try:
        data = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return None
    if kind == "ed25519":
        return 256 if len(data) == 32 else None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        public = serialization.load_der_public_key(data)
    except ValueError:
        try:  # a bare PKCS#1 RSAPublicKey, as some providers publish it
            pem = b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(data) + b"-----END RSA PUBLIC KEY-----\n"
            public = serialization.load_pem_public_key(pem)
        except ValueError:
            return None
    return public.key_size if isinstance(public, rsa.RSAPublicKey) else None


# --- DMARC ------------------------------------------------------------------------------------------------


def dmarc_record(resolver: Resolver, domain: str) -> tuple[str | None, list[str], Answer]:
    """(the name where the record in force was found, its DMARC records, the answer): the From domain's own,
    else its organizational domain's."""
    answer = resolver.txt(f"_dmarc.{domain}")
    records = [r for r in answer.records if re.match(r"^v\s*=\s*DMARC1\s*(;|$)", r.strip(), re.I)]
    if records or not answer.answered or org_domain(domain) == domain:
        return domain, records, answer
    parent = org_domain(domain)
    upper = resolver.txt(f"_dmarc.{parent}")
    parent_records = [r for r in upper.records if re.match(r"^v\s*=\s*DMARC1\s*(;|$)", r.strip(), re.I)]
    return (parent, parent_records, upper) if parent_records or not upper.answered else (domain, [], answer)


def check_dmarc(resolver: Resolver, sending: Sending, found: DomainFindings) -> None:
    domain = sending.domain
    at, records, answer = dmarc_record(resolver, domain)
    title = "DMARC record"
    if not answer.answered:
        found.add(_unknown("dmarc.record", title, answer))
        return
    if not records:
        doubled = _doubled(resolver, f"_dmarc.{domain}", domain)
        fix = (f"the record is at {doubled}: in your DNS host's form name it `_dmarc` (the host adds {domain})"
               if doubled else f"add a TXT record named _dmarc: v=DMARC1; p=none; rua=mailto:dmarc@{domain} (then "
               "move to p=quarantine once the reports show only your own mail)")
        found.add(Row("dmarc.record", title, FAIL, f"no DMARC record at _dmarc.{domain}: Gmail, Yahoo and Microsoft "
                      "refuse bulk mail without one", fix))
        found.dmarc_ok = False
        _alignment(sending, found, {})
        return
    if len(records) > 1:
        found.add(Row("dmarc.record", title, FAIL, f"_dmarc.{at} has {len(records)} DMARC records: receivers "
                      "ignore them all", "keep one and delete the others"))
        found.dmarc_ok = False
        return
    tags = _tags(records[0])
    where = f"_dmarc.{at}" + (f" (the organizational domain's: none at _dmarc.{domain})" if at != domain else "")
    policy_tag = "sp" if at != domain and "sp" in tags else "p"
    policy = tags.get(policy_tag, "").lower()
    if policy not in ("none", "quarantine", "reject"):
        found.add(Row("dmarc.record", title, FAIL, f"{where}: {shown(records[0])}: p= is missing or not none, "
                      "quarantine or reject", "write p=none, p=quarantine or p=reject"))
        found.dmarc_ok = False
        return
    found.policy = policy
    found.dmarc_ok = True
    found.add(Row("dmarc.record", title, PASS, f"{where}: {shown(records[0])}"))
    _policy(tags, policy, found)
    _reports(resolver, domain, tags, found)
    _alignment(sending, found, tags)


def _policy(tags: dict[str, str], policy: str, found: DomainFindings) -> None:
    title = "DMARC policy"
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100
    if policy == "none":
        found.add(Row("dmarc.policy", title, WARN, "p=none: monitoring only; enough for Gmail's and Yahoo's "
                      "bulk-sender rules, but mail forged in your name is still delivered",
                      "once the reports show only your own mail passing, move to p=quarantine, then p=reject"))
    elif pct < 100:
        found.add(Row("dmarc.policy", title, WARN, f"p={policy} for {pct} % of failing mail only (pct={pct})",
                      "remove pct= once you are sure, so the policy applies to all mail"))
    else:
        found.add(Row("dmarc.policy", title, PASS, f"p={policy}: mail that fails DMARC is "
                      + ("refused" if policy == "reject" else "sent to spam")))


def _reports(resolver: Resolver, domain: str, tags: dict[str, str], found: DomainFindings) -> None:
    title = "DMARC reports"
    rua = [part.strip() for part in tags.get("rua", "").split(",") if part.strip()]
    if not rua:
        found.add(Row("dmarc.reports", title, WARN, "no rua= reporting address: you will not see who sends as "
                      "your domain, nor whether your own mail passes", f"add rua=mailto:dmarc@{domain} (or a DMARC "
                      "report service's address) to the record"))
        return
    outside = []
    for address in rua:
        target = address.removeprefix("mailto:").split("!")[0].rpartition("@")[2].lower()
        if target and not aligned(target, domain):
            # RFC 7489 7.1: a report address in another domain must agree to receive them, in its own DNS.
            answer = resolver.txt(f"{domain}._report._dmarc.{target}")
            if answer.answered and not any(r.lower().startswith("v=dmarc1") for r in answer.records):
                outside.append(target)
    if outside:
        found.add(Row("dmarc.reports", title, WARN, f"reports go to {', '.join(outside)}, which has not agreed to "
                      f"receive them ({domain}._report._dmarc.{outside[0]} has no v=DMARC1 record): receivers send "
                      "none", f"ask the report service to publish it, or use an address at {domain}"))
        return
    found.add(Row("dmarc.reports", title, PASS, "reports go to " + shown(", ".join(rua), 100)))


def _alignment(sending: Sending, found: DomainFindings, tags: dict[str, str]) -> None:
    """Whether the From domain aligns with the DKIM signing domain and with the return-path domain."""
    title = "DMARC alignment"
    strict_spf = tags.get("aspf", "r").lower() == "s"
    strict_dkim = tags.get("adkim", "r").lower() == "s"
    dkim_domain = sending.dkim_domain or sending.domain
    if found.dkim_aligned is not None and strict_dkim and dkim_domain != sending.domain:
        found.dkim_aligned = False
    return_path = sending.return_path or (sending.domain if sending.backend == "smtp" else None)
    spf_passes = found.spf_ok if sending.backend == "smtp" else True
    if return_path is None:
        found.spf_aligned = None
    else:
        found.spf_aligned = bool(aligned(return_path, sending.domain, strict=strict_spf) and spf_passes)
    parts = []
    dkim_text = {True: f"DKIM signs as {dkim_domain}: aligned", False: f"DKIM ({dkim_domain}): not aligned or no "
                 "valid key", None: "DKIM: unknown"}[found.dkim_aligned]
    if return_path is None:
        spf_text = "SPF: the return path is unknown (give --return-path em1234." + sending.domain + \
            ", SendGrid's CNAME, or set SENDGRID_API_KEY)"
    else:
        spf_text = f"SPF for the return path {return_path}: " + ("aligned" if found.spf_aligned else "not aligned")
    parts = [dkim_text, spf_text]
    if found.dkim_aligned and found.spf_aligned:
        status, fix = PASS, ""
    elif found.dkim_aligned or found.spf_aligned:
        status = WARN if found.spf_aligned is False or found.dkim_aligned is False else INFO
        fix = ("one aligned result is enough for DMARC, but Microsoft and a forwarded message want both: "
               + ("authenticate the domain in SendGrid (Settings > Sender Authentication) so the return path is "
                  f"em….{sending.domain}" if sending.backend == "sendgrid" and not found.spf_aligned
                  else "publish the DKIM key under the From domain"))
    elif found.dkim_aligned is None and found.spf_aligned is None:
        status, fix = UNKNOWN, "see the DKIM and SPF rows"
    else:
        status = FAIL
        fix = ("authenticate the From domain in SendGrid (Settings > Sender Authentication) and add the three "
               "CNAMEs it gives" if sending.backend == "sendgrid" else
               "have the SMTP server sign with a key published under the From domain")
    found.add(Row("dmarc.alignment", title, status, "; ".join(parts), fix))


# --- MX and BIMI ------------------------------------------------------------------------------------------


def check_mx(resolver: Resolver, sending: Sending, found: DomainFindings) -> None:
    domain = sending.reply_domain or sending.domain
    answer = resolver.lookup(domain, "MX")
    title = "MX for replies"
    if not answer.answered:
        found.add(_unknown("mx.replies", title, answer))
        return
    hosts = [record.split()[-1] for record in answer.records]
    if not hosts or hosts == ["."] or hosts == [""]:
        null = " a null MX (it receives no mail)" if hosts else " no MX record"
        found.add(Row("mx.replies", title, WARN, f"{domain} has{null}: readers' replies bounce, and some receivers "
                      "distrust a sender that cannot receive", f"add the MX records of the mailbox that reads "
                      f"{domain}'s mail (or set reply_to in mailer.yaml to an address that receives)"))
        return
    found.add(Row("mx.replies", title, PASS, f"replies to {domain} go to " + shown(", ".join(hosts[:3]), 100)))


def check_bimi(resolver: Resolver, sending: Sending, found: DomainFindings) -> None:
    answer = resolver.txt(f"default._bimi.{sending.domain}")
    records = [r for r in answer.records if r.lower().startswith("v=bimi1")]
    if not answer.answered:
        found.add(Row("bimi", "BIMI logo", INFO, answer.why_unanswered()))
    elif records:
        tags = _tags(records[0])
        found.add(Row("bimi", "BIMI logo", INFO, f"logo {shown(tags.get('l', '(none)'), 80)}"
                      + (", with a certificate (a=)" if tags.get("a") else ", no certificate: Gmail shows none")))
    else:
        found.add(Row("bimi", "BIMI logo", INFO, "none (optional: your logo beside your mail in Gmail, Yahoo and "
                      "Apple Mail, once DMARC is at quarantine or reject)"))

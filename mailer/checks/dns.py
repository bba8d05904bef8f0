"""DNS as a mailbox provider asks it: one resolver (the system's, or MAILER_DNS's server), short timeouts,
every answer kept as what it was (records, no such name, no record of that type, a server failure, no
answer at all) so that each check can say which it met."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from mailer.addresses import printable
from mailer.errors import ConfigError

DNS_ENV = "MAILER_DNS"
TIMEOUT_SECONDS = 3.0
# A TXT answer is read whole (dnspython stops at 64 KB), but no check needs more than this of one record,
# nor more records than this at one name: a hostile zone's megabyte of text is cut here, with a note.
MAX_RECORD_CHARS = 4096
MAX_RECORDS = 32
# After this many lookups that got no answer at all, the server is taken as unreachable and not asked again:
# without a network, a doctor run or a send's first screen waits seconds, not minutes.
GIVE_UP_AFTER = 2

ANSWERED = ("ok", "nodata", "nxdomain")


@dataclass(frozen=True)
class Answer:
    """What the DNS said of one name and type."""

    name: str
    rtype: str
    status: str  # ok, nodata (the name exists, not this type), nxdomain, servfail, timeout, error, cutoff
    records: tuple[str, ...] = ()  # TXT: its strings joined; MX: "10 mx.example.com"; A/AAAA: the address
    cnames: tuple[str, ...] = ()  # the aliases followed on the way, in order
    error: str = ""
    cut: bool = False  # records or text beyond MAX_RECORDS / MAX_RECORD_CHARS were left out

    @property
    def answered(self) -> bool:
        return self.status in ANSWERED

    def why_unanswered(self) -> str:
        """A sentence on a lookup that got no answer: for the detail of a row that could not be checked."""
        if self.status == "servfail":
            return f"the DNS server failed to answer for {self.name} {self.rtype} (SERVFAIL)"
        if self.status == "timeout":
            return f"no answer for {self.name} {self.rtype} in time (no network, or the DNS server is down)"
        if self.status == "cutoff":
            return f"{self.name} {self.rtype} not asked: {self.error}"
        return f"the lookup of {self.name} {self.rtype} failed: {self.error}"


@dataclass(frozen=True)
class DnsServer:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_dns_server(text: str) -> DnsServer:
    """MAILER_DNS's value: HOST:PORT, HOST alone (port 53), or [IPv6]:PORT. HOST is an IP address."""
    value = text.strip()
    host, port = value, "53"
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif value.count(":") == 1:
        host, port = value.split(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError(port)
    except ValueError:
        raise ConfigError(f"{DNS_ENV}={printable(value)!r} is not a DNS server's address\n"
                          f"    hint: export {DNS_ENV}=127.0.0.1:5353 (an IP address and a port), or unset it to "
                          "use the system's resolver") from None
    return DnsServer(host, number)


@dataclass
class Resolver:
    """Asks one resolver, remembers each answer for the run, and stops asking one that does not answer."""

    server: DnsServer | None = None
    timeout: float = TIMEOUT_SECONDS
    _cache: dict[tuple[str, str], Answer] = field(default_factory=dict)
    _unanswered: int = 0
    _resolver: object | None = None
    _cut_off: str = ""  # why this resolver's "no such name" means nothing (see check_reaches)

    @property
    def unreachable(self) -> bool:
        return self._unanswered >= GIVE_UP_AFTER or bool(self._cut_off)

    def check_reaches(self, domain: str) -> None:
        """Tell a resolver cut off from the internet's DNS from a domain that does not exist.

        A machine without a network may still have a resolver that answers every name with "no such name"
        (NXDOMAIN) at once, as a sandbox's or a captive portal's stub does: every record would then read as
        missing, and every check as failed. When the domain itself does not exist, its top-level domain is
        asked (`com`): if that does not exist either, nothing this resolver says is an answer, and every
        lookup after this is "not checked"."""
        if self.lookup(domain, "SOA").status != "nxdomain":
            return
        top = domain.rstrip(".").rpartition(".")[2]
        if top and self.lookup(top, "SOA").status == "nxdomain":
            self._cut_off = (f"this machine's DNS says even the top-level domain {top} does not exist: it is cut "
                             "off from the internet's DNS (no network?)")

    def _dnspython(self):  # noqa: ANN202 - dnspython's Resolver, imported only when a lookup is made
        if self._resolver is None:
            import dns.resolver

            if self.server is None:
                resolver = dns.resolver.Resolver()
            else:
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = [self.server.host]
                resolver.port = self.server.port
            resolver.timeout = resolver.lifetime = self.timeout
            resolver.cache = None
            self._resolver = resolver
        return self._resolver

    def lookup(self, name: str, rtype: str) -> Answer:
        """The answer for `name` (absolute, without the final dot) and `rtype`."""
        name = name.rstrip(".").lower()
        key = (name, rtype)
        if key not in self._cache:
            self._cache[key] = self._ask(name, rtype)
        return self._cache[key]

    def _ask(self, name: str, rtype: str) -> Answer:
        import dns.exception
        import dns.message
        import dns.name
        import dns.resolver

        if self._cut_off:
            return Answer(name, rtype, "cutoff", error=self._cut_off)
        if self.unreachable:
            return Answer(name, rtype, "timeout", error="not asked: the DNS server did not answer before")
        try:
            answer = self._dnspython().resolve(name + ".", rtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(name, rtype, "nxdomain")
        except dns.resolver.NoNameservers as err:  # SERVFAIL: the server is there, so it is asked again
            if any(isinstance(error[3], dns.message.ChainTooLong) for error in err.kwargs.get("errors") or ()):
                return Answer(name, rtype, "error", error="its CNAME chain is a loop, or longer than 16 aliases")
            return Answer(name, rtype, "servfail", error=printable(str(err))[:300])
        except dns.exception.Timeout:
            self._unanswered += 1
            return Answer(name, rtype, "timeout")
        except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel) as err:
            return Answer(name, rtype, "error", error=f"not a valid DNS name ({err})")
        except dns.exception.DNSException as err:  # a CNAME chain too long (or a loop), a malformed answer
            return Answer(name, rtype, "error", error=printable(str(err))[:300])
        except OSError as err:  # no route, no interface: as good as no answer
            self._unanswered += 1
            return Answer(name, rtype, "timeout", error=str(err))
        cnames = tuple(str(rrset[0].target).rstrip(".").lower()
                       for rrset in answer.chaining_result.cnames if len(rrset))
        if answer.rrset is None:
            return Answer(name, rtype, "nodata", cnames=cnames)
        records, cut = _records(answer.rrset, rtype)
        return Answer(name, rtype, "ok", records=records, cnames=cnames, cut=cut)

    def txt(self, name: str) -> Answer:
        return self.lookup(name, "TXT")

    def addresses(self, name: str) -> tuple[list[str], Answer | None]:
        """A and AAAA addresses of `name`; the first lookup that got no answer, if any."""
        found: list[str] = []
        failed = None
        for rtype in ("A", "AAAA"):
            answer = self.lookup(name, rtype)
            found += answer.records
            if not answer.answered and failed is None:
                failed = answer
        return found, failed


def _records(rrset: object, rtype: str) -> tuple[tuple[str, ...], bool]:
    records: list[str] = []
    cut = False
    for index, rdata in enumerate(rrset):  # type: ignore[attr-defined]
        if index >= MAX_RECORDS:
            cut = True
            break
        if rtype == "TXT":
            # One record may be split into several strings of at most 255 bytes: a receiver joins them
            # with nothing between (RFC 7208 3.3).
            text = b"".join(rdata.strings).decode("utf-8", "replace")
        elif rtype == "MX":
            text = f"{rdata.preference} {str(rdata.exchange).rstrip('.').lower()}"
        elif rtype == "CNAME":
            text = str(rdata.target).rstrip(".").lower()
        else:
            text = rdata.to_text()
        if len(text) > MAX_RECORD_CHARS:
            text, cut = text[:MAX_RECORD_CHARS], True
        records.append(text)
    return tuple(records), cut


def shown(text: str, most: int = 160) -> str:
    """A record as a row shows it: printable (a zone's text may hold terminal escapes) and cut to `most`."""
    text = printable(text)
    return text if len(text) <= most else text[:most - 1] + "…"

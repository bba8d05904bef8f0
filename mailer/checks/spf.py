"""SPF as a receiver reads it (RFC 7208): the one record at a domain, its DNS lookups counted through include,
redirect, a, mx, ptr and exists (more than 10 is a permanent error), and whether it lets an address send."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from mailer.checks.dns import Answer, Resolver

LOOKUP_LIMIT = 10  # RFC 7208 4.6.4: past this, every receiver answers permerror: SPF fails for every message
VOID_LIMIT = 2  # 4.6.4 again: lookups answering no record at all, past this, are a permerror too
WALK_LIMIT = 60  # a hostile or runaway tree is walked no further than this many lookups
MAX_MX = 10
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_COUNTED = {"include", "a", "mx", "ptr", "exists"}
_TERM = re.compile(r"^([+\-~?]?)([a-z0-9]+)(?::([^/]*))?(?:/(\d+))?(?://(\d+))?$", re.I)
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.\-]*)=(.*)$", re.I)
RESULTS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


@dataclass(frozen=True)
class Term:
    qualifier: str
    name: str  # a mechanism (all, include, a, mx, ptr, ip4, ip6, exists) or a modifier (redirect, exp)
    value: str | None
    cidr4: int | None = None
    cidr6: int | None = None
    modifier: bool = False


def spf_records(answer: Answer) -> list[str]:
    """The SPF records among a name's TXT records (`v=spf1` followed by a space or nothing)."""
    return [text for text in answer.records if re.match(r"^v=spf1(\s|$)", text.strip(), re.I)]


def parse_spf(text: str) -> tuple[list[Term], list[str]]:
    """The record's terms, and what is wrong with its syntax (each a permerror at a receiver)."""
    terms: list[Term] = []
    problems: list[str] = []
    for word in text.split()[1:]:
        modifier = _MODIFIER.match(word)
        if modifier and ":" not in modifier.group(1):
            terms.append(Term("", modifier.group(1).lower(), modifier.group(2), modifier=True))
            continue
        match = _TERM.match(word)
        if not match or match.group(2).lower() not in _MECHANISMS:
            problems.append(f"{word!r} is not an SPF mechanism")
            continue
        qualifier, name, value, cidr4, cidr6 = match.groups()
        name = name.lower()
        if name in ("include", "exists") and not value:
            problems.append(f"{word!r} needs a domain ({name}:example.com)")
            continue
        if name in ("ip4", "ip6"):
            try:
                ipaddress.ip_network(f"{value}/{cidr4}" if cidr4 else str(value), strict=False)
            except ValueError:
                problems.append(f"{word!r} is not an address or network")
                continue
        terms.append(Term(qualifier or "+", name, value, int(cidr4) if cidr4 else None,
                          int(cidr6) if cidr6 else None))
    return terms, problems


@dataclass
class SpfWalk:
    """An SPF tree as walked from one domain: its lookups, what it includes, and its problems."""

    domain: str
    records: list[str] = field(default_factory=list)  # the SPF records at the domain itself
    lookups: int = 0
    void: int = 0
    includes: list[str] = field(default_factory=list)  # every domain included or redirected to, in walk order
    problems: list[str] = field(default_factory=list)  # permerrors other than the lookup count
    unanswered: Answer | None = None  # the first lookup on the way that got no answer
    all_qualifier: str | None = None  # the root record's `all` (or its redirect's); None: no all at all
    macros: bool = False  # a domain with %{…} macros: walked no further (it depends on each message)
    cut: bool = False  # walked no further than WALK_LIMIT lookups


def walk_spf(resolver: Resolver, domain: str) -> SpfWalk:
    """Walk the SPF record at `domain` and every record it includes, counting lookups as a receiver does."""
    walk = SpfWalk(domain)
    answer = resolver.txt(domain)
    if not answer.answered:
        walk.unanswered = answer
        return walk
    walk.records = spf_records(answer)
    if len(walk.records) == 1:
        walk.all_qualifier = _walk_record(resolver, walk, domain, walk.records[0], [domain], root=True)
    return walk


def _walk_record(resolver: Resolver, walk: SpfWalk, domain: str, text: str, stack: list[str], *,
                 root: bool = False) -> str | None:
    terms, problems = parse_spf(text)
    walk.problems += [f"{domain}: {problem}" for problem in problems]
    found_all = None
    redirect = None
    for term in terms:
        if term.modifier:
            if term.name == "redirect":
                redirect = term.value
            continue
        if term.name == "all":
            found_all = term.qualifier
        if term.name not in _COUNTED:
            continue
        walk.lookups += 1
        if walk.lookups > WALK_LIMIT:
            walk.cut = True
            return found_all
        target = (term.value or domain).lower().rstrip(".")
        if "%" in target:
            walk.macros = True
            continue
        if term.name == "include":
            _walk_target(resolver, walk, domain, target, stack, "include")
        elif term.name in ("a", "mx", "exists"):
            _count_void(resolver, walk, target, "MX" if term.name == "mx" else "A")
    if redirect and found_all is None:  # RFC 7208 6.1: redirect is ignored when the record has an `all`
        walk.lookups += 1
        target = redirect.lower().rstrip(".")
        if "%" in target:
            walk.macros = True
            return found_all
        redirected = _walk_target(resolver, walk, domain, target, stack, "redirect")
        return redirected if root else found_all
    return found_all



def _walk_target(resolver: Resolver, walk: SpfWalk, domain: str, target: str, stack: list[str],
                 how: str) -> str | None:
    walk.includes.append(target)
    if target in stack:
        walk.problems.append(f"{domain}: {how}:{target} includes itself again (a loop)")
        return None
    answer = resolver.txt(target)
    if not answer.answered:
        walk.unanswered = walk.unanswered or answer
        return None
    records = spf_records(answer)
    if not records:
        walk.void += answer.status in ("nxdomain", "nodata")
        walk.problems.append(f"{domain}: {how}:{target} has no SPF record (a permanent error at receivers)")
        return None
    if len(records) > 1:
        walk.problems.append(f"{domain}: {how}:{target} has {len(records)} SPF records (a permanent error)")
        return None
    return _walk_record(resolver, walk, target, records[0], [*stack, target], root=how == "redirect")


def _count_void(resolver: Resolver, walk: SpfWalk, name: str, rtype: str) -> None:
    answer = resolver.lookup(name, rtype)
    if answer.status in ("nxdomain", "nodata"):
        walk.void += 1
    elif not answer.answered:
        walk.unanswered = walk.unanswered or answer


def spf_result(resolver: Resolver, ip: str, domain: str, *, depth: int = 0) -> str:
    """What a receiver's check_host() answers for mail from `ip` with `domain` in its envelope: pass, fail,
    softfail, neutral, none, permerror or temperror (a lookup that got no answer)."""
    if depth > LOOKUP_LIMIT:
        return "permerror"
    answer = resolver.txt(domain)
    if not answer.answered:
        return "temperror"
    records = spf_records(answer)
    if not records:
        return "none"
    if len(records) > 1:
        return "permerror"
    terms, problems = parse_spf(records[0])
    if problems:
        return "permerror"
    address = ipaddress.ip_address(ip)
    redirect = None
    has_all = any(term.name == "all" and not term.modifier for term in terms)
    for term in terms:
        if term.modifier:
            redirect = term.value if term.name == "redirect" else redirect
            continue
        matched = _matches(resolver, term, address, domain, depth)
        if matched in ("permerror", "temperror"):
            return matched
        if matched:
            return RESULTS[term.qualifier]
    if redirect and not has_all and "%" not in redirect:
        result = spf_result(resolver, ip, redirect.lower().rstrip("."), depth=depth + 1)
        return "permerror" if result == "none" else result
    return "neutral"


def _matches(resolver: Resolver, term: Term, address: ipaddress.IPv4Address | ipaddress.IPv6Address, domain: str,
             depth: int) -> bool | str:
    target = (term.value or domain).lower().rstrip(".")
    if "%" in target:
        return False  # a macro depends on each message: not expanded here
    cidr = term.cidr4 if address.version == 4 else term.cidr6
    if term.name == "all":
        return True
    if term.name in ("ip4", "ip6"):
        network = ipaddress.ip_network(f"{term.value}/{term.cidr4}" if term.cidr4 else str(term.value), strict=False)
        return network.version == address.version and address in network
    if term.name == "include":
        result = spf_result(resolver, str(address), target, depth=depth + 1)
        if result in ("temperror", "permerror"):
            return result
        return "permerror" if result == "none" else result == "pass"
    if term.name == "exists":
        return bool(resolver.lookup(target, "A").records)
    if term.name == "a":
        return _in_any(resolver, target, address, cidr)
    if term.name == "mx":
        hosts = [record.split()[-1] for record in resolver.lookup(target, "MX").records][:MAX_MX]
        return any(_in_any(resolver, host, address, cidr) for host in hosts if host != ".")
    return False  # ptr: deprecated, and never matched here


def _in_any(resolver: Resolver, name: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
            cidr: int | None) -> bool:
    answer = resolver.lookup(name, "A" if address.version == 4 else "AAAA")
    bits = cidr if cidr is not None else address.max_prefixlen
    return any(address in ipaddress.ip_network(f"{record}/{bits}", strict=False) for record in answer.records)

"""A real DNS server on loopback for the tests (dnslib's server, UDP and TCP on one random port), answering
from a zone the test writes, as a recursive resolver would answer a stub: CNAME chains followed within the
answer, "no record of that type" (NOERROR, no data) told apart from "no such name" (NXDOMAIN), names that
answer SERVFAIL, and names that never answer at all (a timeout).

dnslib's own ZoneResolver does neither of the first two (LIBRARY-NOTES): `ChainingResolver` below does.
"""

from __future__ import annotations

import base64
import socket
from dataclasses import dataclass, field

from dnslib import CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSError, DNSHandler, DNSLogger, DNSServer

UDP_LIMIT = 1232
MAX_CHAIN = 8  # what the resolver follows of a CNAME chain before it answers with what it has (a loop)


class NeverAnswer(DNSError):
    """Raised for a silent name: dnslib's handler then sends nothing, and the client times out."""


@dataclass
class Zone:
    """Records by name, and the names that fail: `servfail` answers SERVFAIL, `silent` never answers."""

    records: dict[str, list[RR]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)

    def add(self, name: str, rtype: str, rdata: object, ttl: int = 300) -> Zone:
        key = name.rstrip(".").lower()
        self.records.setdefault(key, []).append(RR(key + ".", getattr(QTYPE, rtype), rdata=rdata, ttl=ttl))
        return self

    def txt(self, name: str, *strings: str | bytes) -> Zone:
        """A TXT record; several strings make one record split the way long SPF and DKIM records are."""
        return self.add(name, "TXT", TXT([s.encode() if isinstance(s, str) else s for s in strings]))

    def cname(self, name: str, target: str) -> Zone:
        return self.add(name, "CNAME", CNAME(target.rstrip(".") + "."))

    def mx(self, name: str, host: str, preference: int = 10) -> Zone:
        return self.add(name, "MX", MX(host.rstrip(".") + ".", preference))

    def a(self, name: str, address: str) -> Zone:
        return self.add(name, "A", A(address))

    def exists(self, name: str) -> bool:
        """A name with records, or with names under it (an empty non-terminal): NOERROR, not NXDOMAIN."""
        key = name.rstrip(".").lower()
        return key in self.records or any(other.endswith("." + key) for other in self.records)


class ChainingResolver(BaseResolver):
    def __init__(self, zone: Zone):
        self.zone = zone

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = request.q.qtype
        seen: set[str] = set()
        for _ in range(MAX_CHAIN):
            if name in self.zone.silent:
                raise NeverAnswer(name)
            if name in self.zone.servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            records = self.zone.records.get(name, [])
            wanted = [rr for rr in records if rr.rtype == qtype]
            if wanted:
                reply.add_answer(*wanted)
                return reply
            alias = next((rr for rr in records if rr.rtype == QTYPE.CNAME), None)
            if alias is None:
                if not self.zone.exists(name):
                    reply.header.rcode = RCODE.NXDOMAIN
                return reply
            reply.add_answer(alias)
            if name in seen:  # a loop: answered with the chain so far, as a recursive server does
                return reply
            seen.add(name)
            name = str(alias.rdata.label).rstrip(".").lower()
        return reply


class TruncatingHandler(DNSHandler):
    """Answers over 1232 bytes (EDNS's safe size) come back over UDP truncated, with the question (dnslib's own
    truncate() drops it, and a client rightly refuses such an answer); the client asks again over TCP."""

    def get_reply(self, data: bytes) -> bytes:
        packed = super().get_reply(data)
        if self.protocol != "udp" or len(packed) <= UDP_LIMIT:
            return packed
        request = DNSRecord.parse(data)
        reply = request.reply()
        reply.header.tc = 1
        return reply.pack()


@dataclass
class RunningDns:
    port: int
    servers: list[DNSServer]

    @property
    def address(self) -> str:
        """MAILER_DNS's value for this server."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
            server.server.server_close()


def start_dns(zone: Zone) -> RunningDns:
    """Serve `zone` on 127.0.0.1, UDP and TCP on the same free port (a truncated UDP answer is asked again
    over TCP, as a real client does)."""
    resolver = ChainingResolver(zone)
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", logf=lambda *_: None)
    for _ in range(20):
        udp = DNSServer(resolver, address="127.0.0.1", port=0, logger=quiet, handler=TruncatingHandler)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=quiet)
        except OSError:
            udp.server.server_close()
            continue
        udp.start_thread()
        tcp.start_thread()
        return RunningDns(port, [udp, tcp])
    raise RuntimeError("no free port for the test DNS server")


def silent_server() -> tuple[socket.socket, str]:
    """A UDP socket that reads nothing and answers nothing: every lookup sent to it times out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"


# -- keys and records for the zones ----------------------------------------------------------------------


def rsa_key(bits: int = 2048):  # noqa: ANN201 - cryptography's private key
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def short_public_key(bits: int = 512):  # noqa: ANN201 - cryptography's public key
    """An RSA public key shorter than cryptography will generate (1024 bits at least): any odd modulus will do
    for a key that is only published, never used."""
    import secrets

    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.RSAPublicNumbers(65537, secrets.randbits(bits) | (1 << (bits - 1)) | 1).public_key()


def dkim_record(key: object) -> str:
    """The TXT record publishing `key`'s public half (v=DKIM1; k=rsa; p=…); a private key or a public one."""
    from cryptography.hazmat.primitives import serialization

    public_key = key.public_key() if hasattr(key, "public_key") else key  # type: ignore[attr-defined]
    public = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()


def private_pem(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,  # type: ignore[attr-defined]
                             serialization.NoEncryption())


def split(text: str, size: int = 255) -> list[str]:
    """A record's text as the strings of at most `size` characters it is published as."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


# -- the zones the doctor's tests use ----------------------------------------------------------------------

SENDGRID_IPS = "v=spf1 ip4:167.89.0.0/17 ip4:208.117.48.0/20 ip4:50.31.32.0/19 ~all"


def good_zone(domain: str = "example.com", *, key: object | None = None, user: int = 1234) -> Zone:
    """A domain authenticated for SendGrid as its Sender Authentication page asks: SPF including sendgrid.net,
    the return path and both DKIM selectors as CNAMEs into SendGrid's zone (the keys split into strings),
    DMARC at quarantine with a reporting address, MX for replies."""
    key = key or rsa_key()
    record = dkim_record(key)
    zone = Zone()
    zone.txt(domain, "google-site-verification=abc123", ).txt(domain, "v=spf1 include:sendgrid.net ~all")
    zone.txt("sendgrid.net", SENDGRID_IPS)
    zone.cname(f"em{user}.{domain}", f"u{user}.wl.sendgrid.net")
    zone.txt(f"u{user}.wl.sendgrid.net", SENDGRID_IPS).mx(f"u{user}.wl.sendgrid.net", "mx.sendgrid.net")
    for selector in ("s1", "s2"):
        zone.cname(f"{selector}._domainkey.{domain}", f"{selector}.domainkey.u{user}.wl.sendgrid.net")
        zone.txt(f"{selector}.domainkey.u{user}.wl.sendgrid.net", *split(record))
    zone.txt(f"_dmarc.{domain}", f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}")
    zone.mx(domain, f"mx.{domain}").a(f"mx.{domain}", "192.0.2.10")
    return zone

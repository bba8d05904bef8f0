"""A real IMAP server for the tests: Dovecot from Debian's packages (dovecot-imapd, in the Makefile's TEST_PACKAGES),
started as a standalone process of the test's own (`dovecot -F -c CONF`) with a generated configuration.

One user from a passwd-file, a Maildir in a temporary folder, IMAP on a loopback port and IMAPS on
another with tests/selfsigned-127.0.0.1.pem (which the client trusts only through SSL_CERT_FILE). It
runs as the user running the tests; as root, its login and internal processes drop to the package's
own `dovenull` and `dovecot` users (Dovecot refuses to run them as root), and the mail belongs to
`dovecot`. The package's own service is not used: whether it runs or not, this one has its own ports,
base folder and instance name.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import SELF_SIGNED_CERT
from tests.loopback_smtp import free_port

DOVECOT = "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "mailbox-password-for-the-tests"


@dataclass
class Dovecot:
    port: int  # IMAP, no TLS
    tls_port: int  # IMAPS
    process: subprocess.Popen
    folder: Path

    def url(self, *, tls: bool = True, password: str = PASSWORD, mailbox: str = "INBOX") -> str:
        scheme, port = ("imaps", self.tls_port) if tls else ("imap", self.port)
        return f"{scheme}://{USER}:{password}@127.0.0.1:{port}/{mailbox}"

    def connect(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(USER, PASSWORD)
        return imap

    def append(self, *messages: bytes, mailbox: str = "INBOX") -> None:
        """Deliver messages as a mail server would: IMAP APPEND, unseen."""
        imap = self.connect()
        try:
            for raw in messages:
                status, answer = imap.append(mailbox, None, None, raw)
                assert status == "OK", answer
        finally:
            imap.logout()

    def seen(self, mailbox: str = "INBOX") -> dict[str, bool]:
        """Each message's subject, and whether it is flagged \\Seen."""
        imap = self.connect()
        try:
            imap.select(mailbox, readonly=True)
            _, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        finally:
            imap.logout()
        found = {}
        for item in data:
            if isinstance(item, tuple):
                subject = item[1].decode().partition(":")[2].strip()
                found[subject] = b"\\Seen" in item[0]
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_dovecot() -> Dovecot:
    assert Path(DOVECOT).exists(), "Dovecot is missing: run `make test-packages` (installs dovecot-imapd)"
    # Dovecot's sockets live in base_dir, and a UNIX socket's path is at most 107 bytes: a short folder.
    folder = Path(tempfile.mkdtemp(prefix="dovecot-", dir="/tmp"))
    folder.chmod(0o755)  # Dovecot's auth process (the internal user) reads the passwd-file in it
    if os.getuid() == 0:
        internal, login = pwd.getpwnam("dovecot"), "dovenull"
        group = grp.getgrgid(internal.pw_gid).gr_name
    else:
        internal = pwd.getpwuid(os.getuid())
        login, group = internal.pw_name, grp.getgrgid(os.getgid()).gr_name
    home = folder / "home"
    home.mkdir()
    os.chown(home, internal.pw_uid, internal.pw_gid)
    (folder / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{internal.pw_uid}:{internal.pw_gid}::{home}\n")
    port, tls_port = free_port(), free_port()
    conf = folder / "dovecot.conf"
    conf.write_text(f"""\
base_dir = {folder}/run
state_dir = {folder}/state
instance_name = mailer-tests-{port}
protocols = imap
listen = 127.0.0.1
log_path = {folder}/dovecot.log
default_internal_user = {internal.pw_name}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = {internal.pw_uid}
ssl = yes
ssl_cert = <{SELF_SIGNED_CERT}
ssl_key = <{SELF_SIGNED_CERT}
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {folder}/passwd
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
""")
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = Dovecot(port, tls_port, process, folder)
    deadline = time.monotonic() + 20
    while True:
        try:
            context = ssl.create_default_context(cafile=str(SELF_SIGNED_CERT))
            imaplib.IMAP4_SSL("127.0.0.1", tls_port, ssl_context=context, timeout=2).logout()
            server.connect().logout()
            return server
        except (OSError, imaplib.IMAP4.error):
            if process.poll() is not None or time.monotonic() > deadline:
                log = (folder / "dovecot.log").read_text() if (folder / "dovecot.log").exists() else ""
                server.stop()
                raise AssertionError(f"Dovecot did not start: {process.communicate()[0]!r}\n{log}") from None
            time.sleep(0.05)

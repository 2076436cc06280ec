"""A private Dovecot IMAP server on 127.0.0.1 for the IMAP tests: the far end of the pollers.

Debian's ``dovecot-imapd`` is started as a subprocess (``dovecot -F``) with a configuration
written into a temporary directory: its own base_dir, maildirs under ``<tmp>/mail/<user>``, a
passwd-file with plaintext passwords, no TLS, listening on a free loopback port. Nothing of the
system's Dovecot (``/etc/dovecot``, ``/run/dovecot``) is used or touched.

Use the ``dovecot`` fixture by importing its function into the test module (the fixture is
named by ``name=``, so parameters called ``dovecot`` do not shadow the import)::

    from tests.dovecot import dovecot_fixture  # noqa: F401

When Dovecot is missing or does not start, the test is skipped, or fails when
``PULPIT_REQUIRE_DOVECOT`` is set (as ``.ci/run`` does), with the tail of Dovecot's log.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from tests.conftest import unavailable

DOVECOT = os.environ.get("PULPIT_TEST_DOVECOT", "/usr/sbin/dovecot")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(root: Path, port: int, uid: int, gid: int) -> str:
    if os.getuid() == 0:
        login_user, internal_user = "dovenull", "root"
    else:
        login_user = internal_user = pwd.getpwuid(os.getuid()).pw_name
    # Dovecot 2.3 names (``dovecot --version``: Debian 12 ships 2.3.19). Dovecot refuses to
    # run a mail process as uid 0, so under root the mail processes run as the ``dovecot``
    # user (owner of mail/ and home/) while auth and the master stay root.
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
instance_name = pulpit-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = {uid}
first_valid_gid = {gid}
default_login_user = {login_user}
default_internal_user = {internal_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


class Dovecot:
    """A running private Dovecot; ``user``/``password`` is the account the tests use."""

    def __init__(self, root: Path, user: str = "desk", password: str = "s3cret-imap") -> None:
        self.root = root
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user = user
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"

    def start(self) -> str | None:
        """Start Dovecot and wait for its port; returns None, or why it did not come up."""
        if not Path(DOVECOT).exists():
            return f"no {DOVECOT} (apt-get install dovecot-imapd)"
        uid, gid = os.getuid(), os.getgid()
        if uid == 0:
            try:
                mail_user = pwd.getpwnam("dovecot")
            except KeyError:
                return "no 'dovecot' system user to run mail processes as"
            uid, gid = mail_user.pw_uid, mail_user.pw_gid
        self.root.chmod(0o711)  # the mail processes must reach mail/ and home/
        for sub in ("run", "state", "mail", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("mail", "home"):
            os.chown(self.root / sub, uid, gid)
        (self.root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        conf = self.root / "dovecot.conf"
        conf.write_text(_config(self.root, self.port, uid, gid))
        with open(self.root / "stderr.log", "wb") as stderr:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.root / "stderr.log").read_text(errors="replace").strip()
                return f"dovecot exited with {self.process.returncode}: {err}\n{self.log_tail()}"
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(200).startswith(b"* OK"):
                        return None
            except OSError:
                time.sleep(0.1)
        self.stop()
        return f"dovecot did not answer on {self.host}:{self.port} within 15 s\n{self.log_tail()}"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self) -> IMAPClient:
        """A logged-in IMAPClient for arranging and checking the mailbox from the test side."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(self, raw: bytes, folder: str = "INBOX", flags: tuple[bytes, ...] = ()) -> None:
        """APPEND one message (RFC 3501 section 6.3.11) to ``folder``, creating it if needed."""
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=flags)

    def messages(self, folder: str = "INBOX") -> dict[int, dict[bytes, Any]]:
        """UID -> {b"FLAGS": ..., b"BODY[]": ...} of every message in ``folder``."""
        with self.client() as client:
            if not client.folder_exists(folder):
                return {}
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            if not uids:
                return {}
            return dict(client.fetch(uids, ["FLAGS", "BODY.PEEK[]"]))

    def imap_config(self, **overrides: Any) -> dict[str, Any]:
        """A mailbox ``imap:`` block (as in the YAML) pointing at this server."""
        cfg: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "tls": False,
            "user": self.user,
            "password_env": "PULPIT_TEST_IMAP_PASSWORD",
            "folder": "INBOX",
            "processed_folder": None,
        }
        cfg.update(overrides)
        return cfg


@pytest.fixture(name="dovecot")
def dovecot_fixture() -> Iterator[Dovecot]:
    """A fresh private Dovecot per test (its own maildirs, so UIDs start at 1)."""
    # Not under pytest's tmp_path: its parents are mode 0700, and Dovecot's mail processes
    # (another user when the tests run as root) must be able to reach the maildirs.
    root = Path(tempfile.mkdtemp(prefix="pulpit-dovecot-"))
    server = Dovecot(root)
    problem = server.start()
    if problem:
        shutil.rmtree(root, ignore_errors=True)
        unavailable("dovecot", problem)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

"""A real SMTP server on 127.0.0.1 that keeps what it receives: the far end of outgoing mail.

Tests point ``PULPIT_OUTBOUND_SMTP_URL`` at it and assert on the messages as delivered, bytes
and all. It can misbehave on purpose, the way relays do:

* ``sink.refuse(451)`` / ``sink.refuse(550, times=1)`` -- answer RCPT with that code (for
  ``times`` recipients, or until ``sink.accept()``);
* ``sink.stop()`` / ``sink.start()`` -- be down (connection refused), then back on the same port;
* ``SmtpSink(auth={"user": "pass"})`` -- offer AUTH; ``SmtpSink(tls_context=...)`` -- offer
  STARTTLS; ``SmtpSink(tls_context=..., implicit_tls=True)`` -- speak TLS from the first byte.

Use the ``smtp_sink`` fixture by importing its function into the test module (the fixture is
named by ``name=``, so parameters called ``smtp_sink`` do not shadow the import)::

    from tests.smtp_sink import smtp_sink_fixture  # noqa: F401
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the sink received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    auth_user: str | None
    # The client's (host, port): two mails with the same peer came over one connection.
    peer: Any = None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    # aiosmtpd finds its hooks by these upper-case names.
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.sink._take_refusal()
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.sink._store(
            ReceivedMail(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(envelope.original_content or envelope.content),
                auth_user=login.decode() if isinstance(login, bytes) else login,
                peer=session.peer,
            )
        )
        return "250 2.0.0 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd server in a background thread collecting messages."""

    def __init__(
        self,
        *,
        port: int | None = None,
        auth: dict[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        smtputf8: bool = False,
    ) -> None:
        self.host = "127.0.0.1"
        self.smtputf8 = smtputf8
        self.port = port or free_port()
        self.auth = auth
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._refusal: str | None = None
        self._refusals_left: int | None = None
        self._controller: Controller | None = None

    # --- What a test sets and reads -----------------------------------------------------

    @property
    def url(self) -> str:
        """The value for ``PULPIT_OUTBOUND_SMTP_URL`` (without credentials)."""
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"

    def refuse(self, code: int, text: str | None = None, *, times: int | None = None) -> None:
        """Answer RCPT with ``code`` for the next ``times`` recipients (None: until accept())."""
        default = "4.3.0 Try again later" if code < 500 else "5.1.1 No such mailbox here"
        self._refusal = f"{code} {text or default}"
        self._refusals_left = times

    def accept(self) -> None:
        self._refusal = None
        self._refusals_left = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Wait until ``count`` messages arrived; returns them all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"the SMTP sink got {len(self.messages)} message(s), not {count}")

    # --- Up and down --------------------------------------------------------------------

    def start(self) -> SmtpSink:
        if self._controller is not None:
            return self
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": self.smtputf8}
        if self.auth is not None:
            kwargs.update(
                authenticator=self._authenticate, auth_require_tls=self.tls_context is not None
            )
        if self.tls_context is not None and self.implicit_tls:
            kwargs["ssl_context"] = self.tls_context
        elif self.tls_context is not None:
            kwargs.update(tls_context=self.tls_context, require_starttls=False)
        controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, ready_timeout=10, **kwargs
        )
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until :meth:`start`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # --- Internals ----------------------------------------------------------------------

    def _take_refusal(self) -> str | None:
        with self._lock:
            if self._refusal is None:
                return None
            refusal = self._refusal
            if self._refusals_left is not None:
                self._refusals_left -= 1
                if self._refusals_left <= 0:
                    self._refusal = None
                    self._refusals_left = None
            return refusal

    def _store(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.messages.append(mail)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.auth is None:
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.auth.get(user) == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@pytest.fixture(name="smtp_sink")
def smtp_sink_fixture() -> Iterator[SmtpSink]:
    """A started sink on a free port; stopped after the test."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


def relay_settings(relay: SmtpSink) -> SimpleNamespace:
    """The settings ``mailgw.outbound.send`` reads, pointing at ``relay``."""
    return SimpleNamespace(
        outbound_smtp_url=relay.url,
        public_url="http://127.0.0.1:8000",
        mail_domain="serwis.example",
        data_dir="/nonexistent",
        extra={},
    )


@pytest.fixture
def fresh_relay_connections() -> Iterator[None]:
    """The kept relay connections are per thread and per URL: a test starts without any."""
    from mailgw import outbound

    outbound._relay_connections = outbound._RelayConnections()
    yield
    outbound._relay_connections = outbound._RelayConnections()

"""The inbound SMTP/LMTP gateway over real connections: what it answers, and what it stored.

Each test starts ``mailgw.server.start`` on a free port over a fresh, migrated database
(SQLite, and PostgreSQL where it is cheap) with two mailboxes, talks to it with ``smtplib``
and then asserts on the database: the promise of docs/mail.md is that a ``250``
means the row is committed and the blob is on disk, ``451`` means nothing was stored,
``550`` refuses an unknown mailbox at RCPT and ``552`` a message over the size limit.
"""

from __future__ import annotations

import shutil
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import BlobStore, DirectoryBlobStore
from core.db import make_engine, make_session_factory, unit_of_work, upgrade
from core.mail.models import InboundMessage, Mailbox
from mailgw.recipients import accepts
from mailgw.server import GatewayHandle, start
from tests.conftest import drop_postgres_database, fresh_postgres_database, service_url
from tests.smtp_sink import free_port

MAILBOXES = ("support@support.example", "Acme@Support.Example")


@dataclass
class Gateway:
    handle: GatewayHandle
    factory: sessionmaker[Session]
    blobs: BlobStore
    url: str
    admin: Engine | None = None

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.handle.port, timeout=10)

    def rows(self) -> list[InboundMessage]:
        with self.factory() as session:
            return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def _database(backend: str, tmp_path: Path) -> tuple[str, Engine | None]:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'gw.db'}", None
    return fresh_postgres_database(service_url("postgres"))


def _seed(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        session.add_all(Mailbox(address=a) for a in MAILBOXES)


def _start(
    backend: str, tmp_path: Path, *, lmtp: bool = False, **overrides: Any
) -> Iterator[Gateway]:
    url, admin = _database(backend, tmp_path)
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    _seed(factory)
    settings = replace(
        Settings(data_dir=tmp_path / "var", smtp_port=free_port(), max_message_bytes=100_000),
        **overrides,
    )
    blobs = DirectoryBlobStore(settings.blob_dir)
    handle = start(settings, factory, blobs=blobs, lmtp=lmtp)
    try:
        yield Gateway(handle, factory, blobs, url, admin)
    finally:
        handle.stop()
        engine.dispose()
        if admin is not None:
            drop_postgres_database(admin, url)


@pytest.fixture(params=["sqlite", "postgres"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gateway]:
    yield from _start(request.param, tmp_path)


@pytest.fixture
def sqlite_gateway(tmp_path: Path) -> Iterator[Gateway]:
    yield from _start("sqlite", tmp_path)


def mail(to: str = "support@support.example", body: str = "Drukarka nie drukuje.\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Anna Nowak <anna@acme.example>"
    msg["To"] = to
    msg["Subject"] = "Awaria drukarki"
    msg["Message-ID"] = make_msgid(domain="acme.example")
    msg.set_content(body)
    # CRLF line ends, as a mail server sends them (RFC 5321 2.3.8).
    return msg.as_bytes(policy=policy.SMTP)


def message_id_of(raw: bytes) -> str:
    for line in raw.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise AssertionError("no Message-ID")


# --- RCPT -----------------------------------------------------------------------------------


def test_an_unknown_recipient_is_refused_at_rcpt(gateway: Gateway) -> None:
    with gateway.client() as smtp:
        smtp.ehlo()
        assert smtp.mail("anna@acme.example")[0] == 250
        code, text = smtp.rcpt("nobody@support.example")
    assert code == 550
    assert text == b"5.1.1 <nobody@support.example>: no such mailbox here"
    assert gateway.rows() == []


def test_a_mailbox_its_plus_address_and_any_case_are_accepted(gateway: Gateway) -> None:
    raw = mail()
    rcpts = ["SUPPORT@support.example", "support+1042@support.example", "acme@support.example"]
    with gateway.client() as smtp:
        refused = smtp.sendmail("anna@acme.example", rcpts, raw)
    assert refused == {}
    (row,) = gateway.rows()
    assert row.envelope_to == rcpts
    assert row.envelope_from == "anna@acme.example"
    assert row.source == "smtp"


def test_a_mail_to_one_known_and_one_unknown_recipient_keeps_the_known_one(
    sqlite_gateway: Gateway,
) -> None:
    with sqlite_gateway.client() as smtp:
        refused = smtp.sendmail(
            "anna@acme.example", ["support@support.example", "ghost@elsewhere.example"], mail()
        )
    assert set(refused) == {"ghost@elsewhere.example"}
    assert refused["ghost@elsewhere.example"][0] == 550
    (row,) = sqlite_gateway.rows()
    assert row.envelope_to == ["support@support.example"]


# --- DATA -----------------------------------------------------------------------------------


def test_250_comes_only_after_the_row_and_the_blob_exist(gateway: Gateway) -> None:
    raw = mail()
    with gateway.client() as smtp:
        smtp.ehlo()
        smtp.mail("anna@acme.example")
        smtp.rcpt("support@support.example")
        code, text = smtp.data(raw)
        # Asked before QUIT, on a separate connection: the commit happened before the 250.
        rows = gateway.rows()
    assert code == 250
    assert text.startswith(b"2.0.0 Ok: queued as ")
    (row,) = rows
    assert text.endswith(str(row.id).encode())
    assert row.message_id == message_id_of(raw)
    assert row.state == "received"
    assert gateway.blobs.read(row.sha256) == raw


def test_the_raw_bytes_are_kept_exactly(sqlite_gateway: Gateway) -> None:
    # 8-bit headers in windows-1250, as old Polish Outlook sends them: no decoding on the way in.
    raw = (
        b"From: =?utf-8?q?Pawe=C5=82?= <pawel@acme.example>\r\n"
        b"Subject: \xaf\xf3\xb3w drukarki\r\n"
        b"Message-ID: <raw-1@acme.example>\r\n\r\n"
        b"Za\xbf\xf3\xb3\xe6 g\xea\xb6l\xb1 ja\xbc\xf1.\r\n"
    )
    with sqlite_gateway.client() as smtp:
        smtp.sendmail("pawel@acme.example", ["support@support.example"], raw)
    (row,) = sqlite_gateway.rows()
    assert sqlite_gateway.blobs.read(row.sha256) == raw
    assert row.message_id == "<raw-1@acme.example>"


def test_lines_with_dots_come_back_exactly_and_the_session_goes_on(gateway: Gateway) -> None:
    # smtplib doubles a line's leading dot (RFC 5321 4.5.2); the gateway reads DATA in pieces
    # up to the lone dot (mailgw.smtp_data), so lines that end with a dot must not end it.
    raw = mail(body="Dziękuję.\n.\n..\n.ukryta linia\nKoniec.\n.")
    second = mail(body="Druga wiadomość.\n")
    with gateway.client() as smtp:
        assert smtp.sendmail("anna@acme.example", ["support@support.example"], raw) == {}
        assert smtp.sendmail("anna@acme.example", ["support@support.example"], second) == {}
    first_row, second_row = gateway.rows()
    assert gateway.blobs.read(first_row.sha256) == raw
    assert gateway.blobs.read(second_row.sha256) == second


def test_size_is_announced_and_a_bigger_mail_gets_552(gateway: Gateway) -> None:
    big = mail() + (b"x" * 76 + b"\r\n") * 2000  # ~156 kB > the 100 kB limit
    with gateway.client() as smtp:
        smtp.ehlo()
        assert smtp.has_extn("size")
        assert smtp.esmtp_features["size"] == "100000"
        # smtplib announces SIZE= itself: refused at MAIL FROM (RFC 1870 6.1).
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail("anna@acme.example", ["support@support.example"], big)
        assert refused.value.smtp_code == 552
        smtp.rset()
        # A client that does not say SIZE is refused after the data (RFC 1870 6.3).
        smtp.mail("anna@acme.example")
        smtp.rcpt("support@support.example")
        code, _ = smtp.data(big)
    assert code == 552
    assert gateway.rows() == []


def test_one_line_longer_than_the_limit_is_552_not_500(sqlite_gateway: Gateway) -> None:
    with sqlite_gateway.client() as smtp:
        smtp.ehlo()
        smtp.mail("anna@acme.example")
        smtp.rcpt("support@support.example")
        code, text = smtp.data(b"Subject: x\r\n\r\n" + b"y" * 300_000 + b"\r\n")
    assert (code, text) == (552, b"5.3.4 Message too big for system")
    assert sqlite_gateway.rows() == []


def test_lines_longer_than_1000_characters_are_accepted(gateway: Gateway) -> None:
    # RFC 5321 4.5.3.1.6 allows refusing them; Postfix accepts them, and a client's broken
    # mailer must not get a bounce from us.
    line = "Zażółć gęślą jaźń " * 120
    raw = mail(body=line[:2000] + "\n")
    raw = raw.replace(b"Content-Transfer-Encoding: quoted-printable", b"")
    long_line = b"<p>" + b"x" * 2000 + b"</p>"
    raw = raw + long_line + b"\r\n"
    with gateway.client() as smtp:
        assert smtp.sendmail("anna@acme.example", ["support@support.example"], raw) == {}
    (row,) = gateway.rows()
    assert long_line in gateway.blobs.read(row.sha256)


# --- When storing fails ----------------------------------------------------------------------


def _broken_factory() -> sessionmaker[Session]:
    def refuse() -> Any:
        raise OSError("connection refused (the test's database is down)")

    return make_session_factory(create_engine("sqlite://", creator=refuse))


def test_a_database_that_cannot_be_asked_at_rcpt_gives_451(sqlite_gateway: Gateway) -> None:
    handler = sqlite_gateway.handle.controller.handler
    handler.session_factory = _broken_factory()
    with sqlite_gateway.client() as smtp:
        smtp.ehlo()
        smtp.mail("anna@acme.example")
        code, text = smtp.rcpt("support@support.example")
    assert (code, text) == (451, b"4.3.0 try again later")


def test_a_database_down_at_data_gives_451_and_stores_nothing(sqlite_gateway: Gateway) -> None:
    handler = sqlite_gateway.handle.controller.handler
    with sqlite_gateway.client() as smtp:
        smtp.ehlo()
        smtp.mail("anna@acme.example")
        assert smtp.rcpt("support@support.example")[0] == 250
        real = handler.session_factory
        handler.session_factory = _broken_factory()
        try:
            code, text = smtp.data(mail())
        finally:
            handler.session_factory = real
    assert (code, text) == (451, b"4.3.0 Could not store the message; please retry")
    assert sqlite_gateway.rows() == []


def test_a_disk_that_cannot_be_written_gives_451_and_no_row(sqlite_gateway: Gateway) -> None:
    handler = sqlite_gateway.handle.controller.handler
    blocker = Path(sqlite_gateway.url.split("///", 1)[1]).parent / "not-a-dir"
    blocker.write_text("a file where the blob directory should be")
    handler.blobs = DirectoryBlobStore(blocker)
    with sqlite_gateway.client() as smtp:
        smtp.ehlo()
        smtp.mail("anna@acme.example")
        smtp.rcpt("support@support.example")
        code, _ = smtp.data(mail())
    assert code == 451
    assert sqlite_gateway.rows() == []


def test_postgres_dropped_mid_transaction_gives_451(tmp_path: Path) -> None:
    gen = _start("postgres", tmp_path)
    gw = next(gen)
    try:
        assert gw.admin is not None
        with gw.client() as smtp:
            smtp.ehlo()
            smtp.mail("anna@acme.example")
            assert smtp.rcpt("support@support.example")[0] == 250
            # The database goes away (FORCE terminates the gateway's connections).
            from sqlalchemy import text

            name = gw.url.rsplit("/", 1)[1]
            with gw.admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            code, _ = smtp.data(mail())
        assert code == 451
    finally:
        gen.close()


# --- LMTP and STARTTLS -----------------------------------------------------------------------


@pytest.fixture
def lmtp_gateway(tmp_path: Path) -> Iterator[Gateway]:
    yield from _start("sqlite", tmp_path, lmtp=True)


def test_lmtp_answers_data_once_per_accepted_recipient(lmtp_gateway: Gateway) -> None:
    raw = mail()
    lmtp = smtplib.LMTP("127.0.0.1", lmtp_gateway.handle.port, timeout=10)
    try:
        assert lmtp.ehlo()[0] == 250  # smtplib.LMTP sends LHLO (RFC 2033 4.1)
        lmtp.mail("anna@acme.example")
        assert lmtp.rcpt("support@support.example")[0] == 250
        assert lmtp.rcpt("ghost@support.example")[0] == 550
        assert lmtp.rcpt("acme+7@support.example")[0] == 250
        # smtplib's data() reads one reply; LMTP sends one per recipient (RFC 2033 4.2).
        lmtp.putcmd("data")
        assert lmtp.getreply()[0] == 354
        lmtp.send(raw + b".\r\n")
        replies = [lmtp.getreply(), lmtp.getreply()]
    finally:
        lmtp.close()
    (row,) = lmtp_gateway.rows()
    assert row.source == "lmtp"
    assert replies == [(250, f"2.0.0 Ok: queued as {row.id}".encode())] * 2


def test_starttls_is_offered_when_a_certificate_is_configured(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )
    url = f"sqlite:///{tmp_path / 'tls.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    _seed(factory)
    base = Settings(
        data_dir=tmp_path / "var",
        smtp_port=free_port(),
        smtp_tls_cert=str(cert),
        smtp_tls_key=str(key),
    )
    settings = base
    handle = start(settings, factory, blobs=DirectoryBlobStore(base.blob_dir))
    try:
        client_ctx = ssl.create_default_context()
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", handle.port, timeout=10) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("starttls")
            smtp.starttls(context=client_ctx)
            assert smtp.sendmail("anna@acme.example", ["support@support.example"], mail()) == {}
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    finally:
        handle.stop()
        engine.dispose()


def test_accepts_reads_the_mailbox_table(sqlite_gateway: Gateway) -> None:
    with sqlite_gateway.factory() as session:
        assert accepts(session, "<ACME+x-1@support.example>", "pulpit.localhost")
        assert accepts(session, "postmaster@pulpit.localhost", "pulpit.localhost")
        assert accepts(session, "Postmaster@support.example", "pulpit.localhost")
        assert not accepts(session, "postmaster@elsewhere.example", "pulpit.localhost")
        assert not accepts(session, "support@support.example.evil", "pulpit.localhost")
        assert not accepts(session, "support", "pulpit.localhost")
        assert not accepts(session, "a@b@support.example", "pulpit.localhost")

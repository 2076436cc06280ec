"""Two hosts, one PostgreSQL database, no shared disk (issue 16, "Several hosts").

Host A runs the SMTP gateway and processes mail; host B runs the web console. Each has a data
directory of its own and an engine of its own; both have ``PULPIT_BLOB_URL=database:``, so a mail
received by A's gateway, with its attachment, is downloaded through B's web byte for byte, and
neither data directory holds a blob file.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import BlobChunk, DatabaseBlobStore, open_blob_store
from core.db import configure_secret_key, make_engine, make_session_factory, unit_of_work
from core.mail.models import InboundMessage
from core.tickets.models import Attachment
from mailgw.process import run_process
from mailgw.server import start
from tests.conftest import TEST_SECRET_KEY, migrated_database
from tests.e2e.conftest import USERS, console_client, seed_world
from tests.smtp_sink import free_port

DOMAIN = "support.example"


@pytest.fixture(params=["postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@dataclass
class Host:
    settings: Settings
    factory: sessionmaker[Session]


def host(data_dir: Path, url: str, **overrides: Any) -> Host:
    """One machine's process: its own data dir, its own engine on the shared database."""
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        blob_url="database:",
        secret_key=TEST_SECRET_KEY,
        mail_domain=DOMAIN,
        **overrides,
    )
    factory = make_session_factory(make_engine(url))
    configure_secret_key(factory, TEST_SECRET_KEY)
    return Host(settings, factory)


@pytest.fixture
def hosts(backend: str, tmp_path: Path) -> Iterator[tuple[Host, Host]]:
    with migrated_database(backend, tmp_path / "db") as shared:
        engine = shared.kw["bind"]
        assert isinstance(engine, Engine)
        url = engine.url.render_as_string(hide_password=False)
        with unit_of_work(shared) as session:
            seed_world(session, DatabaseBlobStore(engine))
        a = host(tmp_path / "host-a", url, smtp_port=free_port())
        b = host(tmp_path / "host-b", url)
        try:
            yield a, b
        finally:
            for h in (a, b):
                bind = h.factory.kw["bind"]
                assert isinstance(bind, Engine)
                bind.dispose()


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


def test_a_mail_received_on_one_host_is_downloaded_through_the_other(
    hosts: tuple[Host, Host],
) -> None:
    a, b = hosts
    photo = bytes(range(256)) * 9000  # 2.3 MB: three chunks of the database store
    msg = EmailMessage()
    msg["From"] = USERS["client"][0]
    msg["To"] = "acme@support.example"
    msg["Subject"] = "Awaria drukarki, zdjęcie w załączniku"
    msg["Message-ID"] = "<two-hosts-1@acme.example>"
    msg.set_content("Drukarka pokazuje błąd E05, zdjęcie w załączniku.")
    msg.add_attachment(photo, maintype="image", subtype="jpeg", filename="błąd E05.jpg")
    raw = msg.as_bytes(policy=policy.SMTP)  # CRLF line ends, as a mail server sends them

    # Host A: its gateway stores the mail (the store from PULPIT_BLOB_URL), its worker processes it.
    gateway = start(a.settings, a.factory)
    try:
        with smtplib.SMTP("127.0.0.1", gateway.port, timeout=30) as client:
            client.sendmail(USERS["client"][0], ["acme@support.example"], raw)
    finally:
        gateway.stop()
    with a.factory() as session:
        inbound_id = session.scalar(
            select(InboundMessage.id).where(
                InboundMessage.message_id == "<two-hosts-1@acme.example>"
            )
        )
    assert inbound_id is not None
    blobs_a = open_blob_store(a.settings.blob_url, a.settings.blob_dir, a.factory)
    assert isinstance(blobs_a, DatabaseBlobStore)
    state = run_process(a.factory, inbound_id, blobs=blobs_a, mail_domain=DOMAIN)
    assert state == "processed"
    with a.factory() as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None and row.event_id is not None
        event_id = row.event_id
        attachment = session.scalar(select(Attachment).where(Attachment.event_id == event_id))
        assert attachment is not None and attachment.filename == "błąd E05.jpg"
        attachment_id, sha = attachment.id, attachment.sha256
        assert session.scalar(
            select(BlobChunk.seq).where(BlobChunk.sha256 == sha, BlobChunk.seq == 2)
        )

    # Host B: its web app, its own data dir with no blob files, serves both byte for byte.
    from web.app import create_app

    app = create_app(b.settings, session_factory=b.factory)
    staff, _ = console_client(app, USERS["coordinator"][0])
    download = staff.get(f"/attachments/{attachment_id}")
    assert download.status_code == 200, download.text[:300]
    assert download.content == photo
    assert download.headers["content-type"].startswith("image/jpeg")
    assert download.headers["content-disposition"] == (
        "attachment; filename*=utf-8''b%C5%82%C4%85d%20E05.jpg"
    )
    assert download.headers["x-content-type-options"] == "nosniff"
    original = staff.get(f"/events/{event_id}/raw")
    assert original.status_code == 200 and original.content == raw

    assert files_under(a.settings.blob_dir) == []
    assert files_under(b.settings.blob_dir) == []
    assert a.settings.blob_dir == a.settings.data_dir / "blobs"

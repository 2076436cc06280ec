"""IMAP in, against a real Dovecot on loopback: store first, then flag or move; never twice.

Each test gets a private Dovecot (``tests/dovecot.py``) and a fresh SQLite file database built
by the Alembic migrations. Messages are built in code and APPENDed from the test side; the
assertions read the ``inbound_messages`` rows and the server's flags.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import BlobStore, DirectoryBlobStore
from core.db import make_engine, make_session_factory, unit_of_work, upgrade
from core.mail.models import ImapFolderState, InboundMessage, Mailbox
from mailgw.imap import ImapPoller, poll_once, start_pollers
from tests.dovecot import Dovecot, dovecot_fixture  # noqa: F401

ADDRESS = "support@desk.example"


def mail(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Anna Kowalska <anna@client.example>"
    msg["To"] = ADDRESS
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="client.example")
    msg.set_content(f"Treść: {subject}\n")
    return msg.as_bytes()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def factory(data_dir: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{data_dir / 'pulpit.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def blobs(data_dir: Path) -> BlobStore:
    return DirectoryBlobStore(data_dir / "blobs")


def stored(factory: sessionmaker[Session]) -> list[InboundMessage]:
    with factory() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def subjects(factory: sessionmaker[Session], blobs: BlobStore) -> list[str]:
    out = []
    for row in stored(factory):
        raw = blobs.read(row.sha256)
        out.append(next(line for line in raw.split(b"\n") if line.startswith(b"Subject:")))
    return [s.decode().split(":", 1)[1].strip() for s in out]


def poll(dovecot: Dovecot, factory: sessionmaker[Session], blobs: BlobStore, **cfg: object) -> int:
    return poll_once(
        factory, ADDRESS, dovecot.imap_config(**cfg), blobs=blobs, password=dovecot.password
    )


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_each_message_is_stored_once_then_flagged_seen(
    dovecot: Dovecot, factory: sessionmaker[Session], blobs: BlobStore
) -> None:
    for n in range(3):
        dovecot.append(mail(f"Awaria {n}"))

    assert poll(dovecot, factory, blobs) == 3

    rows = stored(factory)
    assert [(r.source, r.mailbox, r.state) for r in rows] == [("imap", ADDRESS, "received")] * 3
    assert subjects(factory, blobs) == ["Awaria 0", "Awaria 1", "Awaria 2"]  # UID order
    assert all(r.message_id and r.message_id.endswith("@client.example>") for r in rows)
    on_server = dovecot.messages()
    assert all(b"\\Seen" in m[b"FLAGS"] for m in on_server.values())
    # A second poll finds nothing new.
    assert poll(dovecot, factory, blobs) == 0
    assert len(stored(factory)) == 3


def test_processed_folder_receives_the_stored_messages(
    dovecot: Dovecot, factory: sessionmaker[Session], blobs: BlobStore
) -> None:
    dovecot.append(mail("Do przeniesienia"))

    assert poll(dovecot, factory, blobs, processed_folder="Processed") == 1

    assert dovecot.messages("INBOX") == {}
    moved = list(dovecot.messages("Processed").values())
    assert len(moved) == 1 and b"Do przeniesienia" in moved[0][b"BODY[]"]
    assert len(stored(factory)) == 1


def test_without_move_it_copies_deletes_and_expunges_only_that_message(
    dovecot: Dovecot,
    factory: sessionmaker[Session],
    blobs: BlobStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RFC 6851 section 3.3: a server without MOVE gets COPY + \Deleted + UID EXPUNGE.
    from imapclient import IMAPClient

    real = IMAPClient.has_capability
    monkeypatch.setattr(
        IMAPClient, "has_capability", lambda self, cap: cap != "MOVE" and real(self, cap)
    )
    dovecot.append(mail("Ktoś inny usunął"), flags=(b"\\Seen", b"\\Deleted"))
    dovecot.append(mail("Nasza"))

    assert poll(dovecot, factory, blobs, processed_folder="Processed") == 2

    assert len(dovecot.messages("Processed")) == 2
    assert dovecot.messages("INBOX") == {}


def test_restart_reads_nothing_twice_and_skips_nothing(
    dovecot: Dovecot, factory: sessionmaker[Session], blobs: BlobStore
) -> None:
    dovecot.append(mail("Pierwsza"))
    dovecot.append(mail("Druga"))
    assert poll(dovecot, factory, blobs) == 2
    # Someone marks a message unread in their mail client: still not read again, since the
    # UID is what counts, not the flag.
    with dovecot.client() as client:
        client.select_folder("INBOX")
        client.remove_flags(client.search(["ALL"]), [b"\\Seen"])

    # "Restart": a new poller on the same database and a new connection.
    dovecot.append(mail("Trzecia"))
    poller = ImapPoller(
        factory, ADDRESS, dovecot.imap_config(), blobs=blobs, password=dovecot.password
    )
    poller.start()
    try:
        assert wait_for(lambda: poller.connected.is_set())
    finally:
        poller.stop()

    assert subjects(factory, blobs) == ["Pierwsza", "Druga", "Trzecia"]
    with factory() as session:
        state = session.scalars(select(ImapFolderState)).one()
    assert (state.mailbox, state.folder, state.last_uid) == (ADDRESS, "INBOX", 3)


def test_on_postgresql_a_restart_reads_only_the_new_messages(
    dovecot: Dovecot, pg_factory: sessionmaker[Session], blobs: BlobStore
) -> None:
    dovecot.append(mail("Pierwsza"))
    assert poll(dovecot, pg_factory, blobs) == 1
    dovecot.append(mail("Druga"))
    assert poll(dovecot, pg_factory, blobs) == 1
    assert poll(dovecot, pg_factory, blobs) == 0
    assert subjects(pg_factory, blobs) == ["Pierwsza", "Druga"]
    with pg_factory() as session:
        assert session.scalars(select(ImapFolderState.last_uid)).one() == 2


def test_only_uids_above_the_last_one_are_read_even_when_n_exceeds_the_highest(
    dovecot: Dovecot, factory: sessionmaker[Session], blobs: BlobStore
) -> None:
    # "UID 2:*" on a folder whose highest UID is 1 still returns UID 1 (RFC 3501 section 9).
    dovecot.append(mail("Jedyna"))
    assert poll(dovecot, factory, blobs) == 1
    assert poll(dovecot, factory, blobs) == 0
    assert poll(dovecot, factory, blobs) == 0
    assert len(stored(factory)) == 1


def test_uidvalidity_change_starts_over_from_uid_1(
    dovecot: Dovecot, factory: sessionmaker[Session], blobs: BlobStore
) -> None:
    dovecot.append(mail("Stara 1"), folder="Support")
    dovecot.append(mail("Stara 2"), folder="Support")
    assert poll(dovecot, factory, blobs, folder="Support") == 2
    with factory() as session:
        before = session.scalars(select(ImapFolderState)).one()

    # The folder is recreated: new UIDVALIDITY, UIDs from 1 again, below our last_uid of 2.
    with dovecot.client() as client:
        client.delete_folder("Support")
        client.create_folder("Support")
    dovecot.append(mail("Nowa"), folder="Support")

    assert poll(dovecot, factory, blobs, folder="Support") == 1

    assert subjects(factory, blobs) == ["Stara 1", "Stara 2", "Nowa"]
    with factory() as session:
        after = session.scalars(select(ImapFolderState)).one()
    assert after.uidvalidity != before.uidvalidity
    assert after.last_uid == 1


def test_idle_poller_picks_up_a_new_message_within_seconds(
    dovecot: Dovecot, factory: sessionmaker[Session], blobs: BlobStore
) -> None:
    poller = ImapPoller(
        factory, ADDRESS, dovecot.imap_config(), blobs=blobs, password=dovecot.password
    )
    poller.start()
    try:
        assert wait_for(lambda: poller.connected.is_set())
        time.sleep(0.3)  # let it enter IDLE
        dovecot.append(mail("Przez IDLE"))
        # idle_check waits 30 s; anything faster than that came from the IDLE notification.
        assert wait_for(lambda: len(stored(factory)) == 1, seconds=5)
    finally:
        poller.stop()
    assert not poller.is_alive()
    assert subjects(factory, blobs) == ["Przez IDLE"]
    assert wait_for(lambda: all(b"\\Seen" in m[b"FLAGS"] for m in dovecot.messages().values()))


def test_polling_poller_without_idle(
    dovecot: Dovecot, factory: sessionmaker[Session], blobs: BlobStore
) -> None:
    poller = ImapPoller(
        factory,
        ADDRESS,
        dovecot.imap_config(poll_seconds=0.2),
        blobs=blobs,
        password=dovecot.password,
        use_idle=False,
    )
    poller.start()
    try:
        assert wait_for(lambda: poller.connected.is_set())
        dovecot.append(mail("Przez odpytywanie"))
        assert wait_for(lambda: len(stored(factory)) == 1, seconds=5)
    finally:
        poller.stop()
    assert not poller.is_alive()


def test_a_failure_to_store_leaves_the_message_unseen(
    dovecot: Dovecot, factory: sessionmaker[Session], blobs: BlobStore, tmp_path: Path
) -> None:
    dovecot.append(mail("Baza leży"))
    broken = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'not-migrated.db'}"))

    with pytest.raises(Exception, match="no such table"):
        poll(dovecot, broken, blobs)

    (message,) = dovecot.messages().values()
    assert b"\\Seen" not in message[b"FLAGS"]
    # Once the database is back, the same message is stored and only then flagged.
    assert poll(dovecot, factory, blobs) == 1
    (message,) = dovecot.messages().values()
    assert b"\\Seen" in message[b"FLAGS"]


def test_wrong_password_is_logged_without_the_password(
    dovecot: Dovecot,
    factory: sessionmaker[Session],
    blobs: BlobStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    poller = ImapPoller(
        factory, ADDRESS, dovecot.imap_config(), blobs=blobs, password="wrong-Pa55word"
    )
    poller.start()
    try:
        assert wait_for(lambda: "reconnecting" in caplog.text)
    finally:
        poller.stop()
    assert "wrong-Pa55word" not in caplog.text
    assert not poller.is_alive()


def test_start_pollers_skips_a_mailbox_whose_password_variable_is_missing(
    dovecot: Dovecot,
    factory: sessionmaker[Session],
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with unit_of_work(factory) as session:
        session.add(Mailbox(address=ADDRESS, imap=dovecot.imap_config()))
        session.add(
            Mailbox(
                address="faktury@desk.example",
                imap=dovecot.imap_config(password_env="PULPIT_TEST_NO_SUCH_PASSWORD"),
            )
        )
        session.add(Mailbox(address="smtp-only@desk.example"))
    monkeypatch.setenv("PULPIT_TEST_IMAP_PASSWORD", dovecot.password)
    monkeypatch.delenv("PULPIT_TEST_NO_SUCH_PASSWORD", raising=False)
    dovecot.append(mail("Przez start_pollers"))

    handle = start_pollers(Settings(data_dir=data_dir), factory)
    try:
        assert [p.mailbox_address for p in handle.pollers] == [ADDRESS]
        assert wait_for(lambda: len(stored(factory)) == 1)
    finally:
        handle.stop()
    assert "PULPIT_TEST_NO_SUCH_PASSWORD" in caplog.text
    assert "faktury@desk.example" in caplog.text
    assert dovecot.password not in caplog.text
    assert DirectoryBlobStore(data_dir / "blobs").read(stored(factory)[0].sha256)


def test_start_pollers_without_imap_mailboxes_returns_a_handle(
    factory: sessionmaker[Session], data_dir: Path
) -> None:
    handle = start_pollers(Settings(data_dir=data_dir), factory)
    assert handle.pollers == []
    handle.stop()

"""Two copies of one mail processed at the same moment on PostgreSQL make one ticket.

The copies arrive as two stored rows (sent to two of our mailboxes, or re-sent after a 250
lost to a crash); two workers pick them up together. The Message-ID advisory lock makes the
second wait and then see the first as a duplicate.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.blobs import DirectoryBlobStore
from core.db import unit_of_work
from core.mail.inbound import store_inbound
from core.mail.models import InboundMessage
from core.tickets.models import Ticket
from mailgw.process import process_inbound
from tests.factories import build_world
from tests.mail_builders import DOMAIN, NOW, build


@pytest.mark.postgres
def test_two_copies_processed_together_make_one_ticket(
    pg_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    raw = build(message_id="<twice@client.example>")
    with unit_of_work(pg_factory) as session:
        build_world(session)
        ids = [
            store_inbound(session, raw, source="smtp", blobs=blobs, envelope_to=[to], now=NOW).id
            for to in ("pomoc@support.example", "serwis@support.example")
        ]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(inbound_id: int) -> None:
        try:
            barrier.wait()
            with unit_of_work(pg_factory) as session:
                process_inbound(session, inbound_id, blobs=blobs, mail_domain=DOMAIN, now=NOW)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    with pg_factory() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1
        states = sorted(session.scalars(select(InboundMessage.state)))
        assert states == ["ignored", "processed"]


@pytest.mark.postgres
def test_first_mails_from_one_new_sender_processed_together(
    pg_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Found by bench/ingest.py: the second mail failed on users_email_key and waited a
    minute for the sweep."""
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    with unit_of_work(pg_factory) as session:
        build_world(session)
        ids = [
            store_inbound(
                session,
                build(
                    frm="Nowy <nowy@acme.example>",
                    subject=f"Sprawa {i}",
                    message_id=f"<n{i}@acme.example>",
                ),
                source="smtp",
                blobs=blobs,
                envelope_to=["pomoc@support.example"],
                now=NOW,
            ).id
            for i in range(2)
        ]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(inbound_id: int) -> None:
        try:
            barrier.wait()
            with unit_of_work(pg_factory) as session:
                process_inbound(session, inbound_id, blobs=blobs, mail_domain=DOMAIN, now=NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    with pg_factory() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 2
        assert sorted(session.scalars(select(InboundMessage.state))) == ["processed", "processed"]

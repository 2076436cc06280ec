"""core.mail.mailboxes: one read of the mailboxes per transaction, never a stale one."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core.mail.mailboxes import mailboxes
from core.mail.models import Mailbox


def _addresses(session: Session) -> list[str]:
    return [m.address for m in mailboxes(session)]


def test_one_select_per_transaction(session: Session, engine: Engine) -> None:
    session.add(Mailbox(address="serwis@desk.example"))
    session.commit()
    seen: list[str] = []

    def log(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if "FROM mailboxes" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", log)
    try:
        assert _addresses(session) == ["serwis@desk.example"]
        assert _addresses(session) == ["serwis@desk.example"]
        assert len(seen) == 1
        session.commit()  # a new transaction reads afresh
        assert _addresses(session) == ["serwis@desk.example"]
        assert len(seen) == 2
    finally:
        event.remove(engine, "before_cursor_execute", log)


def test_a_mailbox_added_in_the_transaction_is_seen_flushed_or_not(session: Session) -> None:
    session.add(Mailbox(address="serwis@desk.example"))
    session.flush()
    assert _addresses(session) == ["serwis@desk.example"]
    session.add(Mailbox(address="drukarki@desk.example"))  # not flushed yet
    assert _addresses(session) == ["serwis@desk.example", "drukarki@desk.example"]
    box = session.query(Mailbox).filter_by(address="serwis@desk.example").one()
    box.address = "pomoc@desk.example"
    session.flush()
    assert _addresses(session) == ["pomoc@desk.example", "drukarki@desk.example"]
    session.delete(box)
    assert _addresses(session) == ["drukarki@desk.example"]

"""core.orm.added_since_flush, and the per-transaction reads that rely on it: a coordinator,
a substitution or a mailbox added and not flushed yet is seen without walking session.new."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from core.access.models import Substitution
from core.access.substitutions import substitutes_of
from core.clock import utcnow
from core.directory.models import Client, User
from core.mail.models import Mailbox
from core.notify.recipients import all_coordinators
from core.orm import added_since_flush


def test_what_was_added_is_known_until_the_flush(session: Session) -> None:
    client = Client(name="Kancelaria Nowak")
    person = User(email="anna@nowak.example", role="client", client=client)
    session.add(person)
    assert client in session.new  # joined by cascade
    assert added_since_flush(session, User) == [person]
    assert added_since_flush(session, Mailbox) == []
    box = Mailbox(address="serwis@desk.example")
    person.language = "en"
    session.add(box)
    assert added_since_flush(session, Mailbox) == [box]
    session.flush()
    assert added_since_flush(session, User) == []


def test_a_rollback_forgets_what_was_added(session: Session) -> None:
    session.begin_nested()
    session.add(User(email="jan@desk.example", role="technician"))
    assert len(added_since_flush(session, User)) == 1
    session.rollback()
    assert added_since_flush(session, User) == []


def test_a_coordinator_added_and_not_flushed_is_a_coordinator(session: Session) -> None:
    first = User(email="ewa@desk.example", role="coordinator", name="Ewa")
    session.add(first)
    session.flush()
    assert all_coordinators(session) == [first]
    with session.no_autoflush:
        second = User(email="adam@desk.example", role="coordinator", name="Adam")
        session.add(second)
        # The memo is read again (and the new one, not in the database yet, is not in it);
        # the flush before the next read forgets it.
        assert all_coordinators(session) == [first]
    assert all_coordinators(session) == [first, second]
    technician = User(email="piotr@desk.example", role="technician")
    session.add(technician)  # not a coordinator: the memo stands
    assert all_coordinators(session) == [first, second]
    technician.role = "coordinator"
    assert all_coordinators(session) == [first, second, technician]


def test_a_substitution_added_and_not_flushed_is_seen(session: Session) -> None:
    absent = User(email="ewa@desk.example", role="technician")
    substitute = User(email="adam@desk.example", role="technician")
    session.add_all([absent, substitute])
    session.flush()
    now = utcnow()
    assert substitutes_of(session, [absent.id], now) == set()
    session.add(
        Substitution(
            absent=absent,
            substitute=substitute,
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(days=1),
        )
    )
    assert substitutes_of(session, [absent.id], now) == {substitute.id}

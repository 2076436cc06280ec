"""Full-text search (core.tickets.search) on SQLite and PostgreSQL: words in mail bodies,
Polish with and without diacritics and capitals, prefixes, ranking, snippets, numbers, and
that a client never finds a ticket by a word only an internal note holds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.blobs import DirectoryBlobStore
from core.clock import utcnow
from core.contracts.models import Contract
from core.directory.models import User
from core.tickets import search
from core.tickets import services as svc
from core.tickets.models import Ticket
from core.tickets.queries import TicketFilter, search_tickets
from tests.e2e.conftest import seed_world


@pytest.fixture
def world(session: Session, tmp_path: Path) -> dict[str, User]:
    seed_world(session, DirectoryBlobStore(tmp_path / "blobs"), utcnow())
    session.flush()
    return {u.email: u for u in session.scalars(select(User))}


def _open(session: Session, users: dict[str, User], subject: str, body: str = "") -> Ticket:
    key = session.scalar(select(Contract).where(Contract.code == "ACME-KEY"))
    return svc.open_ticket(
        session,
        svc.NewTicket(
            subject=subject,
            requester=users["anna@acme.example"],
            contract=key,
            body=body or None,
            source="email",
            checked=False,
        ),
    )


def _numbers(session: Session, user: User, q: str, **kw: object) -> list[int]:
    f = TicketFilter(q=q, state="all", **kw)  # type: ignore[arg-type]
    return [t.number for t in search_tickets(session, user, f, utcnow()).items]


def test_a_word_only_in_a_mail_body_is_found_in_every_spelling(
    session: Session, world: dict[str, User]
) -> None:
    ticket = _open(session, world, "Problem z siecią")
    svc.record_email(
        session,
        ticket,
        author=world["anna@acme.example"],
        body="Dzień dobry, Łącze internetowe w biurze nie działa od rana.",
        public=True,
        at=utcnow() + timedelta(minutes=1),
    )
    session.commit()
    coordinator = world["coord@support.example"]
    for q in ("łącze", "Łącze", "ŁĄCZE", "lacze", "LACZE", "Lacze", "łącz", "internetowe łącze"):
        assert _numbers(session, coordinator, q) == [ticket.number], q
    assert _numbers(session, coordinator, "łącze modem") == []
    # The client who wrote it finds it too.
    assert _numbers(session, world["anna@acme.example"], "lacze") == [ticket.number]


def test_changes_are_found_before_the_commit(session: Session, world: dict[str, User]) -> None:
    ticket = _open(session, world, "Ksero kolorowe")
    svc.add_comment(session, ticket, author=world["coord@support.example"], body="Wymieniono bęben")
    session.flush()
    assert _numbers(session, world["coord@support.example"], "beben") == [ticket.number]
    ticket.subject = "Skaner zacina papier"
    session.flush()
    assert _numbers(session, world["coord@support.example"], "zacina") == [ticket.number]
    assert _numbers(session, world["coord@support.example"], "kolorowe") == []


def test_a_client_does_not_find_words_of_internal_notes(
    session: Session, world: dict[str, User]
) -> None:
    ticket = _open(session, world, "Serwer plików")
    svc.add_comment(
        session,
        ticket,
        author=world["coord@support.example"],
        body="Klient zapomniał hasła, ZAŻÓŁĆ gęślą jaźń",
        public=False,
    )
    session.commit()
    coordinator = world["coord@support.example"]
    for q in ("zazolc gesla jazn", "Zażółć GĘŚLĄ", "zapomnial"):
        assert _numbers(session, coordinator, q) == [ticket.number], q
    assert _numbers(session, world["anna@acme.example"], "zazolc") == []
    assert _numbers(session, world["anna@acme.example"], "serwer") == [ticket.number]
    # No snippet from the note for the client either.
    page = search_tickets(
        session, world["anna@acme.example"], TicketFilter(q="serwer", state="all"), utcnow()
    )
    assert search.snippets(session, world["anna@acme.example"], page.items, "zazolc") == {}


def test_requester_client_and_fields_are_searched(session: Session, world: dict[str, User]) -> None:
    ticket = _open(session, world, "Monitor")
    ticket.custom_fields = {**(ticket.custom_fields or {}), "serial_number": "XK-99812"}
    session.flush()
    coordinator = world["coord@support.example"]
    assert ticket.number in _numbers(session, coordinator, "nowak")  # Anna Nowak
    assert ticket.number in _numbers(session, coordinator, "anna@acme.example")
    assert ticket.number in _numbers(session, coordinator, "acme")
    assert _numbers(session, coordinator, "xk 99812") == [ticket.number]


def test_subject_hits_rank_above_body_hits(session: Session, world: dict[str, User]) -> None:
    in_body = _open(session, world, "Inne", "Router nie odpowiada po aktualizacji")
    in_subject = _open(session, world, "Router w serwerowni", "Prosimy o sprawdzenie")
    session.flush()
    found = _numbers(session, world["coord@support.example"], "router")
    assert found == [in_subject.number, in_body.number]
    # An explicit sort keeps its order.
    assert _numbers(session, world["coord@support.example"], "router", sort="number") == sorted(
        found
    )


def test_numbers(session: Session, world: dict[str, User]) -> None:
    ticket = _open(session, world, "Numer")
    coordinator = world["coord@support.example"]
    assert _numbers(session, coordinator, f"#{ticket.number}") == [ticket.number]
    assert ticket.number in _numbers(session, coordinator, str(ticket.number))
    assert search.ticket_number("#1042") == 1042
    assert search.ticket_number(" 1042 ") == 1042
    assert search.ticket_number("10 42") is None


def test_odd_input_never_breaks_the_query(session: Session, world: dict[str, User]) -> None:
    coordinator = world["coord@support.example"]
    for q in ('"', "'", "a:*", "!!!", "x & y | z", "NEAR(a b)", "*", "-", "{subject}", "ó" * 300):
        _numbers(session, coordinator, q)


def test_deleting_a_ticket_removes_its_document(session: Session, world: dict[str, User]) -> None:
    ticket = _open(session, world, "Usuwany kwiatek")
    session.flush()
    assert _numbers(session, world["coord@support.example"], "kwiatek") == [ticket.number]
    tid = ticket.id
    session.expunge_all()
    session.execute(delete(Ticket).where(Ticket.id == tid))
    assert session.get(search.TicketSearch, tid) is None
    assert _numbers(session, world["coord@support.example"], "kwiatek") == []


def test_snippet_marks_the_word_in_the_original_text() -> None:
    text = "A" * 300 + " Łącze <b>internetowe</b> nie działa " + "B" * 300
    snippet = search.highlight(text, search.query_words("lacze"))
    assert snippet is not None
    assert "<mark>Łącze</mark>" in snippet
    assert "&lt;b&gt;internetowe&lt;/b&gt;" in snippet
    assert len(snippet) < 400
    assert search.highlight("nic tu nie ma", ["lacze"]) is None
    # Only at a word's start: "ego" is not in "internetowego".
    assert search.highlight("łącze internetowego", ["ego"]) is None


def test_rebuild_all_builds_every_document(session: Session, world: dict[str, User]) -> None:
    session.execute(delete(search.TicketSearch))
    written = search.rebuild_all(session, batch=3)
    assert written == session.query(Ticket).count()


def test_many_hits_are_counted_up_to_a_limit_and_shown_newest_first(
    session: Session, world: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    tickets = [_open(session, world, f"Kserokopiarka {i}", "toner") for i in range(4)]
    session.flush()
    coordinator = world["coord@support.example"]
    monkeypatch.setattr(search, "COUNT_LIMIT", 2)
    monkeypatch.setattr(search, "RANK_LIMIT", 2)
    page = search_tickets(
        session, coordinator, TicketFilter(q="kserokopiarka", state="all", per_page=3), utcnow()
    )
    assert (page.total, page.more) == (2, True)
    assert [t.number for t in page.items] == [t.number for t in reversed(tickets)][:3]
    monkeypatch.setattr(search, "COUNT_LIMIT", 10)
    page = search_tickets(session, coordinator, TicketFilter(q="kserokopiarka"), utcnow())
    assert (page.total, page.more) == (4, False)


def test_the_console_jumps_to_a_number_the_user_may_see(tmp_path: Path) -> None:
    from tests.e2e.conftest import build_seeded_app, console_client

    seeded = build_seeded_app(tmp_path)
    own, foreign = seeded.numbers["client_web"], seeded.numbers["beta_open"]
    coordinator, _ = console_client(seeded.app, seeded.users["coordinator"])
    for q in (f"%23{own}", str(own), f"+%23{own}+"):
        r = coordinator.get(f"/tickets?q={q}", follow_redirects=False)
        assert (r.status_code, r.headers.get("location")) == (303, f"/tickets/{own}"), q
    client, _ = console_client(seeded.app, seeded.users["client"])
    r = client.get(f"/tickets?q=%23{foreign}", follow_redirects=False)
    assert r.status_code == 200
    assert f'data-number="{foreign}"' not in r.text
    r = client.get("/tickets?q=drukarek")
    assert r.status_code == 200


def test_a_renamed_requester_is_found_by_the_new_name_only(
    session: Session, world: dict[str, User]
) -> None:
    ticket = _open(session, world, "Klawiatura")
    session.flush()
    coordinator = world["coord@support.example"]
    assert ticket.number in _numbers(session, coordinator, "nowak klawiatura")
    world["anna@acme.example"].name = "Anna Kwiatkowska"
    session.flush()
    assert _numbers(session, coordinator, "nowak klawiatura") == []
    assert _numbers(session, coordinator, "kwiatkowska klawiatura") == [ticket.number]


# --- a new event's text is added to the end of its ticket's document ----------------------


def _stored(session: Session, ticket: Ticket) -> dict[str, object]:
    table = search.TicketSearch.__table__
    row = session.execute(select(table).where(table.c.ticket_id == ticket.id)).one()
    return dict(row._mapping)


def _rebuilt(session: Session, ticket: Ticket) -> dict[str, object]:
    (doc,) = search.build_documents(session, [ticket.id])
    return doc.row()


def _mail(session: Session, ticket: Ticket, author: User, body: str, minutes: int, **kw: object):
    return svc.record_email(
        session,
        ticket,
        author=author,
        body=body,
        public=True,
        at=ticket.created_at + timedelta(minutes=minutes),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("at_commit", [False, True], ids=["each-flush", "at-commit"])
def test_appended_text_makes_the_document_a_rebuild_would(
    session: Session, world: dict[str, User], at_commit: bool
) -> None:
    """Public and internal text, punctuation only, HTML only, over several flushes (or once
    before the commit, as a batch of mail does): the document the appends leave is the one a
    rebuild from the whole timeline writes."""
    anna, coord = world["anna@acme.example"], world["coord@support.example"]
    ticket = _open(session, world, "Drukarka", body="Pierwsza wiadomość: papier się zacina.")
    session.commit()
    if at_commit:
        search.rebuild_at_commit(session)
    _mail(session, ticket, anna, "--- !!! ---", 1)  # no word at all
    session.flush()
    svc.add_comment(session, ticket, author=coord, body="Notatka: wymienić rolkę.", public=False)
    _mail(session, ticket, anna, "", 3, body_html="<p>Toner&nbsp;<b>czarny</b> się kończy</p>")
    session.flush()
    svc.add_comment(session, ticket, author=coord, body="Łącze, bęben — sprawdzone?", public=True)
    session.commit()
    assert _stored(session, ticket) == _rebuilt(session, ticket)
    assert _numbers(session, coord, "czarny rolke") == [ticket.number]
    assert _numbers(session, anna, "rolke") == []  # internal text stays internal


def test_text_past_the_cut_stays_past_it(
    session: Session, world: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "PART_LIMIT", 60)
    anna = world["anna@acme.example"]
    ticket = _open(session, world, "Drukarka", body="Papier zacina się w podajniku numer dwa")
    session.commit()
    _mail(session, ticket, anna, "oraz w podajniku numer trzy, co rano", 1)
    session.commit()
    _mail(session, ticket, anna, "i jeszcze toner", 2)
    session.commit()
    stored = _stored(session, ticket)
    assert len(str(stored["body_public"])) == 60
    assert stored == _rebuilt(session, ticket)


def test_a_mail_dated_before_the_last_event_rebuilds_the_document(
    session: Session, world: dict[str, User]
) -> None:
    anna = world["anna@acme.example"]
    ticket = _open(session, world, "Drukarka", body="pierwsza")
    _mail(session, ticket, anna, "trzecia", 30)
    session.commit()
    _mail(session, ticket, anna, "druga", 10)  # an old mail, delivered late
    session.commit()
    stored = _stored(session, ticket)
    assert str(stored["body_public"]).split() == ["pierwsza", "druga", "trzecia"]
    assert stored == _rebuilt(session, ticket)


def test_an_event_rolled_back_with_its_savepoint_leaves_no_text(
    session: Session, world: dict[str, User]
) -> None:
    anna = world["anna@acme.example"]
    ticket = _open(session, world, "Drukarka", body="pierwsza")
    session.commit()
    search.rebuild_at_commit(session)
    _mail(session, ticket, anna, "zostaje", 1)
    savepoint = session.begin_nested()
    _mail(session, ticket, anna, "znika", 2)
    session.flush()
    savepoint.rollback()
    session.commit()
    assert str(_stored(session, ticket)["body_public"]).split() == ["pierwsza", "zostaje"]


def test_many_tickets_get_their_text_appended_in_chunks(
    session: Session, world: dict[str, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "BATCH", 2)
    anna = world["anna@acme.example"]
    tickets = [_open(session, world, f"Drukarka {i}", body=f"pierwsza {i}") for i in range(5)]
    session.commit()
    for i, ticket in enumerate(tickets):
        _mail(session, ticket, anna, f"odpowiedź numer {i}", 1)
    session.commit()
    for ticket in tickets:
        assert _stored(session, ticket) == _rebuilt(session, ticket)
    assert _numbers(session, anna, "odpowiedz numer") == sorted(
        (t.number for t in tickets), reverse=True
    )

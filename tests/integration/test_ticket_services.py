"""Ticket services on a real database: numbering, routing defaults, statuses, fields, blobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.blobs import Blob, DirectoryBlobStore
from core.contracts.models import CustomField
from core.errors import BulkRefused, Forbidden, InputError
from core.tickets import services as svc
from core.tickets.models import Attachment
from core.tickets.timeline import NewAttachment
from tests.factories import World, at, build_world


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def test_numbers_are_monotonic_from_1001(session: Session, world: World) -> None:
    a = svc.open_ticket(session, svc.NewTicket(subject="a", requester=world.users["client"]))
    b = svc.open_ticket(session, svc.NewTicket(subject="b", requester=world.users["client"]))
    assert a.number >= 1001 and b.number == a.number + 1


def test_type_by_subject_keyword_else_default(session: Session, world: World) -> None:
    c = world.acme_contract
    t1 = svc.open_ticket(
        session,
        svc.NewTicket(subject="Przegląd okresowy", requester=world.users["client"], contract=c),
    )
    t2 = svc.open_ticket(
        session, svc.NewTicket(subject="Coś innego", requester=world.users["client"], contract=c)
    )
    assert t1.ticket_type and t1.ticket_type.name == "inspection"
    assert t2.ticket_type and t2.ticket_type.name == "failure"


def test_unknown_type_names_the_choices(session: Session, world: World) -> None:
    with pytest.raises(InputError, match="failure, inspection"):
        svc.open_ticket(
            session,
            svc.NewTicket(
                subject="x",
                requester=world.users["client"],
                contract=world.acme_contract,
                ticket_type="nope",
            ),
        )


def test_deadlines_follow_the_contract_calendar(session: Session, world: World) -> None:
    # Monday 2026-11-23 09:00 Warsaw (08:00 UTC): 2h reaction, 8h resolution on Mon-Fri 08-16.
    t = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Awaria",
            requester=world.users["client"],
            contract=world.acme_contract,
            at=at("2026-11-23 08:00"),
        ),
    )
    assert t.reaction_due == at("2026-11-23 10:00")
    assert t.resolution_due == at("2026-11-24 08:00")  # Tue 09:00 Warsaw


def test_triage_tickets_get_default_statuses(session: Session, world: World) -> None:
    t = svc.open_ticket(session, svc.NewTicket(subject="?", requester=world.users["client"]))
    assert t.contract is None and t.status.category == "new"
    assert t.reaction_due is None


def test_reopen_clears_resolved_at(session: Session, world: World) -> None:
    coord = world.users["coordinator"]
    t = svc.open_ticket(
        session,
        svc.NewTicket(subject="x", requester=world.users["client"], contract=world.acme_contract),
    )
    svc.change_status(session, t, "Resolved", actor=coord)
    assert t.resolved_at is not None and t.status_category == "closed"
    svc.change_status(session, t, "In progress", actor=coord)
    assert t.resolved_at is None
    kinds = [e.type for e in t.events]
    assert kinds.count("status") == 2


def test_moving_out_of_new_is_a_reaction(session: Session, world: World) -> None:
    t = svc.open_ticket(
        session,
        svc.NewTicket(subject="x", requester=world.users["client"], contract=world.acme_contract),
    )
    svc.change_status(session, t, "In progress", actor=world.users["coordinator"])
    assert t.first_response_at is not None


def test_status_event_public_only_when_visible_to_client(session: Session, world: World) -> None:
    t = svc.open_ticket(
        session,
        svc.NewTicket(subject="x", requester=world.users["client"], contract=world.acme_contract),
    )
    hidden = svc.change_status(session, t, "Internal review", actor=world.users["coordinator"])
    shown = svc.change_status(session, t, "In progress", actor=world.users["coordinator"])
    assert hidden is not None and not hidden.public
    assert shown is not None and shown.public


def test_required_field_blocks_closing(session: Session, world: World) -> None:
    session.add(
        CustomField(name="serial", type="text", required=True, contract_id=world.acme_contract.id)
    )
    session.flush()
    coord = world.users["coordinator"]
    t = svc.open_ticket(
        session,
        svc.NewTicket(subject="x", requester=world.users["client"], contract=world.acme_contract),
    )
    with pytest.raises(InputError, match="serial"):
        svc.change_status(session, t, "Resolved", actor=coord)
    with pytest.raises(BulkRefused) as refused:
        svc.bulk_change_status(session, [t.number], "Resolved", actor=coord)
    assert t.number in refused.value.reasons
    svc.set_fields(session, t, actor=coord, custom_fields={"serial": "SN-1"})
    svc.change_status(session, t, "Resolved", actor=coord)
    assert t.status_category == "closed"


def test_custom_field_types_are_checked(session: Session, world: World) -> None:
    session.add_all(
        [
            CustomField(name="on_site", type="bool"),
            CustomField(name="count", type="number"),
            CustomField(name="kind", type="select", options=["a", "b"]),
        ]
    )
    session.flush()
    t = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="x",
            requester=world.users["client"],
            custom_fields={"on_site": "tak", "count": "3", "kind": "a"},
        ),
    )
    assert t.custom_fields == {"on_site": True, "count": 3, "kind": "a"}
    for bad in ({"count": "many"}, {"kind": "c"}, {"nope": 1}):
        with pytest.raises(InputError):
            svc.open_ticket(
                session,
                svc.NewTicket(subject="x", requester=world.users["client"], custom_fields=bad),
            )


def test_bulk_is_all_or_nothing(session: Session, world: World) -> None:
    coord = world.users["coordinator"]
    a = svc.open_ticket(
        session,
        svc.NewTicket(subject="a", requester=world.users["client"], contract=world.acme_contract),
    )
    tri = svc.open_ticket(
        session, svc.NewTicket(subject="b", requester=world.users["client"])
    )  # default statuses
    with pytest.raises(BulkRefused) as refused:
        svc.bulk_change_status(session, [a.number, tri.number], "Internal review", actor=coord)
    assert set(refused.value.reasons) == {tri.number}
    assert a.status.name == "New"


def test_technician_cannot_assign(session: Session, world: World) -> None:
    t = svc.open_ticket(
        session,
        svc.NewTicket(subject="x", requester=world.users["client"], contract=world.acme_contract),
    )
    svc.assign(
        session,
        t,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=None,
    )
    with pytest.raises(Forbidden):
        svc.assign(
            session,
            t,
            actor=world.users["technician"],
            assignee=world.users["technician2"],
            subcontractor=None,
        )


def test_subcontractor_must_serve_the_contract(session: Session, world: World) -> None:
    t = svc.open_ticket(
        session,
        svc.NewTicket(subject="x", requester=world.users["beta"], contract=world.beta_contract),
    )
    with pytest.raises(InputError, match="does not serve"):
        svc.assign(
            session, t, actor=world.users["coordinator"], assignee=None, subcontractor=world.fixit
        )


def test_attachments_are_stored_once_by_sha256(
    session: Session, world: World, tmp_path: Path
) -> None:
    blobs = DirectoryBlobStore(tmp_path)
    data = b"%PDF-1.4 faktura"
    att = NewAttachment(filename="Faktura źródłowa.pdf", content_type="application/pdf", data=data)
    t = svc.open_ticket(
        session,
        svc.NewTicket(subject="x", requester=world.users["client"], attachments=[att]),
        blobs=blobs,
    )
    svc.add_comment(
        session, t, author=world.users["coordinator"], body="again", attachments=[att], blobs=blobs
    )
    digests = session.scalars(select(Attachment.sha256)).all()
    assert len(digests) == 2 and len(set(digests)) == 1
    assert session.scalar(select(func.count()).select_from(Blob)) == 1
    assert blobs.read(digests[0]) == data
    names = session.scalars(select(Attachment.filename)).all()
    assert names == ["Faktura źródłowa.pdf", "Faktura źródłowa.pdf"]


def test_worklog_bounds(session: Session, world: World) -> None:
    t = svc.open_ticket(
        session,
        svc.NewTicket(subject="x", requester=world.users["client"], contract=world.acme_contract),
    )
    svc.assign(
        session,
        t,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=None,
    )
    e = svc.log_work(session, t, actor=world.users["technician"], minutes=45, note="wymiana bębna")
    assert (e.data["action"], e.data["minutes"], e.data["billable"]) == ("logged", 45, True)
    assert (t.worked_minutes, t.billable_minutes) == (45, 45)
    with pytest.raises(InputError):
        svc.log_work(session, t, actor=world.users["technician"], minutes=0)
    with pytest.raises(Forbidden):
        svc.log_work(session, t, actor=world.users["client"], minutes=5)

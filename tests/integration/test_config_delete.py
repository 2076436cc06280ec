"""Deleting from the console: only what nothing refers to; otherwise a 409 that says what
refers to it and what to do instead (core.configuration.delete)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import AuditEntry
from core.configuration import apply_config_text
from core.configuration.delete import delete_object
from core.contracts.models import Contract, CustomField, Status, TicketType
from core.directory.models import Client, Product, Role, Subcontractor, User
from core.errors import Conflict, Forbidden, NotFound
from core.mail.models import Mailbox
from core.sla.models import Calendar
from core.tickets import services as svc
from tests.factories import World, build_world


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def admin(world: World) -> User:
    return world.users["admin"]


def open_ticket(session: Session, world: World, **kw: object) -> None:
    new = svc.NewTicket(
        subject="Printer", requester=world.users["client"], contract=world.acme_contract, **kw
    )  # type: ignore[arg-type]
    svc.open_ticket(session, new)
    session.flush()


def conflict(session: Session, world: World, kind: str, key: str, **kw: object) -> str:
    with pytest.raises(Conflict) as caught:
        delete_object(session, kind, key, admin(world), **kw)  # type: ignore[arg-type]
    assert caught.value.status_code == 409
    return str(caught.value)


def last_entry(session: Session, kind: str, key: str) -> AuditEntry:
    found = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.object_type == kind, AuditEntry.object_key == key)
        .order_by(AuditEntry.id.desc())
    ).first()
    assert found is not None
    return found


def test_a_contract_with_tickets_is_ended_not_deleted(session: Session, world: World) -> None:
    for _ in range(3):
        open_ticket(session, world)
    message = conflict(session, world, "contract", "ACME-2026")
    assert message.startswith(
        "contract ACME-2026 has 3 tickets: end it with an end date (valid_to)"
    )
    assert session.scalar(select(Contract).where(Contract.code == "ACME-2026")) is not None


def test_a_contract_nothing_refers_to_is_deleted_with_its_parts_and_audited(
    session: Session, world: World
) -> None:
    apply_config_text(
        session,
        "contracts:\n  - code: SPARE\n    client: Beta\n"
        "    ticket_types: [{name: failure, reaction: 2h}]\n"
        "    custom_fields: [{name: serial}]\n",
    )
    session.flush()
    world.fixit.contracts.append(session.scalar(select(Contract).where(Contract.code == "SPARE")))
    session.flush()
    before = delete_object(session, "contract", "SPARE", admin(world))
    session.flush()
    assert before["code"] == "SPARE" and before["ticket_types"] == [
        {"name": "failure", "reaction": "2h"}
    ]
    assert session.scalar(select(Contract).where(Contract.code == "SPARE")) is None
    assert session.scalar(select(CustomField).where(CustomField.name == "serial")) is None
    session.refresh(world.fixit)
    assert [c.code for c in world.fixit.contracts] == ["ACME-2026"]
    entry = last_entry(session, "contract", "SPARE")
    assert entry.action == "config.delete" and entry.actor == "admin@support.example"
    assert entry.data["deleted"] is True and entry.data["before"]["client"] == "Beta"
    assert entry.data["changes"]["client"] == ["Beta", None]


def test_a_contract_receiving_mail_keeps_its_mailbox_first(session: Session, world: World) -> None:
    apply_config_text(
        session, "contracts:\n  - {code: SPARE, client: Beta, mailboxes: [spare@support.example]}\n"
    )
    message = conflict(session, world, "contract", "SPARE")
    assert "receives mail at spare@support.example" in message
    delete_object(session, "mailbox", "spare@support.example", admin(world))
    session.flush()
    assert session.scalar(select(Mailbox).where(Mailbox.address == "spare@support.example")) is None
    assert last_entry(session, "mailbox", "spare@support.example").data["before"] == {
        "address": "spare@support.example",
        "contract": "SPARE",
    }
    delete_object(session, "contract", "SPARE", admin(world))


def test_users_are_never_deleted(session: Session, world: World) -> None:
    message = conflict(session, world, "user", "tech@support.example")
    assert "deactivate them instead (active: false)" in message


def test_calendar_client_product_subcontractor_in_use(session: Session, world: World) -> None:
    assert "calendar business is the calendar of contract ACME-2026: give it another" in conflict(
        session, world, "calendar", "business"
    )
    assert "client Acme has a contract (ACME-2026): end it with an end date" in conflict(
        session, world, "client", "Acme"
    )
    assert "product Printer X200 is on contract ACME-2026" in conflict(
        session, world, "product", "Printer X200"
    )
    assert "subcontractor FixIt has 1 user (sub@fixit.example)" in conflict(
        session, world, "subcontractor", "FixIt"
    )


def test_unused_calendar_client_product_subcontractor_and_role_go(
    session: Session, world: World
) -> None:
    apply_config_text(
        session,
        "calendars:\n  - {name: spare, hours: 24/7}\nclients:\n  - {name: Gamma}\n"
        "products:\n  - {name: Scanner}\nsubcontractors:\n  - {name: Idle}\n"
        "roles:\n  - {name: helper, base: technician, grant: [assign]}\n",
    )
    session.flush()
    for kind, key, model, column in (
        ("calendar", "spare", Calendar, Calendar.name),
        ("client", "Gamma", Client, Client.name),
        ("product", "Scanner", Product, Product.name),
        ("subcontractor", "Idle", Subcontractor, Subcontractor.name),
        ("role", "helper", Role, Role.name),
    ):
        delete_object(session, kind, key, admin(world))
        session.flush()
        assert session.scalar(select(model).where(column == key)) is None, kind
        assert last_entry(session, kind, key).data["deleted"] is True
    with pytest.raises(NotFound):
        delete_object(session, "calendar", "spare", admin(world))


def test_a_role_held_by_users_stays(session: Session, world: World) -> None:
    apply_config_text(
        session,
        "roles:\n  - {name: helper, base: technician}\n"
        "users:\n  - {email: tech@support.example, role: helper}\n",
    )
    assert "role helper is held by 1 user (tech@support.example): give them another role" in (
        conflict(session, world, "role", "helper")
    )


def test_a_contracts_status_ticket_type_and_field(session: Session, world: World) -> None:
    open_ticket(session, world)  # New, failure
    assert "status New is the status of a ticket: move it" in conflict(
        session, world, "status", "New", contract="ACME-2026"
    )
    assert "ticket type failure of contract ACME-2026 is the type of a ticket" in conflict(
        session, world, "ticket_type", "ACME-2026/failure"
    )
    assert "the only one of category closed" in conflict(
        session, world, "status", "ACME-2026/Resolved"
    )
    delete_object(session, "ticket_type", "inspection", admin(world), contract="ACME-2026")
    session.flush()
    assert session.scalar(select(TicketType).where(TicketType.name == "inspection")) is None
    entry = last_entry(session, "contract", "ACME-2026")
    assert entry.data["what"] == "ticket_type" and entry.data["name"] == "inspection"
    assert entry.data["changes"]["ticket_types.inspection.reaction"] == ["1d", None]

    apply_config_text(
        session,
        "contracts:\n  - code: ACME-2026\n    statuses: [{name: Parked, category: paused}]\n",
    )
    session.flush()
    delete_object(session, "status", "ACME-2026/Parked", admin(world))
    session.flush()
    assert session.scalar(select(Status).where(Status.name == "Parked")) is None


def test_custom_fields_with_values_dependents_or_requirements_stay(
    session: Session, world: World
) -> None:
    apply_config_text(
        session,
        "custom_fields:\n"
        "  - {name: location, type: select, options: [A, B]}\n"
        "  - {name: room, type: text, depends_on: {field: location, when: [A]}}\n"
        "  - {name: serial}\n  - {name: unused}\n"
        "contracts:\n  - {code: BETA-247, required_fields: {serial: close}}\n",
    )
    session.flush()
    assert "custom field location is followed by room (depends_on)" in conflict(
        session, world, "custom_field", "location"
    )
    open_ticket(session, world, custom_fields={"location": "A", "room": "12"})
    assert "custom field room has a value on a ticket: keep it" in conflict(
        session, world, "custom_field", "room"
    )
    assert "required on contract BETA-247 (required_fields)" in conflict(
        session, world, "custom_field", "serial"
    )
    delete_object(session, "custom_field", "unused", admin(world))
    session.flush()
    assert session.scalar(select(CustomField).where(CustomField.name == "unused")) is None
    assert last_entry(session, "custom_field", "unused").data["before"] == {"name": "unused"}


def test_only_who_may_configure_deletes(session: Session, world: World) -> None:
    with pytest.raises(Forbidden):
        delete_object(session, "product", "Printer X200", world.users["coordinator"])


def test_a_contracts_own_field_goes_to_the_contracts_history(
    session: Session, world: World
) -> None:
    apply_config_text(
        session,
        "contracts:\n  - code: BETA-247\n    custom_fields: [{name: meter, type: number}]\n",
    )
    session.flush()
    delete_object(session, "custom_field", "BETA-247/meter", admin(world))
    session.flush()
    assert session.scalar(select(CustomField).where(CustomField.name == "meter")) is None
    entry = last_entry(session, "contract", "BETA-247")
    assert entry.action == "config.delete" and entry.data["what"] == "custom_field"
    assert entry.data["changes"]["custom_fields.meter.type"] == ["number", None]


def test_a_refusal_reads_in_polish_in_the_console(session: Session, world: World) -> None:
    from core.errors import localized
    from core.i18n import compiled_catalogue
    from web.i18n import LOCALE_DIR

    open_ticket(session, world)
    with pytest.raises(Conflict) as caught:
        delete_object(session, "contract", "ACME-2026", admin(world))
    polish = compiled_catalogue(LOCALE_DIR / "pl" / "LC_MESSAGES" / "messages.po", "pl")
    assert localized(caught.value, polish.gettext).startswith(
        "umowa ACME-2026 ma zgłoszenie: zamiast usuwać, zakończ ją datą końca (valid_to)"
    )

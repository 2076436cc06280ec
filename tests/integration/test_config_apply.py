"""Applying declarative configuration on SQLite and PostgreSQL: idempotency, export, seeding."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from core.access.accounts import authenticate
from core.audit import AuditEntry
from core.configuration import ConfigError, apply_config_file, apply_config_text, export_config
from core.contracts.models import Contract, Status, TicketType
from core.directory.models import Product, User
from core.mail.models import Mailbox
from core.orm import Base
from core.sla import clocks as sla_clock
from core.tickets.models import Ticket

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
DEMO = EXAMPLES / "demo.yaml"
MINIMAL = EXAMPLES / "minimal.yaml"
NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)  # a Wednesday


def row_counts(session: Session) -> dict[str, int]:
    """Rows per table, for every table the migrations have created."""
    existing = set(inspect(session.connection()).get_table_names())
    return {
        table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
        for table in Base.metadata.sorted_tables
        if table.name in existing
    }


def ticket(session: Session, ref: str) -> Ticket:
    found = session.scalar(select(Ticket).where(Ticket.ref == ref))
    assert found is not None, ref
    return found


def test_demo_applies_and_every_demo_login_works(session: Session) -> None:
    result = apply_config_file(session, DEMO, actor="test", now=NOW)
    assert result.changed
    assert str(result).startswith("calendars: 3 created; clients: 3 created; contacts: 8 created")
    assert result.counts["tickets"].created == 36
    assert result.changed_calendars == {"business", "always", "business-lunch"}
    assert len(result.changed_contracts) == 4
    roles = {}
    for email in (
        "admin@serwis.example",
        "koordynator@serwis.example",
        "technik@serwis.example",
        "technik2@serwis.example",
        "podwykonawca@techpartner.example",
        "anna.nowak@nowak-kancelaria.example",
    ):
        roles[email] = authenticate(session, email, "demo").role
    assert set(roles.values()) == {"admin", "coordinator", "technician", "subcontractor", "client"}


def test_applying_twice_changes_nothing(session: Session) -> None:
    apply_config_file(session, DEMO, now=NOW)
    before = row_counts(session)
    entries = session.scalar(select(func.count(AuditEntry.id)))
    again = apply_config_file(session, DEMO, now=NOW + timedelta(days=2))
    assert str(again) == "nothing changed" and not again.changed
    assert again.counts["tickets"].unchanged == 36
    assert not session.dirty and not session.new and not session.deleted
    assert row_counts(session) == before
    # The first apply's summary and per-object entries; the second adds none.
    assert session.scalar(select(func.count(AuditEntry.id))) == entries
    summary = select(func.count(AuditEntry.id)).where(AuditEntry.action == "config.apply")
    assert session.scalar(summary) == 1


def test_export_then_apply_is_a_no_op_and_exports_no_secrets(session: Session) -> None:
    apply_config_file(session, DEMO, now=NOW)
    before = row_counts(session)
    text = export_config(session)
    assert "argon2" not in text and "password" not in text
    assert "DEMO-0" not in text  # tickets are data, not configuration
    result = apply_config_text(session, text, source="export.yaml", now=NOW)
    assert str(result) == "nothing changed"
    assert not session.dirty and not session.new
    assert row_counts(session) == before


def test_export_builds_the_same_configuration_elsewhere(session: Session) -> None:
    apply_config_file(session, MINIMAL, now=NOW)
    text = export_config(session)
    assert "ACME-2026" in text and "business" in text
    # The export of an export is the same text: nothing is lost or reordered on the way.
    apply_config_text(session, text, now=NOW)
    assert export_config(session) == text


def test_a_bad_file_changes_nothing(session: Session) -> None:
    bad = DEMO.read_text(encoding="utf-8").replace("reaction: 30m", "reaction: 30 minutes", 1)
    empty = row_counts(session)
    with pytest.raises(ConfigError, match=r"demo\.yaml:\d+: contracts\[1\]\.ticket_types\[0\]"):
        apply_config_text(session, bad, source="demo.yaml", now=NOW)
    assert row_counts(session) == empty
    apply_config_file(session, DEMO, now=NOW)
    before = row_counts(session)
    with pytest.raises(ConfigError):
        apply_config_text(session, bad.replace("Rafał Pawlak", "Rafał P."), now=NOW)
    assert not session.dirty and not session.new
    assert row_counts(session) == before


def test_seeded_tickets_have_the_timeline_the_services_produce(session: Session) -> None:
    apply_config_file(session, DEMO, now=NOW)
    closed = ticket(session, "DEMO-002")
    assert closed.status.name == "Zamknięte" and closed.status_category == "closed"
    assert closed.created_at == NOW - timedelta(days=6)
    assert [e.type for e in closed.events] == [
        "email_in", "assignment", "comment", "status", "worklog", "status",
        "status", "worklog", "comment", "status", "comment", "status",
    ]  # fmt: skip
    assert closed.first_response_at == closed.created_at + timedelta(minutes=40)
    assert closed.resolved_at == closed.created_at + timedelta(days=4)
    assert closed.custom_fields["on_site"] is True

    handed = ticket(session, "DEMO-005")
    assert handed.status.name == "Przekazane podwykonawcy"
    assert (
        handed.subcontractor is not None and handed.subcontractor.name == "TechPartner Sp. z o.o."
    )
    assert handed.assignee is None
    assert [e.author.email for e in handed.events if e.type == "worklog"] == [  # type: ignore[union-attr]
        "podwykonawca@techpartner.example"
    ]

    waiting = ticket(session, "DEMO-004")
    assert waiting.status.name == "Oczekuje na klienta" and waiting.sla_paused

    answered = ticket(session, "DEMO-031")  # the client's reply ended the wait by itself
    assert answered.status.name == "W realizacji" and not answered.sla_paused
    resumed = [e for e in answered.events if e.type == "status"][-1]
    assert resumed.data["reason"] == "client_reply"
    assert resumed.author is not None and resumed.author.email == "marek.dabrowski@bilans.example"

    triage = ticket(session, "DEMO-033")
    assert triage.contract is None and triage.status.name == "Nowe"
    assert triage.requester.role == "client" and triage.requester.client is None
    assert triage.requester.name == "Recepcja Hotelu Pod Lipami"

    unanswered = ticket(session, "DEMO-011")  # 5h old on a 24/7 contract with a 30m reaction
    assert unanswered.ticket_type is not None and unanswered.ticket_type.name == "awaria"
    assert sla_clock.is_overdue(unanswered, NOW)

    # Numbers grow with age: the file's order is not the creation order.
    # Ties in age (two tickets created the same instant) are ordered by number, or the
    # database would return them in any order and the check would flake on PostgreSQL.
    numbers = [
        t.number for t in session.scalars(select(Ticket).order_by(Ticket.created_at, Ticket.number))
    ]
    assert numbers == sorted(numbers)


MINI_TICKET = """\
tickets:
  - ref: T-1
    subject: Awaria drukarki
    requester: anna@acme.example
    contract: ACME-2026
    created: 1h
    timeline:
      - {after: 30m, comment: "Zaraz będziemy.", by: admin@support.example}
      - {after: 2h, status: Resolved, by: admin@support.example}
"""


def test_timeline_entries_in_the_future_are_skipped(session: Session) -> None:
    apply_config_file(session, MINIMAL, now=NOW)
    result = apply_config_text(session, MINI_TICKET, now=NOW)
    assert str(result) == "tickets: 1 created"
    seeded = ticket(session, "T-1")
    assert [e.type for e in seeded.events] == ["created", "comment"]
    assert seeded.status.category == "new"


def test_a_refused_timeline_step_is_reported_on_its_line(session: Session) -> None:
    apply_config_file(session, MINIMAL, now=NOW)
    # A client may not move a ticket to "In progress"; the product would refuse it too.
    text = MINI_TICKET.replace("by: admin@support.example}", "by: anna@acme.example}", 1)
    text = text.replace('comment: "Zaraz będziemy."', "status: In progress")
    with pytest.raises(ConfigError) as caught:
        apply_config_text(session, text, source="t.yaml", now=NOW)
    assert str(caught.value).startswith("t.yaml:8: tickets[0].timeline[0]: you may not set")


def test_a_change_is_reported_with_the_contract_and_calendar(session: Session) -> None:
    text = MINIMAL.read_text(encoding="utf-8")
    apply_config_text(session, text, now=NOW)
    result = apply_config_text(session, text.replace("reaction: 4h", "reaction: 2h"), now=NOW)
    assert "ticket types: 1 updated" in str(result) and "contracts: 1 unchanged" in str(result)
    assert result.changed_contracts == {"ACME-2026"} and not result.changed_calendars
    result = apply_config_text(session, text.replace('fri: ["08:00-16:00"]', "fri: []"), now=NOW)
    assert result.changed_calendars == {"business"}
    tt = session.scalar(select(TicketType).where(TicketType.name == "failure"))
    assert tt is not None and tt.reaction == "4h"


def test_passwords_are_rehashed_only_when_they_change(session: Session) -> None:
    text = MINIMAL.read_text(encoding="utf-8")
    apply_config_text(session, text, now=NOW)
    user = session.scalar(select(User).where(User.email == "admin@support.example"))
    assert user is not None
    first_hash = user.password_hash
    assert str(apply_config_text(session, text, now=NOW)) == "nothing changed"
    assert user.password_hash == first_hash
    result = apply_config_text(session, text.replace("change-me", "n3w-secret"), now=NOW)
    assert "users: 1 updated" in str(result)
    assert authenticate(session, "admin@support.example", "n3w-secret") is user


def test_people_keep_what_was_changed_in_the_console(session: Session) -> None:
    apply_config_file(session, MINIMAL, now=NOW)
    contact = session.scalar(select(User).where(User.email == "anna@acme.example"))
    assert contact is not None
    contact.active = False
    contact.language = "en"
    session.flush()
    assert str(apply_config_file(session, MINIMAL, now=NOW)) == "nothing changed"
    assert contact.active is False and contact.language == "en"


def test_apply_never_deletes_what_the_file_leaves_out(session: Session) -> None:
    apply_config_file(session, DEMO, now=NOW)
    statuses = row_counts(session)["statuses"]
    small = """\
    products:
      - {name: Nowa drukarka}
    contracts:
      - code: BILANS-2026
        client: Biuro Rachunkowe Bilans
        calendar: business-lunch
        statuses:
          - {name: Nowe, category: new}
          - {name: Zamknięte, category: closed}
    """
    result = apply_config_text(session, textwrap.dedent(small), now=NOW)
    assert "products: 1 created" in str(result)
    assert "statuses: 2 unchanged" in str(result)
    assert session.scalar(select(func.count(Product.id))) == 10
    assert row_counts(session)["statuses"] == statuses
    # A partial status list moves nothing: Zamknięte stays last of the seven.
    closed = session.scalar(
        select(Status)
        .join(Contract)
        .where(Contract.code == "BILANS-2026", Status.name == "Zamknięte")
    )
    assert closed is not None and closed.position == 6
    # The contract's mailbox stays linked: a list is never emptied by omission.
    box = session.scalar(select(Mailbox).where(Mailbox.address == "bilans@serwis.example"))
    assert box is not None and box.contract is not None and box.contract.code == "BILANS-2026"


def test_an_audit_entry_records_who_applied_what(session: Session) -> None:
    apply_config_file(session, MINIMAL, actor="admin@support.example", now=NOW)
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "config.apply"))
    assert entry is not None and entry.actor == "admin@support.example" and entry.at == NOW
    assert entry.data["counts"]["contracts"]["created"] == 1
    assert entry.data["changed_contracts"] == ["ACME-2026"]


def test_a_missing_file_is_a_config_error(session: Session, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml:1: cannot read the file"):
        apply_config_file(session, tmp_path / "nope.yaml")

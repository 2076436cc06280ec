"""Configuration changes that touch the SLA: coordinators per contract, and recomputing the
open tickets when a calendar or a target changes (docs/sla.md, rule 8)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.configuration import apply_config_text, export_config
from core.directory.services import contract_by_code, find_or_create_contact
from core.tickets import services as svc
from tests.factories import at, recompute_after

BASE = """
calendars:
  - name: business
    timezone: Europe/Warsaw
    hours: {mon: ["08:00-16:00"], tue: ["08:00-16:00"], wed: ["08:00-16:00"],
            thu: ["08:00-16:00"], fri: ["08:00-16:00"]}
clients:
  - name: Acme
    domains: [acme.example]
    contacts: [{email: anna@acme.example, name: Anna}]
users:
  - {email: ola@desk.example, role: coordinator}
  - {email: tom@desk.example, role: technician}
contracts:
  - code: ACME
    client: Acme
    calendar: business
    coordinators: [ola@desk.example]
    ticket_types:
      - {name: failure, default: true, reaction: REACTION, resolution: 8h}
    statuses:
      - {name: New, category: new}
      - {name: Done, category: closed}
"""


def test_contract_coordinators_round_trip(session: Session) -> None:
    apply_config_text(session, BASE.replace("REACTION", "2h"), now=at("2026-11-23 08:00"))
    contract = contract_by_code(session, "ACME")
    assert [u.email for u in contract.coordinators] == ["ola@desk.example"]
    exported = export_config(session)
    assert "ola@desk.example" in exported
    assert str(apply_config_text(session, exported)) == "nothing changed"


def test_a_technician_cannot_be_a_contract_coordinator(session: Session) -> None:
    import pytest

    from core.configuration import ConfigError

    bad = BASE.replace("REACTION", "2h").replace(
        "coordinators: [ola@desk.example]", "coordinators: [tom@desk.example]"
    )
    with pytest.raises(ConfigError, match="coordinators"):
        apply_config_text(session, bad)


def test_a_changed_target_recomputes_open_tickets(session: Session) -> None:
    apply_config_text(session, BASE.replace("REACTION", "2h"), now=at("2026-11-23 08:00"))
    requester = find_or_create_contact(session, "anna@acme.example")
    ticket = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Awaria",
            requester=requester,
            contract=contract_by_code(session, "ACME"),
            at=at("2026-11-23 08:00"),
        ),
    )
    assert ticket.reaction_due == at("2026-11-23 10:00")
    result = apply_config_text(session, BASE.replace("REACTION", "4h"), now=at("2026-11-23 08:30"))
    # The change only hands the ticket over: the SLA worker recomputes it after the commit.
    assert result.rescheduled == [ticket.id]
    assert ticket.reaction_due == at("2026-11-23 10:00")
    assert ticket.sla_next_check == at("2026-11-23 08:32")  # claimed for a lease
    jobs = session.info["pending_jobs"]
    assert ("sla.recompute", {"ticket_ids": [ticket.id]}) in jobs
    assert recompute_after(session, result, at("2026-11-23 08:30")) == 1
    assert result.deadlines == "1 open ticket gets new deadlines"  # printed by the CLI
    assert ticket.reaction_due == at("2026-11-23 12:00")
    assert ticket.sla_next_check is not None and ticket.sla_next_check > at("2026-11-23 08:32")


def test_a_change_that_moves_no_deadline_reports_none(session: Session) -> None:
    apply_config_text(session, BASE.replace("REACTION", "2h"), now=at("2026-11-23 08:00"))
    requester = find_or_create_contact(session, "anna@acme.example")
    svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Awaria",
            requester=requester,
            contract=contract_by_code(session, "ACME"),
            at=at("2026-11-23 08:00"),
        ),
    )
    renamed = "contracts:\n  - {code: ACME, name: Acme support}\n"
    result = apply_config_text(session, renamed, now=at("2026-11-23 08:30"))
    assert str(result) == "contracts: 1 updated"
    assert recompute_after(session, result, at("2026-11-23 08:30")) == 0
    assert result.deadlines == ""


def test_a_changed_calendar_recomputes_open_tickets(session: Session) -> None:
    apply_config_text(session, BASE.replace("REACTION", "2h"), now=at("2026-11-23 08:00"))
    requester = find_or_create_contact(session, "anna@acme.example")
    ticket = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Awaria",
            requester=requester,
            contract=contract_by_code(session, "ACME"),
            at=at("2026-11-23 08:00"),
        ),
    )
    later = BASE.replace("REACTION", "2h").replace('mon: ["08:00-16:00"]', 'mon: ["10:00-16:00"]')
    result = apply_config_text(session, later, now=at("2026-11-23 08:30"))
    recompute_after(session, result, at("2026-11-23 08:30"))
    assert ticket.reaction_due == at("2026-11-23 11:00")  # opens 10:00 Warsaw, +2h

"""The SLA on the ticket page: breaches on the timeline, the clock's history, paused clocks."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.clock import utcnow
from core.sla import watch as sla_watch
from core.tickets.models import Ticket
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("console-sla"))


def page(instance: SeededApp, number: int) -> str:
    client, _ = console_client(instance.app, instance.users["coordinator"])
    r: Any = client.get(f"/tickets/{number}")
    assert r.status_code == 200
    return str(r.text)


def test_a_breach_shows_on_the_timeline_and_in_the_panel(instance: SeededApp) -> None:
    number = instance.numbers["overdue"]
    with instance.factory() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None
        sla_watch.check_ticket(s, t.id, utcnow(), mail_domain="desk.example", public_url="http://x")
        s.commit()
    html = page(instance, number)
    assert 'data-type="sla"' in html
    assert 'data-testid="ever-breached"' in html
    assert 'data-testid="clock-history"' in html


def test_a_paused_clock_says_so_instead_of_counting_down(instance: SeededApp) -> None:
    html = page(instance, instance.numbers["beta_waiting"])
    assert "sla-paused" in html


def test_a_coordinator_sorts_a_triage_ticket_into_a_contract(instance: SeededApp) -> None:
    number = instance.numbers["triage"]
    client: Any
    client, csrf = console_client(instance.app, instance.users["coordinator"])
    html = client.get(f"/tickets/{number}").text
    assert 'data-testid="contract-form"' in html
    with instance.factory() as s:
        code = s.scalar(
            select(Ticket).where(Ticket.number == instance.numbers["overdue"])
        ).contract.code  # type: ignore[union-attr]
    r = client.post(
        f"/tickets/{number}/contract",
        data={"csrf_token": csrf, "contract": code, "ticket_type": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with instance.factory() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None and t.contract is not None and t.contract.code == code
        assert t.resolution_due is not None


def test_a_technician_gets_no_contract_form(instance: SeededApp) -> None:
    client: Any
    client, _ = console_client(instance.app, instance.users["technician"])
    pages = [client.get(f"/tickets/{n}") for n in instance.numbers.values()]
    rendered = [p for p in pages if p.status_code == 200]
    assert rendered, "the technician sees none of the seeded tickets: nothing was checked"
    assert all('data-testid="contract-form"' not in p.text for p in rendered)

"""A small, realistic world built in code for tests: calendars, clients, contracts, people.

Built through the same models and services the product uses, so tests exercise real rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from core.access.accounts import upsert_user
from core.configuration.result import ApplyResult
from core.contracts.models import Contract, Status, TicketType
from core.directory.models import Client, ClientDomain, Product, Subcontractor, User
from core.sla.models import Calendar

PASSWORD = "secret-pass"
BUSINESS_HOURS = {d: ["08:00-16:00"] for d in ("mon", "tue", "wed", "thu", "fri")}


def statuses() -> list[Status]:
    return [
        Status(name="New", category="new", position=0),
        Status(name="In progress", category="open", position=1),
        Status(name="Waiting for client", category="paused", position=2, client_can_set=False),
        Status(
            name="Internal review",
            category="open",
            position=3,
            visible_to_client=False,
            visible_to_subcontractor=False,
        ),
        Status(name="Resolved", category="closed", position=4, client_can_set=True),
    ]


@dataclass
class World:
    acme: Client
    beta: Client
    acme_contract: Contract
    beta_contract: Contract
    fixit: Subcontractor
    users: dict[str, User] = field(default_factory=dict)


def build_world(session: Session, *, passwords: bool = False) -> World:
    business = Calendar(
        name="business", timezone="Europe/Warsaw", hours=BUSINESS_HOURS, holidays="PL"
    )
    always = Calendar(name="always", timezone="Europe/Warsaw", hours="24/7")
    acme = Client(name="Acme", domains=[ClientDomain(domain="acme.example")])
    beta = Client(name="Beta", domains=[ClientDomain(domain="beta.example")])
    printer = Product(name="Printer X200")
    acme_contract = Contract(
        code="ACME-2026",
        client=acme,
        key=True,
        calendar=business,
        products=[printer],
        ticket_types=[
            TicketType(
                name="failure",
                default=True,
                reaction="2h",
                resolution="8h",
                subject_keywords=["awaria", "failure"],
            ),
            TicketType(
                name="inspection", reaction="1d", resolution="5d", subject_keywords=["przegląd"]
            ),
        ],
        statuses=statuses(),
    )
    beta_contract = Contract(
        code="BETA-247",
        client=beta,
        key=False,
        calendar=always,
        ticket_types=[TicketType(name="failure", default=True, reaction="1h", resolution="4h")],
        statuses=statuses(),
    )
    fixit = Subcontractor(name="FixIt", contracts=[acme_contract])
    session.add_all([business, always, acme, beta, printer, acme_contract, beta_contract, fixit])
    session.flush()
    w = World(
        acme=acme, beta=beta, acme_contract=acme_contract, beta_contract=beta_contract, fixit=fixit
    )
    specs = {
        "admin": dict(email="admin@support.example", role="admin"),
        "coordinator": dict(email="coord@support.example", role="coordinator"),
        "technician": dict(email="tech@support.example", role="technician"),
        "technician2": dict(email="tech2@support.example", role="technician"),
        "subcontractor": dict(
            email="sub@fixit.example", role="subcontractor", subcontractor="FixIt"
        ),
        "client": dict(email="anna@acme.example", role="client", client="Acme"),
        "client2": dict(email="piotr@acme.example", role="client", client="Acme"),
        "manager": dict(email="boss@acme.example", role="client", client="Acme", manager=True),
        "beta": dict(email="ewa@beta.example", role="client", client="Beta"),
    }
    for key, spec in specs.items():
        w.users[key] = upsert_user(
            session, password=PASSWORD if passwords else None, name=key.title(), **spec
        )  # type: ignore[arg-type]
    session.flush()
    return w


def at(text: str) -> datetime:
    """An aware UTC datetime from 'YYYY-MM-DD HH:MM' (UTC)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def recompute_after(session: Session, result: ApplyResult, now: datetime) -> int:
    """What the ``sla.recompute`` job does after a configuration change commits, run here in
    the test's transaction: recheck the tickets the change handed over; how many moved."""
    from core.sla.watch import recheck_ticket

    moved = sum(
        recheck_ticket(session, ticket_id, now, mail_domain="desk.example", public_url="")
        for ticket_id in result.rescheduled
    )
    result.recomputed_tickets = moved
    return moved

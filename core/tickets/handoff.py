"""Handing a ticket over to a subcontractor: who to suggest first, and why.

Order: those serving the ticket's contract first, then fewest open (not closed) tickets
handed to them, then who had this client's most recent ticket, then name. Two queries in
all, whatever the number of subcontractors: the serving set and one grouped count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import case, false, func, select
from sqlalchemy.orm import Session

from core.contracts.models import subcontractor_contracts
from core.directory.models import Subcontractor
from core.errors import N_, InputError
from core.tickets.models import Ticket


class OutsideContract(InputError):
    """The subcontractor does not serve the ticket's contract and nobody confirmed it
    (a 400 like any refused input; the console asks for a confirmation instead)."""


class Gettext(Protocol):
    def gettext(self, message: str) -> str: ...

    def ngettext(self, singular: str, plural: str, n: int) -> str: ...


class English:
    """The untranslated sentences (the API speaks English)."""

    def gettext(self, message: str) -> str:
        return message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural


@dataclass(frozen=True)
class Suggestion:
    subcontractor: Subcontractor
    serves_contract: bool
    open_tickets: int
    last_for_client_at: datetime | None
    contract_code: str | None = None
    client_name: str | None = None

    def reason_parts(self, tr: Gettext | None = None) -> list[str]:
        """Why it is offered, in the language of ``tr`` (English by default)."""
        tr = tr or English()
        parts: list[str] = []
        if self.serves_contract and self.contract_code:
            parts.append(tr.gettext("serves contract %(code)s") % {"code": self.contract_code})
        n = self.open_tickets
        parts.append(tr.ngettext("%(num)d open ticket", "%(num)d open tickets", n) % {"num": n})
        if self.last_for_client_at is not None and self.client_name:
            parts.append(
                tr.gettext("last ticket of %(client)s on %(date)s")
                % {"client": self.client_name, "date": self.last_for_client_at.date().isoformat()}
            )
        return parts

    def reason(self, tr: Gettext | None = None) -> str:
        return " · ".join(self.reason_parts(tr))


def suggest_subcontractors(session: Session, ticket: Ticket) -> list[Suggestion]:
    """Every subcontractor, best first for ``ticket`` (see the module's docstring). The ticket
    itself counts for nobody. Without a contract nobody serves it and any may take it."""
    serving: set[int] = set()
    if ticket.contract_id is not None:
        serving = set(
            session.scalars(
                select(subcontractor_contracts.c.subcontractor_id).where(
                    subcontractor_contracts.c.contract_id == ticket.contract_id
                )
            )
        )
    open_count = func.sum(case((Ticket.status_category != "closed", 1), else_=0))
    same_client = Ticket.client_id == ticket.client_id if ticket.client_id else false()
    last = func.max(case((same_client, Ticket.created_at)))
    load = (
        select(
            Ticket.subcontractor_id.label("sid"),
            open_count.label("open"),
            last.label("last"),
        )
        .where(Ticket.subcontractor_id.is_not(None), Ticket.id != ticket.id)
        .group_by(Ticket.subcontractor_id)
        .subquery()
    )
    rows = session.execute(
        select(Subcontractor, load.c.open, load.c.last)
        .outerjoin(load, load.c.sid == Subcontractor.id)
        .order_by(Subcontractor.name)
    ).all()
    code = ticket.contract.code if ticket.contract is not None else None
    client = ticket.client.name if ticket.client is not None else None
    found = [
        Suggestion(
            subcontractor=sub,
            serves_contract=sub.id in serving,
            open_tickets=int(opened or 0),
            last_for_client_at=_aware(last_at),
            contract_code=code,
            client_name=client,
        )
        for sub, opened, last_at in rows
    ]
    found.sort(key=_rank)
    return found


def _aware(value: datetime | str | None) -> datetime | None:
    """MAX over a case() loses the column type: SQLite gives back text, PostgreSQL an aware
    datetime. Both are UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _rank(s: Suggestion) -> tuple[bool, int, float, str]:
    recent = -s.last_for_client_at.timestamp() if s.last_for_client_at else float("inf")
    return (not s.serves_contract, s.open_tickets, recent, s.subcontractor.name.casefold())


def check_serves(ticket: Ticket, subcontractor: Subcontractor) -> None:
    """Refuse handing ``ticket`` to a subcontractor not serving its contract (a person may
    confirm it: ``assign(..., allow_outside_contract=True)``)."""
    if ticket.contract is not None and ticket.contract not in subcontractor.contracts:
        raise OutsideContract(
            N_("subcontractor %(name)s does not serve contract %(code)s"),
            name=subcontractor.name,
            code=ticket.contract.code,
        )

"""Notification preferences: which events mail a user, narrowed to chosen clients and products.

Stored on ``users.notify_prefs`` as ``{"off": [kind, ...], "clients": [name, ...],
"products": [name, ...]}``. NULL (every existing user) means the defaults: every mail on, no
narrowing, so nothing changes until a user chooses otherwise. The disabled kinds are stored
(not the enabled ones), so a kind added later starts on for everybody.

:func:`wants` is the one question asked before a notification is queued: by
``core.notify.notifications._send`` (ticket mails) and ``core.sla.watch._notify`` (SLA warnings and
breaches, the assignee's and the coordinators' alike).

* ``ticket_ack`` is always sent: it is the receipt of the requester's own mail (with the
  ticket number to quote), not a notification one can opt out of.
* The client and product lists narrow *staff* mail (staff and subcontractor users) to tickets
  of those clients or products; an empty list means all. A ticket whose client or product is
  not known yet (a mail not matched to a contract, no product chosen) still passes that list,
  so narrowing never hides a ticket that may well be one's own. Requesters (role ``client``)
  are never narrowed: they only hear about their own tickets anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.contracts.models import Contract
from core.directory.models import Client, Product, User
from core.errors import InputError
from core.tickets.models import Ticket

# The events a user may turn off, in the order pages list them.
EVENT_KINDS = (
    "ticket_new",
    "ticket_assigned",
    "ticket_reply",
    "ticket_comment",
    "ticket_status",
    "sla_warning",
    "sla_breach",
    "delivery_failed",
)
# Mails to requesters; the rest go to staff.
CLIENT_KINDS = ("ticket_comment", "ticket_status")
STAFF_KINDS = tuple(k for k in EVENT_KINDS if k not in CLIENT_KINDS)
# Always sent, whatever the preferences say.
ALWAYS_ON = ("ticket_ack",)


@dataclass
class Preferences:
    events: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(EVENT_KINDS, True))
    clients: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "events": dict(self.events),
            "clients": list(self.clients),
            "products": list(self.products),
        }


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str)]


def get_preferences(user: User) -> Preferences:
    """The user's preferences, the defaults filled in."""
    raw = user.notify_prefs or {}
    off = set(_strings(raw.get("off")))
    return Preferences(
        events={kind: kind not in off for kind in EVENT_KINDS},
        clients=_strings(raw.get("clients")),
        products=_strings(raw.get("products")),
    )


def kinds_for(user: User) -> tuple[str, ...]:
    """The events that can reach this user (what a profile page offers)."""
    return CLIENT_KINDS if user.role == "client" else EVENT_KINDS


def can_narrow(user: User) -> bool:
    return user.role != "client"


def _ticket_client(ticket: Ticket) -> str | None:
    if ticket.client is not None:
        return ticket.client.name
    if ticket.contract is not None and ticket.contract.client is not None:
        return ticket.contract.client.name
    return None


def _passes(allowed: list[str], name: str | None) -> bool:
    if not allowed or name is None:
        return True
    return name.casefold() in {a.casefold() for a in allowed}


def wants(user: User, kind: str, ticket: Ticket | None) -> bool:
    """Whether ``user`` wants the ``kind`` mail about ``ticket``; the defaults say yes."""
    if kind in ALWAYS_ON or not user.notify_prefs:
        return True
    prefs = get_preferences(user)
    if not prefs.events.get(kind, True):
        return False
    if ticket is None or not can_narrow(user):
        return True
    product = ticket.product.name if ticket.product is not None else None
    return _passes(prefs.clients, _ticket_client(ticket)) and _passes(prefs.products, product)


def choices(session: Session, user: User) -> tuple[list[str], list[str]]:
    """The client and product names ``user`` may narrow to: every one for staff, those of
    the company's contracts for a subcontractor's user, none for requesters."""
    if not can_narrow(user):
        return [], []
    if user.role == "subcontractor":
        contracts: Iterable[Contract] = (
            user.subcontractor.contracts if user.subcontractor is not None else []
        )
        clients = sorted({c.client.name for c in contracts if c.client is not None})
        products = sorted({p.name for c in contracts for p in c.products})
        return clients, products
    clients = list(session.scalars(select(Client.name).order_by(Client.name)))
    products = list(session.scalars(select(Product.name).order_by(Product.name)))
    return clients, products


def _canonical(names: Iterable[Any], known: list[str], what: str, field_name: str) -> list[str]:
    by_key = {k.casefold(): k for k in known}
    result: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"{field_name}: each entry must be a {what} name, not {name!r}")
        found = by_key.get(name.strip().casefold())
        if found is None:
            raise InputError(f"{field_name}: there is no {what} named {name.strip()!r} to choose")
        if found not in result:
            result.append(found)
    return result


def set_preferences(
    session: Session,
    user: User,
    *,
    events: Mapping[str, Any],
    clients: Iterable[Any] = (),
    products: Iterable[Any] = (),
) -> Preferences:
    """Replace the user's preferences; a kind left out of ``events`` is on (the default).

    Refusals (unknown kinds, turning ``ticket_ack`` off, unknown clients or products, a
    requester narrowing) are :class:`InputError` sentences; nothing is changed then.
    """
    off: list[str] = []
    for kind, value in events.items():
        if not isinstance(value, bool):
            raise InputError(f"events.{kind} must be true or false, not {value!r}")
        if kind in ALWAYS_ON:
            if not value:
                raise InputError(
                    f"{kind} cannot be turned off: it is the receipt of the requester's own mail"
                )
            continue
        if kind not in EVENT_KINDS:
            raise InputError(
                f"events: there is no event kind {kind!r}; the kinds are {', '.join(EVENT_KINDS)}"
            )
        if not value:
            off.append(kind)
    clients, products = list(clients), list(products)
    if (clients or products) and not can_narrow(user):
        raise InputError("clients and products narrow staff notifications; requesters cannot")
    known_clients, known_products = choices(session, user)
    chosen_clients = _canonical(clients, known_clients, "client", "clients")
    chosen_products = _canonical(products, known_products, "product", "products")
    if off or chosen_clients or chosen_products:
        user.notify_prefs = {
            "off": [k for k in EVENT_KINDS if k in off],
            "clients": chosen_clients,
            "products": chosen_products,
        }
    else:
        user.notify_prefs = None
    session.flush()
    return get_preferences(user)

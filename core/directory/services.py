"""Who is who: finding people, clients and contracts by the names the outside world uses.

Shared by every door that names things by e-mail, code or name (API, mail, configuration):
a requester e-mail becomes a contact of the client owning its domain, and a client with a
single active contract gets that contract by default.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from core.access.accounts import get_user_by_email, normalize_email
from core.contracts import snapshot
from core.contracts.models import Contract
from core.directory.models import UNKNOWN_SENDER, Client, Product, Subcontractor, User
from core.errors import N_, InputError


def client_for_email(session: Session, email: str) -> Client | None:
    """The client whose domain (or a parent domain) the address belongs to: the most specific
    domain wins (dział.acme.example over acme.example). Read from the configuration snapshot
    (``core.contracts.snapshot``)."""
    client_id = snapshot.current(session).client_for_domain(email.rsplit("@", 1)[-1])
    if client_id is None:
        return None
    with session.no_autoflush:  # a client depends on no ticket row
        return session.get(Client, client_id)


def find_or_create_contact(session: Session, email: str, name: str | None = None) -> User:
    """The person with this e-mail; an unknown one becomes a client contact (no password)."""
    email = normalize_email(email)
    user = get_user_by_email(session, email)
    if user is not None:
        return user
    client = client_for_email(session, email)
    user = User(
        email=email,
        name=name or None,
        role="client",
        client=client,
        language=client.language if client else "pl",
    )
    return _add_person(session, user)


def _add_person(session: Session, user: User) -> User:
    """Store a new person, or the one stored meanwhile under the same e-mail.

    A savepoint: two first mails from one new sender processed at once race to create the
    contact; the loser re-reads the winner's row instead of failing its mail."""
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError:
        existing = get_user_by_email(session, user.email)
        if existing is None:
            raise
        return existing
    return user


def unknown_sender(session: Session) -> User:
    """The placeholder requester for mail whose sender is unknown; made on first use."""
    user = get_user_by_email(session, UNKNOWN_SENDER)
    if user is not None:
        return user
    placeholder = User(email=UNKNOWN_SENDER, name=None, role="client", active=False, language="pl")
    return _add_person(session, placeholder)


def staff_user(session: Session, email: str) -> User:
    user = get_user_by_email(session, email)
    if user is None:
        raise InputError(N_("no user with e-mail %(email)r"), email=email)
    if not user.is_staff:
        raise InputError(N_("%(email)s is not staff and cannot be assigned tickets"), email=email)
    return user


def contract_by_code(session: Session, code: str) -> Contract:
    contract = session.scalar(select(Contract).where(Contract.code == code))
    if contract is None:
        raise InputError(f"no contract with code {code!r}")
    return contract


def product_by_name(session: Session, name: str) -> Product:
    product = session.scalar(select(Product).where(Product.name == name))
    if product is None:
        raise InputError(f"no product named {name!r}")
    return product


def subcontractor_by_name(session: Session, name: str) -> Subcontractor:
    sub = session.scalar(select(Subcontractor).where(Subcontractor.name == name))
    if sub is None:
        raise InputError(f"no subcontractor named {name!r}")
    return sub


def default_contract(client: Client | None, today: date) -> Contract | None:
    """The client's contract when it has exactly one active contract, else None (triage)."""
    if client is None:
        return None
    session = object_session(client)
    if session is None or client.id is None:
        active = [c for c in client.contracts if c.is_active(today)]
        return active[0] if len(active) == 1 else None
    facts = snapshot.current(session).default_contract(client.id, today)
    if facts is None:
        return None
    with session.no_autoflush:  # a contract depends on no ticket row
        return session.get(Contract, facts.id)

"""Who is who: clients and their mail domains, products, subcontractors and users.

One table holds every user, staff and client contacts alike; ``role`` says which.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.orm import Base

if TYPE_CHECKING:
    from core.contracts.models import Contract


# --- Roles and categories -------------------------------------------------------------------

ROLES = ("admin", "coordinator", "technician", "client", "subcontractor")
STAFF_ROLES = ("admin", "coordinator", "technician")
ROLE_ALIASES = {
    "contact": "client",
    "client_contact": "client",
    "customer": "client",
    "agent": "technician",
    "subcontractor_user": "subcontractor",
}


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    language: Mapped[str] = mapped_column(String(8), default="pl")

    domains: Mapped[list[ClientDomain]] = relationship(
        back_populates="client", cascade="all, delete-orphan", order_by="ClientDomain.domain"
    )
    contracts: Mapped[list[Contract]] = relationship(back_populates="client")


class ClientDomain(Base):
    __tablename__ = "client_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(255), unique=True)

    client: Mapped[Client] = relationship(back_populates="domains")


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class Subcontractor(Base):
    __tablename__ = "subcontractors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)

    contracts: Mapped[list[Contract]] = relationship(secondary="subcontractor_contracts")


class Role(Base):
    """A custom role (``roles:`` in YAML): a base role plus actions granted and denied
    (``core.access.permissions``). A user with a custom role has its base as ``role`` and
    the custom one as ``custom_role``, so every rule written for the base roles holds."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    base: Mapped[str] = mapped_column(String(16))
    grant: Mapped[list[Any]] = mapped_column(default=list)
    deny: Mapped[list[Any]] = mapped_column(default=list)
    # The name shown in the console, per language ({"pl": ..., "en": ...}); empty: ``name``.
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)


#: The requester of a ticket opened from a mail whose From could not be read: an inactive
#: contact under a reserved domain (RFC 2606 ``.invalid``), so nothing is ever mailed to it,
#: until a coordinator names the real requester (docs/mail.md, "Who sent this mail").
UNKNOWN_SENDER = "unknown-sender@pulpit.invalid"


class User(Base):
    """Every person: staff, client contacts (role ``client``) and subcontractor users."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The time step of the last accepted authenticator code: never accepted twice (RFC 6238 5.2).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    subcontractor_id: Mapped[int | None] = mapped_column(
        ForeignKey("subcontractors.id", ondelete="SET NULL")
    )
    manager: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="pl")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by a permanent-failure delivery report (RFC 3464, status 5.x.x) for this address;
    # cleared when ordinary mail from the address arrives (it works again).
    mail_bouncing_since: Mapped[datetime | None] = mapped_column()
    # Which notification mails the user wants (``core.notify.preferences``): ``{"off": [kind, ...],
    # "clients": [name, ...], "products": [name, ...]}``; NULL means the defaults (all on).
    notify_prefs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A custom role on top of ``role`` (its base), or NULL.
    custom_role_id: Mapped[int | None] = mapped_column(ForeignKey("roles.id", ondelete="SET NULL"))

    client: Mapped[Client | None] = relationship()
    subcontractor: Mapped[Subcontractor | None] = relationship()
    custom_role: Mapped[Role | None] = relationship(lazy="joined")

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def display(self) -> str:
        return self.name or self.email

    @property
    def is_placeholder(self) -> bool:
        """A stand-in under the reserved ``.invalid`` domain: the unknown sender, or someone
        erased or anonymised (``core.privacy``); no personal data left to export or erase."""
        return self.email.endswith("@pulpit.invalid")

    @property
    def is_unknown_sender(self) -> bool:
        """A stand-in, not a person: the requester of mail whose From could not be read
        (:data:`UNKNOWN_SENDER`). An erased person is not one: they keep their placeholder
        name (``core.privacy``)."""
        return self.email == UNKNOWN_SENDER

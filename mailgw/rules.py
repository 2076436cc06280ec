"""The named checks a stored mail goes through, in order (GNU Mailman's rules).

Each check looks at the parsed mail (and the database) and returns a :class:`Hit` saying what
it found and why; :mod:`mailgw.process` appends every hit to the message's ``decisions`` and
acts on them. The checks take no action themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Integer, String, literal, select, union_all
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from core.access.accounts import get_user_by_email
from core.contracts import snapshot
from core.contracts.models import Contract
from core.contracts.snapshot import ContractFacts, Snapshot
from core.directory.models import Client, User
from core.mail.models import InboundMessage, OutboundMail
from core.tickets.models import TicketEvent
from mailgw.parsing import ParsedMail


@dataclass
class Hit:
    rule: str
    result: Any
    why: str
    extra: dict[str, Any] = field(default_factory=dict)

    def as_decision(self) -> dict[str, Any]:
        return {"rule": self.rule, "result": self.result, "why": self.why, **self.extra}


@dataclass(frozen=True)
class Seen:
    """Where this mail's Message-ID (or bytes) was met before: one query for both rules below."""

    outbound_id: int | None  # a mail of ours with this Message-ID
    inbound_id: int | None  # another stored copy, already processed
    event_id: int | None  # an event with this Message-ID (e.g. a comment typed in the console)


def seen(session: Session, row: InboundMessage, mail: ParsedMail) -> Seen:
    """Look the mail up in the outbox, the inbound messages and the events in one round trip."""
    mid = mail.message_id
    outbound = select(OutboundMail.id).where(OutboundMail.message_id == mid).limit(1)
    inbound = (
        select(InboundMessage.id)
        .where(
            InboundMessage.id != row.id,
            InboundMessage.state == "processed",
            (InboundMessage.message_id == mid) | (InboundMessage.sha256 == row.sha256),
        )
        .order_by(InboundMessage.id)
        .limit(1)
    )
    event = select(TicketEvent.id).where(TicketEvent.message_id == mid).limit(1)
    found = session.execute(
        select(outbound.scalar_subquery(), inbound.scalar_subquery(), event.scalar_subquery())
    ).one()
    return Seen(*found)


_SEEN_MANY_PG = sql_text(
    "SELECT m.row_id,"
    " (SELECT o.id FROM outbound_mail AS o WHERE o.message_id = m.mid LIMIT 1),"
    " (SELECT i.id FROM inbound_messages AS i WHERE i.id <> m.row_id"
    "  AND i.state = 'processed' AND (i.message_id = m.mid OR i.sha256 = m.sha)"
    "  ORDER BY i.id LIMIT 1),"
    " (SELECT e.id FROM ticket_events AS e WHERE e.message_id = m.mid LIMIT 1)"
    " FROM unnest(CAST(:ids AS integer[]), CAST(:mids AS text[]), CAST(:shas AS text[]))"
    " AS m(row_id, mid, sha)"
)


def seen_many(
    session: Session, mails: Sequence[tuple[InboundMessage, ParsedMail]]
) -> dict[int, Seen]:
    """:func:`seen` for a batch of mails in one round trip, by inbound row id.

    Only for mails whose Message-ID and bytes no other mail of the batch shares: a copy of an
    earlier mail of the batch must see that mail's outcome, so it asks :func:`seen` itself.
    """
    if not mails:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        # The batch as three arrays: one statement text whatever the batch's size, which
        # psycopg prepares once, instead of a UNION of a SELECT per mail built every time.
        rows = session.execute(
            _SEEN_MANY_PG,
            {
                "ids": [row.id for row, _ in mails],
                "mids": [mail.message_id for _, mail in mails],
                "shas": [row.sha256 for row, _ in mails],
            },
        ).all()
        return {row_id: Seen(*found) for row_id, *found in rows}
    parts = [
        select(
            literal(row.id, Integer).label("row_id"),
            literal(mail.message_id, String).label("mid"),
            literal(row.sha256, String).label("sha"),
        )
        for row, mail in mails
    ]
    m = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery("m")
    outbound = select(OutboundMail.id).where(OutboundMail.message_id == m.c.mid).limit(1)
    inbound = (
        select(InboundMessage.id)
        .where(
            InboundMessage.id != m.c.row_id,
            InboundMessage.state == "processed",
            (InboundMessage.message_id == m.c.mid) | (InboundMessage.sha256 == m.c.sha),
        )
        .order_by(InboundMessage.id)
        .limit(1)
    )
    event = select(TicketEvent.id).where(TicketEvent.message_id == m.c.mid).limit(1)
    rows = session.execute(
        select(
            m.c.row_id,
            outbound.scalar_subquery(),
            inbound.scalar_subquery(),
            event.scalar_subquery(),
        )
    ).all()
    return {row_id: Seen(*found) for row_id, *found in rows}


def our_own(mail: ParsedMail, mail_domain: str, before: Seen) -> Hit:
    """Our own mail coming back (a loop through a forwarding rule or a mailing list)."""
    mid = mail.message_id
    if not mail.message_id_generated and mid.lower().endswith(f"@{mail_domain.lower()}>"):
        return Hit("our_own", True, f"Message-ID {mid} is in our domain {mail_domain}")
    if before.outbound_id is not None:
        return Hit(
            "our_own", True, f"Message-ID {mid} is outbound mail #{before.outbound_id} of ours"
        )
    return Hit("our_own", False, "the Message-ID is not one we sent")


def duplicate(session: Session, mail: ParsedMail, before: Seen) -> Hit:
    """The same Message-ID (or, without one, the same bytes) already became an event."""
    if before.inbound_id is not None:
        return Hit("duplicate", True, f"duplicate of #{before.inbound_id}")
    if before.event_id is not None:
        event = session.get(TicketEvent, before.event_id)
        if event is not None:
            return Hit(
                "duplicate", True, f"duplicate of #{event.ticket.number}", {"event_id": event.id}
            )
    return Hit("duplicate", False, f"Message-ID {mail.message_id} not seen before")


def auto_submitted(mail: ParsedMail) -> Hit:
    """Bounce (RFC 3464), auto-reply (RFC 3834) or neither; result "bounce"/"auto_reply"/None.

    ``X-Auto-Response-Suppress`` is *not* a sign of an auto-reply: it asks us not to answer
    (Exchange sets it on its own automatic mail and on bulk mail); :func:`bulk` reads it.
    """
    sender = mail.from_addr.split("@", 1)[0].lower()
    if mail.content_type == "multipart/report" and mail.report_type == "delivery-status":
        return Hit("auto_submitted", "bounce", "multipart/report; report-type=delivery-status")
    if mail.original_message_id is not None and mail.failed_recipient is not None:
        return Hit("auto_submitted", "bounce", "contains an RFC 3464 delivery status")
    if sender in ("mailer-daemon", "postmaster"):
        return Hit("auto_submitted", "bounce", f"sent by {mail.from_addr}")
    value = mail.header("auto-submitted").split(";", 1)[0].strip().lower()
    if value and value != "no":  # RFC 3834 5.1
        return Hit("auto_submitted", "auto_reply", f"Auto-Submitted: {value}")
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        if mail.header(name):
            return Hit("auto_submitted", "auto_reply", f"{name} header present")
    return Hit("auto_submitted", None, "no auto-reply or bounce headers")


def null_sender(row: InboundMessage) -> bool:
    # RFC 5321 4.5.5: bounces are sent with the null reverse-path MAIL FROM:<>.
    return row.envelope_from is not None and row.envelope_from.strip("<> ") == ""


def bulk(mail: ParsedMail) -> Hit:
    """Bulk and list mail may open a ticket but is never answered automatically (RFC 3834 2)."""
    precedence = mail.header("precedence").strip().lower()
    if precedence in ("bulk", "junk", "list"):
        return Hit("bulk", True, f"Precedence: {precedence}", {"no_autoreply": True})
    if mail.header("list-id"):  # RFC 2919
        return Hit("bulk", True, f"List-Id: {mail.header('list-id')}", {"no_autoreply": True})
    if mail.header("x-auto-response-suppress"):
        why = f"X-Auto-Response-Suppress: {mail.header('x-auto-response-suppress')}"
        return Hit("bulk", True, why, {"no_autoreply": True})
    return Hit("bulk", False, "no bulk or list headers")


def _strip_plus(address: str) -> str:
    local, _, domain = address.lower().strip("<> ").partition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _addressed(config: Snapshot, row: InboundMessage, mail: ParsedMail) -> list[ContractFacts]:
    """The contracts of our mailboxes among the envelope recipients, then To and Cc, each
    once, in that order, whether in force or not."""
    found: list[ContractFacts] = []
    for address in [*row.envelope_to, *mail.to, *mail.cc]:
        if "@" not in address:
            continue
        contract = config.mailbox_contract(_strip_plus(address))
        if contract is not None and contract not in found:
            found.append(contract)
    return found


def _domain_client(config: Snapshot, mail: ParsedMail) -> int | None:
    """The client the sender's domain (or a parent domain) belongs to."""
    return config.client_for_domain(mail.from_addr.rsplit("@", 1)[-1]) if mail.from_addr else None


def mailbox_contracts(
    session: Session, row: InboundMessage, mail: ParsedMail, today: date
) -> list[ContractFacts]:
    """Contracts of our mailboxes among the envelope recipients, then To and Cc, that are in
    force ``today``: a contract past its end date (or not begun) receives no new tickets, and
    its mailbox's mail is routed as if sent to a general address. Read from the configuration
    snapshot (``core.contracts.snapshot``): no query, no ORM object."""
    config = snapshot.current(session)
    return [c for c in _addressed(config, row, mail) if c.is_active(today)]


def candidate_contracts(
    config: Snapshot, row: InboundMessage, mail: ParsedMail, sender: User | None
) -> set[int]:
    """The contracts :func:`route` may choose for this mail: its mailboxes' and those of its
    sender's client (by contact, else by domain). For loading a batch's contracts at once."""
    found = {c.id for c in _addressed(config, row, mail)}
    client_id = sender.client_id if sender is not None else None
    if client_id is None:
        client_id = _domain_client(config, mail)
    if client_id is not None:
        found.update(config.client_contracts.get(client_id, ()))
    return found


def route(
    session: Session,
    row: InboundMessage,
    mail: ParsedMail,
    today: date,
    *,
    sender: User | None = None,
) -> tuple[Contract | None, Hit]:
    """The contract of a new ticket: mailbox, else the sender's contact or domain's client.

    ``sender`` is the From address's user when the caller has it already (one query less).
    Decided on the configuration snapshot (``core.contracts.snapshot``); only the contract
    chosen is read as an ORM object, for the ticket to be opened under.
    """
    config = snapshot.current(session)
    boxes = mailbox_contracts(session, row, mail, today)
    client_id: int | None = None
    if sender is not None:
        user: User | None = sender
    else:
        user = get_user_by_email(session, mail.from_addr) if mail.from_addr else None
    if user is not None and user.client_id is not None:
        client_id = user.client_id
        how = f"sender {mail.from_addr} is a contact of {_client_name(session, client_id)}"
    elif mail.from_addr:
        client_id = _domain_client(config, mail)
        how = (
            f"sender's domain belongs to {_client_name(session, client_id)}"
            if client_id is not None
            else "sender's domain unknown"
        )
    else:
        how = "no sender address"
    mine = [c for c in boxes if client_id is not None and c.client_id == client_id]
    if boxes and (client_id is None or mine):
        # Prefer the mailbox contract of the sender's own client when several were addressed.
        boxed = (mine or boxes)[0]
        return _contract(session, boxed), Hit(
            "route", boxed.code, f"received by a mailbox of {boxed.code}"
        )
    if boxes:
        # A contact of another client wrote to this contract's mailbox: their own client wins
        # (core.tickets.services.open_ticket refuses a requester of another client).
        how += f"; mailbox of {boxes[0].code} belongs to another client"
    contract = config.default_contract(client_id, today)
    if contract is not None:
        return _contract(session, contract), Hit(
            "route", contract.code, f"{how}; its only active contract"
        )
    if client_id is not None:
        return None, Hit("route", None, f"{how}, which has no single active contract: triage")
    return None, Hit("route", None, f"{how}: triage")


def _contract(session: Session, facts: ContractFacts) -> Contract:
    with session.no_autoflush:  # a contract depends on no ticket row (DEFER_FLUSH)
        contract = session.get(Contract, facts.id)
    if contract is None:
        # Deleted a moment before this process heard of it (the configuration watch): this
        # attempt fails with a sentence and the mail is retried, never routed to a ghost.
        raise LookupError(f"contract {facts.code} is gone")
    return contract


def _client_name(session: Session, client_id: int) -> str:
    with session.no_autoflush:
        client = session.get(Client, client_id)
    return client.name if client is not None else f"client {client_id}"

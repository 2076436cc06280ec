"""Erasing a person (GDPR art. 17): their identifiers go, the desk's records stay.

What happens (the decision is recorded in docs/decisions.md, the user's view in
docs/privacy.md):

* The user row stays, as a placeholder (``Osoba usunięta #17``, ``erased-17@pulpit.invalid``),
  inactive, without password, two-step secret or notification preferences; their web
  sessions and API tokens are deleted, their copies on tickets removed. Tickets keep their
  number, requester (the placeholder row), timeline and SLA history.
* Every text and JSON column of every table but ``users`` is searched for the address, the
  name and the bare local part, and each is replaced by the placeholder's (events' bodies and
  data such as ``from``, ``full_text``, ``claimed_from``, ``raw_from``; subjects; the outbox's
  ``to_addr``, ``context`` and ``headers``; inbound mail's envelope and decisions; the audit
  log). What they wrote stays, without who they are.
* The raw mail they sent (``.eml`` in the blob store) is deleted; its ``InboundMessage`` row
  stays, pointing at a blob that is gone (the console answers 404 for it and ``mail.process``
  ignores it). Raw mail of others that names them is rewritten without their identifiers.
* Attachments of their mail and comments are deleted, and so is each file no other
  attachment or mail shares.
* Outgoing mail to them that has not left yet is failed, so nothing goes to the placeholder.
* One audit entry ``person.erase`` with the counts and the placeholder, never the address.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text, cast, func, or_, select, update
from sqlalchemy.orm import Session

from core.audit import AuditEntry
from core.blobs import Blob, BlobStore
from core.clock import utcnow
from core.directory.models import User
from core.errors import N_, Conflict
from core.mail.models import InboundMessage, OutboundMail
from core.orm import Base
from core.privacy.scrub import Terms, placeholder_email, placeholder_name, scrub
from core.tickets.models import Attachment, Ticket, TicketEvent, ticket_contacts
from core.worklog.models import WorkLogEntry

# Tables the sweep leaves alone: people are changed row by row (never someone else's row
# that shares a name), and blobs hold only hashes and sizes.
SWEEP_SKIPS = frozenset({"users", "blobs"})
# Tables referring to a person ON DELETE CASCADE whose rows an erasure keeps (pointing at the
# placeholder): who stood in for whom is the desk's history.
KEPT_ON_ERASE = frozenset({"substitutions"})
# The decision an erasure adds to a mail whose raw file it deleted (``mailgw.process`` reads it).
ERASED_RULE = "erased"
ERASED_WHY = "the raw mail was deleted when its sender's personal data was erased"


@dataclass
class Erasure:
    user_id: int
    placeholder: str
    counts: dict[str, int] = field(default_factory=dict)


def is_erased(person: User) -> bool:
    return person.email == placeholder_email(person.id)


def erase_person(
    session: Session,
    person: User,
    *,
    blobs: BlobStore,
    actor: str,
    now: datetime | None = None,
) -> Erasure:
    """Erase ``person`` (see the module's docstring). Does not commit."""
    now = now or utcnow()
    if is_erased(person) or person.is_placeholder:
        raise Conflict(
            N_("%(email)s is a placeholder, already without personal data"), email=person.email
        )
    if person.email == actor:
        raise Conflict(N_("you cannot erase your own account; ask another administrator"))
    session.flush()
    terms = Terms(
        address=person.email,
        name=person.name,
        new_address=placeholder_email(person.id),
        new_name=placeholder_name(person.id),
    )
    counts: Counter[str] = Counter()

    copied = select(ticket_contacts.c.ticket_id).where(ticket_contacts.c.user_id == person.id)
    authored = select(TicketEvent.ticket_id).where(TicketEvent.author_id == person.id)
    their_tickets = list(
        session.scalars(
            select(Ticket.id).where(
                or_(
                    Ticket.requester_id == person.id,
                    Ticket.id.in_(copied),
                    Ticket.id.in_(authored),
                )
            )
        )
    )
    own_events = set(
        session.scalars(select(TicketEvent.id).where(TicketEvent.author_id == person.id))
    )
    own_mail = _own_inbound(session, person, own_events)
    own_events |= {m.event_id for m in own_mail if m.event_id is not None}

    counts["raw_mails_deleted"] = _delete_raw(session, blobs, own_mail)
    counts["attachments_deleted"], counts["files_deleted"] = _delete_attachments(
        session, blobs, own_events
    )
    counts["raw_mails_rewritten"] = _rewrite_raw_mentions(session, blobs, person, own_mail, [terms])

    for table_name, rows in _delete_their_rows(session, person).items():
        counts[f"deleted_{table_name}"] = rows
    address = person.email
    counts["outgoing_cancelled"] = _rowcount(
        session.execute(
            update(OutboundMail)
            .where(
                func.lower(OutboundMail.to_addr).like(f"%{address.lower()}%"),
                OutboundMail.state.in_(("pending", "sending")),
            )
            .values(state="failed", last_error="the recipient's personal data was erased")
            .execution_options(synchronize_session=False)
        )
    )

    person.email = terms.new_address
    person.name = terms.new_name
    person.password_hash = None
    person.totp_secret = None
    person.totp_last_step = None
    person.active = False
    person.manager = False
    person.notify_prefs = None
    person.mail_bouncing_since = None
    session.flush()

    for table, rows in sweep(session, [terms]).items():
        counts[f"rows_in_{table}"] = rows
    if their_tickets:  # their tickets are about them: "Pani Zofio (zofia.k)" goes too
        for table, rows in sweep(
            session, [terms], where=ticket_rows(their_tickets), weak=True
        ).items():
            counts[f"rows_in_{table}"] += rows
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action="person.erase",
            data={
                "user_id": person.id,
                "placeholder": terms.new_address,
                "role": person.role,
                "counts": {k: v for k, v in sorted(counts.items()) if v},
            },
        )
    )
    session.flush()
    return Erasure(person.id, terms.new_address, dict(counts))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _delete_their_rows(session: Session, person: User) -> dict[str, int]:
    """Rows that exist only for the person: those of every table whose reference to them is
    ``ON DELETE CASCADE`` (web sessions, API tokens, copies on tickets, two-step secrets, ...)
    but :data:`KEPT_ON_ERASE`, and rows whose key is their address (login throttles)."""
    session.flush()
    deleted: dict[str, int] = {}
    address = person.email.lower()
    for table in Base.metadata.sorted_tables:
        if table.name in KEPT_ON_ERASE or table.name == "users":
            continue
        clauses = [
            fk.parent == person.id
            for fk in table.foreign_keys
            if fk.column.table.name == "users" and (fk.ondelete or "").upper() == "CASCADE"
        ]
        clauses += [
            func.lower(column).like(f"%{_like(address)}%", escape="\\")
            for column in table.primary_key.columns
            if isinstance(column.type, String)
        ]
        if not clauses:
            continue
        rows = _rowcount(session.execute(table.delete().where(or_(*clauses))))
        if rows:
            deleted[table.name] = int(rows)
    session.expire_all()
    return deleted


def _own_inbound(session: Session, person: User, own_events: set[int]) -> list[InboundMessage]:
    """The mail this person sent: by envelope, by the event it made, or by the From an
    unverified or unknown sender's event records."""
    address = person.email.lower()
    clauses = [func.lower(InboundMessage.envelope_from) == address]
    if own_events:
        clauses.append(InboundMessage.event_id.in_(own_events))
    rows = list(session.scalars(select(InboundMessage).where(or_(*clauses))))
    # Mail recorded without an author (an unverified sender): its event data names the From.
    unverified = session.scalars(
        select(InboundMessage)
        .join(TicketEvent, TicketEvent.id == InboundMessage.event_id)
        .where(
            TicketEvent.author_id.is_(None),
            func.lower(cast(TicketEvent.data, Text)).like(f"%{address}%"),
        )
    )
    seen = {r.id for r in rows}
    for row in unverified:
        event = session.get(TicketEvent, row.event_id)
        data = (event.data if event is not None else None) or {}
        claimed = {str(data.get(k, "")).lower() for k in ("from", "claimed_from")}
        if address in claimed and row.id not in seen:
            rows.append(row)
            seen.add(row.id)
    return rows


def _still_used(session: Session, sha256: str) -> bool:
    attachment = session.scalar(select(Attachment.id).where(Attachment.sha256 == sha256).limit(1))
    mail = session.scalar(select(InboundMessage.id).where(InboundMessage.sha256 == sha256).limit(1))
    return attachment is not None or mail is not None


def _delete_raw(session: Session, blobs: BlobStore, rows: list[InboundMessage]) -> int:
    """Delete the raw files of these mails; the rows keep pointing at the (now missing) blob,
    whose row stays because they refer to it."""
    deleted = 0
    for sha in {row.sha256 for row in rows}:
        if blobs.delete(sha):
            deleted += 1
    for row in rows:
        mark_erased(row)
    session.flush()
    return deleted


def mark_erased(row: InboundMessage) -> None:
    """Note on a mail that its raw file was deleted on purpose: mail processing ignores it when
    re-queued (``mailgw.process``) instead of failing on the missing file."""
    row.decisions = [*row.decisions, {"rule": ERASED_RULE, "result": True, "why": ERASED_WHY}]
    if row.state in ("received", "quarantined"):
        row.state = "ignored"
    if row.state != "processed":
        row.reason = ERASED_WHY


def _delete_attachments(session: Session, blobs: BlobStore, events: set[int]) -> tuple[int, int]:
    if not events:
        return 0, 0
    rows = list(session.scalars(select(Attachment).where(Attachment.event_id.in_(events))))
    shas = {a.sha256 for a in rows}
    for attachment in rows:
        session.delete(attachment)
    session.flush()
    files = 0
    for sha in shas:
        if _still_used(session, sha):
            continue
        blob = session.get(Blob, sha)
        if blob is not None:
            session.delete(blob)
        if blobs.delete(sha):
            files += 1
    session.flush()
    return len(rows), files


def rewrite_raw(
    session: Session, blobs: BlobStore, row: InboundMessage, terms: list[Terms]
) -> bool:
    """Store ``row``'s raw mail again without these people's identifiers; False when it
    names none of them or its file is gone."""
    if not blobs.exists(row.sha256):
        return False
    raw = blobs.read(row.sha256)
    new = raw
    for t in terms:
        new = t.raw(new)
    if new == raw:
        return False
    old = row.sha256
    blob = blobs.put(session, new)
    row.sha256, row.size = blob.sha256, blob.size
    session.flush()
    if not _still_used(session, old):
        gone = session.get(Blob, old)
        if gone is not None:
            session.delete(gone)
            session.flush()
        blobs.delete(old)
    return True


def _rewrite_raw_mentions(
    session: Session,
    blobs: BlobStore,
    person: User,
    own: list[InboundMessage],
    terms: list[Terms],
) -> int:
    """Other people's stored mail that names the person: on their tickets, or whose envelope
    or decisions name them."""
    own_ids = {row.id for row in own}
    address = person.email.lower()
    tickets = select(TicketEvent.ticket_id).where(TicketEvent.author_id == person.id)
    candidates = session.scalars(
        select(InboundMessage).where(
            or_(
                InboundMessage.ticket_id.in_(tickets),
                InboundMessage.ticket_id.in_(
                    select(Ticket.id).where(Ticket.requester_id == person.id)
                ),
                InboundMessage.ticket_id.in_(
                    select(ticket_contacts.c.ticket_id).where(
                        ticket_contacts.c.user_id == person.id
                    )
                ),
                func.lower(cast(InboundMessage.envelope_to, Text)).like(f"%{address}%"),
                func.lower(cast(InboundMessage.decisions, Text)).like(f"%{address}%"),
            )
        )
    )
    return sum(
        1
        for row in list(candidates)
        if row.id not in own_ids and rewrite_raw(session, blobs, row, terms)
    )


def _text_columns(table: Any) -> list[Any]:
    return [
        column
        for column in table.columns
        if isinstance(column.type, String | JSON)
        and not column.primary_key
        and not column.foreign_keys
    ]


def _like(needle: str) -> str:
    """A substring for ``LIKE ... ESCAPE '\\'``: its own backslashes, ``%`` and ``_`` literal."""
    return needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def ticket_rows(ticket_ids: Any) -> dict[str, Any]:
    """A ``where`` for :func:`sweep`: the rows of these tickets (ids, or a subquery of ids)."""
    events = select(TicketEvent.id).where(TicketEvent.ticket_id.in_(ticket_ids))
    return {
        "tickets": Ticket.id.in_(ticket_ids),
        "ticket_events": TicketEvent.ticket_id.in_(ticket_ids),
        "inbound_messages": InboundMessage.ticket_id.in_(ticket_ids),
        "outbound_mail": OutboundMail.ticket_id.in_(ticket_ids),
        "attachments": Attachment.event_id.in_(events),
        "work_log_entries": WorkLogEntry.ticket_id.in_(ticket_ids),
    }


def sweep(
    session: Session,
    terms: list[Terms],
    *,
    where: dict[str, Any] | None = None,
    weak: bool = False,
) -> dict[str, int]:
    """Replace these people's identifiers in every text and JSON column of every table but
    :data:`SWEEP_SKIPS` (or, with ``where``, only the tables named there, narrowed by its
    clause); the number of rows changed per table. Rows are found by the strong identifiers
    (``core.privacy.scrub``), with ``weak`` by the weak ones too (for rows known to be about
    the people: ``where`` should say which); a row found has the weak ones replaced as well."""
    session.flush()
    changed: dict[str, int] = {}
    needles = [n for t in terms for n in t.needles(weak=weak)]
    for table in Base.metadata.sorted_tables:
        if table.name in SWEEP_SKIPS or (where is not None and table.name not in where):
            continue
        columns = _text_columns(table)
        keys = list(table.primary_key.columns)
        if not columns or not keys:
            continue
        matches = or_(
            *(
                func.lower(cast(c, Text)).like(f"%{_like(n)}%", escape="\\")
                for c in columns
                for n in needles
            )
        )
        stmt = select(*keys, *columns).where(matches)
        if where is not None and where[table.name] is not None:
            stmt = stmt.where(where[table.name])
        count = 0
        for row in session.execute(stmt).all():
            values = {}
            for column in columns:
                old = row._mapping[column]
                new = scrub(old, terms)
                if new != old:
                    values[column.name] = new
            if values:
                session.execute(
                    table.update().where(*(k == row._mapping[k] for k in keys)).values(**values)
                )
                count += 1
        if count:
            changed[table.name] = count
    session.expire_all()
    return changed

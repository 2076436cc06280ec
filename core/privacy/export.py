"""Everything stored about one person, as a zip (GDPR art. 15 and 20).

The archive (format ``pulpit-person-export/1``; keys documented in docs/privacy.md):

=====================  ===========================================================================
``person.json``        the format, when and by whom, the profile, counts, and the list of files
``tickets.json``       tickets they requested or are copied on, with the events they may see
                       (a client: what the portal shows, ``core.access.permissions.can_see_event``)
``events.json``        every event they authored (comments, notes, mail, status changes, ...)
``worklogs.json``      time they logged
``mails_in.json``      mail they sent us, each with its raw ``.eml`` under ``files/mail/``
``mails_out.json``     mail we sent or will send them
``logins.json``        their console sessions and the ``login.*`` audit entries under their address
``audit.json``         every other audit entry by them or naming them
``substitutions.json`` who stood in for them and for whom they stood in
``files/``             ``attachments/<id>-<file name>`` of their events, ``mail/inbound-<id>.eml``
=====================  ===========================================================================
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session, object_session

from core.access.models import Substitution, WebSession
from core.access.permissions import visible_status_name
from core.audit import AuditEntry
from core.blobs import BlobStore
from core.clock import utcnow
from core.directory.models import User
from core.mail.models import InboundMessage, OutboundMail
from core.tickets import visibility
from core.tickets.models import Attachment, Ticket, TicketEvent, ticket_contacts
from core.worklog.models import WorkLogEntry

FORMAT = "pulpit-person-export/1"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^\w.\- ]+", "_", name).strip(" .") or "file"
    return cleaned[:120]


def profile(person: User) -> dict[str, Any]:
    return {
        "id": person.id,
        "email": person.email,
        "name": person.name,
        "role": person.role,
        "client": person.client.name if person.client else None,
        "subcontractor": person.subcontractor.name if person.subcontractor else None,
        "manager": bool(person.manager),
        "language": person.language,
        "active": bool(person.active),
        "created_at": _iso(person.created_at),
        "has_password": person.password_hash is not None,
        "two_step": person.totp_secret is not None,
        "mail_bouncing_since": _iso(person.mail_bouncing_since),
        "notify_prefs": person.notify_prefs,
    }


def _custom_fields(session: Session, person: User, ticket: Ticket) -> dict[str, Any]:
    """The values this person may read (``core.tickets.visibility``: a client, only fields
    ``visible_to_client``)."""
    return dict(visibility.custom_fields_for(person, ticket, session=session))


def _visible(session: Session, person: User, ticket: Ticket) -> list[tuple[TicketEvent, Any]]:
    """The ticket's events this person may see (for a client, what the portal shows), each
    with its data as they may read it (``core.tickets.visibility``)."""
    return [
        (view.event, view.data)
        for view in visibility.visible_events(person, ticket, session=session)
    ]


def _own_data(person: User, event: TicketEvent) -> dict[str, Any]:
    """The data of an event the person wrote, as they may read it (a client: no internal
    status or field names)."""
    if person.is_staff:
        return dict(event.data or {})
    ticket = event.ticket
    session = object_session(ticket)
    if session is None:
        return {}
    found = visibility.event_data_for(
        person,
        event,
        visibility.ticket_statuses(session, ticket),
        visibility.readable_field_names(person, ticket, session=session),
    )
    return found or {}


class _Archive:
    def __init__(self, blobs: BlobStore) -> None:
        self.buffer = io.BytesIO()
        self.zip = zipfile.ZipFile(self.buffer, "w", zipfile.ZIP_DEFLATED)
        self.blobs = blobs
        self.files: list[dict[str, Any]] = []
        self.missing: list[str] = []

    def json(self, name: str, value: Any) -> None:
        self.zip.writestr(name, json.dumps(value, ensure_ascii=False, indent=2) + "\n")

    def blob(self, name: str, sha256: str, what: str) -> str | None:
        if any(f["path"] == name for f in self.files):
            return name
        if not self.blobs.exists(sha256):
            self.missing.append(name)
            return None
        with self.zip.open(name, "w") as member:  # piece by piece: a large file or chunks
            for piece in self.blobs.chunks(sha256):
                member.write(piece)
        self.files.append({"path": name, "what": what, "sha256": sha256})
        return name

    def close(self) -> bytes:
        self.zip.close()
        return self.buffer.getvalue()


def _attachment(archive: _Archive, a: Attachment, include_file: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": a.id,
        "filename": a.filename,
        "content_type": a.content_type,
        "size": a.size,
        "sha256": a.sha256,
        "file": None,
    }
    if include_file:
        entry["file"] = archive.blob(
            f"files/attachments/{a.id}-{_safe_name(a.filename)}", a.sha256, "attachment"
        )
    return entry


def _event(archive: _Archive, person: User, event: TicketEvent, data: Any = None) -> dict[str, Any]:
    own = event.author_id == person.id
    author = event.author
    return {
        "id": event.id,
        "ticket": event.ticket.number,
        "type": event.type,
        "at": _iso(event.at),
        "by_you": own,
        "author": (author.email if own or person.is_staff else author.display) if author else None,
        "public": bool(event.public),
        "body_text": event.body_text,
        "body_html": event.body_html,
        "message_id": event.message_id,
        "data": data if data is not None else _own_data(person, event),
        "attachments": [_attachment(archive, a, own) for a in event.attachments],
    }


def build_export(
    session: Session, person: User, *, blobs: BlobStore, actor: str, now: datetime | None = None
) -> bytes:
    """The zip (see the module's docstring); adds the ``person.export`` audit entry."""
    now = now or utcnow()
    archive = _Archive(blobs)
    address = person.email.lower()

    copied_on = select(ticket_contacts.c.ticket_id).where(ticket_contacts.c.user_id == person.id)
    tickets = list(
        session.scalars(
            select(Ticket)
            .where(or_(Ticket.requester_id == person.id, Ticket.id.in_(copied_on)))
            .order_by(Ticket.number)
        )
    )
    ticket_rows = []
    for ticket in tickets:
        ticket_rows.append(
            {
                "number": ticket.number,
                "subject": ticket.subject,
                "relation": "requester" if ticket.requester_id == person.id else "copied",
                "status": visible_status_name(person, ticket.status),
                "status_category": ticket.status_category,
                "contract": ticket.contract.code if ticket.contract else None,
                "client": ticket.client.name if ticket.client else None,
                "created_at": _iso(ticket.created_at),
                "resolved_at": _iso(ticket.resolved_at),
                "custom_fields": _custom_fields(session, person, ticket),
                "events": [
                    _event(archive, person, e, data)
                    for e, data in _visible(session, person, ticket)
                ],
            }
        )
    archive.json("tickets.json", ticket_rows)

    authored = list(
        session.scalars(
            select(TicketEvent)
            .where(TicketEvent.author_id == person.id)
            .order_by(TicketEvent.at, TicketEvent.id)
        )
    )
    archive.json("events.json", [_event(archive, person, e) for e in authored])
    # The work they did, whoever wrote it down (a coordinator may log for them).
    worked = session.execute(
        select(WorkLogEntry, Ticket.number)
        .join(Ticket, WorkLogEntry.ticket_id == Ticket.id)
        .where(WorkLogEntry.user_id == person.id)
        .order_by(WorkLogEntry.started_at, WorkLogEntry.id)
    ).all()
    archive.json(
        "worklogs.json",
        [
            {
                "ticket": number,
                "at": _iso(w.started_at),
                "ended_at": _iso(w.ended_at) if w.ended_at else None,
                "minutes": w.minutes,
                "billable": w.billable,
                "work_type": w.work_type.name if w.work_type else None,
                "note": w.description,
            }
            for w, number in worked
        ],
    )

    own_events = [e.id for e in authored]
    inbound_clauses = [func.lower(InboundMessage.envelope_from) == address]
    if own_events:
        inbound_clauses.append(InboundMessage.event_id.in_(own_events))
    inbound = list(
        session.scalars(
            select(InboundMessage).where(or_(*inbound_clauses)).order_by(InboundMessage.id)
        )
    )
    ticket_ids = {m.ticket_id for m in inbound if m.ticket_id is not None}
    numbers: dict[int, int] = (
        dict(
            session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(ticket_ids))).all()
        )
        if ticket_ids
        else {}
    )
    archive.json(
        "mails_in.json",
        [
            {
                "id": m.id,
                "received_at": _iso(m.received_at),
                "message_id": m.message_id,
                "envelope_from": m.envelope_from,
                "envelope_to": list(m.envelope_to or []),
                "state": m.state,
                "ticket": numbers.get(m.ticket_id) if m.ticket_id else None,
                "size": m.size,
                "file": archive.blob(f"files/mail/inbound-{m.id}.eml", m.sha256, "raw mail"),
            }
            for m in inbound
        ],
    )

    outbound = list(
        session.scalars(
            select(OutboundMail)
            .where(func.lower(OutboundMail.to_addr).like(f"%{address}%"))
            .order_by(OutboundMail.id)
        )
    )
    archive.json(
        "mails_out.json",
        [
            {
                "id": m.id,
                "created_at": _iso(m.created_at),
                "to": m.to_addr,
                "template": m.template,
                "language": m.language,
                "ticket": m.ticket.number if m.ticket else None,
                "state": m.state,
                "sent_at": _iso(m.sent_at),
                "message_id": m.message_id,
                "context": m.context,
            }
            for m in outbound
        ],
    )

    sessions = list(
        session.scalars(
            select(WebSession).where(WebSession.user_id == person.id).order_by(WebSession.id)
        )
    )
    entries = list(
        session.scalars(
            select(AuditEntry)
            .where(
                or_(
                    func.lower(AuditEntry.actor) == address,
                    func.lower(cast(AuditEntry.data, Text)).like(f"%{address}%"),
                    cast(AuditEntry.data, Text).like(f'%"user_id": {person.id},%'),
                    cast(AuditEntry.data, Text).like(f'%"user_id": {person.id}}}%'),
                )
            )
            .order_by(AuditEntry.at, AuditEntry.id)
        )
    )

    def entry_json(entry: AuditEntry) -> dict[str, Any]:
        return {
            "at": _iso(entry.at),
            "actor": entry.actor,
            "action": entry.action,
            "data": entry.data,
        }

    archive.json(
        "logins.json",
        {
            "sessions": [
                {
                    "created_at": _iso(s.created_at),
                    "expires_at": _iso(s.expires_at),
                    "user_agent": s.user_agent,
                }
                for s in sessions
            ],
            "audit": [entry_json(e) for e in entries if e.action.startswith("login")],
        },
    )
    archive.json("audit.json", [entry_json(e) for e in entries if not e.action.startswith("login")])

    substitutions = list(
        session.scalars(
            select(Substitution)
            .where(
                or_(Substitution.absent_id == person.id, Substitution.substitute_id == person.id)
            )
            .order_by(Substitution.id)
        )
    )
    archive.json(
        "substitutions.json",
        [
            {
                "absent": s.absent.email,
                "substitute": s.substitute.email,
                "starts_at": _iso(s.starts_at),
                "ends_at": _iso(s.ends_at),
                "ended_at": _iso(s.ended_at),
                "created_by": s.created_by.email if s.created_by else None,
            }
            for s in substitutions
        ],
    )

    archive.json(
        "person.json",
        {
            "format": FORMAT,
            "exported_at": _iso(now),
            "exported_by": actor,
            "person": profile(person),
            "counts": {
                "tickets": len(ticket_rows),
                "events": len(authored),
                "mails_in": len(inbound),
                "mails_out": len(outbound),
                "sessions": len(sessions),
                "audit_entries": len(entries),
                "substitutions": len(substitutions),
                "files": len(archive.files),
            },
            "files": archive.files,
            "files_missing": archive.missing,
        },
    )
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action="person.export",
            data={"user_id": person.id, "person": person.email, "files": len(archive.files)},
        )
    )
    session.flush()
    return archive.close()


def export_filename(person: User, now: datetime | None = None) -> str:
    day = (now or utcnow()).strftime("%Y%m%d")
    return f"pulpit-person-{person.id}-{day}.zip"

"""A ticket's timeline: the one way anything appends an event to it.

Every change to a ticket is an event on its append-only timeline (``TicketEvent``), and the
SLA clocks, the notifications and the views are all derived from that history. Services in
``core.tickets``, copied contacts, and the outbox (a mail that could not be delivered leaves an
internal note) append through :func:`append_event`, so the rules of appending (attachments
stored with their bytes, the ticket's ``updated_at`` moved forward, never back) live once.

This module imports only models and the blob store: anything in ``core`` may use it without
an import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session, object_session

from core.blobs import BlobStore
from core.directory.models import User
from core.tickets.models import Attachment, Ticket, TicketEvent


@dataclass(frozen=True)
class NewAttachment:
    """A file to attach: from a parsed mail, a console upload or the API."""

    filename: str
    content_type: str
    data: bytes
    inline: bool = False
    content_id: str | None = None


# What a file name must not carry: control characters, and the invisible format characters
# (bidirectional overrides, isolates and marks, zero-width characters) that can hide its real
# extension: "invoice\u202egpj.exe" shows as "invoiceexe.jpg".
_UNSAFE_IN_FILENAMES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)


def clean_filename(name: str) -> str:
    """A file name as it is stored and shown: its last path component only, without control
    or bidirectional-override characters, whitespace collapsed; "" when nothing is left."""
    name = _UNSAFE_IN_FILENAMES.sub("", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return " ".join(name.split())


def timeline_at_hand(ticket: Ticket) -> bool:
    """Is the ticket's whole timeline readable without a query: loaded already (the console's
    ticket page, a merge), or the ticket new or outside a session? A reader that needs only
    part of a long timeline asks for that part otherwise (``core.sla.clocks.timeline``).

    ``InstanceState.unloaded`` will not do: an event appended to an unloaded timeline (the
    backref of ``TicketEvent(ticket=...)``) takes it out of that set without loading it."""
    state = inspect(ticket)
    return object_session(ticket) is None or state.key is None or "events" in state.dict


def append_event(
    session: Session,
    ticket: Ticket,
    type_: str,
    *,
    author: User | None,
    at: datetime,
    public: bool = False,
    body_text: str | None = None,
    body_html: str | None = None,
    message_id: str | None = None,
    data: dict[str, Any] | None = None,
    attachments: Iterable[NewAttachment] = (),
    blobs: BlobStore | None = None,
) -> TicketEvent:
    """Add an event to ``ticket``'s timeline (with its attachments); the caller commits."""
    event = TicketEvent(
        ticket=ticket,
        type=type_,
        at=at,
        author=author,
        public=public,
        body_text=body_text,
        body_html=body_html,
        message_id=message_id,
        data=data or {},
    )
    session.add(event)
    attach(session, event, attachments, blobs)
    if at > ticket.updated_at:
        ticket.updated_at = at
    return event


def attach(
    session: Session,
    event: TicketEvent,
    attachments: Iterable[NewAttachment],
    blobs: BlobStore | None,
) -> None:
    """Store each file once by its hash and link it to ``event``; file names are cleaned
    (:func:`clean_filename`), whoever gave them (a mail, an upload, the API)."""
    for att in attachments:
        if blobs is None:
            raise ValueError("attachments given without a blob store")
        blob = blobs.put(session, att.data)
        session.add(
            Attachment(
                event=event,
                blob=blob,
                filename=clean_filename(att.filename) or "attachment",
                content_type=att.content_type or "application/octet-stream",
                size=len(att.data),
                inline=att.inline,
                content_id=att.content_id,
            )
        )

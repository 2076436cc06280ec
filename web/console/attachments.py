"""Downloading an attachment: checked through its ticket and event, streamed from the blob store
(the file itself from a directory, chunk by chunk from the database: core.blobs).

Files are always sent as downloads (``Content-Disposition: attachment``) with ``nosniff``:
an HTML or SVG file a client mailed in must never run as a page on our origin.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from litestar import Request, get
from litestar.response import File, Response, Stream
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core.access.permissions import can_see_event, can_view
from core.blobs import BlobStore
from core.errors import N_, NotFound
from core.tickets.models import Attachment, TicketEvent
from web.api.params import MAX_ID
from web.deps import DB, CurrentUser

log = logging.getLogger(__name__)


@get("/attachments/{attachment_id:int}", sync_to_thread=True, name="attachment")
def download_attachment(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, attachment_id: int
) -> Response[Any]:
    attachment = (
        db.scalar(
            select(Attachment)
            .where(Attachment.id == attachment_id)
            .options(selectinload(Attachment.event).selectinload(TicketEvent.ticket))
        )
        if attachment_id <= MAX_ID  # past the database's integer: no such row
        else None
    )
    # One answer for "no such file" and "not yours", so ids cannot be probed.
    if (
        attachment is None
        or not can_view(user, attachment.event.ticket)
        or not can_see_event(user, attachment.event)
    ):
        raise NotFound(
            N_("attachment %(id)s does not exist or is not visible to you"), id=attachment_id
        )
    blobs: BlobStore = request.app.state.blobs
    if not blobs.exists(attachment.sha256):  # the operator's problem (a lost data dir)
        log.error("blob %s of attachment %d is missing", attachment.sha256, attachment_id)
        raise NotFound(
            N_("the content of attachment %(id)s is missing; tell the administrators"),
            id=attachment_id,
        )
    return _download(
        blobs,
        attachment.sha256,
        filename=attachment.filename,
        media_type=attachment.content_type or "application/octet-stream",
    )


@get("/events/{event_id:int}/raw", sync_to_thread=True, name="raw_message")
def download_raw_message(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, event_id: int
) -> Response[Any]:
    """The mail exactly as it reached us (an .eml), for the staff who may see its event."""
    from core.mail.models import InboundMessage

    event = (
        db.scalar(
            select(TicketEvent)
            .where(TicketEvent.id == event_id)
            .options(selectinload(TicketEvent.ticket))
        )
        if event_id <= MAX_ID
        else None
    )
    inbound = (
        db.scalar(select(InboundMessage).where(InboundMessage.event_id == event_id).limit(1))
        if event is not None
        else None
    )
    # Raw mail carries every header and quoted history: staff and subcontractors only.
    if (
        event is None
        or inbound is None
        or user.role == "client"
        or not can_view(user, event.ticket)
        or not can_see_event(user, event)
    ):
        raise NotFound(N_("no stored mail for event %(id)s that is visible to you"), id=event_id)
    blobs: BlobStore = request.app.state.blobs
    if not blobs.exists(inbound.sha256):
        log.error("blob %s of inbound message %d is missing", inbound.sha256, inbound.id)
        raise NotFound(
            N_("the stored mail of event %(id)s is missing; tell the administrators"), id=event_id
        )
    return _download(
        blobs,
        inbound.sha256,
        filename=f"ticket-{event.ticket.number}-mail-{inbound.id}.eml",
        media_type="message/rfc822",
    )


DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}


def _download(blobs: BlobStore, sha256: str, *, filename: str, media_type: str) -> Response[Any]:
    """The content as a download: the file itself from the directory store, else streamed
    chunk by chunk from the database store (never whole in memory)."""
    path = blobs.file_path(sha256)
    if path is not None:
        return File(
            path=path,
            filename=filename,
            media_type=media_type,
            content_disposition_type="attachment",
            headers=dict(DOWNLOAD_HEADERS),
        )
    # The Content-Disposition litestar's File sends, for the same name.
    quoted = quote(filename)
    disposition = (
        f'attachment; filename="{filename}"'
        if quoted == filename
        else f"attachment; filename*=utf-8''{quoted}"
    )
    return Stream(
        blobs.chunks(sha256),
        media_type=media_type,
        headers={**DOWNLOAD_HEADERS, "Content-Disposition": disposition},
    )

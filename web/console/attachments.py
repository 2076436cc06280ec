"""Downloading an attachment: checked through its ticket and event, streamed from the blob store.

Files are always sent as downloads (``Content-Disposition: attachment``) with ``nosniff``:
an HTML or SVG file a client mailed in must never run as a page on our origin.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, get
from litestar.response import File
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core.errors import NotFound
from core.models import Attachment, TicketEvent
from core.permissions import can_see_event, can_view
from web.deps import DB, CurrentUser

log = logging.getLogger(__name__)


@get("/attachments/{attachment_id:int}", sync_to_thread=True, name="attachment")
def download_attachment(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, attachment_id: int
) -> File:
    attachment = db.scalar(
        select(Attachment)
        .where(Attachment.id == attachment_id)
        .options(selectinload(Attachment.event).selectinload(TicketEvent.ticket))
    )
    # One answer for "no such file" and "not yours", so ids cannot be probed.
    if (
        attachment is None
        or not can_view(user, attachment.event.ticket)
        or not can_see_event(user, attachment.event)
    ):
        raise NotFound(f"attachment {attachment_id} does not exist or is not visible to you")
    path = request.app.state.blobs.path(attachment.sha256)
    if not path.exists():  # the operator's problem (a lost data dir), not the reader's
        log.error("blob %s of attachment %d is missing", attachment.sha256, attachment_id)
        raise NotFound(
            f"the content of attachment {attachment_id} is missing; tell the administrators"
        )
    return File(
        path=path,
        filename=attachment.filename,
        media_type=attachment.content_type or "application/octet-stream",
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"},
    )

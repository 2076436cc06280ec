"""Where each IMAP poller got to: the UIDVALIDITY and last stored UID per mailbox and folder.

IMAP identifies a message by the pair (UIDVALIDITY, UID) of its folder (RFC 3501 section
2.3.1.1): UIDs only grow while UIDVALIDITY stays the same. The poller stores a message and
raises ``last_uid`` in the same transaction, so after a crash or restart it resumes after the
last message it committed: nothing is read twice and nothing is skipped.

When the server reports a different UIDVALIDITY (the folder was recreated, or the mail moved
to another server) the old UIDs mean nothing any more, so the poller starts over from UID 1
and may store a message a second time; processing deduplicates by Message-ID (or, without
one, by the bytes), so a re-read never makes a second ticket or comment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.mail.models import ImapFolderState


def folder_state(
    session: Session, mailbox: str, folder: str, *, for_update: bool = False
) -> ImapFolderState | None:
    """The stored state of one folder, or None before its first message was stored.

    ``for_update`` locks the row (PostgreSQL) so two pollers of the same mailbox cannot both
    store the same UID; SQLite serialises writers with BEGIN IMMEDIATE anyway.
    """
    stmt = select(ImapFolderState).where(
        ImapFolderState.mailbox == mailbox, ImapFolderState.folder == folder
    )
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def record_stored_uid(
    session: Session,
    mailbox: str,
    folder: str,
    *,
    uidvalidity: int,
    uid: int,
    now: datetime | None = None,
) -> ImapFolderState:
    """Note that ``uid`` of ``folder`` (under ``uidvalidity``) is stored. Does not commit."""
    state = folder_state(session, mailbox, folder)
    when = now or utcnow()
    if state is None:
        state = ImapFolderState(
            mailbox=mailbox, folder=folder, uidvalidity=uidvalidity, last_uid=uid, updated_at=when
        )
        session.add(state)
    elif state.uidvalidity != uidvalidity:
        state.uidvalidity, state.last_uid, state.updated_at = uidvalidity, uid, when
    else:
        state.last_uid, state.updated_at = max(state.last_uid, uid), when
    session.flush()
    return state

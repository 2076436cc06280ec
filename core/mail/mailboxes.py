"""The configured mailboxes, read once per transaction.

Processing one inbound mail asks for them from several places (the contract a mailbox
belongs to, which Cc addresses are ours, the Reply-To of every mail it queues); one SELECT
per transaction answers all of them. A flush that adds, changes or removes a mailbox forgets
the list, so a transaction that configures mailboxes and then routes mail sees its own changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from core.db import transaction_memo
from core.mail.models import Mailbox

_KEY = "mailboxes"


def mailboxes(session: Session) -> list[Mailbox]:
    """Every mailbox, in the order they were created."""
    memo = transaction_memo(session)
    found: list[Mailbox] | None = memo.get(_KEY)
    if found is None or _changed(session):
        found = memo[_KEY] = list(session.scalars(select(Mailbox).order_by(Mailbox.id)))
    return found


def _changed(session: Session) -> bool:
    """A mailbox added, changed or removed and not flushed yet."""
    return any(isinstance(obj, Mailbox) for obj in (*session.new, *session.dirty, *session.deleted))


@event.listens_for(Session, "before_flush")
def _forget_on_change(session: Session, flush_context: Any, instances: Any) -> None:
    memo = session.info.get("pulpit_transaction_memo")
    if memo and _KEY in memo and _changed(session):
        del memo[_KEY]

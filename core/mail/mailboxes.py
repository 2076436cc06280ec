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
from core.orm import added_since_flush, track_added

# An address as nearly every mailbox has it (RFC 5322 3.2.3 and 3.4.1): a dot-atom local
# part, and a domain of two or more labels. The stdlib's address parsers give such an address
# back as it is, after a few hundred calls; mailgw.headers and core.mail.outbox match it first.
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
DOT_ATOM_ADDRESS = rf"{ATEXT}+(?:\.{ATEXT}+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"

_KEY = "mailboxes"
track_added(Mailbox)


def mailboxes(session: Session) -> list[Mailbox]:
    """Every mailbox, in the order they were created."""
    memo = transaction_memo(session)
    found: list[Mailbox] | None = memo.get(_KEY)
    if found is None or _changed(session):
        found = memo[_KEY] = list(session.scalars(select(Mailbox).order_by(Mailbox.id)))
    return found


def base_address(address: str) -> str:
    """An address as the mailbox it reaches: lower-cased, ``<>`` and the plus part removed.

    ``Support+1042.17.abc@Support.Example`` (a signed reply address,
    ``core.mail.reply_address``) and ``support+1042@support.example`` both reach
    ``support@support.example``; the gateway accepts them at RCPT for that reason
    (``mailgw.recipients``).
    """
    text = address.strip().strip("<>").strip().lower()
    local, at, domain = text.rpartition("@")
    if not at:
        return text
    return f"{local.split('+', 1)[0]}@{domain}"


def mailbox_for(session: Session, address: str) -> Mailbox | None:
    """The configured mailbox ``address`` reaches, plus-addresses included, or None."""
    wanted = base_address(address)
    return next((m for m in mailboxes(session) if m.address.strip().lower() == wanted), None)


def _changed(session: Session) -> bool:
    """A mailbox added, changed or removed and not flushed yet (added ones are noted as they
    are added, :func:`core.orm.added_since_flush`)."""
    if added_since_flush(session, Mailbox):
        return True
    return any(isinstance(obj, Mailbox) for obj in (*session.dirty, *session.deleted))


@event.listens_for(Session, "before_flush")
def _forget_on_change(session: Session, flush_context: Any, instances: Any) -> None:
    memo = session.info.get("pulpit_transaction_memo")
    if memo and _KEY in memo and _changed(session):
        del memo[_KEY]

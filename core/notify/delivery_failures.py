"""Staff are told by mail when a mail about a ticket could not be delivered (issue 5).

:func:`core.mail.outbox.mark_failed` (a permanent 5xx from the relay, a template that cannot be
rendered, or the last retry spent) returns a ``DeliveryFailure``; the caller hands it to
:func:`tell_staff` in the same unit of work that marks the row ``failed``. It queues a
``delivery_failed`` mail through the outbox, so the notice commits, or rolls back, with the
failure itself. (The outbox reports to its caller rather than calling up into the
notifications: ``core.mail`` sits below ``core.notify`` and never imports it.)

Who is told: the ticket's assignee and whoever substitutes for them now; with no assignee, the
contract's coordinators (every active coordinator for a ticket without a contract) and their
substitutes. Each person's preferences are asked (``delivery_failed`` in
:data:`core.notify.preferences.EVENT_KINDS`).

Never told, so that a failure can never feed itself:

* the address that failed (it would fail again);
* anyone about a failed ``delivery_failed`` notice (no notice about a notice: no loops);
* anyone about a mail that is not about a ticket (login alerts, test mails): those go to the
  person or admin concerned, who is exactly the one we cannot reach; the failure stays on the
  outbox row (``last_error``) and in the worker's log.

Inactive users and addresses already marked as bouncing are skipped; the dedupe key makes a
second call for the same row and person queue nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy.orm import Session

from core.directory.models import User
from core.mail.models import OutboundMail
from core.mail.outbox import (
    DeliveryFailure,
    mailable,
    queue_mail,
    ticket_context,
    ticket_timezone,
)
from core.notify.notifications import config_of, signed_reply_to
from core.notify.preferences import wants
from core.notify.recipients import contract_coordinators, with_substitutes
from core.tickets.models import Ticket

log = logging.getLogger(__name__)

TEMPLATE = "delivery_failed"
DEFAULT_LANGUAGE = "pl"


def _address(value: str) -> str:
    return parseaddr(value)[1].strip().lower()


def _reachable(user: User, failed: str) -> bool:
    return mailable(user) and _address(user.email) != failed


def recipients(session: Session, ticket: Ticket, now: datetime, failed: str) -> list[User]:
    """The assignee (and substitutes), else the contract's coordinators (and substitutes).

    When the assignee is the one whose address failed (and nobody substitutes), the
    coordinators are told instead: someone must learn that the assignee cannot be reached.
    """
    if ticket.assignee is not None:
        people = [
            u for u in with_substitutes(session, [ticket.assignee], now) if _reachable(u, failed)
        ]
        if people:
            return people
    coordinators = with_substitutes(session, contract_coordinators(session, ticket), now)
    return [u for u in coordinators if _reachable(u, failed)]


def notice_context(
    ticket: Ticket,
    row: OutboundMail,
    error: str,
    now: datetime,
    *,
    public_url: str,
    subject: str | None,
) -> dict[str, Any]:
    """What the ``delivery_failed`` template shows (plain JSON, times as ISO strings)."""
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    context = ticket_context(ticket, public_url=public_url)
    context.update(
        timezone=ticket_timezone(ticket),
        failed_to=row.to_addr,
        failed_subject=subject,
        error=error[:500],
        at=moment.astimezone(UTC).isoformat(),
    )
    return context


def tell_staff(session: Session, failure: DeliveryFailure | None) -> list[OutboundMail]:
    """Queue the notice about a failed mail to staff; returns the queued rows.

    ``None`` (the row had failed already, or will be tried again) queues nothing, so callers
    may pass on whatever :func:`core.mail.outbox.mark_failed` or ``mark_retry`` returned.
    """
    if failure is None:
        return []
    row, error, now, subject = failure.row, failure.error, failure.at, failure.subject
    if row.template == TEMPLATE:
        log.warning("mail %s: a delivery failure notice failed; nobody is told", row.message_id)
        return []
    if row.ticket_id is None:
        return []
    config = config_of(session)
    if config is None:
        log.info("mail %s failed: notifications are not configured here", row.message_id)
        return []
    ticket = row.ticket if row.ticket is not None else session.get(Ticket, row.ticket_id)
    if ticket is None:
        return []
    failed = _address(row.to_addr)
    context = notice_context(ticket, row, error, now, public_url=config.public_url, subject=subject)
    queued: list[OutboundMail] = []
    for user in recipients(session, ticket, now, failed):
        if not wants(user, TEMPLATE, ticket):
            continue
        notice = queue_mail(
            session,
            template=TEMPLATE,
            to=user.email,
            context={**context, "recipient": user.display},
            mail_domain=config.mail_domain,
            language=user.language or DEFAULT_LANGUAGE,
            ticket=ticket,
            auto_submitted="auto-generated",
            reply_to=signed_reply_to(session, ticket, user),
            dedupe_key=f"{TEMPLATE}:{row.id}:{user.id}",
            now=now,
        )
        if notice is not None:
            queued.append(notice)
    if not queued:
        log.info("ticket #%s: nobody to tell that mail %s failed", ticket.number, row.message_id)
    return queued

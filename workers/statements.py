"""The monthly statement mail (``PULPIT_MONTHLY_STATEMENTS``): each client's managers get
last month's billing statement as an XLSX attachment, once.

A scheduler task, hourly. On each run it looks at the month before the current one (in the
report zone): every client with billable work logged in it under a contract that shows the
client its work log (``worklog_visible_to_client``), and its active managers. One
workbook per client and language (the statement and its billable entries,
``core.reports.statement``) is stored in the blob store and queued through the outbox with a
dedupe key per client, month and manager, so later runs, a second scheduler or a restart
never send it twice; a manager added later that month still gets it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.blobs import BlobStore, open_blob_store
from core.contracts.models import Contract
from core.db import unit_of_work
from core.directory.models import Client, User
from core.mail.models import OutboundMail
from core.mail.outbox import derive_mail_domain, queue_mail
from core.reports.base import REPORT_ZONE, Period
from core.reports.export import filename, media_type, to_xlsx
from core.reports.statement import statement, statement_entries
from core.tickets.models import Ticket
from core.worklog.models import WorkLogEntry

log = logging.getLogger(__name__)

STATEMENTS_SECONDS = 3600.0


def last_month(now: datetime) -> Period:
    local = now.astimezone(REPORT_ZONE).date()
    return Period.month_of(local.replace(day=1) - timedelta(days=1))


def clients_with_work(session: Session, period: Period) -> list[Client]:
    lo, hi = period.bounds()
    ids = (
        select(Ticket.client_id)
        .join(WorkLogEntry, WorkLogEntry.ticket_id == Ticket.id)
        .join(Contract, Contract.id == Ticket.contract_id)
        .where(
            WorkLogEntry.started_at >= lo,
            WorkLogEntry.started_at < hi,
            WorkLogEntry.billable.is_(True),
            Contract.worklog_visible_to_client.is_(True),
        )
    )
    return list(session.scalars(select(Client).where(Client.id.in_(ids)).order_by(Client.name)))


def managers(session: Session, client: Client) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(
                User.client_id == client.id,
                User.role == "client",
                User.manager.is_(True),
                User.active.is_(True),
            )
            .order_by(User.email)
        )
    )


@dataclass(frozen=True)
class _Workbook:
    attachment: dict[str, str]
    context: dict[str, Any]


# The console's catalogue for a language, given by whoever starts the scheduler (the
# report labels are the console's words; workers import nothing from web).
Catalogue = Callable[[str], Callable[[str], str]]


def _workbook(
    session: Session,
    client: Client,
    period: Period,
    language: str,
    blobs: BlobStore,
    catalogue: Catalogue | None,
) -> _Workbook:
    """The client's statement and its billable entries in ``language``, stored as XLSX."""
    # The client reads it: what the portal shows them of the work log, no more.
    report = statement(session, client.id, period, language=language, client_view=True)
    entries = statement_entries(session, client.id, period, language=language, client_view=True)
    gettext = catalogue(language) if catalogue is not None else None
    blob = blobs.put(session, to_xlsx(report, gettext, entries))
    totals = report.totals or {}
    return _Workbook(
        attachment={
            "sha256": blob.sha256,
            "filename": filename(report, "xlsx"),
            "content_type": media_type("xlsx"),
        },
        context={
            "client": client.name,
            "month": period.start.strftime("%Y-%m"),
            "tickets": len(report.rows),
            "minutes": int(totals.get("minutes") or 0),
            "billable_minutes": int(totals.get("billable_minutes") or 0),
            "amount": totals.get("amount"),
            "currency": report.currency or "PLN",
        },
    )


def queue_statements(
    session: Session,
    *,
    blobs: BlobStore,
    mail_domain: str,
    public_url: str,
    now: datetime,
    catalogue: Catalogue | None = None,
) -> int:
    """Queue last month's statement for every manager who has not had it; how many."""
    period = last_month(now)
    month = period.start.strftime("%Y-%m")
    queued = 0
    for client in clients_with_work(session, period):
        books: dict[str, _Workbook] = {}
        for person in managers(session, client):
            key = f"statement:{client.id}:{month}:{person.id}"
            if session.scalar(select(OutboundMail.id).where(OutboundMail.dedupe_key == key)):
                continue  # had it: no workbook built for nothing
            language = (person.language or "pl")[:2]
            if language not in books:
                books[language] = _workbook(session, client, period, language, blobs, catalogue)
            book = books[language]
            row = queue_mail(
                session,
                template="statement",
                to=person.email,
                language=language,
                context={
                    **book.context,
                    "recipient": person.name or person.email,
                    "url": public_url.rstrip("/") + "/portal/reports",
                },
                mail_domain=mail_domain,
                dedupe_key=key,
                attachments=[book.attachment],
                now=now,
            )
            queued += row is not None
    return queued


def send_monthly_statements(
    session_factory: sessionmaker[Session],
    now: datetime,
    *,
    settings: Settings,
    catalogue: Catalogue | None = None,
) -> int:
    """The scheduler's task: last month's statements to the managers who have not had them."""
    with unit_of_work(session_factory) as session:
        queued = queue_statements(
            session,
            blobs=open_blob_store(settings.blob_url, settings.blob_dir, session_factory),
            mail_domain=derive_mail_domain(settings.mail_domain, settings.public_url),
            public_url=settings.public_url,
            now=now,
            catalogue=catalogue,
        )
    if queued:
        log.info("monthly statements: %d mail(s) queued", queued)
    return queued

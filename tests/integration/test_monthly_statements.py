"""The monthly statement mail: each client's managers get last month's billing statement as
an XLSX attachment, once, in their language; clients without billable work get nothing."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import upsert_user
from core.blobs import DirectoryBlobStore
from core.mail.models import OutboundMail
from core.tickets import services as svc
from core.worklog import services as worklog
from mailgw.outbound import build_message, render
from tests.factories import at, build_world
from web.i18n import translations
from workers.statements import last_month, queue_statements


def test_last_month_is_the_report_zones() -> None:
    # 23:30 UTC on 30 November is already 1 December in Warsaw: the statement is November's.
    assert str(last_month(at("2026-11-30 23:30"))) == "2026-11-01 – 2026-11-30"
    assert str(last_month(at("2026-11-30 22:30"))) == "2026-10-01 – 2026-10-31"


def test_managers_get_last_months_statement_once(session: Session, tmp_path: Path) -> None:
    world = build_world(session)
    world.acme_contract.hourly_rate = 12000  # 120.00 PLN an hour
    world.acme_contract.worklog_visible_to_client = True
    english = upsert_user(
        session, email="cfo@acme.example", role="client", client="Acme", manager=True
    )
    english.language = "en"
    tech = world.users["coordinator"]
    ticket = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Drukarka nie drukuje",
            requester=world.users["client"],
            contract=world.acme_contract,
            at=at("2026-11-03 08:00"),
        ),
    )
    for minutes, billable in ((90, True), (30, False)):
        worklog.log_work(
            session,
            ticket,
            actor=tech,
            work=worklog.Work(minutes=minutes, billable=billable, description="wymiana"),
            at=at("2026-11-04 12:00"),
        )
    blobs = DirectoryBlobStore(tmp_path / "blobs")
    now = at("2026-12-01 06:00")

    def run() -> int:
        return queue_statements(
            session,
            blobs=blobs,
            mail_domain="support.example",
            public_url="https://desk",
            now=now,
            catalogue=lambda lang: translations(lang).gettext,
        )

    hidden = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Sieć",
            requester=world.users["beta"],
            contract=world.beta_contract,  # its work log is not shown to Beta
            at=at("2026-11-03 08:00"),
        ),
    )
    upsert_user(session, email="szef@beta.example", role="client", client="Beta", manager=True)
    worklog.log_work(
        session, hidden, actor=tech, work=worklog.Work(minutes=60), at=at("2026-11-05 12:00")
    )
    assert run() == 2  # boss@ (Polish) and cfo@ (English); Beta's work is not shown to Beta
    assert run() == 0
    mails = {m.to_addr: m for m in session.scalars(select(OutboundMail))}
    assert set(mails) == {"boss@acme.example", "cfo@acme.example"}
    boss, cfo = mails["boss@acme.example"], mails["cfo@acme.example"]
    # What the client is shown: the billable work only.
    assert boss.context["minutes"] == 90 and boss.context["billable_minutes"] == 90
    assert boss.context["amount"] == 18000  # 90 billable minutes at 120.00 an hour
    assert boss.attachments[0]["filename"] == "pulpit-statement-acme-2026-11.xlsx"
    assert boss.attachments[0]["sha256"] != cfo.attachments[0]["sha256"]  # its own language

    rendered = render(cfo.template, cfo.language, cfo.context)
    assert rendered.subject == "Statement of work for Acme: November 2026"
    assert "Billable: 1:30" in rendered.text and "PLN180.00" in rendered.text
    polish = render(boss.template, boss.language, boss.context)
    assert polish.subject == "Zestawienie prac dla Acme: listopad 2026"
    assert "180,00" in polish.text

    message = build_message(boss, polish, Settings(), blobs.read)
    [part] = list(message.iter_attachments())
    assert part.get_filename() == "pulpit-statement-acme-2026-11.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(part.get_content()))
    sheet = book.worksheets[0]
    values = [c for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
    assert ticket.number in values or f"#{ticket.number}" in values

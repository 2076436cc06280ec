"""The reports API (web/api/reports.py) on SQLite and PostgreSQL: the INTERFACE shapes, the
files, who may ask and the sentences for bad questions."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import openpyxl
import pytest
from litestar.testing import TestClient
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import create_api_token
from core.tickets import services as svc
from core.worklog.services import Work, log_work
from tests.factories import World, build_world
from web.app import create_app

MARCH = "from=2026-03-01&to=2026-03-31"


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    w.acme_contract.hourly_rate = 12000  # 120.00 PLN an hour
    w.acme_contract.worklog_billable = True
    opened = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    for subject, requester, contract in (
        ("Printer down", "client", w.acme_contract),
        ("Scanner down", "client2", w.acme_contract),
        ("Beta outage", "beta", w.beta_contract),
    ):
        ticket = svc.open_ticket(
            session,
            svc.NewTicket(
                subject=subject, requester=w.users[requester], contract=contract, at=opened
            ),
        )
        session.flush()
        log_work(
            session,
            ticket,
            actor=w.users["coordinator"],
            work=Work(minutes=90, started_at=opened, description="fixed"),
            at=opened,
        )
    session.flush()
    return w


@pytest.fixture
def client(session: Session, tmp_path: Any) -> Iterator[TestClient[Any]]:
    conn = session.connection()

    def factory() -> Session:
        return Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)

    app = create_app(Settings(data_dir=tmp_path, secret_key="test"), session_factory=factory)
    with TestClient(app) as c:
        yield c


def auth(session: Session, world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(session, world.users[role])}"}


def test_sla_by_client_has_the_interface_keys(
    client: TestClient[Any], session: Session, world: World
) -> None:
    r = client.get(
        f"/api/v1/reports/sla?{MARCH}&group_by=client",
        headers=auth(session, world, "coordinator"),
    )
    assert r.status_code == 200, r.text
    rows = {row["key"]: row for row in r.json()["rows"]}
    assert set(rows) == {"Acme", "Beta"}
    for key in (
        "key",
        "tickets",
        "reaction_met",
        "reaction_breached",
        "resolution_met",
        "resolution_breached",
        "compliance",
    ):
        assert key in rows["Acme"]
    assert rows["Acme"]["tickets"] == 2
    assert r.json()["from"] == "2026-03-01" and r.json()["group_by"] == "client"


def test_sla_as_xlsx_is_a_named_workbook(
    client: TestClient[Any], session: Session, world: World
) -> None:
    r = client.get(
        f"/api/v1/reports/sla?{MARCH}&group_by=contract&format=xlsx",
        headers=auth(session, world, "admin"),
    )
    assert r.status_code == 200
    assert 'filename="pulpit-sla-2026-03.xlsx"' in r.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert sheet.freeze_panes == "B4"
    assert sheet["A3"].value == "Contract"
    assert sorted(str(sheet[f"A{n}"].value)[:8] for n in (4, 5)) == ["ACME-202", "BETA-247"]
    assert isinstance(sheet["B4"].value, int)


def test_worktime_rows_have_minutes_and_billable_minutes_and_csv(
    client: TestClient[Any], session: Session, world: World
) -> None:
    headers = auth(session, world, "coordinator")
    r = client.get(f"/api/v1/reports/worktime?{MARCH}&group_by=client", headers=headers)
    assert r.status_code == 200, r.text
    rows = {row["key"]: row for row in r.json()["rows"]}
    assert rows["Acme"]["minutes"] == 180 and rows["Acme"]["billable_minutes"] == 180
    assert rows["Acme"]["amount"] == 36000  # 3 h at 120.00
    r = client.get(
        f"/api/v1/reports/worktime?{MARCH}&group_by=technician&format=csv", headers=headers
    )
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="pulpit-worktime-2026-03.csv"' in r.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert table[0][0] == "Technician" and "Time (min)" in table[0]
    assert table[-1][0] == "Total"
    assert table[-1][table[0].index("Time (min)")] == "270"


def test_statement_backlog_and_arrivals(
    client: TestClient[Any], session: Session, world: World
) -> None:
    headers = auth(session, world, "coordinator")
    r = client.get("/api/v1/reports/statement?client=Acme&month=2026-03", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["caption"] == "Acme" and len(r.json()["rows"]) == 2
    r = client.get(
        "/api/v1/reports/statement?client=Acme&month=2026-03&format=xlsx", headers=headers
    )
    assert 'filename="pulpit-statement-acme-2026-03.xlsx"' in r.headers["content-disposition"]
    assert len(openpyxl.load_workbook(io.BytesIO(r.content)).sheetnames) == 2
    assert client.get("/api/v1/reports/backlog", headers=headers).status_code == 200
    r = client.get(f"/api/v1/reports/arrivals?{MARCH}", headers=headers)
    assert r.status_code == 200
    assert sum(row["arrivals"] for row in r.json()["rows"]) == 3
    r = client.get("/api/v1/reports/statement?client=Nobody&month=2026-03", headers=headers)
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("group_by=colour", "group_by should be one of"),
        ("from=2026-13-01", "should be a date"),
        ("from=2026-03-31&to=2026-03-01", "ends before it starts"),
        ("format=pdf", "format should be csv or xlsx"),
    ],
)
def test_bad_questions_are_400_with_a_sentence(
    client: TestClient[Any], session: Session, world: World, query: str, words: str
) -> None:
    r = client.get(f"/api/v1/reports/sla?{query}", headers=auth(session, world, "coordinator"))
    assert r.status_code == 400
    assert words in r.json()["detail"]


def test_who_may_ask(client: TestClient[Any], session: Session, world: World) -> None:
    for role in ("technician", "client", "subcontractor"):
        r = client.get(f"/api/v1/reports/sla?{MARCH}", headers=auth(session, world, role))
        assert r.status_code == 403, role
        assert r.json()["detail"]
    manager = auth(session, world, "manager")
    r = client.get(f"/api/v1/reports/sla?{MARCH}&group_by=client", headers=manager)
    assert [row["key"] for row in r.json()["rows"]] == ["Acme"]
    # The manager's work time is what the client is shown of the work log: nothing until
    # the contract shows it (worklog_visible_to_client), then only billable entries.
    r = client.get(f"/api/v1/reports/worktime?{MARCH}&group_by=client", headers=manager)
    assert r.json()["rows"] == []
    world.acme_contract.worklog_visible_to_client = True
    session.commit()
    r = client.get(f"/api/v1/reports/worktime?{MARCH}&group_by=client", headers=manager)
    assert [row["key"] for row in r.json()["rows"]] == ["Acme"]
    [row] = r.json()["rows"]
    assert row["minutes"] == row["billable_minutes"]
    assert (
        client.get(f"/api/v1/reports/sla?{MARCH}&group_by=assignee", headers=manager).status_code
        == 403
    )
    assert client.get("/api/v1/reports/backlog", headers=manager).status_code == 403
    r = client.get("/api/v1/reports/statement?month=2026-03", headers=manager)
    assert r.json()["caption"] == "Acme"
    r = client.get("/api/v1/reports/statement?client=Beta&month=2026-03", headers=manager)
    assert r.status_code == 403


def test_drill_down_lists_a_groups_tickets_within_the_scope(
    client: TestClient[Any], session: Session, world: World
) -> None:
    headers = auth(session, world, "coordinator")
    r = client.get(
        f"/api/v1/reports/sla/tickets?{MARCH}&group_by=client&id={world.beta.id}", headers=headers
    )
    assert [row["client"] for row in r.json()["rows"]] == ["Beta"]
    r = client.get(f"/api/v1/reports/sla/tickets?{MARCH}", headers=headers)
    assert len(r.json()["rows"]) == 3
    r = client.get(f"/api/v1/reports/sla/tickets?{MARCH}", headers=auth(session, world, "manager"))
    assert {row["client"] for row in r.json()["rows"]} == {"Acme"}
    r = client.get(f"/api/v1/reports/sla/tickets?{MARCH}&group_by=client&id=x", headers=headers)
    assert r.status_code == 400 and "not a group" in r.json()["detail"]

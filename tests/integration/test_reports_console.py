"""The report pages under /reports (web/console/reports.py): what a coordinator sees and
downloads, the drill-down, the navigation link, and what a client's manager may see."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from core.clock import utcnow
from core.contracts.models import Contract
from core.directory.models import User
from core.tickets.models import Ticket
from core.worklog.services import Work, log_work
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client, in_english


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    app = build_seeded_app(tmp_path_factory.mktemp("reports-console"))
    with app.factory() as session:
        coordinator = session.scalar(select(User).where(User.email == app.users["coordinator"]))
        for name in ("key_assigned", "beta_open"):
            ticket = session.scalar(select(Ticket).where(Ticket.number == app.numbers[name]))
            assert ticket is not None and coordinator is not None
            # Starting now, not ending now: the report's default is this month, and 75 minutes
            # back from the first hour of a month is last month.
            log_work(
                session,
                ticket,
                actor=coordinator,
                work=Work(minutes=75, started_at=utcnow(), description="x"),
            )
        # Acme is shown its work log (its manager's work time counts it); Beta is not.
        acme = session.scalar(select(Contract).where(Contract.code == "ACME-KEY"))
        assert acme is not None
        acme.worklog_visible_to_client = True
        session.commit()
    return app


@pytest.fixture(scope="module")
def coordinator(seeded: SeededApp) -> Any:
    return console_client(seeded.app, seeded.users["coordinator"])[0]


@pytest.fixture(scope="module")
def manager(seeded: SeededApp) -> Any:
    return console_client(seeded.app, seeded.users["manager"])[0]


def test_the_navigation_offers_reports_to_those_allowed(seeded: SeededApp) -> None:
    for role, shown in (
        ("coordinator", True),
        ("admin", True),
        ("manager", True),
        ("technician", False),
        ("client", False),
    ):
        client = console_client(seeded.app, seeded.users[role])[0]
        assert ('data-testid="nav-reports"' in client.get("/tickets").text) is shown, role
        assert (client.get("/reports").status_code == 200) is shown, role


def test_sla_page_has_a_chart_a_table_drill_downs_and_downloads(coordinator: Any) -> None:
    page = in_english(coordinator, "/reports/sla?group_by=client")
    assert page.status_code == 200
    html = page.text
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="chart-sla"' in html
    assert '<title id="chart-sla-title">Compliance per month</title>' in html
    assert 'data-testid="report-table"' in html and ">Acme<" in html and ">Beta<" in html
    drills = re.findall(r'href="(/reports/sla/tickets\?[^"]+)" data-testid="drill"', html)
    assert len(drills) == 2
    tickets = coordinator.get(drills[0].replace("&amp;", "&"))
    assert tickets.status_code == 200
    assert re.search(r'href="/tickets/\d+"', tickets.text)
    csv_link = re.search(r'href="([^"]+)" download data-testid="download-csv"', html)
    assert csv_link and "format=csv" in csv_link.group(1) and "group_by=client" in csv_link.group(1)
    r = coordinator.get(csv_link.group(1).replace("&amp;", "&"))
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert [row[0] for row in rows[1:-1]] == ["Acme", "Beta"]


def test_group_by_month_and_assignee_and_bad_input(coordinator: Any) -> None:
    assert coordinator.get("/reports/sla?group_by=month").status_code == 200
    assert coordinator.get("/reports/sla?group_by=assignee").status_code == 200
    r = in_english(coordinator, "/reports/sla?group_by=colour")
    assert r.status_code == 400 and "group_by should be one of" in r.text
    r = in_english(coordinator, "/reports/sla?from=2026-13")
    assert r.status_code == 400 and "should be a date" in r.text


def test_worktime_page_and_its_xlsx(coordinator: Any) -> None:
    html = in_english(coordinator, "/reports/worktime?group_by=client").text
    assert "Work time per technician" in html and '<td class="num">1:15</td>' in html
    r = coordinator.get("/reports/worktime?group_by=client&format=xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert sheet.freeze_panes == "B4"
    header = [c.value for c in sheet[3]]
    time = header.index("Czas (h)" if "Czas (h)" in header else "Time (h)") + 1
    beta = next(row for row in sheet.iter_rows(min_row=4) if row[0].value == "Beta")
    assert beta[time - 1].value == 1.25  # 75 minutes, as hours


def test_backlog_page_has_three_tables_and_the_arrivals_chart(coordinator: Any) -> None:
    html = in_english(coordinator, "/reports/backlog").text
    for testid in ("report-backlog", "report-workload", "report-arrivals", "download-csv-arrivals"):
        assert f'data-testid="{testid}"' in html
    assert 'id="chart-arrivals"' in html and "-hatch" in html
    r = coordinator.get("/reports/backlog?part=workload&format=csv")
    assert "pulpit-workload" in r.headers["content-disposition"]
    r = in_english(coordinator, "/reports/backlog?part=everything&format=csv")
    assert r.status_code == 400 and "part should be one of backlog, workload, arrivals" in r.text


def test_statement_page_for_staff_asks_for_the_client(coordinator: Any) -> None:
    month = utcnow().strftime("%Y-%m")
    html = in_english(coordinator, "/reports/statement").text
    assert 'name="client"' in html and "<option>Acme</option>" in html
    page = in_english(coordinator, f"/reports/statement?client=Acme&month={month}").text
    assert "Billing statement · Acme" in page and 'href="/tickets/' in page
    assert ">Beta<" not in page.split("<main", 1)[1].split("</select>", 1)[1]


def test_a_client_manager_sees_only_their_company(manager: Any) -> None:
    html = in_english(manager, "/reports/sla?group_by=client").text
    table = html.split('data-testid="report-table"', 1)[1]
    assert ">Acme<" in table and ">Beta<" not in table
    assert 'value="assignee"' not in html  # the desk's people are not a grouping for them
    assert in_english(manager, "/reports/sla?group_by=assignee").status_code == 403
    assert in_english(manager, "/reports/backlog").status_code == 403
    worktime = in_english(manager, "/reports/worktime?group_by=client").text
    assert "Work time per month" in worktime
    assert ">1:40</td>" in worktime and ">1:15</td>" not in worktime  # Acme's, not Beta's
    statement = in_english(manager, "/reports/statement").text
    assert 'name="client"' not in statement and "Billing statement · Acme" in statement
    assert in_english(manager, "/reports/statement?client=Beta").status_code == 403


def test_the_pages_speak_polish(coordinator: Any, tmp_path: Path) -> None:
    html = coordinator.get("/reports/sla").text
    assert '<html lang="pl">' in html
    assert "Pobierz CSV" in html or "Download CSV" in html  # Polish once the lead merges X2

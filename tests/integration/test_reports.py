"""Reports computed in SQL on a small world with hand-worked answers, on SQLite and PostgreSQL.

The tickets are opened and moved through the real services with explicit times, so the SLA
figures are the ones ``core.sla.clocks.recompute`` stores. Acme's contract runs on
Mon-Fri 08:00-16:00 Europe/Warsaw (UTC+1 until 29 March 2026, UTC+2 after), failure = 2h
reaction / 8h resolution, 123.45 PLN an hour (12345 grosze, 205.75 a minute: amounts need
rounding); Beta's runs 24/7, failure = 1h / 4h, in EUR, without a rate.

=====  =====================  ====================================================  ==============
T      opened (UTC)           what happens                                           figures
=====  =====================  ====================================================  ==============
T1     Mon 03-02 08:00        reply 08:30, resolved 12:00                             reaction 30, resolution 240
T2     Mon 03-02 09:00        reply Tue 08:00 (7 business h: breached), resolved      reaction 420 breached,
                              Tue 08:30                                                resolution 450
T3     Fri 03-06 13:00        In progress 13:30, paused Fri 14:00 - Mon 03-09 09:00,  reaction 30, resolution 180,
                              resolved Mon 11:00                                       paused 180 (not 67 h)
T4     Tue 03-10 08:00        reply 08:15, resolved 10:00, reopened Wed 08:00,        reaction 15, resolution 240
                              resolved Wed 10:00
T5     Thu 03-12 08:00        reply 09:00, still open on Mon 03-16                    reaction 60, resolution
                                                                                       breached (due Fri 08:00)
T6     Tue 03-31 22:30        nothing (Wed 1 April 00:30 in Warsaw)                   running, running
T7     Sat 02-28 23:30        Beta: reply 00:10, resolved 02:30 (Sun 1 March in      reaction 40, resolution 180
                              Warsaw)
T8     Sat 02-28 22:30        February in Warsaw: outside every March period
T9     Mon 03-02 10:00        no contract: no SLA report, but arrivals and backlog
=====  =====================  ====================================================  ==============
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session

from core.directory.models import User
from core.errors import InputError
from core.reports.backlog import arrivals_report, backlog_report, workload_report
from core.reports.base import Period, Report, Scope
from core.reports.sla import sla_report, sla_tickets
from core.reports.statement import statement, statement_entries
from core.reports.worktime import worktime_report
from core.sla import clocks as sla_clock
from core.tickets import services as svc
from core.tickets.models import Ticket
from core.worklog.models import WorkType
from core.worklog.services import Work, log_work
from tests.factories import World, at, build_world

MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))
SPRING = Period(date(2026, 3, 1), date(2026, 4, 30))
ALL = Scope()


@dataclass
class Desk:
    world: World
    t: dict[int, Ticket]

    def user(self, key: str) -> User:
        return self.world.users[key]


def _open(
    session: Session, w: World, subject: str, when: str, *, beta: bool = False, **kw: object
) -> Ticket:
    return svc.open_ticket(
        session,
        svc.NewTicket(
            subject=subject,
            requester=w.users["beta" if beta else "client"],
            contract=(w.beta_contract if beta else w.acme_contract)
            if kw.pop("contract", True)
            else None,
            at=at(when),
            **kw,  # type: ignore[arg-type]
        ),
    )


def _work(
    session: Session, w: World, ticket: Ticket, person: str, start: str, minutes: int, **kw: object
) -> None:
    """``person``'s work, written down by the coordinator (who may log it on any ticket)."""
    begun = at(start)
    log_work(
        session,
        ticket,
        actor=w.users["coordinator"],
        work=Work(minutes=minutes, started_at=begun, user=w.users[person], **kw),  # type: ignore[arg-type]
        at=begun + timedelta(minutes=minutes),
    )


def build_desk(session: Session, *, beta_rate: int | None = None) -> Desk:
    w = build_world(session)
    w.acme_contract.hourly_rate = 12345
    w.beta_contract.currency = "EUR"
    w.beta_contract.hourly_rate = beta_rate
    session.add_all(
        [
            WorkType(
                contract=w.acme_contract,
                name="onsite",
                rate=18000,
                labels={"pl": "Na miejscu", "en": "On site"},
            ),
            WorkType(contract=w.acme_contract, name="travel", billable=False, position=1),
        ]
    )
    session.flush()
    coord, tech, tech2 = w.users["coordinator"], w.users["technician"], w.users["technician2"]
    t: dict[int, Ticket] = {}

    t[1] = _open(session, w, "Awaria A", "2026-03-02 08:00", assignee=tech)
    svc.add_comment(session, t[1], author=tech, body="Już patrzę", at=at("2026-03-02 08:30"))
    svc.change_status(session, t[1], "Resolved", actor=tech, at=at("2026-03-02 12:00"))

    t[2] = _open(session, w, "Awaria B", "2026-03-02 09:00", assignee=tech2)
    svc.add_comment(session, t[2], author=coord, body="Przepraszamy", at=at("2026-03-03 08:00"))
    svc.change_status(session, t[2], "Resolved", actor=coord, at=at("2026-03-03 08:30"))

    t[3] = _open(session, w, "Awaria C", "2026-03-06 13:00", assignee=tech)
    svc.change_status(session, t[3], "In progress", actor=coord, at=at("2026-03-06 13:30"))
    svc.change_status(session, t[3], "Waiting for client", actor=coord, at=at("2026-03-06 14:00"))
    svc.change_status(session, t[3], "In progress", actor=coord, at=at("2026-03-09 09:00"))
    svc.change_status(session, t[3], "Resolved", actor=coord, at=at("2026-03-09 11:00"))

    t[4] = _open(session, w, "Awaria D", "2026-03-10 08:00")
    svc.add_comment(session, t[4], author=coord, body="Sprawdzamy", at=at("2026-03-10 08:15"))
    svc.change_status(session, t[4], "Resolved", actor=coord, at=at("2026-03-10 10:00"))
    svc.change_status(session, t[4], "In progress", actor=coord, at=at("2026-03-11 08:00"))
    svc.change_status(session, t[4], "Resolved", actor=coord, at=at("2026-03-11 10:00"))

    t[5] = _open(session, w, "Awaria E", "2026-03-12 08:00", assignee=tech2)
    svc.add_comment(session, t[5], author=tech2, body="Zamówione", at=at("2026-03-12 09:00"))
    sla_clock.recompute(t[5], now=at("2026-03-16 08:00"))  # the scheduler's look

    t[6] = _open(session, w, "Awaria F", "2026-03-31 22:30")

    t[7] = _open(session, w, "Awaria G", "2026-02-28 23:30", beta=True)
    svc.add_comment(session, t[7], author=coord, body="Jedziemy", at=at("2026-03-01 00:10"))
    svc.change_status(session, t[7], "Resolved", actor=coord, at=at("2026-03-01 02:30"))

    t[8] = _open(session, w, "Awaria H", "2026-02-28 22:30")
    t[9] = _open(session, w, "Pytanie", "2026-03-02 10:00", contract=False)
    session.flush()

    _work(session, w, t[1], "technician", "2026-03-02 09:00", 45)  # E1 9258.75 -> 9259
    _work(session, w, t[1], "technician", "2026-03-02 10:00", 50, work_type="onsite")  # E2 15000
    _work(
        session, w, t[3], "technician", "2026-03-09 08:00", 30, work_type="travel"
    )  # E3 not billable
    _work(session, w, t[2], "technician2", "2026-03-03 08:00", 7)  # E4 1440.25 -> 1440
    _work(session, w, t[5], "technician2", "2026-03-12 10:00", 20, billable=False)  # E5
    _work(session, w, t[6], "coordinator", "2026-03-31 23:00", 10)  # E6 April in Warsaw; 2057.5
    _work(session, w, t[7], "coordinator", "2026-03-01 00:00", 25)  # E7 Beta
    _work(session, w, t[9], "coordinator", "2026-03-02 10:30", 15)  # E8 no contract, no rate
    _work(session, w, t[8], "coordinator", "2026-02-28 22:40", 60)  # E9 February in Warsaw
    session.flush()
    return Desk(w, t)


@pytest.fixture
def desk(session: Session) -> Desk:
    return build_desk(session)


def by_key(report: Report) -> dict[str, dict[str, object]]:
    return {str(r["key"]): r for r in report.rows}


def figures(row: dict[str, object], *keys: str) -> tuple[object, ...]:
    return tuple(row[k] for k in keys)


SLA = ("tickets", "reaction_met", "reaction_breached", "resolution_met", "resolution_breached")
PCT = ("reaction_median", "reaction_p90", "resolution_median", "resolution_p90")


def test_the_services_stored_the_hand_worked_figures(desk: Desk) -> None:
    t = desk.t
    assert (t[2].reaction_minutes, t[2].reaction_breached_at) == (420, at("2026-03-02 11:00"))
    assert (t[3].resolution_minutes, t[3].paused_minutes) == (180, 180)
    assert (t[4].resolution_minutes, t[4].resolved_at) == (240, at("2026-03-11 10:00"))
    assert t[5].resolution_breached_at == at("2026-03-13 08:00")
    assert t[9].contract_id is None


def test_sla_by_client(session: Session, desk: Desk) -> None:
    report = sla_report(session, SPRING, "client", ALL)
    assert [r["key"] for r in report.rows] == ["Acme", "Beta"]
    acme, beta = report.rows
    assert acme["id"] == desk.world.acme.id
    # T1-T6; T9 has no contract, T8 was opened in February (Warsaw).
    assert figures(acme, *SLA) == (6, 4, 1, 4, 1)
    assert acme["compliance"] == pytest.approx(100 * 4 / 6)  # T2 and T5 breached
    # reaction [15, 30, 30, 60, 420]: p90 at rank 3.6; resolution [180, 240, 240, 450]
    assert figures(acme, *PCT) == (30, 276, 240, 387)
    assert acme["paused_minutes"] == 180  # business minutes of T3's weekend pause
    assert figures(beta, *SLA, *PCT) == (1, 1, 0, 1, 0, 40, 40, 180, 180)
    assert beta["compliance"] == 100.0
    total = report.totals
    assert total is not None
    assert figures(total, *SLA) == (7, 5, 1, 5, 1)
    assert total["compliance"] == pytest.approx(100 * 5 / 7)
    # reaction [15, 30, 30, 40, 60, 420]; resolution [180, 180, 240, 240, 450]
    assert figures(total, *PCT) == (35, 240, 240, 366)
    assert total["paused_minutes"] == 180


def test_sla_month_is_the_month_in_warsaw(session: Session, desk: Desk) -> None:
    # T7 (28 Feb 23:30 UTC) is March in Warsaw; T6 (31 Mar 22:30 UTC) is April.
    report = sla_report(session, SPRING, "month", ALL)
    rows = by_key(report)
    assert list(rows) == ["2026-03", "2026-04"]
    assert rows["2026-03"]["tickets"] == 6
    assert figures(rows["2026-04"], *SLA) == (1, 0, 0, 0, 0)
    assert rows["2026-04"]["compliance"] == 100.0  # running, nothing breached yet
    assert [(r["key"], r["tickets"]) for r in sla_report(session, MARCH, "month", ALL).rows] == [
        ("2026-03", 6)
    ]
    drill = sla_tickets(session, SPRING, "month", "2026-04", ALL)
    assert [r["number"] for r in drill.rows] == [desk.t[6].number]
    assert (drill.rows[0]["reaction"], drill.rows[0]["resolution"]) == ("running", "running")
    assert drill.rows[0]["created"] == "2026-04-01"


def test_sla_by_assignee_type_and_contract(session: Session, desk: Desk) -> None:
    rows = by_key(sla_report(session, SPRING, "assignee", ALL))
    assert list(rows) == ["Technician", "Technician2", "unassigned"]
    assert [rows[k]["tickets"] for k in rows] == [2, 2, 3]
    assert rows["unassigned"]["id"] == 0
    assert figures(rows["Technician2"], *SLA) == (2, 1, 1, 1, 1)
    assert rows["Technician2"]["compliance"] == 0.0
    # Ticket types are grouped by name across contracts.
    types = sla_report(session, SPRING, "ticket_type", ALL)
    assert [(r["key"], r["tickets"]) for r in types.rows] == [("failure", 7)]
    contracts = sla_report(session, SPRING, "contract", ALL)
    assert [(r["key"], r["tickets"]) for r in contracts.rows] == [
        ("ACME-2026", 6),
        ("BETA-247", 1),
    ]


def test_sla_drill_down(session: Session, desk: Desk) -> None:
    t = desk.t
    drill = sla_tickets(session, SPRING, "client", desk.world.acme.id, ALL)
    assert [r["number"] for r in drill.rows] == [t[i].number for i in range(1, 7)]
    rows = {r["number"]: r for r in drill.rows}
    two = rows[t[2].number]
    assert figures(two, "reaction", "resolution", "reaction_minutes", "resolution_minutes") == (
        "breached",
        "met",
        420,
        450,
    )
    assert figures(two, "client", "contract", "ticket_type", "assignee") == (
        "Acme",
        "ACME-2026",
        "failure",
        "Technician2",
    )
    assert rows[t[3].number]["paused_minutes"] == 180
    assert (rows[t[5].number]["resolution"], rows[t[5].number]["resolution_minutes"]) == (
        "breached",
        None,
    )
    unassigned = sla_tickets(session, SPRING, "assignee", 0, ALL)
    assert [r["number"] for r in unassigned.rows] == [t[4].number, t[6].number, t[7].number]
    with pytest.raises(InputError):
        sla_tickets(session, SPRING, "month", "March", ALL)
    with pytest.raises(InputError):
        sla_report(session, SPRING, "colour", ALL)


def test_a_client_scope_sees_only_its_client(session: Session, desk: Desk) -> None:
    beta = Scope(client_id=desk.world.beta.id)
    sla = sla_report(session, SPRING, "client", beta)
    assert [r["key"] for r in sla.rows] == ["Beta"]
    assert [r["number"] for r in sla_tickets(session, SPRING, None, None, beta).rows] == [
        desk.t[7].number
    ]
    work = worktime_report(session, SPRING, "technician", beta)
    assert [(r["key"], r["minutes"]) for r in work.rows] == [("Coordinator", 25)]
    assert [r["open"] for r in backlog_report(session, beta, at("2026-04-02 12:00")).rows] == [
        0
    ] * 5
    arrivals = arrivals_report(session, MARCH, beta)
    assert [(r["arrivals"], r["closures"]) for r in arrivals.rows] == [(1, 1)] + [(0, 0)] * 5


WORK = ("entries", "minutes", "billable_minutes", "non_billable_minutes", "amount")


def test_worktime_by_client(session: Session, desk: Desk) -> None:
    report = worktime_report(session, SPRING, "client", ALL)
    assert report.currency == "PLN"
    assert "currency" not in [c.key for c in report.columns]
    rows = by_key(report)
    # E1-E6 and E8 (no contract, no rate); E9 started in February (Warsaw).
    # Amount: (45*12345 + 50*18000 + 7*12345 + 10*12345) / 60 = 27756.5 -> 27757.
    assert figures(rows["Acme"], *WORK) == (7, 177, 127, 50, 27757)
    assert figures(rows["Beta"], *WORK) == (1, 25, 25, 0, None)  # no rate: no amount
    assert report.totals is not None
    assert figures(report.totals, *WORK) == (8, 202, 152, 50, 27757)


def test_worktime_by_technician_rounds_once_per_group(session: Session, desk: Desk) -> None:
    report = worktime_report(session, SPRING, "technician", ALL)
    rows = by_key(report)
    assert list(rows) == ["Coordinator", "Technician", "Technician2"]
    # (45*12345 + 50*18000) / 60 = 24258.75; 10*12345/60 = 2057.5; 7*12345/60 = 1440.25
    assert figures(rows["Technician"], *WORK) == (3, 125, 95, 30, 24259)
    assert figures(rows["Coordinator"], *WORK) == (3, 50, 50, 0, 2058)  # E7, E8 have no rate
    assert figures(rows["Technician2"], *WORK) == (2, 27, 7, 20, 1440)
    assert report.totals is not None
    assert report.totals["amount"] == 24259 + 2058 + 1440  # the rows add up


def test_worktime_by_month_and_work_type(session: Session, desk: Desk) -> None:
    months = by_key(worktime_report(session, SPRING, "month", ALL))
    assert list(months) == ["2026-03", "2026-04"]
    assert figures(months["2026-03"], *WORK) == (7, 192, 142, 50, 25699)
    assert figures(months["2026-04"], *WORK) == (1, 10, 10, 0, 2058)  # 2057.5, half up
    types = worktime_report(session, SPRING, "work_type", ALL)
    assert [r["key"] for r in types.rows] == ["onsite", "travel", "no work type"]
    onsite, travel, none = types.rows
    assert figures(onsite, *WORK) == (1, 50, 50, 0, 15000)
    assert figures(travel, *WORK) == (1, 30, 0, 30, 0)  # rated but not billable: 0, not None
    assert figures(none, *WORK) == (6, 122, 102, 20, 12757)  # 765390 / 60 = 12756.5
    tickets = worktime_report(session, SPRING, "ticket", ALL)
    assert tickets.rows[0]["key"] == f"#{desk.t[1].number} Awaria A"
    assert figures(tickets.rows[0], *WORK) == (2, 95, 95, 0, 24259)


def test_worktime_in_several_currencies(session: Session) -> None:
    desk = build_desk(session, beta_rate=6000)
    report = worktime_report(session, SPRING, "client", ALL)
    assert report.currency is None
    assert [c.key for c in report.columns][:2] == ["key", "currency"]
    assert [(r["key"], r["currency"], r["amount"]) for r in report.rows] == [
        ("Acme", "PLN", 27757),
        ("Beta", "EUR", 2500),
    ]
    assert report.totals is not None
    assert report.totals["amount"] is None and report.totals["minutes"] == 202
    # March holds PLN, EUR and unrated work: one row each, never a sum across currencies.
    march = [r for r in worktime_report(session, SPRING, "month", ALL).rows if r["id"] == "2026-03"]
    assert [(r["currency"], r["minutes"], r["amount"]) for r in march] == [
        ("EUR", 25, 2500),
        ("PLN", 152, 25699),
        (None, 15, None),
    ]
    assert desk.t[7].contract_id == desk.world.beta_contract.id


def test_statement_of_a_client_for_march(session: Session, desk: Desk) -> None:
    t = desk.t
    report = statement(session, desk.world.acme.id, MARCH, language="pl")
    assert (report.caption, report.currency) == ("Acme", "PLN")
    keys = ("number", "contract", "entries", "minutes", "billable_minutes", "amount")
    # T6's entry is on 1 April in Warsaw, so not in March's statement.
    assert [figures(r, *keys) for r in report.rows] == [
        (t[1].number, "ACME-2026", 2, 95, 95, 24259),  # 1455525 / 60 = 24258.75
        (t[2].number, "ACME-2026", 1, 7, 7, 1440),
        (t[3].number, "ACME-2026", 1, 30, 0, 0),
        (t[5].number, "ACME-2026", 1, 20, 0, 0),
        (t[9].number, None, 1, 15, 15, None),
    ]
    assert report.totals is not None
    assert figures(report.totals, "entries", "minutes", "billable_minutes", "amount") == (
        6,
        167,
        117,
        24259 + 1440,
    )
    entries = statement_entries(session, desk.world.acme.id, MARCH, language="pl")
    keys = ("date", "ticket", "person", "work_type", "minutes", "amount")
    assert [figures(r, *keys) for r in entries.rows] == [
        ("2026-03-02", f"#{t[1].number}", "Technician", None, 45, 9259),
        ("2026-03-02", f"#{t[1].number}", "Technician", "Na miejscu", 50, 15000),
        ("2026-03-02", f"#{t[9].number}", "Coordinator", None, 15, None),
        ("2026-03-03", f"#{t[2].number}", "Technician2", None, 7, 1440),
    ]
    assert entries.totals == {"key": "Total", "id": None, "minutes": 117, "amount": 25699}


def test_backlog_and_workload(session: Session, desk: Desk) -> None:
    now = at("2026-04-02 12:00")
    backlog = backlog_report(session, ALL, now)
    # Open: T6 (1.5 days, reaction overdue), T5 (21 days, resolution overdue),
    # T8 (32 days, overdue) and T9 (31 days, no contract: never overdue).
    assert [(r["id"], r["open"], r["overdue"]) for r in backlog.rows] == [
        ("1d", 0, 0),
        ("3d", 1, 1),
        ("7d", 0, 0),
        ("30d", 1, 1),
        ("older", 2, 1),
    ]
    assert backlog.totals == {"key": "Total", "id": None, "open": 4, "overdue": 3}
    workload = workload_report(session, ALL, now)
    # Worked since 3 March 12:00 UTC: E6 (Coordinator), E3 (Technician), E5 (Technician2).
    assert [(r["key"], r["open"], r["overdue"], r["worked_minutes"]) for r in workload.rows] == [
        ("Coordinator", 0, 0, 10),
        ("Technician", 0, 0, 30),
        ("Technician2", 1, 1, 20),
        ("unassigned", 3, 2, 0),
    ]


def test_arrivals_and_closures_per_iso_week(session: Session, desk: Desk) -> None:
    report = arrivals_report(session, MARCH, ALL)
    # Sunday 1 March is in W09; T4 closed twice and counts once, at its last closing.
    assert [(r["key"], r["arrivals"], r["closures"]) for r in report.rows] == [
        ("2026-W09", 1, 1),
        ("2026-W10", 4, 2),
        ("2026-W11", 2, 2),
        ("2026-W12", 0, 0),
        ("2026-W13", 0, 0),
        ("2026-W14", 0, 0),
    ]
    assert report.totals == {"key": "Total", "id": None, "arrivals": 7, "closures": 5}


def test_sla_totals_without_targets(session: Session) -> None:
    build_world(session)
    report = sla_report(session, MARCH, "client", ALL)
    assert report.rows == []
    assert report.totals is not None and report.totals["compliance"] is None
    assert report.totals["reaction_median"] is None


def test_by_ticket_in_index_order_as_by_hashing(
    session: Session, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over most of the work log's history PostgreSQL sums by ticket walking the covering
    index (hash aggregation off for that one query); the rows are the same either way, and
    the setting is back afterwards."""
    from core.reports import worktime

    assert worktime._most_of_history(session, SPRING)
    assert not worktime._most_of_history(session, Period(date(2026, 3, 2), date(2026, 3, 2)))
    walked = worktime_report(session, SPRING, "ticket", ALL)
    monkeypatch.setattr(worktime, "INDEX_ORDER_SHARE", 2.0)  # never
    assert not worktime._most_of_history(session, SPRING)
    hashed = worktime_report(session, SPRING, "ticket", ALL)
    assert walked.rows == hashed.rows and walked.totals == hashed.totals
    assert [r["id"] for r in walked.rows] == sorted(r["id"] for r in walked.rows)
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import text

        assert session.execute(text("SHOW enable_hashagg")).scalar_one() == "on"


def test_a_merged_duplicate_leaves_the_sla_report(session: Session, desk: Desk) -> None:
    """A ticket merged into another (the client wrote twice) is closed by the merge, which
    meets or stops its clocks; it is a duplicate, so SLA compliance counts only the ticket it
    joined (issue 15)."""
    from core.tickets.merge import merge_tickets

    before = sla_report(session, SPRING, "client", ALL).rows[0]
    merge_tickets(
        session,
        desk.t[5],
        desk.t[4].number,
        actor=desk.world.users["coordinator"],
        at=at("2026-03-16 09:00"),
    )
    session.flush()
    after = sla_report(session, SPRING, "client", ALL).rows[0]
    assert after["key"] == "Acme" and after["tickets"] == before["tickets"] - 1
    # T5 took its met reaction and its breached resolution along; T2 still breached reaction.
    assert figures(after, *SLA) == (5, 3, 1, 4, 0)

"""The work log (issue 14): the rules of ``core.worklog.services`` at their edges (the edit
window, who manages, one timer per person, the ticket's sums), and the ticket page's work log
card, list column and portal view built on them."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import Conflict, Forbidden, InputError
from core.tickets import services as svc
from core.tickets.models import Ticket, TicketEvent
from core.worklog import services as wl
from core.worklog.models import WorkLogEntry, WorkTimer, WorkType
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client, in_english
from tests.factories import World, at, build_world

NOW = at("2026-03-02 10:00")


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


@pytest.fixture
def ticket(session: Session, world: World) -> Ticket:
    t = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Drukarka", requester=world.users["client"], contract=world.acme_contract
        ),
    )
    svc.assign(
        session,
        t,
        actor=world.users["coordinator"],
        assignee=world.users["technician"],
        subcontractor=None,
    )
    return t


def log(session: Session, t: Ticket, who: Any, **work: Any) -> WorkLogEntry:
    return wl.log_work(session, t, actor=who, work=wl.Work(**work), at=NOW)


def test_start_and_end_give_the_minutes_and_times_need_a_zone(
    session: Session, world: World, ticket: Ticket
) -> None:
    tech = world.users["technician"]
    e = log(
        session, ticket, tech, started_at=at("2026-03-02 08:00"), ended_at=at("2026-03-02 08:45")
    )
    assert (e.minutes, e.ended_at) == (45, at("2026-03-02 08:45"))
    with pytest.raises(InputError, match="end after it starts"):
        log(
            session,
            ticket,
            tech,
            started_at=at("2026-03-02 09:00"),
            ended_at=at("2026-03-02 08:00"),
        )
    with pytest.raises(InputError, match="time zone"):
        log(
            session, ticket, tech, started_at=at("2026-03-02 08:00").replace(tzinfo=None), minutes=5
        )
    with pytest.raises(InputError, match="between 1 and 1440"):
        log(session, ticket, tech, minutes=0)


def test_own_entries_change_within_the_window_coordinators_always(
    session: Session, world: World, ticket: Ticket
) -> None:
    tech, other, coord = (world.users[k] for k in ("technician", "technician2", "coordinator"))
    e = log(session, ticket, tech, minutes=30, description="diagnoza")
    later = NOW + timedelta(days=7, minutes=1)
    change = wl.Work(minutes=40, given={"minutes"})
    assert wl.may_change(tech, e, NOW + timedelta(days=7), 7)
    assert not wl.may_change(tech, e, later, 7)
    with pytest.raises(Forbidden, match="7 days"):
        wl.change_entry(session, ticket, e, actor=tech, work=change, at=later, edit_days=7)
    with pytest.raises(Forbidden):  # not theirs (nor their ticket)
        wl.delete_entry(session, ticket, e, actor=other, at=NOW)
    # A longer window (PULPIT_WORKLOG_EDIT_DAYS) lets the author still change it.
    assert wl.change_entry(session, ticket, e, actor=tech, work=change, at=later, edit_days=30) == {
        "minutes": [30, 40]
    }
    wl.change_entry(
        session,
        ticket,
        e,
        actor=coord,
        work=wl.Work(billable=False, given={"billable"}),
        at=NOW + timedelta(days=90),
    )
    assert (ticket.worked_minutes, ticket.billable_minutes) == (40, 0)


def test_every_change_is_on_the_timeline_and_recounted(
    session: Session, world: World, ticket: Ticket
) -> None:
    tech, coord = world.users["technician"], world.users["coordinator"]
    a = log(session, ticket, tech, minutes=30)
    b = log(session, ticket, coord, minutes=15, billable=False, user=world.users["admin"])
    assert b.user.email == "admin@support.example"
    assert (ticket.worked_minutes, ticket.billable_minutes) == (45, 30)
    wl.change_entry(
        session, ticket, a, actor=tech, work=wl.Work(minutes=60, given={"minutes"}), at=NOW
    )
    wl.delete_entry(session, ticket, b, actor=coord, at=NOW)
    assert (ticket.worked_minutes, ticket.billable_minutes) == (60, 60)
    events = session.scalars(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.type == "worklog")
        .order_by(TicketEvent.id)
    ).all()
    assert [e.data["action"] for e in events] == ["logged", "logged", "changed", "deleted"]
    assert events[1].data["for"] == "admin@support.example"
    assert events[2].data["changes"] == {"minutes": [30, 60]}


def test_only_managers_log_for_others(session: Session, world: World, ticket: Ticket) -> None:
    with pytest.raises(Forbidden, match="someone else"):
        log(session, ticket, world.users["technician"], minutes=5, user=world.users["technician2"])
    with pytest.raises(InputError, match="not an active staff"):
        log(session, ticket, world.users["coordinator"], minutes=5, user=world.users["client"])
    with pytest.raises(InputError, match="does not see"):  # not their ticket
        log(session, ticket, world.users["coordinator"], minutes=5, user=world.users["technician2"])


def test_work_types_set_the_rate_and_the_billable_default(
    session: Session, world: World, ticket: Ticket
) -> None:
    contract = world.acme_contract
    contract.hourly_rate, contract.worklog_billable = 12000, True
    session.add_all(
        [
            WorkType(contract=contract, name="travel", rate=6000, billable=False, position=1),
            WorkType(contract=contract, name="on_site", rate=18000, position=0),
        ]
    )
    session.flush()
    tech = world.users["technician"]
    travel = log(session, ticket, tech, minutes=60, work_type="travel")
    site = log(session, ticket, tech, minutes=30, work_type="on_site")
    plain = log(session, ticket, tech, minutes=60)
    assert (travel.billable, travel.rate, travel.amount) == (False, 6000, None)
    assert (site.billable, site.rate, site.amount) == (True, 18000, 9000)
    assert plain.amount == 12000
    assert wl.totals([travel, site, plain]).amount == 21000
    with pytest.raises(InputError, match="known: on_site, travel"):
        log(session, ticket, tech, minutes=5, work_type="teleport")


def test_one_timer_per_person_and_stop_writes_the_entry(
    session: Session, world: World, ticket: Ticket
) -> None:
    tech = world.users["technician"]
    other = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Skaner", requester=world.users["client"], contract=world.acme_contract
        ),
    )
    svc.assign(session, other, actor=world.users["coordinator"], assignee=tech, subcontractor=None)
    timer = wl.start_timer(session, ticket, actor=tech, at=NOW)
    assert wl.start_timer(session, ticket, actor=tech, at=NOW) is timer  # a second click
    with pytest.raises(Conflict, match=f"#{ticket.number}"):
        wl.start_timer(session, other, actor=tech, at=NOW)
    with pytest.raises(Conflict):
        wl.stop_timer(session, other, actor=tech, at=NOW)
    entry = wl.stop_timer(
        session,
        ticket,
        actor=tech,
        work=wl.Work(description="wymiana bębna", billable=False),
        at=NOW + timedelta(minutes=20, seconds=5),
    )
    assert (entry.minutes, entry.started_at, entry.billable) == (21, NOW, False)
    assert session.scalar(select(WorkTimer)) is None
    wl.start_timer(session, other, actor=tech, at=NOW)
    assert wl.cancel_timer(session, other, actor=tech)
    assert not wl.cancel_timer(session, other, actor=tech)
    assert other.worked_minutes in (0, None)


def test_two_tabs_starting_the_timer_at_once_give_one_timer(
    session: Session, world: World, ticket: Ticket, monkeypatch: pytest.MonkeyPatch
) -> None:
    tech = world.users["technician"]
    first = wl.start_timer(session, ticket, actor=tech, at=NOW)
    # The second tab read "no timer" just before the first one's row was written.
    real, calls = wl.running_timer, []

    def stale(s: Session, user: Any) -> Any:
        calls.append(user)
        return None if len(calls) == 1 else real(s, user)

    monkeypatch.setattr(wl, "running_timer", stale)
    assert wl.start_timer(session, ticket, actor=tech, at=NOW) is first  # no 500: the same one
    assert session.scalar(select(func.count(WorkTimer.id))) == 1


def test_clients_see_billable_entries_only_when_the_contract_says_so(
    session: Session, world: World, ticket: Ticket
) -> None:
    tech = world.users["technician"]
    log(session, ticket, tech, minutes=30, description="naprawa")
    log(session, ticket, tech, minutes=10, billable=False, description="wewnętrzne")
    assert wl.client_entries(session, ticket) == []
    world.acme_contract.worklog_visible_to_client = True
    assert [e.description for e in wl.client_entries(session, ticket)] == ["naprawa"]


# --- The console ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("worklog"))


def flash(html: str) -> str:
    match = re.search(r'class="flash[^"]*"[^>]*>(.*?)</', html, re.S)
    return match.group(1).strip() if match else ""


def entry_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-entry="(\d+)"', html)]


def test_the_card_logs_start_and_end_and_edits_and_deletes(
    instance: SeededApp, tmp_path: Path
) -> None:
    client, csrf = console_client(instance.app, instance.users["technician"])
    number = instance.numbers["key_assigned"]  # the seed logged 25 minutes on it
    (seeded,) = entry_ids(client.get(f"/tickets/{number}").text)
    r = client.post(
        f"/tickets/{number}/worklog",
        data={
            "csrf_token": csrf,
            "mode": "span",
            "start": "2026-03-02T09:00",
            "end": "2026-03-02T09:45",
            "description": "Wymiana bębna",
            "billable": "1",
        },
    )
    assert r.status_code == 200 and "Zapisano 45 minut pracy." in r.text
    assert 'data-testid="total-all">1h 10m<' in r.text
    (entry,) = set(entry_ids(r.text)) - {seeded}
    page = client.get(f"/tickets/{number}/worklog/{entry}")
    assert 'value="2026-03-02T09:00"' in page.text
    r = client.post(
        f"/tickets/{number}/worklog/{entry}",
        data={"csrf_token": csrf, "mode": "minutes", "minutes": "90", "when": "2026-03-02T11:00"},
    )
    assert 'data-testid="total-all">1h 55m<' in r.text
    assert 'data-testid="total-nonbillable">1h 30m<' in r.text  # the box was left unticked
    assert 'data-action="changed"' in r.text
    r = client.post(f"/tickets/{number}/worklog/{entry}/delete", data={"csrf_token": csrf})
    assert entry_ids(r.text) == [seeded] and 'data-action="deleted"' in r.text


def test_refusals_come_back_with_what_was_typed(instance: SeededApp) -> None:
    client, csrf = console_client(instance.app, instance.users["technician"])
    number = instance.numbers["key_assigned"]
    r = client.post(
        f"/tickets/{number}/worklog",
        data={
            "csrf_token": csrf,
            "mode": "span",
            "start": "2026-03-02T10:00",
            "end": "2026-03-02T09:00",
            "description": "Odwrotnie",
        },
    )
    assert r.status_code == 400
    assert 'value="Odwrotnie"' in r.text and 'value="2026-03-02T10:00"' in r.text
    # The technician's entries have edit links; a coordinator changes anyone's.
    assert 'data-testid="entry-edit"' in r.text
    coord, _ = console_client(instance.app, instance.users["coordinator"])
    assert 'data-testid="entry-edit"' in coord.get(f"/tickets/{number}").text


def test_the_timer_survives_a_reload_and_stop_logs(instance: SeededApp) -> None:
    client, csrf = console_client(instance.app, instance.users["coordinator"])
    number = instance.numbers["key_new"]
    r = client.post(f"/tickets/{number}/worklog", data={"csrf_token": csrf, "action": "start"})
    assert 'data-testid="timer-running"' in r.text and "data-started-at=" in r.text
    assert 'data-testid="timer-running"' in client.get(f"/tickets/{number}").text
    elsewhere = client.get(f"/tickets/{instance.numbers['key_assigned']}").text
    assert 'data-testid="timer-elsewhere"' in elsewhere and f"#{number}" in elsewhere
    r = client.post(
        f"/tickets/{number}/worklog",
        data={"csrf_token": csrf, "action": "stop", "description": "Z stopera", "billable": "1"},
    )
    assert "Zapisano 1 minutę pracy." in r.text and "Z stopera" in r.text
    assert 'data-testid="timer-start"' in r.text
    r = client.post(f"/tickets/{number}/worklog", data={"csrf_token": csrf, "action": "start"})
    r = client.post(f"/tickets/{number}/worklog", data={"csrf_token": csrf, "action": "cancel"})
    assert 'data-testid="timer-start"' in r.text


def test_the_list_column_shows_worked_and_billable(instance: SeededApp) -> None:
    client, _ = console_client(instance.app, instance.users["coordinator"])
    r = in_english(client, "/tickets?columns=_worktime")
    assert "Work time" in r.text or "Czas pracy" in r.text
    number = instance.numbers["key_assigned"]
    row = r.text[r.text.index(f'data-number="{number}"') :]
    assert re.search(r'data-field="_worktime"><span class="trunc" title="25m / 25m">', row)
    portal, _ = console_client(instance.app, instance.users["client"])
    assert "_worktime" not in portal.get("/tickets?columns=_worktime").text


def test_the_portal_shows_billable_work_when_the_contract_says_so(instance: SeededApp) -> None:
    from core.contracts.models import Contract

    number = instance.numbers["client_web"]
    coord, csrf = console_client(instance.app, instance.users["coordinator"])
    for minutes, billable, note in (
        ("30", "1", "Konfiguracja skanera"),
        ("10", "", "Notatka wewnętrzna"),
    ):
        coord.post(
            f"/tickets/{number}/worklog",
            data={
                "csrf_token": csrf,
                "minutes": minutes,
                "billable": billable,
                "description": note,
            },
        )
    client, _ = console_client(instance.app, instance.users["client"])
    assert 'data-testid="client-worklog"' not in client.get(f"/tickets/{number}").text
    with instance.factory() as db:
        db.scalars(
            select(Contract).where(Contract.code == "ACME-KEY")
        ).one().worklog_visible_to_client = True
        db.commit()
    try:
        page = client.get(f"/tickets/{number}").text
        assert 'data-testid="client-worklog"' in page and "Konfiguracja skanera" in page
        assert "Notatka wewnętrzna" not in page
        assert 'data-testid="client-work-total">30m<' in page
    finally:
        with instance.factory() as db:
            db.scalars(
                select(Contract).where(Contract.code == "ACME-KEY")
            ).one().worklog_visible_to_client = False
            db.commit()

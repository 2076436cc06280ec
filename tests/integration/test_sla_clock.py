"""SLA clocks on tickets, one rule per test (docs/sla.md), on SQLite and PostgreSQL.

The acme contract runs on Mon-Fri 08:00-16:00 Europe/Warsaw (UTC+1 in November):
failure = 2h reaction / 8h resolution, inspection = 1d / 5d.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from core.directory.models import User
from core.sla import clocks as sla_clock
from core.sla.models import Calendar
from core.tickets import services as svc
from core.tickets.models import Ticket
from tests.factories import World, at, build_world

# Monday 2026-11-23 09:00 in Warsaw is 08:00 UTC.
MON_0900 = "2026-11-23 08:00"
HOUR = timedelta(hours=1)


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


@pytest.fixture
def ticket(session: Session, world: World) -> Ticket:
    return svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Awaria drukarki",
            requester=world.users["client"],
            contract=world.acme_contract,
            at=at(MON_0900),
        ),
    )


def test_clocks_start_at_creation_on_the_contract_calendar(ticket: Ticket) -> None:
    assert ticket.reaction_due == at("2026-11-23 10:00")  # Mon 11:00 Warsaw
    assert ticket.resolution_due == at("2026-11-24 08:00")  # Tue 09:00 Warsaw
    assert ticket.sla_next_check == at("2026-11-23 09:36")  # 80% of 2h reaction


def test_internal_note_never_meets_reaction(session: Session, world: World, ticket: Ticket) -> None:
    svc.add_comment(
        session,
        ticket,
        author=world.users["coordinator"],
        body="sprawdzę",
        public=False,
        at=at("2026-11-23 08:30"),
    )
    assert ticket.first_response_at is None


def test_client_comment_does_not_meet_reaction(
    session: Session, world: World, ticket: Ticket
) -> None:
    svc.add_comment(
        session, ticket, author=world.users["client"], body="ping", at=at("2026-11-23 08:30")
    )
    assert ticket.first_response_at is None


def test_public_staff_reply_meets_reaction(session: Session, world: World, ticket: Ticket) -> None:
    svc.add_comment(
        session,
        ticket,
        author=world.users["coordinator"],
        body="Jedziemy",
        at=at("2026-11-23 08:30"),
    )
    assert ticket.first_response_at == at("2026-11-23 08:30")


def test_subcontractor_public_reply_meets_reaction(
    session: Session, world: World, ticket: Ticket
) -> None:
    svc.assign(
        session,
        ticket,
        actor=world.users["coordinator"],
        assignee=None,
        subcontractor=world.fixit,
        at=at("2026-11-23 08:10"),
    )
    svc.add_comment(
        session, ticket, author=world.users["subcontractor"], body="OK", at=at("2026-11-23 08:40")
    )
    assert ticket.first_response_at == at("2026-11-23 08:40")


def test_staff_moving_out_of_new_meets_reaction(
    session: Session, world: World, ticket: Ticket
) -> None:
    svc.change_status(
        session, ticket, "In progress", actor=world.users["coordinator"], at=at("2026-11-23 08:20")
    )
    assert ticket.first_response_at == at("2026-11-23 08:20")


def test_pause_shifts_the_resolution_deadline(
    session: Session, world: World, ticket: Ticket
) -> None:
    coord = world.users["coordinator"]
    svc.change_status(session, ticket, "Waiting for client", actor=coord, at=at("2026-11-23 09:00"))
    assert ticket.sla_paused
    svc.change_status(session, ticket, "In progress", actor=coord, at=at("2026-11-23 13:00"))
    # 4 business hours paused (Mon 10:00-14:00 Warsaw): Tue 09:00 -> Tue 13:00 Warsaw.
    assert ticket.resolution_due == at("2026-11-24 12:00")
    assert not ticket.sla_paused


def test_a_paused_clock_never_breaches(session: Session, world: World, ticket: Ticket) -> None:
    coord = world.users["coordinator"]
    svc.change_status(session, ticket, "Waiting for client", actor=coord, at=at("2026-11-23 09:00"))
    later = at("2026-11-30 12:00")
    sla_clock.recompute(ticket, now=later)
    assert ticket.resolution_breached_at is None
    assert not sla_clock.is_overdue(ticket, later)
    assert ticket.sla_next_check is None


def test_reopening_continues_with_the_time_used(
    session: Session, world: World, ticket: Ticket
) -> None:
    coord = world.users["coordinator"]
    svc.change_status(
        session, ticket, "Resolved", actor=coord, at=at("2026-11-23 11:00")
    )  # 3h used
    assert ticket.resolved_at == at("2026-11-23 11:00")
    svc.change_status(
        session, ticket, "In progress", actor=coord, at=at("2026-11-24 09:00")
    )  # Tue 10:00
    # 5h left from Tue 10:00 Warsaw: Tue 15:00 Warsaw.
    assert ticket.resolution_due == at("2026-11-24 14:00")
    assert ticket.resolved_at is None


def test_breach_is_dated_when_the_target_was_used_up(
    session: Session, world: World, ticket: Ticket
) -> None:
    later = at("2026-11-25 08:00")
    sla_clock.recompute(ticket, now=later)
    assert ticket.reaction_breached_at == at("2026-11-23 10:00")
    assert ticket.resolution_breached_at == at("2026-11-24 08:00")
    assert ticket.ever_breached
    assert sla_clock.is_overdue(ticket, later)


def test_type_change_retargets_from_creation(session: Session, world: World) -> None:
    t = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Przegląd",
            requester=world.users["client"],
            contract=world.acme_contract,
            at=at(MON_0900),
        ),
    )
    assert t.ticket_type and t.ticket_type.name == "inspection"
    assert t.resolution_due == at("2026-11-30 08:00")  # 5d = 40 business hours
    # Two business days later it turns out to be a failure: 8h was used up on Tue 09:00.
    svc.change_type(
        session, t, "failure", actor=world.users["coordinator"], at=at("2026-11-25 08:00")
    )
    assert t.resolution_due == at("2026-11-24 08:00")
    assert t.resolution_breached_at == at("2026-11-24 08:00")
    assert t.ever_breached


def test_type_change_keeps_paused_time(session: Session, world: World, ticket: Ticket) -> None:
    coord = world.users["coordinator"]
    svc.change_status(session, ticket, "Waiting for client", actor=coord, at=at("2026-11-23 09:00"))
    svc.change_status(session, ticket, "In progress", actor=coord, at=at("2026-11-23 13:00"))
    svc.change_type(session, ticket, "inspection", actor=coord, at=at("2026-11-23 14:00"))
    # 40h target and 4h paused: Mon 09:00 + 44 business hours (7+8+8+8+8+5) = next Mon 13:00 Warsaw.
    assert ticket.resolution_due == at("2026-11-30 12:00")


def test_ever_breached_survives_a_longer_target(
    session: Session, world: World, ticket: Ticket
) -> None:
    sla_clock.recompute(ticket, now=at("2026-11-25 08:00"))
    assert ticket.ever_breached
    svc.change_type(
        session, ticket, "inspection", actor=world.users["coordinator"], at=at("2026-11-25 08:00")
    )
    assert ticket.resolution_breached_at is None
    assert ticket.ever_breached


def test_contract_change_moves_a_triage_ticket_onto_the_clock(
    session: Session, world: World
) -> None:
    t = svc.open_ticket(
        session, svc.NewTicket(subject="Awaria", requester=world.users["client"], at=at(MON_0900))
    )
    assert t.resolution_due is None
    svc.change_contract(
        session, t, world.acme_contract, actor=world.users["coordinator"], at=at("2026-11-23 09:00")
    )
    assert t.client is world.acme and t.ticket_type and t.ticket_type.name == "failure"
    assert t.resolution_due == at("2026-11-24 08:00")


def test_recompute_is_deterministic(session: Session, world: World, ticket: Ticket) -> None:
    coord = world.users["coordinator"]
    svc.change_status(session, ticket, "Waiting for client", actor=coord, at=at("2026-11-23 09:00"))
    svc.change_status(session, ticket, "In progress", actor=coord, at=at("2026-11-23 13:00"))
    first = (ticket.reaction_due, ticket.resolution_due, ticket.first_response_at)
    sla_clock.recompute(ticket, now=at("2026-11-23 13:00"))
    assert (ticket.reaction_due, ticket.resolution_due, ticket.first_response_at) == first


def test_warning_share_comes_from_the_contract(session: Session, world: World) -> None:
    world.acme_contract.warning_threshold = 0.5
    t = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Awaria",
            requester=world.users["client"],
            contract=world.acme_contract,
            at=at(MON_0900),
        ),
    )
    assert t.sla_next_check == at("2026-11-23 09:00")  # half of the 2h reaction


def test_warm_up_builds_every_stored_calendar_with_its_holidays(
    session: Session, world: World
) -> None:
    # A worker calls this when it starts, so the first mail does not wait for the holidays
    # library's import and a year's computation.
    session.flush()
    sla_clock._calendar_from_json.cache_clear()
    built = sla_clock.warm_up(session, at("2026-12-30 08:00"))
    assert built == 3  # "business", "always" and the 24/7 used without a calendar
    assert sla_clock._calendar_from_json.cache_info().currsize == 3
    business = next(c for c in session.scalars(select(Calendar)) if c.name == "business")
    # Next year's holidays are ready too: New Year's Day 2027 is closed.
    engine = sla_clock.business_calendar(business)
    assert not engine.is_open(at("2027-01-01 09:00"))


# --- a long timeline is not loaded to run the clocks ---------------------------------------


def _clocks(ticket: Ticket) -> tuple[object, ...]:
    return (
        ticket.first_response_at,
        *sla_clock.deadlines(ticket),
        ticket.reaction_minutes,
        ticket.resolution_minutes,
        ticket.paused_minutes,
        ticket.sla_next_check,
        ticket.sla_paused,
    )


def _from_part_and_whole(
    session: Session, ticket: Ticket, now_: str
) -> tuple[tuple[object, ...], tuple[object, ...], bool]:
    """The clocks recomputed from the part of the timeline they ask for, then from the whole
    loaded timeline; and whether the first left the timeline unloaded."""
    session.commit()
    session.expire(ticket, ["events"])
    sla_clock.recompute(ticket, at(now_))
    part = _clocks(ticket)
    unloaded = "events" not in inspect(ticket).dict
    assert len(ticket.events) > 20  # loads it
    sla_clock.recompute(ticket, at(now_))
    return part, _clocks(ticket), unloaded


def _chatter(session: Session, ticket: Ticket, author: User, start: str, count: int) -> None:
    moment = at(start)
    for i in range(count):
        svc.add_comment(session, ticket, author=author, body=f"uwaga {i}", public=True, at=moment)
        moment += timedelta(minutes=1)


def test_a_long_timeline_is_not_loaded_and_the_clocks_agree(
    session: Session, world: World, ticket: Ticket
) -> None:
    coord = world.users["coordinator"]
    _chatter(session, ticket, world.users["client"], "2026-11-23 08:01", 30)
    svc.change_status(session, ticket, "Waiting for client", actor=coord, at=at(MON_0900) + HOUR)
    _chatter(session, ticket, world.users["client"], "2026-11-23 09:10", 10)
    svc.change_status(session, ticket, "In progress", actor=coord, at=at("2026-11-23 12:00"))
    _chatter(session, ticket, world.users["coordinator"], "2026-11-23 12:30", 12)
    part, whole, unloaded = _from_part_and_whole(session, ticket, "2026-11-24 10:00")
    assert unloaded
    assert part == whole
    assert ticket.first_response_at == at(MON_0900) + HOUR  # leaving "new" for a pause


def test_a_reaction_after_many_replies_that_do_not_count_is_found_all_the_same(
    session: Session, world: World, ticket: Ticket
) -> None:
    """Staff replies dated before the ticket (a mail merged in) never meet the reaction: past
    the few replies the clocks ask for, they read the whole timeline."""
    tech = world.users["coordinator"]
    _chatter(session, ticket, tech, "2026-11-20 08:00", 12)  # before the ticket was opened
    _chatter(session, ticket, world.users["client"], "2026-11-23 08:05", 15)
    svc.add_comment(
        session, ticket, author=tech, body="jadę", public=True, at=at("2026-11-23 09:30")
    )
    part, whole, _ = _from_part_and_whole(session, ticket, "2026-11-23 12:00")
    assert part == whole
    assert ticket.first_response_at == at("2026-11-23 09:30")


def test_a_reply_added_and_not_flushed_counts_on_an_unloaded_timeline(
    session: Session, world: World, ticket: Ticket
) -> None:
    _chatter(session, ticket, world.users["client"], "2026-11-23 08:05", 25)
    session.commit()
    session.expire(ticket, ["events"])
    with session.no_autoflush:
        svc.add_comment(
            session,
            ticket,
            author=world.users["coordinator"],
            body="jadę",
            public=True,
            at=at("2026-11-23 09:30"),
        )
    assert ticket.first_response_at == at("2026-11-23 09:30")
    assert "events" not in inspect(ticket).dict


def _read_once(session: Session, world: World, ticket: Ticket) -> User:
    _chatter(session, ticket, world.users["client"], "2026-11-23 08:01", 25)
    session.commit()
    session.expire(ticket, ["events"])
    sla_clock.recompute(ticket, at("2026-11-23 08:30"))  # reads what the clocks need
    return world.users["coordinator"]


def _agrees_with_the_whole(ticket: Ticket) -> None:
    assert "events" not in inspect(ticket).dict
    part = _clocks(ticket)
    assert len(ticket.events) > 20
    sla_clock.recompute(ticket, at("2026-11-23 12:00"))
    assert part == _clocks(ticket)


def test_what_the_clocks_read_follows_the_transaction_s_flushes(
    session: Session, world: World, ticket: Ticket
) -> None:
    """Read once a transaction: a status change flushed after the read is in it."""
    coord = _read_once(session, world, ticket)
    svc.change_status(session, ticket, "Waiting for client", actor=coord, at=at(MON_0900))
    session.flush()
    sla_clock.recompute(ticket, at("2026-11-23 12:00"))
    assert ticket.sla_paused and ticket.first_response_at == at(MON_0900)
    _agrees_with_the_whole(ticket)


def test_a_rolled_back_savepoint_takes_its_events_out_of_what_the_clocks_read(
    session: Session, world: World, ticket: Ticket
) -> None:
    coord = _read_once(session, world, ticket)
    savepoint = session.begin_nested()
    svc.change_status(session, ticket, "Waiting for client", actor=coord, at=at(MON_0900))
    session.flush()
    savepoint.rollback()
    sla_clock.recompute(ticket, at("2026-11-23 12:00"))
    assert not ticket.sla_paused and ticket.first_response_at is None
    _agrees_with_the_whole(ticket)

"""Saved views (issue 15, core.desk.views): own views, views published to roles, their counts
through the permission scope, and the console's forms and counts endpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.desk import views as desk
from core.desk.models import SavedView
from core.directory.models import Role
from core.errors import Forbidden, InputError, NotFound
from core.tickets import services as svc
from tests.e2e.conftest import build_seeded_app, console_client, in_english
from tests.factories import World, at, build_world


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    coord = w.users["coordinator"]
    for subject, beta, assignee in (
        ("a1", False, "technician"),
        ("a2", False, None),
        ("b1", True, "technician"),
        ("b2", True, None),
    ):
        t = svc.open_ticket(
            session,
            svc.NewTicket(
                subject=subject,
                requester=w.users["beta" if beta else "client"],
                contract=w.beta_contract if beta else w.acme_contract,
                at=at("2026-11-02 09:00"),
            ),
        )
        if assignee:
            svc.assign(session, t, actor=coord, assignee=w.users[assignee], subcontractor=None)
    session.flush()
    return w


def test_query_is_cleaned_and_hidden_columns_kept_in_order() -> None:
    assert (
        desk.clean_query("page=3&sort=deadline&state=open&evil=1&field.location=W&q=")
        == "state=open&sort=deadline&field.location=W"
    )
    assert desk.clean_hidden(["updated", "nope", "client"]) == ["client", "updated"]


def test_own_view_counts_through_the_scope(session: Session, world: World) -> None:
    tech, coord = world.users["technician"], world.users["coordinator"]
    mine = desk.create_view(session, coord, "  Beta  open ", "contract=BETA-247&page=2")
    assert mine.name == "Beta open" and mine.query == "contract=BETA-247"
    assert desk.view_counts(session, coord, [mine])[mine.id] == 2
    with pytest.raises(InputError, match="already a view named"):
        desk.create_view(session, coord, "beta OPEN", "")
    with pytest.raises(InputError, match="give the view a name"):
        desk.create_view(session, coord, "  ", "")
    # Someone else's own view is neither listed nor reachable.
    assert desk.visible_views(session, tech) == []
    with pytest.raises(NotFound):
        desk.get_view(session, tech, mine.id)
    with pytest.raises(NotFound):
        desk.delete_view(session, tech, mine.id)
    desk.rename_view(session, coord, mine.id, "Beta")
    assert desk.delete_view(session, coord, mine.id) == "Beta"


def test_published_view_is_seen_by_the_role_with_its_own_count(
    session: Session, world: World
) -> None:
    admin, coord = world.users["admin"], world.users["coordinator"]
    tech, client = world.users["technician"], world.users["client"]
    with pytest.raises(Forbidden):
        desk.create_view(session, coord, "x", "", publish_to=["technician"])
    shared = desk.create_view(
        session, admin, "Key, unassigned", "assignee=none&key=1", publish_to=["technician"]
    )
    everyone = desk.create_view(session, admin, "All open", "state=open", publish_to=[])
    assert shared.owner_id is None and shared.roles == ["technician"]
    assert [v.name for v in desk.visible_views(session, tech)] == ["All open", "Key, unassigned"]
    assert [v.name for v in desk.visible_views(session, coord)] == ["All open"]
    assert desk.visible_views(session, client) == []  # every *staff* member
    # The same view counts what each may see: the technician only their own ticket.
    assert desk.view_counts(session, tech, [everyone])[everyone.id] == 2
    assert desk.view_counts(session, coord, [everyone])[everyone.id] == 4
    # Only an admin changes a published view.
    with pytest.raises(Forbidden):
        desk.rename_view(session, tech, shared.id, "mine now")
    with pytest.raises(InputError, match="no role"):
        desk.publish_view(session, admin, shared.id, ["nobody"])


def test_publishing_to_a_custom_role_and_a_view_that_cannot_apply(
    session: Session, world: World
) -> None:
    admin, tech = world.users["admin"], world.users["technician"]
    role = Role(name="field-service", base="technician", grant=[], deny=[], labels={})
    session.add(role)
    session.flush()
    view = desk.create_view(session, admin, "Mine", "assignee=me")
    desk.publish_view(session, admin, view.id, ["field-service"])
    assert desk.visible_views(session, tech) == []
    tech.custom_role = role
    session.flush()
    assert [v.id for v in desk.visible_views(session, tech)] == [view.id]
    assert desk.view_counts(session, tech, [view])[view.id] == 2
    odd = desk.create_view(session, admin, "Odd", "field.nope=1", publish_to=[])
    assert desk.view_counts(session, tech, [odd])[odd.id] is None


def test_console_saves_publishes_and_counts(tmp_path: Path) -> None:
    seeded = build_seeded_app(tmp_path)
    admin, admin_token = console_client(seeded.app, seeded.users["admin"])
    r = admin.post(
        "/views",
        data={
            "csrf_token": admin_token,
            "name": "Kluczowe po terminie",
            "query": "key=1&sort=deadline&page=2",
            "columns_set": "1",
            "show": ["client", "status", "assignee", "resolution"],
            "publish": "1",
            "roles": ["coordinator"],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith("/tickets?key=1&sort=deadline&columns=&hide=type,reaction,updated")
    with seeded.factory() as s:
        view = s.scalar(select(SavedView).where(SavedView.name == "Kluczowe po terminie"))
        assert view is not None and view.owner_id is None and view.roles == ["coordinator"]
    page = admin.get(location)
    assert "hide-type" in page.text and "hide-reaction" in page.text
    # A coordinator sees it in the bar with a count, and in the counts endpoint.
    coord, _ = console_client(seeded.app, seeded.users["coordinator"])
    listing = in_english(coord, "/tickets")
    match = re.search(
        r'data-view-id="(\d+)"[^>]*>Kluczowe po terminie <span class="viewcount" data-view-count="\d+">(\d+)</span>',
        listing.text,
    )
    assert match, listing.text[:3000]
    counts = coord.get("/views/counts").json()
    assert counts["views"][match.group(1)] == int(match.group(2))
    assert counts["queue"] is None  # serves no contract
    # A technician does not: it is published to coordinators only.
    tech_client, tech_token = console_client(seeded.app, seeded.users["technician"])
    assert "Kluczowe po terminie" not in tech_client.get("/tickets").text
    # The technician saves their own view; a duplicate name re-renders with the sentence.
    r = tech_client.post(
        "/views",
        data={"csrf_token": tech_token, "name": "Moje", "query": "assignee=me", "columns_set": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = tech_client.post(
        "/views",
        data={"csrf_token": tech_token, "name": "moje", "query": "", "columns_set": "1"},
    )
    assert r.status_code == 400 and 'value="moje"' in r.text and "już istnieje" in r.text
    managed = tech_client.get("/views")
    assert "Moje" in managed.text and "Kluczowe" not in managed.text
    # Publishing is for admins.
    with seeded.factory() as s:
        own = s.scalar(select(SavedView).where(SavedView.name == "Moje"))
        assert own is not None
        own_id = own.id
    r = tech_client.post(
        f"/views/{own_id}/publish", data={"csrf_token": tech_token, "roles": "technician"}
    )
    assert r.status_code == 403
    r = tech_client.post(
        f"/views/{own_id}/delete", data={"csrf_token": tech_token}, follow_redirects=False
    )
    assert r.status_code == 303

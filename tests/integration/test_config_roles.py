"""Custom roles: ``roles:`` in YAML (a base role plus granted and denied actions), named on
users, checked on every door through ``core.access.permissions.can``."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from core.access.accounts import create_api_token, upsert_user
from core.access.permissions import (
    PUBLIC_ACTIONS,
    ROLE_ACTIONS,
    allowed_actions,
    can,
    role_allowed,
)
from core.configuration import ConfigError, apply_config_text, export_config
from core.directory.models import Role, User
from core.errors import Forbidden
from core.tickets import services as svc
from tests.factories import World, build_world
from web.app import create_app

SENIOR = """\
roles:
  - {name: senior-technician, base: technician, grant: [assign, bulk_status, reports]}
users:
  - {email: tech@support.example, role: senior-technician}
"""


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


@pytest.fixture
def client(session: Session, tmp_path: Any) -> Iterator[TestClient[Any]]:
    conn = session.connection()

    def factory() -> Session:
        return Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)

    app = create_app(Settings(data_dir=tmp_path, secret_key="test"), session_factory=factory)
    with TestClient(app) as c:
        yield c


def auth(session: Session, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_token(session, user)}"}


def _ticket_of(session: Session, world: World, assignee: str) -> int:
    new = svc.NewTicket(
        subject="Printer", requester=world.users["client"], contract=world.acme_contract
    )
    ticket = svc.open_ticket(session, new)
    ticket.assignee = world.users[assignee]
    session.flush()
    return ticket.number


def test_the_matrix_lists_every_public_action_with_the_base_defaults() -> None:
    names = [row.name for row in ROLE_ACTIONS]
    assert names == list(PUBLIC_ACTIONS)
    assert names[:5] == ["see", "comment", "note", "status", "assign"]
    by_name = {row.name: row for row in ROLE_ACTIONS}
    assert by_name["assign"].defaults == {
        "admin": True,
        "coordinator": True,
        "technician": False,
        "subcontractor": False,
        "client": False,
    }
    assert by_name["hand_over"].action == "hand_over"
    assert by_name["people"].defaults["coordinator"] is False
    assert by_name["people"].defaults["admin"] is True
    assert by_name["reports"].defaults["coordinator"] is True
    assert role_allowed("technician", ["assign"], ["note"]) >= {"assign", "view"}
    assert "note" not in role_allowed("technician", ["assign"], ["note"])


def test_a_custom_role_granting_assign_lets_a_technician_assign_via_the_api(
    client: TestClient[Any], session: Session, world: World
) -> None:
    number = _ticket_of(session, world, "technician")
    tech = world.users["technician"]
    refused = client.post(
        f"/api/v1/tickets/{number}/assign",
        json={"assignee": "tech2@support.example"},
        headers=auth(session, tech),
    )
    assert refused.status_code == 403

    result = apply_config_text(session, SENIOR, actor="admin@support.example")
    assert result.counts["roles"].created == 1
    session.flush()
    session.refresh(tech)
    assert tech.role == "technician"  # the base: the tickets they see stay a technician's
    assert tech.custom_role is not None and tech.custom_role.name == "senior-technician"
    assert can(tech, "assign") and can(tech, "bulk") and can(tech, "reports")
    assert not can(tech, "hand_over") and not can(tech, "configure")
    assert allowed_actions(tech) == [
        "see",
        "comment",
        "note",
        "status",
        "assign",
        "take",
        "bulk_status",
        "work_log",
        "fields",
        "cc",
        "reports",
    ]
    r = client.post(
        f"/api/v1/tickets/{number}/assign",
        json={"assignee": "tech2@support.example"},
        headers=auth(session, tech),
    )
    assert r.status_code == 200, r.text
    assert r.json()["assignee"] == "tech2@support.example"
    assert client.get("/api/v1/me", headers=auth(session, tech)).json()["role"] == "technician"


def test_deny_takes_away_what_the_base_role_has(
    client: TestClient[Any], session: Session, world: World
) -> None:
    apply_config_text(
        session,
        "roles:\n  - {name: quiet-technician, base: technician, deny: [note, work_log]}\n"
        "users:\n  - {email: tech@support.example, role: quiet-technician}\n",
    )
    session.flush()
    tech = world.users["technician"]
    session.refresh(tech)
    number = _ticket_of(session, world, "technician")
    assert not can(tech, "note") and not can(tech, "worklog") and can(tech, "comment")
    r = client.post(
        f"/api/v1/tickets/{number}/comments",
        json={"body": "internal", "public": False},
        headers=auth(session, tech),
    )
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/tickets/{number}/worklog", json={"minutes": 5}, headers=auth(session, tech)
    )
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/tickets/{number}/comments",
        json={"body": "public", "public": True},
        headers=auth(session, tech),
    )
    assert r.status_code in (200, 201), r.text


def test_handing_over_to_a_subcontractor_needs_hand_over(session: Session, world: World) -> None:
    apply_config_text(
        session,
        "roles:\n  - {name: dispatcher, base: coordinator, deny: [hand_over]}\n"
        "users:\n  - {email: coord@support.example, role: dispatcher}\n",
    )
    session.flush()
    coord = world.users["coordinator"]
    session.refresh(coord)
    number = _ticket_of(session, world, "technician")
    from core.tickets.models import Ticket

    ticket = session.scalar(select(Ticket).where(Ticket.number == number))
    assert ticket is not None
    # Assigning stays allowed; handing over is not.
    svc.assign(
        session, ticket, actor=coord, assignee=world.users["technician2"], subcontractor=None
    )
    with pytest.raises(Forbidden):
        svc.assign(
            session,
            ticket,
            actor=coord,
            assignee=world.users["technician2"],
            subcontractor=world.fixit,
        )


def test_hand_over_without_assign_hands_over_but_does_not_assign(
    client: TestClient[Any], session: Session, world: World
) -> None:
    """A role with hand_over and without assign moves the work to a subcontractor (console
    and API alike) but cannot change who it is assigned to."""
    apply_config_text(
        session,
        "roles:\n  - {name: dispatcher, base: coordinator, deny: [assign]}\n"
        "users:\n  - {email: coord@support.example, role: dispatcher}\n",
    )
    session.flush()
    coord = world.users["coordinator"]
    session.refresh(coord)
    number = _ticket_of(session, world, "technician")
    headers = auth(session, coord)
    r = client.post(f"/api/v1/tickets/{number}/assign", json={"subcontractor": "FixIt"}, headers=headers)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["subcontractor"] == "FixIt"
    assert r.json()["assignee"] == "tech@support.example"
    r = client.post(f"/api/v1/tickets/{number}/assign", json={"assignee": "tech2@support.example"}, headers=headers)  # fmt: skip
    assert r.status_code == 403


def test_people_and_outbox_follow_the_action_not_the_role(session: Session, world: World) -> None:
    apply_config_text(
        session,
        "roles:\n  - {name: privacy-officer, base: coordinator, grant: [people]}\n"
        "users:\n  - {email: coord@support.example, role: privacy-officer}\n",
    )
    session.flush()
    coord = world.users["coordinator"]
    session.refresh(coord)
    from core.mail.outbox import check_access as outbox_access
    from core.privacy.people import check_access as people_access

    people_access(coord)
    with pytest.raises(Forbidden):
        outbox_access(coord)
    with pytest.raises(Forbidden):
        people_access(world.users["technician2"])


def test_roles_round_trip_through_export(session: Session, world: World) -> None:
    apply_config_text(
        session,
        textwrap.dedent(
            """\
            roles:
              - name: senior-technician
                base: technician
                grant: [assign, bulk_status, reports]
                deny: [cc]
                label: {pl: Starszy technik, en: Senior technician}
              - {name: reader, base: client, deny: [comment], label: Reader}
            users:
              - {email: tech@support.example, role: senior-technician}
            """
        ),
    )
    session.flush()
    text = export_config(session)
    doc = yaml.safe_load(text)
    assert {
        "name": "senior-technician",
        "base": "technician",
        "grant": ["assign", "bulk_status", "reports"],
        "deny": ["cc"],
        "label": {"pl": "Starszy technik", "en": "Senior technician"},
    } in doc["roles"]
    assert {"name": "reader", "base": "client", "deny": ["comment"], "label": "Reader"} in doc[
        "roles"
    ]
    tech = next(u for u in doc["users"] if u["email"] == "tech@support.example")
    assert tech["role"] == "senior-technician"
    again = apply_config_text(session, text)
    assert not again.changed, str(again)


def test_grant_and_deny_are_replaced_when_stated_and_a_new_base_moves_its_users(
    session: Session, world: World
) -> None:
    apply_config_text(session, SENIOR)
    session.flush()
    apply_config_text(session, "roles:\n  - {name: senior-technician, grant: [assign]}\n")
    session.flush()
    role = session.scalar(select(Role).where(Role.name == "senior-technician"))
    assert role is not None and role.grant == ["assign"] and role.base == "technician"
    apply_config_text(session, "roles:\n  - {name: senior-technician, base: coordinator}\n")
    session.flush()
    tech = world.users["technician"]
    session.refresh(tech)
    assert tech.role == "coordinator" and tech.custom_role is role
    # Naming a built-in role again takes the custom one off.
    apply_config_text(session, "users:\n  - {email: tech@support.example, role: technician}\n")
    session.flush()
    session.refresh(tech)
    assert tech.role == "technician" and tech.custom_role is None


def test_the_command_line_names_a_custom_role(session: Session, world: World) -> None:
    apply_config_text(session, "roles:\n  - {name: senior-technician, base: technician}\n")
    session.flush()
    user = upsert_user(session, email="new@support.example", role="senior-technician")
    assert user.role == "technician" and user.custom_role is not None


def _problems(session: Session, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        apply_config_text(session, text, source="roles.yaml")
    return [f"{p.line}: {p.path}: {p.message}" for p in caught.value.problems]


def test_role_mistakes_are_reported_on_their_lines(session: Session, world: World) -> None:
    text = textwrap.dedent(
        """\
        roles:
          - {name: senior-technician, base: technician, grant: [assign, teleport]}
          - {name: technician, base: technician}
          - {name: boss, base: overlord}
          - {name: helper}
          - {name: nosy, base: client, grant: [configure]}
          - {name: blind, base: technician, deny: [see]}
          - {name: torn, base: technician, grant: [assign], deny: [assign]}
        users:
          - {email: x@support.example, role: wizard}
        """
    )
    found = _problems(session, text)
    assert any(
        p.startswith("2: roles[0].grant[1]: unknown action 'teleport'; known actions: see,")
        for p in found
    ), found
    assert any(p.startswith("3: roles[1].name: 'technician' is a built-in role") for p in found)
    assert any(p.startswith("4: roles[2].base: unknown base role 'overlord'") for p in found)
    assert any(p.startswith("5: roles[3]: the key 'base' is missing") for p in found), found
    assert any(p.startswith("6: roles[4].grant[0]: 'configure' is for staff") for p in found)
    assert any(p.startswith("7: roles[5].deny[0]: 'see' cannot be denied") for p in found)
    assert any(p.startswith("8: roles[6].grant[0]: 'assign' is both granted") for p in found)
    assert any(
        p.startswith("10: users[0].role: unknown role 'wizard'; use one of: admin") for p in found
    ), found


def test_a_shape_mistake_in_a_role_names_the_allowed_keys(session: Session) -> None:
    found = _problems(session, "roles:\n  - {name: x, base: technician, grants: [assign]}\n")
    assert found and found[0].startswith(
        "2: roles[0].grants: unknown key 'grants'; allowed keys: name"
    )


def test_a_new_base_is_checked_against_the_stored_grants(session: Session, world: World) -> None:
    apply_config_text(session, "roles:\n  - {name: lead, base: technician, grant: [assign]}\n")
    session.flush()
    found = _problems(session, "roles:\n  - {name: lead, base: client}\n")
    assert found == ["2: roles[0].base: 'assign' is for staff; a client role cannot be granted it"]

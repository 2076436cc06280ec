"""Canned replies (issue 15, core.desk.replies): who has which, placeholders checked when
saved and filled safely for a ticket, the "changed while you were writing" check; on both
databases. Then the console's pages and endpoints, and the API, through the in-process client."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.accounts import create_api_token, get_user_by_email
from core.desk import replies as desk
from core.directory.models import Role
from core.errors import Forbidden, InputError, NotFound
from core.tickets import services as svc
from core.tickets.models import Ticket
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client
from tests.factories import World, build_world


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def ticket(session: Session, world: World, **kw: Any) -> Ticket:
    return svc.open_ticket(
        session,
        svc.NewTicket(
            subject=kw.pop("subject", "Awaria drukarki"),
            requester=world.users["client"],
            contract=kw.pop("contract", world.acme_contract),
            body="Nie drukuje.",
            **kw,
        ),
    )


def test_placeholders_are_filled_from_the_ticket(session: Session, world: World) -> None:
    world.users["client"].name = "Anna Nowak"
    world.users["technician"].name = "Tomasz Technik"
    t = ticket(session, world, assignee=world.users["technician"])
    text = (
        "Dzień dobry {{ requester.first_name }} ({{ requester.name }}, {{ requester.email }}),\n"
        "zgłoszenie #{{ ticket.number }} „{{ ticket.subject }}” ({{ contract.code }}, "
        "{{ client.name }}) prowadzi {{ assignee.name }}.\n{{ me.name }}"
    )
    reply = desk.create_reply(
        session, world.users["technician"], shortcut="ack", title="Potwierdzenie", body=text
    )
    [item] = desk.replies_for_ticket(session, world.users["technician"], t)
    assert item["id"] == reply.id
    assert item["body"] == (
        "Dzień dobry Anna (Anna Nowak, anna@acme.example),\n"
        f"zgłoszenie #{t.number} „Awaria drukarki” (ACME-2026, Acme) prowadzi Tomasz Technik.\n"
        "Tomasz Technik"
    )


def test_a_ticket_without_contract_fills_its_placeholders_with_nothing(
    session: Session, world: World
) -> None:
    t = ticket(session, world, contract=None)
    me = world.users["coordinator"]
    assert desk.render("[{{ contract.code }}][{{ assignee.name }}]", t, me) == "[][]"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("{{ ticket.foo }}", "ticket.foo"),
        ("{{ ticket.__class__ }}", "ticket.__class__"),
        ("{{ requester.password_hash }}", "requester.password_hash"),
        ("{{ config }}", "config"),
        ("{{ ticket.number|upper }}", "ticket.number|upper"),
    ],
)
def test_an_unknown_placeholder_is_refused_when_saved_with_a_sentence_naming_it(
    session: Session, world: World, body: str, named: str
) -> None:
    with pytest.raises(InputError) as exc:
        desk.create_reply(session, world.users["technician"], shortcut="x", title="X", body=body)
    assert exc.value.status_code == 400
    assert "{{ " + named + " }}" in str(exc.value)
    assert "{{ ticket.number }}" in str(exc.value)  # and what may be used


def test_statements_and_broken_placeholders_are_refused(session: Session, world: World) -> None:
    tech = world.users["technician"]
    with pytest.raises(InputError, match="no {% … %}"):
        desk.create_reply(
            session, tech, shortcut="x", title="X", body="{% for x in y %}{% endfor %}"
        )
    with pytest.raises(InputError, match="broken placeholder on line 2"):
        desk.create_reply(session, tech, shortcut="x", title="X", body="a\n{{ ticket.")


def test_shortcuts_titles_and_bodies_are_checked(session: Session, world: World) -> None:
    tech = world.users["technician"]
    for kwargs, words in [
        ({"shortcut": "", "title": "T", "body": "b"}, "shortcut"),
        ({"shortcut": "two words", "title": "T", "body": "b"}, "one word"),
        ({"shortcut": "ok", "title": " ", "body": "b"}, "title"),
        ({"shortcut": "ok", "title": "T", "body": "  "}, "empty"),
    ]:
        with pytest.raises(InputError, match=words):
            desk.create_reply(
                session,
                tech,
                shortcut=kwargs["shortcut"],
                title=kwargs["title"],
                body=kwargs["body"],
            )
    desk.create_reply(session, tech, shortcut="::dzien", title="T", body="b")  # "::" dropped
    with pytest.raises(InputError, match="already a reply with the shortcut 'DZIEN'"):
        desk.create_reply(session, tech, shortcut="DZIEN", title="T", body="b")
    # Another person's replies are theirs: the same shortcut is fine.
    desk.create_reply(session, world.users["technician2"], shortcut="dzien", title="T", body="b")


def test_who_sees_which_reply(session: Session, world: World) -> None:
    u = world.users
    session.add(Role(name="senior", base="technician", grant=[], deny=[]))
    session.flush()
    u["technician2"].custom_role = session.query(Role).filter_by(name="senior").one()
    mine = desk.create_reply(session, u["technician"], shortcut="mine", title="Moja", body="m")
    everyone = desk.create_reply(
        session, u["coordinator"], shortcut="all", title="Dla wszystkich", body="a", shared=True
    )
    seniors = desk.create_reply(
        session,
        u["admin"],
        shortcut="sen",
        title="Seniorzy",
        body="s",
        shared=True,
        roles=["senior"],
    )
    coords = desk.create_reply(
        session,
        u["admin"],
        shortcut="coo",
        title="Koord",
        body="c",
        shared=True,
        roles=["coordinator"],
    )

    def ids(role: str) -> set[int]:
        return {r.id for r in desk.usable_replies(session, u[role])}

    assert ids("technician") == {mine.id, everyone.id}
    assert ids("technician2") == {everyone.id, seniors.id}  # by the custom role
    assert ids("coordinator") == {everyone.id, coords.id}
    for outsider in ("client", "subcontractor", "manager"):
        assert ids(outsider) == set()
    # Nobody reaches a reply not meant for them, even by its id.
    with pytest.raises(NotFound):
        desk.get_reply(session, u["technician2"], mine.id)
    with pytest.raises(NotFound):
        desk.get_reply(session, u["client"], everyone.id)


def test_only_admins_and_coordinators_share_and_change_shared_replies(
    session: Session, world: World
) -> None:
    u = world.users
    with pytest.raises(Forbidden):
        desk.create_reply(session, u["technician"], shortcut="s", title="S", body="b", shared=True)
    with pytest.raises(Forbidden):
        desk.create_reply(session, u["client"], shortcut="s", title="S", body="b")
    with pytest.raises(InputError, match="no staff role 'client'"):
        desk.create_reply(
            session, u["admin"], shortcut="s", title="S", body="b", shared=True, roles=["client"]
        )
    shared = desk.create_reply(session, u["admin"], shortcut="s", title="S", body="b", shared=True)
    with pytest.raises(Forbidden):
        desk.update_reply(session, u["technician"], shared.id, shortcut="s", title="T", body="b")
    with pytest.raises(Forbidden):
        desk.delete_reply(session, u["technician"], shared.id)
    changed = desk.update_reply(
        session, u["coordinator"], shared.id, shortcut="s2", title="T", body="b", roles=["admin"]
    )
    assert (changed.shortcut, changed.roles) == ("s2", ["admin"])
    assert desk.delete_reply(session, u["coordinator"], shared.id) == "s2"


def test_the_list_filters_by_shortcut_and_title_without_case_or_accents(
    session: Session, world: World
) -> None:
    tech = world.users["technician"]
    t = ticket(session, world)
    desk.create_reply(session, tech, shortcut="lacze", title="Łącze internetowe", body="1")
    desk.create_reply(session, tech, shortcut="podz", title="Podziękowanie za zgłoszenie", body="2")
    desk.create_reply(session, tech, shortcut="zamk", title="Zamknięcie", body="3")

    def found(q: str) -> list[str]:
        return [r["shortcut"] for r in desk.replies_for_ticket(session, tech, t, q)]

    assert found("ŁĄCZ") == ["lacze"]
    assert found("internet") == ["lacze"]
    assert found("zglosz") == ["podz"]
    assert found("zam") == ["zamk"]
    assert found("") == ["lacze", "podz", "zamk"]


def test_changed_since_lists_what_others_did_that_one_may_read(
    session: Session, world: World
) -> None:
    u = world.users
    t = ticket(session, world, assignee=u["technician"])
    seen = max(e.id for e in t.events)
    assert desk.changed_since(session, u["technician"], t, seen) == []
    mine = svc.add_comment(session, t, author=u["technician"], body="moje")  # not a change
    assert desk.changed_since(session, u["technician"], t, seen) == []
    note = svc.add_comment(session, t, author=u["coordinator"], body="notatka", public=False)
    comment = svc.add_comment(session, t, author=u["client"], body="odpowiedź klienta")
    assert [e.id for e in desk.changed_since(session, u["technician"], t, seen)] == [
        note.id,
        comment.id,
    ]
    # The client's manager is not told of an internal note; a form without "seen" is not
    # checked.
    assert [e.id for e in desk.changed_since(session, u["manager"], t, seen)] == [
        mine.id,
        comment.id,
    ]
    assert desk.changed_since(session, u["technician"], t, "") == []
    assert desk.changed_since(session, u["technician"], t, "abc") == []


# --- The console and the API (one seeded SQLite app) ----------------------------------------


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("canned-replies"))


def multipart(data: dict[str, str]) -> dict[str, Any]:
    return {"files": [(k, (None, v)) for k, v in data.items()]}


def flash_or_error(html: str) -> str:
    m = re.search(r'data-testid="(?:flash|form-error)">(.*?)</p>', html, re.S)
    return m.group(1) if m else ""


def test_console_pages_save_a_reply_and_the_ticket_fetches_it_rendered(
    instance: SeededApp,
) -> None:
    client, csrf = console_client(instance.app, instance.users["technician"])
    page = client.get("/profile")
    assert 'href="/profile/replies"' in page.text
    r = client.post(
        "/profile/replies",
        data={"csrf_token": csrf, "shortcut": "x", "title": "Zła", "body": "{{ ticket.nope }}"},
    )
    assert r.status_code == 400
    assert "{{ ticket.nope }}" in flash_or_error(r.text)
    assert "Zła" in r.text  # what was typed is kept
    r = client.post(
        "/profile/replies",
        data={
            "csrf_token": csrf,
            "shortcut": "dzien",
            "title": "Dzień dobry",
            "body": "Dzień dobry {{ requester.name }}, #{{ ticket.number }}",
        },
    )
    assert r.status_code == 200 and "::dzien" in r.text
    number = instance.numbers["key_assigned"]
    data = client.get(f"/tickets/{number}/canned", params={"q": "DZIEŃ"}).json()
    assert [i["body"] for i in data["items"]] == [f"Dzień dobry Piotr Wiśniewski, #{number}"]
    ticket_page = client.get(f"/tickets/{number}").text
    assert 'data-canned-url="/tickets/' in ticket_page
    assert '<script src="/static/replies.js" defer></script>' in ticket_page
    assert re.search(r'name="seen" value="\d+"', ticket_page)


def test_clients_and_subcontractors_have_no_canned_replies(instance: SeededApp) -> None:
    number = instance.numbers["key_subcontractor"]
    for role in ("client", "subcontractor"):
        client, _ = console_client(instance.app, instance.users[role])
        assert client.get("/profile/replies").status_code == 403
        assert client.get(f"/tickets/{number}/canned").status_code in (403, 404)
        page = client.get(f"/tickets/{number}").text
        assert "data-canned-url" not in page and 'href="/profile/replies"' not in page


def test_a_comment_is_held_back_when_someone_else_wrote_meanwhile(instance: SeededApp) -> None:
    tech, csrf = console_client(instance.app, instance.users["technician"])
    coord, coord_csrf = console_client(instance.app, instance.users["coordinator"])
    number = instance.numbers["key_assigned"]
    seen = re.search(r'name="seen" value="(\d+)"', tech.get(f"/tickets/{number}").text)
    assert seen is not None
    r = coord.post(
        f"/tickets/{number}/comment",
        **multipart(
            {"csrf_token": coord_csrf, "body": "Dzwoniłam do klienta.", "visibility": "internal"}
        ),
        follow_redirects=False,
    )
    assert r.status_code == 303
    form = {"csrf_token": csrf, "body": "Moja odpowiedź", "seen": seen.group(1)}
    r = tech.post(f"/tickets/{number}/comment", **multipart(form))
    assert r.status_code == 409
    warning = re.search(r'data-testid="reply-conflict">(.*?)</div>', r.text, re.S)
    assert warning is not None
    text = " ".join(re.sub(r"<[^>]+>", " ", warning.group(1)).split())
    assert f"Zgłoszenie #{number} zmieniło się w trakcie pisania:" in text
    assert "Ola Koordynator, notatka wewnętrzna" in text
    assert "Moja odpowiedź</textarea>" in r.text and 'data-testid="send-anyway"' in r.text
    with instance.factory() as s:
        stored = s.scalar(select(Ticket).where(Ticket.number == number))
        assert stored is not None
        bodies = [e.body_text for e in stored.events]
    assert "Moja odpowiedź" not in bodies
    # "Send anyway" sends it.
    r = tech.post(
        f"/tickets/{number}/comment",
        **multipart({**form, "send_anyway": "1"}),
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_the_changes_endpoint_tells_the_page_what_others_did(instance: SeededApp) -> None:
    tech, _ = console_client(instance.app, instance.users["technician"])
    number = instance.numbers["key_assigned"]
    seen = re.search(r'name="seen" value="(\d+)"', tech.get(f"/tickets/{number}").text)
    assert seen is not None
    assert tech.get(f"/tickets/{number}/changes", params={"since": seen.group(1)}).json() == {
        "changes": []
    }
    coord, coord_csrf = console_client(instance.app, instance.users["coordinator"])
    coord.post(
        f"/tickets/{number}/status",
        data={"csrf_token": coord_csrf, "status": "Escalated"},
        follow_redirects=False,
    )
    changes = tech.get(f"/tickets/{number}/changes", params={"since": seen.group(1)}).json()
    assert [(c["who"], c["what"]) for c in changes["changes"]] == [
        ("Ola Koordynator", "status: Escalated")
    ]


def test_the_api_lists_canned_replies_rendered_for_a_ticket(instance: SeededApp) -> None:
    from litestar.testing import TestClient

    with instance.factory() as s:
        tech = get_user_by_email(s, instance.users["technician"])
        client = get_user_by_email(s, instance.users["client"])
        assert tech is not None and client is not None
        desk.create_reply(s, tech, shortcut="api", title="Przez API", body="#{{ ticket.number }}")
        tokens = {"tech": create_api_token(s, tech), "client": create_api_token(s, client)}
        s.commit()
    api: Any = TestClient(instance.app)
    number = instance.numbers["key_assigned"]
    r = api.get(
        "/api/v1/canned-replies",
        params={"ticket": number, "q": "api"},
        headers={"Authorization": f"Bearer {tokens['tech']}"},
    )
    assert r.status_code == 200, r.text
    assert [(i["shortcut"], i["body"]) for i in r.json()["items"]] == [("api", f"#{number}")]
    r = api.get("/api/v1/canned-replies", headers={"Authorization": f"Bearer {tokens['client']}"})
    assert r.status_code == 403 and "staff" in r.json()["detail"]


def test_numbers_past_the_database_integer_are_answered_not_crashed(instance: SeededApp) -> None:
    client, csrf = console_client(instance.app, instance.users["coordinator"])
    number = instance.numbers["key_assigned"]
    huge = str(2**63)
    r = client.get(f"/tickets/{number}/changes", params={"since": huge})
    assert r.status_code == 200 and r.json() == {"changes": []}
    r = client.post(f"/tickets/{number}/macros/{huge}", data={"csrf_token": csrf})
    assert r.status_code == 404
    r = client.post(f"/profile/replies/{huge}/delete", data={"csrf_token": csrf})
    assert r.status_code == 404

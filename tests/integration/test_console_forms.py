"""Console forms and pages beyond permissions: opening tickets, refusals re-rendered with the
person's input kept, the forgiving list parameters, flash messages, languages, catalogues."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlalchemy import select

from core.directory.models import User
from core.tickets.models import Ticket
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client
from web.console.common import encode_flash

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("console-forms"))


def login(instance: SeededApp, role: str) -> tuple[Any, str]:
    return console_client(instance.app, instance.users[role])


def multipart(data: dict[str, str], files: list[tuple[str, bytes]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    parts: list[tuple[str, Any]] = [(k, (None, v)) for k, v in data.items()]
    parts += [("files", (name, content, "text/plain")) for name, content in files]
    return {"files": parts}


def ticket_by_number(instance: SeededApp, number: int) -> dict[str, Any]:
    with instance.factory() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None
        return {
            "requester": t.requester.email,
            "client": t.client.name if t.client else None,
            "contract": t.contract.code if t.contract else None,
            "events": [(e.type, e.public, [a.filename for a in e.attachments]) for e in t.events],
        }


def test_a_client_opens_a_ticket_on_their_contract(instance: SeededApp) -> None:
    client, csrf = login(instance, "client")
    form = {
        "csrf_token": csrf,
        "subject": "Drukarka piszczy",
        "body": "Od rana.",
        "contract": "ACME-KEY",
    }
    r = client.post(
        "/tickets/new", **multipart(form, [("zdjecie.txt", b"x")]), follow_redirects=False
    )
    assert r.status_code == 303
    number = int(r.headers["location"].rsplit("/", 1)[-1])
    shown = client.get(r.headers["location"])
    assert f"Utworzono zgłoszenie #{number}." in shown.text
    t = ticket_by_number(instance, number)
    assert t["requester"] == instance.users["client"]
    assert t["contract"] == "ACME-KEY"
    assert t["events"][0] == ("created", True, ["zdjecie.txt"])


def test_a_client_cannot_use_another_clients_contract(instance: SeededApp) -> None:
    client, csrf = login(instance, "client")
    form = {"csrf_token": csrf, "subject": "Cudza umowa", "body": "Treść", "contract": "BETA-STD"}
    r = client.post("/tickets/new", **multipart(form), follow_redirects=False)
    assert r.status_code == 403
    assert "Wybierz jedną ze swoich umów." in r.text
    assert 'value="Cudza umowa"' in r.text  # what they typed is still there


def test_staff_open_a_ticket_for_a_new_address_of_a_known_domain(instance: SeededApp) -> None:
    client, csrf = login(instance, "coordinator")
    form = {
        "csrf_token": csrf,
        "requester": "nowa.osoba@beta.example",
        "subject": "Telefon w sprawie drukarki",
        "body": "Zgłoszenie telefoniczne.",
        "assignee": instance.users["technician"],
    }
    # BETA-STD (the client's only contract, chosen for the new contact) asks for the location
    # on open: without it the form comes back saying so, with what was typed.
    r = client.post("/tickets/new", **multipart(form), follow_redirects=False)
    assert r.status_code == 400
    assert "aby otworzyć zgłoszenie, uzupełnij: Lokalizacja" in r.text
    assert 'value="nowa.osoba@beta.example"' in r.text
    form["field.location"] = "Warszawa"
    r = client.post("/tickets/new", **multipart(form), follow_redirects=False)
    assert r.status_code == 303, r.text
    number = int(r.headers["location"].rsplit("/", 1)[-1])
    t = ticket_by_number(instance, number)
    assert t["requester"] == "nowa.osoba@beta.example"
    assert (t["client"], t["contract"]) == ("Beta", "BETA-STD")  # the client's only contract
    with instance.factory() as s:
        contact = s.scalar(select(User).where(User.email == "nowa.osoba@beta.example"))
        assert contact is not None and contact.role == "client"


def test_an_empty_subject_comes_back_with_the_sentence_and_the_input(instance: SeededApp) -> None:
    client, csrf = login(instance, "coordinator")
    form = {"csrf_token": csrf, "subject": "  ", "body": "Ważny opis, nie zgub go."}
    r = client.post("/tickets/new", **multipart(form), follow_redirects=False)
    assert r.status_code == 400
    assert "zgłoszenie musi mieć temat" in r.text
    assert "Ważny opis, nie zgub go." in r.text


def test_subcontractors_do_not_open_tickets(instance: SeededApp) -> None:
    client, _ = login(instance, "subcontractor")
    r = client.get("/tickets/new")
    assert r.status_code == 403
    assert "Podwykonawcy nie zakładają zgłoszeń" in r.text
    assert "/tickets/new" not in client.get("/tickets").text  # no link to it either


def test_refusals_on_the_detail_keep_the_page_and_say_why(instance: SeededApp) -> None:
    client, csrf = login(instance, "technician")
    number = instance.numbers["key_assigned"]
    r = client.post(
        f"/tickets/{number}/worklog",
        data={"csrf_token": csrf, "minutes": "pół godziny", "note": "Diagnoza"},
        follow_redirects=False,
    )
    assert r.status_code == 400
    assert "Podaj czas pracy w pełnych minutach" in r.text
    assert 'value="Diagnoza"' in r.text
    r = client.post(
        f"/tickets/{number}/status",
        data={"csrf_token": csrf, "status": "No such status"},
        follow_redirects=False,
    )
    assert r.status_code == 400
    assert "nie ma statusu" in r.text and 'data-testid="timeline"' in r.text
    r = client.post(
        f"/tickets/{number}/comment",
        **multipart({"csrf_token": csrf, "body": " "}),
        follow_redirects=False,
    )
    assert r.status_code == 400
    assert "komentarz jest pusty" in r.text


def test_work_logged_is_announced_with_polish_plurals(instance: SeededApp) -> None:
    client, csrf = login(instance, "technician")
    number = instance.numbers["key_assigned"]
    for minutes, words in (("1", "1 minutę"), ("3", "3 minuty"), ("25", "25 minut")):
        r = client.post(f"/tickets/{number}/worklog", data={"csrf_token": csrf, "minutes": minutes})
        assert f"Zapisano {words} pracy." in r.text


def test_the_list_forgives_bad_parameters(instance: SeededApp) -> None:
    client, _ = login(instance, "coordinator")
    r = client.get("/tickets?page=abc&sort=evil&per_page=9999&state=weird&key=maybe")
    assert r.status_code == 200
    assert 'data-testid="ticket-row"' in r.text


def test_search_sort_and_pages(instance: SeededApp) -> None:
    client, _ = login(instance, "coordinator")
    overdue = instance.numbers["overdue"]
    # "#N" in the search box opens the ticket (issue 15).
    r = client.get(f"/tickets?q=%23{overdue}", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, f"/tickets/{overdue}")
    r = client.get("/tickets?sort=deadline&per_page=2")
    rows = re.findall(r'data-number="(\d+)"', r.text)
    assert rows[0] == str(overdue)  # the most urgent deadline first
    assert re.search(r"1–2 z \d+", r.text)
    assert "page=2" in r.text
    r2 = client.get("/tickets?sort=deadline&per_page=2&page=2")
    assert not set(re.findall(r'data-number="(\d+)"', r2.text)) & set(rows)


def test_a_forged_flash_cookie_is_ignored(instance: SeededApp) -> None:
    """A cookie of exactly the shape the app writes is refused only for its signature."""
    client, _ = login(instance, "coordinator")
    secret = instance.settings.secret_key
    genuine = encode_flash(secret, "ok", "Signed by us.")
    client.cookies.set("pulpit_flash", genuine)
    assert 'data-testid="flash">Signed by us.</p>' in client.get("/tickets").text
    other_secret = encode_flash(secret + "-not", "ok", "Forged.")
    payload, _ = encode_flash(secret, "ok", "Forged.").rsplit(".", 1)
    borrowed_signature = f"{payload}.{genuine.rsplit('.', 1)[1]}"
    for forged in (other_secret, borrowed_signature):
        client.cookies.set("pulpit_flash", forged)
        r = client.get("/tickets")
        assert r.status_code == 200
        assert 'data-testid="flash"' not in r.text, forged


def test_the_language_switch_sets_a_cookie(instance: SeededApp) -> None:
    client, _ = login(instance, "coordinator")
    assert "Zgłoszenia" in client.get("/tickets").text
    r = client.get("/lang/en", headers={"referer": "http://testserver.local/tickets?state=all"})
    assert r.status_code == 200  # followed back to the list
    assert ">Tickets</h1>" in r.text
    client.get("/lang/pl")


def test_every_console_message_is_translated() -> None:
    """Each msgid in the templates and console code, and each of core's refusals marked with
    N_, has a Polish and an English entry, and Polish declares its three plural forms."""
    method_map = [
        ("web/**.py", "python"),
        ("core/**.py", "python"),
        ("web/templates/**.html", "jinja2"),
    ]
    options = {"web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    ids = {
        msg[2] if isinstance(msg[2], str) else msg[2][0]
        for msg in extract_from_dir(str(ROOT), method_map, options_map=options)
        if msg[0].startswith(("web", "core"))
    }
    assert "Tickets" in ids and "the comment is empty" in ids
    for lang in ("pl", "en"):
        with (ROOT / "web/locale" / lang / "LC_MESSAGES/messages.po").open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        missing = sorted(i for i in ids if catalog.get(i) is None)
        assert not missing, f"{lang}: not in the catalogue: {missing}"
        empty = sorted(
            m.id if isinstance(m.id, str) else m.id[0]
            for m in catalog
            if m.id and (not m.string or (isinstance(m.string, tuple) and not all(m.string)))
        )
        assert not empty, f"{lang}: untranslated: {empty}"
        if lang == "pl":
            assert catalog.num_plurals == 3
            assert catalog.plural_expr == (
                "(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2)"
            )


def test_logout_needs_the_token_and_ends_the_session(instance: SeededApp) -> None:
    client, csrf = login(instance, "technician")
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    assert client.get("/tickets", follow_redirects=False).status_code == 200
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    assert client.get("/tickets", follow_redirects=False).status_code == 303

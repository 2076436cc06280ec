"""The console's ticket forms (issue 12): custom fields edited on the ticket page, the
checklist ticked and added to, the type change's checklist question and the new-ticket form's
fields required on open, through the in-process client (the browser's side is
tests/e2e/test_forms_browser.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from core.tickets.models import Ticket
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("console-ticket-forms"))


def login(instance: SeededApp, role: str) -> tuple[Any, str]:
    return console_client(instance.app, instance.users[role])


def stored(instance: SeededApp, number: int) -> Ticket:
    with instance.factory() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None
        _ = [(i.text, i.done, i.required) for i in t.checklist], list(t.events)
        s.expunge_all()
        return t


def items(instance: SeededApp, number: int) -> list[tuple[int, str, bool, bool]]:
    with instance.factory() as s:
        t = s.scalar(select(Ticket).where(Ticket.number == number))
        assert t is not None
        return [(i.id, i.text, i.done, i.required) for i in t.checklist]


def field_changes(html: str) -> list[str]:
    """The field changes on the timeline, as text."""
    found = re.findall(r'data-testid="field-change"[^>]*>(.*?)</span>(?=;|\s*</span>)', html, re.S)
    return [" ".join(re.sub(r"<[^>]+>", "", f).split()) for f in found]


def test_the_fields_form_draws_every_field_with_its_rules(instance: SeededApp) -> None:
    client, _ = login(instance, "technician")
    page = client.get(f"/tickets/{instance.numbers['key_assigned']}").text
    assert 'data-testid="fields-form"' in page and "data-field-rules=" in page
    assert 'name="field.location"' in page and 'name="field.serial_number"' in page
    # The room waits for the location (disabled, with its help); the outage cause is hidden.
    room = re.search(r'<div[^>]*data-field="room".*?</div>', page, re.S)
    assert room is not None and "disabled" in room.group(0)
    assert "Najpierw wybierz lokalizację" in room.group(0)
    cause = re.search(r'<div[^>]*data-field="outage_cause"[^>]*>', page)
    assert cause is not None and "hidden" in cause.group(0)
    assert '<script src="/static/fields.js" defer></script>' in page


def test_saving_fields_records_them_by_label_and_clears_what_the_parent_no_longer_allows(
    instance: SeededApp,
) -> None:
    client, csrf = login(instance, "technician")
    number = instance.numbers["key_assigned"]
    r = client.post(
        f"/tickets/{number}/fields",
        data={
            "csrf_token": csrf,
            "field.location": "Warszawa",
            "field.room": "A1",
            "field.outage_cause": "Zalanie",
            "field.serial_number": "",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert re.search(r"#e\d+$", r.headers["location"])
    assert stored(instance, number).custom_fields == {
        "location": "Warszawa",
        "room": "A1",
        "outage_cause": "Zalanie",
    }
    page = client.get(f"/tickets/{number}").text
    assert "Zapisano pola." in page
    assert "Lokalizacja — → Warszawa" in field_changes(page)
    # The location changes and the form emptied the room (fields.js does): the rules clear the
    # room and the cause, and the timeline says why.
    r = client.post(
        f"/tickets/{number}/fields",
        data={"csrf_token": csrf, "field.location": "Poznań", "field.room": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert stored(instance, number).custom_fields == {"location": "Poznań"}
    changes = field_changes(client.get(f"/tickets/{number}").text)
    assert "Lokalizacja Warszawa → Poznań" in changes
    assert "Pomieszczenie A1 → — (wyczyszczone, bo zmieniło się pole Lokalizacja)" in changes, (
        changes
    )


def test_a_refused_value_comes_back_with_the_sentence_and_the_input(instance: SeededApp) -> None:
    client, csrf = login(instance, "technician")
    number = instance.numbers["key_assigned"]
    r = client.post(
        f"/tickets/{number}/fields",
        data={"csrf_token": csrf, "field.location": "Warszawa", "field.room": "B1",
              "field.serial_number": "SN-777"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 400
    assert 'data-testid="form-error"' in r.text
    assert "Pomieszczenie" in r.text and "B1" in r.text
    assert 'value="SN-777"' in r.text  # what they typed is kept
    assert re.search(r'<option value="Warszawa" selected>', r.text)


def test_an_english_user_reads_the_labels_in_english(instance: SeededApp) -> None:
    client, csrf = login(instance, "technician")
    number = instance.numbers["key_assigned"]
    client.cookies.set("lang", "en")
    page = client.get(f"/tickets/{number}").text
    client.cookies.delete("lang")
    assert ">Location</label>" in page and "Ticket form" in page
    assert any(c.startswith("Location ") for c in field_changes(page))


def test_clients_read_the_fields_they_may_see_and_never_the_checklist(
    instance: SeededApp,
) -> None:
    client, csrf = login(instance, "client")
    number = instance.numbers["key_subcontractor"]
    page = client.get(f"/tickets/{number}").text
    assert 'data-testid="fields-form"' not in page
    assert "Lokalizacja" in page and "Przyczyna awarii" not in page
    assert 'data-testid="checklist"' not in page and "Sprawdzić toner" not in page
    r = client.post(
        f"/tickets/{number}/checklist/1", data={"csrf_token": csrf, "done": "1"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code in (403, 404)


def test_a_mail_ticket_missing_a_field_required_on_open_says_so_to_staff(
    instance: SeededApp,
) -> None:
    client, _ = login(instance, "coordinator")
    page = client.get(f"/tickets/{instance.numbers['beta_open']}").text
    assert 'data-testid="missing-fields"' in page
    assert "Zgłoszenie przyszło e-mailem: uzupełnij Lokalizacja" in page
    beta, _ = login(instance, "beta")
    assert (
        'data-testid="missing-fields"'
        not in beta.get(f"/tickets/{instance.numbers['beta_open']}").text
    )


def test_ticking_the_checklist_and_closing_waits_for_it(instance: SeededApp) -> None:
    client, csrf = login(instance, "technician2")
    number = instance.numbers["key_subcontractor"]
    page = client.get(f"/tickets/{number}").text
    assert 'data-testid="checklist-progress"' in page and ">0/3<" in page
    first, second, third = items(instance, number)
    assert first[1] == "Sprawdzić toner" and first[3]  # required to close
    r = client.post(
        f"/tickets/{number}/checklist/{first[0]}",
        data={"csrf_token": csrf, "done": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"].endswith(f"/tickets/{number}#ci-{first[0]}")
    page = client.get(r.headers["location"]).text
    assert ">1/3<" in page and "odhaczono: Sprawdzić toner" in page
    assert "Kasia Serwis, " in page  # who ticked it, next to it
    # Closing with an empty required field is refused naming it, then with two required
    # items unticked naming them.
    r = client.post(
        f"/tickets/{number}/status",
        data={"csrf_token": csrf, "status": "Resolved"},
        follow_redirects=False,
    )
    assert r.status_code == 409 and "pola: Resolution code" in r.text
    r = client.post(
        f"/tickets/{number}/fields",
        data={"csrf_token": csrf, "field.resolution_code": "fixed"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        f"/tickets/{number}/status",
        data={"csrf_token": csrf, "status": "Resolved"},
        follow_redirects=False,
    )
    assert r.status_code == 409
    assert "Wyczyścić rolki, Wydruk testowy" in r.text and 'data-testid="form-error"' in r.text
    # Unticking is a timeline event too.
    r = client.post(
        f"/tickets/{number}/checklist/{first[0]}",
        data={"csrf_token": csrf, "done": "0"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "cofnięto odhaczenie: Sprawdzić toner" in client.get(f"/tickets/{number}").text
    assert [i[2] for i in items(instance, number)] == [False, False, False]


def test_staff_add_a_checklist_item(instance: SeededApp) -> None:
    client, csrf = login(instance, "coordinator")
    number = instance.numbers["key_subcontractor"]
    r = client.post(
        f"/tickets/{number}/checklist",
        data={"csrf_token": csrf, "text": "Zdjęcie tabliczki znamionowej", "required": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert items(instance, number)[-1][1:] == ("Zdjęcie tabliczki znamionowej", False, True)
    r = client.post(
        f"/tickets/{number}/checklist",
        data={"csrf_token": csrf, "text": "  "},
        follow_redirects=False,
    )
    assert r.status_code == 400 and 'data-testid="form-error"' in r.text


def test_the_type_change_asks_to_add_the_new_types_checklist(instance: SeededApp) -> None:
    client, csrf = login(instance, "coordinator")
    number = instance.numbers["key_new"]
    page = client.get(f"/tickets/{number}").text
    assert 'data-testid="checklist-prompt"' in page
    assert re.search(
        r'<option value="inspection" data-contract="ACME-KEY" data-checklist="3" '
        r'data-checklist-prompt="Dodać 3 punkty listy kontrolnej typu inspection\?"',
        page,
    )
    assert items(instance, number) == []
    r = client.post(
        f"/tickets/{number}/contract",
        data={
            "csrf_token": csrf,
            "contract": "ACME-KEY",
            "ticket_type": "inspection",
            "add_checklist": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert [i[1] for i in items(instance, number)] == [
        "Sprawdzić toner",
        "Wyczyścić rolki",
        "Wydruk testowy",
    ]
    page = client.get(f"/tickets/{number}").text
    assert "Typ failure → inspection" in field_changes(page)
    assert "dodanie do listy kontrolnej:" in page


def test_the_type_change_without_the_checklist(instance: SeededApp) -> None:
    client, csrf = login(instance, "coordinator")
    number = instance.numbers["client_web"]
    r = client.post(
        f"/tickets/{number}/contract",
        data={"csrf_token": csrf, "contract": "ACME-KEY", "ticket_type": "inspection"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert items(instance, number) == []


def multipart(data: dict[str, str]) -> dict[str, Any]:
    return {"files": [(k, (None, v)) for k, v in data.items()]}


def test_the_new_ticket_form_asks_a_client_for_the_fields_required_on_open(
    instance: SeededApp,
) -> None:
    client, csrf = login(instance, "beta")
    page = client.get("/tickets/new").text
    assert 'data-fields-for="BETA-STD"' in page and 'name="field.location"' in page
    assert re.search(r'name="field.location"[^>]* required', page)
    assert 'name="field.outage_cause"' not in page  # kept from clients
    form = {"csrf_token": csrf, "subject": "Nie działa drukarka", "body": "Od rana.",
            "contract": "BETA-STD"}  # fmt: skip
    r = client.post("/tickets/new", **multipart(form), follow_redirects=False)
    assert r.status_code == 400
    assert "aby otworzyć zgłoszenie, uzupełnij: Lokalizacja" in r.text
    assert 'value="Nie działa drukarka"' in r.text
    form["field.location"] = "Poznań"
    r = client.post("/tickets/new", **multipart(form), follow_redirects=False)
    assert r.status_code == 303, r.text
    number = int(r.headers["location"].rsplit("/", 1)[-1])
    assert stored(instance, number).custom_fields == {"location": "Poznań"}


def test_a_client_with_no_contract_chosen_gets_their_default_contracts_fields(
    instance: SeededApp,
) -> None:
    client, csrf = login(instance, "beta")
    form = {"csrf_token": csrf, "subject": "Monitor miga", "field.location": "Warszawa"}
    r = client.post("/tickets/new", **multipart(form), follow_redirects=False)
    assert r.status_code == 303, r.text
    number = int(r.headers["location"].rsplit("/", 1)[-1])
    assert stored(instance, number).custom_fields == {"location": "Warszawa"}


def test_staff_fill_in_fields_when_opening_and_keep_them_after_a_refusal(
    instance: SeededApp,
) -> None:
    client, csrf = login(instance, "coordinator")
    form = {"csrf_token": csrf, "subject": "  ", "contract": "ACME-KEY",
            "field.location": "Warszawa", "field.room": "A2", "field.serial_number": "X-1"}  # fmt: skip
    r = client.post("/tickets/new", **multipart(form), follow_redirects=False)
    assert r.status_code == 400
    assert 'value="X-1"' in r.text and '<option value="A2" selected>' in r.text
    form["subject"] = "Drukarka w A2"
    r = client.post("/tickets/new", **multipart(form), follow_redirects=False)
    assert r.status_code == 303, r.text
    number = int(r.headers["location"].rsplit("/", 1)[-1])
    assert stored(instance, number).custom_fields == {
        "location": "Warszawa",
        "room": "A2",
        "serial_number": "X-1",
    }


def test_a_subcontractor_ticks_the_checklist_of_a_ticket_handed_to_them(
    instance: SeededApp,
) -> None:
    client, csrf = login(instance, "subcontractor")
    number = instance.numbers["key_subcontractor"]
    page = client.get(f"/tickets/{number}").text
    assert 'data-testid="checklist"' in page
    assert 'data-testid="checklist-add"' not in page  # adding is for our staff
    item = items(instance, number)[-1]
    r = client.post(
        f"/tickets/{number}/checklist/{item[0]}",
        data={"csrf_token": csrf, "done": "1"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert items(instance, number)[-1][2] is True


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    """The world plus BETA-STD fields of every other type: a number from 1 to 10, a date, a
    yes/no and a multiselect."""
    from core.contracts.models import Contract, CustomField

    seeded = build_seeded_app(tmp_path_factory.mktemp("console-typed-fields"))
    with seeded.factory() as s:
        std = s.scalar(select(Contract).where(Contract.code == "BETA-STD"))
        assert std is not None
        s.add_all(
            [
                CustomField(contract_id=std.id, name="devices", type="number", min_value=1,
                            max_value=10, labels={"pl": "Liczba urządzeń", "en": "Devices"},
                            position=40),
                CustomField(contract_id=std.id, name="since", type="date",
                            labels={"pl": "Od kiedy", "en": "Since"}, position=50),
                CustomField(contract_id=std.id, name="urgent", type="bool",
                            labels={"pl": "Pilne", "en": "Urgent"}, position=60),
                CustomField(contract_id=std.id, name="systems", type="multiselect",
                            options=["VPN", "Poczta", "Drukarki"],
                            labels={"pl": "Systemy", "en": "Systems"}, position=70),
            ]
        )  # fmt: skip
        s.commit()
    return seeded


def test_every_type_gets_its_control_and_its_words_on_the_timeline(typed: SeededApp) -> None:
    client, csrf = login(typed, "coordinator")
    number = typed.numbers["beta_waiting"]
    page = client.get(f"/tickets/{number}").text
    assert re.search(r'name="field.devices"[^>]*type="number"[^>]*min="1" max="10"', page)
    assert re.search(r'name="field.since"[^>]*type="date"', page)
    assert re.search(r'type="checkbox" id="cf-urgent" name="field.urgent" value="true"', page)
    systems = re.search(r'<fieldset class="cf-multi".*?</fieldset>', page, re.S)
    assert systems is not None and "<legend>Systemy" in systems.group(0)
    assert systems.group(0).count('type="checkbox" name="field.systems"') == 3
    assert "<select multiple" not in page

    sent = {
        "csrf_token": csrf,
        "field.devices": "11",
        "field.since": "2026-11-02",
        "field.urgent": ["false", "true"],
        "field.systems": ["", "VPN", "Drukarki"],
        "field.location": "Warszawa",
    }
    r = client.post(f"/tickets/{number}/fields", data=sent, follow_redirects=False)
    assert r.status_code == 400
    assert "Liczba urządzeń" in r.text and "10" in r.text
    assert 'value="11"' in r.text and 'value="2026-11-02"' in r.text  # kept
    assert re.search(r'value="VPN" checked', r.text) and re.search(
        r'value="Drukarki" checked', r.text
    )
    assert not re.search(r'value="Poczta" checked', r.text)
    sent["field.devices"] = "3"
    r = client.post(f"/tickets/{number}/fields", data=sent, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert stored(typed, number).custom_fields == {
        "devices": 3,
        "since": "2026-11-02",
        "urgent": True,
        "systems": ["VPN", "Drukarki"],
        "location": "Warszawa",
    }
    changes = field_changes(client.get(f"/tickets/{number}").text)
    assert "Pilne — → tak" in changes and "Systemy — → VPN, Drukarki" in changes
    # Unticking the yes/no (only its hidden companion arrives) is a change to "no".
    sent["field.urgent"] = "false"
    r = client.post(f"/tickets/{number}/fields", data=sent, follow_redirects=False)
    assert r.status_code == 303
    assert "Pilne tak → nie" in field_changes(client.get(f"/tickets/{number}").text)

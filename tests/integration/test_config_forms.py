"""Ticket forms as configuration (docs/configuration.md): custom fields with labels per
language, help, order, edit rights, limits and dependencies; required fields per contract;
checklists per ticket type. Applied, applied in part, exported and read back, and refused
with the line of the mistake."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.configuration import ConfigError, apply_config_text, export_config
from core.configuration.checks import Known
from core.configuration.validate import validate_config
from core.contracts.models import Contract, CustomField, TicketType
from tests.factories import recompute_after

NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)  # a Wednesday

FORMS = textwrap.dedent(
    """\
    clients:
      - name: Acme
        domains: [acme.example]
        contacts:
          - {email: anna@acme.example, name: Anna}
    custom_fields:
      - name: device_serial
        label: {pl: Numer seryjny, en: Serial number}
        help: Z tabliczki znamionowej
        edit: [coordinator, technician]
        visible_to_client: false
      - {name: location, type: select, options: [Warszawa, Poznań]}
      - name: room
        type: select
        options: [A1, A2, B1]
        depends_on: {field: location, options: {Warszawa: [A1, A2], Poznań: [B1]}}
      - name: outage_cause
        type: textarea
        help: {pl: Co się stało, en: What happened}
        depends_on: {field: location, when: [Warszawa]}
      - {name: pages, type: number, min: 0, max: 100.5, order: 5}
      - {name: urgent, type: bool, visible_to_subcontractor: false}
      - {name: visit, type: date, depends_on: {field: urgent, when: [true]}}
      - {name: parts, type: multiselect, options: [toner, bęben]}
    contracts:
      - code: ACME
        client: Acme
        ticket_types:
          - {name: failure, default: true, reaction: 2h, resolution: 1d}
          - name: inspection
            checklist: {items: [Sprawdzić toner, Wyczyścić rolki, Wydruk testowy], required_to_close: true}
        required_fields: {device_serial: close, location: open}
        custom_fields:
          - name: cost_center
            label: MPK
            type: select
            options: [IT, HR]
            depends_on: {field: location, when: [Poznań]}
    tickets:
      - ref: F-1
        subject: Drukarka nie drukuje
        requester: anna@acme.example
        contract: ACME
        created: 1h
        custom_fields: {location: Warszawa}
    """
)


def apply(session: Session, text: str) -> Any:
    return apply_config_text(session, textwrap.dedent(text), now=NOW)


def field(session: Session, name: str) -> CustomField:
    found = session.scalar(select(CustomField).where(CustomField.name == name))
    assert found is not None, name
    return found


def contract(session: Session) -> Contract:
    found = session.scalar(select(Contract).where(Contract.code == "ACME"))
    assert found is not None
    return found


def inspection(session: Session) -> TicketType:
    found = session.scalar(select(TicketType).where(TicketType.name == "inspection"))
    assert found is not None
    return found


@pytest.fixture
def forms(session: Session) -> Session:
    apply_config_text(session, FORMS, now=NOW)
    return session


# --- apply ----------------------------------------------------------------------------------


def test_every_form_key_is_stored(forms: Session) -> None:
    session = forms
    serial = field(session, "device_serial")
    assert serial.label == "Serial number"  # one label for readers that know no languages
    assert serial.labels == {"pl": "Numer seryjny", "en": "Serial number"}
    assert serial.help == "Z tabliczki znamionowej"
    assert serial.edit == ["coordinator", "technician"]
    assert serial.visible_to_client is False and serial.visible_to_subcontractor is None
    location = field(session, "location")
    assert location.label is None and location.labels == {}
    assert location.options == ["Warszawa", "Poznań"] and location.depends_on is None
    assert location.edit is None  # the default rights
    assert field(session, "room").depends_on == {
        "field": "location",
        "options": {"Warszawa": ["A1", "A2"], "Poznań": ["B1"]},
    }
    cause = field(session, "outage_cause")
    assert cause.type == "textarea" and cause.help == {"pl": "Co się stało", "en": "What happened"}
    assert cause.depends_on == {"field": "location", "when": ["Warszawa"]}
    pages = field(session, "pages")
    assert (pages.min_value, pages.max_value) == (0, 100.5)
    assert field(session, "urgent").visible_to_subcontractor is False
    assert field(session, "visit").depends_on == {"field": "urgent", "when": [True]}
    assert field(session, "parts").type == "multiselect"
    # The file's order is the form's, ten apart; ``order`` puts pages between the first two.
    positions = {
        cf.name: cf.position
        for cf in session.scalars(select(CustomField).where(CustomField.contract_id.is_(None)))
    }
    assert positions == {
        "device_serial": 0,
        "location": 10,
        "room": 20,
        "outage_cause": 30,
        "pages": 5,
        "urgent": 50,
        "visit": 60,
        "parts": 70,
    }
    cost = field(session, "cost_center")
    assert cost.contract_id == contract(session).id and cost.position == 0
    assert contract(session).required_fields == {"device_serial": "close", "location": "open"}
    assert inspection(session).checklist == {
        "items": ["Sprawdzić toner", "Wyczyścić rolki", "Wydruk testowy"],
        "required_to_close": True,
    }


def test_applying_the_forms_twice_changes_nothing(forms: Session) -> None:
    again = apply_config_text(forms, FORMS, now=NOW)
    assert str(again) == "nothing changed" and not again.rescheduled
    assert not forms.dirty and not forms.new


# --- partial apply --------------------------------------------------------------------------


def test_required_fields_merge_by_name(forms: Session) -> None:
    session = forms
    result = apply(session, "contracts:\n  - {code: ACME, required_fields: {location: close}}\n")
    assert str(result) == "contracts: 1 updated"
    assert contract(session).required_fields == {"device_serial": "close", "location": "close"}
    apply(session, "contracts:\n  - {code: ACME, required_fields: {device_serial: null}}\n")
    assert contract(session).required_fields == {"location": "close"}
    apply(
        session,
        """\
        contracts:
          - code: ACME
            required_fields: {outage_cause: open, cost_center: close}
            remove: {required_fields: [location, never_there]}
        """,
    )
    assert contract(session).required_fields == {"outage_cause": "open", "cost_center": "close"}
    apply(session, "contracts:\n  - {code: ACME, required_fields: null}\n")
    assert contract(session).required_fields == {}
    assert str(apply(session, "contracts:\n  - {code: ACME, required_fields: null}\n")) == (
        "nothing changed"
    )


def test_a_partial_field_changes_only_what_it_states(forms: Session) -> None:
    session = forms
    result = apply(session, "custom_fields:\n  - {name: room, label: Pokój}\n")
    assert str(result) == "custom fields: 1 updated"
    room = field(session, "room")
    assert room.label == "Pokój" and room.labels == {}
    assert room.position == 20 and room.options == ["A1", "A2", "B1"]
    assert room.depends_on is not None and room.depends_on["field"] == "location"
    # A field listed first in a partial file keeps its place unless ``order`` says.
    apply(session, "custom_fields:\n  - {name: device_serial, order: 99}\n")
    serial = field(session, "device_serial")
    assert serial.position == 99 and serial.labels["pl"] == "Numer seryjny"
    assert serial.edit == ["coordinator", "technician"]
    # null takes a key back to its default.
    apply(
        session,
        """\
        custom_fields:
          - {name: device_serial, edit: null, help: null, visible_to_client: null}
          - {name: pages, min: null}
          - {name: room, depends_on: null}
        """,
    )
    serial = field(session, "device_serial")
    assert serial.edit is None and serial.help is None and serial.visible_to_client is True
    assert field(session, "pages").min_value is None and field(session, "pages").max_value == 100.5
    assert field(session, "room").depends_on is None
    # A new field in a partial file: its index in that file, times ten.
    apply(session, "custom_fields:\n  - {name: pages}\n  - {name: notes, type: textarea}\n")
    assert field(session, "notes").position == 10


def test_a_dependency_can_switch_between_options_and_when(forms: Session) -> None:
    session = forms
    text = "custom_fields:\n  - {name: room, depends_on: {field: location, when: [Poznań]}}\n"
    apply(session, text)
    assert field(session, "room").depends_on == {"field": "location", "when": ["Poznań"]}


def test_a_checklist_is_replaced_when_stated_and_kept_when_not(forms: Session) -> None:
    session = forms
    keep = "contracts:\n  - code: ACME\n    ticket_types: [{name: inspection, reaction: 4h}]\n"
    apply(session, keep)
    kept = inspection(session).checklist
    assert kept is not None and kept["required_to_close"] is True
    text = "contracts:\n  - code: ACME\n    ticket_types: [{name: inspection, checklist: {items: [Toner]}}]\n"
    assert str(apply(session, text)) == "contracts: 1 unchanged; ticket types: 1 updated"
    assert inspection(session).checklist == {"items": ["Toner"], "required_to_close": False}
    gone = "contracts:\n  - code: ACME\n    ticket_types: [{name: inspection, checklist: null}]\n"
    apply(session, gone)
    assert inspection(session).checklist is None
    assert str(apply(session, gone)) == "nothing changed"


def test_forms_move_no_deadline_but_sla_targets_still_do(forms: Session) -> None:
    session = forms
    text = """\
    custom_fields:
      - {name: location, options: [Kraków], label: {pl: Miasto, en: City}}
    contracts:
      - code: ACME
        required_fields: {urgent: close}
        ticket_types:
          - {name: failure, checklist: {items: [Zdjęcie usterki]}}
    """
    result = apply(session, text)
    assert result.changed and recompute_after(session, result, NOW) == 0
    assert result.deadlines == ""
    sla = "contracts:\n  - code: ACME\n    ticket_types: [{name: failure, reaction: 3h}]\n"
    result = apply(session, sla)
    assert recompute_after(session, result, NOW) == 1
    assert result.deadlines == "1 open ticket gets new deadlines"


# --- export ---------------------------------------------------------------------------------


def test_export_writes_every_form_key_and_applies_as_a_no_op(forms: Session) -> None:
    session = forms
    text = export_config(session)
    doc = yaml.safe_load(text)
    fields = {f["name"]: f for f in doc["custom_fields"]}
    # Listed in the form's order; ``order`` only where the list's place would not give it.
    assert list(fields) == [
        "device_serial",
        "pages",
        "location",
        "room",
        "outage_cause",
        "urgent",
        "visit",
        "parts",
    ]
    assert fields["device_serial"] == {
        "name": "device_serial",
        "label": {"pl": "Numer seryjny", "en": "Serial number"},
        "help": "Z tabliczki znamionowej",
        "edit": ["coordinator", "technician"],
        "visible_to_client": False,
    }
    assert fields["pages"] == {
        "name": "pages",
        "type": "number",
        "order": 5,
        "min": 0,
        "max": 100.5,
    }
    assert fields["location"] == {
        "name": "location",
        "type": "select",
        "options": ["Warszawa", "Poznań"],
        "order": 10,
    }
    assert fields["room"]["depends_on"] == {
        "field": "location",
        "options": {"Warszawa": ["A1", "A2"], "Poznań": ["B1"]},
    }
    # Once pages comes before them, the fields it passes need their order said, the rest not.
    assert [f.get("order") for f in fields.values()] == [None, 5, 10, 20, 30, None, None, None]
    assert fields["outage_cause"]["help"] == {"pl": "Co się stało", "en": "What happened"}
    assert fields["urgent"] == {"name": "urgent", "type": "bool", "visible_to_subcontractor": False}
    assert fields["visit"]["depends_on"] == {"field": "urgent", "when": [True]}
    [acme] = doc["contracts"]
    assert acme["required_fields"] == {"device_serial": "close", "location": "open"}
    types = {t["name"]: t for t in acme["ticket_types"]}
    assert "checklist" not in types["failure"]
    assert types["inspection"]["checklist"] == {
        "items": ["Sprawdzić toner", "Wyczyścić rolki", "Wydruk testowy"],
        "required_to_close": True,
    }
    assert acme["custom_fields"][0]["depends_on"] == {"field": "location", "when": ["Poznań"]}
    result = apply_config_text(session, text, source="export.yaml", now=NOW)
    assert str(result) == "nothing changed"
    assert export_config(session) == text


def test_export_leaves_defaults_out(session: Session) -> None:
    apply(
        session,
        """\
        clients: [{name: Acme}]
        contracts:
          - {code: ACME, client: Acme, ticket_types: [{name: failure}]}
        custom_fields:
          - {name: plain}
          - {name: second, label: Drugie}
        """,
    )
    doc = yaml.safe_load(export_config(session))
    assert doc["custom_fields"] == [{"name": "plain"}, {"name": "second", "label": "Drugie"}]
    assert doc["contracts"][0]["ticket_types"] == [{"name": "failure"}]
    assert "required_fields" not in doc["contracts"][0]


def test_the_export_builds_the_same_forms_from_nothing(forms: Session) -> None:
    """Applied to an empty instance, the export gives the same columns (the positions too)."""
    session = forms
    text = export_config(session)
    columns = (
        "label labels type options required visible_to_client visible_to_subcontractor help "
        "position edit min_value max_value depends_on"
    ).split()

    def rows() -> dict[str, tuple[Any, ...]]:
        return {
            cf.name: tuple(getattr(cf, c) for c in columns)
            for cf in session.scalars(select(CustomField))
        }

    before = rows()
    required = contract(session).required_fields
    checklist = inspection(session).checklist
    savepoint = session.begin_nested()
    for cf in session.scalars(select(CustomField)):
        session.delete(cf)
    for tt in session.scalars(select(TicketType)):
        tt.checklist = None
    contract(session).required_fields = {}
    session.flush()
    apply_config_text(session, text, now=NOW)
    session.flush()
    session.expire_all()
    assert rows() == before
    assert contract(session).required_fields == required
    assert inspection(session).checklist == checklist
    savepoint.rollback()


# --- refusals, each on its line -------------------------------------------------------------

BASE = """\
clients: [{name: Acme}]
contracts:
  - code: ACME
    client: Acme
"""
TOP = """\
custom_fields:
  - {name: location, type: select, options: [Warszawa, Poznań]}
  - {name: urgent, type: bool}
"""


def compose(contract: str = "", top: str = "") -> str:
    """BASE, the contract's extra keys from line 5 on, then the fields for every ticket (the
    extra ones from line 3 after the contract's)."""
    return (
        BASE
        + textwrap.indent(textwrap.dedent(contract), "    ")
        + TOP
        + textwrap.indent(textwrap.dedent(top), "  ")
    )


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(text, source="forms.yaml", known=Known(), now=NOW)
    return [str(p) for p in info.value.problems]


def test_good_dependencies_pass() -> None:
    text = compose(
        """\
        custom_fields:
          - {name: cost_center, type: select, options: [IT], depends_on: {field: urgent, when: [false]}}
        required_fields: {cost_center: open, location: close}
        """,
        """\
        - name: room
          type: select
          options: [A1, B1]
          depends_on: {field: location, options: {Warszawa: [A1], Poznań: [B1]}}
        - {name: visit, type: date, depends_on: {field: urgent, when: [true]}}
        - {name: later, type: text, depends_on: {field: listed_after, when: [x]}}
        - {name: listed_after, type: multiselect, options: [x, y]}
        - name: reason
          type: select
          options: [a, b]
          depends_on: {field: urgent, options: {true: [a], false: [a, b]}}
        """,
    )
    validate_config(text, source="forms.yaml", known=Known(), now=NOW)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            "- {name: room, type: text, depends_on: {field: floor, when: [x]}}\n",
            "forms.yaml:6: contracts[0].custom_fields[0].depends_on.field: there is no field "
            "'floor' among contract ACME's or every ticket's fields; known: location, urgent",
        ),
        (
            "- name: room\n  type: select\n  options: [A1, B1]\n"
            "  depends_on: {field: location, options: {Kraków: [A1]}}\n",
            "forms.yaml:9: contracts[0].custom_fields[0].depends_on.options.Kraków: 'Kraków' is "
            "not an option of 'location' (Warszawa, Poznań)",
        ),
        (
            "- name: room\n  type: select\n  options: [A1, B1]\n"
            "  depends_on:\n    field: location\n    options:\n      Warszawa: [A1, C3]\n",
            "forms.yaml:12: contracts[0].custom_fields[0].depends_on.options.Warszawa[1]: 'C3' "
            "is not an option of this field (A1, B1)",
        ),
        (
            "- name: room\n  type: text\n"
            "  depends_on: {field: location, options: {Warszawa: [A1]}}\n",
            "forms.yaml:8: contracts[0].custom_fields[0].depends_on.options: options per value "
            "are for select fields, not text",
        ),
        (
            "- name: room\n  type: select\n  options: [A1]\n"
            "  depends_on: {field: urgent, options: {yes: [A1]}}\n",
            "forms.yaml:9: contracts[0].custom_fields[0].depends_on.options.yes: 'yes' is not a "
            "value of 'urgent' (true, false)",
        ),
        (
            "- {name: notes, type: text}\n- name: room\n  type: select\n  options: [A1]\n"
            "  depends_on: {field: notes, options: {x: [A1]}}\n",
            "forms.yaml:10: contracts[0].custom_fields[1].depends_on.options: options per value "
            "need a select or bool parent; 'notes' is a text field (use when: to show or hide "
            "this one)",
        ),
        (
            "- name: cause\n  type: textarea\n  depends_on:\n    field: location\n"
            "    when: [Warszawa, Gdańsk]\n",
            "forms.yaml:10: contracts[0].custom_fields[0].depends_on.when[1]: 'Gdańsk' is not an "
            "option of 'location' (Warszawa, Poznań)",
        ),
        (
            "- {name: visit, type: date, depends_on: {field: urgent, when: [tak]}}\n",
            "forms.yaml:6: contracts[0].custom_fields[0].depends_on.when[0]: 'urgent' is a "
            "yes/no field: write true or false, not 'tak'",
        ),
        (
            "- {name: loop, type: text, depends_on: {field: loop, when: [x]}}\n",
            "forms.yaml:6: contracts[0].custom_fields[0].depends_on.field: a field cannot "
            "depend on itself",
        ),
        (
            "- {name: notes, type: text, options: [a, b]}\n",
            "forms.yaml:6: contracts[0].custom_fields[0].options: options are for select "
            "fields, not text",
        ),
        (
            "- {name: notes, type: multiselect}\n",
            "forms.yaml:6: contracts[0].custom_fields[0].options: a multiselect field needs "
            "options to "
            "choose from",
        ),
        (
            "- {name: notes, type: text, min: 1}\n",
            "forms.yaml:6: contracts[0].custom_fields[0].min: min is for number fields, not text",
        ),
        (
            "- name: pages\n  type: number\n  min: 10\n  max: 5\n",
            "forms.yaml:9: contracts[0].custom_fields[0].max: min (10) is greater than max (5)",
        ),
        (
            "- name: serial\n  edit: [technician, boss]\n",
            "forms.yaml:7: contracts[0].custom_fields[0].edit[1]: unknown role 'boss'; use one "
            "of: admin, coordinator, technician, client, subcontractor",
        ),
        (
            "- {name: room, type: select, options: [A1], depends_on: {field: location}}\n",
            "forms.yaml:6: contracts[0].custom_fields[0].depends_on: depends_on needs exactly "
            "one of options (allowed options per parent value) or when (the parent values that "
            "show the field)",
        ),
        (
            "- {name: serial, label: {pl: Numer, de: Nummer}}\n",
            "forms.yaml:6: contracts[0].custom_fields[0].label: unknown language 'de'; write the "
            "text for pl, en",
        ),
        (
            "- {name: serial, type: longtext}\n",
            "forms.yaml:6: contracts[0].custom_fields[0].type: 'longtext' is not allowed; use "
            "'text', 'textarea', 'number', 'date', 'bool', 'select' or 'multiselect'",
        ),
    ],
)
def test_a_field_mistake_is_refused_on_its_line(fields: str, expected: str) -> None:
    text = compose("custom_fields:\n" + textwrap.indent(fields, "  "))
    assert problems(text) == [expected]


def test_a_cycle_is_refused_on_each_field_in_it() -> None:
    text = compose(
        top="""\
        - {name: a, type: select, options: [x], depends_on: {field: b, when: [y]}}
        - {name: b, type: select, options: [y], depends_on: {field: a, when: [x]}}
        """
    )
    assert problems(text) == [
        "forms.yaml:8: custom_fields[2].depends_on.field: the dependencies make a cycle: "
        "a -> b -> a",
        "forms.yaml:9: custom_fields[3].depends_on.field: the dependencies make a cycle: "
        "b -> a -> b",
    ]


def test_a_field_for_every_ticket_cannot_follow_a_contracts_field() -> None:
    text = compose(
        "custom_fields:\n  - {name: cost_center, type: select, options: [IT]}\n",
        "- {name: team, type: text, depends_on: {field: cost_center, when: [IT]}}\n",
    )
    assert problems(text) == [
        "forms.yaml:10: custom_fields[2].depends_on.field: there is no field 'cost_center' "
        "among every ticket's fields; known: location, urgent"
    ]


def test_required_fields_name_a_known_field_and_a_moment() -> None:
    text = compose(
        """\
        custom_fields:
          - {name: cost_center, type: text}
        required_fields:
          location: open
          cost_center: close
          serial: close
        """
    )
    assert problems(text) == [
        "forms.yaml:10: contracts[0].required_fields.serial: there is no custom field 'serial' "
        "in this file or the database; known: cost_center, location, urgent"
    ]
    wrong = compose("required_fields:\n  location: always\n")
    assert problems(wrong) == [
        "forms.yaml:6: contracts[0].required_fields.location: 'always' is not allowed; use "
        "'open' or 'close'"
    ]
    both = compose("required_fields: {location: open}\nremove: {required_fields: [location]}\n")
    assert problems(both) == [
        "forms.yaml:6: contracts[0].remove.required_fields[0]: 'location' is both listed "
        "under required_fields and removed"
    ]


def test_a_checklist_item_needs_a_text() -> None:
    text = compose(
        """\
        ticket_types:
          - name: inspection
            checklist:
              items:
                - Toner
                - "  "
              required_to_close: true
        """
    )
    assert problems(text) == [
        "forms.yaml:10: contracts[0].ticket_types[0].checklist.items[1]: a checklist item "
        "needs a text"
    ]
    empty = compose("ticket_types: [{name: x, checklist: {items: []}}]\n")
    assert problems(empty) == [
        "forms.yaml:5: contracts[0].ticket_types[0].checklist.items: a checklist needs at "
        "least one item (checklist: null removes the checklist)"
    ]


def test_a_change_to_a_parent_is_checked_against_stored_dependents(forms: Session) -> None:
    session = forms
    text = "custom_fields:\n  - {name: location, remove: {options: [Poznań]}}\n"
    with pytest.raises(ConfigError) as info:
        apply(session, text)
    assert [str(p) for p in info.value.problems] == [
        "<string>:2: custom_fields[0]: contract ACME's field 'cost_center' depends on this "
        "one: 'Poznań' is not an option of 'location' (Warszawa)",
        "<string>:2: custom_fields[0]: the field 'room' depends on this one: 'Poznań' is not "
        "an option of 'location' (Warszawa)",
    ]
    # Changing the dependents in the same file makes it right.
    fixed = text + "  - {name: room, depends_on: {field: location, options: {Warszawa: [A1]}}}\n"
    fixed += (
        "contracts:\n  - code: ACME\n    custom_fields: [{name: cost_center, depends_on: null}]\n"
    )
    apply(session, fixed)
    assert field(session, "location").options == ["Warszawa"]


# --- the demo -------------------------------------------------------------------------------


def test_the_demo_shows_every_form_key(session: Session) -> None:
    demo = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
    apply_config_text(session, demo.read_text(encoding="utf-8"), source="demo.yaml", now=NOW)
    room = field(session, "room")
    assert room.depends_on == {
        "field": "location",
        "options": {"Warszawa": ["A1", "A2"], "Poznań": ["B1"]},
    }
    cause = field(session, "outage_cause")
    assert cause.type == "textarea"
    assert cause.depends_on == {"field": "location", "when": ["Warszawa"]}
    serial = field(session, "device_serial")
    assert serial.labels.keys() == {"pl", "en"} and isinstance(serial.help, dict)
    assert serial.edit == ["coordinator", "technician"] and serial.visible_to_client is False
    counter = field(session, "page_counter")
    assert counter.type == "number" and (counter.min_value, counter.max_value) == (0, 10000000)
    assert {field(session, n).type for n in ("visit_date", "under_warranty")} == {"date", "bool"}
    network = session.scalar(select(Contract).where(Contract.code == "SZPITAL-SIEC-24"))
    assert network is not None
    assert sorted(network.required_fields.values()) == ["close", "open"]
    [checklist] = [t.checklist for t in network.ticket_types if t.checklist]
    assert len(checklist["items"]) == 3 and checklist["required_to_close"] is True

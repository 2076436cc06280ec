"""The admin console's custom fields screen (issue 13): the instance-wide fields in form order,
creating and editing one through the one write path (labels and help per language, options,
number limits, roles, visibility, order, depends_on with options per parent value or "only
when"), apply's refusals under their fields with the input kept, 403 for non-admins and
``pulpit config export`` showing each change."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from core.configuration.export import export_config
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("admin-fields"))


def admin(instance: SeededApp) -> tuple[Any, str]:
    return console_client(instance.app, instance.users["admin"])


def field_spec(instance: SeededApp, name: str) -> dict[str, Any]:
    with instance.factory() as s:
        doc = yaml.safe_load(export_config(s))
    return next(f for f in doc["custom_fields"] if f["name"] == name)


def test_the_list_is_in_form_order_and_searchable(instance: SeededApp) -> None:
    client, _ = admin(instance)
    page = client.get("/admin/fields")
    assert page.status_code == 200
    names = re.findall(r"<code>(\w+)</code></a>", page.text)
    assert names == ["location", "room", "outage_cause"]  # not ACME-KEY's own fields
    assert "outage_cause" not in client.get("/admin/fields", params={"q": "room"}).text


def test_the_detail_shows_the_dependency(instance: SeededApp) -> None:
    client, _ = admin(instance)
    page = client.get("/admin/fields/room")
    assert page.status_code == 200
    assert '<option value="location" selected>' in page.text
    assert 'name="dopt:location:Warszawa" value="A1, A2"' in page.text
    assert 'name="dopt:location:Poznań" value="B1"' in page.text
    when = client.get("/admin/fields/outage_cause").text
    assert 'value="when" checked' in when
    assert 'name="dwhen:location" value="Warszawa" checked' in when


def test_create_a_field_and_edit_it(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    r = client.post(
        "/admin/fields/new",
        data={
            "csrf_token": csrf,
            "name": "floor",
            "type": "select",
            "label_pl": "Piętro",
            "label_en": "Floor",
            "help_en": "Where the device stands",
            "options": "0\n1\n2\n",
            "edit": ["admin", "coordinator", "technician", "client"],
            "visible_to_client": "1",
            "visible_to_subcontractor": "no",
            "order": "40",
            "dep_field": "location",
            "dep_rule": "when",
            "dwhen:location": "Poznań",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:800]
    assert field_spec(instance, "floor") == {
        "name": "floor",
        "label": {"pl": "Piętro", "en": "Floor"},
        "type": "select",
        "options": ["0", "1", "2"],
        "help": {"en": "Where the device stands"},
        "order": 40,
        "edit": ["admin", "coordinator", "technician", "client"],
        "depends_on": {"field": "location", "when": ["Poznań"]},
        "visible_to_subcontractor": False,
    }
    # Edit: an option taken out (remove:), the dependency and the help dropped, default roles,
    # kept from clients, a number field made of it cannot keep options.
    r = client.post(
        "/admin/fields/floor",
        data={
            "csrf_token": csrf,
            "type": "select",
            "label_en": "Floor",
            "options": "0\n1",
            "edit": ["admin", "coordinator", "technician"],
            "order": "40",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:800]
    spec = field_spec(instance, "floor")
    assert spec["options"] == ["0", "1"] and spec["label"] == {"en": "Floor"}
    assert "help" not in spec and "depends_on" not in spec and "edit" not in spec
    assert spec["visible_to_client"] is False and "visible_to_subcontractor" not in spec
    # A number with limits.
    r = client.post(
        "/admin/fields/floor",
        data={
            "csrf_token": csrf,
            "type": "number",
            "min": "-2",
            "max": "30",
            "order": "40",
            "edit": ["admin"],
            "visible_to_client": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:800]
    spec = field_spec(instance, "floor")
    assert spec["type"] == "number" and spec["min"] == -2 and spec["max"] == 30
    assert "options" not in spec and spec["edit"] == ["admin"]


def test_options_per_parent_value(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    r = client.post(
        "/admin/fields/room",
        data={
            "csrf_token": csrf,
            "type": "select",
            "label_pl": "Pomieszczenie",
            "label_en": "Room",
            "options": "A1\nA2\nB1\nB2",
            "edit": ["admin", "coordinator", "technician"],
            "visible_to_client": "1",
            "order": "20",
            "dep_field": "location",
            "dep_rule": "options",
            "dopt:location:Warszawa": "A1, A2",
            "dopt:location:Poznań": "B1, B2",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:800]
    assert field_spec(instance, "room")["depends_on"] == {
        "field": "location",
        "options": {"Warszawa": ["A1", "A2"], "Poznań": ["B1", "B2"]},
    }


def test_refusals_are_shown_under_their_fields_with_the_input_kept(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    base = {
        "csrf_token": csrf,
        "type": "select",
        "label_en": "Room typed",
        "options": "A1\nA2\nB1\nB2",
        "edit": ["admin", "coordinator", "technician"],
        "visible_to_client": "1",
        "order": "20",
        "dep_field": "location",
        "dep_rule": "options",
    }
    # A choice that is not one of the field's options.
    r = client.post(
        "/admin/fields/room",
        data={**base, "dopt:location:Warszawa": "A1, Z9"},
    )
    assert r.status_code == 400
    assert 'data-path="custom_fields[0].depends_on' in r.text, r.text
    assert 'value="Room typed"' in r.text and 'value="A1, Z9"' in r.text
    # A parent value the parent does not have.
    r = client.post("/admin/fields/room", data={**base, "dopt:location:Kraków": "A1"})
    assert r.status_code == 400 and 'data-path="custom_fields[0].depends_on' in r.text
    # An unknown parent.
    r = client.post("/admin/fields/room", data={**base, "dep_field": "nosuch", "dep_rule": "when"})
    assert r.status_code == 400 and 'data-path="custom_fields[0].depends_on' in r.text
    assert '<option value="nosuch" selected>' in r.text
    # min above max.
    r = client.post(
        "/admin/fields/new",
        data={"csrf_token": csrf, "name": "pages", "type": "number", "min": "10", "max": "1"},
    )
    assert r.status_code == 400 and 'data-path="custom_fields[0].m' in r.text
    assert 'value="pages"' in r.text
    # An existing name for a new field.
    r = client.post("/admin/fields/new", data={"csrf_token": csrf, "name": "room"})
    assert r.status_code == 400 and 'data-path="custom_fields[0].name"' in r.text
    assert field_spec(instance, "room")["depends_on"]["options"]["Warszawa"] == ["A1", "A2"]


@pytest.mark.parametrize("role", ["coordinator", "technician", "client"])
def test_non_admins_get_403(instance: SeededApp, role: str) -> None:
    client, csrf = console_client(instance.app, instance.users[role])
    assert client.get("/admin/fields").status_code == 403
    assert client.get("/admin/fields/room").status_code == 403
    r = client.post("/admin/fields/new", data={"csrf_token": csrf, "name": "sneaky"})
    assert r.status_code == 403
    with instance.factory() as s:
        assert "sneaky" not in export_config(s)


def test_delete_only_a_field_nothing_refers_to(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    r = client.post("/admin/fields/location/delete", data={"csrf_token": csrf})
    assert r.status_code == 409 and "room" in r.text  # followed by room (depends_on)
    client.post("/admin/fields/new", data={"csrf_token": csrf, "name": "scratch"})
    r = client.post(
        "/admin/fields/scratch/delete", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    with instance.factory() as s:
        assert "scratch" not in export_config(s)

"""The contracts admin screen in-process: a new contract and an edit saved as the YAML fragment
of that contract, a bad target refused under its field with what was typed, a change moving
SLA deadlines announced before anything is saved, administrators only, and the export showing
each change (applying it again changes nothing)."""

from __future__ import annotations

import re
from datetime import date
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from core.configuration.apply import apply_config_text
from core.configuration.export import export_config
from core.contracts.models import Contract
from core.db import set_dispatcher
from core.tickets.models import Ticket
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client
from workers.actors import recompute_deadlines


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return normalized(build_seeded_app(tmp_path_factory.mktemp("admin-contracts")))


def normalized(instance: SeededApp) -> SeededApp:
    """The seeded world writes a few custom fields straight into the tables, in a form the
    first apply of the export rewrites (same export text); apply it once, so the round trip
    checked after each screen's change is the screen's alone."""
    with instance.factory() as s:
        apply_config_text(s, export_config(s), source="export")
        s.commit()
    return instance


def admin(instance: SeededApp) -> tuple[Any, str]:
    return console_client(instance.app, instance.users["admin"])


class _FormReader(HTMLParser):
    """What a browser would post for the form with ``data-testid=testid``: every named input,
    ticked boxes only, each select's chosen option (else its first), textareas."""

    def __init__(self, testid: str) -> None:
        super().__init__()
        self.testid, self.inside = testid, False
        self.pairs: list[tuple[str, str]] = []
        self.select: str | None = None
        self.first: str | None = None
        self.chosen = False
        self.textarea: str | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("data-testid") == self.testid
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind == "submit":
                return
            self.pairs.append((a["name"], a.get("value", "")))
        elif tag == "select" and a.get("name"):
            self.select, self.first, self.chosen = a["name"], None, False
        elif tag == "option" and self.select:
            value = a.get("value", "")
            if self.first is None:
                self.first = value
            if "selected" in a:
                self.pairs.append((self.select, value or ""))
                self.chosen = True
        elif tag == "textarea" and a.get("name"):
            self.textarea, self.text = a["name"], ""

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        if tag == "select" and self.select:
            if not self.chosen:
                self.pairs.append((self.select, self.first or ""))
            self.select = None
        if tag == "textarea" and self.textarea:
            self.pairs.append((self.textarea, self.text.strip("\n")))
            self.textarea = None


def form_values(html: str, testid: str) -> dict[str, Any]:
    reader = _FormReader(testid)
    reader.feed(html)
    data: dict[str, Any] = {}
    for name, value in reader.pairs:
        if name in data:
            data[name] = [*(data[name] if isinstance(data[name], list) else [data[name]]), value]
        else:
            data[name] = value
    return data


def problems_on(html: str) -> dict[str, str]:
    found = re.findall(r'data-testid="problem" data-path="([^"]+)">([^<]*)<', html)
    return {path: unescape(text) for path, text in found}


def contract_id(instance: SeededApp, code: str) -> int:
    with instance.factory() as s:
        found = s.scalar(select(Contract.id).where(Contract.code == code))
        assert found is not None
        return found


def exported(instance: SeededApp) -> dict[str, Any]:
    with instance.factory() as s:
        text = export_config(s)
        again = apply_config_text(s, text, source="export")
        assert not again.changed, f"applying the export changed {again}"
        s.rollback()
    return yaml.safe_load(text)  # type: ignore[no-any-return]


def exported_contract(instance: SeededApp, code: str) -> dict[str, Any]:
    return next(c for c in exported(instance)["contracts"] if c["code"] == code)


def test_the_list_searches_code_and_client(instance: SeededApp) -> None:
    client, _ = admin(instance)
    page = client.get("/admin/contracts")
    assert page.status_code == 200
    assert "ACME-KEY" in page.text and "BETA-STD" in page.text
    found = client.get("/admin/contracts", params={"q": "beta"})
    assert "BETA-STD" in found.text and "ACME-KEY" not in found.text
    assert "ACME-KEY" in client.get("/admin/contracts", params={"q": "acme"}).text


def test_only_administrators_open_or_post(instance: SeededApp) -> None:
    for role in ("coordinator", "technician", "client"):
        client, csrf = console_client(instance.app, instance.users[role])
        assert client.get("/admin/contracts").status_code == 403
        assert client.get("/admin/calendars").status_code == 403
        r = client.post(
            "/admin/contracts/new",
            data={"csrf_token": csrf, "code": "X-1", "client": "Beta"},
            follow_redirects=False,
        )
        assert r.status_code == 403
    with instance.factory() as s:
        assert s.scalar(select(Contract).where(Contract.code == "X-1")) is None


def new_contract_form(client: Any, csrf: str, **changes: Any) -> dict[str, Any]:
    data = form_values(client.get("/admin/contracts/new").text, "contract-form")
    data.update(
        {
            "csrf_token": csrf,
            "code": "BETA-NEW",
            "client": "Beta",
            "name": "Beta: nowa umowa",
            "calendar": "always",
            "valid_from": "2026-01-01",
            "tt0.name": "failure",
            "tt0.reaction": "2h",
            "tt0.resolution": "8h",
            "tt0.keywords": "awaria, failure",
            "tt0.checklist": "Sprawdzić zasilanie\nRestart",
            "tt0.required_to_close": "1",
            "default_type": "0",
            "st0.name": "Nowe",
            "st0.category": "new",
            "st_count": "1",
            "cf.name": "asset_tag",
            "cf.label_pl": "Numer inwentarzowy",
            "cf.label_en": "Asset tag",
            "cf.type": "text",
            "req.location": "close",
            "key": "1",
        }
    )
    data.update(changes)
    return data


def test_a_new_contract_is_saved_and_exported(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    # A status list without a closed status is refused as a whole, under the statuses.
    r = client.post("/admin/contracts/new", data=new_contract_form(client, csrf))
    assert r.status_code == 400
    assert problems_on(r.text) == {
        "statuses": "statusy muszą mieć co najmniej jeden w kategorii new i jeden w kategorii"
        " closed (brakuje: closed)"
    }
    assert 'value="BETA-NEW"' in r.text and 'value="Sprawdzić zasilanie' not in r.text
    assert "Sprawdzić zasilanie\nRestart" in r.text  # the checklist typed is kept
    with instance.factory() as s:
        assert s.scalar(select(Contract).where(Contract.code == "BETA-NEW")) is None
    data = new_contract_form(
        client,
        csrf,
        st_count="2",
        **{"st1.name": "Zrobione", "st1.category": "closed", "st1.visible_to_client": "1"},
    )
    r = client.post("/admin/contracts/new", data=data, follow_redirects=False)
    assert r.status_code == 303, problems_on(r.text) or r.text[-2000:]
    assert r.headers["location"] == f"/admin/contracts/{contract_id(instance, 'BETA-NEW')}"
    page = client.get(r.headers["location"])
    assert "Zapisano." in page.text
    out = exported_contract(instance, "BETA-NEW")
    assert out["client"] == "Beta" and out["key"] is True and out["calendar"] == "always"
    assert str(out["valid_from"]) == "2026-01-01"
    [tt] = out["ticket_types"]
    assert (tt["name"], tt["reaction"], tt["resolution"]) == ("failure", "2h", "8h")
    assert tt["subject_keywords"] == ["awaria", "failure"]
    assert tt["checklist"] == {
        "items": ["Sprawdzić zasilanie", "Restart"],
        "required_to_close": True,
    }
    assert [s["name"] for s in out["statuses"]] == ["Nowe", "Zrobione"]
    assert out["required_fields"] == {"location": "close"}
    [field] = out["custom_fields"]
    assert field["name"] == "asset_tag"
    assert field["label"] == {"pl": "Numer inwentarzowy", "en": "Asset tag"}


def test_a_bad_duration_is_refused_under_its_field_with_the_input(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    number = contract_id(instance, "BETA-STD")
    data = form_values(client.get(f"/admin/contracts/{number}").text, "contract-form")
    assert data["tt0.name"] == "request"
    data.update({"csrf_token": csrf, "tt0.resolution": "2x", "name": "Nowa nazwa"})
    r = client.post(f"/admin/contracts/{number}", data=data)
    assert r.status_code == 400
    # In the admin's language, as apply's sentence says it on the command line in English.
    assert problems_on(r.text) == {
        "tt0.resolution": "'2x' nie jest czasem trwania (użyj 30m, 2h, 1d, 1w)"
    }
    assert 'name="tt0.resolution" value="2x"' in r.text
    assert 'value="Nowa nazwa"' in r.text
    client.cookies.set("lang", "en")
    try:
        r = client.post(f"/admin/contracts/{number}", data=data)
    finally:
        client.cookies.delete("lang")
    assert problems_on(r.text) == {"tt0.resolution": "'2x' is not a duration (use 30m, 2h, 1d, 1w)"}
    with instance.factory() as s:
        contract = s.get(Contract, number)
        assert contract is not None and contract.name == "Beta: wsparcie IT"
        assert contract.ticket_types[0].resolution == "8h"


def test_a_change_moving_deadlines_is_announced_before_saving(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    number = contract_id(instance, "ACME-KEY")
    data = form_values(client.get(f"/admin/contracts/{number}").text, "contract-form")
    assert (data["tt0.name"], data["tt0.reaction"]) == ("failure", "30m")
    data.update({"csrf_token": csrf, "tt0.reaction": "1h", "action": "check"})
    r = client.post(f"/admin/contracts/{number}", data=data)
    assert r.status_code == 200
    warning = re.search(r'data-testid="deadlines".*?<strong>([^<]+)</strong>', r.text, re.S)
    assert warning, r.text[-3000:]
    assert re.fullmatch(r"Otwarte zgłoszenia, które dostaną nowe terminy: \d+", warning[1])
    assert 'name="tt0.reaction" value="1h"' in r.text
    with instance.factory() as s:  # nothing saved yet
        contract = s.get(Contract, number)
        assert contract is not None and contract.ticket_types[0].reaction == "30m"
        open_ids = sorted(
            s.scalars(
                select(Ticket.id).where(
                    Ticket.contract_id == number, Ticket.status_category != "closed"
                )
            )
        )
        before = {t.id: t.reaction_due for t in s.scalars(select(Ticket))}
    # Save and recompute posts the form as the warning shows it (with the announced number).
    data = {**form_values(r.text, "contract-form"), "csrf_token": csrf, "action": "confirm"}
    sent: list[tuple[str, dict[str, Any]]] = []
    set_dispatcher(lambda actor, kwargs: sent.append((actor, kwargs)))
    try:
        r = client.post(f"/admin/contracts/{number}", data=data, follow_redirects=False)
    finally:
        set_dispatcher(None)
    assert r.status_code == 303
    assert "Otwarte zgłoszenia z nowymi terminami" in client.get(r.headers["location"]).text
    assert exported_contract(instance, "ACME-KEY")["ticket_types"][0]["reaction"] == "1h"
    # The save only handed the contract's open tickets to the SLA worker, after its commit:
    # their deadlines are still the old ones until the sla.recompute job runs.
    assert [actor for actor, _ in sent] == ["sla.recompute"]
    assert sent[0][1]["ticket_ids"] == open_ids
    with instance.factory() as s:
        assert {t.id: t.reaction_due for t in s.scalars(select(Ticket))} == before
    moved = recompute_deadlines(instance.factory, instance.settings, open_ids)
    assert moved > 0
    with instance.factory() as s:
        after = {t.id: t.reaction_due for t in s.scalars(select(Ticket))}
    assert {i for i in after if after[i] != before[i]} <= set(open_ids)
    # A change that moves no deadline is saved at once.
    data.update({"action": "check", "name": "Acme: drukarki"})
    r = client.post(f"/admin/contracts/{number}", data=data, follow_redirects=False)
    assert r.status_code == 303
    assert exported_contract(instance, "ACME-KEY")["name"] == "Acme: drukarki"


def test_ending_unticking_and_required_fields(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    number = contract_id(instance, "BETA-STD")
    page = client.get(f"/admin/contracts/{number}").text
    # No way to delete the contract itself (it has tickets: it is ended instead).
    assert "Delete the contract" not in page and "usuń umowę" not in page.lower()
    # Its types' rows have their own Delete, in a form of its own: the contract form's
    # default button (Enter in a field) stays Save.
    assert 'form="contract-delete" name="delete" value="ticket_type:' in page
    assert 'id="contract-delete"' in page
    data = form_values(page, "contract-form")
    assert data["products"] == "Router R5" and data["req.location"] == "open"
    # Confirmed at once: saving the contract recomputes its open tickets, whose seeded
    # deadlines need not be the engine's (the warning itself is tested above).
    data.update(
        {"csrf_token": csrf, "valid_to": "2026-06-30", "req.location": "", "action": "confirm"}
    )
    data.pop("products")  # unticked
    r = client.post(f"/admin/contracts/{number}", data=data, follow_redirects=False)
    assert r.status_code == 303, problems_on(r.text) or re.findall(
        r"role=.alert.*?</", r.text, re.S
    )
    out = exported_contract(instance, "BETA-STD")
    assert str(out["valid_to"]) == "2026-06-30"
    assert "products" not in out and "required_fields" not in out
    with instance.factory() as s:
        contract = s.get(Contract, number)
        assert contract is not None and contract.valid_to == date(2026, 6, 30)
    listed = client.get("/admin/contracts", params={"q": "BETA-STD"}).text
    assert "2026-06-30" in listed


def test_a_type_or_status_nothing_uses_is_deleted_and_a_used_one_is_refused(
    instance: SeededApp,
) -> None:
    client, csrf = admin(instance)
    number = contract_id(instance, "BETA-STD")
    page = client.get(f"/admin/contracts/{number}").text
    data = form_values(page, "contract-form")
    # A spare type, used by no ticket, added through the form first.
    spare = {**data, "csrf_token": csrf, "action": "confirm"}
    spare.update({"tt1.name": "spare", "tt1.reaction": "1h", "tt1.resolution": "4h"})
    r = client.post(f"/admin/contracts/{number}", data=spare, follow_redirects=False)
    assert r.status_code == 303, problems_on(r.text)
    assert "spare" in [t["name"] for t in exported_contract(instance, "BETA-STD")["ticket_types"]]
    data = form_values(client.get(f"/admin/contracts/{number}").text, "contract-form")
    used = client.post(
        f"/admin/contracts/{number}/delete",
        data={**data, "csrf_token": csrf, "delete": "ticket_type:request"},
    )
    assert used.status_code == 409
    assert "valid_to" in used.text or "ticket" in used.text
    gone = client.post(
        f"/admin/contracts/{number}/delete",
        data={**data, "csrf_token": csrf, "delete": "ticket_type:spare"},
        follow_redirects=False,
    )
    assert gone.status_code == 303, gone.text[:300]
    names = [t["name"] for t in exported_contract(instance, "BETA-STD")["ticket_types"]]
    assert names == ["request"]
    bad = client.post(
        f"/admin/contracts/{number}/delete", data={"csrf_token": csrf, "delete": "contract:x"}
    )
    assert bad.status_code == 400

"""The contract screen's Work log card in-process: billable default, hourly rate, currency,
client visibility and work type rows saved as the contract's YAML fragment (the export then
says them, and applying it changes nothing), a bad amount or currency refused under its field
with what was typed, and a work type on a work log entry refused deletion (409)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.contracts.models import Contract
from core.directory.models import User
from core.i18n import compiled_catalogue
from core.tickets.models import Ticket
from core.worklog.models import WorkType
from core.worklog.services import Work, log_work
from tests.e2e.conftest import SeededApp, build_seeded_app
from tests.integration.test_admin_contracts import (
    admin,
    contract_id,
    exported_contract,
    form_values,
    normalized,
    problems_on,
)
from web.i18n import LOCALE_DIR


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return normalized(build_seeded_app(tmp_path_factory.mktemp("admin-worklog")))


def polish(text: str) -> str:
    """The Polish catalogue's sentence (the template itself until it is translated)."""
    catalogue = compiled_catalogue(LOCALE_DIR / "pl" / "LC_MESSAGES" / "messages.po", "pl")
    return catalogue.gettext(text)


def page_form(client: Any, csrf: str, number: int) -> dict[str, Any]:
    data = form_values(client.get(f"/admin/contracts/{number}").text, "contract-form")
    return {**data, "csrf_token": csrf}


def test_the_card_saves_the_keys_and_work_types(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    number = contract_id(instance, "BETA-STD")
    data = page_form(client, csrf, number)
    # A stored contract at its defaults: billable, PLN, hidden from the client, no types.
    assert data["worklog_billable"] == "1" and data["currency"] == "PLN"
    assert "worklog_visible_to_client" not in data and data["hourly_rate"] == ""
    assert data["wt_count"] == "1" and data["wt0.name"] == ""
    data.pop("worklog_billable")
    data.update(
        {
            "hourly_rate": "150,5",
            "currency": "eur",
            "worklog_visible_to_client": "1",
            "wt_count": "3",
            "wt0.name": "on_site",
            "wt0.label_pl": "Na miejscu",
            "wt0.label_en": "On site",
            "wt0.rate": "180.00",
            "wt0.billable": "yes",
            "wt1.name": "meeting",
            "wt1.label_pl": "Spotkanie",
            "wt1.billable": "no",
            "wt2.name": "",
        }
    )
    r = client.post(f"/admin/contracts/{number}", data=data, follow_redirects=False)
    assert r.status_code == 303, problems_on(r.text) or r.text[-2000:]
    out = exported_contract(instance, "BETA-STD")
    assert out["worklog_billable"] is False and out["worklog_visible_to_client"] is True
    assert (out["hourly_rate"], out["currency"]) == (150.5, "EUR")
    assert out["work_types"] == [
        {
            "name": "on_site",
            "label": {"pl": "Na miejscu", "en": "On site"},
            "rate": 180.0,
            "billable": True,
        },
        {"name": "meeting", "label": {"pl": "Spotkanie"}, "billable": False},
    ]
    # Shown again as stored; saving the page unchanged changes nothing.
    data = page_form(client, csrf, number)
    assert (data["hourly_rate"], data["currency"], data["wt0.rate"]) == ("150.50", "EUR", "180.00")
    assert (data["wt0.billable"], data["wt1.billable"], data["wt1.rate"]) == ("yes", "no", "")
    assert data["wt0.label_en"] == "On site" and data["wt_count"] == "3"
    r = client.post(f"/admin/contracts/{number}", data=data)
    assert r.status_code == 200 and "Nic się nie zmieniło." in r.text
    # A rate emptied goes back to the contract's; a label emptied goes.
    data.update({"wt0.rate": "", "wt0.label_pl": "", "wt0.label_en": "", "wt0.billable": ""})
    r = client.post(f"/admin/contracts/{number}", data=data, follow_redirects=False)
    assert r.status_code == 303, problems_on(r.text)
    assert exported_contract(instance, "BETA-STD")["work_types"][0] == {"name": "on_site"}


def test_bad_amounts_are_refused_under_their_fields(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    number = contract_id(instance, "BETA-STD")
    data = page_form(client, csrf, number)
    count = int(data["wt_count"])
    new = f"wt{count - 1}"
    data.update(
        {
            "hourly_rate": "12.345",
            "currency": "XX1",
            "name": "Typed name",
            f"{new}.name": "travel",
            f"{new}.rate": "dużo",
        }
    )
    r = client.post(f"/admin/contracts/{number}", data=data)
    assert r.status_code == 400
    english = {
        "hourly_rate": "an amount has at most two decimal places (grosze, cents), not 12.345",
        "currency": "'XX1' is not an ISO 4217 currency code (write three letters, like PLN or EUR)",
        f"{new}.rate": "write an amount like 150 or 150.00, not 'dużo'",
    }
    templates = {
        "hourly_rate": (
            "an amount has at most two decimal places (grosze, cents), not %(value)s",
            {"value": "12.345"},
        ),
        "currency": (
            "%(value)r is not an ISO 4217 currency code (write three letters, like PLN or EUR)",
            {"value": "XX1"},
        ),
        f"{new}.rate": ("write an amount like 150 or 150.00, not %(value)r", {"value": "dużo"}),
    }
    # In the admin's language (Polish here), each under its field, with what was typed kept.
    assert problems_on(r.text) == {k: polish(t) % p for k, (t, p) in templates.items()}
    assert 'name="hourly_rate" value="12.345"' in r.text
    assert f'name="{new}.rate" value="dużo"' in r.text and 'value="Typed name"' in r.text
    client.cookies.set("lang", "en")
    try:
        r = client.post(f"/admin/contracts/{number}", data=data)
    finally:
        client.cookies.delete("lang")
    assert problems_on(r.text) == english
    # The blank spare row comes back once, not twice.
    assert r.text.count('.name" value="" maxlength="100" aria-label="Name of a new work type"') == 1
    # A row with a label but no name is not dropped in silence.
    data = page_form(client, csrf, number)
    data[f"{new}.label_pl"] = "Bez nazwy"
    client.cookies.set("lang", "en")
    try:
        r = client.post(f"/admin/contracts/{number}", data=data)
    finally:
        client.cookies.delete("lang")
    assert r.status_code == 400
    assert problems_on(r.text) == {f"{new}.name": "a work type needs a name"}
    assert 'value="Bez nazwy"' in r.text
    with instance.factory() as s:
        contract = s.get(Contract, number)
        assert contract is not None and contract.currency == "EUR"
        assert contract.name != "Typed name"


def test_a_work_type_on_an_entry_is_refused_deletion(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    number = contract_id(instance, "BETA-STD")
    data = page_form(client, csrf, number)
    new = f"wt{int(data['wt_count']) - 1}"
    data.update({f"{new}.name": "spare"})
    r = client.post(f"/admin/contracts/{number}", data=data, follow_redirects=False)
    assert r.status_code == 303, problems_on(r.text)
    with instance.factory() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.contract_id == number)).first()
        person = s.scalar(select(User).where(User.email == instance.users["admin"]))
        assert ticket is not None and person is not None
        log_work(s, ticket, actor=person, work=Work(minutes=45, work_type="on_site"))
        s.commit()
    page = client.get(f"/admin/contracts/{number}").text
    assert 'value="work_type:on_site"' in page and 'data-testid="delete-work-type"' in page
    used = client.post(
        f"/admin/contracts/{number}/delete",
        data={"csrf_token": csrf, "delete": "work_type:on_site"},
    )
    assert used.status_code == 409
    sentence = polish(
        "work type %(name)s of contract %(code)s is on a work log entry: keep it, the entry is "
        "priced and reported by it"
    ) % {"name": "on_site", "code": "BETA-STD"}
    assert sentence in used.text
    gone = client.post(
        f"/admin/contracts/{number}/delete",
        data={"csrf_token": csrf, "delete": "work_type:spare"},
        follow_redirects=False,
    )
    assert gone.status_code == 303, gone.text[:300]
    with instance.factory() as s:
        names = list(
            s.scalars(
                select(WorkType.name)
                .where(WorkType.contract_id == number)
                .order_by(WorkType.position)
            )
        )
    assert names == ["on_site", "meeting"]

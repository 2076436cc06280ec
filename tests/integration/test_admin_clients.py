"""The admin console's clients and subcontractors screens (issue 13): lists with search,
creating and editing through the one write path (a refusal under its field, the input kept),
403 for non-admins, ``pulpit config export`` showing each change, and the invitation a contact
follows to set a password and see only their own tickets."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from litestar.testing import TestClient
from sqlalchemy import select

from core.configuration.export import export_config
from core.mail.models import OutboundMail
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("admin-clients"))


def admin(instance: SeededApp) -> tuple[Any, str]:
    return console_client(instance.app, instance.users["admin"])


def exported(instance: SeededApp) -> dict[str, Any]:
    with instance.factory() as s:
        return yaml.safe_load(export_config(s))


def client_spec(instance: SeededApp, name: str) -> dict[str, Any]:
    return next(c for c in exported(instance)["clients"] if c["name"] == name)


def test_the_list_searches_by_name_and_domain_and_counts(instance: SeededApp) -> None:
    client, _ = admin(instance)
    page = client.get("/admin/clients")
    assert page.status_code == 200
    assert "Acme" in page.text and "Beta" in page.text and "acme.example" in page.text
    by_domain = client.get("/admin/clients", params={"q": "beta.exa"})
    assert "Beta" in by_domain.text and ">Acme<" not in by_domain.text
    row = re.search(r'<tr data-testid="client-row">.*?Acme.*?</tr>', page.text, re.S)
    assert row and re.findall(r"<td>(\d+)</td>", row.group(0)) == ["1", "3"]


def test_create_a_client_with_a_domain_and_a_contact(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    r = client.post(
        "/admin/clients/new",
        data={
            "csrf_token": csrf,
            "name": "Gamma",
            "language": "en",
            "domains": "gamma.example\n",
            "contacts": "0",
            "c0_email": "Gosia@gamma.example",
            "c0_name": "Gosia Gamma",
            "c0_language": "pl",
            "c0_manager": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    assert r.headers["location"] == "/admin/clients/Gamma"
    spec = client_spec(instance, "Gamma")
    assert spec["language"] == "en" and spec["domains"] == ["gamma.example"]
    assert spec["contacts"] == [
        {"email": "gosia@gamma.example", "name": "Gosia Gamma", "manager": True}
    ]
    page = client.get("/admin/clients/Gamma")
    assert "gosia@gamma.example" in page.text and 'data-testid="history"' in page.text


def test_edit_domains_contacts_and_portal_access(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    client.post(
        "/admin/clients/new",
        data={"csrf_token": csrf, "name": "Delta", "domains": "delta.example\nd2.example"},
    )
    r = client.post(
        "/admin/clients/Delta",
        data={
            "csrf_token": csrf,
            "language": "pl",
            "domains": "d2.example\nd3.example",
            "contacts": "0",
            "c0_email": "jan@delta.example",
            "c0_name": "Jan",
            "c0_language": "en",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    spec = client_spec(instance, "Delta")
    assert spec["domains"] == ["d2.example", "d3.example"]  # delta.example removed
    assert spec["contacts"] == [{"email": "jan@delta.example", "name": "Jan", "language": "en"}]
    # The contact's portal access taken away (the checkbox left unticked), the name changed.
    r = client.post(
        "/admin/clients/Delta",
        data={
            "csrf_token": csrf,
            "domains": "d2.example\nd3.example",
            "contacts": "1",
            "c0_email": "jan@delta.example",
            "c0_name": "Jan Kowalski",
            "c0_language": "en",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    assert client_spec(instance, "Delta")["contacts"] == [
        {"email": "jan@delta.example", "name": "Jan Kowalski", "language": "en", "active": False}
    ]


def test_a_refusal_is_shown_under_its_field_with_the_input_kept(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    # Not a mail domain: the sentence under the domains, the input kept.
    r = client.post(
        "/admin/clients/Beta",
        data={
            "csrf_token": csrf,
            "domains": "beta.example\nnot a domain",
            "contacts": "1",
            "c0_email": "ewa@beta.example",
            "c0_name": "Ewa Z. typed",
            "c0_active": "1",
        },
    )
    assert r.status_code == 400
    assert 'data-path="clients[0].domains' in r.text, r.text
    assert "not a domain</textarea>" in r.text and 'value="Ewa Z. typed"' in r.text
    assert client_spec(instance, "Beta")["domains"] == ["beta.example"]
    # A new contact's bad address: under the contact's row.
    r = client.post(
        "/admin/clients/Beta",
        data={"csrf_token": csrf, "domains": "beta.example", "contacts": "0", "c0_email": "nope"},
    )
    assert r.status_code == 400
    assert 'data-path="row0.email"' in r.text or 'data-path="row0"' in r.text, r.text
    assert 'value="nope"' in r.text
    # A new client without a name.
    r = client.post("/admin/clients/new", data={"csrf_token": csrf, "domains": "x.example"})
    assert r.status_code == 400 and 'data-path="clients[0].name"' in r.text


@pytest.mark.parametrize("role", ["coordinator", "technician", "client", "subcontractor"])
def test_non_admins_get_403(instance: SeededApp, role: str) -> None:
    client, csrf = console_client(instance.app, instance.users[role])
    assert client.get("/admin/clients").status_code == 403
    assert client.get("/admin/clients/Acme").status_code == 403
    r = client.post("/admin/clients/Acme", data={"csrf_token": csrf, "domains": "x.example"})
    assert r.status_code == 403
    assert client_spec(instance, "Acme")["domains"] == ["acme.example"]


def test_an_invited_contact_sets_a_password_and_sees_only_their_tickets(
    instance: SeededApp,
) -> None:
    client, csrf = admin(instance)
    # A new contact of Acme, without a password: no portal login yet.
    r = client.post(
        "/admin/clients/Acme",
        data={
            "csrf_token": csrf,
            "domains": "acme.example",
            "contacts": "0",
            "c0_email": "zofia@acme.example",
            "c0_name": "Zofia",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    page = client.get("/admin/clients/Acme")
    assert "no password yet" in page.text or "brak hasła" in page.text
    r = client.post(
        "/admin/clients/Acme/invite",
        data={"csrf_token": csrf, "email": "zofia@acme.example"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with instance.factory() as s:
        mail = s.scalars(
            select(OutboundMail).where(
                OutboundMail.to_addr == "zofia@acme.example",
                OutboundMail.template == "invitation",
            )
        ).one()
        link = mail.context["url"]
    path = "/password/reset/" + link.rsplit("/password/reset/", 1)[1]
    visitor: Any = TestClient(instance.app)
    assert visitor.get(path).status_code == 200
    r = visitor.post(
        path,
        data={"password": "zofia-new-pass", "repeat": "zofia-new-pass"},
        headers={"origin": "http://testserver.local"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    zofia, zofia_csrf = console_client(instance.app, "zofia@acme.example", "zofia-new-pass")
    r = zofia.post(
        "/tickets/new",
        files=[
            ("csrf_token", (None, zofia_csrf)),
            ("subject", (None, "Toner")),
            ("body", (None, "Pusty.")),
            ("contract", (None, "ACME-KEY")),
        ],
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]
    own = r.headers["location"].rsplit("/", 1)[-1]
    listed = set(re.findall(r'href="/tickets/(\d+)"', zofia.get("/tickets?state=all").text))
    assert listed == {own}
    everything = re.findall(r'href="/tickets/(\d+)"', client.get("/tickets?state=all").text)
    others = [n for n in everything if n != own]
    assert others and all(zofia.get(f"/tickets/{n}").status_code == 404 for n in others)
    # Not a contact of this client: refused with the sentence.
    r = client.post(
        "/admin/clients/Beta/invite", data={"csrf_token": csrf, "email": "zofia@acme.example"}
    )
    assert r.status_code == 400


# --- Subcontractors ----------------------------------------------------------------------------


def sub_spec(instance: SeededApp, name: str) -> dict[str, Any]:
    return next(c for c in exported(instance)["subcontractors"] if c["name"] == name)


def test_subcontractors_list_create_and_edit_the_contracts_served(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    page = client.get("/admin/subcontractors")
    assert page.status_code == 200 and "FixIt" in page.text and "ACME-KEY" in page.text
    assert "FixIt" not in client.get("/admin/subcontractors", params={"q": "zzz"}).text
    detail = client.get("/admin/subcontractors/FixIt")
    assert 'href="/admin/users/filip%40fixit.example"' in detail.text
    assert 'type="checkbox" name="contracts" value="ACME-KEY" checked' in detail.text
    r = client.post(
        "/admin/subcontractors/new",
        data={"csrf_token": csrf, "name": "SerwisPlus", "contracts": ["BETA-STD"]},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    assert sub_spec(instance, "SerwisPlus")["contracts"] == ["BETA-STD"]
    # Untick BETA-STD, tick ACME-KEY: the one taken out goes through remove:.
    r = client.post(
        "/admin/subcontractors/SerwisPlus",
        data={"csrf_token": csrf, "contracts": "ACME-KEY"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    assert sub_spec(instance, "SerwisPlus")["contracts"] == ["ACME-KEY"]
    r = client.post(
        "/admin/subcontractors/SerwisPlus", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    assert sub_spec(instance, "SerwisPlus").get("contracts", []) == []


def test_a_subcontractor_refusal_keeps_the_input(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    r = client.post(
        "/admin/subcontractors/FixIt",
        data={"csrf_token": csrf, "contracts": ["ACME-KEY", "NO-SUCH"]},
    )
    assert r.status_code == 400
    assert 'data-path="subcontractors[0].contracts' in r.text, r.text
    r = client.post(
        "/admin/subcontractors/new",
        data={"csrf_token": csrf, "name": "FixIt", "contracts": "BETA-STD"},
    )
    assert r.status_code == 400 and 'data-path="subcontractors[0].name"' in r.text
    assert 'value="BETA-STD" checked' in r.text
    assert sub_spec(instance, "FixIt")["contracts"] == ["ACME-KEY"]


@pytest.mark.parametrize("role", ["coordinator", "technician", "subcontractor"])
def test_non_admins_get_403_on_subcontractors(instance: SeededApp, role: str) -> None:
    client, csrf = console_client(instance.app, instance.users[role])
    assert client.get("/admin/subcontractors").status_code == 403
    r = client.post("/admin/subcontractors/FixIt", data={"csrf_token": csrf})
    assert r.status_code == 403
    assert sub_spec(instance, "FixIt")["contracts"] == ["ACME-KEY"]


def test_delete_only_what_nothing_refers_to(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    r = client.post("/admin/clients/Acme/delete", data={"csrf_token": csrf})
    assert r.status_code == 409 and "ACME-KEY" in r.text  # its contract named
    assert 'value="Acme"' in r.text  # the page as stored
    client.post("/admin/clients/new", data={"csrf_token": csrf, "name": "Omega"})
    r = client.post(
        "/admin/clients/Omega/delete", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/clients"
    assert all(c["name"] != "Omega" for c in exported(instance)["clients"])
    r = client.post("/admin/subcontractors/FixIt/delete", data={"csrf_token": csrf})
    assert r.status_code == 409 and "filip@fixit.example" in r.text
    client.post("/admin/subcontractors/new", data={"csrf_token": csrf, "name": "Gone"})
    r = client.post(
        "/admin/subcontractors/Gone/delete", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    assert all(s["name"] != "Gone" for s in exported(instance)["subcontractors"])

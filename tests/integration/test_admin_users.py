"""The Users screen of the admin console (issue 13): staff users listed and searched, added,
edited, deactivated (never deleted), two-step reset and a password-reset link mailed; every
save is the ``users:`` entry it equals, so ``pulpit config export`` shows it."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from core.access.accounts import get_user_by_email
from core.audit import AuditEntry
from core.configuration.export import export_config
from core.directory.models import User
from core.mail.models import OutboundMail
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client, in_english


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("admin-users"))


def login(instance: SeededApp, role: str = "admin") -> tuple[Any, str]:
    return console_client(instance.app, instance.users[role])


def user_id(instance: SeededApp, email: str) -> int:
    with instance.factory() as s:
        user = get_user_by_email(s, email)
        assert user is not None
        return user.id


def exported_user(instance: SeededApp, email: str) -> dict[str, Any]:
    with instance.factory() as s:
        doc = yaml.safe_load(export_config(s))
    return next(u for u in doc["users"] if u["email"] == email)


def test_the_list_shows_staff_and_subcontractor_users_and_searches(instance: SeededApp) -> None:
    client, _ = login(instance)
    page = in_english(client, "/admin/users")
    assert page.status_code == 200
    assert instance.users["technician"] in page.text
    assert instance.users["subcontractor"] in page.text
    assert instance.users["client"] not in page.text  # contacts live with their client
    found = in_english(client, "/admin/users", params={"q": "kasia"})
    assert instance.users["technician2"] in found.text
    assert instance.users["technician"] + "<" not in found.text
    by_mail = client.get("/admin/users", params={"q": "fixit"})
    assert instance.users["subcontractor"] in by_mail.text
    assert instance.users["admin"] not in by_mail.text.split('data-testid="users"')[1]


def test_an_admin_adds_a_technician(instance: SeededApp) -> None:
    client, csrf = login(instance)
    assert client.get("/admin/users/new").status_code == 200
    form = {
        "csrf_token": csrf,
        "email": "nowy@support.example",
        "name": "Nowy Technik",
        "role": "technician",
        "language": "en",
    }
    r = client.post("/admin/users/new", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert re.fullmatch(r"/admin/users/\d+", r.headers["location"])
    with instance.factory() as s:
        user = get_user_by_email(s, "nowy@support.example")
        assert user is not None
        assert (user.role, user.name, user.language, user.active) == (
            "technician",
            "Nowy Technik",
            "en",
            True,
        )
    assert exported_user(instance, "nowy@support.example") == {
        "email": "nowy@support.example",
        "role": "technician",
        "name": "Nowy Technik",
        "language": "en",
    }
    again = client.post("/admin/users/new", data=form)
    assert again.status_code == 400
    assert 'value="Nowy Technik"' in again.text  # what was typed stays


def test_a_refused_role_is_shown_under_its_field_with_the_input_kept(instance: SeededApp) -> None:
    client, csrf = login(instance)
    form = {
        "csrf_token": csrf,
        "email": "zly@support.example",
        "name": "Zła Rola",
        "role": "wizard",
        "language": "pl",
    }
    r = client.post("/admin/users/new", data=form)
    assert r.status_code >= 400
    assert 'value="zly@support.example"' in r.text
    assert 'data-path="users[0].role"' in r.text or 'data-testid="problems"' in r.text
    with instance.factory() as s:
        assert get_user_by_email(s, "zly@support.example") is None


def test_a_role_change_and_a_deactivation_are_saved_and_exported(instance: SeededApp) -> None:
    client, csrf = login(instance)
    email = instance.users["technician2"]
    uid = user_id(instance, email)
    page = client.get(f"/admin/users/{uid}")
    assert page.status_code == 200
    assert "Usuń" not in page.text and "/delete" not in page.text  # nobody is deleted
    form = {
        "csrf_token": csrf,
        "name": "Kasia Serwis",
        "role": "coordinator",
        "language": "pl",
        "active": "1",
    }
    r = client.post(f"/admin/users/{uid}", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert exported_user(instance, email)["role"] == "coordinator"
    history = client.get(f"/admin/users/{uid}").text.split('data-testid="history"')[1]
    assert "<code>role</code>: technician → coordinator" in history
    r = client.post(
        f"/admin/users/{uid}/active",
        data={"csrf_token": csrf, "active": "0"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with instance.factory() as s:
        user = get_user_by_email(s, email)
        assert user is not None and user.active is False
    assert exported_user(instance, email)["active"] is False
    shown = in_english(client, f"/admin/users/{uid}")
    assert "Inactive account" in shown.text
    assert 'data-testid="user-activate"' in shown.text
    # Back, with the role it had.
    form.update(role="technician")
    client.post(f"/admin/users/{uid}", data=form)
    with instance.factory() as s:
        user = get_user_by_email(s, email)
        assert user is not None and (user.active, user.role) == (True, "technician")
    assert "active" not in exported_user(instance, email)


def test_an_admin_cannot_deactivate_themselves(instance: SeededApp) -> None:
    client, csrf = login(instance)
    uid = user_id(instance, instance.users["admin"])
    r = client.post(f"/admin/users/{uid}/active", data={"csrf_token": csrf, "active": "0"})
    assert r.status_code == 400
    with instance.factory() as s:
        assert s.get(User, uid).active is True  # type: ignore[union-attr]


def test_reset_two_step_removes_the_factor_and_is_audited(instance: SeededApp) -> None:
    email = instance.users["coordinator"]
    with instance.factory() as s:
        user = get_user_by_email(s, email)
        assert user is not None
        user.totp_secret = "JBSWY3DPEHPK3PXP"
        s.commit()
    client, csrf = login(instance)
    uid = user_id(instance, email)
    listed = in_english(client, "/admin/users", params={"q": email})
    assert re.search(r'data-testid="user-two-step">on<', listed.text)
    page = client.get(f"/admin/users/{uid}")
    assert 'data-testid="user-reset-two-step"' in page.text
    r = client.post(
        f"/admin/users/{uid}/reset-two-step", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    with instance.factory() as s:
        user = get_user_by_email(s, email)
        assert user is not None and user.totp_secret is None
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "totp.reset"))
        assert entry is not None
        assert (entry.actor, entry.data["user"]) == (instance.users["admin"], email)


def test_a_password_reset_link_is_mailed_and_audited(instance: SeededApp) -> None:
    client, csrf = login(instance)
    email = instance.users["technician"]
    uid = user_id(instance, email)
    r = client.post(
        f"/admin/users/{uid}/reset-link", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    with instance.factory() as s:
        mail = s.scalar(
            select(OutboundMail).where(
                OutboundMail.template == "password_reset", OutboundMail.to_addr == email
            )
        )
        assert mail is not None
        assert "/password/reset/" in mail.context["url"]
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "password.reset.link"))
        assert entry is not None and entry.data["user"] == email
    shown = in_english(client, f"/admin/users/{uid}")
    events = shown.text.split('data-testid="account-events"')[1]
    assert "password-reset link mailed" in events
    # The link works.
    token = mail.context["url"].rsplit("/", 1)[-1]
    assert client.get(f"/password/reset/{token}").status_code == 200


@pytest.mark.parametrize("role", ["coordinator", "technician", "subcontractor", "client"])
def test_only_administrators_open_the_screen(instance: SeededApp, role: str) -> None:
    client, csrf = login(instance, role)
    assert client.get("/admin/users").status_code == 403
    uid = user_id(instance, instance.users["technician"])
    assert client.get(f"/admin/users/{uid}").status_code == 403
    r = client.post(f"/admin/users/{uid}/active", data={"csrf_token": csrf, "active": "0"})
    assert r.status_code == 403
    with instance.factory() as s:
        assert s.get(User, uid).active is True  # type: ignore[union-attr]


# --- The Roles screen ---------------------------------------------------------------------------


def test_a_custom_role_is_added_edited_in_the_matrix_and_given_to_a_user(
    instance: SeededApp,
) -> None:
    client, csrf = login(instance)
    page = in_english(client, "/admin/roles")
    assert page.status_code == 200
    assert 'data-testid="action-assign"' in page.text
    form = {
        "csrf_token": csrf,
        "name": "senior-technician",
        "base": "technician",
        "label_pl": "Starszy technik",
        "label_en": "Senior technician",
    }
    r = client.post("/admin/roles/new", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    with instance.factory() as s:
        doc = yaml.safe_load(export_config(s))
    role = next(x for x in doc["roles"] if x["name"] == "senior-technician")
    assert role["base"] == "technician"
    assert not role.get("grant") and not role.get("deny")
    # The column: the technician's defaults ticked; tick assign and reports, untick cc.
    page = in_english(client, "/admin/roles")
    assert re.search(r'value="comment" form="role-form-senior-technician" checked', page.text)
    assert not re.search(r'value="assign" form="role-form-senior-technician" checked', page.text)
    allow = ["comment", "note", "status", "take", "work_log", "fields", "assign", "reports"]
    r = client.post(
        "/admin/roles/senior-technician",
        data={"csrf_token": csrf, "allow": allow},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with instance.factory() as s:
        doc = yaml.safe_load(export_config(s))
    role = next(x for x in doc["roles"] if x["name"] == "senior-technician")
    assert sorted(role["grant"]) == ["assign", "reports"]
    assert role["deny"] == ["cc"]
    page = client.get("/admin/roles")
    assert re.search(r'value="assign" form="role-form-senior-technician" checked', page.text)
    # Given to a technician on the Users screen.
    email = instance.users["technician"]
    uid = user_id(instance, email)
    r = client.post(
        f"/admin/users/{uid}",
        data={
            "csrf_token": csrf,
            "name": "Tomasz Technik",
            "role": "senior-technician",
            "language": "pl",
            "active": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert exported_user(instance, email)["role"] == "senior-technician"
    listed = in_english(client, "/admin/users", params={"q": email})
    assert "Senior technician" in listed.text
    shown = client.get(f"/admin/users/{uid}")
    assert '<option value="senior-technician" selected>' in shown.text


def test_a_role_named_like_a_built_in_one_is_refused(instance: SeededApp) -> None:
    client, csrf = login(instance)
    form = {"csrf_token": csrf, "name": "technician", "base": "technician"}
    r = client.post("/admin/roles/new", data=form)
    assert r.status_code == 400
    assert 'value="technician"' in r.text


@pytest.mark.parametrize("role", ["coordinator", "technician"])
def test_only_administrators_open_the_roles_screen(instance: SeededApp, role: str) -> None:
    client, csrf = login(instance, role)
    assert client.get("/admin/roles").status_code == 403
    r = client.post("/admin/roles/new", data={"csrf_token": csrf, "name": "x", "base": "admin"})
    assert r.status_code == 403


def test_a_roles_page_relabels_it_and_deletes_it_only_when_nobody_holds_it(
    instance: SeededApp,
) -> None:
    client, csrf = login(instance)
    form = {"csrf_token": csrf, "name": "reporter", "base": "coordinator", "label_en": "Reporter"}
    assert client.post("/admin/roles/new", data=form, follow_redirects=False).status_code == 303
    page = in_english(client, "/admin/roles/reporter")
    assert page.status_code == 200
    assert "Nobody holds this role." in page.text
    # Ticks from the role's own page: assign taken away from the coordinator's defaults.
    allow = ["comment", "note", "status", "take", "bulk_status", "hand_over", "work_log"]
    allow += ["fields", "cc", "reports"]
    r = client.post(
        "/admin/roles/reporter",
        data={"csrf_token": csrf, "allow": allow, "back": "role"},
        follow_redirects=False,
    )
    assert r.headers["location"].startswith("/admin/roles/reporter")
    page = in_english(client, "/admin/roles/reporter")
    assert 'data-testid="differs-assign"' in page.text
    r = client.post(
        "/admin/roles/reporter/label",
        data={"csrf_token": csrf, "label_pl": "Raportujący", "label_en": "Reporter"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with instance.factory() as s:
        doc = yaml.safe_load(export_config(s))
    role = next(x for x in doc["roles"] if x["name"] == "reporter")
    assert role["deny"] == ["assign"]
    assert role["label"] == {"pl": "Raportujący", "en": "Reporter"}
    # A new base from the same form: the denial stays.
    r = client.post(
        "/admin/roles/reporter/label",
        data={"csrf_token": csrf, "label_en": "Reporter", "base": "admin"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with instance.factory() as s:
        doc = yaml.safe_load(export_config(s))
    role = next(x for x in doc["roles"] if x["name"] == "reporter")
    assert (role["base"], role["deny"]) == ("admin", ["assign"])
    # A held role is not deleted.
    held = client.post("/admin/roles/senior-technician/delete", data={"csrf_token": csrf})
    assert held.status_code == 409
    assert "tech@support.example" in held.text
    r = client.post(
        "/admin/roles/reporter/delete", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 303
    with instance.factory() as s:
        doc = yaml.safe_load(export_config(s))
    assert [x["name"] for x in doc["roles"]] == ["senior-technician"]


# --- Controls shown only when allowed -----------------------------------------------------------


def test_controls_follow_a_custom_roles_grants_and_denies(instance: SeededApp) -> None:
    admin, csrf = login(instance)
    roles = [
        {"name": "dispatcher", "base": "coordinator"},
        {"name": "mail-clerk", "base": "technician"},
    ]
    for role in roles:
        r = admin.post("/admin/roles/new", data={"csrf_token": csrf, **role})
        assert r.status_code in (200, 303)
    coordinator_defaults = ["comment", "note", "status", "assign", "bulk_status", "work_log"]
    coordinator_defaults += ["fields", "cc", "reports"]  # hand_over taken away
    admin.post("/admin/roles/dispatcher", data={"csrf_token": csrf, "allow": coordinator_defaults})
    clerk = ["comment", "note", "status", "work_log", "fields", "cc", "bulk_status", "outbox"]
    admin.post("/admin/roles/mail-clerk", data={"csrf_token": csrf, "allow": clerk})
    names = {"coordinator": "Ola Koordynator", "technician2": "Kasia Serwis"}
    given = {"coordinator": "dispatcher", "technician2": "mail-clerk"}
    for key, role in given.items():
        uid = user_id(instance, instance.users[key])
        form = {"csrf_token": csrf, "name": names[key], "role": role, "language": "pl"}
        form["active"] = "1"
        assert admin.post(f"/admin/users/{uid}", data=form).status_code == 200
    number = instance.numbers["key_subcontractor"]  # technician2's, handed to FixIt

    coordinator, _ = login(instance, "coordinator")
    page = coordinator.get(f"/tickets/{number}").text
    assert 'data-testid="assign-form"' in page
    assert 'data-testid="handoff-form"' not in page

    technician, _ = login(instance, "technician2")
    page = technician.get(f"/tickets/{number}").text
    assert 'data-testid="assign-form"' not in page
    listing = technician.get("/tickets").text
    assert "data-check-all" in listing  # the bulk bar: granted bulk_status
    assert 'href="/outbox"' in listing and 'href="/people"' not in listing
    assert technician.get("/outbox").status_code == 200

    plain, _ = login(instance, "technician")
    listing = plain.get("/tickets").text
    assert "data-check-all" not in listing and 'href="/outbox"' not in listing
    # Back to the built-in roles.
    for key, role in (("coordinator", "coordinator"), ("technician2", "technician")):
        uid = user_id(instance, instance.users[key])
        form = {"csrf_token": csrf, "name": names[key], "role": role, "language": "pl"}
        form["active"] = "1"
        admin.post(f"/admin/users/{uid}", data=form)
        assert exported_user(instance, instance.users[key])["role"] == role


def test_the_top_bar_names_a_custom_role_by_its_label(instance: SeededApp) -> None:
    client, _ = login(instance, "technician")  # senior-technician since the roles test
    page = in_english(client, "/tickets")
    whoami = page.text.split('data-testid="whoami"')[1].split("</span>\n    </span>")[0]
    assert "Senior technician" in whoami
    # The error page's user is a plain snapshot without the labels: the role's name.
    refused = in_english(client, "/admin/users")
    assert refused.status_code == 403
    assert "senior-technician" in refused.text.split('data-testid="whoami"')[1]

"""The admin console's mailboxes screen (issue 13): the list, creating and editing a mailbox
through the one write path (a refusal under its field, the input kept), the password only ever
named as an environment variable, "Test connection" against a real Dovecot and a closed port
(a sentence, never a 500), 403 for non-admins and ``pulpit config export`` showing each
change."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import yaml

from core.configuration.export import export_config
from tests.dovecot import Dovecot, dovecot_fixture  # noqa: F401
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client

ENV = "PULPIT_TEST_ADMIN_IMAP_PASSWORD"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    return build_seeded_app(tmp_path_factory.mktemp("admin-mailboxes"))


def admin(instance: SeededApp) -> tuple[Any, str]:
    return console_client(instance.app, instance.users["admin"])


def mailboxes(instance: SeededApp) -> dict[str, Any]:
    """Every mailbox of the export: the general ones and those listed under contracts."""
    with instance.factory() as s:
        doc = yaml.safe_load(export_config(s))
    out = {m["address"]: m for m in doc.get("mailboxes", [])}
    for contract in doc["contracts"]:
        for address in contract.get("mailboxes", []):
            out.setdefault(address, {"address": address})["contract"] = contract["code"]
    return out


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_list_shows_contract_or_general_and_imap(instance: SeededApp) -> None:
    client, _ = admin(instance)
    page = client.get("/admin/mailboxes")
    assert page.status_code == 200
    assert "acme@support.example" in page.text and "support@support.example" in page.text
    assert 'href="/admin/contracts/ACME-KEY"' in page.text
    only = client.get("/admin/mailboxes", params={"q": "beta"})
    assert "beta@support.example" in only.text and "acme@support.example" not in only.text


def test_create_and_edit_a_mailbox_with_imap(
    instance: SeededApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, csrf = admin(instance)
    r = client.post(
        "/admin/mailboxes/new",
        data={"csrf_token": csrf, "address": "Serwis@support.example", "contract": "BETA-STD"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    assert mailboxes(instance)["serwis@support.example"].get("contract") == "BETA-STD"
    page = client.get("/admin/mailboxes/serwis@support.example")
    assert 'type="password"' not in page.text
    r = client.post(
        "/admin/mailboxes/serwis@support.example",
        data={
            "csrf_token": csrf,
            "contract": "",
            "use_imap": "1",
            "host": "imap.example",
            "port": "143",
            "user": "serwis",
            "password_env": ENV,
            "folder": "INBOX",
            "processed_folder": "Done",
            "poll_seconds": "30",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    box = mailboxes(instance)["serwis@support.example"]
    assert "contract" not in box  # general now
    assert box["imap"] == {
        "host": "imap.example",
        "port": 143,
        "tls": False,
        "user": "serwis",
        "password_env": ENV,
        "folder": "INBOX",
        "processed_folder": "Done",
        "poll_seconds": 30,
    }
    monkeypatch.delenv(ENV, raising=False)
    page = client.get("/admin/mailboxes/serwis@support.example")
    assert f'value="{ENV}"' in page.text and "Nieustawiona na tym serwerze" in page.text
    monkeypatch.setenv(ENV, "x")
    page = client.get("/admin/mailboxes/serwis@support.example")
    assert "Ustawiona na tym serwerze" in page.text and "Nieustawiona" not in page.text
    # IMAP switched off: the block goes (imap: null).
    r = client.post(
        "/admin/mailboxes/serwis@support.example",
        data={"csrf_token": csrf, "contract": "ACME-KEY"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    box = mailboxes(instance)["serwis@support.example"]
    assert box.get("contract") == "ACME-KEY" and "imap" not in box


def test_a_refusal_is_shown_under_its_field_with_the_input_kept(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    r = client.post(
        "/admin/mailboxes/support@support.example",
        data={
            "csrf_token": csrf,
            "use_imap": "1",
            "host": "imap.example",
            "port": "not a port",
            "user": "typed-user",
        },
    )
    assert r.status_code == 400
    assert 'data-path="mailboxes[0].imap.port"' in r.text, r.text
    assert 'value="typed-user"' in r.text and 'value="not a port"' in r.text
    assert "imap" not in mailboxes(instance)["support@support.example"]
    r = client.post(
        "/admin/mailboxes/new",
        data={"csrf_token": csrf, "address": "x@support.example", "contract": "NO-SUCH"},
    )
    assert r.status_code == 400 and 'data-path="mailboxes[0].contract"' in r.text
    assert 'value="x@support.example"' in r.text


def test_test_connection_logs_in_to_dovecot_and_counts(
    instance: SeededApp, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, csrf = admin(instance)
    dovecot.append(b"Subject: one\r\n\r\nx\r\n")
    dovecot.append(b"Subject: two\r\n\r\ny\r\n")
    form = {
        "csrf_token": csrf,
        "use_imap": "1",
        "host": dovecot.host,
        "port": str(dovecot.port),
        "user": dovecot.user,
        "password_env": ENV,
        "folder": "INBOX",
    }
    monkeypatch.setenv(ENV, dovecot.password)
    r = client.post("/admin/mailboxes/support@support.example/test", data=form)
    assert r.status_code == 200
    assert 'data-ok="yes"' in r.text and "Wiadomości w folderze INBOX: 2" in r.text, r.text
    assert f'value="{dovecot.port}"' in r.text  # the form kept, nothing saved
    assert "imap" not in mailboxes(instance)["support@support.example"]
    # A wrong password: the server's refusal in words.
    monkeypatch.setenv(ENV, "wrong")
    r = client.post("/admin/mailboxes/support@support.example/test", data=form)
    assert r.status_code == 200 and 'data-ok="no"' in r.text
    assert "odrzucił logowanie" in r.text
    # A folder that is not there.
    monkeypatch.setenv(ENV, dovecot.password)
    r = client.post("/admin/mailboxes/test", data={**form, "folder": "Nope"})
    assert r.status_code == 200 and 'data-ok="no"' in r.text


def test_test_connection_to_a_closed_port_says_so(
    instance: SeededApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, csrf = admin(instance)
    monkeypatch.setenv(ENV, "secret")
    form = {
        "csrf_token": csrf,
        "use_imap": "1",
        "host": "127.0.0.1",
        "port": str(closed_port()),
        "password_env": ENV,
    }
    r = client.post("/admin/mailboxes/support@support.example/test", data=form)
    assert r.status_code == 200 and 'data-ok="no"' in r.text
    assert "odrzuca połączenia: na tym porcie nic nie nasłuchuje" in r.text
    r = client.post(
        "/admin/mailboxes/support@support.example/test",
        data={**form, "host": "no-such-host.invalid"},
    )
    assert r.status_code == 200 and "Nieznany serwer no-such-host.invalid" in r.text
    monkeypatch.delenv(ENV)
    r = client.post("/admin/mailboxes/support@support.example/test", data=form)
    assert r.status_code == 200 and f"Zmienna {ENV} nie jest ustawiona" in r.text


@pytest.mark.parametrize("role", ["coordinator", "technician", "client"])
def test_non_admins_get_403(instance: SeededApp, role: str) -> None:
    client, csrf = console_client(instance.app, instance.users[role])
    assert client.get("/admin/mailboxes").status_code == 403
    r = client.post(
        "/admin/mailboxes/support@support.example/test",
        data={"csrf_token": csrf, "host": "127.0.0.1", "port": "1"},
    )
    assert r.status_code == 403
    r = client.post(
        "/admin/mailboxes/support@support.example",
        data={"csrf_token": csrf, "contract": "ACME-KEY"},
    )
    assert r.status_code == 403
    assert "contract" not in mailboxes(instance)["support@support.example"]


def test_delete_a_mailbox(instance: SeededApp) -> None:
    client, csrf = admin(instance)
    client.post(
        "/admin/mailboxes/new", data={"csrf_token": csrf, "address": "gone@support.example"}
    )
    assert "gone@support.example" in mailboxes(instance)
    r = client.post(
        "/admin/mailboxes/gone@support.example/delete",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/mailboxes"
    assert "gone@support.example" not in mailboxes(instance)

"""Personal data (issue 11, GDPR / RODO): export, erasure and retention (core.privacy), on
SQLite and PostgreSQL.

The erasure test is the issue's definition of done: a contact mails us with an attachment and
copies someone, gets staff replies and notifications, logs in, has a token; after the erasure
no text column of any table and no file of the blob store holds their address, their local
part or their name.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings, load_settings
from core.access.accounts import create_api_token, get_user_by_email
from core.access.models import ApiToken, WebSession
from core.audit import AuditEntry
from core.blobs import BlobStore
from core.contracts.models import CustomField
from core.db import unit_of_work
from core.directory.models import User
from core.errors import Conflict
from core.mail.models import InboundMessage, OutboundMail
from core.notify import notifications
from core.orm import Base
from core.privacy.erase import erase_person
from core.privacy.export import build_export
from core.privacy.retention import run_retention
from core.privacy.scrub import Terms, scrub
from core.tickets.models import Attachment, Ticket, TicketEvent
from core.tickets.services import add_comment, assign, change_status, log_work
from mailgw.process import process_inbound
from tests.e2e.conftest import SeededApp, build_seeded_app, console_client
from tests.factories import World
from tests.mail_builders import (  # noqa: F401
    DOMAIN,
    NOW,
    blobs_fixture,
    build,
    deliver,
    ticket_of,
    world_fixture,
)
from workers.scheduler import default_tasks

ADDRESS = "zofia.kwiatkowska@acme.example"
LOCAL = "zofia.kwiatkowska"
NAME = "Zofia Kwiatkowska"
ATTACHMENT = b"%PDF-1.4 faktura dla Zofia Kwiatkowska, zofia.kwiatkowska@acme.example\n"


def mail_with_attachment(frm: str, body: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = frm, "acme@support.example"
    msg["Subject"] = headers.pop("subject", "Drukarka w pokoju 12 nie drukuje")
    msg["Message-ID"] = make_msgid(domain="client.example")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    msg.add_attachment(ATTACHMENT, maintype="application", subtype="pdf", filename="faktura.pdf")
    return msg.as_bytes()


@pytest.fixture
def desk(session: Session, world: World) -> World:
    session.info["notify"] = notifications.NotifyConfig(DOMAIN, "https://desk.example")
    return world


def zofia_history(session: Session, world: World, blobs: BlobStore) -> tuple[User, Ticket]:
    """Zofia's mail with an attachment, a staff reply, her reply, a mail of Anna copying her,
    a login and a token."""
    row = deliver(
        session,
        blobs,
        mail_with_attachment(
            f"{NAME} <{ADDRESS}>",
            f"Dzień dobry, drukarka HP nie drukuje.\n\n--\n{NAME}\n{ADDRESS}\ntel. 600 100 200",
        ),
        envelope_from=ADDRESS,
        envelope_to=["acme@support.example"],
    )
    ticket = ticket_of(session, row)
    zofia = ticket.requester
    assert zofia.email == ADDRESS
    coordinator = world.users["coordinator"]
    add_comment(
        session,
        ticket,
        author=coordinator,
        body=f"Pani Zofio ({LOCAL}), technik przyjedzie jutro.",
        at=NOW + timedelta(minutes=5),
    )
    add_comment(
        session, ticket, author=coordinator, body="Klientka: Zofia Kwiatkowska.", public=False
    )
    assign(
        session, ticket, actor=coordinator, assignee=world.users["technician"], subcontractor=None
    )
    log_work(session, ticket, actor=world.users["technician"], minutes=30, note="dojazd")
    reply = build(
        frm=f"{NAME} <{ADDRESS}>",
        subject=f"Re: {ticket.subject} [#{ticket.number}]",
        body="Dziękuję, będę w biurze.",
        to="acme@support.example",
    )
    deliver(session, blobs, reply, envelope_from=ADDRESS, now=NOW + timedelta(minutes=10))
    # Anna writes about a new problem and copies Zofia: her raw mail names Zofia.
    other = deliver(
        session,
        blobs,
        build(
            frm="Anna <anna@acme.example>",
            subject="Skaner na 2 piętrze",
            body=f"Proszę o kontakt ze mną albo z {NAME}.",
            to="acme@support.example",
            Cc=f"{NAME} <{ADDRESS}>",
        ),
        envelope_to=["acme@support.example"],
        now=NOW + timedelta(minutes=20),
    )
    assert other.state == "processed"
    session.add(AuditEntry(actor=ADDRESS, action="login.ok", data={"ip": "192.0.2.7"}))
    session.add(
        WebSession(
            session_hash="h" * 64,
            user_id=zofia.id,
            csrf_token="c" * 64,
            expires_at=NOW + timedelta(hours=12),
            user_agent="Firefox",
        )
    )
    create_api_token(session, zofia, actor="cli")
    # Rows other parts keep about logins, found by name so this test follows the schema:
    # a throttle keyed by her address, her chosen second factor.
    tables = Base.metadata.tables
    if "login_throttles" in tables:
        session.execute(
            tables["login_throttles"].insert().values(key=f"account:{ADDRESS}", failures=2)
        )
    if "user_two_step" in tables:
        session.execute(
            tables["user_two_step"]
            .insert()
            .values(user_id=zofia.id, method="email", updated_at=NOW)
        )
    session.flush()
    assert session.scalars(select(OutboundMail).where(OutboundMail.to_addr.contains(ADDRESS))).all()
    return zofia, ticket


def traces_in_database(session: Session) -> list[str]:
    session.expire_all()
    needles = [ADDRESS, LOCAL, NAME.lower(), "kwiatkowska"]
    found = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)).all():
            for column, value in row._mapping.items():
                if value is None:
                    continue
                text = (
                    json.dumps(value, ensure_ascii=False, default=str)
                    if isinstance(value, dict | list)
                    else str(value)
                ).lower()
                for needle in needles:
                    if needle.lower() in text:
                        found.append(f"{table.name}.{column}: {text[:120]}")
    return found


def traces_in_blobs(blobs: BlobStore) -> list[str]:
    found = []
    for path in blobs.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            if LOCAL.encode() in data or b"kwiatkowska" in data:
                found.append(str(path))
    return found


def test_an_erasure_leaves_no_trace_of_the_address_in_the_database_or_the_blob_store(
    session: Session, desk: World, blobs: BlobStore
) -> None:
    zofia, ticket = zofia_history(session, desk, blobs)
    number, person_id = ticket.number, zofia.id
    anna_files = set(session.scalars(select(Attachment.sha256)))
    assert traces_in_database(session) and traces_in_blobs(blobs)  # the test sees them

    result = erase_person(session, zofia, blobs=blobs, actor="admin@support.example")
    session.flush()

    assert traces_in_database(session) == []
    assert traces_in_blobs(blobs) == []

    # The placeholder keeps the history together.
    person = session.get(User, person_id)
    assert person is not None
    assert (person.email, person.name) == (
        f"erased-{person_id}@pulpit.invalid",
        f"Osoba usunięta #{person_id}",
    )
    assert not person.active and person.password_hash is None and person.totp_secret is None
    assert session.scalars(select(WebSession).where(WebSession.user_id == person_id)).all() == []
    assert session.scalars(select(ApiToken).where(ApiToken.user_id == person_id)).all() == []
    two_step = Base.metadata.tables.get("user_two_step")
    if two_step is not None:
        assert session.execute(select(two_step).where(two_step.c.user_id == person_id)).all() == []
    kept = session.scalar(select(Ticket).where(Ticket.number == number))
    assert kept is not None and kept.requester_id == person_id
    first = kept.events[0]
    assert "drukarka HP nie drukuje" in (first.body_text or "")  # what she wrote stays
    assert f"erased-{person_id}@pulpit.invalid" in json.dumps(first.data)  # signature, from
    assert first.attachments == []  # her attachment went, with its file
    assert not any(
        blobs.path(sha).exists()
        for sha in anna_files - set(session.scalars(select(Attachment.sha256)))
    )
    # Pending mail to her is not sent to the placeholder.
    pending = session.scalars(
        select(OutboundMail).where(OutboundMail.to_addr == result.placeholder)
    ).all()
    assert pending and all(m.state in ("failed", "sent") for m in pending)
    # Audited with counts, never with the address.
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "person.erase"))
    assert entry is not None and entry.actor == "admin@support.example"
    assert entry.data["counts"]["raw_mails_deleted"] == 2
    assert entry.data["counts"]["raw_mails_rewritten"] == 1
    assert ADDRESS not in json.dumps(entry.data)


def test_erased_raw_mail_is_ignored_when_requeued_and_anna_mail_still_processes(
    session: Session, desk: World, blobs: BlobStore
) -> None:
    zofia, _ = zofia_history(session, desk, blobs)
    first = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).first()
    assert first is not None
    erase_person(session, zofia, blobs=blobs, actor="cli")
    # `pulpit mail requeue` puts a message back to received; processing must not crash.
    first.state, first.reason = "received", None
    session.flush()
    row = process_inbound(session, first.id, blobs=blobs, mail_domain=DOMAIN, now=NOW)
    assert row.state == "ignored" and "erased" in (row.reason or "")


def test_an_erasure_refuses_placeholders_and_oneself(
    session: Session, desk: World, blobs: BlobStore
) -> None:
    admin = desk.users["admin"]
    with pytest.raises(Conflict, match="your own account"):
        erase_person(session, admin, blobs=blobs, actor=admin.email)
    tech = desk.users["technician"]
    erase_person(session, tech, blobs=blobs, actor=admin.email)
    with pytest.raises(Conflict, match="placeholder"):
        erase_person(session, tech, blobs=blobs, actor=admin.email)


def test_a_staff_member_is_erased_and_their_events_keep_the_placeholder(
    session: Session, desk: World, blobs: BlobStore
) -> None:
    zofia, ticket = zofia_history(session, desk, blobs)
    coordinator = desk.users["coordinator"]
    coordinator.name = "Olga Koordynatorka"
    session.flush()
    erase_person(session, coordinator, blobs=blobs, actor="cli")
    comments = [e for e in ticket.events if e.type == "comment"]
    assert comments and all(e.author_id == coordinator.id for e in comments)
    assert coordinator.email == f"erased-{coordinator.id}@pulpit.invalid"
    assert get_user_by_email(session, "coord@support.example") is None


def read_zip(data: bytes) -> dict[str, Any]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {
        name: json.loads(archive.read(name)) if name.endswith(".json") else archive.read(name)
        for name in archive.namelist()
    }


def test_the_export_holds_what_the_portal_shows_her_mails_and_files(
    session: Session, desk: World, blobs: BlobStore
) -> None:
    zofia, ticket = zofia_history(session, desk, blobs)
    session.add(
        CustomField(contract_id=None, name="internal_cost", label="Cost", visible_to_client=False)
    )
    session.add(CustomField(contract_id=None, name="room", label="Room"))
    ticket.custom_fields = {"internal_cost": 120, "room": "12"}
    change_status(session, ticket, "Internal review", actor=desk.users["coordinator"])
    session.flush()

    files = read_zip(build_export(session, zofia, blobs=blobs, actor="admin@support.example"))
    person = files["person.json"]
    assert person["format"] == "pulpit-person-export/1"
    assert person["person"]["email"] == ADDRESS and person["person"]["name"] == NAME
    [mine] = [t for t in files["tickets.json"] if t["number"] == ticket.number]
    assert mine["relation"] == "requester"
    assert mine["custom_fields"] == {"room": "12"}  # not the internal cost
    bodies = [e["body_text"] or "" for e in mine["events"]]
    assert not any("Klientka:" in b for b in bodies)  # the internal note is not hers
    assert any("technik przyjedzie" in b for b in bodies)
    assert "Internal review" not in json.dumps(mine)  # a hidden status by its category
    assert len(files["mails_in.json"]) == 2
    for mail in files["mails_in.json"]:
        assert ADDRESS.encode() in files[mail["file"]]
    attachment_files = [n for n in files if n.startswith("files/attachments/")]
    assert attachment_files and files[attachment_files[0]] == ATTACHMENT
    assert files["mails_out.json"] and all(ADDRESS in m["to"] for m in files["mails_out.json"])
    assert [e["action"] for e in files["logins.json"]["audit"]] == ["login.ok"]
    assert files["logins.json"]["sessions"][0]["user_agent"] == "Firefox"
    assert {"events.json", "worklogs.json", "audit.json", "substitutions.json"} <= set(files)
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "person.export"))
    assert entry is not None and entry.actor == "admin@support.example"


def test_a_technician_export_lists_their_work(
    session: Session, desk: World, blobs: BlobStore
) -> None:
    zofia_history(session, desk, blobs)
    tech = desk.users["technician"]
    files = read_zip(build_export(session, tech, blobs=blobs, actor="cli"))
    assert [w["minutes"] for w in files["worklogs.json"]] == [30]
    assert files["worklogs.json"][0]["note"] == "dojazd"
    assert files["tickets.json"] == []


def test_retention_anonymises_old_closed_tickets_only_once(
    session: Session, desk: World, blobs: BlobStore
) -> None:
    zofia, ticket = zofia_history(session, desk, blobs)
    change_status(session, ticket, "Resolved", actor=desk.users["coordinator"], at=NOW)
    session.flush()
    recent = session.scalars(select(Ticket).where(Ticket.id != ticket.id)).one()
    later = NOW + timedelta(days=31)

    assert run_retention(session, blobs=blobs, now=later, days=0).tickets == []
    assert run_retention(session, blobs=blobs, now=NOW + timedelta(days=29), days=30).tickets == []
    dry = run_retention(session, blobs=blobs, now=later, days=30, dry_run=True)
    assert dry.tickets == [ticket.number]
    assert LOCAL in json.dumps(ticket.events[0].data)  # a dry run changes nothing

    done = run_retention(session, blobs=blobs, now=later, days=30)
    assert done.tickets == [ticket.number] and done.raw_mails_deleted == 2
    session.expire_all()
    events = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)).all()
    dumped = json.dumps(
        [[e.body_text, e.body_html, e.data] for e in events], ensure_ascii=False
    ).lower()
    assert LOCAL not in dumped and "kwiatkowska" not in dumped
    assert f"person-{zofia.id}@pulpit.invalid" in dumped
    # The person and her other ticket are untouched.
    assert session.get(User, zofia.id).email == ADDRESS  # type: ignore[union-attr]
    assert recent.status_category != "closed"
    assert run_retention(session, blobs=blobs, now=later, days=30).tickets == []


# --- The API and the scheduler (an app over a seeded SQLite file) ----------------------------


@pytest.fixture
def seeded(tmp_path: Path) -> SeededApp:
    return build_seeded_app(tmp_path)


def api_as(seeded: SeededApp, role: str) -> Any:
    with unit_of_work(seeded.factory) as session:
        user = get_user_by_email(session, seeded.users[role])
        assert user is not None
        token = create_api_token(session, user)
    client: Any = TestClient(seeded.app)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_the_api_exports_and_erases_for_admins_only(seeded: SeededApp) -> None:
    anna = seeded.users["client"]
    coordinator = api_as(seeded, "coordinator")
    assert coordinator.get(f"/api/v1/people/{anna}/export").status_code == 403
    assert coordinator.post(f"/api/v1/people/{anna}/erase").status_code == 403
    assert coordinator.get("/api/v1/people/ghost@example.com/export").status_code == 403

    admin = api_as(seeded, "admin")
    missing = admin.get("/api/v1/people/ghost@example.com/export")
    assert missing.status_code == 404 and "ghost@example.com" in missing.json()["detail"]
    r = admin.get(f"/api/v1/people/{anna}/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert 'filename="pulpit-person-' in r.headers["content-disposition"]
    files = read_zip(r.content)
    assert files["person.json"]["person"]["email"] == anna
    numbers = {t["number"] for t in files["tickets.json"]}
    assert seeded.numbers["key_new"] in numbers and seeded.numbers["client_web"] in numbers

    erased = admin.post(f"/api/v1/people/{anna}/erase")
    assert erased.status_code == 200 and erased.json()["placeholder"].startswith("erased-")
    assert admin.get(f"/api/v1/people/{anna}/export").status_code == 404
    with seeded.factory() as session:
        actions = [e.action for e in session.scalars(select(AuditEntry))]
        assert "person.export" in actions and "person.erase" in actions


def test_the_scheduler_runs_retention_only_when_set(tmp_path: Path) -> None:
    names = [t.name for t in default_tasks(Settings(data_dir=tmp_path))]
    assert "privacy.retention" not in names
    tasks = default_tasks(Settings(data_dir=tmp_path, retention_days=365))
    assert "privacy.retention" in [t.name for t in tasks]
    assert load_settings({"PULPIT_RETENTION_DAYS": "90"}, config_file=None).retention_days == 90


# --- The console's people and audit pages ----------------------------------------------------


def test_the_people_pages_search_export_and_erase_after_typing_the_address(
    seeded: SeededApp,
) -> None:
    admin, csrf = console_client(seeded.app, seeded.users["admin"])
    listing = admin.get("/people", params={"q": "acme"})
    assert listing.status_code == 200
    assert seeded.users["client2"] in listing.text and seeded.users["beta"] not in listing.text
    with seeded.factory() as session:
        piotr = get_user_by_email(session, seeded.users["client2"])
        assert piotr is not None
        piotr_id = piotr.id
    page = admin.get(f"/people/{piotr_id}")
    assert page.status_code == 200 and f"/people/{piotr_id}/export" in page.text
    assert f"#{seeded.numbers['closed']}" in page.text

    zipped = admin.get(f"/people/{piotr_id}/export")
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    assert read_zip(zipped.content)["person.json"]["person"]["email"] == seeded.users["client2"]

    confirm = admin.get(f"/people/{piotr_id}/erase")
    assert confirm.status_code == 200 and 'name="confirm"' in confirm.text
    wrong = admin.post(f"/people/{piotr_id}/erase", data={"csrf_token": csrf, "confirm": "piotr"})
    assert wrong.status_code == 400 and 'data-testid="form-error"' in wrong.text
    with seeded.factory() as session:
        assert get_user_by_email(session, seeded.users["client2"]) is not None  # nothing done
    done = admin.post(
        f"/people/{piotr_id}/erase",
        data={"csrf_token": csrf, "confirm": seeded.users["client2"].upper()},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"/people/{piotr_id}"
    after = admin.get(f"/people/{piotr_id}")
    assert f"erased-{piotr_id}@pulpit.invalid" in after.text
    assert f"/people/{piotr_id}/erase" not in after.text

    audit = admin.get("/audit", params={"action": "person.erase"})
    assert audit.status_code == 200 and "<code>person.erase</code>" in audit.text
    assert seeded.users["admin"] in audit.text and "<code>person.export</code>" not in audit.text
    by_actor = admin.get("/audit", params={"actor": "nobody-at-all", "since": "2000-01-01"})
    assert by_actor.status_code == 200 and "<code>person.erase</code>" not in by_actor.text


def test_the_people_and_audit_pages_are_for_admins_only(seeded: SeededApp) -> None:
    coordinator, _ = console_client(seeded.app, seeded.users["coordinator"])
    for path in ("/people", "/people/1", "/people/1/export", "/audit"):
        assert coordinator.get(path).status_code == 403, path
    assert 'href="/people"' not in coordinator.get("/tickets").text
    admin, _ = console_client(seeded.app, seeded.users["admin"])
    tickets = admin.get("/tickets").text
    assert 'href="/people"' in tickets and 'href="/audit"' in tickets
    assert admin.get("/people/999999").status_code == 404


# --- What counts as a mention (core.privacy.scrub) --------------------------------------------


def test_strong_identifiers_go_everywhere_weak_ones_only_where_the_text_is_about_them() -> None:
    zofia = Terms(ADDRESS, NAME, "erased-9@pulpit.invalid", "Osoba usunięta #9")
    assert zofia.text(f"Od: {NAME} <{ADDRESS.upper()}>", weak=False) == (
        "Od: Osoba usunięta #9 <erased-9@pulpit.invalid>"
    )
    # Someone else's address with the same local part is not hers.
    assert zofia.text("zofia.kwiatkowska@beta.example") == "zofia.kwiatkowska@beta.example"
    assert zofia.text("Pozdrawiam, zofia.kwiatkowska.", weak=False) == (
        "Pozdrawiam, zofia.kwiatkowska."
    )
    assert zofia.text("Pozdrawiam, zofia.kwiatkowska.") == "Pozdrawiam, erased-9."
    admin = Terms("admin@support.example", "Adam", "erased-1@pulpit.invalid", "Osoba usunięta #1")
    # A plain local part alone is a word ("role": "admin"); a one-word name is weak.
    assert scrub({"role": "admin", "by": "admin@support.example"}, [admin]) == {
        "role": "admin",
        "by": "erased-1@pulpit.invalid",
    }
    assert admin.text("Adam pisze: zapytaj admin o hasło") == (
        "Osoba usunięta #1 pisze: zapytaj erased-1 o hasło"
    )
    assert admin.text("Adam pisze", weak=False) == "Adam pisze"
    assert admin.needles() == ["admin@support.example"]
    assert set(admin.needles(weak=True)) == {"admin@support.example", "adam", "admin"}


def test_an_erased_requester_shows_their_placeholder_name_not_unknown_sender(
    seeded: SeededApp,
) -> None:
    """Erased and unknown senders are both stand-ins, but the ticket page names the erased
    person by their placeholder; "Unknown sender" is only for a From that could not be read."""
    anna = seeded.users["client"]
    assert api_as(seeded, "admin").post(f"/api/v1/people/{anna}/erase").status_code == 200
    coordinator, _ = console_client(seeded.app, seeded.users["coordinator"])
    page = coordinator.get(f"/tickets/{seeded.numbers['key_new']}").text
    assert "Osoba usunięta #" in page
    assert 'data-testid="unknown-sender"' not in page

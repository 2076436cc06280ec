"""End-to-end fixtures: a real Pulpit served by uvicorn on a free port, over a seeded world.

``live_server`` (one per test module, so each module starts from the same known state) creates
a fresh SQLite database in a temporary data dir, migrates it with Alembic, seeds a small world
through the core services, builds the app with ``web.app.create_app`` and serves it with
uvicorn in a background thread. Tests reach it only over HTTP (a browser, an HTTP client), as a
user would; the seeded ticket numbers and logins are on the returned :class:`LiveServer`.

The world (24/7 calendars, so nothing depends on the hour the suite runs at):

==================  =============================================================================
contract            tickets (name in ``LiveServer.numbers``)
==================  =============================================================================
ACME-KEY (key)      key_new, key_assigned (timeline: mail, assignment, status, comment with a file,
                    internal note), key_subcontractor (handed to FixIt), client_web (opened in the
                    portal by Anna), closed (resolved)
BETA-STD            overdue (opened 10 h ago, 1 h / 8 h targets), beta_open, beta_waiting (paused)
none (triage)       triage (mail from an unknown sender)
==================  =============================================================================

Custom fields: ACME-KEY's ``serial_number`` and ``resolution_code`` (required on close, kept from
clients); everywhere ``location`` (select), ``room`` (its options depend on the location) and
``outage_cause`` (only for Warszawa, kept from clients). BETA-STD requires ``location`` on
open; ACME-KEY's ``inspection`` type has a three-item checklist that closing waits for.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.access.accounts import upsert_user
from core.blobs import BlobStore, DirectoryBlobStore
from core.clock import utcnow
from core.contracts.models import Contract, CustomField, Status, TicketType
from core.db import make_engine, make_session_factory, upgrade
from core.directory.models import Client, ClientDomain, Product, Subcontractor, User
from core.mail.models import Mailbox
from core.sla.models import Calendar
from core.tickets import services as svc
from core.tickets.models import Ticket
from core.tickets.timeline import NewAttachment

PASSWORD = "pulpit-test-pass"

# role key -> (e-mail, role, name, extra upsert_user arguments)
USERS: dict[str, tuple[str, str, str, dict[str, object]]] = {
    "admin": ("admin@support.example", "admin", "Adam Administrator", {}),
    "coordinator": ("coord@support.example", "coordinator", "Ola Koordynator", {}),
    "technician": ("tech@support.example", "technician", "Tomasz Technik", {}),
    "technician2": ("tech2@support.example", "technician", "Kasia Serwis", {}),
    "subcontractor": (
        "filip@fixit.example",
        "subcontractor",
        "Filip Podwykonawca",
        {"subcontractor": "FixIt"},
    ),
    "client": ("anna@acme.example", "client", "Anna Nowak", {"client": "Acme"}),
    "client2": ("piotr@acme.example", "client", "Piotr Wiśniewski", {"client": "Acme"}),
    "manager": (
        "barbara@acme.example",
        "client",
        "Barbara Kierownik",
        {"client": "Acme", "manager": True},
    ),
    "beta": ("ewa@beta.example", "client", "Ewa Zielińska", {"client": "Beta"}),
}


@dataclass
class World:
    """What the seed created: users by role key, ticket numbers by name."""

    users: dict[str, User] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)


def _statuses(*, extra: bool) -> list[Status]:
    specs: list[dict[str, object]] = [
        {"name": "New", "category": "new"},
        {"name": "In progress", "category": "open"},
    ]
    if extra:  # only the key contract escalates and waits for parts (internally)
        specs.append({"name": "Escalated", "category": "open", "visible_to_client": False})
    specs.append({"name": "Waiting for client", "category": "paused"})
    if extra:
        specs.append(
            {"name": "Waiting for parts", "category": "paused", "visible_to_client": False}
        )
    specs.append({"name": "Resolved", "category": "closed", "client_can_set": True})
    return [Status(position=i, **spec) for i, spec in enumerate(specs)]  # type: ignore[arg-type]


# Tickets that arrive by mail, oldest first:
# (name, minutes ago, requester (role key or e-mail), contract, subject, body, extras)
MAILS: tuple[tuple[str, int, str, str | None, str, str, dict[str, object]], ...] = (
    ("overdue", 600, "beta", "BETA-STD", "Brak dostępu do VPN",
     "Od rana nikt w biurze nie może połączyć się z VPN.", {"assignee": "technician2"}),
    ("closed", 360, "client2", "ACME-KEY", "Wymiana tonera w drukarce", "Toner się skończył.",
     {"custom_fields": {"resolution_code": "replaced"}}),
    ("beta_waiting", 120, "beta", "BETA-STD", "Konfiguracja nowego laptopa",
     "Prosimy o przygotowanie laptopa dla nowej osoby.", {}),
    ("key_subcontractor", 40, "client", "ACME-KEY", "Przegląd okresowy drukarek, 2 piętro",
     "Prosimy o przegląd drukarek na drugim piętrze.", {"product": True}),
    ("triage", 30, "jan@unknown.example", None, "Pytanie o ofertę serwisową",
     "Dzień dobry, czy obsługują Państwo drukarki w Gdańsku?", {}),
    ("key_assigned", 25, "client2", "ACME-KEY", "Serwer plików nie odpowiada",
     "Od 9:00 udział \\\\fs01\\dzial niedostępny.", {}),
    ("beta_open", 15, "beta", "BETA-STD", "Prośba o nowe konto e-mail",
     "Prosimy o konto dla p. Nowickiej.", {}),
    ("key_new", 5, "client", "ACME-KEY", "Awaria drukarki w księgowości",
     "Drukarka X200 pokazuje błąd E05 i nie drukuje.", {"product": True}),
)  # fmt: skip


def seed_world(session: Session, blobs: BlobStore, now: datetime | None = None) -> World:
    """Build the world described in the module docstring. Does not commit."""
    now = now or utcnow()
    always = Calendar(name="always", timezone="Europe/Warsaw", hours="24/7")
    acme = Client(name="Acme", domains=[ClientDomain(domain="acme.example")])
    beta = Client(name="Beta", domains=[ClientDomain(domain="beta.example")])
    printer, router = Product(name="Printer X200"), Product(name="Router R5")
    key = Contract(
        code="ACME-KEY",
        name="Acme: utrzymanie drukarek 24/7",
        client=acme,
        key=True,
        calendar=always,
        products=[printer, router],
        ticket_types=[
            TicketType(
                name="failure",
                default=True,
                reaction="30m",
                resolution="4h",
                subject_keywords=["awaria", "failure"],
            ),
            TicketType(
                name="inspection", reaction="2h", resolution="2d", subject_keywords=["przegląd"]
            ),
        ],
        statuses=_statuses(extra=True),
    )
    std = Contract(
        code="BETA-STD",
        name="Beta: wsparcie IT",
        client=beta,
        key=False,
        calendar=always,
        products=[router],
        ticket_types=[TicketType(name="request", default=True, reaction="1h", resolution="8h")],
        statuses=_statuses(extra=False),
    )
    fixit = Subcontractor(name="FixIt", contracts=[key])
    session.add_all(
        [
            always,
            acme,
            beta,
            printer,
            router,
            key,
            std,
            fixit,
            Mailbox(address="acme@support.example", contract=key),
            Mailbox(address="beta@support.example", contract=std),
            Mailbox(address="support@support.example"),
        ]
    )
    session.flush()
    session.add_all(
        [
            CustomField(contract_id=key.id, name="serial_number", label="Serial number"),
            CustomField(
                contract_id=key.id,
                name="resolution_code",
                label="Resolution code",
                type="select",
                options=["fixed", "replaced", "no fault"],
                required=True,
                visible_to_client=False,
            ),
            # Forms (issue 12): a dependent pair, a field that exists only for one value;
            # Beta's contract asks for the location on open, Acme's inspections have a
            # checklist that closing waits for.
            CustomField(
                name="location",
                labels={"pl": "Lokalizacja", "en": "Location"},
                type="select",
                options=["Warszawa", "Poznań"],
                position=10,
            ),
            CustomField(
                name="room",
                labels={"pl": "Pomieszczenie", "en": "Room"},
                type="select",
                options=["A1", "A2", "B1"],
                depends_on={
                    "field": "location",
                    "options": {"Warszawa": ["A1", "A2"], "Poznań": ["B1"]},
                },
                help={"pl": "Najpierw wybierz lokalizację", "en": "Choose the location first"},
                position=20,
            ),
            CustomField(
                name="outage_cause",
                labels={"pl": "Przyczyna awarii", "en": "Outage cause"},
                type="textarea",
                depends_on={"field": "location", "when": ["Warszawa"]},
                visible_to_client=False,
                position=30,
            ),
        ]
    )
    std.required_fields = {"location": "open"}
    key.ticket_types[1].checklist = {
        "items": ["Sprawdzić toner", "Wyczyścić rolki", "Wydruk testowy"],
        "required_to_close": True,
    }
    world = World()
    for role_key, (email, role, name, extra) in USERS.items():
        world.users[role_key] = upsert_user(
            session,
            email=email,
            role=role,
            name=name,
            password=PASSWORD,
            **extra,  # type: ignore[arg-type]
        )
    u = world.users
    contracts = {"ACME-KEY": key, "BETA-STD": std, None: None}
    for name, minutes, requester, code, subject, body, extra in MAILS:
        ticket = svc.open_ticket(
            session,
            svc.NewTicket(
                subject=subject,
                requester=u[requester] if requester in u else _contact(session, requester),
                contract=contracts[code],
                body=body,
                source="email",
                at=now - timedelta(minutes=minutes),
                message_id=f"<{name}@mail.example>",
                ref=f"e2e-{name}",
                assignee=u.get(str(extra.get("assignee"))),
                product=printer if extra.get("product") else None,
                custom_fields=extra.get("custom_fields"),
            ),
        )
        world.numbers[name] = ticket.number

    def ticket(name: str) -> Ticket:
        return svc.get_ticket(session, world.numbers[name])

    def ago(minutes: int) -> datetime:
        return now - timedelta(minutes=minutes)

    coordinator = u["coordinator"]
    svc.change_status(session, ticket("closed"), "In progress", actor=coordinator, at=ago(350))
    svc.change_status(session, ticket("closed"), "Resolved", actor=coordinator, at=ago(300))
    svc.change_status(
        session, ticket("beta_waiting"), "Waiting for client", actor=coordinator, at=ago(110)
    )
    svc.assign(
        session,
        ticket("key_subcontractor"),
        actor=coordinator,
        assignee=u["technician2"],
        subcontractor=fixit,
        at=ago(38),
    )
    busy = ticket("key_assigned")
    tech = u["technician"]
    svc.assign(session, busy, actor=coordinator, assignee=tech, subcontractor=None, at=ago(24))
    svc.change_status(session, busy, "In progress", actor=tech, at=ago(20))
    svc.add_comment(
        session,
        busy,
        author=tech,
        at=ago(18),
        body="Sprawdzamy serwer, proszę o log z komunikatem błędu.",
        attachments=[NewAttachment("instrukcja.txt", "text/plain", b"Krok 1...\n")],
        blobs=blobs,
    )
    svc.add_comment(
        session,
        busy,
        author=coordinator,
        public=False,
        at=ago(15),
        body="Klient kluczowy: jeśli do 12:00 nie działa, eskalować do producenta.",
    )
    svc.log_work(session, busy, actor=tech, minutes=25, note="Diagnoza zdalna", at=ago(12))
    web = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Skaner nie wysyła na e-mail",
            requester=u["client"],
            contract=key,
            body="Po zmianie hasła skaner przestał wysyłać skany.",
            source="web",
            at=ago(3),
            ref="e2e-client_web",
        ),
    )
    world.numbers["client_web"] = web.number
    session.flush()
    return world


def _contact(session: Session, email: str) -> User:
    from core.directory.services import find_or_create_contact

    return find_or_create_contact(session, email)


@dataclass
class SeededApp:
    """An app over a freshly migrated and seeded SQLite file, for in-process test clients."""

    app: Any
    settings: Settings
    factory: sessionmaker[Session]
    numbers: dict[str, int]
    users: dict[str, str]  # role key -> e-mail; every password is PASSWORD


def build_seeded_app(data_dir: Path) -> SeededApp:
    """Migrate a new SQLite database in ``data_dir``, seed the world and build the app on it."""
    from web.app import create_app

    url = f"sqlite:///{data_dir / 'pulpit.db'}"
    upgrade(url)
    settings = Settings(data_dir=data_dir, database_url=url, secret_key="test-secret-key")
    factory = make_session_factory(make_engine(url))
    with factory() as session:
        world = seed_world(session, DirectoryBlobStore(settings.blob_dir))
        session.commit()
        users = {k: u.email for k, u in world.users.items()}
    app = create_app(settings, session_factory=factory)
    return SeededApp(app, settings, factory, dict(world.numbers), users)


def in_english(client: Any, url: str, **kwargs: Any) -> Any:
    """A page in English (the lang cookie for this one request)."""
    client.cookies.set("lang", "en")
    try:
        return client.get(url, **kwargs)
    finally:
        client.cookies.delete("lang")


def console_client(app: Any, email: str, password: str = PASSWORD) -> tuple[Any, str]:
    """A Litestar TestClient logged in through ``POST /login``, and its CSRF token.

    Not entered as a context manager: an app runs its lifespan once, and several clients
    each running it on the same app hang at shutdown; each request gets its own portal.
    """
    from litestar.testing import TestClient

    client: Any = TestClient(app)
    r = client.post(
        "/login",
        data={"email": email, "password": password, "next": "/tickets"},
        follow_redirects=False,
    )
    assert r.status_code == 303, f"login as {email} failed: {r.status_code} {r.text[:200]}"
    page = client.get("/tickets")
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert match, "console pages carry the CSRF token in a meta tag"
    return client, match.group(1)


@dataclass
class LiveServer:
    base_url: str
    settings: Settings
    numbers: dict[str, int]
    users: dict[str, str]  # role key -> e-mail; every password is PASSWORD
    password: str = PASSWORD

    def url(self, path: str) -> str:
        return self.base_url + path


def _serve(app: object) -> tuple[uvicorn.Server, threading.Thread, socket.socket, str]:
    # Bind first and hand uvicorn the socket: no race for the port between choosing and binding.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.started:
            try:
                with urllib.request.urlopen(base_url + "/login", timeout=2) as resp:
                    if resp.status == 200:
                        return server, thread, sock, base_url
            except (urllib.error.URLError, OSError):
                pass
        if not thread.is_alive():
            break
        time.sleep(0.05)
    server.should_exit = True
    raise RuntimeError(f"the live server did not answer on {base_url}")


def start_live_server(data_dir: Path) -> Iterator[LiveServer]:
    """Seed a fresh instance in ``data_dir`` and serve it until the generator is closed."""
    seeded = build_seeded_app(data_dir)
    server, thread, sock, base_url = _serve(seeded.app)
    try:
        yield LiveServer(base_url, seeded.settings, seeded.numbers, seeded.users)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from start_live_server(tmp_path_factory.mktemp("pulpit-live"))


def running_desk(
    factory: sessionmaker[Session], tmp_path: Path, **settings: Any
) -> Iterator[dict[str, Any]]:
    """Everything of ``pulpit serve`` in one process over ``factory``: the SMTP gateway on a free
    port, the in-process Dramatiq worker and the app, seeded with the factories' world and a
    general mailbox. Yields the gateway's ``port``, an ``api`` TestClient and the coordinator's
    token ``headers``. ``settings`` override the instance's (e.g. ``trusted_authserv_id``)."""
    from litestar.testing import TestClient

    from core.access.accounts import create_api_token
    from core.db import unit_of_work
    from core.mail.models import Mailbox
    from mailgw.server import start
    from tests.factories import build_world
    from tests.smtp_sink import free_port
    from web.app import create_app
    from workers.actors import register_actors
    from workers.broker import install_dispatcher, make_broker, uninstall_dispatcher
    from workers.runner import start_in_process_worker

    config = Settings(
        data_dir=tmp_path / "var",
        smtp_port=free_port(),
        outbound_smtp_url="null://",
        secret_key="e2e",
        **settings,
    )
    with unit_of_work(factory) as session:
        world = build_world(session)
        session.add(Mailbox(address="pomoc@support.example"))
        token = create_api_token(session, world.users["coordinator"])
    broker = make_broker("memory://")
    register_actors(broker, factory, config)
    install_dispatcher(broker)
    worker = start_in_process_worker(broker, threads=2)
    gateway = start(config, factory)
    app = create_app(config, session_factory=factory)
    try:
        yield {
            "port": gateway.port,
            "api": TestClient(app),
            "headers": {"Authorization": f"Bearer {token}"},
        }
    finally:
        gateway.stop()
        worker.stop()
        uninstall_dispatcher()


def ticket_for(desk: dict[str, Any], message_id: str) -> dict[str, Any]:
    """The ticket (with its events) that a mail sent to a ``running_desk`` went into, through
    the API's ``message_id`` filter, waiting up to 20 s for the worker to process it."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = desk["api"].get(
            "/api/v1/tickets", params={"message_id": message_id}, headers=desk["headers"]
        )
        assert r.status_code == 200
        if r.json()["total"]:
            number = r.json()["items"][0]["number"]
            return dict(
                desk["api"].get(f"/api/v1/tickets/{number}", headers=desk["headers"]).json()
            )
        time.sleep(0.1)
    raise AssertionError(f"no ticket for {message_id} within 20 s")


#: Debian's chromium, headless in a container: no sandbox, GPU or background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium per test module (Playwright, Debian's binary)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()

"""``GET /metrics`` (docs/metrics.md): the desk's figures read from the database at scrape time,
this process's HTTP latency, and the bearer token that guards them — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from config.settings import Settings
from core.blobs import Blob
from core.clock import utcnow
from core.mail.models import InboundMessage, OutboundMail
from core.tickets import services as svc
from core.tickets.models import Ticket
from tests.factories import World, build_world
from web.app import create_app

TOKEN = "s3cret-scrape-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(session: Session, tmp_path: Any, token: str) -> TestClient[Any]:
    conn = session.connection()

    def factory() -> Session:
        return Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)

    settings = Settings(data_dir=tmp_path, secret_key="test", metrics_token=token)
    return TestClient(create_app(settings, session_factory=factory))


@pytest.fixture
def client(session: Session, tmp_path: Any) -> Iterator[TestClient[Any]]:
    with _client(session, tmp_path, TOKEN) as c:
        yield c


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient[Any]) -> Samples:
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    found: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _mail(session: Session, state: str, received_ago: float, took: float | None = None) -> int:
    now = utcnow()
    if session.get(Blob, "0" * 64) is None:
        session.add(Blob(sha256="0" * 64, size=1))
        session.flush()
    row = InboundMessage(
        source="smtp",
        sha256="0" * 64,
        size=1,
        state=state,
        received_at=now - timedelta(seconds=received_ago),
        processed_at=(
            now - timedelta(seconds=received_ago) + timedelta(seconds=took)
            if took is not None
            else None
        ),
    )
    session.add(row)
    session.flush()
    return row.id


def _outbound(session: Session, state: str, n: int) -> None:
    row = OutboundMail(
        message_id=f"<m{state}{n}@support.example>",
        template="ticket_ack",
        to_addr=f"x{n}@acme.example",
        state=state,
        created_at=utcnow() - timedelta(minutes=10),
    )
    session.add(row)
    session.flush()


def _ticket(session: Session, world: World, subject: str) -> Ticket:
    t = svc.open_ticket(
        session,
        svc.NewTicket(
            subject=subject, requester=world.users["client"], contract=world.acme_contract
        ),
    )
    session.flush()
    return t


def test_no_token_configured_answers_404(session: Session, tmp_path: Any) -> None:
    with _client(session, tmp_path, "") as c:
        assert c.get("/metrics").status_code == 404
        assert c.get("/metrics", headers=AUTH).status_code == 404


def test_missing_token_is_401_and_a_wrong_one_403(client: TestClient[Any]) -> None:
    r = client.get("/metrics")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Basic eDp5"}).status_code == 401
    assert "pulpit_" not in r.text


def test_an_empty_desk_scrapes_zeros(client: TestClient[Any]) -> None:
    s = scrape(client)
    assert value(s, "pulpit_database_up") == 1
    assert value(s, "pulpit_mail_received_total") == 0
    assert value(s, "pulpit_mail_processed_total") == 0
    assert value(s, "pulpit_queue_depth", queue="inbound") == 0
    assert value(s, "pulpit_mail_processing_seconds_bucket", le="+Inf") == 0
    assert value(s, "pulpit_tickets_open", category="new") == 0


def test_mail_figures_come_from_the_database(client: TestClient[Any], session: Session) -> None:
    _mail(session, "received", received_ago=120)
    _mail(session, "received", received_ago=5)
    _mail(session, "quarantined", received_ago=600)
    _mail(session, "ignored", received_ago=600, took=1)
    _mail(session, "processed", received_ago=60, took=0.3)
    _mail(session, "processed", received_ago=60, took=4)
    _mail(session, "processed", received_ago=3600, took=2)  # processed long ago: not in window
    last = _mail(session, "received", received_ago=1)
    for n, state in enumerate(("pending", "pending", "sending", "failed", "sent", "sent")):
        _outbound(session, state, n)

    s = scrape(client)
    assert value(s, "pulpit_inbound_messages", state="received") == 3
    assert value(s, "pulpit_inbound_messages", state="quarantined") == 1
    assert value(s, "pulpit_inbound_messages", state="ignored") == 1
    received = value(s, "pulpit_mail_received_total")
    assert received == last  # the id high-water mark (PostgreSQL's sequence may start higher)
    assert value(s, "pulpit_mail_processed_total") == received - 5
    assert value(s, "pulpit_queue_depth", queue="inbound") == 3
    assert value(s, "pulpit_queue_depth", queue="outbound") == 3  # pending + sending
    assert 115 <= value(s, "pulpit_inbound_oldest_waiting_seconds") <= 180
    assert value(s, "pulpit_outbound_mail", state="pending") == 2
    assert value(s, "pulpit_outbound_mail", state="sending") == 1
    assert value(s, "pulpit_outbound_mail", state="failed") == 1
    assert value(s, "pulpit_outbound_mail_sent_total") == (
        value(s, "pulpit_outbound_mail_queued_total") - 4
    )
    assert value(s, "pulpit_outbound_oldest_pending_seconds") >= 590
    # the two mails processed within the last 5 minutes: 0.3 s and 4 s
    assert value(s, "pulpit_mail_processing_seconds_bucket", le="0.25") == 0
    assert value(s, "pulpit_mail_processing_seconds_bucket", le="0.5") == 1
    assert value(s, "pulpit_mail_processing_seconds_bucket", le="5.0") == 2
    assert value(s, "pulpit_mail_processing_seconds_bucket", le="+Inf") == 2
    assert value(s, "pulpit_mail_processing_seconds_gcount") == 2
    assert value(s, "pulpit_mail_processing_seconds_gsum") == pytest.approx(4.3, abs=0.01)

    # processing one more mail moves it from the queue to the processed total
    row = session.get(InboundMessage, last)
    assert row is not None
    row.state, row.processed_at = "processed", utcnow()
    session.flush()
    after = scrape(client)
    assert (
        value(after, "pulpit_mail_processed_total") == value(s, "pulpit_mail_processed_total") + 1
    )
    assert value(after, "pulpit_queue_depth", queue="inbound") == 2


def test_ticket_and_sla_figures(client: TestClient[Any], session: Session) -> None:
    world = build_world(session)
    now = utcnow()
    late = _ticket(session, world, "reaction late")
    late.reaction_due = late.reaction_breached_at = now - timedelta(hours=1)
    late.first_response_at = None
    fixed = _ticket(session, world, "resolution breached, closed since")
    fixed.resolution_due = fixed.resolution_breached_at = now - timedelta(hours=3)
    fixed.status_category = "closed"
    old = _ticket(session, world, "breached two days ago")
    old.resolution_due = old.resolution_breached_at = now - timedelta(days=2)
    paused = _ticket(session, world, "waiting for the client")
    paused.status_category = "paused"
    paused.resolution_due = now - timedelta(hours=1)
    fine = _ticket(session, world, "in time")
    fine.status_category = "open"
    fine.reaction_due = now + timedelta(hours=1)
    fine.resolution_due = now + timedelta(hours=5)
    fine.first_response_at = now
    session.flush()

    s = scrape(client)
    assert value(s, "pulpit_sla_breaches_24h", clock="reaction") == 1
    assert value(s, "pulpit_sla_breaches_24h", clock="resolution") == 1
    assert value(s, "pulpit_tickets_open", category="paused") == 1
    assert value(s, "pulpit_tickets_open", category="open") == 1
    assert value(s, "pulpit_tickets_open", category="new") == 2  # "late" and "old"
    assert value(s, "pulpit_tickets_overdue") == 2  # "late" and "old"; paused and closed not


def test_http_latency_by_route_template(client: TestClient[Any]) -> None:
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/tickets/12345").status_code == 401
    s = scrape(client)
    ok = value(
        s,
        "pulpit_http_request_duration_seconds_count",
        method="GET",
        route="/api/v1/health",
        status="2xx",
    )
    assert ok == 1
    refused = [
        labels
        for (name, labels), v in s.items()
        if name == "pulpit_http_request_duration_seconds_count" and v >= 1
    ]
    routes = {dict(labels)["route"] for labels in refused}
    assert not any("12345" in route for route in routes), routes  # the template, not the path
    assert any(dict(labels)["status"] == "4xx" for labels in refused)


def test_a_database_that_does_not_answer_still_scrapes(tmp_path: Any) -> None:
    def broken() -> Session:
        raise OSError("connection refused")

    settings = Settings(data_dir=tmp_path, secret_key="test", metrics_token=TOKEN)
    with TestClient(create_app(settings, session_factory=broken)) as c:
        s = scrape(c)
    assert value(s, "pulpit_database_up") == 0
    assert not any(name.startswith("pulpit_mail_") for name, _ in s)


def test_the_token_is_never_in_the_settings_repr() -> None:
    assert TOKEN not in repr(Settings(metrics_token=TOKEN))

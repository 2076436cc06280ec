"""Stored mail becomes the right ticket or event (mailgw.process), on SQLite and PostgreSQL.

Each test stores a raw message with ``core.mail.inbound.store_inbound`` as the gateway does and runs
``process_inbound`` on it directly; mail is built in code with the stdlib (Zulip's style, see
``tests/mail_builders.py``) or read from the corpus in ``tests/fixtures/mail``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.blobs import BlobStore
from core.directory.models import User
from core.mail.inbound import MAX_ATTEMPTS, store_inbound
from core.mail.models import InboundMessage, OutboundMail
from core.mail.reply_address import sign
from core.tickets.models import Attachment, Ticket
from core.tickets.services import change_status
from mailgw import rules
from mailgw.process import process_inbound, run_process
from mailgw.trust import TrustSettings
from tests.factories import World
from tests.mail_builders import (  # noqa: F401
    CORPUS,
    DOMAIN,
    NOW,
    blobs_fixture,
    build,
    decision,
    deliver,
    event_of,
    opened,
    ticket_count,
    ticket_of,
    world_fixture,
)
from workers.actors import register_actors
from workers.scheduler import sweep_inbound

# --- Routing a new ticket -------------------------------------------------------------------


def test_new_ticket_routed_by_contract_mailbox(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = deliver(session, blobs, build(frm="someone@nowhere.example", to="acme@support.example"))
    ticket = ticket_of(session, row)
    assert ticket.contract is world.acme_contract
    assert "mailbox of ACME-2026" in decision(row, "route")["why"]


def test_an_ended_contract_s_mailbox_opens_no_ticket_under_it(
    session: Session, world: World, blobs: BlobStore
) -> None:
    """A contract past its end date receives no new tickets: its mailbox's mail is routed as
    if sent to a general address (here: the sender is nobody's, so triage)."""
    world.acme_contract.valid_to = NOW.date() - timedelta(days=1)
    session.flush()
    row = deliver(session, blobs, build(frm="someone@nowhere.example", to="acme@support.example"))
    assert ticket_of(session, row).contract is None


def test_plus_address_of_a_mailbox_routes_too(
    session: Session, world: World, blobs: BlobStore
) -> None:
    raw = build(frm="someone@nowhere.example", to="x@elsewhere.example")
    row = deliver(session, blobs, raw, envelope_to=["acme+pilne@support.example"])
    assert ticket_of(session, row).contract is world.acme_contract


def test_new_ticket_routed_by_sender_contact(
    session: Session, world: World, blobs: BlobStore
) -> None:
    session.add(User(email="kasia@gmail.example", role="client", client=world.acme))
    session.flush()
    row = deliver(session, blobs, build(frm="kasia@gmail.example"))
    assert ticket_of(session, row).contract is world.acme_contract
    assert "contact of Acme" in decision(row, "route")["why"]


def test_new_ticket_routed_by_sender_domain(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = deliver(session, blobs, build(frm="Nowy <nowy@acme.example>"))
    ticket = ticket_of(session, row)
    assert ticket.contract is world.acme_contract
    assert ticket.requester.email == "nowy@acme.example" and ticket.requester.name == "Nowy"


def test_unknown_sender_lands_in_triage(session: Session, world: World, blobs: BlobStore) -> None:
    ticket = ticket_of(session, deliver(session, blobs, build(frm="obcy@nowhere.example")))
    assert (ticket.contract, ticket.client) == (None, None)


def test_ticket_type_by_subject_keyword(session: Session, world: World, blobs: BlobStore) -> None:
    row = deliver(session, blobs, build(subject="Przegląd okresowy drukarki"))
    assert ticket_of(session, row).ticket_type.name == "inspection"  # type: ignore[union-attr]


def test_ticket_type_defaults_to_the_contracts(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = deliver(session, blobs, build(subject="Pytanie"))
    assert ticket_of(session, row).ticket_type.name == "failure"  # type: ignore[union-attr]


# --- Threading ------------------------------------------------------------------------------


def test_reply_threads_by_subject_tag(session: Session, world: World, blobs: BlobStore) -> None:
    ticket, _ = opened(session, blobs)
    row = deliver(
        session,
        blobs,
        build(subject=f"Re: Drukarka [#{ticket.number}]"),
        now=NOW + timedelta(hours=1),
    )
    assert ticket_of(session, row) is ticket and ticket_count(session) == 1
    assert event_of(session, row).type == "email_in"


def test_reply_threads_by_prefixed_subject_tag(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    row = deliver(session, blobs, build(subject=f"RE: [Ticket#{ticket.number}] x"))
    assert ticket_of(session, row) is ticket


def test_reply_threads_by_in_reply_to_our_outbound_mail(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    session.add(
        OutboundMail(
            message_id="<ack1@support.example>",
            ticket_id=ticket.id,
            template="ack",
            to_addr="anna@acme.example",
        )
    )
    session.flush()
    row = deliver(
        session, blobs, build(subject="Re: dziękuję", In_Reply_To="<ack1@support.example>")
    )
    assert ticket_of(session, row) is ticket
    assert decision(row, "thread")["why"].startswith("In-Reply-To")


def test_reply_threads_by_references(session: Session, world: World, blobs: BlobStore) -> None:
    first = build(message_id="<first@client.example>")
    ticket = ticket_of(session, deliver(session, blobs, first))
    row = deliver(
        session,
        blobs,
        build(subject="Re: x", References="<zzz@else.example> <first@client.example>"),
    )
    assert ticket_of(session, row) is ticket
    assert decision(row, "thread")["why"].startswith("References")


def test_colleague_of_the_requester_may_follow_up(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    row = deliver(
        session, blobs, build(frm="piotr@acme.example", subject=f"Re: [#{ticket.number}]")
    )
    assert ticket_of(session, row) is ticket


def test_stranger_quoting_a_tag_gets_a_ticket_of_their_own(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    row = deliver(session, blobs, build(frm="ewa@beta.example", subject=f"Re: [#{ticket.number}]"))
    own = ticket_of(session, row)
    assert own is not ticket and own.requester.email == "ewa@beta.example"
    assert "not allowed" in [d for d in row.decisions if d["rule"] == "thread"][0]["why"]


def close(session: Session, world: World, ticket: Ticket, when: datetime) -> None:
    change_status(session, ticket, "Resolved", actor=world.users["coordinator"], at=when)


def test_follow_up_reopens_a_recently_closed_ticket(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    close(session, world, ticket, NOW + timedelta(hours=2))
    later = NOW + timedelta(days=3)
    row = deliver(session, blobs, build(subject=f"Re: [#{ticket.number}] znowu"), now=later)
    assert ticket_of(session, row) is ticket
    assert ticket.status.name == "In progress" and ticket.resolved_at is None


def test_follow_up_to_a_long_closed_ticket_opens_a_linked_one(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    close(session, world, ticket, NOW + timedelta(hours=2))
    row = deliver(
        session,
        blobs,
        build(subject=f"Re: [#{ticket.number}]"),
        now=NOW + timedelta(days=20),
        reopen_days=14,
    )
    new = ticket_of(session, row)
    assert new is not ticket and ticket.status_category == "closed"
    assert event_of(session, row).data["follow_up_of"] == ticket.number


def test_staff_reply_by_mail_meets_the_reaction_clock(
    session: Session, world: World, blobs: BlobStore
) -> None:
    """Replying to the signed Reply-To of the mail he got proves the coordinator wrote it."""
    ticket, _ = opened(session, blobs)
    assert ticket.first_response_at is None
    reply_at = NOW + timedelta(minutes=30)
    coordinator = world.users["coordinator"]
    address = sign("t", "pomoc@support.example", ticket.number, coordinator.id)
    row = deliver(
        session,
        blobs,
        build(frm=coordinator.email, subject=f"Re: [#{ticket.number}]", body="Już jedziemy."),
        now=reply_at,
        envelope_to=[address],
        trust=TrustSettings(secret="t"),
    )
    event = event_of(session, row)
    assert (event.type, event.public, event.author) == (
        "email_in",
        True,
        world.users["coordinator"],
    )
    assert ticket.first_response_at == reply_at


# --- Loops, duplicates, automatic mail ------------------------------------------------------


def test_duplicate_message_id_is_ignored(session: Session, world: World, blobs: BlobStore) -> None:
    raw = build(message_id="<dup@client.example>")
    first = deliver(session, blobs, raw)
    second = deliver(session, blobs, raw, envelope_to=["acme@support.example"])
    assert second.state == "ignored" and second.reason == f"duplicate of #{first.id}"
    assert ticket_count(session) == 1


def test_same_message_id_with_other_bytes_is_a_duplicate_of_the_ticket(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket = ticket_of(session, deliver(session, blobs, build(message_id="<d2@client.example>")))
    session.execute(InboundMessage.__table__.delete())  # only the timeline remembers it now
    row = deliver(session, blobs, build(message_id="<d2@client.example>", body="inna treść"))
    assert (row.state, row.reason) == ("ignored", f"duplicate of #{ticket.number}")


def test_our_own_mail_coming_back_is_ignored(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = deliver(session, blobs, build(message_id="<abc@support.example>"))
    assert (row.state, row.reason) == ("ignored", "our own mail came back")
    assert ticket_count(session) == 0


def test_out_of_office_is_noted_on_its_ticket_without_changes(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    updated, status = ticket.updated_at, ticket.status
    raw = build(
        subject=f"Automatyczna odpowiedź: [#{ticket.number}]",
        Auto_Submitted="auto-replied",
        X_Auto_Response_Suppress="All",
    )
    row = deliver(session, blobs, raw, now=NOW + timedelta(hours=1))
    event = event_of(session, row)
    assert (event.type, event.public, event.data["auto_reply"]) == ("email_in", False, True)
    assert (ticket.updated_at, ticket.status, ticket_count(session)) == (updated, status, 1)


def test_out_of_office_about_no_ticket_is_ignored(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = deliver(session, blobs, (CORPUS / "exchange_out_of_office.eml").read_bytes())
    assert row.state == "ignored" and "auto-reply" in (row.reason or "")
    assert ticket_count(session) == 0


def test_bounce_is_attached_to_the_ticket_of_the_mail_that_bounced(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    session.add(
        OutboundMail(
            message_id="<OURS-ID@support.example>",
            ticket_id=ticket.id,
            template="ack",
            to_addr="nobody@acme.example",
        )
    )
    session.flush()
    row = deliver(session, blobs, (CORPUS / "dsn_bounce.eml").read_bytes(), envelope_from="")
    event = event_of(session, row)
    assert event.ticket is ticket and not event.public
    assert event.data["bounce"] is True and event.data["failed_recipient"] == "nobody@acme.example"
    assert ticket_count(session) == 1


def test_null_sender_without_ticket_is_ignored(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = deliver(session, blobs, build(frm="robot@nowhere.example"), envelope_from="<>")
    assert row.state == "ignored" and ticket_count(session) == 0


def test_list_mail_opens_a_ticket_flagged_no_autoreply(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = deliver(session, blobs, (CORPUS / "list_mail.eml").read_bytes())
    assert decision(row, "bulk")["no_autoreply"] is True
    assert event_of(session, row).data["no_autoreply"] is True


# --- Bodies and attachments -----------------------------------------------------------------


def test_visible_reply_and_full_text(session: Session, world: World, blobs: BlobStore) -> None:
    ticket, _ = opened(session, blobs)
    body = "Nadal nie działa.\n\nW dniu 02.03.2026 o 10:00, Pulpit pisze:\n> Przyjęliśmy"
    row = deliver(session, blobs, build(subject=f"Re: [#{ticket.number}]", body=body))
    event = event_of(session, row)
    assert event.body_text == "Nadal nie działa."
    assert "Przyjęliśmy" in event.data["full_text"]


def test_polish_attachment_filename_is_intact(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = deliver(session, blobs, (CORPUS / "rfc2231_filename.eml").read_bytes())
    (att,) = session.scalars(select(Attachment).where(Attachment.event_id == row.event_id))
    assert att.filename == "Faktura źródłowa.pdf" and att.content_type == "application/pdf"
    assert blobs.read(att.sha256).startswith(b"%PDF")


def test_inline_image_keeps_its_content_id(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = deliver(session, blobs, (CORPUS / "inline_cid_image.eml").read_bytes())
    (att,) = session.scalars(select(Attachment).where(Attachment.event_id == row.event_id))
    assert (att.inline, att.content_id) == (True, "zrzut1@acme.example")
    assert 'src="cid:zrzut1@acme.example"' in (event_of(session, row).body_html or "")


def test_html_is_sanitised(session: Session, world: World, blobs: BlobStore) -> None:
    row = deliver(session, blobs, (CORPUS / "html_script.eml").read_bytes())
    html = event_of(session, row).body_html or ""
    assert "<script" not in html and "onclick" not in html and "javascript:" not in html
    assert "Tabela" in html


def test_mail_without_message_id_gets_one_and_dedupes_by_bytes(
    session: Session, world: World, blobs: BlobStore
) -> None:
    raw = (CORPUS / "no_message_id.eml").read_bytes()
    first = deliver(session, blobs, raw)
    assert event_of(session, first).message_id.endswith("@inbound.support.example>")  # type: ignore[union-attr]
    assert deliver(session, blobs, raw).state == "ignored"


# --- Reliability ----------------------------------------------------------------------------


def factory_for(session: Session) -> sessionmaker[Session]:
    return sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )


def test_processing_twice_changes_nothing(session: Session, world: World, blobs: BlobStore) -> None:
    row = deliver(session, blobs, build())
    again = process_inbound(session, row.id, blobs=blobs, mail_domain=DOMAIN, now=NOW)
    assert again.state == "processed" and ticket_count(session) == 1


def test_three_failures_quarantine_with_the_reason(
    session: Session, world: World, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(mail: object) -> rules.Hit:
        raise RuntimeError("rule exploded")

    monkeypatch.setattr(rules, "bulk", broken)
    row = store_inbound(session, build(), source="smtp", blobs=blobs, now=NOW)
    session.commit()
    factory = factory_for(session)
    states = [
        run_process(factory, row.id, blobs=blobs, mail_domain=DOMAIN, clock=lambda: NOW)
        for _ in range(MAX_ATTEMPTS)
    ]
    session.refresh(row)
    assert states == ["received", "received", "quarantined"]
    assert (row.state, row.attempts, row.reason) == (
        "quarantined",
        3,
        "RuntimeError: rule exploded",
    )
    assert ticket_count(session) == 0


def test_missing_blob_counts_an_attempt(session: Session, world: World, blobs: BlobStore) -> None:
    row = store_inbound(session, build(), source="smtp", blobs=blobs, now=NOW)
    session.commit()
    blobs.path(row.sha256).unlink()
    assert (
        run_process(
            factory_for(session), row.id, blobs=blobs, mail_domain=DOMAIN, clock=lambda: NOW
        )
        == "received"
    )
    session.refresh(row)
    assert row.attempts == 1 and "BlobMissing" in (row.reason or "")


def test_sweep_requeues_mail_left_received(
    session: Session, world: World, blobs: BlobStore
) -> None:
    old = store_inbound(session, build(), source="smtp", blobs=blobs, now=NOW)
    fresh = store_inbound(
        session, build(), source="smtp", blobs=blobs, now=NOW + timedelta(seconds=50)
    )
    session.commit()
    ids = sweep_inbound(factory_for(session), NOW + timedelta(seconds=70))
    assert old.id in ids and fresh.id not in ids


def test_mail_process_actor_and_inbound_sweep_are_declared(session: Session) -> None:
    from config.settings import Settings
    from workers.broker import make_broker
    from workers.scheduler import default_tasks

    broker = make_broker("memory://")
    actors = register_actors(broker, factory_for(session), Settings())
    assert actors["mail.process"].queue_name == "mail_in"
    assert actors["mail.process"].options["max_retries"] == 0
    assert "mail.sweep_inbound" in [t.name for t in default_tasks(Settings())]


def test_actor_body_processes_a_stored_mail(
    session: Session, world: World, blobs: BlobStore
) -> None:
    row = store_inbound(session, build(), source="smtp", blobs=blobs, now=NOW)
    session.commit()
    state = run_process(
        factory_for(session), row.id, blobs=blobs, mail_domain=DOMAIN, clock=lambda: NOW
    )
    session.refresh(row)
    assert state == row.state == "processed" and row.ticket_id is not None
    assert row.processed_at == NOW

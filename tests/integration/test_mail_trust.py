"""Who sent this mail: a forged From never borrows a known identity (docs/mail.md, the trust table).

Each mail is built in code and processed as the gateway does (``tests/mail_builders.py``), with
the trust settings of ``mailgw.trust``: Authentication-Results from the MTA the admin names,
DKIM checked by Pulpit with a DNS answered from a dict, and the signed reply addresses of
``core.mail.reply_address``. ``tests/e2e/test_mail_trust.py`` sends the same kinds of mail
through the real SMTP gateway.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dkim
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.blobs import BlobStore
from core.directory.services import UNKNOWN_SENDER
from core.mail.models import OutboundMail
from core.mail.reply_address import sign
from core.tickets.models import Ticket
from core.tickets.requester import change_requester
from mailgw.trust import TrustSettings
from tests.factories import World
from tests.mail_builders import (
    NOW,
    blobs_fixture,  # noqa: F401 - fixture
    build,
    decision,
    deliver,
    event_of,
    opened,
    ticket_of,
    world_fixture,  # noqa: F401 - fixture
)

MX = "mx.support.example"
SECRET = "trust-tests"
KEYS = Path(__file__).parent.parent / "fixtures" / "dkim"
PRIVATE_KEY = (KEYS / "acme.key").read_bytes()
PUBLIC_KEY = (KEYS / "acme.pub.b64").read_text().strip()


def trusting(**dns: str) -> TrustSettings:
    records = {name.encode(): value.encode() for name, value in dns.items()}
    return TrustSettings(
        authserv_id=MX,
        secret=SECRET,
        dns=lambda name, timeout=5: records.get(bytes(name).rstrip(b".")),
    )


def with_results(raw: bytes, *values: str, received_first: bool = False) -> bytes:
    """Authentication-Results headers on top, as the MTA in front of Pulpit adds them."""
    top = b"".join(f"Authentication-Results: {v}\r\n".encode() for v in values)
    hop = b"Received: from mx.support.example by pulpit; Mon, 2 Mar 2026 10:00:00 +0100\r\n"
    return hop + top + raw if received_first else top + hop + raw


def reply(ticket: Ticket, frm: str, body: str = "Już jedziemy.", **kw: str) -> bytes:
    return build(frm=frm, subject=f"Re: [#{ticket.number}] Drukarka", body=body, **kw)


# --- staff mail acts as staff only when it is proven ---------------------------------------


def test_staff_mail_without_proof_is_an_unverified_internal_note(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    row = deliver(
        session, blobs, reply(ticket, "coord@support.example"), trust=TrustSettings(secret=SECRET)
    )
    event = event_of(session, row)
    assert (event.type, event.public, event.author) == ("email_in", False, None)
    assert event.data["unverified"] is True
    assert event.data["claimed_from"] == "coord@support.example"
    assert ticket.first_response_at is None  # no staff answer was given
    assert "unverified" in decision(row, "thread")["why"]


def test_forged_coordinator_in_an_encoded_display_name_is_not_the_coordinator(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    raw = reply(ticket, "=?utf-8?q?coord=40support.example?= <attacker@evil.example>")
    row = deliver(session, blobs, raw)
    event = event_of(session, row)
    assert event.author is not None and event.author.email == "attacker@evil.example"
    assert event.ticket_id != ticket.id  # a stranger quoting a tag: a ticket of his own


def test_staff_mail_with_dmarc_pass_from_the_trusted_mta_acts_as_staff(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    raw = with_results(
        reply(ticket, "coord@support.example"),
        f"{MX}; dkim=pass header.d=support.example; dmarc=pass header.from=support.example",
    )
    at = NOW + timedelta(minutes=20)
    row = deliver(session, blobs, raw, now=at, trust=trusting())
    event = event_of(session, row)
    assert (event.public, event.author) == (True, world.users["coordinator"])
    assert ticket.first_response_at == at
    assert decision(row, "trust")["result"] is True


def test_results_of_another_authserv_id_prove_nothing(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    raw = with_results(
        reply(ticket, "coord@support.example"),
        "mx.evil.example; dmarc=pass header.from=support.example",
    )
    event = event_of(session, deliver(session, blobs, raw, trust=trusting()))
    assert (event.public, event.author, event.data.get("unverified")) == (False, None, True)


def test_results_added_upstream_of_our_mta_are_ignored(
    session: Session, world: World, blobs: BlobStore
) -> None:
    """A forger writes our MTA's id into his own header; it sits below the second Received."""
    ticket, _ = opened(session, blobs)
    forged = (
        b"Received: from evil.example by mx.evil.example; Mon, 2 Mar 2026 09:59:00 +0100\r\n"
        + f"Authentication-Results: {MX}; dmarc=pass header.from=support.example\r\n".encode()
        + reply(ticket, "coord@support.example")
    )
    raw = b"Received: from mx.evil.example by mx.support.example; Mon, 2 Mar 2026\r\n" + forged
    event = event_of(session, deliver(session, blobs, raw, trust=trusting()))
    assert (event.public, event.author, event.data.get("unverified")) == (False, None, True)


def test_a_forged_pass_beside_our_fail_loses(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    raw = with_results(
        reply(ticket, "coord@support.example"),
        f"{MX}; dmarc=pass header.from=support.example",
        f"{MX}; dmarc=fail (p=reject dis=none) header.from=support.example",
    )
    event = event_of(session, deliver(session, blobs, raw, trust=trusting()))
    assert (event.public, event.author) == (False, None)


def test_staff_reply_to_their_own_signed_address_acts_as_staff(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    coord = world.users["coordinator"]
    address = sign(SECRET, "pomoc@support.example", ticket.number, coord.id)
    row = deliver(
        session,
        blobs,
        reply(ticket, coord.email, to=address),
        envelope_to=[address],
        trust=TrustSettings(secret=SECRET),
    )
    event = event_of(session, row)
    assert (event.public, event.author) == (True, coord)


def test_a_signed_address_given_to_someone_else_proves_nothing_for_staff(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    client_address = sign(SECRET, "pomoc@support.example", ticket.number, ticket.requester_id)
    row = deliver(
        session,
        blobs,
        reply(ticket, "coord@support.example", to=client_address),
        envelope_to=[client_address],
        trust=TrustSettings(secret=SECRET),
    )
    event = event_of(session, row)
    assert (event.public, event.author) == (False, None)
    assert "someone else" in event.data["trust"]


def test_a_technician_does_not_write_into_a_ticket_outside_his_scope(
    session: Session, world: World, blobs: BlobStore
) -> None:
    """Authenticated, but the API would not show him the ticket: it stays untouched."""
    ticket, _ = opened(session, blobs)
    before = len(ticket.events)
    outsider = world.users["technician2"]
    address = sign(SECRET, "pomoc@support.example", ticket.number, outsider.id)
    row = deliver(
        session,
        blobs,
        reply(ticket, outsider.email, to=address),
        envelope_to=[address],
        trust=TrustSettings(secret=SECRET),
    )
    assert len(ticket.events) == before
    assert ticket_of(session, row).id != ticket.id


# --- clients whose domain asks to reject forgeries --------------------------------------------


def test_client_reply_failing_dmarc_with_reject_policy_is_an_unverified_note(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    raw = with_results(
        reply(ticket, "anna@acme.example", body="Proszę zamknąć."),
        f"{MX}; spf=fail smtp.mailfrom=acme.example; dmarc=fail (p=reject dis=none) "
        "header.from=acme.example",
    )
    event = event_of(session, deliver(session, blobs, raw, trust=trusting()))
    assert (event.public, event.author, event.data["unverified"]) == (False, None, True)
    assert "p=reject" in event.data["trust"]


def test_client_reply_failing_dmarc_with_policy_none_stays_the_clients_comment(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    raw = with_results(
        reply(ticket, "anna@acme.example"),
        f"{MX}; dmarc=fail (p=none) header.from=acme.example",
    )
    event = event_of(session, deliver(session, blobs, raw, trust=trusting()))
    assert (event.public, event.author) == (True, world.users["client"])


def test_without_any_authentication_a_client_reply_is_public_as_before(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    event = event_of(session, deliver(session, blobs, reply(ticket, "anna@acme.example")))
    assert (event.public, event.author) == (True, world.users["client"])


# --- Pulpit as the MX: DKIM and DMARC checked here ---------------------------------------------


def _signed(raw: bytes) -> bytes:
    headers = [b"from", b"to", b"subject", b"message-id"]
    return dkim.sign(raw, b"s1", b"acme.example", PRIVATE_KEY, include_headers=headers) + raw


def _dkim_trust() -> TrustSettings:
    records = {
        b"s1._domainkey.acme.example": f"v=DKIM1; k=rsa; p={PUBLIC_KEY}".encode(),
        b"_dmarc.acme.example": b"v=DMARC1; p=reject",
    }
    return TrustSettings(
        verify_dkim=True, dns=lambda name, timeout=5: records.get(bytes(name).rstrip(b"."))
    )


def test_a_valid_aligned_dkim_signature_is_a_dmarc_pass(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    raw = _signed(reply(ticket, "anna@acme.example"))
    row = deliver(session, blobs, raw, trust=_dkim_trust())
    assert (event_of(session, row).public, decision(row, "trust")["result"]) == (True, True)
    assert "d=acme.example" in decision(row, "trust")["why"]


def test_a_tampered_dkim_mail_from_a_reject_domain_is_an_unverified_note(
    session: Session, world: World, blobs: BlobStore
) -> None:
    ticket, _ = opened(session, blobs)
    raw = _signed(reply(ticket, "anna@acme.example", body="Oryginał."))
    raw = raw.replace(b"Orygina", b"Podrobio")
    event = event_of(session, deliver(session, blobs, raw, trust=_dkim_trust()))
    assert (event.public, event.author, event.data["unverified"]) == (False, None, True)


# --- a From that cannot be read is still a client's mail ------------------------------------


def test_unreadable_from_opens_a_triage_ticket_and_sends_nothing(
    session: Session, world: World, blobs: BlobStore
) -> None:
    for raw_from in ("Jan Kowalski jan.kowalski@firma.example", "<dział it@firma.example>"):
        raw = build(frm="x@placeholder.example", subject=f"Awaria ({raw_from})")
        raw = raw.replace(b"From: x@placeholder.example", f"From: {raw_from}".encode())
        row = deliver(session, blobs, raw)
        ticket = ticket_of(session, row)
        assert ticket.requester.email == UNKNOWN_SENDER and ticket.contract is None
        first = event_of(session, row)
        assert raw_from.replace("<", "").replace(">", "") in first.data["raw_from"].replace(
            "<", ""
        ).replace(">", "")
        mails = session.scalars(select(OutboundMail).where(OutboundMail.ticket_id == ticket.id))
        assert [m.to_addr for m in mails if m.to_addr == UNKNOWN_SENDER] == []


def test_a_coordinator_names_the_requester_of_such_a_ticket(
    session: Session, world: World, blobs: BlobStore
) -> None:
    raw = build(frm="x@placeholder.example").replace(
        b"From: x@placeholder.example", b"From: Jan Kowalski jan.kowalski@acme.example"
    )
    ticket = ticket_of(session, deliver(session, blobs, raw))
    event = change_requester(
        session, ticket, "jan.kowalski@acme.example", actor=world.users["coordinator"]
    )
    assert event is not None and event.data["to"] == "jan.kowalski@acme.example"
    assert ticket.requester.email == "jan.kowalski@acme.example"
    assert ticket.client is not None and ticket.client.name == "Acme"

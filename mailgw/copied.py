"""Contacts copied on a mail become contacts copied on its ticket (``core.tickets.contacts``).

When a mail opens a ticket, or follows one up, the addresses in its ``Cc`` and the other ``To``
addresses (not our mailboxes, not the sender) are looked at, each with a reason recorded in
the message's decisions (rule ``copied``):

* an existing, active contact of the ticket's client is copied;
* an unknown address whose domain belongs to that client becomes a contact of it (as a sender
  does, ``core.directory.services.find_or_create_contact``) and is copied;
* anyone else is **not** copied: a stranger (another domain, another client's contact) must
  never get a client's ticket mail; staff are not copied (they take part by assignment);
* a ticket without a client (triage) copies nobody from mail: there is no client to belong to.

:mod:`mailgw.process` calls :func:`for_new_ticket` before opening the ticket (so the copied
contacts get the acknowledgement) and :func:`for_follow_up` after adding a mail to a ticket.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.access.accounts import get_user_by_email
from core.contracts.models import Contract
from core.directory.models import Client, User
from core.directory.services import client_for_email, find_or_create_contact
from core.errors import InputError
from core.mail.mailboxes import mailboxes
from core.tickets.contacts import add_contacts, refusal_for
from core.tickets.models import Ticket
from mailgw import rules
from mailgw.parsing import ParsedMail
from mailgw.recipients import POSTMASTER, candidates

RULE = "copied"


def _addresses(session: Session, mail: ParsedMail, sender: User) -> list[str]:
    """Cc, then the other To addresses: lower-cased, each once, without ours and the sender."""
    others = [
        names
        for names in (candidates(address) for address in [*mail.cc, *mail.to])
        if names and names[0] != sender.email
    ]
    if not others:
        return []  # the common case, a mail to our one mailbox: no query
    boxes = frozenset(box.address.strip().lower() for box in mailboxes(session))
    found: list[str] = []
    for names in others:
        if names[0] in found:
            continue
        if any(name in boxes for name in names) or names[0].split("@")[0] == POSTMASTER:
            continue
        found.append(names[0])
    return found


def _choose(
    session: Session, addresses: list[str], client: Client | None, requester: User
) -> tuple[list[User], dict[str, str]]:
    """(the contacts to copy, {address: why not copied}); who may be copied is
    ``core.tickets.contacts``' rule, this only finds or makes the contacts."""
    chosen: list[User] = []
    refused: dict[str, str] = {}
    for address in addresses:
        if client is None:
            refused[address] = "the ticket has no client yet (triage)"
            continue
        user = get_user_by_email(session, address)
        if user is None:
            if client_for_email(session, address) != client:
                refused[address] = f"a stranger: not a contact or domain of {client.name}"
                continue
            try:
                user = find_or_create_contact(session, address)
            except InputError as exc:
                refused[address] = str(exc)
                continue
        if user.id == requester.id or user in chosen:
            continue  # the requester gets the ticket's mail anyway
        why = refusal_for(user, client, requester.id)
        if why is not None:
            refused[address] = why
        else:
            chosen.append(user)
    return chosen, refused


def _hit(chosen: list[User], refused: dict[str, str], what: str) -> rules.Hit:
    parts = []
    if chosen:
        parts.append(f"{what}: {', '.join(u.email for u in chosen)}")
    if refused:
        parts.append("not copied: " + "; ".join(f"{a} ({why})" for a, why in refused.items()))
    return rules.Hit(
        RULE, [u.email for u in chosen], "; ".join(parts) or what, {"not_copied": refused}
    )


def for_new_ticket(
    session: Session, mail: ParsedMail, sender: User, contract: Contract | None
) -> tuple[list[User], rules.Hit | None]:
    """The contacts a new ticket from this mail copies, and the decision (None: nobody named)."""
    addresses = _addresses(session, mail, sender)
    if not addresses:
        return [], None
    client = contract.client if contract is not None else sender.client
    chosen, refused = _choose(session, addresses, client, sender)
    return chosen, _hit(chosen, refused, "copied on the new ticket")


def for_follow_up(
    session: Session, ticket: Ticket, mail: ParsedMail, sender: User, now: datetime
) -> rules.Hit | None:
    """Copy the mail's new contacts of the ticket's client on it; the decision, or None."""
    addresses = _addresses(session, mail, sender)
    if not addresses:
        return None
    chosen, refused = _choose(session, addresses, ticket.client, ticket.requester)
    before = {u.id for u in ticket.cc}
    new = [u for u in chosen if u.id not in before]
    if new:
        add_contacts(session, ticket, new, actor=sender, at=now, check=False)
    return _hit(new, refused, f"copied on #{ticket.number}")

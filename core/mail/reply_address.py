"""Signed reply addresses: ``support+1042.17.<mac>@support.example`` (docs/mail.md).

Every mail about a ticket carries, as its ``Reply-To``, the mailbox's address with a token in
the plus part: the ticket number, the recipient's user id and an HMAC of the two. Only the
person we wrote to received that address, so a reply to it shows that its sender had our
mail (as reply-by-email in Discourse and GitHub). Verification is stateless: the token says
which ticket and which user, the MAC says we made it. Nothing is stored.

Format of the local part: ``<mailbox local part>+<ticket number>.<user id>.<mac>``, where the
numbers are decimal without leading zeros and ``<mac>`` is the first 100 bits of
HMAC-SHA256(key, "<ticket number>.<user id>") in lower-case base32 (20 characters ``a-z2-7``),
with ``key = HMAC-SHA256(secret, "pulpit reply address v1")``, so the instance's secret key is
never used for two purposes with the same key. Every character is safe in a dot-atom local
part (RFC 5322 3.4.1) and means the same in either case: mail systems that lower-case an
address do not break it, and :func:`verify` compares case-insensitively. The local part stays
within RFC 5321 4.5.3.1.1's 64 characters (:func:`sign` refuses otherwise).

The MAC covers the ticket and the user, not the mailbox: it proves who received which
ticket's mail, wherever the token comes back; :attr:`SignedReply.mailbox` is where it came.
A plain plus-address (``support+1042@…``) carries no MAC and does not verify. When the secret
key changes, old addresses stop verifying and their replies are threaded the ordinary way
(subject tag, ``In-Reply-To``).

This module imports nothing of ours: it is pure, for core (signing) and the gateway
(verifying) alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parseaddr

PURPOSE = b"pulpit reply address v1"
MAC_CHARS = 20  # base32 characters: 100 bits (at least 80 are wanted)
MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
MAX_ADDRESS = 254  # RFC 5321 4.5.3.1.3 (256 octets of path, less the angle brackets)

_NUMBER = r"[1-9][0-9]{0,17}"
_TOKEN = re.compile(rf"({_NUMBER})\.({_NUMBER})\.([a-z2-7]{{{MAC_CHARS}}})")


@dataclass(frozen=True)
class SignedReply:
    """What a verified reply address says: the mailbox it came to, the ticket, the user."""

    mailbox: str  # lower-cased, without the plus part: support@support.example
    ticket_number: int
    user_id: int


def _mac(secret: str, ticket_number: int, user_id: int) -> str:
    key = hmac.new(secret.encode("utf-8"), PURPOSE, hashlib.sha256).digest()
    digest = hmac.new(key, f"{ticket_number}.{user_id}".encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:MAC_CHARS]


def sign(secret: str, mailbox: str, ticket_number: int, recipient_user_id: int) -> str:
    """The signed reply address of ``mailbox`` for one ticket and one recipient.

    ``sign(key, "support@support.example", 1042, 17)`` gives
    ``support+1042.17.<20 characters>@support.example`` (lower-cased). Raises ``ValueError``
    for an empty secret, a mailbox that is no plain ``local@domain`` (or already has a plus
    part), numbers below 1, or an address that would be too long (then send the plain
    mailbox: the caller decides).
    """
    if not secret:
        raise ValueError("a reply address needs a secret key")
    if ticket_number < 1 or recipient_user_id < 1:
        raise ValueError("ticket number and user id must be positive")
    text = mailbox.strip().lower()
    if text.count("@") != 1 or any(c.isspace() or c in '<>"' for c in text):
        raise ValueError(f"{mailbox!r} is not a plain mailbox address")
    local, domain = text.split("@")
    if not local or not domain or "+" in local:
        raise ValueError(f"{mailbox!r} is not a plain mailbox address")
    mac = _mac(secret, ticket_number, recipient_user_id)
    signed_local = f"{local}+{ticket_number}.{recipient_user_id}.{mac}"
    if len(signed_local) > MAX_LOCAL_PART:
        raise ValueError(
            f"the signed local part of {mailbox!r} would be {len(signed_local)} characters "
            f"(RFC 5321 allows {MAX_LOCAL_PART})"
        )
    address = f"{signed_local}@{domain}"
    if len(address) > MAX_ADDRESS:
        raise ValueError(f"the signed address of {mailbox!r} would be too long")
    return address


def verify(secret: str, address: str) -> SignedReply | None:
    """What a signed reply address says, or None for anything else.

    Case does not matter; ``Name <address>`` and ``<address>`` are read as the address. None
    for a plain mailbox, a plain plus-address, a wrong or truncated MAC, another secret, or
    an empty secret.
    """
    if not secret or not address:
        return None
    _, addr = parseaddr(address.strip())
    text = addr.strip().lower()
    if text.count("@") != 1 or len(text) > MAX_ADDRESS:
        return None
    local, domain = text.split("@")
    base, plus, token = local.partition("+")
    if not base or not plus or not domain or len(local) > MAX_LOCAL_PART:
        return None
    found = _TOKEN.fullmatch(token)
    if found is None:
        return None
    ticket_number, user_id = int(found.group(1)), int(found.group(2))
    expected = _mac(secret, ticket_number, user_id)
    if not hmac.compare_digest(expected.encode("ascii"), found.group(3).encode("ascii")):
        return None
    return SignedReply(f"{base}@{domain}", ticket_number, user_id)


def find_signed(secret: str, addresses: Iterable[str]) -> SignedReply | None:
    """The first valid signed reply address among ``addresses`` (envelope recipients, then
    To and Cc), or None."""
    for address in addresses:
        found = verify(secret, address)
        if found is not None:
            return found
    return None

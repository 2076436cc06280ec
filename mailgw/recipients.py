"""Which envelope recipients are ours: the question the SMTP gateway asks at RCPT.

GNU Mailman's LMTP runner rejects an unknown list at RCPT time rather than accepting and
bouncing later: a 550 during the transaction is reported by the sending server to its user,
while a bounce after a 250 may go to a forged sender (backscatter). So the gateway asks here
for every ``RCPT TO`` and answers ``550 5.1.1`` (RFC 3463: bad destination mailbox address)
for whatever this returns False.

Ours are: the configured mailboxes (``mailboxes:`` and the contracts' ``mailboxes:`` in the
YAML, both stored as :class:`core.mail.models.Mailbox` rows), compared case-insensitively, and
their plus-addresses (``support+1042@support.example``), among them the signed reply address
every notification carries (``support+1042.17.<mac>@…``, ``core.mail.reply_address``): it is
accepted here whether or not its token verifies, and checked only when threading. The
``postmaster`` of our mail domain and of every mailbox domain is ours too: RFC 5321 4.5.1
requires every SMTP receiver to accept mail for ``postmaster``.

On PostgreSQL the gateway answers from the configuration snapshot (``core.contracts.snapshot``),
which a listening thread keeps current: no query per RCPT, and a mailbox added by ``pulpit
config apply`` or the console is accepted as soon as the change commits. Elsewhere (SQLite, or
while that thread has lost its connection) it keeps a :class:`Mailboxes` read of the table for
a few seconds (:data:`CACHE_SECONDS`): a mailbox added is accepted at most that many seconds
later; one removed is accepted that long, and processing routes such mail to triage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.mail.models import Mailbox

POSTMASTER = "postmaster"
CACHE_SECONDS = 5.0


def candidates(address: str) -> list[str]:
    """The addresses that make ``address`` ours if one of them is a mailbox, lower-cased.

    ``Support+1042@Example.PL`` gives ``support+1042@example.pl`` and ``support@example.pl``.
    An address without exactly one ``@`` gives nothing: it cannot be a mailbox of ours.
    """
    text = address.strip().strip("<>").strip().lower()
    if text.count("@") != 1:
        return []
    local, domain = text.split("@")
    if not local or not domain:
        return []
    found = [text]
    base = local.split("+", 1)[0]
    if base and base != local:
        found.append(f"{base}@{domain}")
    return found


@dataclass(frozen=True)
class Mailboxes:
    """The configured mailbox addresses at one moment, lower-cased."""

    addresses: frozenset[str]
    loaded_at: float = field(default_factory=time.monotonic)
    # The configuration snapshot's token it came from (core.contracts.snapshot), or None when
    # read from the table by :meth:`load`.
    token: str | None = None

    @classmethod
    def load(cls, session: Session) -> Mailboxes:
        rows = session.scalars(select(Mailbox.address))
        return cls(frozenset(a.strip().lower() for a in rows if a))

    @property
    def domains(self) -> frozenset[str]:
        return frozenset(a.rsplit("@", 1)[-1] for a in self.addresses)

    def fresh(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) - self.loaded_at < CACHE_SECONDS

    def accepts(self, address: str, mail_domain: str) -> bool:
        names = candidates(address)
        if not names:
            return False
        if any(name in self.addresses for name in names):
            return True
        local, domain = names[-1].split("@")
        # RFC 5321 4.5.1: postmaster of our mail domain and of every domain we hold a mailbox in.
        return local == POSTMASTER and (
            domain == mail_domain.strip().lower() or domain in self.domains
        )


def accepts(session: Session, address: str, mail_domain: str) -> bool:
    """True when mail to ``address`` is for this instance (see the module docstring).

    Reads the mailboxes afresh. Raises what the database raises when it cannot be asked: the
    caller answers 451 then, so the sender retries instead of hearing the mailbox is unknown.
    """
    return Mailboxes.load(session).accepts(address, mail_domain)

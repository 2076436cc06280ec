"""What applying a configuration did: counts per section and the changed calendars/contracts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# The order sections are reported in: the order they are applied.
SECTIONS = (
    "calendars",
    "clients",
    "contacts",
    "products",
    "contracts",
    "contract coordinators",
    "ticket types",
    "statuses",
    "custom fields",
    "work types",
    "mailboxes",
    "subcontractors",
    "roles",
    "users",
    "tickets",
)

Outcome = Literal["created", "updated", "unchanged"]


@dataclass
class SectionCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        parts = [
            (self.created, "created"),
            (self.updated, "updated"),
            (self.unchanged, "unchanged"),
        ]
        return ", ".join(f"{n} {word}" for n, word in parts if n)


@dataclass
class ApplyResult:
    """The outcome of one apply.

    ``changed_calendars`` and ``changed_contracts`` name what was created or updated (a
    contract counts as changed when its own fields or its ticket types, statuses or custom
    fields changed), so the SLA code can recompute the open tickets under them. Tickets under
    a changed calendar are reached through ``changed_calendars``: a calendar edit does not
    list every contract that uses it. ``rescheduled`` are the open tickets under them, handed
    to the SLA worker to be recomputed after the commit. ``recomputed_tickets`` counts those
    whose deadlines moved (``deadlines`` says it in words), once someone has counted: the
    preview, which recomputes inside its rolled-back savepoint, or ``pulpit config apply``,
    which recomputes after its commit.
    """

    source: str = "<string>"
    counts: dict[str, SectionCounts] = field(default_factory=dict)
    changed_calendars: set[str] = field(default_factory=set)
    changed_contracts: set[str] = field(default_factory=set)
    rescheduled: list[int] = field(default_factory=list)
    recomputed_tickets: int = 0

    def record(self, section: str, outcome: Outcome) -> None:
        counts = self.counts.setdefault(section, SectionCounts())
        setattr(counts, outcome, getattr(counts, outcome) + 1)

    @property
    def changed(self) -> bool:
        return any(c.created or c.updated for c in self.counts.values())

    def __str__(self) -> str:
        if not self.changed:
            return "nothing changed"
        return "; ".join(f"{name}: {self.counts[name]}" for name in SECTIONS if name in self.counts)

    @property
    def deadlines(self) -> str:
        """What the change did to the SLA of open tickets, as a sentence; empty when nothing
        (``pulpit config apply`` prints it under the counts)."""
        n = self.recomputed_tickets
        if not n:
            return ""
        return f"{n} open ticket{'s' if n != 1 else ''} get{'s' if n == 1 else ''} new deadlines"

    def summary(self) -> dict[str, Any]:
        """The counts as JSON, for the audit log."""
        return {
            "source": self.source,
            "counts": {
                name: vars(self.counts[name]).copy() for name in SECTIONS if name in self.counts
            },
            "changed_calendars": sorted(self.changed_calendars),
            "changed_contracts": sorted(self.changed_contracts),
            "rescheduled_tickets": len(self.rescheduled),
        }

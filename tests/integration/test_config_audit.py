"""Every configuration change leaves one audit entry per object it changed, with before and
after, whichever door it came through: a console screen's fragment or ``pulpit config apply``."""

from __future__ import annotations

import datetime as dt
import textwrap
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access.accounts import upsert_user
from core.audit import AuditEntry
from core.configuration import apply_config_file, apply_config_text
from core.configuration import audit as config_audit
from core.configuration.edit import apply_fragment
from core.configuration.loader import load_yaml
from core.configuration.schema import parse_document

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
NOW = dt.datetime(2026, 3, 18, 12, 0, tzinfo=dt.UTC)

BASE = textwrap.dedent(
    """\
    calendars:
      - {name: business, timezone: Europe/Warsaw, hours: {mon: ["08:00-16:00"]}}
    clients:
      - name: Acme
        domains: [acme.example]
        contacts: [{email: anna@acme.example, name: Anna}]
    contracts:
      - code: ACME-2026
        client: Acme
        calendar: business
        mailboxes: [acme@support.example]
        ticket_types:
          - {name: failure, default: true, reaction: 2h, resolution: 8h}
        statuses:
          - {name: New, category: new}
          - {name: Resolved, category: closed}
    users:
      - {email: admin@support.example, role: admin}
    """
)


def entries(session: Session, object_type: str, key: str) -> list[AuditEntry]:
    session.flush()
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.object_type == object_type, AuditEntry.object_key == key)
            .order_by(AuditEntry.id)
        )
    )


def test_a_console_fragment_leaves_an_entry_per_object_with_before_and_after(
    session: Session,
) -> None:
    apply_config_text(session, BASE, actor="setup", now=NOW)
    admin = upsert_user(session, email="admin@support.example", role="admin")
    fragment = {
        "contracts": [
            {
                "code": "ACME-2026",
                "key": True,
                "ticket_types": [{"name": "failure", "reaction": "4h"}],
            }
        ],
        "clients": [{"name": "Acme", "domains": ["acme.pl"]}],
    }
    apply_fragment(session, fragment, actor=admin, now=NOW + dt.timedelta(hours=1))

    contract = entries(session, "contract", "ACME-2026")
    assert len(contract) == 2
    assert contract[0].data["created"] is True and contract[0].actor == "setup"
    change = contract[1]
    assert change.action == "config.change"
    assert change.actor == "admin@support.example"
    assert change.data["source"] == "console"
    assert change.data["created"] is False
    assert change.data["changes"] == {
        "key": [None, True],
        "ticket_types.failure.reaction": ["2h", "4h"],
    }
    client = entries(session, "client", "Acme")[-1]
    assert client.data["changes"] == {"domains": [["acme.example"], ["acme.example", "acme.pl"]]}
    # Untouched objects get nothing; the summary entry stays.
    assert len(entries(session, "calendar", "business")) == 1
    summaries = session.scalars(select(AuditEntry).where(AuditEntry.action == "config.apply"))
    assert len(list(summaries)) == 2


def test_a_cli_file_leaves_per_object_entries_and_a_repeat_leaves_none(
    session: Session, tmp_path: Path
) -> None:
    apply_config_text(session, BASE, now=NOW)
    path = tmp_path / "desk.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            calendars:
              - {name: business, hours: {mon: ["08:00-12:00", "13:00-17:00"]}}
            contracts:
              - code: ACME-2026
                valid_to: 2026-12-31
                statuses:
                  - {name: Waiting, category: paused}
            mailboxes:
              - {address: general@support.example}
            roles:
              - {name: senior-technician, base: technician, grant: [assign]}
            users:
              - {email: admin@support.example, name: Ada}
            """
        ),
        encoding="utf-8",
    )
    apply_config_file(session, path, actor=None, now=NOW)
    calendar = entries(session, "calendar", "business")[-1]
    assert calendar.actor is None and calendar.data["source"] == str(path)
    assert calendar.data["changes"] == {
        "hours.mon": [["08:00-16:00"], ["08:00-12:00", "13:00-17:00"]]
    }
    contract = entries(session, "contract", "ACME-2026")[-1]
    assert contract.data["changes"] == {
        "statuses.Waiting.category": [None, "paused"],
        "statuses.Waiting.name": [None, "Waiting"],
        "valid_to": [None, "2026-12-31"],
    }
    mailbox = entries(session, "mailbox", "general@support.example")
    assert mailbox[-1].data["created"] is True
    role = entries(session, "role", "senior-technician")[-1]
    assert role.data["changes"]["grant"] == [None, ["assign"]]
    user = entries(session, "user", "admin@support.example")[-1]
    assert user.data["changes"] == {"name": [None, "Ada"]}

    count = len(list(session.scalars(select(AuditEntry))))
    apply_config_file(session, path, now=NOW)
    assert len(list(session.scalars(select(AuditEntry)))) == count


def test_a_mailbox_moving_shows_on_both_contracts(session: Session) -> None:
    apply_config_text(session, BASE, now=NOW)
    apply_config_text(
        session,
        "contracts:\n  - {code: OTHER, client: Acme, mailboxes: [acme@support.example]}\n",
        now=NOW,
    )
    old = entries(session, "contract", "ACME-2026")[-1]
    assert old.data["changes"] == {"mailboxes": [["acme@support.example"], None]}
    box = entries(session, "mailbox", "acme@support.example")[-1]
    assert box.data["changes"] == {"contract": ["ACME-2026", "OTHER"]}


def test_snapshots_of_the_demo_configuration_are_quick(session: Session) -> None:
    """Measured: the snapshot of everything the demo file names, before and after."""
    apply_config_file(session, DEMO, now=NOW)
    data, lines = load_yaml(DEMO.read_text(encoding="utf-8"), str(DEMO))
    doc, _ = parse_document(data, lines)
    assert doc is not None
    keys = config_audit.touched(session, doc)
    started = time.perf_counter()
    snap = config_audit.snapshot(session, keys)
    took = time.perf_counter() - started
    assert len(snap) > 10
    assert took < 2.0, f"a snapshot of the demo configuration took {took:.2f}s"

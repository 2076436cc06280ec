"""A configuration file changes exactly the keys it states (docs/configuration.md).

The demo configuration is applied, then every key of every entry is applied alone, in an
entry holding nothing else but the entry's natural key: with its current value (nothing may
change at all) and with another valid value (only that key may change, plus what it drives:
the deadlines of open tickets for an SLA key). Then the two reported bugs, null resets and
explicit removal.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.blobs import DirectoryBlobStore
from core.configuration import ConfigError, apply_config_file, apply_config_text, export_config
from core.configuration.loader import load_yaml
from core.contracts.models import Contract, CustomField, Status
from core.directory.models import Client, Subcontractor, User
from core.mail.models import Mailbox
from core.sla import clocks as sla_clock
from core.sla.models import Calendar
from core.tickets.models import Ticket
from core.worklog.models import WorkType
from tests.factories import recompute_after
from tests.mail_builders import build, deliver, ticket_of

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
NOW = dt.datetime(2026, 3, 18, 12, 0, tzinfo=dt.UTC)  # a Wednesday

Path_ = tuple[Any, ...]

# --- a snapshot of everything a configuration can touch, flattened to paths ----------------


def snapshot(session: Session) -> dict[Path_, Any]:
    session.flush()
    session.expire_all()
    out: dict[Path_, Any] = {}
    for cal in session.scalars(select(Calendar)):
        for attr in ("timezone", "hours", "holidays", "extra_holidays", "day_length_minutes"):
            out[("calendars", cal.name, attr)] = getattr(cal, attr)
    for client in session.scalars(select(Client)):
        out[("clients", client.name, "language")] = client.language
        out[("clients", client.name, "domains")] = sorted(d.domain for d in client.domains)
    for user in session.scalars(select(User)):
        for attr in ("role", "name", "language", "manager", "active", "password_hash"):
            out[("users", user.email, attr)] = getattr(user, attr)
        out[("users", user.email, "client")] = user.client.name if user.client else None
        out[("users", user.email, "subcontractor")] = (
            user.subcontractor.name if user.subcontractor else None
        )
    for contract in session.scalars(select(Contract)):
        code = contract.code
        for attr in ("name", "key", "valid_from", "valid_to", "warning_threshold"):
            out[("contracts", code, attr)] = getattr(contract, attr)
        for attr in ("worklog_billable", "hourly_rate", "currency", "worklog_visible_to_client"):
            out[("contracts", code, attr)] = getattr(contract, attr)
        out[("contracts", code, "client")] = contract.client.name
        out[("contracts", code, "calendar")] = contract.calendar.name if contract.calendar else None
        out[("contracts", code, "products")] = sorted(p.name for p in contract.products)
        out[("contracts", code, "coordinators")] = sorted(u.email for u in contract.coordinators)
        out[("contracts", code, "mailboxes")] = sorted(m.address for m in contract.mailboxes)
        for tt in contract.ticket_types:
            for attr in ("default", "reaction", "resolution", "subject_keywords"):
                out[("contracts", code, "ticket_types", tt.name, attr)] = getattr(tt, attr)
    for wt in session.scalars(select(WorkType)):
        for key, attr in (("label", "labels"), ("rate", "rate"), ("billable", "billable")):
            out[("contracts", wt.contract.code, "work_types", wt.name, key)] = getattr(wt, attr)
        out[("contracts", wt.contract.code, "work_types", wt.name, "position")] = wt.position
    for status in session.scalars(select(Status)):
        where = ("contracts", status.contract.code) if status.contract else ()
        for attr in (
            "category",
            "position",
            "visible_to_client",
            "visible_to_subcontractor",
            "client_can_set",
            "resume_on_client_reply",
        ):
            out[(*where, "statuses", status.name, attr)] = getattr(status, attr)
    for cf in session.scalars(select(CustomField)):
        where = ()
        if cf.contract_id is not None:
            contract = session.get(Contract, cf.contract_id)
            assert contract is not None
            where = ("contracts", contract.code)
        for attr in ("label", "type", "options", "required", "visible_to_client"):
            out[(*where, "custom_fields", cf.name, attr)] = getattr(cf, attr)
    for box in session.scalars(select(Mailbox)):
        out[("mailboxes", box.address, "contract")] = box.contract.code if box.contract else None
        out[("mailboxes", box.address, "imap")] = box.imap
    for sub in session.scalars(select(Subcontractor)):
        out[("subcontractors", sub.name, "contracts")] = sorted(c.code for c in sub.contracts)
    for ticket in session.scalars(select(Ticket)):
        for attr in ("status_id", "reaction_due", "resolution_due", "sla_paused"):
            out[("tickets", ticket.ref, attr)] = getattr(ticket, attr)
    return out


def moved(before: dict[Path_, Any], after: dict[Path_, Any]) -> set[Path_]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


@pytest.fixture
def demo(session: Session) -> Session:
    apply_config_file(session, DEMO, now=NOW)
    # Bring every open ticket's clocks to NOW, so a recomputation caused by a change that
    # moves no deadline finds nothing to move (the scheduler keeps them so in production).
    codes = list(session.scalars(select(Contract.code)))
    sla_clock.recompute_open(session, contract_codes=codes, now=NOW)
    return session


# --- every key of every entry, alone --------------------------------------------------------


class Case:
    """One key of one entry of demo.yaml, applied in an entry holding only its natural key."""

    def __init__(self, doc: dict[str, Any], path: Path_, key: str, value: Any) -> None:
        self.doc, self.path, self.key, self.value = doc, path, key, value

    def __repr__(self) -> str:
        return f"{'/'.join(map(str, self.path))}.{self.key}"


def partial(
    section: str, keys: dict[str, Any], inner: tuple[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    entry = dict(keys)
    if inner is not None:
        entry[inner[0]] = [inner[1]]
    return {section: [entry]}


def cases() -> Iterator[tuple[Case, Path_]]:
    """Each case and the snapshot path of the key it states."""
    data, _ = load_yaml(DEMO.read_text(encoding="utf-8"), "demo.yaml")
    for cal in data["calendars"]:
        for key, value in cal.items():
            if key not in ("name", "description"):
                attr = "day_length_minutes" if key == "day_length" else key
                doc = partial("calendars", {"name": cal["name"], key: value})
                yield (
                    Case(doc, ("calendars", cal["name"]), key, value),
                    ("calendars", cal["name"], attr),
                )
    for client in data["clients"]:
        name = client["name"]
        for key, value in client.items():
            if key == "domains":
                doc = partial("clients", {"name": name, key: value})
                yield Case(doc, ("clients", name), key, value), ("clients", name, key)
        for contact in client["contacts"]:
            for key, value in contact.items():
                if key != "email":
                    inner = {"email": contact["email"], key: value}
                    doc = partial("clients", {"name": name}, ("contacts", inner))
                    attr = "password_hash" if key == "password" else key
                    yield (
                        Case(doc, ("contacts", contact["email"]), key, value),
                        ("users", contact["email"], attr),
                    )
    for product in data["products"]:
        doc = partial("products", {"name": product["name"]})
        yield Case(doc, ("products", product["name"]), "name", product["name"]), ("products",)
    for status in data["statuses"]:
        for key, value in status.items():
            if key != "name":
                doc = partial("statuses", {"name": status["name"], key: value})
                yield (
                    Case(doc, ("statuses", status["name"]), key, value),
                    ("statuses", status["name"], key),
                )
    for cf in data["custom_fields"]:
        for key, value in cf.items():
            if key != "name":
                doc = partial("custom_fields", {"name": cf["name"], key: value})
                yield (
                    Case(doc, ("custom_fields", cf["name"]), key, value),
                    ("custom_fields", cf["name"], key),
                )
    for contract in data["contracts"]:
        code = contract["code"]
        for key, value in contract.items():
            if key in ("code", "ticket_types", "statuses", "custom_fields", "work_types"):
                continue
            doc = partial("contracts", {"code": code, key: value})
            yield Case(doc, ("contracts", code), key, value), ("contracts", code, key)
        for list_key in ("ticket_types", "statuses", "custom_fields", "work_types"):
            for item in contract.get(list_key, []):
                for key, value in item.items():
                    if key != "name":
                        inner = {"name": item["name"], key: value}
                        doc = partial("contracts", {"code": code}, (list_key, inner))
                        yield (
                            Case(doc, ("contracts", code, list_key, item["name"]), key, value),
                            ("contracts", code, list_key, item["name"], key),
                        )
    for box in data["mailboxes"]:
        doc = partial("mailboxes", {"address": box["address"]})
        yield Case(doc, ("mailboxes", box["address"]), "address", box["address"]), ("mailboxes",)
    for sub in data["subcontractors"]:
        for key, value in sub.items():
            if key != "name":
                doc = partial("subcontractors", {"name": sub["name"], key: value})
                yield (
                    Case(doc, ("subcontractors", sub["name"]), key, value),
                    ("subcontractors", sub["name"], key),
                )
    for user in data["users"]:
        for key, value in user.items():
            if key != "email":
                attr = "password_hash" if key == "password" else key
                doc = partial("users", {"email": user["email"], key: value})
                yield (
                    Case(doc, ("users", user["email"]), key, value),
                    ("users", user["email"], attr),
                )


# Another valid value for each key, where one makes sense; None: the key is only re-stated.
OTHER: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "holidays": "DE",
    "extra_holidays": [dt.date(2026, 11, 10)],
    "day_length": "7h",
    "hours": {"mon": ["09:00-17:00"], "tue": ["09:00-17:00"]},
    "domains": ["inna-domena.example"],
    "name": "Zmieniona nazwa",
    "manager": "flip",
    "visible_to_client": "flip",
    "visible_to_subcontractor": "flip",
    "client_can_set": "flip",
    "key": "flip",
    "default": "flip",
    "required": "flip",
    "label": "Inna etykieta",
    "reaction": "3h",
    "resolution": "5d",
    "subject_keywords": ["inne słowo"],
    "calendar": "always",
    "valid_from": dt.date(2024, 6, 1),
    "valid_to": dt.date(2029, 12, 31),
    "warning_threshold": 0.5,
    "products": ["Fortinet FortiGate 60F"],
    "mailboxes": ["nowa-skrzynka@serwis.example"],
    "contracts": ["BILANS-2026"],
    "password": "nowe-haslo",
    "role": "coordinator",
    "options": ["Magazyn"],
    "resume_on_client_reply": "flip",
    "worklog_billable": "flip",
    "worklog_visible_to_client": "flip",
    "hourly_rate": 175.5,
    "currency": "EUR",
    "rate": 77.25,
    "billable": "flip",
}
# Keys whose change moves the deadlines of open tickets (docs/sla.md, rule 8).
SLA_KEYS = {"timezone", "holidays", "extra_holidays", "day_length", "hours", "calendar"}
SLA_KEYS |= {"reaction", "resolution"}


def other_value(case: Case) -> Any:
    if case.path[0] in ("products", "mailboxes"):
        return None  # the natural key alone: another value is another product or mailbox
    other = OTHER.get(case.key)
    if other == "flip":
        return not case.value
    if case.key == "role" and case.value in ("subcontractor", "coordinator"):
        return None  # a subcontractor user stays one; a coordinator has nothing near
    if case.key == "type" or case.key == "category" or case.key in ("client", "subcontractor"):
        return None  # these keys re-wire more than themselves (checked elsewhere)
    if other == case.value or (isinstance(other, list) and set(other) <= set(case.value or [])):
        return None
    return other


def with_value(case: Case, value: Any) -> str:
    doc = yaml.safe_load(yaml.safe_dump(case.doc, allow_unicode=True))  # a deep copy
    entry = doc[next(iter(doc))][0]
    inner_keys = [
        k
        for k in ("contacts", "ticket_types", "statuses", "custom_fields", "work_types")
        if k in entry
    ]
    target = entry[inner_keys[0]][0] if inner_keys else entry
    target[case.key] = value
    return yaml.safe_dump(doc, allow_unicode=True)


def test_each_key_alone_changes_that_key_and_nothing_else(demo: Session) -> None:
    session = demo
    before = snapshot(session)
    failures: list[str] = []
    tried = changed = 0
    for case, path in cases():
        tried += 1
        result = apply_config_text(session, with_value(case, case.value), now=NOW)
        if str(result) != "nothing changed" or result.rescheduled:
            failures.append(f"{case} restated: {result}")
        if moved(before, snapshot(session)):
            failures.append(f"{case} restated moved {sorted(moved(before, snapshot(session)))}")
        other = other_value(case)
        if other is None:
            continue
        changed += 1
        savepoint = session.begin_nested()
        try:
            result = apply_config_text(session, with_value(case, other), now=NOW)
            diff = moved(before, snapshot(session))
        except ConfigError as exc:
            failures.append(f"{case} = {other!r} refused: {exc}")
            savepoint.rollback()
            continue
        savepoint.rollback()
        allowed = {p for p in diff if p[: len(path)] == path}
        if case.key == "mailboxes":  # the mailbox row it routes
            allowed |= {p for p in diff if p[:2] == ("mailboxes", other[0])}
        if case.key in SLA_KEYS:
            allowed |= {p for p in diff if p[0] == "tickets" and p[2] != "status_id"}
        if case.key == "default":  # one default per contract: the old one gives way
            allowed |= {p for p in diff if p[-1] == "default" and p[:2] == path[:2]}
        if not diff or not (diff & {p for p in diff if p[: len(path)] == path}):
            if path != ("products",):
                failures.append(f"{case} = {other!r} changed nothing")
        if diff - allowed:
            failures.append(f"{case} = {other!r} also moved {sorted(diff - allowed)}")
    assert tried > 170 and changed > 110, (tried, changed)
    assert not failures, "\n".join(failures)


# --- the two reported bugs ------------------------------------------------------------------


def test_a_partial_contract_keeps_its_name_calendar_products_and_mailbox(demo: Session) -> None:
    session = demo
    before = snapshot(session)
    text = """\
    contracts:
      - code: BILANS-2026
        client: Biuro Rachunkowe Bilans
        custom_fields:
          - {name: cost_center, label: MPK, type: text}
    """
    result = apply_config_text(session, textwrap.dedent(text), now=NOW)
    assert str(result) == "contracts: 1 unchanged; custom fields: 1 created"
    assert recompute_after(session, result, NOW) == 0
    diff = moved(before, snapshot(session))
    assert diff == {
        ("contracts", "BILANS-2026", "custom_fields", "cost_center", attr)
        for attr in ("label", "type", "options", "required", "visible_to_client")
    }
    contract = session.scalar(select(Contract).where(Contract.code == "BILANS-2026"))
    assert contract is not None and contract.name == "Serwis urządzeń biurowych"
    assert contract.calendar is not None and contract.calendar.name == "business-lunch"
    assert [m.address for m in contract.mailboxes] == ["bilans@serwis.example"]
    assert len(contract.products) == 3 and len(contract.statuses) == 7


def test_a_client_without_domains_keeps_them_and_its_mail_still_routes(
    demo: Session, tmp_path: Path
) -> None:
    session = demo
    text = """\
    clients:
      - name: Biuro Rachunkowe Bilans
        contacts:
          - {email: nowa.osoba@bilans.example, name: Nowa Osoba}
    """
    result = apply_config_text(session, textwrap.dedent(text), now=NOW)
    assert str(result) == "clients: 1 unchanged; contacts: 1 created"
    client = session.scalar(select(Client).where(Client.name == "Biuro Rachunkowe Bilans"))
    assert client is not None and [d.domain for d in client.domains] == ["bilans.example"]
    raw = build(frm="Ktoś <ktos@bilans.example>", to="support@serwis.example")
    row = deliver(
        session,
        DirectoryBlobStore(tmp_path / "blobs"),
        raw,
        now=NOW,
        envelope_to=["support@serwis.example"],
    )
    ticket = ticket_of(session, row)
    assert ticket.contract is not None and ticket.contract.code == "BILANS-2026"


# --- null, remove:, order -------------------------------------------------------------------


def test_null_resets_a_key_to_its_default(demo: Session) -> None:
    session = demo
    text = "contracts:\n  - {code: BILANS-2026, calendar: null}\ncalendars:\n  - {name: business, holidays: null}\n"
    result = apply_config_text(session, text, now=NOW)
    assert "contracts: 1 updated" in str(result) and "calendars: 1 updated" in str(result)
    contract = session.scalar(select(Contract).where(Contract.code == "BILANS-2026"))
    assert contract is not None and contract.calendar is None  # 24/7
    business = session.scalar(select(Calendar).where(Calendar.name == "business"))
    assert business is not None and business.holidays is None
    assert recompute_after(session, result, NOW) > 0
    assert result.deadlines.endswith("get new deadlines")
    assert str(apply_config_text(session, text, now=NOW)) == "nothing changed"


def test_remove_takes_values_out_and_nothing_else(demo: Session) -> None:
    session = demo
    before = snapshot(session)
    text = """\
    clients:
      - {name: Biuro Rachunkowe Bilans, remove: {domains: [bilans.example]}}
    contracts:
      - code: BILANS-2026
        remove: {products: [MikroTik RB4011], mailboxes: [bilans@serwis.example]}
    subcontractors:
      - {name: TechPartner Sp. z o.o., remove: {contracts: [NOWAK-2026]}}
    """
    apply_config_text(session, textwrap.dedent(text), now=NOW)
    assert moved(before, snapshot(session)) == {
        ("clients", "Biuro Rachunkowe Bilans", "domains"),
        ("contracts", "BILANS-2026", "products"),
        ("contracts", "BILANS-2026", "mailboxes"),
        ("mailboxes", "bilans@serwis.example", "contract"),  # unlinked, not deleted
        ("subcontractors", "TechPartner Sp. z o.o.", "contracts"),
    }
    after = snapshot(session)
    assert after[("clients", "Biuro Rachunkowe Bilans", "domains")] == []
    assert after[("mailboxes", "bilans@serwis.example", "contract")] is None
    # Removing what is not there any more changes nothing.
    assert str(apply_config_text(session, textwrap.dedent(text), now=NOW)) == "nothing changed"


def test_a_list_key_set_to_null_empties_it(demo: Session) -> None:
    session = demo
    apply_config_text(session, "contracts:\n  - {code: NOWAK-2026, products: null}\n", now=NOW)
    contract = session.scalar(select(Contract).where(Contract.code == "NOWAK-2026"))
    assert contract is not None and contract.products == []


def test_a_new_status_goes_after_the_one_listed_before_it(demo: Session) -> None:
    session = demo
    text = """\
    contracts:
      - code: NOWAK-2026
        statuses:
          - {name: W realizacji}
          - {name: U klienta na miejscu, category: open}
    """
    result = apply_config_text(session, textwrap.dedent(text), now=NOW)
    assert "statuses: 1 created" in str(result)
    contract = session.scalar(select(Contract).where(Contract.code == "NOWAK-2026"))
    assert contract is not None
    session.refresh(contract)
    assert [s.name for s in contract.statuses] == [
        "Nowe",
        "W realizacji",
        "U klienta na miejscu",
        "Oczekuje na klienta",
        "Oczekuje na części",
        "Przekazane podwykonawcy",
        "Rozwiązane",
        "Zamknięte",
    ]
    # A full list sets the whole order; the export gives it back and applies as a no-op.
    exported = export_config(session)
    assert str(apply_config_text(session, exported, now=NOW)) == "nothing changed"


def test_a_partial_imap_entry_keeps_the_other_imap_keys(session: Session) -> None:
    text = """\
    mailboxes:
      - address: s@x.example
        imap: {host: imap.x.example, user: s@x.example, password_env: PULPIT_IMAP}
    """
    apply_config_text(session, textwrap.dedent(text), now=NOW)
    apply_config_text(session, "mailboxes:\n  - {address: s@x.example, imap: {folder: Pulpit}}\n")
    box = session.scalar(select(Mailbox).where(Mailbox.address == "s@x.example"))
    assert box is not None and box.imap == {
        "host": "imap.x.example",
        "user": "s@x.example",
        "password_env": "PULPIT_IMAP",
        "port": 993,
        "tls": True,
        "folder": "Pulpit",
    }
    apply_config_text(session, "mailboxes:\n  - {address: s@x.example, imap: null}\n")
    assert box.imap is None

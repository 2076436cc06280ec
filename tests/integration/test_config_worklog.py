"""The work log's configuration keys of a contract (docs/configuration.md, "Work log"):
``worklog_billable``, ``hourly_rate``, ``currency``, ``worklog_visible_to_client`` and the
``work_types`` list, with the partial-apply rules of every other key, amounts kept in minor
units and exported as the decimal written, and a work type deleted from the console only
while no entry refers to it."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import AuditEntry
from core.configuration import ConfigError, apply_config_text, export_config
from core.configuration.delete import delete_object
from core.contracts.models import Contract
from core.errors import Conflict
from core.tickets import services as svc
from core.worklog.models import WorkType
from core.worklog.services import Work, log_work
from tests.factories import World, build_world

PRICED = """
contracts:
  - code: ACME-2026
    worklog_billable: false
    hourly_rate: 150.00
    currency: eur
    worklog_visible_to_client: true
    work_types:
      - {name: on_site, label: {pl: Na miejscu, en: On site}, rate: 180.50, billable: true}
      - {name: remote, label: Zdalnie}
      - {name: travel, rate: 90}
"""


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


def apply(session: Session, text: str) -> str:
    return str(apply_config_text(session, textwrap.dedent(text), source="test.yaml"))


def contract(session: Session, code: str = "ACME-2026") -> Contract:
    session.flush()
    session.expire_all()
    found = session.scalar(select(Contract).where(Contract.code == code))
    assert found is not None
    return found


def types_of(session: Session, code: str = "ACME-2026") -> list[WorkType]:
    row = contract(session, code)
    return list(
        session.scalars(
            select(WorkType).where(WorkType.contract_id == row.id).order_by(WorkType.position)
        )
    )


def problems(session: Session, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        apply(session, text)
    return [str(p) for p in caught.value.problems]


def test_the_keys_are_stored_with_amounts_in_minor_units(session: Session, world: World) -> None:
    result = apply(session, PRICED)
    assert "work types: 3 created" in result
    row = contract(session)
    assert (row.worklog_billable, row.hourly_rate, row.currency) == (False, 15000, "EUR")
    assert row.worklog_visible_to_client is True
    stored = [(w.name, w.labels, w.rate, w.billable, w.position) for w in types_of(session)]
    assert stored == [
        ("on_site", {"pl": "Na miejscu", "en": "On site"}, 18050, True, 0),
        ("remote", {"pl": "Zdalnie", "en": "Zdalnie"}, None, None, 1),
        ("travel", {}, 9000, None, 2),
    ]


def test_a_new_contract_gets_the_defaults(session: Session, world: World) -> None:
    apply(session, "contracts: [{code: NEW-1, client: Acme}]")
    row = contract(session, "NEW-1")
    assert (row.worklog_billable, row.hourly_rate, row.currency) == (True, None, "PLN")
    assert row.worklog_visible_to_client is False
    entry = next(
        c for c in yaml.safe_load(export_config(session))["contracts"] if c["code"] == "NEW-1"
    )
    assert not {"worklog_billable", "hourly_rate", "currency", "work_types"} & set(entry)


def test_the_export_writes_the_decimal_and_applies_to_nothing(
    session: Session, world: World
) -> None:
    apply(session, PRICED)
    text = export_config(session)
    assert "hourly_rate: 150.00\n" in text and "rate: 180.50" in text and "rate: 90.00" in text
    entry = next(c for c in yaml.safe_load(text)["contracts"] if c["code"] == "ACME-2026")
    assert entry["currency"] == "EUR" and entry["worklog_billable"] is False
    assert entry["work_types"][1] == {"name": "remote", "label": "Zdalnie"}
    assert apply(session, text) == "nothing changed"
    assert export_config(session) == text


def test_a_key_left_out_stays_and_null_resets_it(session: Session, world: World) -> None:
    apply(session, PRICED)
    assert apply(session, "contracts: [{code: ACME-2026, name: Other}]").startswith("contracts")
    row = contract(session)
    assert (row.hourly_rate, row.currency, row.worklog_billable) == (15000, "EUR", False)
    apply(
        session,
        """
        contracts:
          - code: ACME-2026
            hourly_rate: null
            currency: null
            worklog_billable: null
            worklog_visible_to_client: null
            work_types: [{name: on_site, rate: null, billable: null, label: null}]
        """,
    )
    row = contract(session)
    assert (row.hourly_rate, row.currency, row.worklog_billable) == (None, "PLN", True)
    assert row.worklog_visible_to_client is False
    on_site = types_of(session)[0]
    assert (on_site.labels, on_site.rate, on_site.billable) == ({}, None, None)


def test_work_types_merge_by_name_and_keep_their_order(session: Session, world: World) -> None:
    apply(session, PRICED)
    # One type changed by the key it states, matched case-insensitively; a new one after the
    # one listed before it; the others untouched.
    result = apply(
        session,
        """
        contracts:
          - code: ACME-2026
            work_types: [{name: Remote, rate: 120}, {name: training}]
        """,
    )
    assert "work types: 1 created, 2 updated" in result  # remote changed; travel moved down
    stored = [(w.name, w.rate, w.labels) for w in types_of(session)]
    assert stored == [
        ("on_site", 18050, {"pl": "Na miejscu", "en": "On site"}),
        ("Remote", 12000, {"pl": "Zdalnie", "en": "Zdalnie"}),
        ("training", None, {}),
        ("travel", 9000, {}),
    ]
    # Listed in full, the file sets the order.
    apply(
        session,
        """
        contracts:
          - code: ACME-2026
            work_types: [{name: travel}, {name: training}, {name: Remote}, {name: on_site}]
        """,
    )
    assert [w.name for w in types_of(session)] == ["travel", "training", "Remote", "on_site"]


def test_the_list_cannot_be_emptied_with_null(session: Session, world: World) -> None:
    found = problems(session, "contracts: [{code: ACME-2026, work_types: null}]")
    assert found == [
        "test.yaml:1: contracts[0].work_types: a list of things tickets refer to cannot be "
        "emptied with null; apply never deletes them (leave the key out to keep it as it is)"
    ]


def test_bad_values_are_refused_under_their_keys(session: Session, world: World) -> None:
    found = problems(
        session,
        """
        contracts:
          - code: ACME-2026
            hourly_rate: 150.005
            currency: ZZZ
            work_types:
              - {name: on_site, rate: -5, label: {de: Vor Ort}}
              - {name: On_Site, billable: maybe}
              - {name: "  "}
              - {name: travel, rate: abc}
        """,
    )
    assert found == [
        "test.yaml:4: contracts[0].hourly_rate: an amount has at most two decimal places "
        "(grosze, cents), not 150.005",
        "test.yaml:5: contracts[0].currency: 'ZZZ' is not an ISO 4217 currency code (write "
        "three letters, like PLN or EUR)",
        "test.yaml:7: contracts[0].work_types[0].label: unknown language 'de'; write the text "
        "for pl, en",
        "test.yaml:7: contracts[0].work_types[0].rate: an amount cannot be negative (-5)",
        "test.yaml:8: contracts[0].work_types[1].billable: 'maybe' should be a valid boolean, "
        "unable to interpret input",
        "test.yaml:10: contracts[0].work_types[3].rate: write an amount like 150 or 150.00, "
        "not 'abc'",
    ]
    found = problems(
        session,
        """
        contracts:
          - code: ACME-2026
            work_types: [{name: on_site}, {name: On_Site}, {name: "  "}]
        """,
    )
    assert found == [
        "test.yaml:4: contracts[0].work_types[1].name: work type 'on_site' is listed twice "
        "(first on line 4)",
        "test.yaml:4: contracts[0].work_types[2].name: a work type needs a name",
    ]


def test_every_problem_is_a_catalogued_template(session: Session, world: World) -> None:
    """So the console says it in the admin's language (Problem.localized)."""
    with pytest.raises(ConfigError) as caught:
        apply(
            session,
            """
            contracts:
              - code: ACME-2026
                currency: XYZ
                hourly_rate: 1.234
                work_types: [{name: a, rate: x}]
            """,
        )
    found = list(caught.value.problems)
    with pytest.raises(ConfigError) as caught:
        apply(
            session,
            "contracts: [{code: ACME-2026, work_types: [{name: a}, {name: A}, {name: ''}]}]",
        )
    found += caught.value.problems
    assert len(found) == 5
    assert all(p.template for p in found)


def test_a_billing_change_moves_no_deadline(session: Session, world: World) -> None:
    result = apply_config_text(
        session, "contracts: [{code: ACME-2026, hourly_rate: 99, work_types: [{name: x}]}]"
    )
    assert result.changed and not result.changed_contracts and not result.rescheduled


def test_each_change_is_in_the_contract_history(session: Session, world: World) -> None:
    apply(session, PRICED)
    apply(
        session,
        "contracts: [{code: ACME-2026, hourly_rate: 160.5, work_types: [{name: travel, rate: 95}]}]",
    )
    entry = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.object_type == "contract", AuditEntry.object_key == "ACME-2026")
        .order_by(AuditEntry.id.desc())
    ).first()
    assert entry is not None
    assert entry.data["changes"] == {
        "hourly_rate": ["150.00", "160.50"],
        "work_types.travel.rate": ["90.00", "95.00"],
    }


def test_a_work_type_on_an_entry_is_not_deleted(session: Session, world: World) -> None:
    apply(session, PRICED)
    admin = world.users["admin"]
    ticket = svc.open_ticket(
        session,
        svc.NewTicket(
            subject="Printer", requester=world.users["client"], contract=world.acme_contract
        ),
    )
    session.flush()
    for _ in range(2):
        log_work(session, ticket, actor=admin, work=Work(minutes=30, work_type="on_site"))
    session.flush()
    with pytest.raises(Conflict) as caught:
        delete_object(session, "work_type", "ACME-2026/on_site", admin)
    assert caught.value.status_code == 409
    assert str(caught.value) == (
        "work type on_site of contract ACME-2026 is on 2 work log entries: keep it, the "
        "entries are priced and reported by it"
    )
    before = delete_object(session, "work_type", "remote", admin, contract="ACME-2026")
    assert before["work_types"][1] == {"name": "remote", "label": "Zdalnie"}
    assert [w.name for w in types_of(session)] == ["on_site", "travel"]
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "config.delete")).one()
    assert (entry.object_type, entry.data["what"], entry.data["name"]) == (
        "contract",
        "work_type",
        "remote",
    )
    assert "work_types.remote.label" in entry.data["changes"]

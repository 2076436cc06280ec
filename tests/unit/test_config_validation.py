"""Validating a configuration without a database: every problem is ``file:line: key: sentence``."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from core.configuration import ApplyResult, ConfigError
from core.configuration.checks import Known, KnownContract, KnownField
from core.configuration.seed import parse_age, resolve_created
from core.configuration.validate import validate_config
from core.sla.calendar import BusinessCalendar

NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)

BASE = """\
calendars:
  - name: business
    timezone: Europe/Warsaw
    hours: {mon: ["08:00-16:00"], tue: ["08:00-16:00"]}
clients:
  - name: Acme
    contacts:
      - {email: anna@acme.example, name: Anna}
contracts:
  - code: ACME
    client: Acme
    calendar: business
    ticket_types:
      - {name: failure, default: true, reaction: 2h, resolution: 1d}
"""


def problems(text: str, known: Known | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(textwrap.dedent(text), source="demo.yaml", known=known or Known(), now=NOW)
    return [str(p) for p in caught.value.problems]


def test_the_base_document_is_valid() -> None:
    doc, _ = validate_config(BASE, source="demo.yaml", known=Known(), now=NOW)
    assert doc.contracts[0].ticket_types[0].reaction == "2h"


def test_bad_duration_names_file_line_and_key_path() -> None:
    text = BASE + "      - {name: inspection, reaction: 2x}\n"
    assert problems(text) == [
        "demo.yaml:15: contracts[0].ticket_types[1].reaction: "
        "'2x' is not a duration (use 30m, 2h, 1d, 1w)"
    ]


def test_unknown_key_names_the_allowed_keys() -> None:
    text = BASE.replace("    calendar: business\n", "    calender: business\n")
    [problem] = problems(text)
    assert problem.startswith("demo.yaml:12: contracts[0].calender: unknown key 'calender'; ")
    assert "allowed keys: code, client, name, key, calendar, valid_from" in problem


def test_unknown_top_level_section_is_an_error() -> None:
    [problem] = problems(BASE + "userz: []\n")
    assert problem.startswith("demo.yaml:15: userz: unknown key 'userz'; allowed keys: calendars")


def test_missing_key_is_reported_on_the_entry_that_lacks_it() -> None:
    text = BASE.replace("    client: Acme\n", "")
    assert problems(text) == [
        "demo.yaml:10: contracts[0]: the key 'client' is missing (a new contract needs it)"
    ]


def test_reference_to_a_missing_client_is_reported_on_the_reference() -> None:
    text = BASE.replace("    client: Acme\n", "    client: Acme Corp\n")
    assert problems(text) == [
        "demo.yaml:11: contracts[0].client: there is no client 'Acme Corp' in this file or "
        "the database; known: Acme"
    ]


def test_references_may_point_at_what_the_database_holds() -> None:
    text = """\
    users:
      - {email: jan@acme.example, role: client, client: Old Client}
    subcontractors:
      - {name: FixIt, contracts: [OLD-1]}
    """
    known = Known(clients={"Old Client"})
    known.contracts["OLD-1"] = KnownContract(calendar=None, client="Old Client")
    doc, _ = validate_config(textwrap.dedent(text), source="x.yaml", known=known, now=NOW)
    assert doc.users[0].client == "Old Client"


def test_two_errors_are_both_reported_in_line_order() -> None:
    text = BASE.replace("    client: Acme\n", "    client: Nobody\n") + (
        "      - {name: inspection, reaction: 3 days}\n"
    )
    found = problems(text)
    assert [p.split(":")[1] for p in found] == ["11", "15"]
    with pytest.raises(ConfigError) as caught:
        validate_config(text, source="demo.yaml", known=Known(), now=NOW)
    assert str(caught.value).endswith("(and 1 more problem, on line 15)")


def test_shape_errors_are_all_reported_together() -> None:
    text = """\
    statuses:
      - {name: New, category: fresh}
      - {name: Done, category: closed, visible_to_client: maybe}
    """
    assert problems(text) == [
        "demo.yaml:2: statuses[0].category: 'fresh' is not allowed; "
        "use 'new', 'open', 'paused' or 'closed'",
        "demo.yaml:3: statuses[1].visible_to_client: 'maybe' should be a valid boolean, "
        "unable to interpret input",
    ]


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        ("timezone: Mars/Olympus", "demo.yaml:3: calendars[0].timezone: unknown time zone"),
        ('hours: {monday: ["08:00-16:00"]}', "demo.yaml:4: calendars[0].hours: unknown weekday"),
        ('hours: {mon: ["16:00-08:00"]}', "demo.yaml:4: calendars[0].hours: the interval"),
    ],
)
def test_calendar_problems_point_at_the_key_that_causes_them(replace: str, expected: str) -> None:
    lines = BASE.splitlines(keepends=True)
    index = 2 if replace.startswith("timezone") else 3
    lines[index] = "    " + replace + "\n"
    found = problems("".join(lines))
    assert found[0].startswith(expected), found


def test_unknown_holiday_country_points_at_holidays() -> None:
    text = BASE.replace(
        "    timezone: Europe/Warsaw\n", "    timezone: Europe/Warsaw\n    holidays: XX\n"
    )
    assert problems(text)[0].startswith("demo.yaml:4: calendars[0].holidays: ")


def test_at_most_one_default_ticket_type() -> None:
    text = BASE + "      - {name: inspection, default: true}\n"
    assert problems(text) == [
        "demo.yaml:15: contracts[0].ticket_types[1].default: only one ticket type may be the "
        "default ('failure' already is)"
    ]


def test_statuses_need_a_new_and_a_closed_category() -> None:
    text = (
        BASE
        + "    statuses:\n      - {name: Open, category: open}\n      - {name: New, category: new}\n"
    )
    assert problems(text) == [
        "demo.yaml:15: contracts[0].statuses: the statuses need at least one of category new "
        "and one of category closed (missing: closed)"
    ]


def test_a_mailbox_listed_by_two_contracts_is_an_error() -> None:
    text = BASE + (
        "    mailboxes: [acme@support.example]\n"
        "  - {code: ACME-2, client: Acme, mailboxes: [ACME@support.example]}\n"
    )
    assert problems(text) == [
        "demo.yaml:16: contracts[1].mailboxes[0]: mailbox 'acme@support.example' is listed "
        "twice (first on line 15)"
    ]


def test_invalid_email_and_role() -> None:
    text = "users:\n  - {email: not-an-address, role: boss}\n"
    assert problems(text) == [
        "demo.yaml:2: users[0].email: 'not-an-address' is not an e-mail address",
        "demo.yaml:2: users[0].role: unknown role 'boss'; use one of: admin, coordinator, "
        "technician, client, subcontractor",
    ]


def test_a_subcontractor_user_needs_the_company() -> None:
    assert problems("users:\n  - {email: a@fix.example, role: subcontractor}\n") == [
        "demo.yaml:2: users[0]: a subcontractor user needs 'subcontractor:' (the company's name)"
    ]


def test_imap_password_is_refused_with_a_hint() -> None:
    text = "mailboxes:\n  - address: s@x.example\n    imap: {host: h, user: u, password: p}\n"
    [problem] = problems(text)
    assert problem.startswith("demo.yaml:3: mailboxes[0].imap.password: unknown key 'password'")
    assert "password_env" in problem


def test_imap_poll_seconds_is_accepted_and_must_be_positive() -> None:
    """mailgw.imap polls every ``poll_seconds`` on a server without IDLE (60 when absent)."""
    text = "mailboxes:\n  - address: s@x.example\n    imap: {host: h, user: u, poll_seconds: 30}\n"
    doc, _ = validate_config(text, source="demo.yaml", known=Known(), now=NOW)
    assert doc.mailboxes[0].imap is not None
    assert doc.mailboxes[0].imap.model_dump(exclude_none=True)["poll_seconds"] == 30
    unset = text.replace(", poll_seconds: 30", "")
    doc, _ = validate_config(unset, source="demo.yaml", known=Known(), now=NOW)
    assert doc.mailboxes[0].imap is not None
    assert "poll_seconds" not in doc.mailboxes[0].imap.model_dump(exclude_none=True)
    [problem] = problems(text.replace("poll_seconds: 30", "poll_seconds: 0"))
    assert problem.startswith("demo.yaml:3: mailboxes[0].imap.poll_seconds: ")


def test_a_short_password_fails_before_anything_is_written() -> None:
    text = "users:\n  - {email: a@x.example, role: admin, password: abc}\n"
    assert problems(text) == [
        "demo.yaml:2: users[0].password: a password must have at least 4 characters"
    ]


# --- partial entries: checked against what they keep ---------------------------------------


def stored() -> Known:
    """A database holding contract ACME on the 08:00-16:00 calendar, with its statuses."""
    known = Known(clients={"Acme"})
    hours = {"mon": ["08:00-16:00"], "tue": ["08:00-16:00"]}
    definition = {"timezone": "Europe/Warsaw", "hours": hours}
    known.calendar_definitions["business"] = definition
    known.calendars["business"] = BusinessCalendar.from_config(definition)
    known.contracts["ACME"] = KnownContract(
        calendar=known.calendars["business"],
        client="Acme",
        types={"failure"},
        statuses={"new", "waiting", "done"},
        calendar_name="business",
        targets={"failure": ("2h", "1d")},
        status_categories={"new": "new", "waiting": "paused", "done": "closed"},
    )
    known.users["ola@desk.example"] = "coordinator"
    known.field_definitions[(None, "room")] = KnownField("select", ["A1", "A2"])
    known.mailbox_imap["s@x.example"] = {"host": "imap.x.example", "user": "s", "port": 993}
    return known


def valid(text: str, known: Known) -> None:
    validate_config(textwrap.dedent(text), source="demo.yaml", known=known, now=NOW)


def test_a_partial_entry_for_what_exists_needs_no_required_key() -> None:
    valid(
        """\
        calendars:
          - {name: business, holidays: PL}
        contracts:
          - code: ACME
            key: true
            ticket_types:
              - {name: failure, subject_keywords: [awaria]}
            statuses:
              - {name: Waiting, resume_on_client_reply: false}
        statuses:
          - {name: New, category: new}
          - {name: Done, category: closed}
        custom_fields:
          - {name: room, options: [B1]}
        mailboxes:
          - {address: s@x.example, imap: {folder: Pulpit}}
        users:
          - {email: ola@desk.example, active: false}
        """,
        stored(),
    )


def test_a_partial_entry_for_something_new_names_the_missing_key() -> None:
    text = """\
    calendars:
      - {name: night, holidays: PL}
    contracts:
      - code: ACME
        statuses:
          - {name: Parked}
    users:
      - {email: new@desk.example, name: Nowy}
    mailboxes:
      - {address: t@x.example, imap: {host: imap.x.example}}
    """
    assert problems(text, stored()) == [
        "demo.yaml:2: calendars[0]: the key 'hours' is missing (a new calendar needs it)",
        "demo.yaml:6: contracts[0].statuses[0]: the key 'category' is missing "
        "(a new status needs it)",
        "demo.yaml:8: users[0]: the key 'role' is missing (a new user needs it)",
        "demo.yaml:10: mailboxes[0].imap: the key 'user' is missing",
    ]


def test_null_resets_a_key_but_not_one_an_object_needs() -> None:
    valid("contracts:\n  - {code: ACME, calendar: null, name: null}\n", stored())
    assert problems("calendars:\n  - {name: business, hours: null}\n", stored()) == [
        "demo.yaml:2: calendars[0].hours: hours cannot be null: every calendar has one"
    ]
    [problem] = problems("contracts:\n  - {code: ACME, statuses: null}\n", stored())
    assert problem.startswith("demo.yaml:2: contracts[0].statuses: a list of things tickets ")


def test_a_partial_ticket_type_is_checked_on_the_stored_calendar() -> None:
    text = "contracts:\n  - code: ACME\n    ticket_types: [{name: failure, resolution: 2 days}]\n"
    assert problems(text, stored()) == [
        "demo.yaml:3: contracts[0].ticket_types[0].resolution: '2 days' is not a duration "
        "(use 30m, 2h, 1d, 1w)"
    ]
    valid(text.replace("2 days", "2d"), stored())


def test_a_merged_status_list_still_needs_new_and_closed() -> None:
    known = stored()
    valid("contracts:\n  - {code: ACME, statuses: [{name: Open, category: open}]}\n", known)
    text = "contracts:\n  - {code: ACME, statuses: [{name: Done, category: open}]}\n"
    assert problems(text, stored()) == [
        "demo.yaml:2: contracts[0].statuses: the statuses need at least one of category new "
        "and one of category closed (missing: closed)"
    ]


def test_resume_on_client_reply_is_for_paused_statuses() -> None:
    text = "contracts:\n  - {code: ACME, statuses: [{name: New, resume_on_client_reply: true}]}\n"
    assert problems(text, stored()) == [
        "demo.yaml:2: contracts[0].statuses[0].resume_on_client_reply: only a paused status "
        "can resume on a client's reply"
    ]


def test_options_merge_and_a_type_change_must_drop_them() -> None:
    assert problems("custom_fields:\n  - {name: room, type: text}\n", stored()) == [
        "demo.yaml:2: custom_fields[0].options: options are for select fields, not text "
        "(options: null drops the stored ones)"
    ]
    valid("custom_fields:\n  - {name: room, type: text, options: null}\n", stored())


def test_a_value_listed_and_removed_at_once_is_an_error() -> None:
    text = """\
    clients:
      - name: Acme
        domains: [acme.example]
        remove: {domains: [ACME.example]}
    """
    assert problems(text) == [
        "demo.yaml:4: clients[0].remove.domains[0]: 'acme.example' is both listed under "
        "domains and removed"
    ]


def test_remove_names_what_apply_never_removes() -> None:
    [problem] = problems("contracts:\n  - {code: ACME, remove: {statuses: [Done]}}\n", stored())
    assert problem.startswith("demo.yaml:2: contracts[0].remove.statuses: unknown key 'statuses'")
    assert problem.endswith("apply never removes contacts, ticket types, statuses or custom fields")


# --- seeded tickets -------------------------------------------------------------------------

TICKET = """\
tickets:
  - ref: T-1
    subject: Drukarka nie drukuje
    requester: anna@acme.example
    contract: ACME
    created: 3d
    timeline:
      - {after: 1h, status: Nowe, by: anna@acme.example}
      - {after: 2h, comment: hi, worklog: 5, by: anna@acme.example}
      - {after: 3h, assign: ghost@acme.example, by: anna@acme.example}
"""


def test_timeline_shape_is_checked_before_references() -> None:
    # The entry with two actions is a shape error, so reference checks wait for the fix.
    found = problems(BASE + TICKET)
    assert found == [
        "demo.yaml:23: tickets[0].timeline[1]: each timeline entry needs exactly one of comment, "
        "status, assign or worklog (this one has comment, worklog)"
    ]


def test_ticket_status_and_assignee_references() -> None:
    text = BASE + TICKET.replace("comment: hi, worklog: 5", "comment: hi")
    assert problems(text) == [
        "demo.yaml:22: tickets[0].timeline[0].status: there is no status 'Nowe' for contract ACME",
        "demo.yaml:24: tickets[0].timeline[2].assign: ghost@acme.example is not a user or "
        "contact in this file or the database",
    ]


def test_an_unknown_requester_is_allowed_only_in_triage() -> None:
    text = (
        BASE + "tickets:\n  - {ref: T-1, subject: x, requester: who@else.example, contract: ACME}\n"
    )
    assert problems(text) == [
        "demo.yaml:16: tickets[0].requester: who@else.example is neither a contact nor a user"
    ]
    triage = BASE + "tickets:\n  - {ref: T-1, subject: x, requester: who@else.example}\n"
    validate_config(triage, source="demo.yaml", known=Known(), now=NOW)


def test_created_in_the_future_or_without_zone_is_refused() -> None:
    text = BASE + (
        "tickets:\n"
        "  - {ref: T-1, subject: x, requester: anna@acme.example, created: 2030-01-01T10:00:00Z}\n"
        "  - {ref: T-2, subject: x, requester: anna@acme.example, created: '2026-01-01 10:00'}\n"
    )
    found = problems(text)
    assert found[0].startswith("demo.yaml:16: tickets[0].created: 2030-01-01T10:00:00+00:00 is in")
    assert found[1].startswith("demo.yaml:17: tickets[1].created: 2026-01-01T10:00:00 has no time")


def test_ages_and_timestamps() -> None:
    assert parse_age("1d4h") == timedelta(hours=28)
    assert parse_age("1w") == timedelta(days=7)
    assert resolve_created("40m", NOW) == NOW - timedelta(minutes=40)
    assert resolve_created("2026-03-01T09:00:00+01:00", NOW) == datetime(2026, 3, 1, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="is not a time span"):
        parse_age("soon")


# --- the result -----------------------------------------------------------------------------


def test_result_summary_reads_like_a_sentence() -> None:
    result = ApplyResult()
    assert str(result) == "nothing changed"
    result.record("calendars", "created")
    result.record("calendars", "unchanged")
    result.record("users", "updated")
    assert str(result) == "calendars: 1 created, 1 unchanged; users: 1 updated"
    assert result.summary()["counts"]["users"] == {"created": 0, "updated": 1, "unchanged": 0}
    unchanged = ApplyResult()
    unchanged.record("users", "unchanged")
    assert not unchanged.changed and str(unchanged) == "nothing changed"

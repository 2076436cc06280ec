"""The YAML loader: line numbers per key path, duplicate keys, syntax errors, merge keys."""

from __future__ import annotations

import pytest

from core.configuration import ConfigError, Problem
from core.configuration.loader import load_yaml

TEXT = """\
# a comment
calendars:
  - name: business
    hours:
      mon: ["08:00-16:00"]
contracts:
  - code: A
    ticket_types:
      - {name: failure, reaction: 2h}
      - name: inspection
        reaction: 1d
"""


def test_every_key_path_has_its_line() -> None:
    data, lines = load_yaml(TEXT, "x.yaml")
    assert data["contracts"][0]["ticket_types"][1]["reaction"] == "1d"
    assert lines.line_for(("calendars",)) == 2
    assert lines.line_for(("calendars", 0, "hours", "mon")) == 5
    assert lines.line_for(("contracts", 0, "ticket_types", 0, "reaction")) == 9
    assert lines.line_for(("contracts", 0, "ticket_types", 1, "reaction")) == 11


def test_a_missing_key_is_placed_on_its_nearest_ancestor() -> None:
    _, lines = load_yaml(TEXT, "x.yaml")
    assert lines.line_for(("contracts", 0, "client")) == 7


def test_problem_reads_file_line_path_sentence() -> None:
    _, lines = load_yaml(TEXT, "demo.yaml")
    problem = lines.problem(("contracts", 0, "ticket_types", 1, "reaction"), "is bad")
    assert str(problem) == "demo.yaml:11: contracts[0].ticket_types[1].reaction: is bad"


def test_empty_file_is_an_empty_configuration() -> None:
    assert load_yaml("# nothing here\n", "x.yaml")[0] == {}


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"^x\.yaml:3: this is not valid YAML"):
        load_yaml("users:\n  - email: a@b.example\n   role: admin\n", "x.yaml")


def test_an_unclosed_bracket_says_where_it_was_opened() -> None:
    with pytest.raises(ConfigError, match=r"flow sequence that starts on line 3"):
        load_yaml("users:\n  - email: a@b.example\n  - [unclosed\n", "x.yaml")


def test_a_key_written_twice_is_an_error_naming_both_lines() -> None:
    text = "users:\n  - email: a@b.example\n    role: admin\n    role: client\n"
    with pytest.raises(ConfigError) as caught:
        load_yaml(text, "x.yaml")
    assert str(caught.value) == (
        "x.yaml:4: users[0].role: this key is written twice in one mapping (first on line 3)"
    )


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml("- a\n- b\n", "x.yaml")


def test_merge_keys_and_anchors_work_and_explicit_keys_win() -> None:
    text = """\
base: &base {timezone: Europe/Warsaw, hours: "24/7"}
calendars:
  - <<: *base
    name: always
  - <<: *base
    name: office
    hours: {mon: ["08:00-16:00"]}
"""
    data, _ = load_yaml(text, "x.yaml")
    assert data["calendars"][0] == {"timezone": "Europe/Warsaw", "hours": "24/7", "name": "always"}
    assert data["calendars"][1]["hours"] == {"mon": ["08:00-16:00"]}


def test_a_self_referencing_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="refers to itself"):
        load_yaml("a: &x [*x]\n", "x.yaml")


def test_config_error_is_one_line_with_a_count_and_keeps_every_problem() -> None:
    error = ConfigError(
        [
            Problem(9, "f.yaml", "users[1].role", "bad role"),
            Problem(3, "f.yaml", "calendars[0].timezone", "bad zone"),
            Problem(12, "f.yaml", "users[2].email", "bad e-mail"),
        ]
    )
    assert str(error) == (
        "f.yaml:3: calendars[0].timezone: bad zone (and 2 more problems, on lines 9, 12)"
    )
    assert "\n" not in str(error)
    assert error.report.splitlines() == [
        "f.yaml:3: calendars[0].timezone: bad zone",
        "f.yaml:9: users[1].role: bad role",
        "f.yaml:12: users[2].email: bad e-mail",
    ]

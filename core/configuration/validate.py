"""Checking a configuration without writing anything: YAML, shape, then whole-file rules."""

from __future__ import annotations

from datetime import datetime

from core.configuration.checks import Known, check_document
from core.configuration.errors import ConfigError
from core.configuration.loader import Lines, load_yaml
from core.configuration.schema import ConfigDocument, parse_document
from core.configuration.seed import check_tickets


def validate_config(
    text: str, *, source: str, known: Known, now: datetime
) -> tuple[ConfigDocument, Lines]:
    """Every check, without writing: YAML, shape, then the rules needing the whole file.

    ``known`` is what the database already holds (``load_known(session)``, or an empty
    ``Known()`` for a file that must stand alone). Shape problems are reported alone: the
    cross-reference rules need a well-formed document to run on.
    """
    data, lines = load_yaml(text, source)
    doc, problems = parse_document(data, lines)
    if doc is None:
        raise ConfigError(problems)
    checker = check_document(doc, lines, known)
    check_tickets(checker, doc, known, now)
    if checker.problems:
        raise ConfigError(checker.problems)
    return doc, lines

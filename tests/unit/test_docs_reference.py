"""The reference pages in docs/ keep up with the code, and no page points outside the repository.

Each check walks what the code defines (settings fields, argparse commands and options, the
configuration schema, the API's route handlers) and looks for it in its page, so a new setting,
option, key or endpoint without documentation fails here rather than drifting unnoticed.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path

import pytest
from pydantic import BaseModel

from config.settings import Settings
from core.configuration import schema
from core.configuration.schema import ConfigDocument
from pulpit.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "deploy" / "README.md",
    ROOT / "templates" / "mail" / "README.md",
]


def page(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [f.name for f in fields(Settings)])
def test_every_setting_is_documented(name: str) -> None:
    variable = f"`PULPIT_{name.upper()}`"
    assert variable in page("docs/settings.md")
    assert f"`{name}`" in page("docs/settings.md"), f"the TOML key {name} is not in the table"
    assert variable in page("README.md")


def _commands(
    parser: argparse.ArgumentParser, prefix: str = "pulpit"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{prefix} {name}")
    return found


def test_every_command_and_option_is_documented() -> None:
    text = page("docs/commands.md")
    missing = []
    for command, parser in _commands(build_parser()):
        if command != "pulpit" and f"`{command}" not in text:
            missing.append(command)
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option not in text:
                    missing.append(f"{command} {option}")
    assert not missing, f"not in docs/commands.md: {missing}"


def _keys(model: type[BaseModel]) -> set[str]:
    """The keys of a section and of every section nested in it (``ImapSpec`` in a mailbox)."""
    keys = set(model.model_fields)
    for info in model.model_fields.values():
        for inner in re.findall(r"\b(\w+Spec)\b", str(info.annotation)):
            keys |= _keys(getattr(schema, inner))
    return keys


def test_every_configuration_key_is_documented() -> None:
    text = page("docs/configuration.md")
    missing = sorted(k for k in _keys(ConfigDocument) if f"`{k}" not in text)
    assert not missing, f"not in docs/configuration.md: {missing}"


def test_every_api_endpoint_is_documented() -> None:
    from web.api import api_handlers

    text = page("docs/api.md")
    missing = []
    for handler in api_handlers:
        for method in handler.http_methods:
            for path in handler.paths:
                pattern = re.escape(f"{method} /api/v1{path}")
                pattern = re.sub(r"\\\{\w+(?::\w+)?\\\}", r"\\{\\w+\\}", pattern)
                if not re.search(pattern + r"(?![\w/{-])", text):
                    missing.append(f"{method} /api/v1{path}")
    assert not missing, f"not in docs/api.md: {missing}"


@pytest.mark.parametrize("doc", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_point_only_inside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert "INTERFACE.md" not in text
    assert "../" not in text


@pytest.mark.parametrize("doc", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_paths_in_pages_exist(doc: Path) -> None:
    """``core/sla/clocks.py`` and ``core.sla.clocks`` (or a name in it) name real code."""
    text = doc.read_text(encoding="utf-8")
    missing = []
    for path in re.findall(r"`((?:core|mailgw|web|workers|pulpit|config|tests)/[\w/]+\.py)`", text):
        if not (ROOT / path).exists():
            missing.append(path)
    for dotted in re.findall(r"`((?:core|mailgw|web|workers)(?:\.\w+)+)", text):
        parts = dotted.split(".")
        module = ROOT.joinpath(*parts)
        parent = ROOT.joinpath(*parts[:-1])
        if module.is_dir() or module.with_suffix(".py").exists():
            continue
        source = parent.with_suffix(".py")
        if source.exists() and re.search(
            rf"^\s*(?:def |class )?{parts[-1]}\b", source.read_text(), re.M
        ):
            continue
        missing.append(dotted)
    assert not missing, f"{doc.relative_to(ROOT)} names code that is not there: {missing}"

"""Reading a YAML configuration while remembering on which line every key sits.

PyYAML's ``safe_load`` forgets positions, so we compose the node tree (which carries marks)
and build plain Python values ourselves, recording the line of each key path. Errors found
later, by the schema or by the cross-reference checks, are then reported as
``file:line: key.path: sentence``.

YAML's merge keys (``<<: *defaults``) and anchors work as usual. A key written twice in one
mapping is an error: PyYAML would silently keep the last one, hiding a typo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.configuration.errors import (
    ConfigError,
    Loc,
    Problem,
    format_path,
    sentence,
    template_of,
)
from core.errors import N_, Phrase

_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_DEPTH = 40


@dataclass
class Lines:
    """The 1-based line of each key path in one file, and the file's name for messages."""

    source: str
    by_path: dict[Loc, int] = field(default_factory=dict)

    def line_for(self, loc: Loc) -> int:
        """The line of ``loc``, or of its nearest ancestor written in the file (a missing key
        is reported on the line of the mapping that lacks it)."""
        loc = tuple(loc)
        while loc:
            if loc in self.by_path:
                return self.by_path[loc]
            loc = loc[:-1]
        return self.by_path.get((), 1)

    def problem(self, loc: Loc, message: str, /, **params: Any) -> Problem:
        """The problem at ``loc``: ``message`` is a catalogued template (``N_``) filled with
        ``params``."""
        return Problem.of(self.line_for(loc), self.source, format_path(loc), message, **params)

    def refused(self, loc: Loc, exc: BaseException) -> Problem:
        """The problem at ``loc`` that ``exc`` reports, keeping its template when it has one."""
        template, params = template_of(exc)
        line, path = self.line_for(loc), format_path(loc)
        return Problem(line, self.source, path, sentence(exc), template, params, whole=True)


def load_yaml(text: str, source: str) -> tuple[dict[str, Any], Lines]:
    """Parse ``text`` into plain dicts, lists and scalars, with the line of every key path.

    Raises :class:`ConfigError` for YAML syntax errors, duplicate keys and a top level that
    is not a mapping. An empty file is an empty configuration.
    """
    lines = Lines(source)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return {}, lines
        problems: list[Problem] = []
        data = _build(loader, root, (), lines, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        # PyYAML's own words (English) are kept as they are, inside a catalogued sentence.
        said: str | Phrase = exc.problem or exc.context or Phrase(N_("it cannot be read"))
        if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            # An unclosed bracket or quote is found at the end; say where it was opened.
            problem = Problem.of(
                line,
                source,
                "",
                N_(
                    "this is not valid YAML: %(problem)s (%(context)s that starts on line %(line)s)"
                ),
                problem=said,
                context=exc.context,
                line=exc.context_mark.line + 1,
            )
        else:
            problem = Problem.of(
                line, source, "", N_("this is not valid YAML: %(problem)s"), problem=said
            )
        raise ConfigError([problem]) from None
    finally:
        loader.dispose()
    if problems:
        raise ConfigError(problems)
    if not isinstance(data, dict):
        raise ConfigError(
            [
                Problem.of(
                    root.start_mark.line + 1,
                    source,
                    "",
                    N_("the top level must be a mapping of sections (calendars:, clients:, ...)"),
                )
            ]
        )
    return data, lines


def _build(
    loader: yaml.SafeLoader, node: Node, loc: Loc, lines: Lines, problems: list[Problem]
) -> Any:
    if isinstance(node, ScalarNode):
        return loader.construct_object(node, deep=True)
    if len(loc) > _MAX_DEPTH:
        # Only an alias that contains itself (``&a [*a]``) nests this deep.
        raise ConfigError([lines.problem(loc, N_("this value refers to itself through an alias"))])
    if isinstance(node, SequenceNode):
        items = []
        for index, child in enumerate(node.value):
            lines.by_path[loc + (index,)] = child.start_mark.line + 1
            items.append(_build(loader, child, loc + (index,), lines, problems))
        return items
    if isinstance(node, MappingNode):
        return _build_mapping(loader, node, loc, lines, problems)
    return loader.construct_object(node, deep=True)  # pragma: no cover - no other node kinds


def _build_mapping(
    loader: yaml.SafeLoader, node: MappingNode, loc: Loc, lines: Lines, problems: list[Problem]
) -> dict[Any, Any]:
    # Duplicates are looked for among the keys written here, before merge keys add theirs:
    # a key given explicitly is allowed to override one brought in by ``<<``.
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
            continue
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            problems.append(
                Problem.of(
                    line,
                    lines.source,
                    format_path(loc + (str(key),)),
                    N_("this key is written twice in one mapping (first on line %(first)s)"),
                    first=seen[key],
                )
            )
        else:
            seen[key] = line
    loader.flatten_mapping(node)  # resolves ``<<: *anchor`` merge keys in place
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            problems.append(
                lines.problem(loc, N_("a key must be a plain word, not a list or a mapping"))
            )
            continue
        key = loader.construct_object(key_node)
        # Keys are names in the schema; a YAML 1.1 bare ``on:`` or ``yes:`` would be a bool.
        key = key if isinstance(key, str) else str(key_node.value)
        path = loc + (key,)
        lines.by_path[path] = key_node.start_mark.line + 1
        result[key] = _build(loader, value_node, path, lines, problems)
    return result

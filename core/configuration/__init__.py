"""Declarative configuration: ``pulpit config apply FILE`` and ``pulpit config export``.

A YAML file (see docs/configuration.md) is read with the line of every
key (``loader``), checked for shape (``schema``) and for references, durations and the rules
that need the whole file or the database (``checks``, ``seed``), and only then upserted by
natural keys (``apply``). ``export`` writes the current configuration back as YAML.

The public API, used by the command line and by tests::

    result = apply_config_file(session, Path("config/examples/demo.yaml"), actor="admin@...")
    print(result)            # "calendars: 2 created; clients: 3 created; ..." or "nothing changed"
    text = export_config(session)

Errors are :class:`ConfigError` (an ``InputError``): ``str()`` is one line naming the first
problem as ``file:line: key.path: sentence`` and how many more there are; ``problems`` and
``report`` hold them all.
"""

from __future__ import annotations

from core.configuration.apply import apply_config_file, apply_config_text
from core.configuration.errors import ConfigError, Problem
from core.configuration.export import export_config
from core.configuration.result import ApplyResult, SectionCounts

__all__ = [
    "ApplyResult",
    "ConfigError",
    "Problem",
    "SectionCounts",
    "apply_config_file",
    "apply_config_text",
    "export_config",
]

"""Admin console: subcontractors (issue 13). See web/console/admin/__init__.py."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

handlers: list[ControllerRouterHandler] = []

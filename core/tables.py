"""Every table of Pulpit: importing this module registers each package's models.

SQLAlchemy resolves relationships between packages by class name when the mappers are first
used, and Alembic compares ``Base.metadata`` with the migrations; both need every model
imported. :mod:`core.db` imports this module, so any session sees the whole schema.
"""

from __future__ import annotations

import core.access.models
import core.audit
import core.blobs
import core.contracts.models
import core.contracts.snapshot
import core.desk.models
import core.directory.models
import core.mail.models
import core.sla.models
import core.tickets.models
import core.tickets.search
import core.worklog.models
from core.orm import Base

__all__ = ["Base", "core"]

"""Attachment content, stored once by sha256 under ``<data dir>/blobs``.

A blob is written to a temporary file, fsynced, renamed into place and its directory fsynced
before the database row that refers to it is committed: a committed attachment always has its
bytes on disk, even after a power cut.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.clock import utcnow
from core.orm import Base


class Blob(Base):
    """File content, stored once by sha256 under the data dir."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class BlobStore:
    root: Path

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, session: Session, data: bytes) -> Blob:
        """Store the content (file fsynced with its directory) and its row; the row."""
        digest = self.write(data)
        blob = session.get(Blob, digest)
        if blob is None:
            blob = Blob(sha256=digest, size=len(data))
            session.add(blob)
            session.flush()
        return blob

    def write(self, data: bytes) -> str:
        """Write the content's file (fsynced, and its directory) without a database row; its
        sha256. For callers that add the row themselves (:func:`core.mail.inbound.store_many`)."""
        digest = hashlib.sha256(data).hexdigest()
        self._write(digest, data)
        return digest

    def _write(self, digest: str, data: bytes) -> None:
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def delete(self, sha256: str) -> bool:
        """Remove the content's file (the caller removes or keeps its row); whether there was
        one. For erasing personal data (``core.privacy``)."""
        target = self.path(sha256)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        return True

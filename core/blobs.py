"""Attachment and raw-mail content, stored once by sha256: in a directory or in PostgreSQL.

Two stores share one interface (:class:`BlobStore`), so no caller cares where the bytes are:

- :class:`DirectoryBlobStore` keeps files under ``<data dir>/blobs`` (or the directory
  ``PULPIT_BLOB_URL=file:///path`` names). One host, or a directory every host mounts.
- :class:`DatabaseBlobStore` keeps the content in the ``blob_chunks`` table of the PostgreSQL
  database, in chunks of :data:`CHUNK_BYTES`, so several hosts (web, gateway, workers) that
  share only the database see every attachment (``PULPIT_BLOB_URL=database:``).

:func:`open_blob_store` picks one from the setting. Either way a committed row never refers
to content that is not durably stored: the directory store fsyncs the file and its directory
before returning, the database store commits the chunks (in its own transaction for
:meth:`BlobStore.write`, in the caller's for :meth:`BlobStore.put`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from core.clock import utcnow
from core.errors import PulpitError
from core.orm import Base, transaction_memo

# A chunk of the database store: big enough that a 25 MB mail is 25 rows, small enough that no
# single value (or the memory to send or read it) grows with the attachment.
CHUNK_BYTES = 1024 * 1024


class Blob(Base):
    """File content, stored once by sha256 (the bytes are in the blob store)."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BlobChunk(Base):
    """One piece of a content in the database store: ``seq`` 0, 1, ... in order.

    Keyed by the content's sha256 and not tied to a ``blobs`` row: :meth:`BlobStore.write`
    stores the content before the row that refers to it exists. Content always has chunk 0
    (empty for empty content), so chunk 0 says whether the content is there.
    """

    __tablename__ = "blob_chunks"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


CHUNKS: Table = BlobChunk.__table__  # type: ignore[assignment]


class BlobMissing(FileNotFoundError):
    """The store has no content under this sha256 (lost, or deleted on purpose)."""


class BlobDamaged(OSError):
    """The stored bytes do not hash to their sha256: a chunk or the file was lost or changed.

    Not a ValueError on purpose: the web server's streaming takes a ValueError from an
    iterator for its end and would send a cut-off file as if it were whole.
    """


class BlobStoreError(PulpitError):
    """The blob store cannot be opened as configured; the message says why."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The transaction's ``blobs`` rows by sha256, None for content known to have none yet: what
# :func:`prefetch_rows` looked up and what :meth:`BlobStore.put` added (held here: the
# session keeps unreferenced objects only weakly, and a pending row is outside its map).
_ROWS = "blob_rows"


def prefetch_rows(session: Session, digests: Iterable[str]) -> None:
    """Look up the ``blobs`` rows of these contents in one query, for :meth:`BlobStore.put`
    to answer from for the rest of the transaction (a batch of inbound mail: each attachment
    would ask alone). Rows are never changed in place."""
    wanted = sorted(set(digests))
    if not wanted:
        return
    with session.no_autoflush:
        found = {b.sha256: b for b in session.scalars(select(Blob).where(Blob.sha256.in_(wanted)))}
    known: dict[str, Blob | None] = transaction_memo(session).setdefault(_ROWS, {})
    for digest in wanted:
        known.setdefault(digest, found.get(digest))


class BlobStore(ABC):
    """Where content lives, by sha256. Callers use only these methods, whatever the store."""

    def put(self, session: Session, data: bytes) -> Blob:
        """Store the content and add its ``blobs`` row (flushed with the session, not
        committed); the row.

        The database store writes the content in ``session``'s transaction, so it commits
        or rolls back with the row; the directory store writes its file (fsynced) now."""
        digest = sha256_of(data)
        self._put_content(session, digest, data)
        # Not flushed here, nor before the lookup: a batch of inbound mail inserts its rows in
        # one flush (mailgw.process.run_batch). A row added earlier in this flush is pending,
        # outside the identity map that session.get reads.
        known: dict[str, Blob | None] = transaction_memo(session).setdefault(_ROWS, {})
        blob = known.get(digest)
        if digest not in known or (blob is not None and blob not in session):
            with session.no_autoflush:
                blob = session.get(Blob, digest)
        if blob is None:
            blob = Blob(sha256=digest, size=len(data))
            session.add(blob)
        known[digest] = blob
        return blob

    @abstractmethod
    def _put_content(self, session: Session, digest: str, data: bytes) -> None: ...

    @abstractmethod
    def write(self, data: bytes) -> str:
        """Store the content durably, without a ``blobs`` row, before returning; its sha256.

        For callers that add the row themselves in a later transaction
        (:func:`core.mail.inbound.store_many`): the content is safe before the row commits.
        Writing content that is there already does nothing."""

    def read(self, sha256: str) -> bytes:
        """The whole content; :class:`BlobMissing` when there is none."""
        return b"".join(self.chunks(sha256))

    @abstractmethod
    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The content piece by piece (about :data:`CHUNK_BYTES` each), for sending a large
        file without holding it in memory; :class:`BlobMissing` when there is none."""

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    def sizes(self, digests: Sequence[str]) -> dict[str, int]:
        """The stored size of each of these contents that is there (absent ones left out);
        for ``pulpit blobs check``. Stores override it with one query for the batch."""
        found: dict[str, int] = {}
        for digest in digests:
            if self.exists(digest):
                found[digest] = sum(len(c) for c in self.chunks(digest))
        return found

    @abstractmethod
    def delete(self, sha256: str) -> bool:
        """Remove the content now (the caller removes or keeps its row); whether there was
        any. For erasing personal data (``core.privacy``)."""

    def file_path(self, sha256: str) -> Path | None:
        """The content's file on this host's disk, when the store keeps one (the directory
        store), for a web server to send as it is; None otherwise."""
        return None

    @abstractmethod
    def describe(self) -> str:
        """Where the content is, for messages: "the directory /var/pulpit/blobs"."""


@dataclass(frozen=True)
class DirectoryBlobStore(BlobStore):
    """Files under ``root``: ``<root>/ab/cd/abcd...``, each written to a temporary file,
    fsynced, renamed into place and its directory fsynced, so a committed row always has its
    bytes on disk, even after a power cut."""

    root: Path

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def file_path(self, sha256: str) -> Path | None:
        return self.path(sha256)

    def describe(self) -> str:
        return f"the directory {self.root}"

    def _put_content(self, session: Session, digest: str, data: bytes) -> None:
        self._write(digest, data)

    def write(self, data: bytes) -> str:
        digest = sha256_of(data)
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
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(f"no content {sha256} in {self.describe()}") from None

    def chunks(self, sha256: str) -> Iterator[bytes]:
        try:
            fh = self.path(sha256).open("rb")
        except FileNotFoundError:
            raise BlobMissing(f"no content {sha256} in {self.describe()}") from None
        return _file_chunks(fh)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def sizes(self, digests: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for digest in digests:
            try:
                found[digest] = self.path(digest).stat().st_size
            except FileNotFoundError:
                pass
        return found

    def delete(self, sha256: str) -> bool:
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True


def _file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    with fh:
        while piece := fh.read(CHUNK_BYTES):
            yield piece


@dataclass(frozen=True)
class DatabaseBlobStore(BlobStore):
    """Content in PostgreSQL's ``blob_chunks``: what several hosts sharing one database use.

    :meth:`write`, :meth:`delete` and the reads run on ``engine`` in short transactions of
    their own (a connection from its pool per call, so a slow download holds none between
    chunks); :meth:`put` writes in the caller's session. Reads check the sha256 of what they
    assembled: a lost chunk is an error, never a silently shorter file.
    """

    engine: Engine
    chunk_bytes: int = field(default=CHUNK_BYTES)

    def __post_init__(self) -> None:
        if self.engine.dialect.name != "postgresql":
            raise BlobStoreError(
                "PULPIT_BLOB_URL=database: needs PostgreSQL; with the embedded SQLite database "
                "attachments stay in the data directory (leave PULPIT_BLOB_URL empty)"
            )
        if self.chunk_bytes < 1:
            raise BlobStoreError(f"a chunk must hold at least one byte, not {self.chunk_bytes}")

    def describe(self) -> str:
        return "the database"

    def _rows(self, digest: str, data: bytes) -> Iterator[dict[str, object]]:
        view = memoryview(data)
        step = self.chunk_bytes
        starts = range(0, len(data), step) if data else range(1)
        for n, start in enumerate(starts):
            yield {"sha256": digest, "seq": n, "data": bytes(view[start : start + step])}

    def _insert(self, conn: Connection | Session, digest: str, data: bytes) -> None:
        if conn.execute(_first_chunk(digest)).first() is not None:
            return  # there already: content-addressed, so the same bytes
        # ON CONFLICT: a concurrent writer of the same content waits for the other's commit and
        # then skips each chunk it already has.
        statement = pg_insert(CHUNKS).on_conflict_do_nothing(index_elements=["sha256", "seq"])
        for rows in _batches(self._rows(digest, data), 8):
            conn.execute(statement, rows)

    def _put_content(self, session: Session, digest: str, data: bytes) -> None:
        self._insert(session, digest, data)

    def write(self, data: bytes) -> str:
        digest = sha256_of(data)
        # Committed (and so durable: PostgreSQL's synchronous_commit) before returning.
        with self.engine.begin() as conn:
            self._insert(conn, digest, data)
        return digest

    def read(self, sha256: str) -> bytes:
        with self.engine.connect() as conn:
            pieces = conn.scalars(
                select(BlobChunk.data).where(BlobChunk.sha256 == sha256).order_by(BlobChunk.seq)
            ).all()
        if not pieces:
            raise BlobMissing(f"no content {sha256} in {self.describe()}")
        data = b"".join(pieces)
        if sha256_of(data) != sha256:
            raise BlobDamaged(f"the content {sha256} in {self.describe()} is damaged")
        return data

    def chunks(self, sha256: str) -> Iterator[bytes]:
        first = self._chunk(sha256, 0)
        if first is None:
            raise BlobMissing(f"no content {sha256} in {self.describe()}")
        return self._stream(sha256, first)

    def _chunk(self, sha256: str, seq: int) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.scalar(
                select(BlobChunk.data).where(BlobChunk.sha256 == sha256, BlobChunk.seq == seq)
            )

    def _stream(self, sha256: str, first: bytes) -> Iterator[bytes]:
        digest = hashlib.sha256(first)
        yield first
        seq = 1
        while (piece := self._chunk(sha256, seq)) is not None:
            digest.update(piece)
            yield piece
            seq += 1
        if digest.hexdigest() != sha256:
            raise BlobDamaged(f"the content {sha256} in {self.describe()} is damaged")

    def exists(self, sha256: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(_first_chunk(sha256)).first() is not None

    def sizes(self, digests: Sequence[str]) -> dict[str, int]:
        if not digests:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(BlobChunk.sha256, func.sum(func.octet_length(BlobChunk.data)))
                .where(BlobChunk.sha256.in_(list(digests)))
                .group_by(BlobChunk.sha256)
            ).all()
        return {digest: int(size or 0) for digest, size in rows}

    def delete(self, sha256: str) -> bool:
        with self.engine.begin() as conn:
            gone = conn.execute(CHUNKS.delete().where(CHUNKS.c.sha256 == sha256))
        return bool(gone.rowcount)


def _first_chunk(sha256: str) -> Select[int]:
    return select(BlobChunk.seq).where(BlobChunk.sha256 == sha256, BlobChunk.seq == 0)


def _batches(rows: Iterator[dict[str, object]], size: int) -> Iterable[list[dict[str, object]]]:
    """A few chunks per statement: the memory a statement holds stays a few chunks."""
    while batch := list(itertools.islice(rows, size)):
        yield batch


# --- Choosing the store from the setting ----------------------------------------------------

BLOB_URL_HELP = (
    "use file: (the data directory's blobs/), file:///absolute/path (a directory) "
    "or database: (in the PostgreSQL database, for several hosts)"
)


def parse_blob_url(url: str) -> tuple[str, Path | None]:
    """``PULPIT_BLOB_URL`` as ("file", its directory or None for the default) or
    ("database", None); :class:`BlobStoreError` for anything else.

    ``config.settings`` checks the same forms when the settings load (config imports nothing
    from core); this is the check for anyone calling :func:`open_blob_store` directly."""
    text = url.strip()
    if text in ("", "file:", "file://"):
        return "file", None
    if text == "database:":
        return "database", None
    parts = urlsplit(text)
    if parts.scheme == "file" and not parts.netloc and parts.path.startswith("/"):
        return "file", Path(unquote(parts.path))
    raise BlobStoreError(f"PULPIT_BLOB_URL={url!r} is not supported; {BLOB_URL_HELP}")


def open_blob_store(
    url: str,
    directory: Path,
    database: Engine | sessionmaker[Session] | None = None,
) -> BlobStore:
    """The blob store ``PULPIT_BLOB_URL`` selects.

    ``url`` is the setting (``Settings.blob_url``); ``directory`` the directory store's
    default directory (``Settings.blob_dir``); ``database`` the process's engine, or its
    session factory bound to one: needed only for ``database:``, where the store writes and
    reads on it. The usual call is
    ``open_blob_store(settings.blob_url, settings.blob_dir, session_factory)``.
    """
    kind, path = parse_blob_url(url)
    if kind == "file":
        return DirectoryBlobStore(path or directory)
    engine = database.kw.get("bind") if isinstance(database, sessionmaker) else database
    if not isinstance(engine, Engine):
        raise BlobStoreError(
            "PULPIT_BLOB_URL=database: needs the database engine to store attachments in; "
            "this process has none"
        )
    return DatabaseBlobStore(engine)

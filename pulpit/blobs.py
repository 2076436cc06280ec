"""Moving blob content between stores, and checking that every ``blobs`` row has its content.

``pulpit blobs migrate --to database|file`` and ``pulpit blobs check`` (docs/commands.md) are
thin wrappers around :func:`copy_blobs` and :func:`check_blobs`. Both walk the ``blobs`` rows
in sha256 order, a batch at a time, so they run in constant memory next to a working desk; a
copy interrupted anywhere is resumed by running it again (content already in the target is
skipped, never copied twice).

Content an erasure or the retention deleted on purpose (``core.privacy``: the row stays, its
mails are marked ``erased``) is counted apart from content that is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.blobs import Blob, BlobDamaged, BlobMissing, BlobStore, sha256_of

BATCH = 500
# How many sha256s of each kind of problem a report names (the counts are always whole).
NAMED = 20


@dataclass
class BlobReport:
    """What a copy or a check found, by kind; ``problems`` names the first few of each."""

    rows: int = 0
    copied: int = 0
    copied_bytes: int = 0
    present: int = 0  # already in the target (copy), or whole (check)
    erased: int = 0  # deleted on purpose by core.privacy: no content expected
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # wrong sha256 (copy) or size (check)
    missing_count: int = 0
    damaged_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing_count and not self.damaged_count

    def _missing(self, sha256: str) -> None:
        self.missing_count += 1
        if len(self.missing) < NAMED:
            self.missing.append(sha256)

    def _damaged(self, sha256: str) -> None:
        self.damaged_count += 1
        if len(self.damaged) < NAMED:
            self.damaged.append(sha256)


def _rows(session_factory: sessionmaker[Session]) -> Iterator[list[tuple[str, int]]]:
    """Every ``blobs`` row's (sha256, size), a batch at a time, each batch in a short
    transaction of its own (keyset pagination: rows added meanwhile are seen or not, never
    twice)."""
    after = ""
    while True:
        with session_factory() as session:
            batch = [
                (sha, size)
                for sha, size in session.execute(
                    select(Blob.sha256, Blob.size)
                    .where(Blob.sha256 > after)
                    .order_by(Blob.sha256)
                    .limit(BATCH)
                )
            ]
        if not batch:
            return
        yield batch
        after = batch[-1][0]


def _erased_on_purpose(session_factory: sessionmaker[Session], digests: list[str]) -> set[str]:
    """Those of ``digests`` no attachment uses and whose every mail says its raw file was
    erased (``core.privacy.erase.mark_erased``)."""
    if not digests:
        return set()
    from core.mail.models import InboundMessage
    from core.privacy.erase import ERASED_RULE
    from core.tickets.models import Attachment

    with session_factory() as session:
        used = set(session.scalars(select(Attachment.sha256).where(Attachment.sha256.in_(digests))))
        mails: dict[str, list[bool]] = {}
        for sha, decisions in session.execute(
            select(InboundMessage.sha256, InboundMessage.decisions).where(
                InboundMessage.sha256.in_(digests)
            )
        ):
            erased = any(d.get("rule") == ERASED_RULE for d in decisions or [])
            mails.setdefault(sha, []).append(erased)
    return {sha for sha, marks in mails.items() if sha not in used and all(marks)}


def copy_blobs(
    session_factory: sessionmaker[Session], source: BlobStore, target: BlobStore
) -> BlobReport:
    """Copy the content of every ``blobs`` row from ``source`` to ``target``.

    Each content is read whole, its sha256 checked, and written to the target (durably,
    before the next); content the target has already is skipped. The source is left as it is.
    """
    report = BlobReport()
    for batch in _rows(session_factory):
        absent: list[str] = []
        for sha, _size in batch:
            report.rows += 1
            if target.exists(sha):
                report.present += 1
                continue
            try:
                data = source.read(sha)
            except BlobMissing:
                absent.append(sha)
                continue
            except BlobDamaged:
                report._damaged(sha)
                continue
            if sha256_of(data) != sha:
                report._damaged(sha)
                continue
            target.write(data)
            report.copied += 1
            report.copied_bytes += len(data)
        _sort_absent(session_factory, report, absent)
    return report


def check_blobs(session_factory: sessionmaker[Session], store: BlobStore) -> BlobReport:
    """Whether ``store`` has the content of every ``blobs`` row, of the row's size (a cheap
    check: sizes from the store's index, no content read)."""
    report = BlobReport()
    for batch in _rows(session_factory):
        sizes = store.sizes([sha for sha, _ in batch])
        absent: list[str] = []
        for sha, size in batch:
            report.rows += 1
            if sha not in sizes:
                absent.append(sha)
            elif sizes[sha] != size:
                report._damaged(sha)
            else:
                report.present += 1
        _sort_absent(session_factory, report, absent)
    return report


def _sort_absent(
    session_factory: sessionmaker[Session], report: BlobReport, absent: list[str]
) -> None:
    on_purpose = _erased_on_purpose(session_factory, absent)
    for sha in absent:
        if sha in on_purpose:
            report.erased += 1
        else:
            report._missing(sha)

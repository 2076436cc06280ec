"""The blob stores (core.blobs): the directory, and PostgreSQL's ``blob_chunks`` for several
hosts (issue 16). Chunking across boundaries, idempotent writes, delete, the setting and its
refusals, ``pulpit blobs migrate`` both ways and ``pulpit blobs check``, and a person's
erasure with the content in the database.

The database store commits on its own engine, so these tests use a migrated PostgreSQL database
of their own (``pg_factory``), not the rolled-back ``session``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings, SettingsError, load_settings
from core.blobs import (
    CHUNK_BYTES,
    Blob,
    BlobChunk,
    BlobDamaged,
    BlobMissing,
    BlobStoreError,
    DatabaseBlobStore,
    DirectoryBlobStore,
    open_blob_store,
    parse_blob_url,
)
from core.db import make_engine, unit_of_work
from pulpit.blobs import check_blobs, copy_blobs
from pulpit.cli import main
from tests.conftest import migrated_database


def engine_of(factory: sessionmaker[Session]) -> Engine:
    engine = factory.kw["bind"]
    assert isinstance(engine, Engine)
    return engine


@pytest.fixture
def store(pg_factory: sessionmaker[Session]) -> DatabaseBlobStore:
    # Seven-byte chunks: every test crosses chunk boundaries with a few bytes.
    return DatabaseBlobStore(engine_of(pg_factory), chunk_bytes=7)


def chunk_rows(factory: sessionmaker[Session], sha: str) -> list[tuple[int, bytes]]:
    with factory() as session:
        return [
            (seq, bytes(data))
            for seq, data in session.execute(
                select(BlobChunk.seq, BlobChunk.data)
                .where(BlobChunk.sha256 == sha)
                .order_by(BlobChunk.seq)
            )
        ]


# --- The database store -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 6, 7, 8, 14, 15, 100])
def test_content_round_trips_across_chunk_boundaries(
    store: DatabaseBlobStore, pg_factory: sessionmaker[Session], size: int
) -> None:
    data = bytes(range(256))[:size] if size <= 256 else os.urandom(size)
    sha = store.write(data)
    assert sha == hashlib.sha256(data).hexdigest()
    rows = chunk_rows(pg_factory, sha)
    assert [seq for seq, _ in rows] == list(range(max(1, -(-size // 7))))
    assert all(len(piece) <= 7 for _, piece in rows)
    assert store.read(sha) == data
    assert b"".join(store.chunks(sha)) == data
    assert store.exists(sha) and store.sizes([sha]) == {sha: size}


def test_the_default_chunk_is_a_mebibyte_and_a_large_file_streams_piece_by_piece(
    pg_factory: sessionmaker[Session],
) -> None:
    store = DatabaseBlobStore(engine_of(pg_factory))
    data = os.urandom(2 * CHUNK_BYTES + 123)
    sha = store.write(data)
    pieces = list(store.chunks(sha))
    assert [len(p) for p in pieces] == [CHUNK_BYTES, CHUNK_BYTES, 123]
    assert b"".join(pieces) == data == store.read(sha)


def test_writing_the_same_content_twice_stores_it_once(
    store: DatabaseBlobStore, pg_factory: sessionmaker[Session]
) -> None:
    data = b"the same attachment, mailed twice"
    assert store.write(data) == store.write(data)
    with unit_of_work(pg_factory) as session:
        first = store.put(session, data)
        again = store.put(session, data)
        assert first is again and first.size == len(data)
    rows = chunk_rows(pg_factory, first.sha256)
    assert b"".join(piece for _, piece in rows) == data
    assert len(rows) == len({seq for seq, _ in rows})


def test_put_writes_in_the_callers_transaction(
    store: DatabaseBlobStore, pg_factory: sessionmaker[Session]
) -> None:
    data = b"rolled back with its row"
    with pg_factory() as session:
        blob = store.put(session, data)
        session.rollback()
    assert not store.exists(blob.sha256)
    with unit_of_work(pg_factory) as session:
        blob = store.put(session, data)
    assert store.read(blob.sha256) == data
    with pg_factory() as session:
        assert session.get(Blob, blob.sha256) is not None


def test_delete_removes_every_chunk(
    store: DatabaseBlobStore, pg_factory: sessionmaker[Session]
) -> None:
    sha = store.write(b"x" * 30)
    keep = store.write(b"y" * 30)
    assert store.delete(sha) is True
    assert chunk_rows(pg_factory, sha) == []
    assert not store.exists(sha) and store.delete(sha) is False
    with pytest.raises(BlobMissing):
        store.read(sha)
    with pytest.raises(BlobMissing):
        store.chunks(sha)
    assert store.read(keep) == b"y" * 30


def test_a_lost_chunk_is_an_error_never_a_shorter_file(
    store: DatabaseBlobStore, pg_factory: sessionmaker[Session]
) -> None:
    data = b"0123456789" * 3
    sha = store.write(data)
    with unit_of_work(pg_factory) as session:
        session.execute(
            BlobChunk.__table__.delete().where(BlobChunk.sha256 == sha, BlobChunk.seq == 4)
        )
    with pytest.raises(BlobDamaged):
        store.read(sha)
    with pytest.raises(BlobDamaged):
        b"".join(store.chunks(sha))


# --- Choosing the store -----------------------------------------------------------------------


def test_the_setting_selects_the_store(pg_factory: sessionmaker[Session], tmp_path: Path) -> None:
    default = open_blob_store("", tmp_path / "blobs", pg_factory)
    assert isinstance(default, DirectoryBlobStore) and default.root == tmp_path / "blobs"
    assert open_blob_store("file:", tmp_path / "blobs") == default
    elsewhere = open_blob_store("file:///srv/pulpit%20blobs", tmp_path / "blobs")
    assert elsewhere == DirectoryBlobStore(Path("/srv/pulpit blobs"))
    database = open_blob_store("database:", tmp_path / "blobs", pg_factory)
    assert isinstance(database, DatabaseBlobStore)
    assert database.engine is engine_of(pg_factory)
    with pytest.raises(BlobStoreError, match="PULPIT_BLOB_URL='s3://bucket' is not supported"):
        parse_blob_url("s3://bucket")
    with pytest.raises(BlobStoreError, match="needs the database engine"):
        open_blob_store("database:", tmp_path / "blobs")


def test_settings_name_the_blob_url_when_it_is_wrong(tmp_path: Path) -> None:
    pg = {"PULPIT_DATABASE_URL": "postgresql+psycopg://pulpit@db/pulpit"}
    assert load_settings({**pg, "PULPIT_BLOB_URL": "database:"}, config_file=None).blobs_in_database
    chosen = load_settings({"PULPIT_BLOB_URL": "file:///srv/blobs"}, config_file=None)
    assert chosen.blob_dir == Path("/srv/blobs") and not chosen.blobs_in_database
    assert Settings(data_dir=tmp_path).blob_dir == tmp_path / "blobs"
    for bad in ("s3://bucket/x", "file:relative/dir", "file://host/srv", "database"):
        with pytest.raises(SettingsError, match="PULPIT_BLOB_URL=.* is not supported; use file:"):
            load_settings({**pg, "PULPIT_BLOB_URL": bad}, config_file=None)


def test_the_database_store_is_refused_on_sqlite(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="PULPIT_BLOB_URL=database: .* needs PostgreSQL"):
        load_settings(
            {"PULPIT_DATA_DIR": str(tmp_path), "PULPIT_BLOB_URL": "database:"}, config_file=None
        )
    with migrated_database("sqlite", tmp_path) as factory:
        with pytest.raises(BlobStoreError, match="needs PostgreSQL"):
            open_blob_store("database:", tmp_path / "blobs", factory)


# --- pulpit blobs migrate / check -------------------------------------------------------------


@pytest.fixture
def cli_env(
    pg_factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """The command line's environment on ``pg_factory``'s database; the data dir."""
    for name in list(os.environ):
        if name.startswith("PULPIT_") and not name.startswith(("PULPIT_TEST_", "PULPIT_REQUIRE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "var"
    url = engine_of(pg_factory).url.render_as_string(hide_password=False)
    monkeypatch.setenv("PULPIT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PULPIT_DATABASE_URL", url)
    yield data_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_migrate_copies_into_the_database_and_back_resumably(
    pg_factory: sessionmaker[Session],
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = DirectoryBlobStore(cli_env / "blobs")
    database = DatabaseBlobStore(engine_of(pg_factory))
    contents = [b"", b"a small note", os.urandom(CHUNK_BYTES + 5)]
    with unit_of_work(pg_factory) as session:
        shas = [directory.put(session, data).sha256 for data in contents]
    # One was copied already by an interrupted run.
    database.write(contents[1])

    code, out, err = run(capsys, "blobs", "migrate", "--to", "database")
    assert (code, err) == (0, "")
    assert "copied 2 blob(s)" in out and "1 were there already" in out
    assert "set PULPIT_BLOB_URL=database: on every host" in out
    assert [database.read(sha) for sha in shas] == contents
    # Again: nothing left to copy.
    assert "copied 0 blob(s)" in run(capsys, "blobs", "migrate", "--to", "database")[1]

    monkeypatch.setenv("PULPIT_BLOB_URL", "database:")
    code, out, _ = run(capsys, "blobs", "check")
    assert code == 0 and out.startswith("checked 3 blob(s) in the database: 3 whole")

    # Back into an empty directory.
    for sha in shas:
        directory.delete(sha)
    code, out, _ = run(capsys, "blobs", "migrate", "--to", "file")
    assert code == 0 and "copied 3 blob(s)" in out and "to the directory" in out
    assert "set PULPIT_BLOB_URL=file: on every host" in out
    assert [directory.read(sha) for sha in shas] == contents


def test_migrate_checks_each_sha256_and_reports_what_is_missing(
    pg_factory: sessionmaker[Session], cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = DirectoryBlobStore(cli_env / "blobs")
    database = DatabaseBlobStore(engine_of(pg_factory))
    with unit_of_work(pg_factory) as session:
        good = directory.put(session, b"whole").sha256
        bad = directory.put(session, b"changed on disk").sha256
        lost = directory.put(session, b"lost with a disk").sha256
    directory.path(bad).write_bytes(b"not what was stored")
    directory.delete(lost)

    code, out, _ = run(capsys, "blobs", "migrate", "--to", "database")
    assert code == 1
    assert "copied 1 blob(s)" in out
    assert f"1 missing:\n  {lost}\n" in out and f"1 damaged:\n  {bad}\n" in out
    assert database.exists(good) and not database.exists(bad) and not database.exists(lost)

    code, out, _ = run(capsys, "blobs", "check")  # the directory store: the default
    assert code == 1
    assert out.startswith("checked 3 blob(s) in the directory ")
    assert "1 missing" in out and "1 of the wrong size" in out


def test_migrate_to_the_database_is_refused_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("PULPIT_") and not name.startswith(("PULPIT_TEST_", "PULPIT_REQUIRE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PULPIT_DATA_DIR", str(tmp_path / "var"))
    assert main(["db", "upgrade"]) == 0
    code, _, err = run(capsys, "blobs", "migrate", "--to", "database")
    assert code == 2
    assert err.startswith("pulpit: attachments can be kept in the database only with PostgreSQL")


def test_check_and_migrate_count_content_erased_on_purpose_apart(
    pg_factory: sessionmaker[Session], cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.mail.inbound import store_inbound
    from core.privacy.erase import mark_erased

    directory = DirectoryBlobStore(cli_env / "blobs")
    with unit_of_work(pg_factory) as session:
        row = store_inbound(
            session,
            b"Message-ID: <gone@acme.example>\r\nSubject: x\r\n\r\nbody\r\n",
            source="smtp",
            blobs=directory,
            envelope_to=["support@support.example"],
        )
        mark_erased(row)
        directory.delete(row.sha256)
    code, out, _ = run(capsys, "blobs", "check")
    assert code == 0 and "1 erased on purpose" in out and "missing" not in out
    code, out, _ = run(capsys, "blobs", "migrate", "--to", "database")
    assert code == 0 and "1 erased on purpose (no content)" in out


def test_copy_blobs_walks_every_row_in_batches(
    pg_factory: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pulpit.blobs as maintenance

    monkeypatch.setattr(maintenance, "BATCH", 2)
    directory = DirectoryBlobStore(tmp_path / "blobs")
    database = DatabaseBlobStore(engine_of(pg_factory))
    with unit_of_work(pg_factory) as session:
        shas = [directory.put(session, f"file {i}".encode()).sha256 for i in range(5)]
    report = copy_blobs(pg_factory, directory, database)
    assert (report.rows, report.copied, report.ok) == (5, 5, True)
    assert check_blobs(pg_factory, database).present == 5
    assert all(database.exists(sha) for sha in shas)
    with pg_factory() as session:
        assert session.scalar(select(func.count()).select_from(BlobChunk)) == 5


# --- Erasure with the content in the database -------------------------------------------------


def test_erasing_a_person_deletes_their_mail_and_attachments_from_the_database(
    pg_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    from email.message import EmailMessage

    from core.clock import utcnow
    from core.directory.models import User
    from core.mail.inbound import store_inbound
    from core.mail.models import InboundMessage, Mailbox
    from core.privacy.erase import erase_person
    from core.tickets.models import Attachment
    from mailgw.process import process_inbound
    from tests.factories import build_world

    store = open_blob_store("database:", tmp_path / "blobs", pg_factory)
    with unit_of_work(pg_factory) as session:
        build_world(session)
        session.add(Mailbox(address="pomoc@support.example"))
    msg = EmailMessage()
    msg["From"] = "Zofia Kowalska <zofia@private.example>"
    msg["To"] = "pomoc@support.example"
    msg["Subject"] = "Awaria skanera"
    msg["Message-ID"] = "<zofia-1@private.example>"
    msg.set_content("Skaner nie działa. Zofia Kowalska, tel. 600 100 200")
    msg.add_attachment(b"\x89PNG zofia's photo", maintype="image", subtype="png", filename="a.png")
    raw = msg.as_bytes()
    with unit_of_work(pg_factory) as session:
        row = store_inbound(
            session, raw, source="smtp", blobs=store, envelope_to=["pomoc@support.example"]
        )
        process_inbound(session, row.id, blobs=store, mail_domain="support.example", now=utcnow())
        assert row.state == "processed", row.decisions
        raw_sha = row.sha256
        [attachment_sha] = session.scalars(
            select(Attachment.sha256).where(Attachment.event_id == row.event_id)
        )
    assert store.read(raw_sha) == raw and store.exists(attachment_sha)
    assert not (tmp_path / "blobs").exists()

    with unit_of_work(pg_factory) as session:
        zofia = session.scalar(select(User).where(User.email == "zofia@private.example"))
        assert zofia is not None
        erase_person(session, zofia, blobs=store, actor="test")
    assert not store.exists(raw_sha) and not store.exists(attachment_sha)
    assert chunk_rows(pg_factory, raw_sha) == chunk_rows(pg_factory, attachment_sha) == []
    with pg_factory() as session:
        mail = session.scalar(select(InboundMessage).where(InboundMessage.sha256 == raw_sha))
        assert mail is not None and mail.decisions[-1]["rule"] == "erased"
    assert check_blobs(pg_factory, store).ok


def test_a_store_on_a_second_engine_reads_what_the_first_wrote(
    pg_factory: sessionmaker[Session],
) -> None:
    """Two processes (two engines, two pools) on one database see the same content."""
    first = DatabaseBlobStore(engine_of(pg_factory))
    other_engine = make_engine(engine_of(pg_factory).url.render_as_string(hide_password=False))
    try:
        second = DatabaseBlobStore(other_engine)
        sha = first.write(b"from host A")
        assert second.read(sha) == b"from host A"
        assert second.delete(sha) and not first.exists(sha)
    finally:
        other_engine.dispose()

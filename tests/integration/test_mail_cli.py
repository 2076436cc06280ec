"""``pulpit mail list`` and ``pulpit mail requeue`` (docs/commands.md), through ``pulpit.cli.main``.

Each test runs on a fresh embedded SQLite database in a temporary data dir, migrated by
``pulpit db upgrade``, with inbound messages stored by :func:`core.mail.inbound.store_inbound` the way
the gateway stores them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from config.settings import load_settings
from core.blobs import DirectoryBlobStore
from core.db import make_engine, make_session_factory, unit_of_work
from core.mail.inbound import store_inbound
from core.mail.models import InboundMessage
from pulpit.cli import main


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("PULPIT_") and not name.startswith(("PULPIT_TEST_", "PULPIT_REQUIRE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "var"
    monkeypatch.setenv("PULPIT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PULPIT_DATABASE_URL", f"sqlite:///{data_dir / 'cli.db'}")
    assert main(["db", "upgrade"]) == 0
    return data_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def store(*states: tuple[str, str | None]) -> list[int]:
    """Store one message per (state, reason); returns their ids."""
    settings = load_settings()
    engine = make_engine(settings.resolved_database_url)
    ids: list[int] = []
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            for i, (state, reason) in enumerate(states):
                raw = f"Message-ID: <m{i}@acme.example>\r\nSubject: {i}\r\n\r\nbody {i}\r\n"
                row = store_inbound(
                    session,
                    raw.encode(),
                    source="smtp",
                    blobs=DirectoryBlobStore(settings.blob_dir),
                    envelope_from="anna@acme.example",
                    envelope_to=["support@support.example"],
                )
                row.state = state
                row.reason = reason
                row.attempts = 3 if state == "quarantined" else 0
                ids.append(row.id)
    finally:
        engine.dispose()
    return ids


def rows() -> dict[int, InboundMessage]:
    engine = make_engine(load_settings().resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            return {m.id: m for m in session.scalars(select(InboundMessage))}
    finally:
        engine.dispose()


def test_mail_list_json_has_every_message(capsys: pytest.CaptureFixture[str]) -> None:
    ids = store(("received", None), ("quarantined", "parser crashed: boom"))
    code, out, err = run(capsys, "mail", "list", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert [d["id"] for d in data] == list(reversed(ids))  # newest first
    quarantined = data[0]
    assert quarantined["state"] == "quarantined"
    assert quarantined["reason"] == "parser crashed: boom"
    assert quarantined["message_id"] == "<m1@acme.example>"
    assert quarantined["ticket"] is None
    assert quarantined["received_at"]


def test_mail_list_filters_by_state_and_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    ids = store(("received", None), ("quarantined", "parser crashed:\nboom"))
    code, out, _ = run(capsys, "mail", "list", "--state", "quarantined")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["ID", "STATE", "RECEIVED", "AT"]
    assert len(lines) == 2
    assert lines[1].startswith(str(ids[1]))
    assert "<m1@acme.example>" in lines[1]
    assert lines[1].split()[4] == "-"  # no ticket
    assert lines[1].endswith("parser crashed:; boom")  # one line per message


def test_mail_list_says_when_there_is_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "mail", "list", "--state", "quarantined")[1] == (
        "no quarantined inbound messages\n"
    )


def test_requeue_all_puts_quarantined_messages_back(capsys: pytest.CaptureFixture[str]) -> None:
    ids = store(("quarantined", "boom"), ("processed", None), ("quarantined", "bang"))
    code, out, err = run(capsys, "mail", "requeue", "--all")
    assert (code, err) == (0, "")
    assert out == "requeued 2 message(s); a worker will process them\n"
    after = rows()
    for i in (ids[0], ids[2]):
        assert (after[i].state, after[i].attempts, after[i].reason) == ("received", 0, None)
    assert after[ids[1]].state == "processed"


def test_requeue_by_id_takes_an_ignored_message_too(capsys: pytest.CaptureFixture[str]) -> None:
    ids = store(("ignored", "our own mail"), ("quarantined", "boom"))
    code, out, _ = run(capsys, "mail", "requeue", str(ids[0]))
    assert code == 0
    assert out.startswith("requeued 1 message(s)")
    assert rows()[ids[0]].state == "received"
    assert rows()[ids[1]].state == "quarantined"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["mail", "requeue"], "--all"),
        (["mail", "requeue", "999"], "no inbound message with id 999"),
        (["mail", "requeue", "--all", "1"], "not both"),
        (["mail", "requeue", "abc"], "not a whole number"),
    ],
)
def test_requeue_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    store(("quarantined", "boom"))
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("pulpit: ")
    assert words in err


def test_requeue_refuses_a_processed_message(capsys: pytest.CaptureFixture[str]) -> None:
    (done,) = store(("processed", None))
    code, _, err = run(capsys, "mail", "requeue", str(done))
    assert code == 2
    assert "already processed" in err
    assert rows()[done].state == "processed"


def test_mail_list_names_the_ticket_a_processed_mail_went_into(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It crashed under make run: a Result was handed to dict() and taken for a mapping."""
    from core.directory.services import find_or_create_contact
    from core.tickets import services as svc

    (message_id,) = store(("processed", None))
    settings = load_settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            ticket = svc.open_ticket(
                session,
                svc.NewTicket(
                    subject="Awaria", requester=find_or_create_contact(session, "a@b.example")
                ),
            )
            row = session.get(InboundMessage, message_id)
            assert row is not None
            row.ticket_id = ticket.id
            number = ticket.number
    finally:
        engine.dispose()
    code, out, _ = run(capsys, "mail", "list", "--json")
    assert code == 0
    assert json.loads(out)[0]["ticket"] == number
    code, out, _ = run(capsys, "mail", "list")
    assert code == 0 and "processed" in out
    header, row = out.strip().splitlines()[:2]
    assert header.split()[:5] == ["ID", "STATE", "RECEIVED", "AT", "TICKET"]
    assert f"#{number}" in row.split()  # the table names the ticket, as the JSON does

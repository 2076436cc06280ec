"""``pulpit config apply`` and the SLA: the change commits first, then the command recomputes
the open tickets it handed over and says how many got new deadlines (docs/sla.md, rule 8).

A fresh embedded SQLite database in a temporary data dir, migrated by ``pulpit db upgrade``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from config.settings import load_settings
from core.db import make_engine, make_session_factory, unit_of_work
from core.directory.services import contract_by_code, find_or_create_contact
from core.tickets import services as svc
from core.tickets.models import Ticket
from pulpit.cli import main

CONFIG = """
clients:
  - name: Acme
    domains: [acme.example]
    contacts: [{email: anna@acme.example, name: Anna}]
contracts:
  - code: ACME
    client: Acme
    ticket_types:
      - {name: failure, default: true, reaction: REACTION, resolution: 2d}
    statuses:
      - {name: New, category: new}
      - {name: Done, category: closed}
"""


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


def apply(capsys: pytest.CaptureFixture[str], tmp_path: Path, reaction: str) -> list[str]:
    path = tmp_path / f"config-{reaction}.yaml"
    path.write_text(CONFIG.replace("REACTION", reaction), encoding="utf-8")
    capsys.readouterr()
    assert main(["config", "apply", str(path)]) == 0
    return capsys.readouterr().out.splitlines()


def test_apply_recomputes_after_its_commit_and_says_how_many(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    apply(capsys, tmp_path, "2h")
    engine = make_engine(load_settings().resolved_database_url)
    factory = make_session_factory(engine)
    try:
        with unit_of_work(factory) as session:
            ticket = svc.open_ticket(
                session,
                svc.NewTicket(
                    subject="Awaria",
                    requester=find_or_create_contact(session, "anna@acme.example"),
                    contract=contract_by_code(session, "ACME"),
                ),
            )
            created = ticket.created_at
            assert ticket.reaction_due == created + timedelta(hours=2)  # 24/7

        out = apply(capsys, tmp_path, "4h")
        assert "ticket types: 1 updated" in out[0]
        assert out[1:] == ["1 open ticket gets new deadlines"]
        with factory() as session:
            stored = session.scalars(select(Ticket)).one()
            assert stored.reaction_due == created + timedelta(hours=4)
            assert stored.sla_next_check is not None

        # The same file again: nothing changed, nothing handed over, nothing said about SLA.
        assert apply(capsys, tmp_path, "4h") == ["nothing changed"]
    finally:
        engine.dispose()

"""Pulpit against django-helpdesk 2.6.1 on the same mails, in one run.

    .venv/bin/python bench/compare_peer.py [COUNT]          # default 1,000 mails
    RUNS=3 ORDER=peer .venv/bin/python bench/compare_peer.py 1000

Writes COUNT mails once with ``bench/ingest.py --write-dir`` (20 seed mails that open tickets,
then the timed mails: 2 in 10 replies to the seed tickets by In-Reply-To, every fifth new mail
with a 20 kB attachment), then in each run:

* **the peer**: django-helpdesk 2.6.1 in its own virtualenv (``PEER_VENV``, default
  /tmp/pulpit-peer-venv; created with ``pip install django-helpdesk==2.6.1 psycopg[binary]``
  when missing) and the small Django project in ``bench/peer``, on the PostgreSQL database
  ``bench_peer_helpdesk`` (dropped and created), one queue reading a local folder
  (``email_box_type='local'``). The seed mails are copied in and read (not timed), then the
  timed mails are copied in and ``manage.py get_email`` is timed from start to exit. Checked:
  the folder is empty afterwards, one follow-up per mail, a ticket per new mail, the replies
  on the seed tickets.
* **Pulpit**: ``bench/run_ingest.sh COUNT`` with ``FROM_DIR`` set to the same files (SMTP into
  ``pulpit mailgw``, two worker processes, the scheduler; end to end from the first SMTP
  connection until every mail has left ``received``).

Prints each side's output and one markdown table: tool, mails, seconds, mails per second, and
Pulpit's rate over the peer's. Environment: ``RUNS`` (1; the order alternates from run to
run), ``ORDER`` (``pulpit`` or ``peer``: which goes first in the first run), ``PEER_VENV``,
``PEER_DATABASE`` (bench_peer_helpdesk), ``PGHOST``, ``PGPORT``, ``PGUSER``, and everything
``bench/run_ingest.sh`` reads. Nothing of django-helpdesk is kept in this repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_DIR = ROOT / "bench" / "peer"
PEER_VERSION = "2.6.1"

QUEUE_SETUP = """
from helpdesk.models import Queue
Queue.objects.create(
    title="Serwis", slug="serwis", email_address="support@serwis.example",
    allow_email_submission=True, email_box_type="local", email_box_local_dir={mailbox!r},
    email_box_interval=0,
)
"""


@dataclass
class Result:
    tool: str
    mails: int
    seconds: float
    checks: str


def env_setting(name: str, default: str, allowed: tuple[str, ...] | None = None) -> str:
    value = os.environ.get(name, default)
    if allowed is not None and value not in allowed:
        raise SystemExit(f"{name}={value!r} is not one of {', '.join(allowed)}.")
    return value


def pg_args() -> list[str]:
    return [
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        os.environ.get("PGHOST", "127.0.0.1"),
        "-p",
        os.environ.get("PGPORT", "5432"),
        "-U",
        os.environ.get("PGUSER", "postgres"),
    ]


def psql(database: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", *pg_args(), "-At", "-d", database, "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def ensure_peer_venv(venv: Path) -> Path:
    """The peer's Python, installing django-helpdesk into ``venv`` first when it is missing."""
    python = venv / "bin" / "python"
    probe = "import helpdesk, importlib.metadata as m; print(m.version('django-helpdesk'))"
    if python.exists():
        found = subprocess.run([python, "-c", probe], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == PEER_VERSION:
            return python
    print(f"== installing django-helpdesk {PEER_VERSION} into {venv}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            f"django-helpdesk=={PEER_VERSION}",
            "psycopg[binary]",
        ],
        check=True,
    )
    return python


def peer_versions(python: Path) -> str:
    code = (
        "import importlib.metadata as m; "
        "print(', '.join(f'{p} {m.version(p)}' for p in ('django-helpdesk', 'Django', 'psycopg')))"
    )
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout


def copy_mails(mail_dir: Path, pattern: str, mailbox: Path) -> int:
    files = sorted(mail_dir.glob(pattern))
    for path in files:
        shutil.copy(path, mailbox / path.name)
    return len(files)


def run_peer(python: Path, mail_dir: Path) -> Result:
    """django-helpdesk: read the seeds (not timed), then time ``get_email`` on the mails."""
    database = os.environ.get("PEER_DATABASE", "bench_peer_helpdesk")
    psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    psql("postgres", f'CREATE DATABASE "{database}"')
    data_dir = Path(tempfile.mkdtemp(prefix="pulpit-peer-data."))
    mailbox = data_dir / "mailbox"
    mailbox.mkdir()
    env = {**os.environ, "PEER_DATABASE": database, "PEER_DATA_DIR": str(data_dir)}
    manage = [python, PEER_DIR / "manage.py"]

    def django(*args: str) -> None:
        subprocess.run([*manage, *args], check=True, env=env, cwd=PEER_DIR)

    def count(sql: str) -> int:
        return int(psql(database, sql))

    try:
        print("== peer: migrate, one queue reading a local folder", flush=True)
        django("migrate", "-v", "0")
        django("shell", "-v", "0", "-c", QUEUE_SETUP.format(mailbox=str(mailbox)))
        seeds = copy_mails(mail_dir, "seed-*.eml", mailbox)
        django("get_email", "--quiet")
        if any(mailbox.iterdir()):
            raise SystemExit("the peer left seed mails unread; see its output above.")
        seed_tickets = count("SELECT count(*) FROM helpdesk_ticket")
        followups_before = count("SELECT count(*) FROM helpdesk_followup")
        started = time.perf_counter()
        django("get_email", "--quiet")
        startup = time.perf_counter() - started

        mails = copy_mails(mail_dir, "mail-*.eml", mailbox)
        print(f"== peer: get_email on {mails} mails ({seeds} seed mails read first)", flush=True)
        started = time.perf_counter()
        django("get_email", "--quiet")
        seconds = time.perf_counter() - started

        left = len(list(mailbox.iterdir()))
        tickets = count("SELECT count(*) FROM helpdesk_ticket") - seed_tickets
        followups = count("SELECT count(*) FROM helpdesk_followup") - followups_before
        replies = count(
            "SELECT count(*) FROM helpdesk_followup WHERE message_id LIKE '<bench-%-m-%' AND "
            "ticket_id IN (SELECT ticket_id FROM helpdesk_followup "
            "WHERE message_id LIKE '<bench-%-seed-%')"
        )
        attachments = count("SELECT count(*) FROM helpdesk_followupattachment")
        # The file backend writes each connection's messages to a file, 79 dashes after each.
        separator = "-" * 79
        outgoing = sum(
            path.read_text(errors="replace").count(separator)
            for path in (data_dir / "outbox").glob("*")
        )
        checks = (
            f"{followups} follow-ups, {tickets} new tickets, {replies} on seed tickets, "
            f"{left} left unread; {attachments} attachments and {outgoing} outgoing mails "
            f"in all; get_email with an empty folder {startup:.1f} s"
        )
        print(f"== peer: {mails} mails in {seconds:.1f} s; {checks}", flush=True)
        if left or followups != mails:
            print("== peer: not every mail was taken", file=sys.stderr)
        return Result("django-helpdesk " + PEER_VERSION, mails, seconds, checks)
    finally:
        psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


END_TO_END = re.compile(r"\| end to end mails/s \| \d+ \((\d+) in ([\d.]+) s\) \|")
OUTCOME = re.compile(r"\| outcome \| (.*) \|")


def run_pulpit(mail_dir: Path, count: int) -> Result:
    """``bench/run_ingest.sh`` on the written mails; its end-to-end figure."""
    print("== pulpit: bench/run_ingest.sh with FROM_DIR", flush=True)
    done = subprocess.run(
        [ROOT / "bench" / "run_ingest.sh", str(count)],
        env={**os.environ, "FROM_DIR": str(mail_dir), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
    )
    print(done.stdout, end="", flush=True)
    print(done.stderr, end="", file=sys.stderr, flush=True)
    found = END_TO_END.search(done.stdout)
    if found is None:
        raise SystemExit(f"bench/run_ingest.sh gave no end-to-end figure (exit {done.returncode}).")
    outcome = OUTCOME.search(done.stdout)
    return Result(
        "Pulpit",
        int(found.group(1)),
        float(found.group(2)),
        outcome.group(1) if outcome else "",
    )


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    runs = int(env_setting("RUNS", "1"))
    order = env_setting("ORDER", "pulpit", ("pulpit", "peer"))
    python = ensure_peer_venv(Path(os.environ.get("PEER_VENV", "/tmp/pulpit-peer-venv")))
    versions = peer_versions(python).strip()
    mail_dir = Path(tempfile.mkdtemp(prefix="pulpit-compare-mails."))
    rows: list[tuple[int, Result]] = []
    try:
        subprocess.run(
            [
                sys.executable,
                ROOT / "bench" / "ingest.py",
                "--write-dir",
                mail_dir,
                "--count",
                str(count),
            ],
            check=True,
        )
        for run in range(1, runs + 1):
            first_pulpit = (order == "pulpit") == (run % 2 == 1)
            sides = ("pulpit", "peer") if first_pulpit else ("peer", "pulpit")
            for side in sides:
                result = (
                    run_pulpit(mail_dir, count) if side == "pulpit" else run_peer(python, mail_dir)
                )
                rows.append((run, result))
    finally:
        shutil.rmtree(mail_dir, ignore_errors=True)

    nproc = os.cpu_count()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\nSame {count} mails, {stamp}, {nproc} CPUs, peer: {versions}\n")
    print("| run | tool | mails | seconds | mails/s |\n| ---: | --- | ---: | ---: | ---: |")
    for run, r in rows:
        print(f"| {run} | {r.tool} | {r.mails} | {r.seconds:.2f} | {r.mails / r.seconds:.1f} |")
    print("\n| run | Pulpit / peer (mails/s) |\n| ---: | ---: |")
    for run in range(1, runs + 1):
        rates = {r.tool: r.mails / r.seconds for n, r in rows if n == run}
        peer = next(v for k, v in rates.items() if k != "Pulpit")
        print(f"| {run} | {rates['Pulpit'] / peer:.2f} |")
    print()
    for run, r in rows:
        print(f"* run {run}, {r.tool}: {r.checks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What does the SMTP gateway cost per mail? The gateway alone, no worker, no broker.

Starts the gateway (``mailgw.server.start``, as ``pulpit mailgw`` does) in this process over a
fresh database with the demo configuration, then a child process sends ``--count`` mails of
``bench/ingest.py``'s shape over ``--concurrency`` connections. What this process used while
they came in is the gateway's CPU (its event loop, its store thread and its thread pool), and
the kernel's share of it is printed apart: most of that is the raw files' ``fsync``s and the
sockets. Jobs stay in the database (no broker), as in ``bench/profile_worker.py``.

    .venv/bin/python bench/profile_gateway.py --count 1000
    PYTHONPATH=/tmp/old .venv/bin/python /tmp/old/bench/profile_gateway.py   # older code, same run

The machine's speed moves from minute to minute: compare two versions by alternating them.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import build_mail  # noqa: E402


def _send(port: int, directory: Path, concurrency: int) -> None:
    """The child: send every mail of ``directory`` over ``concurrency`` connections."""
    import smtplib
    import threading

    files = sorted(directory.iterdir())

    def connection(mine: list[Path]) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            for path in mine:
                sender, to, raw = path.read_bytes().split(b"\n", 2)
                smtp.sendmail(sender.decode(), [to.decode()], raw)

    threads = [
        threading.Thread(target=connection, args=(files[i::concurrency],))
        for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/pulpit_profile_gateway",
    )
    parser.add_argument("--send", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        _send(int(args.send[0]), Path(args.send[1]), args.concurrency)
        return 0

    from bench.profile_worker import _fresh_database
    from config.settings import Settings
    from core import db
    from core.blobs import DirectoryBlobStore
    from core.configuration import apply_config_file
    from core.contracts import snapshot as config_snapshot
    from mailgw.server import start

    _fresh_database(args.database_url)
    engine = db.make_engine(args.database_url)
    db.upgrade(engine)
    factory = db.make_session_factory(engine)
    db.set_dispatcher(None)  # jobs stay in the database
    # As in `pulpit mailgw` on PostgreSQL (pulpit.runtime.database): the configuration
    # snapshot (the mailboxes RCPT is checked against) kept current by LISTEN/NOTIFY.
    config_snapshot.watch(engine)
    root = Path(__file__).resolve().parents[1]
    with db.unit_of_work(factory) as session:
        apply_config_file(session, root / "config/examples/demo.yaml", actor="bench")

    work = Path(tempfile.mkdtemp(prefix="pulpit-profile-gateway-"))
    mails = work / "mails"
    mails.mkdir()
    for n in range(args.count):
        mail = build_mail("gw", n, None, [])
        (mails / f"{n:06d}").write_bytes(f"{mail.sender}\n{mail.to}\n".encode() + mail.raw)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = replace(Settings(), data_dir=work / "var", smtp_host="127.0.0.1", smtp_port=port)
    handle = start(settings, factory, blobs=DirectoryBlobStore(settings.blob_dir))
    try:
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--concurrency",
                str(args.concurrency),
                "--send",
                str(handle.port),
                str(mails),
            ],
            check=True,
        )
        took = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        handle.stop()
        config_snapshot.unwatch(engine)
        engine.dispose()
        shutil.rmtree(work, ignore_errors=True)  # the mails and the gateway's raw files
    user = (after.ru_utime - before.ru_utime) / args.count * 1000
    system = (after.ru_stime - before.ru_stime) / args.count * 1000
    print(
        f"gateway: {args.count} mails over {args.concurrency} connections in {took:.2f} s"
        f" ({args.count / took:.0f} mails/s); CPU per mail {user + system:.2f} ms:"
        f" {user:.2f} ms in the process, {system:.2f} ms in the kernel for it"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

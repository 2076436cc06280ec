"""How fast does mail get in? N realistic mails over SMTP into a running Pulpit.

Sends ``--count`` mails (short Polish text, every fifth with a small attachment, some
replies with a ticket tag) over ``--concurrency`` SMTP connections to a running ``pulpit
mailgw`` or ``pulpit serve``, and measures:

* the SMTP transaction time per mail (MAIL FROM to the 250 after the data: what a sending
  server waits for), p50 / p99 / max;
* accepted mails per second (wall clock from the first connection to the last 250);
* with ``--database-url``, end to end: polls the instance's database until every mail of this
  run has left the state ``received`` (processed, ignored or quarantined) and reports mails per
  second from the first send to the last one done.

Prints a markdown table. The recipient must be a mailbox of the instance (``--to``).

    .venv/bin/python bench/ingest.py --port 2525 --count 2000 --concurrency 8
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1/pulpit
"""

from __future__ import annotations

import argparse
import platform
import smtplib
import statistics
import sys
import threading
import time
import uuid
from email import policy
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SUBJECTS = [
    "Drukarka nie drukuje",
    "Awaria serwera w oddziale w Łodzi",
    "Prośba o przegląd klimatyzacji",
    "Nie działa skaner kodów kreskowych",
    "Zgłoszenie: brak dostępu do VPN",
]
BODY = (
    "Dzień dobry,\n\n"
    "od rana urządzenie {n} zgłasza błąd i nie możemy pracować. Prosimy o pilną\n"
    "interwencję serwisu. Zażółć gęślą jaźń.\n\n"
    "Pozdrawiam,\nAnna Nowak\nAcme sp. z o.o.\n"
)


def build_mail(run: str, n: int, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Klient {n % 50} <klient{n % 50}@acme.example>"
    msg["To"] = to
    subject = SUBJECTS[n % len(SUBJECTS)]
    msg["Subject"] = f"Re: {subject} [#{1000 + n % 7}]" if n % 10 == 3 else subject
    msg["Message-ID"] = f"<bench-{run}-{n}@acme.example>"
    msg.set_content(BODY.format(n=n))
    if n % 5 == 0:
        # A small scanned-document-like attachment (~20 kB), with a Polish file name.
        payload = bytes((n * 31 + i * 7) % 256 for i in range(20_000))
        msg.add_attachment(
            payload, maintype="application", subtype="pdf", filename=f"protokół-{n}.pdf"
        )
    return msg.as_bytes(policy=policy.SMTP)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def send_all(args: argparse.Namespace, run: str) -> tuple[list[float], int, float, float]:
    """Send every mail; returns (latencies in s, refused count, start, end)."""
    latencies: list[float] = []
    refused = 0
    lock = threading.Lock()
    # Built before the clock starts: the sender's own CPU must not count as our latency.
    mails = [build_mail(run, n, args.to) for n in range(args.count)]
    counter = iter(range(args.count))

    def worker() -> None:
        nonlocal refused
        smtp: smtplib.SMTP | None = None
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            raw = mails[n]
            try:
                if smtp is None:
                    smtp = smtplib.SMTP(args.host, args.port, timeout=60)
                    smtp.ehlo()
                t0 = time.perf_counter()
                smtp.sendmail("klient@acme.example", [args.to], raw)
                took = time.perf_counter() - t0
                with lock:
                    latencies.append(took)
            except (OSError, smtplib.SMTPException) as exc:
                with lock:
                    refused += 1
                    if refused <= 3:
                        print(f"mail {n} not accepted: {exc}", file=sys.stderr)
                if smtp is not None:
                    try:
                        smtp.close()
                    finally:
                        smtp = None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, refused, start, time.perf_counter()


def wait_processed(args: argparse.Namespace, run: str, start: float) -> tuple[int, float] | None:
    """Poll until every mail of this run has left ``received``; (done, seconds) or None."""
    from sqlalchemy import func, select

    from core.db import make_engine
    from core.inbound import InboundMessage

    engine = make_engine(args.database_url)
    mine = InboundMessage.message_id.like(f"<bench-{run}-%")
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                total = conn.scalar(select(func.count()).where(mine)) or 0
                waiting = (
                    conn.scalar(
                        select(func.count()).where(mine, InboundMessage.state == "received")
                    )
                    or 0
                )
            if total >= args.count and waiting == 0:
                return total, time.perf_counter() - start
            time.sleep(0.2)
    finally:
        engine.dispose()
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--to", default="support@support.example", help="a mailbox of the instance")
    parser.add_argument("--database-url", help="the instance's database, to time processing")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for processing")
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    latencies, refused, start, end = send_all(args, run)
    accepted = len(latencies)
    wall = end - start
    rows = [
        ("mails sent", f"{args.count} over {args.concurrency} connections"),
        ("accepted (250)", f"{accepted}" + (f" ({refused} not accepted)" if refused else "")),
        ("accepted mails/s", f"{accepted / wall:.0f}" if wall > 0 else "-"),
        ("SMTP transaction p50", f"{percentile(latencies, 50) * 1000:.1f} ms"),
        ("SMTP transaction p99", f"{percentile(latencies, 99) * 1000:.1f} ms"),
        ("SMTP transaction max", f"{max(latencies, default=float('nan')) * 1000:.1f} ms"),
        (
            "SMTP transaction mean",
            f"{statistics.fmean(latencies) * 1000:.1f} ms" if latencies else "-",
        ),
    ]
    if args.database_url:
        done = wait_processed(args, run, start)
        if done is None:
            rows.append(("end to end", f"not finished within {args.timeout:.0f} s"))
        else:
            count, seconds = done
            rows.append(
                ("end to end mails/s", f"{count / seconds:.0f} ({count} in {seconds:.1f} s)")
            )
    print(
        f"\nInbound mail, {platform.python_implementation()} {platform.python_version()}, "
        f"{args.host}:{args.port}, run {run}\n"
    )
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0 if refused == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""How fast does mail get in? N realistic mails over SMTP into a running Pulpit.

Sends ``--count`` mails (short Polish text, every fifth with a small attachment, a share of
them replies to tickets created earlier in the run) over ``--concurrency`` SMTP connections to
a running ``pulpit mailgw`` or ``pulpit serve``, and measures:

* the SMTP transaction time per mail (MAIL FROM to the 250 after the data: what a sending
  server waits for), p50 / p99 / max;
* accepted mails per second (wall clock from the first connection to the last 250);
* with ``--database-url``, end to end: polls the instance's database until every mail of this
  run has left the state ``received`` (processed, ignored or quarantined) and reports mails per
  second from the first send to the last one done, and what became of the mails (new tickets
  routed to a contract, comments on the replied-to tickets, triage, quarantine).

The mails fit ``config/examples/demo.yaml``: they come from contacts (and other people) of the
demo's client domains and go to ``support@serwis.example`` or to the client's contract
mailboxes, so they are routed to a client and contract. Replies need ``--database-url``: a
seed wave of new mails is sent and processed first (not timed), and the timed mails reply to
the seed tickets with their subject tag ``[#N]`` and In-Reply-To, from the original sender.
``--to`` sends everything to one address instead (another configuration).

``--write-dir DIR`` writes the mails as files instead of sending them (``seed-NNNN.eml``, the
seed wave, and ``mail-NNNNN.eml``, the timed mails) and exits; ``--from-dir DIR`` sends those
files instead of generating new ones, so another tool can be given byte-identical mails
(``bench/compare_peer.py``). Written replies carry In-Reply-To and References but no subject
tag: a ticket's number is not known when the files are written.

Prints a markdown table.

    .venv/bin/python bench/ingest.py --port 2525 --count 2000 --concurrency 8
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1/pulpit
    bench/run_ingest.sh 3000     # the whole setup: PostgreSQL, Redis, mailgw, worker, scheduler
    .venv/bin/python bench/ingest.py --write-dir /tmp/mails --count 1000
    FROM_DIR=/tmp/mails bench/run_ingest.sh
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import smtplib
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SUBJECTS = [
    "Drukarka nie drukuje",
    "Awaria serwera w oddziale w Łodzi",
    "Prośba o przegląd klimatyzacji",
    "Nie działa skaner kodów kreskowych",
    "Zgłoszenie: brak dostępu do VPN",
    "Pytanie o konserwację kserokopiarki",
]
BODY = (
    "Dzień dobry,\n\n"
    "od rana urządzenie {n} zgłasza błąd i nie możemy pracować. Prosimy o pilną\n"
    "interwencję serwisu. Zażółć gęślą jaźń.\n\n"
    "Pozdrawiam,\n{name}\n{company}\n"
)
REPLY_BODY = (
    "Dzień dobry,\n\n"
    "w nawiązaniu do zgłoszenia: problem nadal występuje (wiadomość {n}). Prosimy o kontakt.\n\n"
    "Pozdrawiam,\n{name}\n\n"
    "W dniu 12.03.2026 o 10:15, Serwis Biurowy pisze:\n"
    "> Dziękujemy za zgłoszenie, zajmiemy się nim.\n"
)


@dataclass(frozen=True)
class Client:
    company: str
    domain: str
    people: tuple[tuple[str, str], ...]  # (local part, name): demo contacts and new people
    mailboxes: tuple[str, ...]  # support@ and the client's contract mailboxes


# The client domains and mailboxes of config/examples/demo.yaml. The people without a demo
# account become contacts of the client by their domain on their first mail.
DEMO_CLIENTS = (
    Client(
        "Kancelaria Prawna Nowak i Wspólnicy",
        "nowak-kancelaria.example",
        (
            ("anna.nowak", "Anna Nowak"),
            ("piotr.zielinski", "Piotr Zieliński"),
            ("katarzyna.wojcik", "Katarzyna Wójcik"),
            ("sekretariat", "Sekretariat"),
            ("m.grabowski", "Mariusz Grabowski"),
        ),
        ("support@serwis.example", "kancelaria@serwis.example"),
    ),
    Client(
        "Szpital Powiatowy w Lesznie",
        "szpital-leszno.example",
        (
            ("tomasz.kowalczyk", "Tomasz Kowalczyk"),
            ("magdalena.lewandowska", "Magdalena Lewandowska"),
            ("jan.kaminski", "Jan Kamiński"),
            ("sor", "Szpitalny Oddział Ratunkowy"),
            ("informatyk", "Dział IT"),
            ("b.wisniewska", "Barbara Wiśniewska"),
        ),
        ("support@serwis.example", "siec-szpital@serwis.example", "szpital@serwis.example"),
    ),
    Client(
        "Biuro Rachunkowe Bilans",
        "bilans.example",
        (
            ("ewa.szymanska", "Ewa Szymańska"),
            ("marek.dabrowski", "Marek Dąbrowski"),
            ("ksiegowosc", "Księgowość"),
        ),
        ("support@serwis.example", "bilans@serwis.example"),
    ),
)


@dataclass(frozen=True)
class Mail:
    sender: str
    to: str
    raw: bytes


@dataclass(frozen=True)
class Seed:
    """A ticket opened earlier in the run, to reply to."""

    number: int | None  # None when written to files: the reply then carries no subject tag
    subject: str
    sender: str
    sender_name: str
    to: str
    message_id: str


def pick(n: int, forced_to: str | None) -> tuple[Client, str, str, str]:
    client = DEMO_CLIENTS[n % len(DEMO_CLIENTS)]
    local, name = client.people[(n // len(DEMO_CLIENTS)) % len(client.people)]
    to = forced_to or client.mailboxes[(n // 7) % len(client.mailboxes)]
    return client, f"{local}@{client.domain}", name, to


def build_mail(run: str, n: int, forced_to: str | None, seeds: list[Seed]) -> Mail:
    msg = EmailMessage()
    message_id = f"<bench-{run}-{n}@bench.example>"
    # Two in ten are replies to a ticket opened earlier in the run (when there are seeds).
    if seeds and n % 10 in (3, 7):
        seed = seeds[n % len(seeds)]
        msg["From"] = f"{seed.sender_name} <{seed.sender}>"
        msg["To"] = seed.to
        tag = f" [#{seed.number}]" if seed.number is not None else ""
        msg["Subject"] = f"Re: {seed.subject}{tag}"
        msg["In-Reply-To"] = seed.message_id
        msg["References"] = seed.message_id
        msg["Message-ID"] = message_id
        msg.set_content(REPLY_BODY.format(n=n, name=seed.sender_name))
        return Mail(seed.sender, seed.to, msg.as_bytes(policy=policy.SMTP))
    client, sender, name, to = pick(n, forced_to)
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = to
    msg["Subject"] = f"{SUBJECTS[n % len(SUBJECTS)]} ({n})"
    msg["Message-ID"] = message_id
    msg.set_content(BODY.format(n=n, name=name, company=client.company))
    if n % 5 == 0:
        # A small scanned-document-like attachment (~20 kB), with a Polish file name.
        payload = bytes((n * 31 + i * 7) % 256 for i in range(20_000))
        msg.add_attachment(
            payload, maintype="application", subtype="pdf", filename=f"protokół-{n}.pdf"
        )
    return Mail(sender, to, msg.as_bytes(policy=policy.SMTP))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def send_all(args: argparse.Namespace, mails: list[Mail]) -> tuple[list[float], int, float, float]:
    """Send every mail; returns (latencies in s, refused count, start, end)."""
    latencies: list[float] = []
    refused = 0
    lock = threading.Lock()
    counter = iter(range(len(mails)))

    def worker() -> None:
        nonlocal refused
        smtp: smtplib.SMTP | None = None
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            mail = mails[n]
            try:
                if smtp is None:
                    smtp = smtplib.SMTP(args.host, args.port, timeout=60)
                    smtp.ehlo()
                t0 = time.perf_counter()
                if args.rate:
                    # Open loop: mail n is due at start + n / rate. Latency counts from then, so
                    # a mail that waited for a free connection is charged for it (no
                    # coordinated omission).
                    due = start + n / args.rate
                    if due > t0:
                        time.sleep(due - t0)
                    t0 = due
                smtp.sendmail(mail.sender, [mail.to], mail.raw)
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


def wait_processed(
    engine, prefix: str, count: int, start: float, timeout: float
) -> tuple[int, float] | None:
    """Poll until ``count`` mails of ``prefix`` have left ``received``; (done, s) or None."""
    from sqlalchemy import func, select

    from core.mail.models import InboundMessage

    mine = InboundMessage.message_id.like(f"{prefix}%")
    deadline = time.monotonic() + timeout
    counts = select(func.count(), func.count().filter(InboundMessage.state == "received")).where(
        mine
    )
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            total, waiting = conn.execute(counts).one()
        if total >= count and waiting == 0:
            return total, time.perf_counter() - start
        # Every 100 ms, and every 5 ms near the end: the end is seen within a few milliseconds
        # of the last commit (a run of 1,000 mails lasts about 3 s) at the cost of a few more
        # queries in its last moments.
        time.sleep(0.005 if total >= count and waiting < 100 else 0.1)
    return None


def load_seeds(engine, run: str, seed_mails: SeedInfo) -> list[Seed]:
    """The tickets the seed wave opened, with what a reply needs."""
    from sqlalchemy import select

    from core.mail.models import InboundMessage
    from core.tickets.models import Ticket

    stmt = (
        select(InboundMessage.message_id, Ticket.number)
        .join(Ticket, Ticket.id == InboundMessage.ticket_id)
        .where(InboundMessage.message_id.like(f"<bench-{run}-seed-%"))
    )
    seeds = []
    with engine.connect() as conn:
        for message_id, number in conn.execute(stmt):
            subject, sender, name, to = seed_mails[message_id]
            seeds.append(Seed(number, subject, sender, name, to, message_id))
    return sorted(seeds, key=lambda s: s.number)


SeedInfo = dict[str, tuple[str, str, str, str]]  # Message-ID: (subject, sender, name, to)


def build_seed_mails(args: argparse.Namespace, run: str) -> tuple[list[Mail], SeedInfo]:
    """The seed wave's mails, and what a reply to each needs."""
    seed_mails: SeedInfo = {}
    mails = []
    for i in range(args.seeds):
        client, sender, name, to = pick(i, args.to)
        subject = f"{SUBJECTS[i % len(SUBJECTS)]} (zgłoszenie {i})"
        message_id = f"<bench-{run}-seed-{i}@bench.example>"
        msg = EmailMessage()
        msg["From"] = f"{name} <{sender}>"
        msg["To"] = to
        msg["Subject"] = subject
        msg["Message-ID"] = message_id
        msg.set_content(BODY.format(n=i, name=name, company=client.company))
        mails.append(Mail(sender, to, msg.as_bytes(policy=policy.SMTP)))
        seed_mails[message_id] = (subject, sender, name, to)
    return mails, seed_mails


def send_seeds(
    args: argparse.Namespace, engine, run: str, mails: list[Mail], seed_mails: SeedInfo
) -> list[Seed]:
    """Send and process the seed wave (not timed); the tickets the timed replies go to."""
    # In waves of one mail per sender: two first mails of the same new sender processed at
    # once race to create the contact (one fails and waits for the scheduler's sweep).
    wave = sum(len(client.people) for client in DEMO_CLIENTS)
    for first in range(0, len(mails), wave):
        _, refused, start, _ = send_all(args, mails[first : first + wave])
        if refused:
            raise SystemExit(f"{refused} seed mails were not accepted")
        done = min(len(mails), first + wave)
        if wait_processed(engine, f"<bench-{run}-seed-", done, start, args.timeout) is None:
            raise SystemExit("the seed mails were not processed in time; is a worker running?")
    seeds = load_seeds(engine, run, seed_mails)
    if not seeds:
        raise SystemExit("the seed mails opened no tickets; do the addresses fit the config?")
    return seeds


def outcome(engine, run: str, seeds: list[Seed]) -> dict[str, int]:
    """What became of the timed mails: states, new tickets with a contract, replies threaded."""
    from sqlalchemy import func, select

    from core.mail.models import InboundMessage
    from core.tickets.models import Ticket

    mine = InboundMessage.message_id.like(f"<bench-{run}-m-%")
    seed_numbers = [s.number for s in seeds]
    result: dict[str, int] = {}
    with engine.connect() as conn:
        for state, n in conn.execute(
            select(InboundMessage.state, func.count()).where(mine).group_by(InboundMessage.state)
        ):
            result[state] = n
        joined = (
            select(func.count())
            .select_from(InboundMessage)
            .join(Ticket, Ticket.id == InboundMessage.ticket_id)
            .where(mine)
        )
        on_seed = Ticket.number.in_(seed_numbers) if seed_numbers else Ticket.id.is_(None)
        result["on seed tickets"] = conn.scalar(joined.where(on_seed)) or 0
        result["new tickets with a contract"] = (
            conn.scalar(joined.where(~on_seed, Ticket.contract_id.is_not(None))) or 0
        )
        result["new tickets with a client, no contract"] = (
            conn.scalar(
                joined.where(~on_seed, Ticket.client_id.is_not(None), Ticket.contract_id.is_(None))
            )
            or 0
        )
        result["new tickets in triage"] = (
            conn.scalar(joined.where(~on_seed, Ticket.client_id.is_(None))) or 0
        )
    return result


def write_dir(args: argparse.Namespace, run: str) -> int:
    """Write the seed wave and the timed mails as .eml files into ``--write-dir``."""
    target = Path(args.write_dir)
    target.mkdir(parents=True, exist_ok=True)
    if any(target.glob("*.eml")):
        raise SystemExit(f"{target} already holds .eml files; give an empty directory.")
    seed_list, seed_mails = build_seed_mails(args, run)
    seeds = [
        Seed(None, subject, sender, name, to, message_id)
        for message_id, (subject, sender, name, to) in seed_mails.items()
    ]
    for i, mail in enumerate(seed_list):
        (target / f"seed-{i:04d}.eml").write_bytes(mail.raw)
    for n in range(args.count):
        mail = build_mail(f"{run}-m", n, args.to, seeds)
        (target / f"mail-{n:05d}.eml").write_bytes(mail.raw)
    print(f"wrote {len(seed_list)} seed mails and {args.count} mails of run {run} to {target}")
    return 0


def read_mail(path: Path) -> tuple[Mail, EmailMessage]:
    """A written mail, with its envelope taken from its From and To, and its headers."""
    raw = path.read_bytes()
    headers = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
    assert isinstance(headers, EmailMessage)
    sender = parseaddr(str(headers["From"]))[1]
    to = parseaddr(str(headers["To"]))[1]
    return Mail(sender, to, raw), headers


def read_dir(directory: str) -> tuple[str, list[Mail], SeedInfo, list[Mail], int]:
    """(run, seed mails, their reply data, timed mails, replies among them) of a written run."""
    source = Path(directory)
    seed_list: list[Mail] = []
    seed_mails: SeedInfo = {}
    for path in sorted(source.glob("seed-*.eml")):
        mail, headers = read_mail(path)
        name = parseaddr(str(headers["From"]))[0]
        seed_mails[str(headers["Message-ID"])] = (
            str(headers["Subject"]),
            mail.sender,
            name,
            mail.to,
        )
        seed_list.append(mail)
    mails: list[Mail] = []
    replies = 0
    run = None
    for path in sorted(source.glob("mail-*.eml")):
        mail, headers = read_mail(path)
        mails.append(mail)
        replies += headers["In-Reply-To"] is not None
        if run is None:
            found = re.match(r"<bench-([0-9a-f]+)-m-\d+@", str(headers["Message-ID"]))
            if found is None:
                raise SystemExit(f"{path} was not written by bench/ingest.py --write-dir.")
            run = found.group(1)
    if run is None:
        raise SystemExit(f"{source} holds no mail-*.eml files; write them with --write-dir.")
    return run, seed_list, seed_mails, mails, replies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="offer this many mails per second (open loop) instead of sending as fast as the "
        "connections allow; the latency then includes any wait for a free connection",
    )
    parser.add_argument(
        "--to",
        help="send every mail to this mailbox (default: the demo's support@ and contract boxes)",
    )
    parser.add_argument("--database-url", help="the instance's database, to time processing")
    parser.add_argument(
        "--seeds",
        type=int,
        default=20,
        help="tickets opened first (untimed) for the replies; needs --database-url; 0: none",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for processing")
    parser.add_argument(
        "--write-dir",
        help="write the seed wave and --count mails as .eml files into this directory and exit",
    )
    parser.add_argument(
        "--from-dir",
        help="send the mails of a --write-dir directory instead of generating them (--count, "
        "--seeds and --to are then ignored)",
    )
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    if args.write_dir:
        return write_dir(args, run)
    seed_list: list[Mail] = []
    seed_mails: SeedInfo = {}
    if args.from_dir:
        run, seed_list, seed_mails, mails, replies = read_dir(args.from_dir)
        args.count = len(mails)
    elif args.database_url and args.seeds > 0:
        seed_list, seed_mails = build_seed_mails(args, run)
    engine = None
    seeds: list[Seed] = []
    if args.database_url:
        from core.db import make_engine

        engine = make_engine(args.database_url)
        if seed_list:
            seeds = send_seeds(args, engine, run, seed_list, seed_mails)
    try:
        if not args.from_dir:
            # Built before the clock starts: the sender's own CPU must not count as our latency.
            mails = [build_mail(f"{run}-m", n, args.to, seeds) for n in range(args.count)]
            replies = sum(1 for n in range(args.count) if seeds and n % 10 in (3, 7))
        timed_from = os.times()
        latencies, refused, start, end = send_all(args, mails)
        accepted = len(latencies)
        wall = end - start
        rows = [
            (
                "mails sent",
                f"{args.count} over {args.concurrency} connections"
                + (f", offered at {args.rate:.0f}/s" if args.rate else ", as fast as accepted"),
            ),
            (
                "of which replies",
                f"{replies} ({'In-Reply-To' if args.from_dir else 'tag and In-Reply-To'} "
                f"of {len(seeds)} tickets opened first)"
                if seeds
                else "none (replies need --database-url)"
                + (f"; {replies} written as replies, sent as new mails" if replies else ""),
            ),
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
        if engine is not None:
            done = wait_processed(engine, f"<bench-{run}-m-", accepted, start, args.timeout)
            if done is None:
                rows.append(("end to end", f"not finished within {args.timeout:.0f} s"))
            else:
                count, seconds = done
                rows.append(
                    ("end to end mails/s", f"{count / seconds:.0f} ({count} in {seconds:.2f} s)")
                )
                result = outcome(engine, run, seeds)
                rows.append(
                    (
                        "outcome",
                        ", ".join(f"{name} {n}" for name, n in result.items()),
                    )
                )
        timed = os.times()
        rows.append(
            (
                "sending client CPU while timed (sending, then polling for the end)",
                f"{timed.user + timed.system - timed_from.user - timed_from.system:.1f} s",
            )
        )
    finally:
        if engine is not None:
            engine.dispose()
    print(
        f"\nInbound mail, {platform.python_implementation()} {platform.python_version()}, "
        f"{args.host}:{args.port}, run {run}\n"
    )
    spent = os.times()
    rows.append(
        (
            "sending client CPU in all (its start, the seeds and building the mails too)",
            f"{spent.user + spent.system:.1f} s",
        )
    )
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0 if refused == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

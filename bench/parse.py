"""Benchmark of mail parsing: ``mailgw.parsing.parse_message`` now and as it was at 669f615.

The old module's source comes from git (``git show 669f615:mailgw/parsing.py``) and is
imported from a temporary directory under another name, so both run in one process, in one
run, on the same bytes. The corpus is mixed: every message in ``tests/fixtures/mail`` (real
shapes, some of the long tail), generated ordinary mails (the common path: well-formed,
stdlib-built, ASCII headers with encoded words for Polish names and subjects, a fifth with a
20 kB attachment, a fifth HTML with a text alternative, a third replies with References) and
generated long-tail mails (undeclared 8-bit headers in windows-1250, iso-8859-2, GB2312 and
Shift-JIS, lost continuation lines, bad encoded words; each different, and the new parser's
charset caches are emptied before each of its rounds, so no guess is served from a cache).
Once, outside the rounds: a mail of 2,000 nested multiparts.

Rounds alternate old and new so that the machine's drift hits both alike. Printed: µs per
mail (median and best round) for the whole corpus, for the ordinary mails and for the
fixtures; peak memory (tracemalloc) while parsing the corpus once with results discarded;
the machine it ran on.

Run: .venv/bin/python bench/parse.py [--rounds 15] [--ordinary 300] [--seed 2026]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere

from mailgw import boundaries  # noqa: E402
from mailgw import parsing as new_parsing  # noqa: E402

OLD_COMMIT = "669f615"
FIXTURES = ROOT / "tests" / "fixtures" / "mail"
DOMAIN = "support.example"

NAMES = [
    ("Anna Kowalska", "anna.kowalska@acme.example"),
    ("Łukasz Żółkiewski", "lukasz@acme.example"),
    ("Piotr Nowak", "piotr.nowak@beta.example"),
    ("Małgorzata Wiśniewska", "m.wisniewska@gamma.example"),
    ("John Smith", "john@delta.example"),
]
SUBJECTS = [
    "Drukarka nie drukuje",
    "Awaria zasilacza w serwerowni",
    "Prośba o przegląd klimatyzacji",
    "Nie działa VPN",
    "Zamówienie tonera do drukarki HP",
]
BODY = (
    "Dzień dobry,\n\nod rana {what} w pokoju {room}. Restart nie pomógł, komunikat na "
    "wyświetlaczu: „Błąd 0x{code:04X}”.\nProszę o pilną pomoc.\n\nPozdrawiam\n{name}\n"
    "tel. 600 100 {room:03d}\n"
)


def load_old() -> ModuleType:
    """The parsing module as of OLD_COMMIT, imported as ``old_parsing``."""
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:mailgw/parsing.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    directory = Path(tempfile.mkdtemp(prefix="pulpit-bench-"))
    path = directory / "old_parsing.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("old_parsing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_parsing"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def ordinary_mails(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    mails = []
    for i in range(count):
        name, addr = rng.choice(NAMES)
        msg = EmailMessage()
        msg["From"] = f"{name} <{addr}>"
        msg["To"] = "pomoc@support.example"
        subject = rng.choice(SUBJECTS)
        msg["Subject"] = f"RE: {subject} [#{1000 + i}]" if i % 3 == 0 else subject
        msg["Date"] = format_datetime(datetime(2026, 3, 2, 9, rng.randrange(60), tzinfo=UTC))
        msg["Message-ID"] = make_msgid(domain=addr.split("@")[1])
        if i % 3 == 0:
            msg["In-Reply-To"] = f"<ours-{i}@support.example>"
            msg["References"] = f"<root-{i}@acme.example> <ours-{i}@support.example>"
        text = BODY.format(
            what=rng.choice(["drukarka nie drukuje", "nie ma sieci", "monitor gaśnie"]),
            room=rng.randrange(1, 400),
            code=rng.randrange(65536),
            name=name,
        )
        msg.set_content(text)
        if i % 5 == 1:
            html = "<p>" + text.replace("\n\n", "</p><p>").replace("\n", "<br>") + "</p>"
            msg.add_alternative(html, subtype="html")
        if i % 5 == 2:
            msg.add_attachment(
                rng.randbytes(20_000), maintype="application", subtype="pdf", filename="skan.pdf"
            )
        mails.append(msg.as_bytes())
    return mails


LONG_TAIL_TEXTS = [
    ("Zażółć gęślą jaźń", "cp1250"),
    ("Awaria zasilacza w Łodzi", "iso-8859-2"),
    ("打印机故障", "gb2312"),
    ("プリンターが動きません", "shift_jis"),
]


def long_tail_mails(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed + 1)
    mails = []
    for i in range(count):
        text, charset = LONG_TAIL_TEXTS[i % len(LONG_TAIL_TEXTS)]
        subject = f"{text} {rng.randrange(100_000)}".encode(charset)
        name = NAMES[i % len(NAMES)][0].encode(charset, "replace")
        lines = [
            b"From: " + name + b" <klient%d@acme.example>" % i,
            b"To: pomoc@support.example",
            b"Subject: " + subject,
            b"Message-ID: <tail-%d@acme.example>" % i,
        ]
        if i % 3 == 0:
            lines.insert(3, b"lost continuation of the subject %d" % i)
        if i % 4 == 1:
            lines.append(b"X-Note: =?utf-8?q?=FF=FE_bad_%d?=" % i)
        lines.append(b"Content-Type: text/plain; charset=" + charset.encode())
        body = f"Dzień dobry {i}, {text}.\n".encode(charset, "replace")
        mails.append(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    return mails


def nested_mail(levels: int) -> bytes:
    parts = [
        b"From: a@acme.example\r\nSubject: nested\r\nMIME-Version: 1.0\r\n",
    ]
    for i in range(levels):
        parts.append(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i))
    parts.append(b"Content-Type: text/plain\r\n\r\ninnermost\r\n")
    parts.extend(b"--b%d--\r\n" % i for i in reversed(range(levels)))
    return b"".join(parts)


def time_nested(parse: Callable[..., Any], raw: bytes) -> str:
    start = time.perf_counter()
    try:
        parse(raw, mail_domain=DOMAIN)
    except RecursionError:
        return f"RecursionError after {(time.perf_counter() - start) * 1000:,.0f} ms"
    return f"{(time.perf_counter() - start) * 1000:,.0f} ms"


def fixtures() -> list[bytes]:
    return [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))]


def time_once(parse: Callable[..., Any], corpus: list[bytes]) -> float:
    """Seconds to parse every mail of ``corpus`` once."""
    gc.collect()
    start = time.perf_counter()
    for raw in corpus:
        parse(raw, mail_domain=DOMAIN)
    return time.perf_counter() - start


def peak_kib(parse: Callable[..., Any], corpus: list[bytes]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        for raw in corpus:
            parse(raw, mail_domain=DOMAIN)
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def clear_caches() -> None:
    """Empty the new parser's caches of charset guesses, so a round guesses afresh."""
    from mailgw import charsets

    charsets._decode_guessed_cached.cache_clear()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_head() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ordinary", type=int, default=300, help="generated ordinary mails")
    parser.add_argument("--long-tail", type=int, default=60, help="generated long-tail mails")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    old = load_old()
    groups = {
        "ordinary": ordinary_mails(args.ordinary, args.seed),
        "long tail": long_tail_mails(args.long_tail, args.seed),
        "fixtures": fixtures(),
    }
    parts = list(groups)
    groups["all"] = [raw for group in parts for raw in groups[group]]

    def old_parse(raw: bytes, **kwargs: Any) -> Any:
        # The stdlib parser as the old code had it: importing today's mailgw.parsing gave
        # email.feedparser its boundary matcher (mailgw.boundaries) for the whole process.
        boundaries.uninstall()
        try:
            return old.parse_message(raw, **kwargs)
        finally:
            boundaries.install()

    parsers: dict[str, Callable[..., Any]] = {
        f"{OLD_COMMIT} (old)": old_parse,
        "now": new_parsing.parse_message,
    }

    # Warm up: lazy imports (mail-parser, charset-normalizer, inscriptis), caches.
    for parse in parsers.values():
        for raw in groups["all"]:
            parse(raw, mail_domain=DOMAIN)

    per_mail: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for group in parts:
            for label, parse in parsers.items():
                if parse is new_parsing.parse_message:
                    clear_caches()
                seconds = time_once(parse, groups[group])
                per_mail.setdefault((label, group), []).append(seconds / len(groups[group]) * 1e6)
    # Mails never parsed before, as in a worker: there every multipart boundary is new to the
    # re module's cache of compiled patterns, which the rounds above (the same mails again)
    # fill. Each parser gets its own freshly generated mails of the ordinary shape each round.
    fresh: dict[str, list[float]] = {label: [] for label in parsers}
    for r in range(args.rounds):
        for k, (label, parse) in enumerate(parsers.items()):
            mails = ordinary_mails(args.ordinary, args.seed + 1000 + 2 * r + k)
            if parse is new_parsing.parse_message:
                clear_caches()
            fresh[label].append(time_once(parse, mails) / len(mails) * 1e6)
    total = len(groups["all"])
    for label in parsers:
        # A round of "all" is a round of each group, weighted by its size.
        per_mail[(label, "all")] = [
            sum(per_mail[(label, g)][r] * len(groups[g]) for g in parts) / total
            for r in range(args.rounds)
        ]
    clear_caches()
    peaks = {label: peak_kib(parse, groups["all"]) for label, parse in parsers.items()}
    deep = nested_mail(2000)
    nested = {label: time_nested(parse, deep) for label, parse in parsers.items()}

    differ = sum(
        1
        for raw in groups["all"]
        if (a := old.parse_message(raw, mail_domain=DOMAIN)).from_addr
        != (b := new_parsing.parse_message(raw, mail_domain=DOMAIN)).from_addr
        or a.subject != b.subject
    )

    labels = list(parsers)
    print(
        f"Machine: nproc {os.cpu_count()}, {cpu_model()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"HEAD {git_head()}; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"Corpus: {len(groups['ordinary'])} ordinary and {len(groups['long tail'])} long-tail "
        f"generated mails + {len(groups['fixtures'])} fixtures; {args.rounds} rounds, old and "
        "new alternating.\n"
    )
    print(f"| µs per mail, median (best) | {labels[0]} | {labels[1]} | now / old |")
    print("| --- | ---: | ---: | ---: |")
    for group in (*parts, "all"):
        old_times, new_times = per_mail[(labels[0], group)], per_mail[(labels[1], group)]
        ratio = statistics.median(new_times) / statistics.median(old_times)
        print(
            f"| {group} ({len(groups[group])} mails) "
            f"| {statistics.median(old_times):,.0f} ({min(old_times):,.0f}) "
            f"| {statistics.median(new_times):,.0f} ({min(new_times):,.0f}) "
            f"| {ratio:.2f} |"
        )
    old_fresh, new_fresh = fresh[labels[0]], fresh[labels[1]]
    print(
        f"| ordinary, never parsed before ({args.ordinary} new mails a round) "
        f"| {statistics.median(old_fresh):,.0f} ({min(old_fresh):,.0f}) "
        f"| {statistics.median(new_fresh):,.0f} ({min(new_fresh):,.0f}) "
        f"| {statistics.median(new_fresh) / statistics.median(old_fresh):.2f} |"
    )
    print(
        f"| peak memory, whole corpus once (tracemalloc) | {peaks[labels[0]]:,.0f} KiB "
        f"| {peaks[labels[1]]:,.0f} KiB | {peaks[labels[1]] / peaks[labels[0]]:.2f} |"
    )
    print(f"| one mail of 2,000 nested multiparts | {nested[labels[0]]} | {nested[labels[1]]} | |")
    print(f"\nMails whose From address or subject the two read differently: {differ} of {total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``DATA`` read in pieces (mailgw.smtp_data) gives what aiosmtpd's line-by-line reading gives.

The reference below is aiosmtpd 1.4's loop (``SMTP.smtp_DATA``) without its logging: one
``readuntil(b"\\r\\n")`` per line, a lone dot ends, the first dot of every other line goes. Each
case is fed to the stream in pieces cut at many places, with a pipelined command after the end
that must stay in the stream.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from mailgw.smtp_data import TooBig, read_data

NEXT = b"MAIL FROM:<next@acme.example>\r\n"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail"


async def _reference(
    reader: asyncio.StreamReader, *, size_limit: int | None, line_limit: int
) -> bytes:
    lines: list[bytearray] = []
    size = 0
    too_big = False
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            too_big = True
            lines.clear()
            await reader.readexactly(exc.consumed)
            continue
        if line == b".\r\n":
            break
        size += len(line)
        if (size_limit and size > size_limit) or len(line) > line_limit:
            too_big = True
            lines.clear()
        if not too_big:
            lines.append(bytearray(line))
    if too_big:
        raise TooBig
    for text in lines:
        if text.startswith(b"."):
            del text[0]
    return b"".join(lines)


def _run(
    reader_of: str,
    stream: bytes,
    cuts: list[int],
    *,
    size_limit: int | None = None,
    line_limit: int = 1 << 20,
) -> tuple[bytes | type[TooBig], bytes]:
    async def go() -> tuple[bytes | type[TooBig], bytes]:
        reader = asyncio.StreamReader(limit=line_limit)
        read = read_data if reader_of == "pieces" else _reference

        async def feed() -> None:
            start = 0
            for cut in [*sorted(cuts), len(stream)]:
                reader.feed_data(stream[start:cut])
                start = cut
                await asyncio.sleep(0)
            reader.feed_eof()

        feeder = asyncio.create_task(feed())
        try:
            content: bytes | type[TooBig] = await read(
                reader, size_limit=size_limit, line_limit=line_limit
            )
        except TooBig:
            content = TooBig
        rest = await reader.read()
        await feeder
        return content, rest

    return asyncio.run(go())


CASES = {
    "plain": b"Subject: x\r\n\r\nDrukarka nie drukuje.\r\n",
    "empty": b"",
    "one empty line": b"\r\n",
    "dot stuffed": b"Subject: x\r\n\r\n..\r\n..kropka\r\n.bez kropki przed\r\nkoniec.\r\n",
    "first line stuffed": b"..Subject: x\r\n\r\n..\r\n",
    "lines ending in a dot": b"A.\r\nB..\r\nC.\r\n\r\nD. E.\r\n",
    "dot then CR LF inside a line": b"x .\r y\r\n a.\rn.\r\n",
    "bare LF and a dot": b"line\n.\nnext\r\n",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_case_reads_as_aiosmtpd_reads_it_wherever_the_stream_is_cut(name: str) -> None:
    stream = CASES[name] + b".\r\n" + NEXT
    rng = random.Random(name)
    cut_sets = [[], list(range(1, len(stream)))]  # whole, and one byte at a time
    cut_sets += [rng.sample(range(1, len(stream)), min(5, len(stream) - 1)) for _ in range(30)]
    for cuts in cut_sets:
        expected = _run("reference", stream, cuts)
        assert _run("pieces", stream, cuts) == expected, cuts
        assert expected[1] == NEXT


def test_the_fixture_corpus_reads_the_same() -> None:
    # Real mails, dot-stuffed as a client sends them (RFC 5321 4.5.2).
    files = sorted(FIXTURES.rglob("*.eml"))
    assert files
    for path in files:
        raw = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not raw.endswith(b"\r\n"):
            raw += b"\r\n"
        stuffed = (b"\r\n" + raw).replace(b"\r\n.", b"\r\n..")[2:]
        stream = stuffed + b".\r\n" + NEXT
        cuts = random.Random(path.name).sample(range(1, len(stream)), 8)
        got = _run("pieces", stream, cuts)
        assert got == _run("reference", stream, cuts), path.name
        assert got == (raw, NEXT), path.name


def test_over_the_size_limit_is_read_to_its_end_and_refused() -> None:
    body = b"x" * 76 + b"\r\n"
    stream = body * 100 + b".\r\n" + NEXT
    for limit in (len(body) * 100 - 1, 500):
        for cuts in ([], [7, 333, 5000]):
            assert _run("pieces", stream, cuts, size_limit=limit) == (TooBig, NEXT)
    assert _run("pieces", stream, [], size_limit=len(body) * 100) == (body * 100, NEXT)


def test_a_line_over_the_line_limit_is_refused_wherever_it_is() -> None:
    # A stream limit as small as the line limit, so the long stretches come in parts.
    short = b"krotka linia\r\n"
    for long_at in range(3):
        lines = [short] * 3
        lines[long_at] = b"y" * 300 + b"\r\n"
        stream = b"".join(lines) + b".\r\n" + NEXT
        for cuts in ([], [5, 100, 301]):
            got = _run("pieces", stream, cuts, line_limit=200)
            assert got == (TooBig, NEXT), (long_at, cuts)
            assert _run("reference", stream, cuts, line_limit=200) == got
    # Many short lines longer together than the stream limit are fine.
    stream = short * 100 + b".\r\n" + NEXT
    assert _run("pieces", stream, [], line_limit=200) == (short * 100, NEXT)
    assert _run("pieces", stream, [150, 151, 999], line_limit=200) == (short * 100, NEXT)


def test_a_crlf_cut_in_two_by_the_stream_limit_does_not_join_two_lines() -> None:
    # Three lines of 150 bytes and a stream limit of 200: with 301 bytes in the stream and no
    # ".\r\n" yet, 299 may be taken, the last of them the CR ending line two.
    line = b"z" * 148 + b"\r\n"
    stream = line * 3 + b".\r\n" + NEXT
    assert _run("pieces", stream, [301], line_limit=200) == (line * 3, NEXT)
    assert _run("reference", stream, [301], line_limit=200) == (line * 3, NEXT)

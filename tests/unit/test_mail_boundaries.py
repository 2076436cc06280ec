"""``mailgw.boundaries``: the stdlib parser's multipart boundaries matched without a regular
expression compiled per message, with the same answers as the pattern it replaces."""

from __future__ import annotations

import email
import email.feedparser
import re
from email import policy
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

import mailgw.parsing  # noqa: F401  installs the matcher, as every worker does
from mailgw import boundaries

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mail"

BOUNDARIES = [
    "simple",
    "----=_NextPart_000_0001_01DA2F3B.5E1C2A40",
    "=_Part_123.456+789",
    "a b(c)?*[d]{e}|^$\\f",
    "Apple-Mail=_0C1B5E6A-2A14-4F5E-9D0A",
    "--",
    "0000000000004b5a3c060a1e5f2d",
]

SUFFIXES = [
    "\r\n",
    "\n",
    "\r",
    "",
    "--\r\n",
    "--\n",
    "--",
    "  \t\r\n",
    "--  \n",
    "x\r\n",
    "-\r\n",
    "---\r\n",
    "\r\n\n",
    " tail\n",
    "\n\n",
]


def _stdlib(boundary: str) -> re.Pattern[str]:
    # The pattern exactly as email.feedparser builds it.
    separator = "--" + boundary
    return re.compile(
        "(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    )


def _answer(match: Any) -> tuple[str | None, str | None, str | None] | None:
    if not match:
        return None
    return match.group("end"), match.group("ws"), match.group("linesep")


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_a_boundary_line_matches_as_the_stdlib_pattern_would(boundary: str) -> None:
    pattern = _stdlib(boundary)
    matcher = boundaries.compile_boundary(pattern.pattern)
    assert isinstance(matcher, boundaries.BoundaryMatcher)
    lines = [f"--{boundary}{suffix}" for suffix in SUFFIXES]
    lines += [f"-{boundary}\r\n", f" --{boundary}\r\n", f"--{boundary[:-1]}\r\n", "", "\r\n"]
    lines += [f"--{boundary}{boundary}\n", f"--{boundary.upper()}\r\n"]
    for line in lines:
        assert _answer(matcher.match(line)) == _answer(pattern.match(line)), repr(line)


def test_other_patterns_are_compiled_as_usual() -> None:
    assert isinstance(boundaries.compile_boundary(r"(?P<sep>x)"), re.Pattern)
    odd = "(?P<sep>" + "a(" + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    with pytest.raises(re.error):
        boundaries.compile_boundary(odd)  # not what re.escape writes: left to re, which fails
    flagged = _stdlib("b").pattern
    assert isinstance(boundaries.compile_boundary(flagged, re.IGNORECASE), re.Pattern)


def _shape(msg: Message) -> list[Any]:
    return [
        (
            part.get_content_type(),
            part.get_boundary(),
            part.preamble,
            part.epilogue,
            None if part.is_multipart() else part.get_payload(decode=True),
            [type(d).__name__ for d in part.defects],
        )
        for part in msg.walk()
    ]


def _parsed_both_ways(raw: bytes) -> tuple[list[Any], list[Any]]:
    assert isinstance(email.feedparser.re, boundaries._FeedparserRe)
    ours = _shape(email.message_from_bytes(raw, policy=policy.compat32))
    boundaries.uninstall()
    try:
        theirs = _shape(email.message_from_bytes(raw, policy=policy.compat32))
    finally:
        boundaries.install()
    return ours, theirs


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.eml")), ids=lambda p: p.name)
def test_every_sample_mail_parses_the_same_as_with_the_stdlib_alone(path: Path) -> None:
    ours, theirs = _parsed_both_ways(path.read_bytes())
    assert ours == theirs


def test_malformed_multiparts_parse_the_same_as_with_the_stdlib_alone() -> None:
    samples = [
        # No closing boundary, a preamble and an epilogue, whitespace after a boundary.
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\npre\r\n--b1 \t\r\n'
        b"Content-Type: text/plain\r\n\r\none\r\n--b1\r\n\r\ntwo\r\n",
        # Nested parts with boundaries that are prefixes of each other, LF line ends.
        b'Content-Type: multipart/mixed; boundary="ab"\n\n--ab\n'
        b'Content-Type: multipart/alternative; boundary="abc"\n\n--abc\n\nx\n--abc--\n'
        b"--ab\n\ny\n--ab--\nepilogue\n",
        # Regular-expression characters in the boundary, doubled boundary lines, CR only.
        b'Content-Type: multipart/mixed; boundary="a+b(c)?"\r\r--a+b(c)?\r--a+b(c)?\r\r'
        b"body\r--a+b(c)?--\r",
        # A boundary that never appears.
        b'Content-Type: multipart/mixed; boundary="missing"\r\n\r\njust text\r\n',
    ]
    for raw in samples:
        ours, theirs = _parsed_both_ways(raw)
        assert ours == theirs, raw


def test_the_stdlib_parser_really_uses_the_matcher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should a later Python write the boundary pattern differently, the matcher would step
    aside without a word; this says so."""
    made: list[Any] = []

    def spying(pattern: Any, flags: int = 0) -> Any:
        made.append(boundaries.compile_boundary(pattern, flags))
        return made[-1]

    monkeypatch.setattr(boundaries._FeedparserRe, "compile", staticmethod(spying))
    raw = (FIXTURES / "inline_cid_image.eml").read_bytes()
    msg = email.message_from_bytes(raw, policy=policy.compat32)
    assert msg.is_multipart()
    assert made and all(isinstance(m, boundaries.BoundaryMatcher) for m in made)

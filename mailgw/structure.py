"""Repairs of a raw message's bytes, in memory, before the stdlib parses its MIME structure.

The stored bytes are never touched (the gateway stores them as received); these functions
return new bytes for :func:`email.message_from_bytes` and notes on what they changed.

- :func:`repair_header_block`: the stdlib stops reading headers at the first line that is
  neither ``Name:`` nor a continuation and takes the rest, a ``From:`` after it included, for
  the body. Here the header block ends at the first empty line, as RFC 5322 2.1 says; an mbox
  ``From `` envelope line is dropped; a line without a name is the continuation of the header
  above it whose leading space was lost (before any header it is dropped); ``Name :`` loses
  the space before its colon (RFC 5322 4.5.3). Several nameless lines at the end of the
  block, or any when the message has no empty line at all, are the body that lost its
  separator: an empty line is put before them.
- :func:`cut_deep_nesting`: the stdlib parser recurses once per nested multipart or
  ``message/*`` part and raises RecursionError at about a thousand levels (and needs seconds
  for a few hundred). Past :data:`MAX_DEPTH` levels the rest of a branch is cut out as one
  opaque piece, kept whole as an attachment; a one-line placeholder part takes its place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# How deep multiparts and forwarded messages may nest before the rest is kept as one piece.
MAX_DEPTH = 50
# The placeholder's type: parsing turns it into the attachment of the bytes cut there.
PLACEHOLDER_TYPE = "application/x-pulpit-nested-parts"
PLACEHOLDER = f"Content-Type: {PLACEHOLDER_TYPE}\r\n\r\n".encode()

# A header line as the stdlib reads one: a name of printable ASCII without ":", then ":".
_CLEAN_BLOCK = re.compile(rb"(?:(?:[\x21-\x39\x3b-\x7e]+:|[ \t])[^\n]*\n)*")
_NAMED = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_NAMED_SPACED = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]+:")
_FIRST_EMPTY_LINE = re.compile(rb"\n\r?\n")
_BOUNDARY = re.compile(rb"""boundary\s*=\s*(?:"([^"\r\n]*)"|([^;\s"]+))""", re.I)
_CTYPE = re.compile(rb"content-type[ \t]*:[ \t]*([^;\s]*)", re.I)


@dataclass
class Repaired:
    """Bytes for the stdlib parser, and what was done to get them."""

    data: bytes
    notes: list[str] = field(default_factory=list)
    cuts: list[bytes] = field(default_factory=list)  # pieces cut out at PLACEHOLDER parts


def _header_end(raw: bytes, pos: int = 0) -> int:
    """The offset just after the last line of the header block starting at ``pos`` (its line
    end included), or -1 when no empty line follows."""
    if raw.startswith((b"\n", b"\r\n"), pos):
        return pos
    match = _FIRST_EMPTY_LINE.search(raw, pos)
    return match.start() + 1 if match else -1


def repair_header_block(raw: bytes) -> Repaired:
    """The message with a header block the stdlib reads whole (see the module docstring)."""
    end = _header_end(raw)
    block = raw if end < 0 else raw[:end]
    if end >= 0 and _CLEAN_BLOCK.fullmatch(block) and not block.startswith(b"From "):
        return Repaired(raw)  # the common case: nothing to repair, nothing copied
    lines = block.splitlines(keepends=True)
    if end < 0 and lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\r\n"
    notes: list[str] = []
    kinds = [_line_kind(line) for line in lines]
    # Nameless lines after the last named header: lost continuations, or a body that lost its
    # separating empty line (several lines, or a message with no empty line at all).
    body_from = len(lines)
    last_named = max((i for i, k in enumerate(kinds) if k == "named"), default=-1)
    tail = [i for i in range(last_named + 1, len(lines)) if kinds[i] == "nameless"]
    if last_named >= 0 and tail and (end < 0 or len(tail) >= 2):
        body_from = tail[0]
        notes.append(
            f"header line {body_from + 1} starts the body: the empty line before it is missing"
        )
    out: list[bytes] = []
    current = ""
    for number, (line, kind) in enumerate(zip(lines[:body_from], kinds, strict=False), 1):
        if kind == "envelope":
            notes.append(f"header line {number}: mbox 'From ' line skipped")
        elif kind == "named":
            spaced = _NAMED_SPACED.match(line)
            if spaced:
                line = spaced.group(1) + b":" + line[spaced.end() :]
                notes.append(f"header line {number}: space before the colon removed")
            current = line.split(b":", 1)[0].decode("ascii", "replace")
            out.append(line)
        elif not current:
            notes.append(f"header line {number}: not a header, before any header: skipped")
        elif kind == "continuation":
            out.append(line)
        else:
            notes.append(
                f"header line {number}: no name: joined to {current} as a lost continuation"
            )
            out.append(b" " + line.lstrip())
    rest = lines[body_from:]
    if rest:
        body = b"\r\n" + b"".join(rest) + (raw[end:] if end >= 0 else b"")
    else:
        body = raw[end:] if end >= 0 else b"\r\n"
    return Repaired(b"".join(out) + body, notes)


def _line_kind(line: bytes) -> str:
    if line[:1] in (b" ", b"\t"):
        return "continuation"
    if line.startswith(b"From ") or line.startswith(b">From "):
        return "envelope"
    if _NAMED.match(line) or _NAMED_SPACED.match(line):
        return "named"
    return "nameless"


# --- Nesting ---------------------------------------------------------------------------------


def _may_nest_deeper(data: bytes, limit: int) -> bool:
    """Cheap: could the message nest more than ``limit`` levels at all? Each level needs a
    boundary declaration or a ``message/`` type; counting substrings runs at memchr speed."""
    count = 0
    for needle in (b"oundary", b"OUNDARY", b"essage/", b"ESSAGE/"):
        count += data.count(needle)
        if count > limit:
            return True
    return False


@dataclass
class _Frame:
    boundary: bytes | None  # None: a message/* wrapper, whose body is one entity


def _entity_type(headers: bytes) -> tuple[str, bytes | None]:
    """(content type, boundary) from an entity's raw header block."""
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", headers)
    ctype_match = None
    for line in unfolded.splitlines():
        if line[:13].lower().startswith(b"content-type"):
            ctype_match = _CTYPE.match(line)
            if ctype_match:
                value = line
                break
    if ctype_match is None:
        return "text/plain", None
    ctype = ctype_match.group(1).decode("ascii", "replace").lower()
    if ctype.startswith("multipart/"):
        found = _BOUNDARY.search(value)
        if found:
            return ctype, found.group(1) if found.group(1) is not None else found.group(2)
        return "text/plain", None  # a multipart without boundary is read as text
    return ctype, None


def _delimiter(line: bytes, frames: list[_Frame]) -> tuple[int, bool] | None:
    """(index of the frame whose boundary the line is, closing?) or None."""
    if not line.startswith(b"--"):
        return None
    text = line.rstrip(b"\r\n").rstrip(b" \t")
    for index in range(len(frames) - 1, -1, -1):
        boundary = frames[index].boundary
        if boundary is None:
            continue
        delim = b"--" + boundary
        if text == delim:
            return index, False
        if text == delim + b"--":
            return index, True
    return None


def _next_delimiter(data: bytes, pos: int, frames: list[_Frame]) -> tuple[int, int, int, bool]:
    """From ``pos`` (a line start), the next delimiter line of one of ``frames``:
    (its start, its end, frame index, closing?); (len, len, -1, False) when there is none."""
    while pos < len(data):
        if data.startswith(b"--", pos):
            eol = data.find(b"\n", pos)
            line_end = len(data) if eol < 0 else eol + 1
            found = _delimiter(data[pos:line_end], frames)
            if found is not None:
                return pos, line_end, found[0], found[1]
        nxt = data.find(b"\n--", pos)
        if nxt < 0:
            break
        pos = nxt + 1
    return len(data), len(data), -1, False


def cut_deep_nesting(data: bytes, max_depth: int = MAX_DEPTH) -> Repaired:
    """``data`` with every branch nested deeper than ``max_depth`` cut out (see the module
    docstring); ordinary mail returns at once, unchanged."""
    if not _may_nest_deeper(data, max_depth):
        return Repaired(data)
    out: list[bytes] = []
    cuts: list[bytes] = []
    frames: list[_Frame] = []
    pos = 0  # start of an entity's header block
    copied = 0
    while pos <= len(data):
        depth = len(frames)
        if depth > max_depth:
            # Cut from here to the next delimiter of an enclosing multipart (or the end); the
            # line break before a delimiter belongs to the delimiter (RFC 2046 5.1.1).
            start, _, index, _ = _next_delimiter(data, pos, frames)
            stop = start
            if index >= 0:
                stop = start - 2 if data[start - 2 : start] == b"\r\n" else start - 1
                stop = max(stop, pos)
            out.append(data[copied:pos])
            out.append(PLACEHOLDER)
            cuts.append(data[pos:stop])
            copied = stop
            if index < 0:
                break
            del frames[index + 1 :]
            pos = start
            entity_next = _after_delimiter(data, frames, pos)
            if entity_next is None:
                break
            pos = entity_next
            continue
        end = _header_end(data, pos)
        if end < 0:
            break
        ctype, boundary = _entity_type(data[pos:end])
        body = data.find(b"\n", end) + 1 or len(data)  # past the empty line
        if boundary is not None:
            frames.append(_Frame(boundary))
        elif ctype.startswith("message/") and ctype not in (
            "message/delivery-status",
            "message/global-delivery-status",
            "message/disposition-notification",
        ):
            frames.append(_Frame(None))
            pos = body
            continue
        nxt = _after_delimiter(data, frames, body)
        if nxt is None:
            break
        pos = nxt
    out.append(data[copied:])
    if not cuts:
        return Repaired(data)
    note = (
        f"MIME parts nested deeper than {max_depth} levels: {len(cuts)} branch(es) kept "
        "whole as nested-parts.eml"
    )
    return Repaired(b"".join(out), [note], cuts)


def _after_delimiter(data: bytes, frames: list[_Frame], pos: int) -> int | None:
    """Skip a body from ``pos`` to the next part's header block: the offset of that block, or
    None at the end of the message. Closing delimiters pop their multipart and go on."""
    while True:
        start, line_end, index, closing = _next_delimiter(data, pos, frames)
        if index < 0:
            return None
        del frames[index + 1 :]
        if not closing:
            return line_end
        del frames[index:]
        pos = line_end

"""Outgoing mail written straight to its wire bytes (RFC 5322, MIME), without ``email.message``.

Building an :class:`email.message.EmailMessage` parses every header it is given back through
``email.headerregistry`` and moves Content-* headers around on each ``set_content``: in
``bench/profile_worker.py`` that was half of a worker's time per outgoing mail, for messages
whose shape never varies (text and HTML alternatives, perhaps attachments, a dozen headers we
write ourselves). :func:`compose` writes the same message directly:

* headers: addresses parsed by :func:`email.utils.getaddresses`, display names that are not
  ASCII and every run of non-ASCII words of the subject as RFC 2047 base64 encoded-words
  (:func:`encoded_words`; ``email.header.Header`` cost a sixth of a mail), folded at 76
  between words, References between its ids; a line break in any value becomes a space, so
  no value can add a header.
* bodies: ``7bit`` when ASCII with lines of at most 998 octets, else ``quoted-printable``
  (lines of at most 76): every message is 7-bit clean, so it goes through any relay, with or
  without 8BITMIME. (The email package wrote ``8bit`` bodies without asking the relay for
  BODY=8BITMIME.)
* attachments: base64 in lines of 76, the file name as ``filename="..."`` when ASCII, else
  RFC 2231 ``filename*=utf-8''...``; with attachments the message is multipart/mixed around
  the multipart/alternative, as the email package makes it.
* an address that is not ASCII (RFC 6531/6532) is written as UTF-8 and the message is marked
  :attr:`OutgoingMail.smtputf8`: the relay must offer SMTPUTF8 for it, as ``smtplib``'s
  ``send_message`` requires.

Line ends are CRLF, as on the wire. :meth:`OutgoingMail.message` parses the bytes back into an
``EmailMessage`` for the ``log://`` relay and for tests.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import formataddr, getaddresses, parseaddr
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from mailgw.mail_policy import DEFAULT

CRLF = b"\r\n"
# RFC 5322 2.1.1: a line is at most 998 octets and should keep to 78; RFC 2047 section 2
# limits a line holding an encoded-word to 76, so headers fold at 76.
MAX_LINE = 998
HEADER_WIDTH = 76
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class OutgoingMail:
    """A message ready for the relay: its bytes and its envelope."""

    raw: bytes
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]

    @property
    def smtputf8(self) -> bool:
        """An address is not ASCII: the relay must offer SMTPUTF8 (RFC 6531)."""
        return needs_smtputf8(self.envelope_from, *self.recipients)

    def message(self) -> EmailMessage:
        """The bytes parsed back, for reading (the ``log://`` relay, tests)."""
        parsed = message_from_bytes(self.raw.replace(CRLF, b"\n"), policy=DEFAULT)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @classmethod
    def from_message(cls, message: EmailMessage) -> OutgoingMail:
        """An ``EmailMessage`` made elsewhere, as ``smtplib``'s ``send_message`` would send it:
        the envelope from From and the recipients from To and Cc."""
        envelope_from = parseaddr(str(message.get("From", "")))[1]
        recipients = tuple(
            addr
            for _, addr in getaddresses(
                [str(v) for name in ("To", "Cc") for v in message.get_all(name, [])]
            )
            if addr
        )
        international = needs_smtputf8(envelope_from, *recipients)
        # utf8 is an EmailPolicy attribute; typeshed's clone() knows only the base's.
        out_policy = message.policy.clone(linesep="\r\n", utf8=international)  # type: ignore[call-arg]
        return cls(
            raw=message.as_bytes(policy=out_policy),
            message_id=str(message.get("Message-ID", "")),
            envelope_from=envelope_from,
            recipients=recipients,
        )


@dataclass(frozen=True)
class Part:
    """An attachment: its bytes, MIME type and file name."""

    data: bytes
    content_type: str
    filename: str


def compose(
    *,
    headers: Sequence[tuple[str, str]],
    text: str,
    html: str,
    attachments: Iterable[Part] = (),
    trailing: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The message's bytes: ``headers`` in order, the MIME headers, then ``trailing`` ones.

    Header names known to hold addresses (From, To, Cc, Reply-To, Sender) are written as
    addresses, Subject as unstructured text, References and In-Reply-To as id lists; any other
    value must be ASCII (it is written as given, folded at spaces only if longer than 998).
    """
    alternative = _boundary()
    content_type = _multipart_type(b"alternative", alternative)
    body = _multipart_body(alternative, [_text_part("plain", text), _text_part("html", html)])
    parts = list(attachments)
    if parts:
        # multipart/mixed around the alternatives, then the files.
        mixed = _boundary()
        inner = content_type + CRLF + body
        content_type = _multipart_type(b"mixed", mixed)
        body = _multipart_body(mixed, [inner, *(_attachment(p) for p in parts)])
    out = bytearray()
    for name, value in headers:
        out += _header(name, value)
    out += b"MIME-Version: 1.0\r\n" + content_type
    for name, value in trailing:
        out += _header(name, value)
    return bytes(out + CRLF + body)


def _multipart_type(subtype: bytes, boundary: bytes) -> bytes:
    return b'Content-Type: multipart/%s;\r\n boundary="%s"\r\n' % (subtype, boundary)


def needs_smtputf8(*addresses: str) -> bool:
    """True when an address (not a display name) is not ASCII."""
    return any(not parseaddr(a)[1].isascii() for a in addresses)


# --- Headers ---------------------------------------------------------------------------------

_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to", "sender"})
_ID_HEADERS = frozenset({"references", "in-reply-to"})


def _header(name: str, value: str) -> bytes:
    # A line break inside a value would end the header and start another of the sender's
    # choosing: it becomes a space.
    value = " ".join(_LINE_BREAKS.split(value)).strip()
    key = name.lower()
    if key in _ADDRESS_HEADERS:
        return _address_header(name, value)
    if key in _ID_HEADERS:
        return _fold_words(name, value.split())
    return _fold_words(name, _unstructured(value))


def _unstructured(value: str) -> list[str]:
    """The words of an unstructured value (RFC 5322 3.2.5), each run of words that are not
    plain ASCII as RFC 2047 encoded-words. The spaces inside a run are encoded with it: a
    reader drops the white space between two encoded-words."""
    words: list[str] = []
    run: list[str] = []
    for word in value.split(" "):
        if run and not word:
            run.append(word)  # a second space inside a run stays inside it
        elif word.isascii() and not ("=?" in word and "?=" in word):
            if run:
                words += encoded_words(" ".join(run))
                run = []
            words.append(word)
        else:
            run.append(word)
    if run:
        words += encoded_words(" ".join(run))
    return words


# 36 octets are 48 characters of base64, with "=?utf-8?b?" and "?=" 60: within RFC 2047's 75
# for a word, and after "Reply-To: " within its 76 for a line that holds one.
_ENCODED_OCTETS = 36


def encoded_words(text: str) -> list[str]:
    """``text`` as base64 encoded-words of UTF-8, never splitting a character between two."""
    data = text.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + _ENCODED_OCTETS, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1  # back to the first octet of the character
        words.append(
            "=?utf-8?b?" + binascii.b2a_base64(data[start:end], newline=False).decode() + "?="
        )
        start = end
    return words


@lru_cache(maxsize=4096)
def _address_header(name: str, value: str) -> bytes:
    """Each address with its display name encoded; an address that is not ASCII stays UTF-8.
    Kept per value: the same senders, mailboxes and staff recur in every batch."""
    written = []
    for display, addr in getaddresses([value]):
        if not addr:
            continue
        if not addr.isascii():
            # RFC 6532: the header is UTF-8 then (formataddr refuses such an address).
            written.append(f"{_quoted(display)} <{addr}>" if display else addr)
        elif display and not display.isascii():
            written.append(" ".join([*encoded_words(display), f"<{addr}>"]))
        else:
            written.append(formataddr((display, addr)))
    return _fold_words(name, _join_addresses(written), encoding="utf-8")


def _join_addresses(written: list[str]) -> list[str]:
    # Folding may only happen between the addresses and at spaces inside them.
    words: list[str] = []
    for i, one in enumerate(written):
        pieces = one.split(" ")
        if i < len(written) - 1:
            pieces[-1] += ","
        words.extend(pieces)
    return words


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fold_words(name: str, words: Sequence[str], *, encoding: str = "ascii") -> bytes:
    """``name: w1 w2 ...`` with lines broken between words before ``HEADER_WIDTH``."""
    lines: list[str] = []
    line = f"{name}:"
    for word in words:
        if word and len(line) + 1 + len(word) > HEADER_WIDTH and line != f"{name}:":
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


# --- Bodies ----------------------------------------------------------------------------------


def _boundary() -> bytes:
    # "=_" never occurs in quoted-printable or base64 text, and the random part in nothing else.
    return b"=_pulpit_" + secrets.token_hex(12).encode("ascii")


def _multipart_body(boundary: bytes, parts: Sequence[bytes]) -> bytes:
    # RFC 2046 5.1.1: the CRLF before a delimiter belongs to it, so a part that ends with a
    # line end gets one more; the text keeps its last line end when parsed.
    out = bytearray()
    for part in parts:
        out += b"--%s\r\n" % boundary
        out += part
        out += CRLF if part.endswith(CRLF) else CRLF + CRLF
    out += b"--%s--\r\n" % boundary
    return bytes(out)


def _text_part(subtype: str, text: str) -> bytes:
    lines = _LINE_BREAKS.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    encoded = "\r\n".join(lines).encode("utf-8") + CRLF
    if text.isascii() and all(len(line) <= MAX_LINE for line in lines):
        cte = b"7bit"
    else:
        cte = b"quoted-printable"
        # istext: line ends stay line ends; trailing spaces ("-- ") are protected as =20.
        encoded = binascii.b2a_qp(encoded, istext=True)
    return (
        b'Content-Type: text/%s; charset="utf-8"\r\n' % subtype.encode("ascii")
        + b"Content-Transfer-Encoding: %s\r\n\r\n" % cte
        + encoded
    )


def _attachment(part: Part) -> bytes:
    maintype, _, subtype = part.content_type.partition("/")
    content_type = f"{maintype or 'application'}/{subtype or 'octet-stream'}".lower()
    if not re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", content_type):
        content_type = "application/octet-stream"
    data = binascii.b2a_base64(part.data, newline=False)
    lines = [data[i : i + 76] for i in range(0, len(data), 76)]
    return (
        f"Content-Type: {content_type}\r\n".encode("ascii")
        + b"Content-Transfer-Encoding: base64\r\n"
        + b"Content-Disposition: attachment;\r\n "
        + _filename_param(part.filename)
        + b"\r\n\r\n"
        + CRLF.join(lines)
        + CRLF
    )


def _filename_param(filename: str) -> bytes:
    name = " ".join(_LINE_BREAKS.split(filename)).strip() or "attachment"
    if name.isascii() and name.isprintable():
        return b"filename=" + _quoted(name).encode("ascii")
    # RFC 2231 section 4: charset'language'percent-encoded octets.
    return b"filename*=utf-8''" + quote(name, safe="").encode("ascii")


def parts_of(
    attachments: Iterable[dict[str, Any]], read_blob: Callable[[str], bytes] | None
) -> list[Part]:
    """An outbox row's attachment entries (``sha256``, ``content_type``, ``filename``) read."""
    parts = []
    for att in attachments:
        if read_blob is None:
            raise ValueError("this mail has attachments and no blob store was given")
        parts.append(
            Part(read_blob(str(att["sha256"])), str(att["content_type"]), str(att["filename"]))
        )
    return parts


__all__ = ["OutgoingMail", "Part", "compose", "needs_smtputf8", "parts_of"]

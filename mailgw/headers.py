"""Header values as received, read the way their sender meant them.

The stdlib's header registry interprets a header as a whole, so one bad encoded word or one
8-bit byte spoils it, and decoding before splitting an address list lets an encoded word
smuggle in an address (``=?utf-8?q?boss=40example.com?= <attacker@evil.example>``). Here:

- :func:`decode_value` decodes a raw value: 8-bit bytes by :mod:`mailgw.charsets`, then every
  RFC 2047 encoded word on its own (one bad word does not stop the others; adjacent words in
  one charset are joined as bytes first, since senders split multi-byte characters between
  them), with the charset names real mail uses;
- :func:`mailboxes` splits the *raw* value into (display name, address) pairs first and only
  then decodes the display names; an address must look like one (:func:`plausible_address`);
- :func:`params` reads ``Content-Type``/``Content-Disposition`` parameters from the raw value,
  RFC 2231 continuations and charsets included, decoding undeclared 8-bit bytes like the rest.

Values come from ``Message.raw_items()``: the bytes as ASCII with ``surrogateescape``, so
8-bit bytes are the code points U+DC80..U+DCFF.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from email.utils import getaddresses
from urllib.parse import unquote_to_bytes

from core.mail.mailboxes import ATEXT, DOT_ATOM_ADDRESS
from core.tickets.timeline import clean_filename
from mailgw.charsets import clean, codec_for, decode_declared, decode_undeclared

# RFC 2047 2: =?charset?encoding?encoded-text?= (encoded text without "?"; spaces inside are
# not allowed, but some senders put them there and every mail client reads them).
_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"[ \t\r\n]*")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_FOLD = re.compile(r"\r?\n(?=[ \t])|\r?\n")
_DOMAIN_LABELS = re.compile(r"^[^\s@<>()\[\],;:\\\"]+(\.[^\s@<>()\[\],;:\\\".]+)+$")
_IP_LITERAL = re.compile(r"^\[(IPv6:[0-9A-Fa-f:.]+|\d{1,3}(\.\d{1,3}){3})\]$")


def raw_bytes(value: str) -> bytes:
    """The bytes a raw header value (from ``raw_items()``) was made of (text that is already
    decoded comes back as UTF-8)."""
    return value.encode("utf-8", "surrogateescape")


def unfold(value: str) -> str:
    """RFC 5322 2.2.3: a folded value is one line again (the CRLF before WSP goes)."""
    return _FOLD.sub("", value) if "\n" in value else value


def _word_bytes(encoding: str, text: str) -> bytes | None:
    data = raw_bytes(text)
    if encoding in "qQ":
        return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data.replace(b"_", b" "))
    compact = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    if not compact and data:
        return None
    if len(compact) % 4 == 1:
        compact = compact[:-1]  # a stray character: what is left may still decode
    try:
        return base64.b64decode(compact + b"=" * (-len(compact) % 4))
    except (binascii.Error, ValueError):
        return None


def decode_words(value: str, hints: Sequence[str] = ()) -> str:
    """Decode the RFC 2047 encoded words of a (already 8-bit-decoded) value, each on its own.

    Whitespace between two encoded words goes (RFC 2047 6.2); adjacent words in the same
    charset are decoded together, so a character split between them is whole again. A word
    whose text is no base64 stays as it was.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pos = 0
    run: list[bytes] = []
    run_charset = ""

    def flush() -> None:
        nonlocal run, run_charset
        if run:
            # A declared charset that fails is the first hint of a guess (GBK bytes in a
            # "gb2312" word need none: its alias is GB18030); an unusable name is no hint.
            out.append(decode_declared(b"".join(run), run_charset, hints))
        run, run_charset = [], ""

    for match in _WORD.finditer(value):
        between = value[pos : match.start()]
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            flush()
            out.append(between + match.group(0))
            pos = match.end()
            continue
        charset = match.group(1).split("*", 1)[0].lower()
        if not (run and _BETWEEN_WORDS.fullmatch(between)):
            flush()
            out.append(between)
        elif charset != run_charset:
            flush()
        if not run:
            run_charset = charset
        run.append(data)
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


def decode_value(value: str, hints: Sequence[str] = (), *, collapse: bool = True) -> str:
    """A raw header value as text: 8-bit bytes decoded (UTF-8, else the likeliest legacy
    charset, see :mod:`mailgw.charsets`), encoded words decoded, whitespace collapsed; never a
    surrogate or a control character. Plain ASCII without encoded words costs a split."""
    if value.isascii() and "=?" not in value:
        text = value if value.isprintable() else clean(value)
    else:
        text = value if value.isascii() else decode_undeclared(raw_bytes(value), hints)
        text = clean(decode_words(text, hints))
    return " ".join(text.split()) if collapse else text


def plausible_address(addr: str) -> bool:
    """An address we may act on: one ``@``, a local part, a domain with a dot (or an IP
    literal), no whitespace, no control characters, none of ``<>()[],;:\\"`` outside a
    literal."""
    if not addr or addr.count("@") != 1 or any(ch.isspace() for ch in addr):
        return False
    if not addr.isprintable():
        return False
    local, domain = addr.split("@")
    if not local or any(ch in '<>()[],;:\\"' for ch in local):
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return bool(_IP_LITERAL.match(domain) or _DOMAIN_LABELS.match(domain))


# One unquoted display name with an "@" in it, then one bracketed address, nothing else.
_UNQUOTED_ADDRESS_NAME = re.compile(r'^\s*([^<>,"]*@[^<>,"]*?)\s*<([^<>,\s]+)>\s*$')

# The mailbox most mail carries, which the stdlib's address parser takes a few hundred
# function calls to read: an optional display name of plain words (RFC 5322 atoms, encoded
# words included) or one quoted string without escapes, then a dot-atom address, bracketed
# when named. getaddresses reads these to (name, address) exactly as written (a test compares
# the two); anything else (comments, groups, lists, escapes, routes) goes to getaddresses.
_SIMPLE_MAILBOX = re.compile(
    rf"^ ?(?:(?P<bare>{DOT_ATOM_ADDRESS})"
    rf'|(?:(?P<words>{ATEXT}+(?: {ATEXT}+)*)|"(?P<quoted>[^"\\\r\n]*)")'
    rf" ?<(?P<addr>{DOT_ATOM_ADDRESS})>) ?$"
)


def simple_mailbox(value: str) -> list[tuple[str, str]] | None:
    """What ``getaddresses([value])`` reads from a mailbox of :data:`_SIMPLE_MAILBOX`'s
    form, without it; None for any other form."""
    simple = _SIMPLE_MAILBOX.match(value)
    if simple is None:
        return None
    if (bare := simple.group("bare")) is not None:
        return [("", bare)]
    words = simple.group("words")
    return [(words if words is not None else simple.group("quoted"), simple.group("addr"))]


def mailboxes(raw_value: str, hints: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(display name, address) of each plausible mailbox in a raw address header, in order.

    Split on the raw value, so an encoded word can only ever be a display name. The address
    is lower-cased; undeclared 8-bit bytes are read first, as UTF-8 when they are (RFC 6532),
    else guessed, since a multi-byte character can hold an ASCII byte. A bare word
    without an address before a named mailbox ("Kowalski, Jan <jan@x>", unquoted, as Outlook
    writes it) is put back in front of that mailbox's name.
    """
    found: list[tuple[str, str]] = []
    pending: list[str] = []
    value = unfold(raw_value)
    if not value.isascii():
        # Undeclared 8-bit text first: in Shift-JIS or GBK a byte of a name can be "@", "["
        # or "\\"; encoded words stay as they are (ASCII) until the split is done.
        value = decode_undeclared(raw_bytes(value), hints)
    lone = _UNQUOTED_ADDRESS_NAME.match(value)
    if lone is not None and plausible_address(lone.group(2).strip()):
        # "coord@our.example <attacker@evil.example>": an unquoted name holding an address is
        # one mailbox, whose address is the one in brackets (what mail programs show and
        # answer); getaddresses would make it two and the first would be the forged one.
        return [(decode_value(lone.group(1).strip(), hints), lone.group(2).strip().lower())]
    pairs = simple_mailbox(value)
    for name, addr in getaddresses([value]) if pairs is None else pairs:
        addr = addr.strip()
        if not plausible_address(addr):
            # Not an address: maybe the first half of an unquoted "Last, First" name.
            if addr and "@" not in addr and not name:
                pending.append(addr)
            else:
                pending = []
            continue
        display = ", ".join([*pending, name]) if pending and name else name
        pending = []
        found.append((decode_value(display, hints), addr.lower()))
    return found


def safe_filename(name: str) -> str:
    """A file name without path, control or bidirectional-override characters (the rules of
    :func:`core.tickets.timeline.clean_filename`), no leading or trailing dots; "" when nothing
    is left."""
    return clean_filename(name).strip(" .")


# --- Parameters of Content-Type and Content-Disposition (RFC 2045 5.1, RFC 2231) ------------


def _split_params(value: str) -> list[str]:
    """``type/sub; a=1; b="x;y"`` -> ``["type/sub", "a=1", 'b="x;y"']`` (quotes respected)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch == ";" and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def params(raw_value: str, hints: Sequence[str] = ()) -> dict[str, str]:
    """The decoded parameters of a raw MIME header value, lower-case names.

    RFC 2231 (``name*=charset'lang'%xx``, ``name*0*=``, ``name*1=``) is assembled and decoded
    with its charset (a wrong or missing one is guessed); a plain value has its encoded words
    (Outlook puts them in quoted file names) and undeclared 8-bit bytes decoded.
    """
    plain: dict[str, str] = {}
    extended: dict[str, dict[int, tuple[str, bool]]] = {}
    for item in _split_params(unfold(raw_value))[1:]:
        key, sep, val = item.partition("=")
        if not sep:
            continue
        key = key.strip().lower()
        if "*" in key:
            base, _, rest = key.partition("*")
            encoded = rest.endswith("*") or rest == ""
            index_text = rest.rstrip("*")
            index = int(index_text) if index_text.isdigit() else 0
            extended.setdefault(base, {})[index] = (val.strip(), encoded)
        else:
            plain.setdefault(key, _unquote(val))
    result = {k: decode_value(v, hints) for k, v in plain.items()}
    for base, pieces in extended.items():
        charset = ""
        data = b""
        for n, index in enumerate(sorted(pieces)):
            text, encoded = pieces[index]
            text = _unquote(text)
            if encoded:
                if n == 0 and text.count("'") >= 2:
                    charset, _, text = text.split("'", 2)
                data += unquote_to_bytes(raw_bytes(text))
            else:
                data += raw_bytes(text)
        if codec_for(charset) is None and not charset:
            decoded = decode_undeclared(data, hints)
        else:
            decoded = decode_declared(data, charset, hints)
        result[base] = " ".join(clean(decoded).split())
    return result

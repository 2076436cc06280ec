"""Parse a stored raw message into what the processing rules need, surviving real-world mail.

Real mail breaks the standards in well-known ways, so every step has a fallback (docs/mail.md,
"Reading real-world mail"):

- the header block is repaired in memory first (:mod:`mailgw.structure`): an mbox ``From ``
  line, a stray line before the headers, a continuation that lost its leading space; MIME
  nested deeper than :data:`mailgw.structure.MAX_DEPTH` levels is cut there and kept whole as
  ``nested-parts.eml``. The stored bytes are never changed;
- headers are read raw and decoded here (:mod:`mailgw.headers`): address headers are split into
  (name, address) *before* their encoded words are decoded, so an encoded word can never become
  an address; RFC 2047 encoded words are decoded one by one; raw 8-bit bytes are UTF-8 (RFC
  6532) or guessed (:mod:`mailgw.charsets`: the charsets the message declares first, then the
  legacy charsets real mail uses); nothing decoded holds a lone surrogate or a control
  character;
- bodies are decoded with their declared charset as real mail means it (GB2312 is GB18030,
  iso-8859-1 is windows-1252), a wrong or unknown one guessed; never failing;
- attachment filenames come from RFC 2231 parameters (``filename*=utf-8''...``), encoded-words
  in a quoted filename (Outlook, not standard but common), undeclared 8-bit or plain ASCII; a
  part without one is named after its Content-Description or Content-ID, else by its type
  (``image-2.jpg``, ``part-3.html``); control and bidirectional-override characters go;
- ``message/rfc822`` parts (forwarded mail) are kept whole as ``.eml`` attachments named after
  their subject, and their text is read (:class:`Forwarded`) for the timeline;
- RFC 3464 delivery reports (``multipart/report; report-type=delivery-status``) yield the
  failed recipient, its Action and Status, and the Message-ID of the mail that bounced;
- ``winmail.dat`` (TNEF, MS-OXTNEF) is unpacked into the files and body inside it by
  :mod:`mailgw.tnef`; when it cannot be read it stays a plain attachment and a note says why;
- a missing Message-ID is made up from the sha256 of the bytes, so the same bytes always get
  the same identity (dedupe without a Message-ID).

The stdlib ``email`` package does the MIME structure, with ``policy.compat32``: every header is
read raw and decoded here, so the header registry of ``policy.default`` (which parses a header
again on every access, and whose decoding of broken headers is what this module replaces) only
cost time: three quarters of an ordinary mail's parsing (bench/PARSE_RESULTS.md). ``mailparser``
(mail-parser) is the fallback for the text body when the stdlib tree yields none (badly broken
MIME). Attachments come out as :class:`core.tickets.timeline.NewAttachment`, the type the ticket
services take, so processing hands them on as they are. Nothing here touches the database.
"""

from __future__ import annotations

import email
import hashlib
import logging
import mimetypes
import re
from dataclasses import dataclass, field, replace
from email import policy
from email.message import Message
from functools import lru_cache

from core.tickets.timeline import NewAttachment
from mailgw import boundaries
from mailgw.charsets import clean, codec_for, decode_declared
from mailgw.headers import decode_value, mailboxes, params, safe_filename
from mailgw.structure import PLACEHOLDER_TYPE, cut_deep_nesting, repair_header_block
from mailgw.tnef import TnefError, decode_tnef, is_tnef

# The stdlib parser compiled a regular expression for every multipart boundary it read.
boundaries.install()

log = logging.getLogger(__name__)

# The largest HTML body we keep; beyond it the rest is cut (the raw stays downloadable).
MAX_HTML_CHARS = 2_000_000
MAX_TEXT_CHARS = 1_000_000
# The text of a forwarded message shown on the timeline.
MAX_FORWARDED_CHARS = 200_000
FALLBACK_CHARSET = "windows-1250"
# The longest file name made here (a forwarded mail's subject can be a paragraph).
MAX_NAME_CHARS = 150
NESTED_NAME = "nested-parts.eml"
_MSG_ID = re.compile(r"<[^<>\s]+>")
# RFC 3464 2.3.4: status-code = class "." subject "." detail (RFC 3463), e.g. 5.1.1.
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_FORWARDED_TYPES = ("message/rfc822", "message/global")
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to", "sender"})


@dataclass
class Forwarded:
    """A forwarded message (a ``message/rfc822`` part) as the timeline shows it."""

    subject: str
    from_: str  # its From header as written, decoded: "Jan Kowalski <jan@firma.example>"
    date: str  # its Date header as written
    text: str  # its text body (an HTML-only one laid out as text), capped


@dataclass
class ParsedMail:
    message_id: str
    message_id_generated: bool
    subject: str
    # The first plausible address in From, lower-cased; "" when From yields none. Never taken
    # from a display name or an encoded word.
    from_addr: str
    from_name: str
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    # The Sender header's address (RFC 5322 3.6.2: who actually sent it), "" without one.
    sender: str = ""
    # The From header as received, decoded for display only, whitespace collapsed: who sent a
    # mail whose From gives no usable address.
    raw_from: str = ""
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased name -> first value
    content_type: str = "text/plain"
    report_type: str = ""
    text: str = ""
    html: str = ""
    attachments: list[NewAttachment] = field(default_factory=list)
    # Forwarded messages (message/rfc822 parts) in order; each is an .eml attachment too.
    forwarded: list[Forwarded] = field(default_factory=list)
    # RFC 3464: from a delivery report, the address that failed and the original Message-ID.
    failed_recipient: str | None = None
    original_message_id: str | None = None
    # RFC 3464 2.3.3 / 2.3.4: that recipient's Action (failed, delayed, ...) and Status (5.1.1).
    dsn_action: str | None = None
    dsn_status: str | None = None
    # What parsing had to work around (an unreadable winmail.dat, a repaired header block...),
    # for the decisions log.
    notes: list[str] = field(default_factory=list)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def permanent_failure(self) -> bool:
        """A delivery report saying the address failed for good: Action ``failed`` with a
        permanent (5.x.x) Status (RFC 3464 2.3.3, 2.3.4; RFC 3463 3.1). A ``delayed`` report
        or a 4.x.x status is a transient failure and says nothing about the address."""
        return self.dsn_action == "failed" and (self.dsn_status or "").startswith("5.")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode body bytes: the declared charset as real mail means it, a wrong or missing one
    guessed (:func:`mailgw.charsets.decode_declared`); never raises."""
    return decode_declared(data, charset)


def decode_header_value(value: str, charset_hint: str | None = None) -> str:
    """A raw header as a person means it: encoded-words (RFC 2047) and raw 8-bit bytes decoded."""
    return decode_value(value, (charset_hint,) if charset_hint else ())


def message_ids(value: str) -> list[str]:
    """Every ``<id>`` in a header such as References (RFC 5322 3.6.4), in order."""
    return _MSG_ID.findall(value or "")


# --- Names -----------------------------------------------------------------------------------

_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/pjpeg": ".jpg",
    "image/jpg": ".jpg",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/vcard": ".vcf",
    "text/x-vcard": ".vcf",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
    "application/ms-tnef": ".dat",
    "application/vnd.ms-tnef": ".dat",
    "application/vnd.ms-outlook": ".msg",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.oasis.opendocument.text": ".odt",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
    "application/pgp-signature": ".asc",
    "application/octet-stream": ".bin",
}
# The interpreter's own table only: /etc/mime.types differs from machine to machine.
_MIMETYPES = mimetypes.MimeTypes(filenames=())


@lru_cache(maxsize=256)
def extension_for(ctype: str) -> str:
    """A file extension for a content type: ``.jpg`` (not ``.jpe``), ``.txt``, ``.html``...;
    ``.bin`` only for ``application/octet-stream`` and types nobody knows."""
    ctype = ctype.lower()
    if ctype in _EXTENSIONS:
        return _EXTENSIONS[ctype]
    ext = _MIMETYPES.guess_extension(ctype, strict=False)
    if ext:
        return ext
    maintype, _, subtype = ctype.partition("/")
    if maintype == "text":
        return ".txt"
    if maintype in ("image", "audio", "video") and re.fullmatch(r"[a-z0-9]{2,5}", subtype):
        return "." + subtype
    return ".bin"


def _with_extension(name: str, ctype: str) -> str:
    """``name`` with the type's extension unless it ends in something that looks like one."""
    if re.search(r"\.[A-Za-z0-9]{1,5}$", name):
        return name
    return name + extension_for(ctype)


def _short(name: str, limit: int = MAX_NAME_CHARS) -> str:
    """At most ``limit`` characters, the extension kept."""
    if len(name) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and 0 < len(ext) <= 8:
        return stem[: limit - len(ext) - 1].rstrip() + "." + ext
    return name[:limit].rstrip()


def _raw_header(part: Message, name: str) -> str:
    """A header's raw value (as received: 8-bit bytes as surrogates), "" without one."""
    lower = name.lower()
    for key, value in part.raw_items():
        if key.lower() == lower:
            return str(value)
    return ""


def _declared_filename(part: Message, hints: tuple[str, ...]) -> str | None:
    """The file name the sender gave: Content-Disposition's ``filename`` (RFC 2231 first), else
    Content-Type's ``name``; undeclared 8-bit bytes and encoded words decoded; only the last
    path component, without control or bidirectional-override characters."""
    for header, key in (("Content-Disposition", "filename"), ("Content-Type", "name")):
        raw = _raw_header(part, header)
        if raw and key in raw.lower():
            name = params(raw, hints).get(key)
            if name:
                return _short(safe_filename(name)) or None
    return None


def _content_id(part: Message) -> str | None:
    cid = _raw_header(part, "Content-ID")
    return clean(cid, keep_breaks=False).strip().strip("<>").strip() or None if cid else None


def _part_name(part: Message, ctype: str, n: int, hints: tuple[str, ...]) -> str:
    """A name for a part the sender gave none: its Content-Description, else its Content-ID
    (Outlook's ``image001.png@01D9...``), else ``image-<n>.<ext>`` / ``part-<n>.<ext>``."""
    description = _raw_header(part, "Content-Description")
    if description:
        name = safe_filename(decode_value(description, hints))
        if name and len(name) <= MAX_NAME_CHARS:
            return _with_extension(name, ctype)
    cid = safe_filename((_content_id(part) or "").split("@", 1)[0])
    if cid and re.fullmatch(r"[\w.\- ]{1,100}", cid) and not cid.replace(".", "").isdigit():
        return _with_extension(cid, ctype)
    kind = "image" if ctype.startswith("image/") else "part"
    return f"{kind}-{n}{extension_for(ctype)}"


def _subject_filename(subject: str) -> str:
    """A forwarded mail's file name from its subject, "" for none: characters unsafe in file
    names go (``/ \\ * ? " < > |``, controls; ``:`` stays, as in ``Re: Faktura 12.eml``)."""
    name = re.sub(r'[/\\*?"<>|]', " ", subject)
    name = " ".join(safe_filename(name).split()).strip(" .")
    return _short(name + ".eml") if name else ""


# --- Parts -----------------------------------------------------------------------------------


def _part_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _embedded_bytes(part: Message) -> bytes:
    """A message/rfc822 part's bytes, to keep a forwarded mail whole as an .eml."""
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        try:
            return bytes(inner[0].as_bytes(policy=policy.compat32))
        except (TypeError, ValueError, UnicodeError, LookupError, RecursionError):
            try:
                return str(inner[0]).encode("utf-8", "surrogateescape")
            except (TypeError, ValueError, UnicodeError, LookupError, RecursionError):
                return b""
    return _part_bytes(part)


def _text_of(part: Message, hints: tuple[str, ...], limit: int) -> str:
    """A text part's decoded text: its charset as real mail means it, no controls."""
    text = decode_declared(_part_bytes(part), part.get_content_charset(), hints)
    return clean(text[:limit])


def _dsn_fields(block: str) -> dict[str, str]:
    """One RFC 3464 field group as lower-cased name -> value (folded lines joined)."""
    fields: dict[str, str] = {}
    last = ""
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and last:
            fields[last] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip().lower()
            fields.setdefault(last, value.strip())
    return fields


def _dsn_address(value: str) -> str | None:
    # RFC 3464 2.3.2: address-type ";" generic-address, e.g. "rfc822; user@example.com".
    addr = value.split(";", 1)[-1].strip().strip("<>").lower()
    return addr if "@" in addr else None


def _parse_delivery_status(blocks: list[str], mail: ParsedMail) -> None:
    """RFC 3464 2.1: a per-message field group, then one group per recipient. The recipient
    reported is the first that failed, else the first; its Original-Recipient (the address we
    sent to) is preferred to the Final-Recipient (where forwarding led)."""
    recipients: list[tuple[str, dict[str, str]]] = []
    for block in blocks:
        fields = _dsn_fields(block)
        addr = _dsn_address(fields.get("original-recipient", "")) or _dsn_address(
            fields.get("final-recipient", "")
        )
        if addr:
            recipients.append((addr, fields))
    if not recipients:
        return
    failed = [r for r in recipients if r[1].get("action", "").lower().startswith("failed")]
    addr, fields = (failed or recipients)[0]
    mail.failed_recipient = addr
    action = fields.get("action", "").split("(", 1)[0].strip().lower()
    mail.dsn_action = action or None
    status = _STATUS.search(fields.get("status", ""))
    mail.dsn_status = status.group(0) if status else None


def _original_id(headers_bytes: bytes) -> str | None:
    inner = email.message_from_bytes(headers_bytes, policy=policy.compat32)
    found = message_ids(str(inner.get("Message-ID", "")))
    return found[0] if found else None


@dataclass
class _Walk:
    """What the walk over the MIME tree carries besides the mail it fills."""

    mail: ParsedMail
    hints: tuple[str, ...]
    cuts: list[bytes]  # pieces mailgw.structure cut out, one per placeholder part
    in_report: bool = False


def _walk(part: Message, ctx: _Walk, in_related: bool = False, depth: int = 0) -> None:
    mail = ctx.mail
    ctype = part.get_content_type()
    if ctype in ("message/delivery-status", "message/global-delivery-status"):
        # The stdlib parses the per-message and per-recipient blocks as sub-messages.
        payload = part.get_payload()
        if isinstance(payload, list):
            blocks = [str(b) for b in payload]
        else:
            blocks = re.split(r"\r?\n\s*\r?\n", decode_bytes(_part_bytes(part), "utf-8"))
        _parse_delivery_status(blocks, mail)
        return
    if ctype == PLACEHOLDER_TYPE and ctx.cuts:
        data = ctx.cuts.pop(0)
        mail.attachments.append(NewAttachment(NESTED_NAME, "message/rfc822", data))
        return
    if ctype in _FORWARDED_TYPES:
        _forwarded(part, ctx)
        return
    if part.is_multipart():
        related = ctype == "multipart/related"
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, Message):
                _walk(sub, ctx, related or in_related, depth + 1)
        return
    if ctype in ("text/rfc822-headers", "message/rfc822-headers"):
        if mail.original_message_id is None:
            mail.original_message_id = _original_id(_part_bytes(part))
        return
    disposition = (part.get_content_disposition() or "").lower()
    filename = _declared_filename(part, ctx.hints)
    cid = _content_id(part)
    is_body = disposition != "attachment" and filename is None
    if is_body and ctype == "text/plain" and not mail.text:
        mail.text = _text_of(part, ctx.hints, MAX_TEXT_CHARS)
        return
    if is_body and ctype == "text/html" and not mail.html:
        mail.html = _text_of(part, ctx.hints, MAX_HTML_CHARS)
        return
    data = _part_bytes(part)
    if not data and not filename:
        return
    inline = bool(cid) and (disposition == "inline" or in_related or not disposition)
    n = len(mail.attachments) + 1
    mail.attachments.append(
        NewAttachment(
            filename=filename or _part_name(part, ctype, n, ctx.hints),
            content_type=ctype,
            data=data,
            inline=inline,
            content_id=cid,
        )
    )


def _forwarded(part: Message, ctx: _Walk) -> None:
    """A message/rfc822 part: kept whole as an .eml named after its subject; its text read."""
    mail = ctx.mail
    data = _embedded_bytes(part)
    if mail.report_type == "delivery-status" and mail.original_message_id is None:
        mail.original_message_id = _original_id(data)
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    subject = ""
    if isinstance(inner, Message):
        subject = decode_value(_raw_header(inner, "Subject"), ctx.hints)
        if mail.report_type != "delivery-status":
            mail.forwarded.append(
                Forwarded(
                    subject=subject,
                    from_=decode_value(_raw_header(inner, "From"), ctx.hints),
                    date=decode_value(_raw_header(inner, "Date"), ctx.hints),
                    text=_inner_text(inner, ctx.hints),
                )
            )
    name = _declared_filename(part, ctx.hints) or _subject_filename(subject) or "forwarded.eml"
    if not name.lower().endswith(".eml"):
        name = _short(name, MAX_NAME_CHARS - 4) + ".eml"
    mail.attachments.append(NewAttachment(name, "message/rfc822", data))


def _inner_text(inner: Message, hints: tuple[str, ...]) -> str:
    """The body text of a forwarded message: its first text/plain part that is not an
    attachment, else its first HTML part laid out as text. Nested forwards are not entered
    (each is an attachment of its own message); the walk is a loop, never a recursion."""
    stack: list[Message] = [inner]
    html_part: Message | None = None
    seen = 0
    while stack and seen < 1000:
        part = stack.pop()
        seen += 1
        ctype = part.get_content_type()
        if part.is_multipart() and ctype not in _FORWARDED_TYPES:
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(p for p in reversed(payload) if isinstance(p, Message))
            continue
        if (part.get_content_disposition() or "") == "attachment":
            continue
        if ctype == "text/plain":
            return _text_of(part, hints, MAX_FORWARDED_CHARS).strip()
        if ctype == "text/html" and html_part is None:
            html_part = part
    if html_part is None:
        return ""
    from mailgw.bodies import html_to_text

    return html_to_text(_text_of(html_part, hints, MAX_HTML_CHARS))[:MAX_FORWARDED_CHARS]


def _declared_charsets(msg: Message) -> tuple[str, ...]:
    """The charsets the message declares for its parts, in order: the best guesses for its
    undeclared 8-bit headers and file names."""
    found: list[str] = []
    try:
        parts = list(msg.walk())
    except RecursionError:
        parts = [msg]
    for part in parts[:500]:
        charset = part.get_param("charset")
        if isinstance(charset, tuple):  # RFC 2231 (charset, language, value)
            charset = charset[2]
        codec = codec_for(str(charset)) if charset else None
        if codec and codec != "utf-8" and codec not in found:
            found.append(codec)
    return tuple(found)


def _headers(
    msg: Message, hints: tuple[str, ...]
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, list[str]]]:
    """(first decoded value, all decoded values, all raw values) per lower-cased name.

    raw_items() gives the header text as received, as the parser found it (8-bit bytes as
    surrogates), for mailgw.headers to read.
    """
    headers: dict[str, str] = {}
    decoded: dict[str, list[str]] = {}
    raw: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        key = name.lower()
        text = decode_value(str(value), hints)
        decoded.setdefault(key, []).append(text)
        headers.setdefault(key, text)
        if key in _ADDRESS_HEADERS:
            raw.setdefault(key, []).append(str(value))
    return headers, decoded, raw


def _parse_bytes(data: bytes, notes: list[str], cuts: list[bytes]) -> Message:
    """The stdlib's reading of ``data``. Should its parser still recurse too deep (a nesting
    :mod:`mailgw.structure` did not see), the headers are read alone and the message is kept
    whole as one attachment."""
    try:
        return email.message_from_bytes(data, policy=policy.compat32)
    except RecursionError:
        match = re.search(rb"\r?\n\r?\n", data)
        head = data[: match.end()] if match else data
        msg = email.message_from_bytes(head, policy=policy.compat32)
        del msg["Content-Type"]
        del msg["Content-Transfer-Encoding"]
        msg["Content-Type"] = PLACEHOLDER_TYPE
        notes.append(f"MIME structure too deep to read: the message kept whole as {NESTED_NAME}")
        cuts[:] = [data]
        return msg


def parse_message(raw: bytes, *, mail_domain: str) -> ParsedMail:
    """Parse raw bytes; never raises on malformed mail (only on a bug of ours)."""
    repaired = repair_header_block(raw)
    nested = cut_deep_nesting(repaired.data)
    notes = [*repaired.notes, *nested.notes]
    cuts = list(nested.cuts)
    msg = _parse_bytes(nested.data, notes, cuts)
    hints = _declared_charsets(msg)
    headers, decoded, raw_values = _headers(msg, hints)

    found = message_ids(headers.get("message-id", ""))
    generated = not found
    message_id = found[0] if found else f"<{hashlib.sha256(raw).hexdigest()}@inbound.{mail_domain}>"
    raw_from = raw_values.get("from", [""])[0]
    senders = mailboxes(raw_from, hints) if raw_from else []
    from_name, from_addr = senders[0] if senders else ("", "")
    if raw_from and not senders:
        notes.append(f"From has no usable address: {decode_value(raw_from, hints)[:200]!r}")
    if _names_other_address(from_name, from_addr):
        notes.append(f"From's display name {from_name[:200]!r} names another address: dropped")
        from_name = ""
    sender = mailboxes(raw_values["sender"][0], hints) if raw_values.get("sender") else []
    mail = ParsedMail(
        message_id=message_id,
        message_id_generated=generated,
        subject=headers.get("subject", ""),
        from_addr=from_addr,
        from_name=from_name,
        to=_addresses(raw_values.get("to", []), hints),
        cc=_addresses(raw_values.get("cc", []), hints),
        reply_to=_addresses(raw_values.get("reply-to", []), hints),
        sender=sender[0][1] if sender else "",
        raw_from=decode_value(raw_from, hints),
        in_reply_to=message_ids(headers.get("in-reply-to", "")),
        references=message_ids(" ".join(decoded.get("references", []))),
        headers=headers,
        content_type=msg.get_content_type(),
        report_type=str(msg.get_param("report-type", "") or "").lower(),
        notes=notes,
    )
    ctx = _Walk(mail, hints, cuts)
    try:
        _walk(msg, ctx)
    except (ValueError, LookupError, TypeError, IndexError, email.errors.MessageError) as exc:
        # Broken MIME: keep what was found so far and fall back to mail-parser's reading.
        log.warning("mail %s: MIME structure could not be walked: %s", message_id, exc)
    except RecursionError:
        mail.notes.append("MIME structure too deep to walk: the rest was not read")
    for data in ctx.cuts:  # placeholders the walk did not reach
        mail.attachments.append(NewAttachment(NESTED_NAME, "message/rfc822", data))
    _expand_tnef(mail)
    _safe_names(mail)
    if not mail.text and not mail.html and not mail.forwarded:
        mail.text = clean(_fallback_text(nested.data))
    return mail


_ADDRESS_LIKE = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")


def _names_other_address(name: str, addr: str) -> bool:
    """Does a display name show an address that is not the mailbox's own (``"boss@our.example"
    <attacker@evil.example>``)? Shown as the requester's name it would pass for that person."""
    if "@" not in name:
        return False
    return any(found.lower().strip(".") != addr for found in _ADDRESS_LIKE.findall(name))


def _addresses(values: list[str], hints: tuple[str, ...]) -> list[str]:
    return [addr for value in values for _, addr in mailboxes(value, hints)]


def _safe_names(mail: ParsedMail) -> None:
    """Every attachment's name without control or bidirectional-override characters (the
    ones inside a winmail.dat included)."""
    for i, att in enumerate(mail.attachments):
        name = _short(safe_filename(att.filename)) or _part_name(
            Message(), att.content_type, i + 1, ()
        )
        if name != att.filename:
            mail.attachments[i] = replace(att, filename=name)


def _expand_tnef(mail: ParsedMail) -> None:
    """Replace each winmail.dat by the files inside it (MS-OXTNEF); its body fills in a body the
    MIME parts did not give. An unreadable one stays as it is, with a note saying why."""
    if not any(is_tnef(a.content_type, a.filename) for a in mail.attachments):
        return
    expanded: list[NewAttachment] = []
    for att in mail.attachments:
        if not is_tnef(att.content_type, att.filename):
            expanded.append(att)
            continue
        try:
            content = decode_tnef(att.data)
        except TnefError as exc:
            mail.notes.append(f"{att.filename}: kept undecoded: {exc}")
            expanded.append(att)
            continue
        expanded.extend(
            NewAttachment(f.filename, f.content_type, f.data) for f in content.attachments
        )
        mail.notes.extend(f"{att.filename}: {note}" for note in content.notes)
        mail.notes.append(
            f"{att.filename}: TNEF decoded into {len(content.attachments)} attachment(s)"
        )
        if content.text and not mail.text:
            mail.text = content.text[:MAX_TEXT_CHARS]
        if content.html and not mail.html:
            mail.html = content.html[:MAX_HTML_CHARS]
    mail.attachments = expanded


def _fallback_text(raw: bytes) -> str:
    """mail-parser's body, for mail whose MIME tree the stdlib could not make sense of."""
    import mailparser

    try:
        parsed = mailparser.parse_from_bytes(raw)
    except Exception as exc:  # a third-party parser on hostile input: any failure is "no text"
        log.warning("mail-parser could not read the body either: %s", exc)
        return ""
    return "\n".join(parsed.text_plain)[:MAX_TEXT_CHARS]

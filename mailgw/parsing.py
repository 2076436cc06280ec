"""Parse a stored raw message into what the processing rules need, surviving real-world mail.

Real mail breaks the standards in well-known ways, so every step has a fallback:

- headers are read raw and decoded here: RFC 2047 encoded-words, and raw 8-bit bytes (RFC 6532
  allows UTF-8; older Polish clients send iso-8859-2 or windows-1250 without any marking);
- bodies are decoded with their declared charset, else UTF-8, else windows-1250 (a superset of
  what Polish senders use in practice), never failing on a wrong or unknown charset;
- attachment filenames come from RFC 2231 parameters (``filename*=utf-8''...``), encoded-words
  in a quoted filename (Outlook, not standard but common) or plain ASCII;
- ``message/rfc822`` parts (forwarded mail) are kept whole as ``.eml`` attachments;
- RFC 3464 delivery reports (``multipart/report; report-type=delivery-status``) yield the
  failed recipient, its Action and Status, and the Message-ID of the mail that bounced;
- ``winmail.dat`` (TNEF, MS-OXTNEF) is unpacked into the files and body inside it by
  :mod:`mailgw.tnef`; when it cannot be read it stays a plain attachment and a note says why;
- a missing Message-ID is made up from the sha256 of the bytes, so the same bytes always get
  the same identity (dedupe without a Message-ID).

The stdlib ``email`` package with ``policy.default`` does the MIME structure; ``mailparser``
(mail-parser) is the fallback for the text body when the stdlib tree yields none (badly broken
MIME). Attachments come out as :class:`core.tickets.timeline.NewAttachment`, the type the ticket
services take, so processing hands them on as they are. Nothing here touches the database.
"""

from __future__ import annotations

import email
import hashlib
import logging
import re
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

from core.tickets.timeline import NewAttachment
from mailgw.mail_policy import DEFAULT
from mailgw.tnef import TnefError, decode_tnef, is_tnef

log = logging.getLogger(__name__)

# The largest HTML body we keep; beyond it the rest is cut (the raw stays downloadable).
MAX_HTML_CHARS = 2_000_000
MAX_TEXT_CHARS = 1_000_000
FALLBACK_CHARSET = "windows-1250"
_MSG_ID = re.compile(r"<[^<>\s]+>")
# RFC 3464 2.3.4: status-code = class "." subject "." detail (RFC 3463), e.g. 5.1.1.
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass
class ParsedMail:
    message_id: str
    message_id_generated: bool
    subject: str
    from_addr: str
    from_name: str
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased name -> first value
    content_type: str = "text/plain"
    report_type: str = ""
    text: str = ""
    html: str = ""
    attachments: list[NewAttachment] = field(default_factory=list)
    # RFC 3464: from a delivery report, the address that failed and the original Message-ID.
    failed_recipient: str | None = None
    original_message_id: str | None = None
    # RFC 3464 2.3.3 / 2.3.4: that recipient's Action (failed, delayed, ...) and Status (5.1.1).
    dsn_action: str | None = None
    dsn_status: str | None = None
    # What parsing had to work around (an unreadable winmail.dat...), for the decisions log.
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
    """Decode body bytes: the declared charset, else UTF-8, else windows-1250; never raises."""
    candidates = [c for c in (charset, "utf-8", FALLBACK_CHARSET) if c]
    for name in candidates:
        try:
            return data.decode(name.strip().strip('"').lower())
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode(FALLBACK_CHARSET, "replace")


def decode_header_value(value: str, charset_hint: str | None = None) -> str:
    """A header as a person means it: encoded-words (RFC 2047) and raw 8-bit bytes decoded."""
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        # Raw 8-bit bytes smuggled through as surrogates by the stdlib parser: UTF-8 first
        # (RFC 6532), which fails loudly on legacy bytes, then the body's charset.
        data = value.encode("utf-8", "surrogateescape")
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            value = decode_bytes(data, charset_hint)
    if "=?" in value:
        try:
            value = str(make_header(decode_header(value)))
        except (LookupError, UnicodeDecodeError, ValueError, email.errors.HeaderParseError):
            pass
    return " ".join(value.split())


def message_ids(value: str) -> list[str]:
    """Every ``<id>`` in a header such as References (RFC 5322 3.6.4), in order."""
    return _MSG_ID.findall(value or "")


def _addresses(values: list[str]) -> list[str]:
    return [addr.lower() for _, addr in getaddresses(values) if "@" in addr]


def _filename(part: Message) -> str | None:
    """The filename as the sender meant it: RFC 2231 first, encoded-words, then the name param."""
    name: str | None = None
    try:
        name = part.get_filename()
    except (ValueError, LookupError, UnicodeError):
        name = None
    if name is None:
        raw = part.get_param("name")
        if isinstance(raw, tuple):  # RFC 2231 triple (charset, language, value)
            name = email.utils.collapse_rfc2231_value(raw)
        elif raw:
            name = str(raw)
    if not name:
        return None
    name = decode_header_value(str(name))
    # Never a path: a name like "../../etc/passwd" keeps only its last component.
    return name.replace("\\", "/").rsplit("/", 1)[-1].strip() or None


def _content_id(part: Message) -> str | None:
    cid = part.get("Content-ID")
    return str(cid).strip().strip("<>") or None if cid else None


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
        except (TypeError, ValueError, UnicodeError, LookupError):
            return str(inner[0]).encode("utf-8", "replace")
    return _part_bytes(part)


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


def _walk(part: Message, mail: ParsedMail, in_related: bool = False) -> None:
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
    if ctype == "message/rfc822":
        data = _embedded_bytes(part)
        if mail.report_type == "delivery-status" and mail.original_message_id is None:
            mail.original_message_id = _original_id(data)
        name = _filename(part) or "forwarded.eml"
        if not name.lower().endswith(".eml"):
            name += ".eml"
        mail.attachments.append(NewAttachment(name, "message/rfc822", data))
        return
    if part.is_multipart():
        related = ctype == "multipart/related"
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, Message):
                _walk(sub, mail, related or in_related)
        return
    if ctype in ("text/rfc822-headers", "message/rfc822-headers"):
        if mail.original_message_id is None:
            mail.original_message_id = _original_id(_part_bytes(part))
        return
    disposition = (part.get_content_disposition() or "").lower()
    filename = _filename(part)
    cid = _content_id(part)
    is_body = disposition != "attachment" and filename is None
    if is_body and ctype == "text/plain" and not mail.text:
        mail.text = decode_bytes(_part_bytes(part), part.get_content_charset())[:MAX_TEXT_CHARS]
        return
    if is_body and ctype == "text/html" and not mail.html:
        mail.html = decode_bytes(_part_bytes(part), part.get_content_charset())[:MAX_HTML_CHARS]
        return
    data = _part_bytes(part)
    if not data and not filename:
        return
    inline = bool(cid) and (disposition == "inline" or in_related or not disposition)
    mail.attachments.append(
        NewAttachment(
            filename=filename or _default_name(ctype, len(mail.attachments) + 1),
            content_type=ctype,
            data=data,
            inline=inline,
            content_id=cid,
        )
    )


def _default_name(ctype: str, n: int) -> str:
    ext = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif"}.get(ctype, ".bin")
    return f"part-{n}{ext}"


def _body_charset(msg: Message) -> str | None:
    """The first charset declared anywhere, the best guess for undeclared 8-bit headers."""
    for part in msg.walk():
        charset = part.get_content_charset()
        if charset and charset.lower() not in ("us-ascii", "ascii"):
            return charset
    return None


def parse_message(raw: bytes, *, mail_domain: str) -> ParsedMail:
    """Parse raw bytes; never raises on malformed mail (only on a bug of ours)."""
    msg = email.message_from_bytes(raw, policy=DEFAULT)
    hint = _body_charset(msg)
    headers: dict[str, str] = {}
    all_values: dict[str, list[str]] = {}
    # raw_items() gives the header text as received, before the header registry interprets
    # it: registry parsing of 8-bit or malformed headers can raise or mangle.
    raw_items = msg.raw_items() if isinstance(msg, EmailMessage) else msg.items()
    for name, value in raw_items:
        text = decode_header_value(str(value), hint)
        all_values.setdefault(name.lower(), []).append(text)
        headers.setdefault(name.lower(), text)

    found = message_ids(headers.get("message-id", ""))
    generated = not found
    message_id = found[0] if found else f"<{hashlib.sha256(raw).hexdigest()}@inbound.{mail_domain}>"
    from_name, from_addr = parseaddr(headers.get("from", ""))
    content_type = msg.get_content_type()
    mail = ParsedMail(
        message_id=message_id,
        message_id_generated=generated,
        subject=headers.get("subject", ""),
        from_addr=from_addr.strip().lower(),
        from_name=from_name.strip(),
        to=_addresses(all_values.get("to", [])),
        cc=_addresses(all_values.get("cc", [])),
        in_reply_to=message_ids(headers.get("in-reply-to", "")),
        references=message_ids(" ".join(all_values.get("references", []))),
        headers=headers,
        content_type=content_type,
        report_type=str(msg.get_param("report-type", "") or "").lower(),
    )
    try:
        _walk(msg, mail)
    except (ValueError, LookupError, TypeError, IndexError, email.errors.MessageError) as exc:
        # Broken MIME: keep what was found so far and fall back to mail-parser's reading.
        log.warning("mail %s: MIME structure could not be walked: %s", message_id, exc)
    _expand_tnef(mail)
    if not mail.text and not mail.html:
        mail.text = _fallback_text(raw)
    return mail


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

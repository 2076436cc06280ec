"""Decode ``winmail.dat`` (TNEF, ``application/ms-tnef``) into the files and body inside it.

Outlook and Exchange send mail as TNEF (Transport Neutral Encapsulation Format, [MS-OXTNEF])
when a sender has "Rich Text" formatting on: the real attachments and often the body are packed
into one ``winmail.dat`` that no other client can open. ``tnefparse`` reads the stream; this
module turns its result into plain (filename, content type, bytes) triples and a body.

What is read ([MS-OXTNEF] 2.1.3.3 and 2.1.3.4):

- each attachment starts at ``attAttachRendData``; its name is ``PidTagAttachLongFilename``
  from the ``attAttachment`` MAPI properties (Unicode, what the sender typed), else the 8.3
  ``attAttachTitle`` in the stream's ``attOemCodepage``; its bytes are ``attAttachData``;
- the body is ``PidTagBody`` / ``attBody`` (text) or ``PidTagBodyHtml`` (HTML), else the
  compressed RTF of ``PidTagRtfCompressed`` ([MS-OXRTFCP], ``compressed_rtf``) turned into text
  (``striprtf``): what Outlook sends when the body was written in Rich Text. Outlook's RTF often
  encapsulates HTML ([MS-OXRTFEX], ``\fromhtml1``); its text is what is kept, the tags dropped.

Any failure raises :class:`TnefError` with a reason; the caller keeps ``winmail.dat`` as it is.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import struct
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

TNEF_CONTENT_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
# [MS-OXTNEF] 2.1.3.1: every TNEF stream starts with this little-endian signature.
TNEF_SIGNATURE = 0x223E9F78
# tnefparse decodes single-byte strings with Python codec names; cp1252 is its default too.
DEFAULT_CODEPAGE = "cp1252"


class TnefError(ValueError):
    """The bytes are not a TNEF stream we can read; the reason is the message."""


@dataclass(frozen=True)
class TnefFile:
    filename: str
    content_type: str
    data: bytes


@dataclass
class TnefContent:
    attachments: list[TnefFile] = field(default_factory=list)
    text: str = ""
    html: str = ""
    # What was odd but survivable (bad checksums, an RTF-only body), for the decisions log.
    notes: list[str] = field(default_factory=list)


def is_tnef(content_type: str, filename: str | None) -> bool:
    """A TNEF part: by its MIME type, or an octet-stream called winmail.dat (common)."""
    return content_type.lower() in TNEF_CONTENT_TYPES or (filename or "").lower() == "winmail.dat"


def _text(value: object, charset: str) -> str:
    """A tnefparse body value (bytes in the stream's codepage, or already str) as text."""
    if isinstance(value, bytes):
        try:
            text = value.decode(charset)
        except (LookupError, UnicodeDecodeError):
            text = value.decode(DEFAULT_CODEPAGE, "replace")
    else:
        text = str(value or "")
    return text.replace("\x00", "").strip()


def _safe_name(name: str) -> str:
    # Never a path: keep the last component only, as for MIME filenames.
    return name.replace("\x00", "").replace("\\", "/").rsplit("/", 1)[-1].strip()


def _filename(attachment: object, charset: str, n: int) -> str:
    """The long (Unicode) filename, else the 8.3 title decoded with the OEM codepage."""
    from tnefparse import properties

    for prop in getattr(attachment, "mapi_attrs", []):
        if prop.name == properties.MAPI_ATTACH_LONG_FILENAME:
            long_name = _safe_name(_text(prop.data, charset))
            if long_name:
                return long_name
    # tnefparse decodes attAttachTitle as UTF-8, which fails on cp1250 bytes: decode it here.
    title = getattr(attachment, "_name", b"")
    name = _safe_name(_text(title, charset))
    return name or f"attachment-{n}.bin"


def _rtf_text(compressed: bytes, notes: list[str]) -> str:
    """The text of a compressed RTF body; empty, with a note, when it cannot be read."""
    from compressed_rtf import decompress
    from striprtf.striprtf import rtf_to_text

    try:
        rtf = decompress(compressed).decode("latin-1")
        # RTF escapes every non-ASCII letter (\'b9, \uN); its bytes are 7-bit, so latin-1
        # loses nothing, and the \ansicpg named in the header decodes the escapes.
        text = rtf_to_text(rtf, encoding=_rtf_codepage(rtf), errors="replace")
    except Exception as exc:  # hostile input to two third-party decoders
        notes.append(f"the TNEF body is compressed RTF that could not be read: {exc}")
        return ""
    notes.append("the TNEF body was compressed RTF, kept as its text")
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip()


def _rtf_codepage(rtf: str) -> str:
    """The ANSI code page an RTF header names (``\\ansicpg1250``), as a Python codec."""
    match = re.search(r"\\ansicpg(\d+)", rtf[:2000])
    return f"cp{match.group(1)}" if match else DEFAULT_CODEPAGE


def decode_tnef(data: bytes) -> TnefContent:
    """The attachments and body of a TNEF stream; raises :class:`TnefError` on failure."""
    if len(data) < 6 or struct.unpack_from("<I", data)[0] != TNEF_SIGNATURE:
        raise TnefError("no TNEF signature 0x223E9F78 (MS-OXTNEF 2.1.3.1)")
    from tnefparse import TNEF

    try:
        tnef = TNEF(data, do_checksum=True)
    except Exception as exc:  # a third-party parser on hostile input: any failure is "unreadable"
        raise TnefError(f"tnefparse could not read it: {type(exc).__name__}: {exc}") from exc

    charset = tnef.codepage or DEFAULT_CODEPAGE
    content = TnefContent()
    bad = sum(1 for obj in tnef.objects if not obj.good_checksum)
    if bad:
        content.notes.append(f"{bad} TNEF attribute(s) with a wrong checksum (MS-OXTNEF 2.1.3.3)")
    try:
        for n, attachment in enumerate(tnef.attachments, start=1):
            name = _filename(attachment, charset, n)
            payload = attachment.data if isinstance(attachment.data, bytes) else b""
            if hasattr(attachment, "embed"):
                # An attached Outlook item: itself TNEF (MS-OXTNEF 2.1.3.4), kept undecoded.
                ctype = "application/vnd.ms-tnef"
                content.notes.append(f"{name}: an embedded Outlook message, kept as TNEF")
            else:
                ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            content.attachments.append(TnefFile(name, ctype, payload))
        content.text = _text(tnef.body, charset)
        content.html = _text(tnef.htmlbody, charset)
    except Exception as exc:  # tnefparse's lazy properties can fail on odd streams, too
        raise TnefError(f"TNEF content unreadable: {type(exc).__name__}: {exc}") from exc
    if getattr(tnef, "_rtfbody", None) and not (content.text or content.html):
        content.text = _rtf_text(tnef._rtfbody, content.notes)
    if not content.attachments and not content.text and not content.html:
        raise TnefError("no attachments and no readable body in it")
    return content

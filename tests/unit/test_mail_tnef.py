"""winmail.dat (TNEF, [MS-OXTNEF]) is unpacked into its files and body (mailgw.tnef, parsing).

tnefparse only reads TNEF, so :func:`tnef_stream` writes a minimal stream by hand, following
[MS-OXTNEF] 2.1.3: the signature 0x223E9F78, a legacy key, then attributes, each
``level (1) | id (2) | type (2) | length (4) | data | checksum (2)`` where the checksum is the
sum of the data bytes mod 65536. ``tests/fixtures/mail/winmail.eml`` carries the same stream;
:func:`winmail_eml` rebuilds it (``python -m tests.unit.test_mail_tnef`` rewrites the file).
"""

from __future__ import annotations

import struct
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailgw.parsing import parse_message
from mailgw.tnef import TnefError, decode_tnef

CORPUS = Path(__file__).parents[1] / "fixtures" / "mail"
DOMAIN = "support.example"

LVL_MESSAGE, LVL_ATTACHMENT = 0x01, 0x02
# [MS-OXTNEF] 2.1.3.3: attribute id and type (atpByte 6, atpString 1, atpText 2, atpDword 8).
ATT_TNEF_VERSION = (0x9006, 0x0008)
ATT_OEM_CODEPAGE = (0x9007, 0x0006)
ATT_BODY = (0x800C, 0x0002)
ATT_ATTACH_REND_DATA = (0x9002, 0x0006)
ATT_ATTACH_TITLE = (0x8010, 0x0001)
ATT_ATTACH_DATA = (0x800F, 0x0006)
ATT_ATTACHMENT = (0x9005, 0x0006)
PT_UNICODE = 0x001F
PID_TAG_ATTACH_LONG_FILENAME = 0x3707

PDF = b"%PDF-1.4\n% protokol\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(16))


def attribute(level: int, att: tuple[int, int], data: bytes) -> bytes:
    """One TNEF attribute ([MS-OXTNEF] 2.1.3.3) with its checksum."""
    name, kind = att
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", checksum)


def unicode_property(prop_id: int, value: str) -> bytes:
    """A one-property MAPI list ([MS-OXTNEF] 2.1.3.4): PT_UNICODE, padded to 4 bytes."""
    raw = (value + "\x00").encode("utf-16-le")
    padded = raw + b"\x00" * (-len(raw) % 4)
    return struct.pack("<IHHII", 1, PT_UNICODE, prop_id, 1, len(raw)) + padded


def tnef_stream() -> bytes:
    """A Polish Outlook's winmail.dat: a text body and two files, one with a long name."""
    rend_data = struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 1)  # attAttachRendData, a file
    parts = [
        struct.pack("<IH", 0x223E9F78, 0x1234),
        attribute(LVL_MESSAGE, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000)),
        attribute(LVL_MESSAGE, ATT_OEM_CODEPAGE, struct.pack("<II", 1250, 0)),
        attribute(
            LVL_MESSAGE, ATT_BODY, "Drukarka nie działa, w załączeniu protokół.".encode("cp1250")
        ),
        # first file: an 8.3 title plus the long Unicode filename in attAttachment
        attribute(LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, rend_data),
        attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, b"PROTOK~1.PDF\x00"),
        attribute(LVL_ATTACHMENT, ATT_ATTACH_DATA, PDF),
        attribute(
            LVL_ATTACHMENT,
            ATT_ATTACHMENT,
            unicode_property(PID_TAG_ATTACH_LONG_FILENAME, "Protokół naprawy.pdf"),
        ),
        # second file: only a title, in the OEM codepage (cp1250)
        attribute(LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, rend_data),
        attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, "zdjęcie.png\x00".encode("cp1250")),
        attribute(LVL_ATTACHMENT, ATT_ATTACH_DATA, PNG),
    ]
    return b"".join(parts)


def winmail_eml(tnef: bytes | None = None) -> bytes:
    """An Outlook-shaped mail carrying winmail.dat (and no text part of its own)."""
    msg = EmailMessage()
    msg["From"] = "Jan Kowalski <jan@acme.example>"
    msg["To"] = "pomoc@support.example"
    msg["Subject"] = "Awaria drukarki"
    msg["Message-ID"] = "<winmail-1@acme.example>"
    msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0100"
    msg.add_attachment(
        tnef_stream() if tnef is None else tnef,
        maintype="application",
        subtype="ms-tnef",
        filename="winmail.dat",
    )
    msg.set_boundary("=_winmail_boundary")  # fixed, so the fixture is reproducible
    return msg.as_bytes()


def test_fixture_is_the_stream_built_here() -> None:
    assert (CORPUS / "winmail.eml").read_bytes() == winmail_eml()


def test_tnef_is_decoded_into_files_and_body() -> None:
    content = decode_tnef(tnef_stream())
    assert [(f.filename, f.content_type, f.data) for f in content.attachments] == [
        ("Protokół naprawy.pdf", "application/pdf", PDF),
        ("zdjęcie.png", "image/png", PNG),
    ]
    assert content.text == "Drukarka nie działa, w załączeniu protokół."
    assert content.notes == []


def test_winmail_dat_is_replaced_by_its_attachments() -> None:
    mail = parse_message((CORPUS / "winmail.eml").read_bytes(), mail_domain=DOMAIN)
    assert [a.filename for a in mail.attachments] == ["Protokół naprawy.pdf", "zdjęcie.png"]
    assert mail.text == "Drukarka nie działa, w załączeniu protokół."
    assert any("TNEF decoded into 2" in note for note in mail.notes)


ATT_MSG_PROPS = (0x9003, 0x0006)  # attMsgProps: the message's MAPI properties
PT_BINARY = 0x0102
PID_TAG_RTF_COMPRESSED = 0x1009
# What Outlook writes for a Rich Text mail: HTML encapsulated in RTF ([MS-OXRTFEX]), Polish
# letters as \'xx escapes of code page 1250, paragraphs as \par.
OUTLOOK_RTF = (
    r"{\rtf1\ansi\ansicpg1250\fromhtml1 \deff0{\fonttbl{\f0\fswiss Calibri;}}"
    r"{\*\htmltag19 <html>}{\*\htmltag34 <body>}"
    r"\htmlrtf {\htmlrtf0 Dzie\'f1 dobry,\par"
    r"{\*\htmltag84 <p>}drukarka w pokoju 12 zg\'b3asza b\'b3\'b9d E-05.\par"
    r"{\*\htmltag84 </p>}Pozdrawiam\par Jan}\htmlrtf0 {\*\htmltag27 </body></html>}}"
)


def binary_property(prop_id: int, value: bytes) -> bytes:
    """A one-property MAPI list ([MS-OXTNEF] 2.1.3.4): PT_BINARY, padded to 4 bytes."""
    padded = value + b"\x00" * (-len(value) % 4)
    return struct.pack("<IHHII", 1, PT_BINARY, prop_id, 1, len(value)) + padded


def rtf_only_stream(compressed: bytes) -> bytes:
    """A winmail.dat whose only body is compressed RTF ([MS-OXRTFCP])."""
    return b"".join(
        [
            struct.pack("<IH", 0x223E9F78, 0x1234),
            attribute(LVL_MESSAGE, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000)),
            attribute(LVL_MESSAGE, ATT_OEM_CODEPAGE, struct.pack("<II", 1250, 0)),
            attribute(
                LVL_MESSAGE, ATT_MSG_PROPS, binary_property(PID_TAG_RTF_COMPRESSED, compressed)
            ),
        ]
    )


def test_a_body_only_in_compressed_rtf_becomes_text() -> None:
    from compressed_rtf import compress

    content = decode_tnef(rtf_only_stream(compress(OUTLOOK_RTF.encode("ascii"))))
    assert content.attachments == []
    assert content.text == (
        "Dzień dobry,\ndrukarka w pokoju 12 zgłasza błąd E-05.\nPozdrawiam\nJan"
    )
    assert content.notes == ["the TNEF body was compressed RTF, kept as its text"]
    mail = parse_message(
        winmail_eml(rtf_only_stream(compress(OUTLOOK_RTF.encode()))), mail_domain=DOMAIN
    )
    assert "zgłasza błąd E-05" in mail.text


def test_unreadable_compressed_rtf_is_noted_not_fatal() -> None:
    with pytest.raises(TnefError, match="no attachments and no readable body"):
        decode_tnef(rtf_only_stream(b"\x10\x00\x00\x00garbage that is not LZFu"))


def test_bad_checksum_is_noted_but_decoded() -> None:
    stream = bytearray(tnef_stream())
    stream[-1] ^= 0xFF  # the last attribute's checksum
    content = decode_tnef(bytes(stream))
    assert len(content.attachments) == 2
    assert "wrong checksum" in content.notes[0]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not tnef at all", "no TNEF signature"),
        (struct.pack("<IH", 0x223E9F78, 1), "no attachments and no readable body"),
        # an attachment attribute before any attAttachRendData: tnefparse fails
        (
            struct.pack("<IH", 0x223E9F78, 1)
            + attribute(LVL_ATTACHMENT, ATT_ATTACH_DATA, b"orphan data")
            + b"\x00" * 12,
            "tnefparse could not read it",
        ),
    ],
)
def test_unreadable_tnef_raises_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(TnefError, match=reason):
        decode_tnef(data)


def test_unreadable_winmail_dat_is_kept_with_the_reason() -> None:
    mail = parse_message(winmail_eml(b"garbage, not TNEF"), mail_domain=DOMAIN)
    (att,) = mail.attachments
    assert (att.filename, att.content_type, att.data) == (
        "winmail.dat",
        "application/ms-tnef",
        b"garbage, not TNEF",
    )
    assert "kept undecoded: no TNEF signature" in mail.notes[0]


if __name__ == "__main__":
    (CORPUS / "winmail.eml").write_bytes(winmail_eml())

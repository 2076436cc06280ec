"""Parsing real shapes of mail (mailgw.parsing): charsets, filenames, reports, broken MIME."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from mailgw.parsing import parse_message

CORPUS = Path(__file__).parents[1] / "fixtures" / "mail"
DOMAIN = "support.example"


def fixture(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_iso_8859_2_body_and_raw_8bit_headers() -> None:
    mail = parse_message(fixture("iso8859_2_8bit_header.eml"), mail_domain=DOMAIN)
    assert mail.subject == "Zażółć gęślą jaźń"
    assert mail.from_name == "Łukasz Żółw"
    assert "przegląd drukarki, źle drukuje" in mail.text


def test_windows_1250_encoded_words_and_body() -> None:
    mail = parse_message(fixture("windows_1250.eml"), mail_domain=DOMAIN)
    assert mail.subject == "Awaria zasilacza świetlnego"
    assert mail.from_name == "Małgorzata"
    assert "Śląsk, źródło" in mail.text


def test_wrong_charset_label_falls_back_instead_of_failing() -> None:
    raw = (
        b"From: a@acme.example\r\nSubject: x\r\nContent-Type: text/plain; charset=x-unknown\r\n"
        b"\r\nZa\xbf\xf3\xb3\xe6\r\n"
    )
    assert parse_message(raw, mail_domain=DOMAIN).text.strip() == "Zażółć"


def test_rfc2231_filename_keeps_polish_letters() -> None:
    mail = parse_message(fixture("rfc2231_filename.eml"), mail_domain=DOMAIN)
    assert [a.filename for a in mail.attachments] == ["Faktura źródłowa.pdf"]


def test_encoded_word_filename_keeps_polish_letters() -> None:
    mail = parse_message(fixture("encoded_word_filename.eml"), mail_domain=DOMAIN)
    assert [a.filename for a in mail.attachments] == ["Protokół gęśli.pdf"]


def test_filename_built_in_code_with_stdlib() -> None:
    msg = EmailMessage()
    msg["From"] = "anna@acme.example"
    msg["Subject"] = "zał"
    msg.set_content("treść")
    msg.add_attachment(b"data", maintype="text", subtype="csv", filename="Zestawienie łączne.csv")
    mail = parse_message(msg.as_bytes(), mail_domain=DOMAIN)
    assert mail.attachments[0].filename == "Zestawienie łączne.csv"


def test_inline_cid_image_is_an_inline_attachment() -> None:
    mail = parse_message(fixture("inline_cid_image.eml"), mail_domain=DOMAIN)
    (image,) = mail.attachments
    assert (image.inline, image.content_id, image.content_type) == (
        True,
        "zrzut1@acme.example",
        "image/png",
    )
    assert "cid:zrzut1@acme.example" in mail.html


def test_forwarded_message_is_kept_whole_as_eml() -> None:
    mail = parse_message(fixture("forwarded_rfc822.eml"), mail_domain=DOMAIN)
    (fwd,) = mail.attachments
    assert fwd.filename.endswith(".eml") and fwd.content_type == "message/rfc822"
    assert b"<orig-10@example.org>" in fwd.data
    assert mail.text.strip() == "Przesyłam dalej."


def test_missing_message_id_is_made_from_the_bytes() -> None:
    raw = fixture("no_message_id.eml")
    first = parse_message(raw, mail_domain=DOMAIN)
    assert first.message_id_generated
    assert first.message_id.endswith("@inbound.support.example>")
    assert parse_message(raw, mail_domain=DOMAIN).message_id == first.message_id


def test_delivery_report_gives_failed_recipient_and_original_id() -> None:
    mail = parse_message(fixture("dsn_bounce.eml"), mail_domain=DOMAIN)
    assert mail.report_type == "delivery-status"
    assert mail.failed_recipient == "nobody@acme.example"
    assert mail.original_message_id == "<OURS-ID@support.example>"


def test_references_and_in_reply_to_are_lists_of_ids() -> None:
    raw = (
        b"From: a@acme.example\r\nIn-Reply-To: <b@x>\r\nReferences: <a@x>\r\n <b@x>\r\n"
        b"Message-ID: <c@x>\r\n\r\nhi\r\n"
    )
    mail = parse_message(raw, mail_domain=DOMAIN)
    assert (mail.in_reply_to, mail.references) == (["<b@x>"], ["<a@x>", "<b@x>"])


def test_broken_mime_without_closing_boundary_still_has_text() -> None:
    raw = (
        "From: a@acme.example\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\nCiało bez końca\r\n"
    ).encode()
    assert "Ciało bez końca" in parse_message(raw, mail_domain=DOMAIN).text


def test_huge_html_is_capped() -> None:
    msg = EmailMessage()
    msg["From"] = "a@acme.example"
    msg.set_content("<p>" + "x" * 3_000_000 + "</p>", subtype="html")
    mail = parse_message(msg.as_bytes(), mail_domain=DOMAIN)
    assert 0 < len(mail.html) <= 2_000_000


def test_mbox_line_lost_continuation_and_undeclared_windows_1250() -> None:
    mail = parse_message(fixture("lost_continuation_cp1250.eml"), mail_domain=DOMAIN)
    assert (mail.from_addr, mail.from_name) == ("lukasz@acme.example", "Łukasz Świątek")
    assert mail.subject == "Awaria zasilacza w serwerowni na piętrze 3 (Śląsk)"
    assert "źródło zasilania awaryjnego" in mail.text
    assert len(mail.notes) == 2  # the mbox line and the joined continuation


def test_bare_forward_is_named_after_its_subject_and_read() -> None:
    mail = parse_message(fixture("forwarded_bare.eml"), mail_domain=DOMAIN)
    assert [a.filename for a in mail.attachments] == ["Re: Faktura 12 2026 łączna.eml"]
    (fwd,) = mail.forwarded
    assert (fwd.subject, fwd.from_) == (
        "Re: Faktura 12/2026 łączna",
        "Jan Kowalski <jan@dostawca.example>",
    )
    assert fwd.text == "Faktura zostanie skorygowana do końca tygodnia."
    assert mail.text == ""  # its own text: none (processing shows the forward)


def test_parts_without_names_get_names() -> None:
    mail = parse_message(fixture("unnamed_parts.eml"), mail_domain=DOMAIN)
    assert [a.filename for a in mail.attachments] == [
        "image001.png",
        "image-2.jpg",
        "Protokół przeglądu.pdf",
        "part-4.html",
    ]

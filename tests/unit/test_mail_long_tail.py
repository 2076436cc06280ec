"""The long tail of real mail (mailgw.parsing and its helpers), each case built as raw bytes.

Most of these mails cannot be made with the stdlib's builder (it would fix them), so they are
written byte by byte: forged or unbracketed From headers, header blocks with lost continuation
lines, undeclared 8-bit headers and file names in legacy charsets, parts without names,
forwarded messages, two thousand nested multiparts, encoded words whose bytes are no text,
and file names hiding their extension behind bidirectional overrides.
"""

from __future__ import annotations

import base64
import email
import sys
from urllib.parse import quote_from_bytes

import pytest

from core.tickets.timeline import clean_filename
from mailgw import charsets
from mailgw.charsets import decode_undeclared
from mailgw.mail_policy import DEFAULT
from mailgw.parsing import ParsedMail, parse_message
from mailgw.process import _bodies
from mailgw.structure import MAX_DEPTH

DOMAIN = "support.example"
CRLF = b"\r\n"


def raw_mail(*headers: bytes | str, body: bytes | str = "Dzień dobry.\r\n") -> bytes:
    """A message from header lines as given (str lines are UTF-8) and a body."""
    lines = [h.encode() if isinstance(h, str) else h for h in headers]
    data = body.encode() if isinstance(body, str) else body
    return CRLF.join(lines) + CRLF + CRLF + data


def parse(raw: bytes) -> ParsedMail:
    return parse_message(raw, mail_domain=DOMAIN)


def b64word(text: str, charset: str = "utf-8") -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def no_junk(text: str) -> bool:
    """No U+FFFD, no lone surrogate, no control character but tab and line breaks."""
    return not any(
        ch == "\ufffd" or "\ud800" <= ch <= "\udfff" or (ch < " " and ch not in "\t\r\n")
        for ch in text
    )


# --- 1. Addresses are split before encoded words are decoded ---------------------------------


def test_an_encoded_display_name_with_a_comma_keeps_its_address() -> None:
    name = b64word("Wiśniewska, Maria")
    mail = parse(raw_mail(f"From: {name} <maria.wisniewska@example.com>", "Subject: Awaria"))
    assert mail.from_addr == "maria.wisniewska@example.com"
    assert mail.from_name == "Wiśniewska, Maria"
    assert mail.raw_from == "Wiśniewska, Maria <maria.wisniewska@example.com>"


def test_an_address_in_an_encoded_word_is_never_the_sender() -> None:
    forged = "=?utf-8?q?koordynator=40serwis.example?= <attacker@evil.example>"
    mail = parse(raw_mail(f"From: {forged}", "Subject: Pilne"))
    assert mail.from_addr == "attacker@evil.example"
    # Shown as the requester's name it would pass for the coordinator: dropped, and said why.
    assert mail.from_name == ""
    assert any("names another address" in note for note in mail.notes)
    assert mail.raw_from == "koordynator@serwis.example <attacker@evil.example>"


@pytest.mark.parametrize(
    "forged",
    [
        "koordynator@serwis.example <attacker@evil.example>",  # unquoted: two mailboxes to getaddresses
        '"koordynator@serwis.example" <attacker@evil.example>',
    ],
)
def test_an_address_shown_as_the_name_is_never_the_sender(forged: str) -> None:
    mail = parse(raw_mail(f"From: {forged}", "Subject: Pilne"))
    assert (mail.from_addr, mail.from_name) == ("attacker@evil.example", "")


def test_a_display_name_holding_the_address_itself_stays() -> None:
    mail = parse(raw_mail('From: "jan@firma.example" <jan@firma.example>'))
    assert (mail.from_addr, mail.from_name) == ("jan@firma.example", "jan@firma.example")


@pytest.mark.parametrize(
    "header",
    [
        "Jan Kowalski jan.kowalski@firma.example",  # no angle brackets
        "<dział it@firma.example>",  # a space in the local part
        "Jan <jan@firma>",  # a domain without a dot
        "jan@@firma.example",
        "undisclosed-recipients:;",
        "<>",
    ],
)
def test_a_from_without_a_plausible_address_gives_none_and_keeps_the_header(header: str) -> None:
    mail = parse(raw_mail(f"From: {header}", "Subject: x"))
    assert mail.from_addr == ""
    assert mail.raw_from == header
    assert any("no usable address" in note for note in mail.notes)


def test_the_first_plausible_address_of_several_is_the_sender() -> None:
    mail = parse(raw_mail("From: nobody, Anna Nowak <anna@acme.example>, bob@beta.example"))
    assert mail.from_addr == "anna@acme.example"


def test_an_unquoted_last_first_name_is_one_name() -> None:
    mail = parse(raw_mail("From: Kowalski, Jan <Jan.Kowalski@Firma.example>"))
    assert (mail.from_addr, mail.from_name) == ("jan.kowalski@firma.example", "Kowalski, Jan")


def test_an_8bit_utf8_address_is_read_as_utf8() -> None:
    mail = parse(raw_mail("From: Dział IT <dział@firma.example>"))
    assert (mail.from_addr, mail.from_name) == ("dział@firma.example", "Dział IT")


def test_to_cc_reply_to_and_sender_are_split_before_decoding() -> None:
    mail = parse(
        raw_mail(
            "From: Anna <anna@acme.example>",
            "To: =?utf-8?q?szef=40acme.example?= <pomoc@support.example>",
            f"Cc: {b64word('Nowak, Piotr')} <piotr@acme.example>, <dział it@acme.example>",
            "Reply-To: =?utf-8?q?Biuro=2C_Acme?= <biuro@acme.example>, x",
            "Sender: Lista <lista@lists.acme.example>",
        )
    )
    assert mail.to == ["pomoc@support.example"]
    assert mail.cc == ["piotr@acme.example"]
    assert mail.reply_to == ["biuro@acme.example"]
    assert mail.sender == "lista@lists.acme.example"
    assert parse(raw_mail("From: a@acme.example")).sender == ""


# --- 2. Header blocks as real mail has them -----------------------------------------------------


def test_a_continuation_that_lost_its_space_is_joined_and_the_from_after_it_kept() -> None:
    raw = raw_mail(
        "Subject: Awaria drukarki w",
        "biurze nr 5",
        "From: Jan Kowalski <jan@firma.example>",
        "Message-ID: <lost-1@firma.example>",
        body="Drukarka nie drukuje.\r\n",
    )
    mail = parse(raw)
    assert mail.subject == "Awaria drukarki w biurze nr 5"
    assert mail.from_addr == "jan@firma.example"
    assert mail.message_id == "<lost-1@firma.example>"
    assert mail.text.strip() == "Drukarka nie drukuje."
    assert any("lost continuation" in note for note in mail.notes)


def test_an_mbox_from_line_first_is_skipped() -> None:
    raw = raw_mail(
        "From jan@firma.example Mon Mar  2 10:00:00 2026",
        "From: Jan <jan@firma.example>",
        "Subject: Skrzynka z mboxa",
    )
    mail = parse(raw)
    assert (mail.from_addr, mail.subject) == ("jan@firma.example", "Skrzynka z mboxa")
    assert any("mbox" in note for note in mail.notes)


def test_a_stray_line_before_the_first_header_is_skipped() -> None:
    raw = raw_mail("This is a multi-part message", "From: Jan <jan@firma.example>", "Subject: x")
    mail = parse(raw)
    assert mail.from_addr == "jan@firma.example"
    assert "This is a multi-part message" not in mail.subject + mail.text
    assert any("before any header" in note for note in mail.notes)


def test_a_multipart_after_a_repaired_header_block_parses_normally() -> None:
    raw = raw_mail(
        "From: Jan <jan@firma.example>",
        "Subject: Zestawienie za",
        "marzec",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b1"',
        body=(
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nW załączniku.\r\n"
            "--b1\r\nContent-Type: text/csv; name=zestawienie.csv\r\n\r\na;b\r\n--b1--\r\n"
        ),
    )
    mail = parse(raw)
    assert mail.subject == "Zestawienie za marzec"
    assert mail.text.strip() == "W załączniku."
    assert [a.filename for a in mail.attachments] == ["zestawienie.csv"]


def test_a_body_that_lost_its_empty_line_stays_the_body() -> None:
    raw = (
        b"From: Jan <jan@firma.example>\r\nSubject: Bez pustej linii\r\n"
        b"Dzien dobry,\r\ndrukarka nie dziala.\r\n\r\nPozdrawiam\r\n"
    )
    mail = parse(raw)
    assert mail.subject == "Bez pustej linii"
    assert "drukarka nie dziala." in mail.text and "Pozdrawiam" in mail.text


def test_a_space_before_the_colon_is_still_a_header() -> None:
    mail = parse(raw_mail("From: Jan <jan@firma.example>", "Subject : Stary klient"))
    assert mail.subject == "Stary klient"


def test_the_repair_is_in_memory_only() -> None:
    raw = raw_mail("Subject: a", "b", "From: jan@firma.example")
    before = bytes(raw)
    mail = parse(raw)
    assert raw == before
    # A generated Message-ID is made from the bytes as received, not as repaired.
    assert mail.message_id_generated
    assert mail.message_id == parse(before).message_id


# --- 3. Undeclared 8-bit text ---------------------------------------------------------------

SAMPLES = [
    ("Zażółć gęślą jaźń", "cp1250"),
    ("Zażółć gęślą jaźń", "iso-8859-2"),
    ("Müller", "latin-1"),
    ("Grüße aus München", "latin-1"),
    ("打印机故障", "gb2312"),
    ("プリンター", "shift_jis"),
    ("印刷機の故障", "shift_jis"),
    ("Awaria zasilacza w Łodzi", "cp1250"),
    ("Zażółć gęślą jaźń", "utf-8"),
]


@pytest.mark.parametrize(("text", "charset"), SAMPLES)
def test_an_undeclared_8bit_subject_is_read(text: str, charset: str) -> None:
    raw = raw_mail(b"From: a@acme.example", b"Subject: " + text.encode(charset))
    assert parse(raw).subject == text


@pytest.mark.parametrize(("text", "charset"), SAMPLES)
def test_an_undeclared_8bit_display_name_is_read(text: str, charset: str) -> None:
    raw = raw_mail(b"From: " + text.encode(charset) + b" <a@acme.example>")
    mail = parse(raw)
    assert (mail.from_name, mail.from_addr) == (text, "a@acme.example")


@pytest.mark.parametrize(("text", "charset"), SAMPLES)
def test_an_undeclared_8bit_file_name_is_read(text: str, charset: str) -> None:
    raw = raw_mail(
        b"From: a@acme.example",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="b"',
        body=(
            b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
            b"Content-Type: application/pdf\r\n"
            b'Content-Disposition: attachment; filename="' + text.encode(charset) + b'.pdf"\r\n'
            b"\r\n%PDF\r\n--b--\r\n"
        ),
    )
    assert [a.filename for a in parse(raw).attachments] == [f"{text}.pdf"]


@pytest.mark.parametrize(("text", "charset"), SAMPLES)
def test_an_rfc2231_file_name_in_its_declared_charset_is_read(text: str, charset: str) -> None:
    encoded = quote_from_bytes(text.encode(charset))
    raw = raw_mail(
        b"From: a@acme.example",
        b"Content-Type: application/pdf",
        f"Content-Disposition: attachment; filename*={charset}''{encoded}.pdf",
        body=b"%PDF",
    )
    assert [a.filename for a in parse(raw).attachments] == [f"{text}.pdf"]


def test_the_declared_body_charset_is_the_first_guess_for_headers() -> None:
    # b"Pa\xb9\xedk": "Pašík" in iso-8859-2, "Paąík" in windows-1250; both read as letters.
    subject = "Pašík".encode("iso-8859-2")
    plain = raw_mail(b"From: a@acme.example", b"Subject: " + subject)
    assert parse(plain).subject == "Paąík"  # no hint: the Polish reading first
    hinted = raw_mail(
        b"From: a@acme.example",
        b"Subject: " + subject,
        b"Content-Type: text/plain; charset=iso-8859-2",
        body="Dzień dobry".encode("iso-8859-2"),
    )
    assert parse(hinted).subject == "Pašík"


@pytest.mark.parametrize(
    ("word", "text"),
    [
        # GB2312 declared, GBK bytes ("請" is not in GB2312): read as GB18030, its superset.
        (b64word("打印机故障 請", "gbk").replace("gbk", "gb2312"), "打印机故障 請"),
        (b64word("프린터 고장", "cp949").replace("cp949", "ks_c_5601-1987"), "프린터 고장"),
        (b64word("שלום", "iso-8859-8").replace("iso-8859-8", "iso-8859-8-i"), "שלום"),
        (b64word("プリンター", "cp932").replace("cp932", "shift_jis"), "プリンター"),
        # iso-8859-1 as real senders mean it: windows-1252 ("€" and "–" are 0x80 and 0x96).
        ("=?iso-8859-1?q?Rechnung_=80_12=9630?=", "Rechnung € 12–30"),
        # Declared ISO-8859-2, sent as windows-1250 ("ś" is 0x9C there, a control here).
        ("=?iso-8859-2?q?=9Cwiat=B3o?=", "światło"),
        # A declared charset nobody knows: the bytes are guessed.
        ("=?x-unknown?q?Za=BF=F3=B3=E6?=", "Zażółć"),
        # A character split between two words, as some senders split them.
        ("=?utf-8?q?Zg=C5?= =?utf-8?q?=82oszenie?=", "Zgłoszenie"),
        ("=?utf-8?b?xbvDs8WCdw?=", "Żółw"),  # base64 without its padding
    ],
)
def test_encoded_words_in_the_charsets_real_mail_declares(word: str, text: str) -> None:
    assert parse(raw_mail("From: a@acme.example", f"Subject: {word}")).subject == text


def test_plain_ascii_headers_pay_for_no_charset_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_guessing(*args: object) -> str:
        raise AssertionError("charset detection on plain ASCII")

    monkeypatch.setattr(charsets, "_decode_guessed", no_guessing)
    monkeypatch.setattr(charsets, "_decode_guessed_cached", no_guessing)
    raw = raw_mail(
        "From: Anna Nowak <anna@acme.example>",
        "To: pomoc@support.example",
        "Subject: Awaria drukarki =?utf-8?q?w_=C5=81odzi?=",
        "Content-Type: text/plain; charset=utf-8",
    )
    assert parse(raw).subject == "Awaria drukarki w Łodzi"


def test_a_long_undeclared_body_is_read_with_the_detector() -> None:
    text = "Dzień dobry, drukarka w pokoju 12 nie drukuje. Proszę o pilną naprawę. " * 20
    raw = raw_mail(
        "From: a@acme.example", "Content-Type: text/plain", body=text.encode("iso-8859-2")
    )
    assert parse(raw).text == text


def test_a_mislabelled_utf8_body_is_read_as_utf8() -> None:
    raw = raw_mail(
        "From: a@acme.example",
        "Content-Type: text/plain; charset=iso-8859-1",
        body="Zażółć gęślą jaźń".encode(),
    )
    assert parse(raw).text == "Zażółć gęślą jaźń"


def test_bytes_nothing_reads_get_replacement_characters_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert no_junk(decode_undeclared(b"\x81\x8d\x8f\x90\x9d"))  # windows-1251 reads them
    monkeypatch.setattr(charsets, "LEGACY", ("cp1250",))
    charsets._decode_guessed_cached.cache_clear()
    assert decode_undeclared(b"Za\x81\x83") == "Za\ufffd\ufffd"
    charsets._decode_guessed_cached.cache_clear()


def test_a_few_stray_bytes_in_a_utf8_body_are_read_on_their_own() -> None:
    body = "Zażółć gęślą jaźń\r\n".encode() + "> cytat: Łódź\r\n".encode("iso-8859-2")
    raw = raw_mail("From: a@acme.example", "Content-Type: text/plain; charset=utf-8", body=body)
    assert parse(raw).text == "Zażółć gęślą jaźń\r\n> cytat: Łódź\r\n"


# --- 4. Names for parts that have none; forwarded messages ---------------------------------


def unnamed_parts_mail() -> bytes:
    return raw_mail(
        "From: a@acme.example",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain\r\n\r\nW załączniku.\r\n"
            "--b\r\nContent-Type: text/html\r\nContent-Disposition: attachment\r\n\r\n<p>x</p>\r\n"
            "--b\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            "/9j/4AAQ\r\n"
            "--b\r\nContent-Type: image/png\r\nContent-ID: <image001.png@01D9ABCD.1234>\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n"
            "--b\r\nContent-Type: application/pdf\r\n"
            "Content-Description: =?utf-8?q?Faktura_za_marzec?=\r\n\r\n%PDF\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\n\r\nMZ\r\n"
            "--b\r\nContent-Type: text/calendar; method=REQUEST\r\n"
            "Content-Disposition: attachment\r\n\r\nBEGIN:VCALENDAR\r\n"
            "--b\r\nContent-Type: application/x-never-heard-of\r\n\r\n??\r\n"
            "--b--\r\n"
        ),
    )


def test_parts_without_names_are_named_after_what_they_say_or_their_type() -> None:
    mail = parse(unnamed_parts_mail())
    assert [a.filename for a in mail.attachments] == [
        "part-1.html",
        "image-2.jpg",
        "image001.png",  # Outlook's Content-ID
        "Faktura za marzec.pdf",  # the Content-Description
        "part-5.bin",
        "part-6.ics",
        "part-7.bin",
    ]


def forwarding_mail(own_text: str | None = "Przesyłam dalej.") -> bytes:
    inner = (
        b"From: =?utf-8?q?Jan_Kowalski?= <jan@firma.example>\r\n"
        b"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n"
        b"Subject: =?utf-8?q?Re=3A_Faktura_12/2026_=E2=80=AEfdp.exe?=\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-2\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    ) + "Proszę o korektę faktury.\r\n".encode("iso-8859-2")
    own = (
        f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{own_text}\r\n".encode()
        if own_text is not None
        else b""
    )
    return raw_mail(
        "From: Anna <anna@acme.example>",
        "Subject: Fwd: Faktura",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        body=own + b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--b--\r\n",
    )


def test_a_forwarded_message_is_named_after_its_subject_and_its_text_read() -> None:
    mail = parse(forwarding_mail())
    (eml,) = mail.attachments
    # The inner subject decoded; "/" and "?" unsafe in file names, the override stripped.
    assert eml.filename == "Re: Faktura 12 2026 fdp.exe.eml"
    assert eml.content_type == "message/rfc822"
    assert b"Jan_Kowalski" in eml.data
    (fwd,) = mail.forwarded
    assert fwd.subject == "Re: Faktura 12/2026 \u202efdp.exe"
    assert fwd.from_ == "Jan Kowalski <jan@firma.example>"
    assert fwd.date == "Mon, 2 Mar 2026 10:00:00 +0100"
    assert fwd.text == "Proszę o korektę faktury."


def test_forwarded_text_follows_the_own_text_in_the_full_text() -> None:
    visible, _, data = _bodies(parse(forwarding_mail()))
    assert visible.strip() == "Przesyłam dalej."
    full = data["full_text"]
    assert full.startswith("Przesyłam dalej.")
    assert "---------- Forwarded message ----------" in full
    assert "From: Jan Kowalski <jan@firma.example>" in full
    assert "Date: Mon, 2 Mar 2026 10:00:00 +0100" in full
    assert full.rstrip().endswith("Proszę o korektę faktury.")


def test_a_bare_forward_shows_the_forwarded_text() -> None:
    visible, _, data = _bodies(parse(forwarding_mail(own_text=None)))
    assert "Proszę o korektę faktury." in visible
    assert "Subject: Re: Faktura 12/2026" in visible
    assert visible == data["full_text"]


def test_an_html_only_forward_is_laid_out_as_text() -> None:
    inner = (
        b"From: jan@firma.example\r\nSubject: Zdjecie\r\nContent-Type: text/html\r\n\r\n"
        b"<p>Akapit pierwszy</p><p>Akapit drugi</p>\r\n"
    )
    raw = raw_mail(
        "From: a@acme.example",
        "Content-Type: message/rfc822",
        body=inner,
    )
    mail = parse(raw)
    assert [a.filename for a in mail.attachments] == ["Zdjecie.eml"]
    assert "Akapit pierwszy" in mail.forwarded[0].text
    assert "Akapit drugi" in mail.forwarded[0].text


def test_the_mail_inside_a_delivery_report_is_no_forward() -> None:
    raw = raw_mail(
        "From: MAILER-DAEMON@mx.acme.example",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
        body=(
            "--r\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
            "--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
            "Final-Recipient: rfc822; nobody@acme.example\r\nAction: failed\r\n"
            "Status: 5.1.1\r\n\r\n"
            "--r\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <ours@support.example>\r\n"
            "Subject: x\r\n\r\nbody\r\n--r--\r\n"
        ),
    )
    mail = parse(raw)
    assert mail.original_message_id == "<ours@support.example>"
    assert mail.forwarded == []


# --- 5. Depth ---------------------------------------------------------------------------------


def nested(levels: int, *, forwards: bool = False) -> bytes:
    head = [b"From: a@acme.example", b"Subject: Matrioszka", b"MIME-Version: 1.0"]
    parts = [CRLF.join(head) + CRLF]
    parts.append(
        b'Content-Type: multipart/mixed; boundary="top"\r\n\r\n--top\r\n'
        b"Content-Type: text/plain\r\n\r\nNa wierzchu.\r\n--top\r\n"
    )
    for i in range(levels):
        if forwards and i % 2:
            parts.append(b"Content-Type: message/rfc822\r\n\r\nSubject: inner %d\r\n" % i)
        else:
            parts.append(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i))
    parts.append("Content-Type: text/plain; charset=utf-8\r\n\r\nW samym środku.\r\n".encode())
    for i in reversed(range(levels)):
        if not (forwards and i % 2):
            parts.append(b"--b%d--\r\n" % i)
    parts.append(b"--top--\r\n")
    return b"".join(parts)


def test_the_stdlib_alone_recurses_too_deep_on_two_thousand_levels() -> None:
    # Why mailgw.structure cuts: the stdlib parser itself raises on this mail.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        with pytest.raises(RecursionError):
            email.message_from_bytes(nested(2000), policy=DEFAULT)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("forwards", [False, True])
def test_two_thousand_nested_parts_are_kept_as_one_attachment(forwards: bool) -> None:
    mail = parse(nested(2000, forwards=forwards))
    assert mail.text.strip() == "Na wierzchu."
    assert [a.filename for a in mail.attachments][-1] == "nested-parts.eml"
    deep = mail.attachments[-1]
    assert deep.content_type == "message/rfc822"
    assert "W samym środku.".encode() in deep.data
    assert any(f"deeper than {MAX_DEPTH} levels" in note for note in mail.notes)


def test_nesting_within_the_limit_is_read_whole() -> None:
    mail = parse(nested(MAX_DEPTH - 5))
    assert mail.text.strip() == "Na wierzchu."
    assert not any(a.filename == "nested-parts.eml" for a in mail.attachments)


# --- 6. Bad encoded words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "=?utf-8?q?=FF=FE?=",
        "Awaria =?utf-8?q?drukarki_=FF=FE_pilne?=",
        "=?utf-8?b?//79?=",
        "=?utf-8?b?!!!?=",
        "=?bogus-charset?q?=C5=81=FF?=",
        "=?utf-8?q?a=00b=07c=1Bd?=",
    ],
)
def test_a_bad_encoded_word_never_yields_surrogates_or_controls(subject: str) -> None:
    mail = parse(raw_mail("From: a@acme.example", f"Subject: {subject}"))
    assert mail.subject
    assert not any("\ud800" <= ch <= "\udfff" or ch < " " for ch in mail.subject)
    mail.subject.encode("utf-8")  # what the outbox will do with it


def test_a_bad_encoded_word_does_not_spoil_its_neighbours() -> None:
    subject = "=?utf-8?q?Zg=C5=82oszenie?= =?utf-8?q?=FF?= =?iso-8859-2?q?=A3=F3d=BC?="
    mail = parse(raw_mail("From: a@acme.example", f"Subject: {subject}"))
    assert mail.subject.startswith("Zgłoszenie") and mail.subject.endswith("Łódź")


# --- 7. File names hiding their extension -------------------------------------------------------


@pytest.mark.parametrize(
    "hidden",
    ["\u202e", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u2066", "\u2069"],
)
def test_bidirectional_characters_are_stripped_from_file_names(hidden: str) -> None:
    name = f"invoice{hidden}gpj.exe"
    plain = raw_mail(
        b"From: a@acme.example",
        b"Content-Type: application/octet-stream",
        b'Content-Disposition: attachment; filename="' + name.encode() + b'"',
        body=b"MZ",
    )
    rfc2231 = raw_mail(
        b"From: a@acme.example",
        b"Content-Type: application/octet-stream",
        f"Content-Disposition: attachment; filename*=utf-8''{quote_from_bytes(name.encode())}",
        body=b"MZ",
    )
    for raw in (plain, rfc2231):
        assert [a.filename for a in parse(raw).attachments] == ["invoicegpj.exe"]


def test_control_characters_are_stripped_from_file_names() -> None:
    raw = raw_mail(
        b"From: a@acme.example",
        b'Content-Type: application/pdf; name="=?utf-8?q?fak=01tura=C2=85_=09nr_1.pdf?="',
        body=b"%PDF",
    )
    assert [a.filename for a in parse(raw).attachments] == ["faktura nr 1.pdf"]


def test_the_ticket_core_strips_them_too() -> None:
    assert clean_filename("invoice\u202egpj.exe") == "invoicegpj.exe"
    assert clean_filename("..\\..\\a\x00b\u2067c.pdf") == "abc.pdf"
    assert clean_filename("\u200f") == ""

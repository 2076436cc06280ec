"""mailgw.compose: outgoing mail written as bytes reads back as the email package would build it.

The oracle is the email package itself: each message is also built as an ``EmailMessage`` the
way ``mailgw.outbound`` built it before the composer, and both are parsed and compared header
by header and part by part. Then what the composer adds of its own: 7-bit clean output, no
header injection, folding, RFC 2231 file names, SMTPUTF8 for addresses that are not ASCII.
"""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage, MIMEPart
from email.policy import default

import pytest

from mailgw import outbound
from mailgw.compose import OutgoingMail, Part, compose, needs_smtputf8
from tests.smtp_sink import SmtpSink, fresh_relay_connections, relay_settings  # noqa: F401

POLISH = "Zgłoszenie przyjęte: drukarka w pokoju 204 nie drukuje, żółć i gęślą jaźń"
TEXT = "Dzień dobry,\n\nzgłoszenie przyjęte.\n\n-- \nSerwis Łódź\n"
HTML = "<p>Dzień dobry,</p>\n<p>zgłoszenie <b>przyjęte</b>.</p>\n"

CASES = [
    # (headers, text, html, attachments)
    (
        [
            ("From", "Pulpit <pulpit@serwis.example>"),
            ("To", "anna@acme.example"),
            ("Subject", "Ticket received [#7]"),
        ],
        "Hello,\nyour ticket is #7.\n",
        "<p>Hello</p>\n",
        [],
    ),
    (
        [
            ("From", "Serwis Łódź <serwis@serwis.example>"),
            ("To", "Łukasz Żółć <lukasz@acme.example>"),
            ("Subject", POLISH + " " + POLISH + " [#1042]"),
            ("Message-ID", "<abc.1@serwis.example>"),
            ("In-Reply-To", "<parent@acme.example>"),
            ("References", " ".join(f"<id-{i}-{'x' * 30}@acme.example>" for i in range(6))),
            ("Reply-To", 'Serwis "Pulpit" <support+t1042@serwis.example>'),
            ("Auto-Submitted", "auto-replied"),
        ],
        TEXT,
        HTML,
        [],
    ),
    (
        [
            ("From", "pulpit@serwis.example"),
            ("To", "b@acme.example"),
            ("Subject", "Zestawienie za listopad"),
        ],
        "Long line: " + "ą" * 1200 + "\nshort\n",
        "<table>" + "<tr><td>wiersz</td></tr>" * 200 + "</table>\n",
        [
            Part(bytes(range(256)) * 40, "application/pdf", "raport.pdf"),
            Part(b"a;b\n1;2\n", "text/csv", "zestawienie za listopad – Łódź.csv"),
        ],
    ),
]


def _reference(headers, text, html, attachments) -> EmailMessage:  # type: ignore[no-untyped-def]
    """The message as the email package makes it (mailgw.outbound's builder before)."""
    msg = EmailMessage(policy=default)
    for name, value in headers:
        msg[name] = value
    msg.set_content(text, charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    for p in attachments:
        maintype, _, subtype = p.content_type.partition("/")
        msg.add_attachment(p.data, maintype=maintype, subtype=subtype, filename=p.filename)
    return msg


def _parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _content(part: MIMEPart) -> object:
    value = part.get_content()
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_message_reads_as_the_email_package_builds_it(case: int) -> None:
    headers, text, html, attachments = CASES[case]
    ours = _parse(compose(headers=headers, text=text, html=html, attachments=attachments))
    theirs = _parse(_reference(headers, text, html, attachments).as_bytes())
    for name, value in headers:
        if name == "Subject":
            # Exactly as given: CPython's folder drops the space between two encoded-words
            # it writes side by side ("Zgłoszenieprzyjęte" in case 1), so not theirs here.
            assert str(ours[name]) == value
        else:
            assert str(ours[name]) == str(theirs[name]), name
    assert ours.get_content_type() == theirs.get_content_type()
    ours_parts = [p for p in ours.walk() if not p.is_multipart()]
    theirs_parts = [p for p in theirs.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in ours_parts] == [
        p.get_content_type() for p in theirs_parts
    ]
    for mine, ref in zip(ours_parts, theirs_parts, strict=True):
        assert _content(mine) == _content(ref)
        assert mine.get_filename() == ref.get_filename()
    # Nothing the parser had to mend.
    assert not ours.defects
    assert all(not p.defects for p in ours.walk())


@pytest.mark.parametrize("case", range(len(CASES)))
def test_every_line_is_seven_bit_crlf_and_short(case: int) -> None:
    headers, text, html, attachments = CASES[case]
    raw = compose(headers=headers, text=text, html=html, attachments=attachments)
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert max(len(line) for line in head) <= 76


def test_a_line_break_in_a_value_adds_no_header() -> None:
    raw = compose(
        headers=[
            ("From", "pulpit@serwis.example"),
            ("To", "anna@acme.example\r\nBcc: spy@evil.example"),
            ("Subject", "Hello\nBcc: spy@evil.example"),
            ("References", "<a@b>\r\nX-Evil: 1"),
        ],
        text="x\n",
        html="<p>x</p>\n",
    )
    parsed = _parse(raw)
    assert parsed["Bcc"] is None
    assert parsed["X-Evil"] is None
    assert str(parsed["Subject"]) == "Hello Bcc: spy@evil.example"


def test_text_keeps_its_signature_separator_and_last_line_end() -> None:
    parsed = _parse(compose(headers=[("Subject", "x")], text=TEXT, html=HTML))
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert _content(plain) == TEXT
    assert "\n-- \n" in str(_content(plain))


def test_ascii_text_goes_as_7bit_and_the_rest_quoted_printable() -> None:
    raw = compose(headers=[("Subject", "x")], text="plain ascii\n", html="<p>Łódź</p>\n")
    parts = [p for p in _parse(raw).walk() if not p.is_multipart()]
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["7bit", "quoted-printable"]


def test_a_file_name_that_is_not_ascii_goes_as_rfc_2231() -> None:
    raw = compose(
        headers=[("Subject", "x")],
        text="x\n",
        html="x\n",
        attachments=[Part(b"%PDF", "application/pdf", "Protokół serwisowy.pdf")],
    )
    assert b"filename*=utf-8''Protok%C3%B3%C5%82%20serwisowy.pdf" in raw
    parsed = _parse(raw)
    assert parsed.get_content_type() == "multipart/mixed"
    files = list(parsed.iter_attachments())
    assert [(f.get_filename(), f.get_content()) for f in files] == [
        ("Protokół serwisowy.pdf", b"%PDF")
    ]


def test_an_address_that_is_not_ascii_needs_smtputf8() -> None:
    assert needs_smtputf8("Łukasz <lukasz@acme.example>") is False
    assert needs_smtputf8("łukasz@żółw.example") is True


def _international(to: str) -> OutgoingMail:
    raw = compose(
        headers=[("From", "pulpit@serwis.example"), ("To", to), ("Subject", "Zgłoszenie")],
        text="Treść\n",
        html="<p>Treść</p>\n",
    )
    return OutgoingMail(
        raw=raw,
        message_id="<intl@serwis.example>",
        envelope_from="pulpit@serwis.example",
        recipients=(to,),
    )


@pytest.mark.usefixtures("fresh_relay_connections")
def test_an_international_address_goes_through_a_relay_that_offers_smtputf8() -> None:
    sink = SmtpSink(smtputf8=True).start()
    try:
        outbound.send(relay_settings(sink), _international("józef@żółw.example"))  # type: ignore[arg-type]
        got = sink.wait_for(1)
        assert got[0].message["To"] == "józef@żółw.example"
    finally:
        sink.stop()


@pytest.mark.usefixtures("fresh_relay_connections")
def test_a_relay_without_smtputf8_refuses_it_for_good() -> None:
    sink = SmtpSink().start()
    try:
        with pytest.raises(outbound.PermanentDeliveryError, match="SMTPUTF8"):
            outbound.send(relay_settings(sink), _international("józef@żółw.example"))  # type: ignore[arg-type]
        assert sink.messages == []
    finally:
        sink.stop()


SUBJECTS = [
    "Plain ASCII subject [#12]",
    "Łódź",
    "ą  ę  double spaces inside a run",
    "ascii  double  spaces",
    "mixed ż ascii ó ascii",
    "=?utf-8?b?bm90IGVuY29kZWQ=?= looks encoded but is text",
    "emoji 🖨️ drukarka 🔥 " * 4,
    "ą" * 200,
    "Re: Fwd: " + POLISH,
]


@pytest.mark.parametrize("subject", SUBJECTS)
def test_a_subject_reads_back_exactly(subject: str) -> None:
    raw = compose(headers=[("Subject", subject)], text="x\n", html="x\n")
    assert raw.isascii()
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    for word in head.split():
        if word.startswith("=?"):
            assert len(word) <= 75, word
    # RFC 2047 section 2: a line that holds an encoded-word is at most 76 characters.
    assert max(len(line) for line in head.split("\r\n")) <= 76
    assert str(_parse(raw)["Subject"]) == subject.strip()

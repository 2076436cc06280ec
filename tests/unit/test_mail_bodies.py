"""Visible reply and HTML sanitising (mailgw.bodies), on the Polish clients' quoting styles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mailparser_reply import EmailReplyParser

from mailgw.bodies import _is_closing, _latest_reply, html_to_text, sanitize_html, visible_reply
from mailgw.parsing import parse_message

CORPUS = Path(__file__).parents[1] / "fixtures" / "mail"


def body(name: str) -> str:
    return parse_message((CORPUS / name).read_bytes(), mail_domain="support.example").text


def test_outlook_polish_header_block_is_cut() -> None:
    text = visible_reply(body("outlook_pl_reply.eml"))
    assert "drukarka nadal nie działa" in text
    assert "Wysłano:" not in text and "Przyjęliśmy" not in text


def test_gmail_polish_dnia_napisal_is_cut() -> None:
    assert visible_reply(body("gmail_pl_reply.eml")) == "Serwer znowu się zawiesił o 9:40."


def test_gmail_header_wrapped_over_two_lines_is_cut() -> None:
    text = "Dziękuję.\n\nDnia wt., 3 mar 2026 o 08:00 Pulpit Pomoc\n<pomoc@support.example> napisał(a):\n> x"
    assert visible_reply(text) == "Dziękuję."


def test_thunderbird_polish_w_dniu_pisze_and_signature_are_cut() -> None:
    assert visible_reply(body("thunderbird_pl_reply.eml")) == "Hasło już działa, dziękuję."


def test_english_on_wrote_is_cut() -> None:
    text = "Works now.\n\nOn Mon, Mar 2, 2026 at 8:00 AM Pulpit <a@b.example> wrote:\n> old"
    assert visible_reply(text) == "Works now."


def test_original_message_separator_is_cut() -> None:
    text = "Proszę o pilny kontakt.\n\n-----Original Message-----\nFrom: x\nSent: y\n"
    assert visible_reply(text) == "Proszę o pilny kontakt."


def test_quoted_lines_are_cut() -> None:
    assert visible_reply("Tak, zgadzam się.\n> Czy zgadza się Pan?\n") == "Tak, zgadzam się."


def test_od_in_prose_is_not_a_header_block() -> None:
    text = "Od: poniedziałku nie działa drukarka.\nProszę o pomoc."
    assert "Proszę o pomoc." in visible_reply(text)


def test_a_mail_that_is_all_quote_is_shown_whole() -> None:
    assert visible_reply("> tylko cytat") == "> tylko cytat"


@pytest.mark.parametrize(
    "header",
    [
        "pon., 2 mar 2026 o 10:00 Pomoc Serwis <pomoc@serwis.example> napisał(a):",  # Gmail
        "2 mar 2026, 10:00 użytkownik Pomoc <pomoc@serwis.example> napisał:",
        "Wiadomość napisana przez Pomoc Serwis <pomoc@serwis.example> w dniu 2 mar 2026, "
        "o godz. 10:00:",  # Apple Mail
        "---- Wł. pon., 02 mar 2026 10:00:00 +0100 Pomoc <pomoc@serwis.example> napisał ----",
    ],
)
def test_other_polish_quote_headers_are_cut(header: str) -> None:
    assert visible_reply(f"Nadal nie działa.\n\n{header}\n\n> Przyjęliśmy") == "Nadal nie działa."


def test_an_address_and_napisal_inside_a_sentence_is_not_a_quote_header() -> None:
    text = "Pisałem do <jan@firma.example> i napisał: że nie wie."
    assert visible_reply(text) == text


@pytest.mark.parametrize(
    ("text", "visible"),
    [
        (
            "Dzień dobry,\ndrukarka w pokoju 12 nie drukuje.\n\nPozdrawiam\nJan Kowalski\n"
            "Kancelaria Nowak\ntel. 600 100 200\n",
            "Dzień dobry,\ndrukarka w pokoju 12 nie drukuje.",
        ),
        (
            "Proszę o wymianę tonera.\n\nZ poważaniem,\nAnna Nowak\nSpecjalista ds. "
            "administracji\nSzpital Powiatowy w Lesznie\nul. Szpitalna 1, 64-100 Leszno",
            "Proszę o wymianę tonera.",
        ),
        ("Proszę o pilną interwencję.\nPozdrawiam serdecznie\nEwa", "Proszę o pilną interwencję."),
        ("Dziękuję, działa.\n\nPozdrawiam, Piotr\n\nWysłane z iPhone'a", "Dziękuję, działa."),
        ("Router znowu nie działa.\n\nSent from my iPhone", "Router znowu nie działa."),
        ("In the attachment.\n\nBest regards\nJohn Smith\nACME Sp. z o.o.", "In the attachment."),
    ],
)
def test_a_closing_and_the_signature_under_it_are_cut(text: str, visible: str) -> None:
    assert visible_reply(text) == visible


@pytest.mark.parametrize(
    "text",
    [
        "Pozdrawiam\nJan",  # nothing but the closing: shown as it is
        "Dzień dobry,\nPozdrawiam z urlopu, ale mam pytanie: czy toner jest już w drodze?\nJan",
        "Lista:\n1. nie drukuje\n2. pozdrawiam\n3. " + "bardzo długi opis usterki " * 5,
        # a long line under the closing is more message, not a signature
        "Krótko.\nPozdrawiam\n" + "PS. Jeszcze jedno: drukarka w sekretariacie też ma problem z "
        "podajnikiem i zacina papier przy druku dwustronnym.",
    ],
)
def test_prose_that_merely_greets_is_kept(text: str) -> None:
    assert visible_reply(text) == text.strip()


@pytest.mark.parametrize(
    ("line", "closing"),
    [
        ("Pozdrawiam", True),
        ("Z poważaniem,", True),
        ("Dziękuję z góry, pozdrawiam!", True),
        ("Pozdrawiam, Jan K.", True),
        ("Dziękuję i pozdrawiam – Jan Maria Kowalski", True),  # three words after a closing
        ("Pozdrawiam, Jan Maria Kowalska-Nowak", False),  # four (the hyphen splits)
        ("Best regards, John", True),
        ("Regards from the office, John", False),
        ("Pozdrawiam z urlopu, ale mam pytanie", False),
        ("Pozdr", True),
        ("Pozdrowienia dla całego zespołu serwisu od działu kadr", False),
        ("", False),
    ],
)
def test_a_closing_is_its_words_and_at_most_three_after_them(line: str, closing: bool) -> None:
    assert _is_closing(line) is closing


REPLIES = [
    "Dzień dobry,\ntoner się kończy.\n\nPozdrawiam\nJan",
    "Thanks, it works now.\n\nOn Mon, 2 Mar 2026 at 10:00, Pomoc <pomoc@serwis.example> wrote:\n> ok",
    "Proszę o kontakt.\n\nW dniu 2.03.2026 o 10:00, Pomoc pisze:\n> Dzień dobry",
    "Działa.\n\nOd: Pomoc\nWysłano: poniedziałek\nDo: Jan\nTemat: [#1042] Drukarka\n\nTreść",
    "Krótko.\n\nSent from my iPhone",
    "Proszę o wycenę.\n\nBest regards,\nJohn\n\nThis e-mail and any attachments are"
    " confidential. If you received this mail in error, please notify the sender.",
    "Tekst\n________________________________\nFrom: Someone\nSent: Monday",
    "",
    "   \n  wcięty tekst\n\t z tabulatorem\n",
]


@pytest.mark.parametrize(
    "text",
    [pytest.param(text, id=f"reply-{n}") for n, text in enumerate(REPLIES)]
    + [pytest.param(body(p.name), id=p.name) for p in sorted(CORPUS.glob("*.eml"))],
)
def test_the_reply_parser_with_patterns_built_once_reads_as_the_library_does(text: str) -> None:
    assert _latest_reply(text) == EmailReplyParser(languages=["pl", "en"]).parse_reply(text)
    assert _latest_reply(text) == _latest_reply(text)  # nothing kept from one text to the next


OUTLOOK_HTML_ONLY = """<html><head><style>p{margin:0}</style><script>alert(1)</script></head>
<body><div>Dzień dobry,</div><div><br></div>
<div>drukarka w pokoju 12 nie drukuje.<br>Błąd&nbsp;E-05, model &quot;HP 404&quot;.</div>
<table><tr><td>Nr seryjny</td><td>ABC123</td></tr></table>
<p>Pozdrawiam<br>Jan Kowalski</p>
<div style="border-top:solid #E1E1E1 1.0pt"><p><b>Od:</b> Pomoc &lt;pomoc@serwis.example&gt;<br>
<b>Wysłano:</b> poniedziałek, 2 marca 2026 10:00<br><b>Do:</b> Jan<br>
<b>Temat:</b> [#1042] Drukarka</p></div><p>Przyjęliśmy zgłoszenie</p></body></html>"""


def test_an_html_only_mail_reads_as_text_with_its_lines() -> None:
    text = html_to_text(OUTLOOK_HTML_ONLY)
    assert "Dzień dobry,\n\ndrukarka w pokoju 12 nie drukuje.\nBłąd E-05" in text
    assert 'model "HP 404"' in text and "Od: Pomoc <pomoc@serwis.example>" in text
    assert re.search(r"Nr seryjny\s+ABC123", text)
    assert "alert" not in text and "margin" not in text
    assert visible_reply(text) == (
        'Dzień dobry,\n\ndrukarka w pokoju 12 nie drukuje.\nBłąd E-05, model "HP 404".\n'
        "Nr seryjny  ABC123"
    )
    assert html_to_text("") == "" and html_to_text("   ") == ""


def test_html_loses_script_handlers_javascript_and_frames() -> None:
    html = parse_message(
        (CORPUS / "html_script.eml").read_bytes(), mail_domain="support.example"
    ).html
    clean = sanitize_html(html)
    for bad in ("<script", "onclick", "javascript:", "<iframe", "alert("):
        assert bad not in clean
    assert '<a href="https://acme.example/" rel="noopener noreferrer">' in clean
    assert "<table>" in clean and "<b>Tabela</b>" in clean


def test_html_keeps_cid_images() -> None:
    clean = sanitize_html('<img src="cid:a@b" onerror="x()"><object data="x"></object>')
    assert clean == '<img src="cid:a@b">'

"""Mail bodies: the visible reply without quoted history, and HTML made safe to show.

``visible_reply`` cuts a reply at the first marker of quoted history that mail clients in
Poland write (Outlook's ``Od:/Wysłano:/Do:/Temat:`` block, Gmail's ``Dnia ... napisał(a):``,
Thunderbird's ``W dniu ... pisze:``, the English ``On ... wrote:``, ``-----Original
Message-----``, ``> `` quoted lines) and at the signature separator ``-- `` (RFC 3676 4.3),
then cuts a closing and the signature block under it ("Pozdrawiam" / "Z poważaniem" / "Best
regards" followed by a name, a company, a phone; "Wysłane z iPhone'a"), which mail-parser-reply
does not recognise in Polish, and lets mail-parser-reply trim what it knows beyond that. The
full text is always kept by the caller.

``html_to_text`` turns an HTML-only mail into the text a person reads (inscriptis: paragraphs,
line breaks, lists and tables laid out, entities decoded), so quotes and signatures can be cut
from it as from a text part.

``sanitize_html`` keeps basic formatting, tables, links (with ``rel="noopener noreferrer"``)
and ``cid:`` images, and drops scripts, event handlers, ``javascript:`` URLs and frames (nh3,
the Rust ammonia sanitiser).
"""

from __future__ import annotations

import re
from functools import cache
from re import Pattern

import nh3
from mailparser_reply.parser import EmailMessage

# Markers that start quoted history, checked line by line; the earliest one wins.
_QUOTE_MARKERS = [
    re.compile(
        r"^-{2,}\s*(Original Message|Wiadomość oryginalna|Oryginalna wiadomość)\s*-{2,}", re.I
    ),
    re.compile(r"^_{10,}\s*$"),  # Outlook's separator line above its header block
    re.compile(r"^\*?(Od|From):\*?\s.+", re.I),  # start of an Outlook header block, see below
    re.compile(
        r"^(Dnia|W dniu)\s.{3,200}(napisał\(a\)|napisał|napisała|pisze|nadesłał):\s*$", re.I
    ),
    re.compile(r"^On\s.{3,200}\swrote:\s*$", re.I),
    # Any "... <address> ... napisał(a):" line: Gmail without "Dnia" ("pon., 2 mar 2026 o 10:00
    # Jan <jan@x> napisał(a):"), "2 mar 2026, 10:00 użytkownik Jan <jan@x> napisał:".
    re.compile(
        r"^.{0,200}<[^<>\s]+@[^<>\s]+>.{0,60}(napisał\(a\)|napisał|napisała|pisze|wrote|schrieb)"
        r"\s*:\s*$",
        re.I,
    ),
    re.compile(r"^Wiadomość napisana przez .{3,200} w dniu .{3,80}:\s*$", re.I),  # Apple Mail
    re.compile(r"^-{2,}\s*(Wł\.|On)\s.{3,200}\s(napisał|wrote)\s*-{2,}\s*$", re.I),  # Zoho
    re.compile(r"^Am\s.{3,200}\sschrieb.{0,40}:\s*$", re.I),
    re.compile(r"^>"),
]
_OUTLOOK_FOLLOWERS = re.compile(r"^\*?(Wysłano|Sent|Data|Date|Do|To|Temat|Subject|DW|Cc):", re.I)
_SIGNATURE = re.compile(r"^--\s?$")  # RFC 3676 4.3: "-- " alone on a line
_WRAPPED_HEADER_START = re.compile(r"^(Dnia|W dniu|On)\s.{3,200}$", re.I)
_WRAPPED_HEADER_END = re.compile(r"(napisał\(a\)|napisał|napisała|pisze|wrote):\s*$", re.I)


def _is_outlook_block(lines: list[str], i: int) -> bool:
    """``Od:`` counts only when followed by Wysłano:/Do:/Temat: lines (a header block)."""
    following = [ln for ln in lines[i + 1 : i + 5] if ln.strip()]
    return sum(1 for ln in following if _OUTLOOK_FOLLOWERS.match(ln.strip())) >= 2


def _cut_index(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        text = line.strip()
        if _SIGNATURE.match(line.rstrip("\n")) or line.rstrip() == "--":
            return i
        # Gmail wraps a long "Dnia ... napisał(a):" over two lines.
        if (
            _WRAPPED_HEADER_START.match(text)
            and i + 1 < len(lines)
            and _WRAPPED_HEADER_END.search(lines[i + 1].strip())
        ):
            return i
        for n, marker in enumerate(_QUOTE_MARKERS):
            if marker.match(text):
                if n == 2 and not _is_outlook_block(lines, i):
                    continue
                return i
    return None


# Closings that end the message proper, compared lower-cased without punctuation. What follows
# one is a signature when it is short (see _sign_off_index).
_CLOSINGS = frozenset(
    {
        "pozdrawiam",
        "pozdrawiam serdecznie",
        "serdecznie pozdrawiam",
        "pozdrawiam cieplo",
        "pozdrawiam ciepło",
        "z pozdrowieniami",
        "pozdrowienia",
        "łączę pozdrowienia",
        "łączę wyrazy szacunku",
        "z poważaniem",
        "z wyrazami szacunku",
        "dziękuję i pozdrawiam",
        "dziękuję pozdrawiam",
        "dziękuję z góry pozdrawiam",
        "pozdr",
        "pzdr",
        "regards",
        "best regards",
        "kind regards",
        "warm regards",
        "best wishes",
        "yours sincerely",
        "sincerely",
        "cheers",
        "mit freundlichen grüßen",
    }
)
_MOBILE_SIGNATURE = re.compile(
    r"^(Wysłane|Wysłano) z (mojego |aplikacji )?\S|^Sent from my \S|^(Get|Pobierz) (aplikację )?Outlook",
    re.I,
)
# A signature block under a closing: a few short lines (name, role, company, phone, address).
_SIGNATURE_LINES = 8
_SIGNATURE_LINE_LENGTH = 90


_PUNCTUATION = re.compile(r"[,.!;:–-]+")
_CLOSING_WORDS = max(len(closing.split()) for closing in _CLOSINGS)


def _normalised(line: str) -> str:
    return " ".join(_PUNCTUATION.sub(" ", line).lower().split())


def _is_closing(line: str) -> bool:
    """A closing alone ("Pozdrawiam,") or with a short name after it ("Pozdrawiam, Jan K.")."""
    words = _normalised(line)
    if words in _CLOSINGS:
        return True
    if len(line.strip()) > 60:
        return False
    # The closing is the first k words, and at most three words follow it.
    split = words.split(" ")
    return any(
        " ".join(split[:k]) in _CLOSINGS
        for k in range(max(1, len(split) - 3), min(_CLOSING_WORDS, len(split) - 1) + 1)
    )


def _sign_off_index(lines: list[str]) -> int | None:
    """Where the closing and signature begin, when the message ends with them."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if len(filled) < 2:
        return None
    # A mobile client's line at the very end ("Wysłane z iPhone'a") is a signature of its own.
    end = len(lines)
    if _MOBILE_SIGNATURE.match(lines[filled[-1]].strip()):
        end = filled[-1]
        filled = filled[:-1]
    for i in reversed(filled[-(_SIGNATURE_LINES + 1) :]):
        if _is_closing(lines[i]):
            block = [ln for ln in lines[i + 1 : end] if ln.strip()]
            if i > filled[0] and all(len(ln) <= _SIGNATURE_LINE_LENGTH for ln in block):
                return i
            return None
    return end if end < len(lines) and filled else None


def visible_reply(text: str) -> str:
    """The text the sender wrote in this mail, without quoted history or signature."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    cut = _cut_index(lines)
    body = lines[:cut] if cut is not None else lines
    head = "\n".join(body).strip()
    if not head:
        # The whole mail is a quote (or starts with one): show it rather than nothing.
        return text.strip()
    sign_off = _sign_off_index(body)
    if sign_off is not None:
        head = "\n".join(body[:sign_off]).strip()
    try:
        trimmed = _latest_reply(head)
    except (re.error, IndexError, ValueError):
        trimmed = None
    trimmed = (trimmed or "").strip()
    # mail-parser-reply strips line indentation and can swallow a one-line reply that looks
    # like a greeting; keep our cut when it returns nothing useful.
    return trimmed if trimmed else head


_REPLY_LANGUAGES = ("pl", "en")


@cache
def _reply_patterns() -> dict[str, Pattern[str]]:
    """mail-parser-reply's three patterns for our languages, built once: its parser builds
    them again for every message (a third of its time on a short reply). Built by its own
    code from an empty message of the same languages, so they are the patterns it would use."""
    empty = EmailMessage(text="", languages=list(_REPLY_LANGUAGES))
    return {
        "_header_regex": empty.HEADER_REGEX,
        "_disclaimers_regex": empty.DISCLAIMERS_REGEX,
        "_signature_regex": empty.SIGNATURE_REGEX,
    }


def prepare() -> None:
    """Build the reply parser's patterns now (a worker does it before its first job)."""
    _reply_patterns()


def _latest_reply(text: str) -> str | None:
    """What ``EmailReplyParser(languages=["pl", "en"]).parse_reply(text)`` returns, with the
    patterns built once (``EmailMessage`` takes them as fields and builds only those missing)."""
    message = EmailMessage(text=text, languages=list(_REPLY_LANGUAGES), **_reply_patterns())
    return message.read().latest_reply


def html_to_text(html: str) -> str:
    """The text of an HTML body, laid out as a browser shows it (no scripts, no styles)."""
    if not html or not html.strip():
        return ""
    from inscriptis import get_text
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig

    try:
        text = get_text(html, ParserConfig(css=CSS_PROFILES["strict"], display_links=False))
    except Exception:  # lxml on hostile markup: fall back to the tags stripped
        text = nh3.clean(html, tags=set())
    lines = [line.rstrip() for line in text.replace("\xa0", " ").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "div",
    "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol",
    "p", "pre", "s", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign"},
    "table": {"border", "cellpadding", "cellspacing", "width"},
    "font": {"color"},
    "*": {"align"},
}
# cid: (RFC 2392) points at an inline part of the same mail; the console rewrites it.
ALLOWED_SCHEMES = {"http", "https", "mailto", "cid", "tel"}


def sanitize_html(html: str) -> str:
    """HTML safe to show in the console: no script, handlers, javascript: or frames."""
    if not html:
        return ""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )

"""Bytes of mail text into str: declared charsets as real mail needs them, undeclared ones guessed.

Real mail declares charsets wrongly or not at all. What this module does about it:

- a declared name is mapped to the codec that real senders mean by it (:data:`ALIASES`): GB2312
  is written by every Chinese client with GBK bytes, so it is read as GB18030 (a superset);
  ``ks_c_5601-1987`` is Windows' cp949; ``iso-8859-8-i`` is ``iso-8859-8``; ``iso-8859-1`` and
  ``us-ascii`` are read as windows-1252 and UTF-8 (WHATWG does the same: the bytes 0x80–0x9F
  of "latin-1" mail are Windows punctuation, and "ascii" mail with 8-bit bytes is UTF-8);
- undeclared 8-bit bytes (a header, a file name, a body with no or an unusable charset) are
  read as UTF-8 when they are UTF-8 (RFC 6532), else each candidate is tried: the charsets the
  message declares elsewhere (hints), charset-normalizer's guess for longer texts, then the
  legacy charsets real mail uses (windows-1250 and iso-8859-2 for Polish, windows-1252,
  Shift-JIS, GB18030, Big5, EUC-KR, windows-1251); the reading with the fewest signs of a wrong
  guess (:func:`implausibility`: control characters, private-use code points, symbols inside
  words, case flipping mid-word, half-width katakana, scripts mixed inside a word) wins, ties
  going to the earlier candidate;
- U+FFFD appears only when no candidate reads the bytes at all, and the result never holds a
  lone surrogate or a control character (:func:`clean`).

Headers are short, and charset-normalizer guesses badly on a dozen bytes (it reads "Müller" in
Latin-1 as UTF-16), so below :data:`DETECTOR_MIN_BYTES` its guess is not asked for. Plain ASCII
never reaches the guessing; guesses for short byte strings are cached.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

# Declared names as real mail uses them -> the codec that reads what was meant.
ALIASES: dict[str, str] = {
    "gb2312": "gb18030",
    "gb_2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gb231280": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "csgb2312": "gb18030",
    "chinese": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "windows-936": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "ksc5601": "cp949",
    "ksc_5601": "cp949",
    "euc-kr": "cp949",
    "x-euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "csshiftjis": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "big-5": "big5hkscs",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "ansi_x3.4-1968": "utf-8",
    "us": "utf-8",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "x-unicode20utf8": "utf-8",
    "cp-850": "cp850",
    "x-mac-ce": "mac-latin2",
    "x-mac-roman": "mac-roman",
    "macintosh": "mac-roman",
}
# Names that say nothing: the bytes are guessed as if undeclared.
UNKNOWN = frozenset({"unknown-8bit", "x-unknown", "unknown", "8bit", "x-user-defined", "default"})

# Tried, in this order, for bytes whose charset is not known (after UTF-8 and the hints).
LEGACY = (
    "cp1250",
    "iso-8859-2",
    "cp1252",
    "cp932",
    "gb18030",
    "big5hkscs",
    "cp949",
    "cp1251",
)
# Below this many bytes charset-normalizer's guess is not asked for (it is unreliable there).
DETECTOR_MIN_BYTES = 48
# The words of a long text that are scored (the scoring is per character, in Python).
SAMPLE_WORDS = 200

_REJECT = float("inf")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# A "word" of bytes holding 8-bit bytes: what candidates are scored on for long inputs.
_WORD_8BIT = re.compile(rb"[^\x00-\x20]*[\x80-\xff][^\x00-\x20]*")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_NO_BREAKS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
# C1 controls in a decoded text: the sign of a wrong single-byte label (C0 controls are the
# same bytes in every charset: they say nothing about the label).
_C1 = re.compile("[\x80-\x9f]")


@lru_cache(maxsize=256)
def codec_for(name: str | None) -> str | None:
    """The Python codec for a declared charset name, as real mail means it; None when the name
    is empty, unknown, says nothing, or names a codec that is not ASCII-compatible."""
    if not name:
        return None
    key = name.strip().strip("\"'").lower()
    key = key.split("*", 1)[0]  # RFC 2231 5: charset*language
    if not key or key in UNKNOWN:
        return None
    key = ALIASES.get(key, ALIASES.get(key.replace("_", "-"), key))
    try:
        codec = codecs.lookup(key).name
    except LookupError:
        return None
    # UTF-16/32 and UTF-7 are no reading of text that is ASCII elsewhere in the message.
    if codec.startswith(("utf-16", "utf-32", "utf-7")) or codec in ("rot-13", "base64", "hex"):
        return None
    return codec


def _single_byte(codec: str) -> bool:
    return codec.startswith(("cp12", "iso8859", "latin", "cp8", "mac-", "koi8"))


def clean(text: str, *, keep_breaks: bool = True) -> str:
    """``text`` without lone surrogates and control characters (tab kept; CR, LF and form feed
    kept when ``keep_breaks``). A surrogate left here means bytes nobody decoded: U+FFFD."""
    pattern = _CONTROL if keep_breaks else _CONTROL_NO_BREAKS
    if pattern.search(text) is None:
        return text

    def repl(match: re.Match[str]) -> str:
        ch = match.group(0)
        if "\ud800" <= ch <= "\udfff":
            return "\ufffd"
        return " " if ch in "\r\n" else ""

    return pattern.sub(repl, text)


def _letter_kind(ch: str) -> str:
    """A coarse class of a character, for the implausibility score."""
    o = ord(ch)
    if o < 0x80:
        return "a" if ch.isalpha() else ("d" if ch.isdigit() else " ")
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF:
        return "kana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
        return "han"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    if 0xFF61 <= o <= 0xFF9F:
        return "halfkana"
    if ch.isalpha():
        return "L"  # a letter outside ASCII: Latin with diacritics, Greek, Cyrillic...
    if 0xA1 <= o <= 0xBF or o in (0xD7, 0xF7) or 0x2B0 <= o <= 0x2FF:
        return "s"  # Latin-1 symbols and spacing accents: what a wrong single-byte guess makes
    if ch.isspace():
        return " "
    return "p"  # typographic punctuation, currency, other symbols


@lru_cache(maxsize=4096)
def _char_penalty(ch: str) -> tuple[float, str]:
    """(penalty of the character alone, its class); inf rejects the whole reading."""
    o = ord(ch)
    if o < 0x80:  # C0 controls too: they are the same bytes in every candidate
        return 0.0, _letter_kind(ch)
    if unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs") or ch == "\ufffd":
        return _REJECT, " "
    kind = _letter_kind(ch)
    if kind == "halfkana":
        return 1.0, kind
    return (0.5 if ch in _RARE else 0.0), kind


# Letters that are rare in the mail we get but are what a wrong single-byte guess makes of
# common ones: Polish "ź" in iso-8859-2 read as windows-1250 is "Ľ", Russian "е" and "р" in
# windows-1251 read as windows-1250 are "ĺ" and "đ" (as windows-1252, "å" and "ð").
_RARE = frozenset("ĽľĹĺŔŕĐđŢţðÐþÞ")


_LETTERS = frozenset({"a", "L"})
# Penalties for two neighbours, by their classes (order does not matter).
_PAIRS: dict[frozenset[str], float] = {
    frozenset({"s", "a"}): 1.0,
    frozenset({"s", "L"}): 1.0,
    frozenset({"p", "L"}): 0.25,
    frozenset({"han", "hangul"}): 1.0,
    frozenset({"han", "L"}): 1.0,
    frozenset({"kana", "L"}): 1.0,
    frozenset({"hangul", "L"}): 1.0,
    frozenset({"halfkana", "han"}): 1.0,
    frozenset({"halfkana", "kana"}): 1.0,
    frozenset({"han", "a"}): 0.5,
    frozenset({"hangul", "a"}): 0.5,
    frozenset({"kana", "a"}): 0.5,
}


def implausibility(text: str) -> float:
    """How much a decoded text looks like a wrong guess: 0 for ordinary text, inf when it holds
    characters no text holds (controls, private use, unassigned). Counts Latin-1 symbols next
    to letters ("gę¶l±"), an upper-case letter right after a lower-case one where either is
    not ASCII ("´ňÓĄť"), half-width katakana, and scripts that do not meet inside a word
    (Hangul next to Han, accented Latin next to CJK)."""
    score = 0.0
    prev = " "
    prev_kind = " "
    for ch in text:
        penalty, kind = _char_penalty(ch)
        if penalty == _REJECT:
            return _REJECT
        score += penalty
        if kind != prev_kind:
            score += _PAIRS.get(frozenset((kind, prev_kind)), 0.0)
        if (
            kind in _LETTERS
            and prev_kind in _LETTERS
            and (kind == "L" or prev_kind == "L")
            and prev.islower()
            and ch.isupper()
        ):
            score += 1.0
        prev, prev_kind = ch, kind
    return score


def _sample(data: bytes) -> bytes:
    """The 8-bit words of a long byte string: what a reading is judged by."""
    if len(data) <= 2048:
        return data
    words = _WORD_8BIT.findall(data, 0, 1_000_000)[:SAMPLE_WORDS]
    return b" ".join(words)


def _detector_guess(data: bytes) -> str | None:
    """charset-normalizer's best reading of a longer text, as a codec name."""
    from charset_normalizer import from_bytes

    try:
        best = from_bytes(data[:65536]).best()
    except Exception:  # a third-party detector on hostile input: no guess
        return None
    return codec_for(best.encoding) if best is not None else None


def _candidates(data: bytes, hints: Iterable[str | None]) -> list[str]:
    found: list[str] = ["utf-8"]
    for hint in hints:
        codec = codec_for(hint)
        if codec and codec not in found:
            found.append(codec)
    for codec in LEGACY:
        name = codecs.lookup(codec).name
        if name not in found:
            found.append(name)
    if len(data) >= DETECTOR_MIN_BYTES:
        # Last: on Polish it proposes Baltic and Nordic charsets that read "ń" as "ņ", which
        # look as plausible as the right reading; it is here for the scripts LEGACY lacks.
        guess = _detector_guess(data)
        if guess and guess not in found:
            found.append(guess)
    return found


def _decode_guessed(data: bytes, hints: tuple[str, ...]) -> str:
    sample = _sample(data)
    best: tuple[float, int, str] | None = None
    for rank, codec in enumerate(_candidates(data, hints)):
        try:
            reading = sample.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        if rank == 0:  # UTF-8, when the bytes are UTF-8 (RFC 6532)
            best = (0.0, rank, codec)
            break
        score = implausibility(reading)
        if score == _REJECT:
            continue
        if best is None or score < best[0]:
            best = (score, rank, codec)
            if score == 0.0:
                break  # nothing later can beat it: ties go to the earlier candidate
    if best is not None:
        try:
            return data.decode(best[2])
        except UnicodeDecodeError:
            pass  # the sample decoded, the whole did not: fall through to a lenient reading
    # Nothing reads every byte: the first hint, else the Polish default, with U+FFFD for the
    # bytes it has no letter for.
    fallback = next((c for c in map(codec_for, hints) if c), "cp1250")
    return data.decode(fallback, "replace")


@lru_cache(maxsize=2048)
def _decode_guessed_cached(data: bytes, hints: tuple[str, ...]) -> str:
    return _decode_guessed(data, hints)


def decode_undeclared(data: bytes, hints: Sequence[str | None] = ()) -> str:
    """Bytes in an unknown charset: UTF-8 when they are UTF-8, else the most plausible reading
    (hints, the detector, the legacy charsets); never raises, never a surrogate."""
    if not _NON_ASCII.search(data):
        return data.decode("ascii")
    key = tuple(h for h in hints if h)
    if len(data) <= 512:
        return _decode_guessed_cached(data, key)
    return _decode_guessed(data, key)


def _decode_mixed(data: bytes, codec: str, hints: Sequence[str | None]) -> str | None:
    """``data`` in ``codec`` but for a few stray bytes (a quoted line in another charset, one
    bad byte in an encoded word): the valid runs in ``codec``, each stray run guessed. None
    when the stray bytes are too many for the label to be right."""
    pieces: list[str] = []
    pos = 0
    stray = 0
    budget = max(8, len(_NON_ASCII.findall(data, 0, 1_000_000)) // 10)
    while pos < len(data):
        try:
            pieces.append(data[pos:].decode(codec))
            break
        except UnicodeDecodeError as exc:
            start, end = pos + exc.start, pos + exc.end
            pieces.append(data[pos:start].decode(codec))
            # Consecutive stray bytes are guessed together.
            while end < len(data) and data[end] >= 0x80:
                try:
                    data[end:].decode(codec)
                    break
                except UnicodeDecodeError as more:
                    if more.start != 0:
                        break
                    end += more.end
            stray += end - start
            if stray > budget:
                return None
            pieces.append(decode_undeclared(data[start:end], hints))
            pos = end
    return "".join(pieces)


def decode_declared(data: bytes, charset: str | None, hints: Sequence[str | None] = ()) -> str:
    """Bytes that say what charset they are in; when the label is wrong or unusable, they are
    read as undeclared with the label as the first hint. Never raises, never a surrogate.

    A single-byte label (latin-1, windows-1250...) on bytes that are valid UTF-8 with 8-bit
    characters in them is taken for the mislabelled UTF-8 it nearly always is. A few bytes
    that are no text in the declared charset are guessed on their own, the rest kept."""
    codec = codec_for(charset)
    if codec is not None:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            mixed = _decode_mixed(data, codec, hints)
            if mixed is not None:
                return mixed
        else:
            if text.isascii():
                return text
            if _single_byte(codec) and codec != "utf-8":
                try:
                    return data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            if _C1.search(text) is None:
                return text
    return decode_undeclared(data, (charset or "", *hints) if codec else tuple(hints))

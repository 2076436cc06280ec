"""Console translations: Babel catalogues (``web/locale/<lang>/LC_MESSAGES/messages.po``).

The ``.po`` files are the source; they are compiled in memory at start, so a fresh clone and
an installed wheel need no build step. Polish is the default and has three plural forms, so
templates use ``ngettext`` for every count.
"""

from __future__ import annotations

import gettext as _gettext
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("pl", "en")


@lru_cache(maxsize=8)
def translations(lang: str) -> _gettext.NullTranslations:
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return _gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


def pick_language(
    *candidates: str | None, accept_language: str | None = None, default: str = "pl"
) -> str:
    """The first supported language among the candidates, then the browser's, then the default."""
    for cand in candidates:
        if cand and cand[:2].lower() in LANGUAGES:
            return cand[:2].lower()
    if accept_language:
        for part in accept_language.split(","):
            code = part.split(";")[0].strip()[:2].lower()
            if code in LANGUAGES:
                return code
    return default


@dataclass(frozen=True)
class Translator:
    lang: str

    def gettext(self, message: str) -> str:
        return translations(self.lang).gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return translations(self.lang).ngettext(singular, plural, n)

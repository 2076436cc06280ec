"""Console translations: Babel catalogues (``web/locale/<lang>/LC_MESSAGES/messages.po``).

The ``.po`` files are the source; they are compiled in memory at start, so a fresh clone and
an installed wheel need no build step. Polish is the default and has three plural forms, so
templates use ``ngettext`` for every count.
"""

from __future__ import annotations

import gettext as _gettext
from dataclasses import dataclass
from pathlib import Path

from core.i18n import compiled_catalogue

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("pl", "en")


def translations(lang: str) -> _gettext.NullTranslations:
    return compiled_catalogue(LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po", lang)


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

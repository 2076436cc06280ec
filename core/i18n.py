"""Babel catalogues compiled in memory, shared by the console and outgoing mail.

The ``.po`` files are the source of truth; compiling them at first use means a fresh clone or
an installed wheel needs no build step and no ``.mo`` files are kept in the repository.
"""

from __future__ import annotations

import gettext
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations


@lru_cache(maxsize=32)
def compiled_catalogue(po_path: Path, locale: str) -> gettext.NullTranslations:
    """The translations in ``po_path``; no-op translations when the file does not exist."""
    if not po_path.exists():
        return gettext.NullTranslations()
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)

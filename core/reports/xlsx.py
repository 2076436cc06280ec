"""A small streaming XLSX (Office Open XML spreadsheet) writer: just what the exports need.

Why our own: XlsxWriter spends about 5 µs a cell, so a year's work time by ticket (200,000
rows of 6-8 cells) took 5-8 s; writing each row's XML as one string straight into the
deflated zip member takes a fraction of that (see ``core/reports/export.py``).

- :class:`Workbook` writes to a file object (a :class:`io.BytesIO` of its own by default);
  :meth:`Workbook.close` finishes the zip and returns the bytes.
- :meth:`Workbook.style` registers a cell format (bold, font size, number format, a thin
  bottom border, wrapped text, vertical alignment) and returns its index for the cells.
- :meth:`Workbook.add_sheet` opens the next sheet. Its column widths and frozen panes come
  first, because the schema puts ``<cols>`` and ``<sheetViews>`` before ``<sheetData>``;
  then :meth:`Sheet.row` writes the rows one by one, in order, straight into the zip member
  (a sheet is never whole in memory). One sheet is open at a time: adding the next, or
  closing the book, closes it.
- Cells: ``int`` and ``float`` are numbers (NaN and infinities, which XML cannot carry, are
  blank); ``str`` is always an inline string, never a formula (``=SUM(A1)`` stays text);
  ``date`` and ``datetime`` are serial numbers (days since 1899-12-30), to be given a date
  format; ``bool`` is a boolean; ``None`` is blank (written only when it has a style).
- Text is XML-escaped; characters XML 1.0 forbids (control characters other than tab, LF
  and CR, lone surrogates, U+FFFE and U+FFFF) become ``_xHHHH_`` as Excel writes them, and a
  literal ``_xHHHH_`` in the text gets its underscore escaped (``_x005F_``), so a subject
  from a stranger's mail can never break the file.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
EPOCH = date(1899, 12, 30)  # Excel's day 0 (with its 1900 leap year folded in)
_EPOCH_ORDINAL = EPOCH.toordinal()
_FLUSH_ROWS = 512  # rows joined into one write to the zip member

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

# What text needs beyond nothing: XML's specials, forbidden characters, and a literal
# _xHHHH_ (which Excel would otherwise read back as an escape).
_SPECIAL = re.compile("[&<>\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]|_x[0-9A-Fa-f]{4}_")
_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)"
)


def _forbidden(match: re.Match[str]) -> str:
    return f"_x{ord(match.group()):04X}_"


def text(value: str) -> str:
    """``value`` as the content of an XML element, with Excel's escapes (module docstring)."""
    if _SPECIAL.search(value) is None:
        return value
    return _FORBIDDEN.sub(_forbidden, escape(value))


def _attr(value: str) -> str:
    """``value`` inside an attribute's double quotes."""
    return text(value).replace('"', "&quot;")


def column_letter(col: int) -> str:
    """``A`` for column 0, ``Z``, ``AA``, ... ``XFD`` for the last."""
    letters = ""
    col += 1
    while col:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def serial(value: date) -> float | int:
    """A date (or naive datetime; a zone is dropped) as Excel's serial day number."""
    days = value.toordinal() - _EPOCH_ORDINAL
    if isinstance(value, datetime):
        seconds = value.hour * 3600 + value.minute * 60 + value.second
        return days + (seconds + value.microsecond / 1e6) / 86400
    return days


def _width(width: float) -> float:
    """A width in characters, as Excel's column dialog shows it, as the file stores it (with
    Calibri 11's 5 pixels of padding; the same as XlsxWriter's ``set_column``)."""
    if width <= 0:
        return 0
    if width < 1:
        return int(int(width * 12 + 0.5) / 7 * 256) / 256
    return int((int(width * 7 + 0.5) + 5) / 7 * 256) / 256


class _Style:
    """The cell formats of a workbook, as ``styles.xml``."""

    def __init__(self) -> None:
        self.fonts: list[tuple[bool, float]] = [(False, 11)]
        self.borders: list[bool] = [False]
        self.formats: dict[str, int] = {}
        self.xfs: list[tuple[int, int, int, bool, str | None]] = [(0, 0, 0, False, None)]
        self.index: dict[tuple[Any, ...], int] = {}

    def add(
        self,
        bold: bool,
        size: float,
        num_format: str | None,
        bottom: bool,
        wrap: bool,
        valign: str | None,
    ) -> int:
        key = (bold, size, num_format, bottom, wrap, valign)
        if key not in self.index:
            font = (bold, size)
            if font not in self.fonts:
                self.fonts.append(font)
            if bottom not in self.borders:
                self.borders.append(bottom)
            fmt_id = 0
            if num_format is not None:
                fmt_id = BUILTIN_FORMATS.get(num_format) or self.formats.setdefault(
                    num_format, 164 + len(self.formats)
                )
            xf = (fmt_id, self.fonts.index(font), self.borders.index(bottom), wrap, valign)
            self.index[key] = len(self.xfs)
            self.xfs.append(xf)
        return self.index[key]

    def xml(self) -> str:
        parts = [_HEAD, f'<styleSheet xmlns="{_MAIN}">']
        if self.formats:
            parts.append(f'<numFmts count="{len(self.formats)}">')
            parts += (
                f"<numFmt numFmtId={quoteattr(str(i))} formatCode={quoteattr(code)}/>"
                for code, i in self.formats.items()
            )
            parts.append("</numFmts>")
        parts.append(f'<fonts count="{len(self.fonts)}">')
        for bold, size in self.fonts:
            b = "<b/>" if bold else ""
            parts.append(
                f'<font>{b}<sz val="{size:g}"/><name val="Calibri"/><family val="2"/></font>'
            )
        parts.append("</fonts>")
        parts.append(
            '<fills count="2"><fill><patternFill patternType="none"/></fill>'
            '<fill><patternFill patternType="gray125"/></fill></fills>'
        )
        parts.append(f'<borders count="{len(self.borders)}">')
        for bottom in self.borders:
            low = '<bottom style="thin"><color auto="1"/></bottom>' if bottom else "<bottom/>"
            parts.append(f"<border><left/><right/><top/>{low}<diagonal/></border>")
        parts.append("</borders>")
        parts.append(
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
            "</cellStyleXfs>"
        )
        parts.append(f'<cellXfs count="{len(self.xfs)}">')
        for fmt_id, font, border, wrap, valign in self.xfs:
            attrs = f'numFmtId="{fmt_id}" fontId="{font}" fillId="0" borderId="{border}" xfId="0"'
            if fmt_id:
                attrs += ' applyNumberFormat="1"'
            if font:
                attrs += ' applyFont="1"'
            if border:
                attrs += ' applyBorder="1"'
            if wrap or valign:
                align = (' wrapText="1"' if wrap else "") + (
                    f" vertical={quoteattr(valign)}" if valign else ""
                )
                parts.append(f'<xf {attrs} applyAlignment="1"><alignment{align}/></xf>')
            else:
                parts.append(f"<xf {attrs}/>")
        parts.append("</cellXfs>")
        parts.append(
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
            '<dxfs count="0"/><tableStyles count="0"/></styleSheet>'
        )
        return "".join(parts)


# The number formats every spreadsheet knows by id (ECMA-376 Part 1, 18.8.30).
BUILTIN_FORMATS = {"General": 0, "0": 1, "0.00": 2, "#,##0": 3, "#,##0.00": 4, "0%": 9, "0.00%": 10}


@dataclass(frozen=True)
class Field:
    """A column of :meth:`Sheet.records`: the rows' ``key``, the ``style`` of its numbers,
    what its numbers are divided by (None: numbers take the fallback) and whether its
    strings are written as they are (``text``) or take the fallback."""

    key: str
    style: int = 0
    divisor: float | None = 1
    text: bool = False


class Sheet:
    """A worksheet being written: rows in order (:meth:`row`), until the next sheet or the
    book's close."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._buffer: list[str] = []
        self._letters: list[str] = []
        self.next_row = 0  # the row (0-based) that :meth:`row` writes next
        self.closed = False

    def letters(self, count: int) -> list[str]:
        """The letters of the first ``count`` columns (``A``, ``B``, ...), for cell refs."""
        while len(self._letters) < count:
            self._letters.append(column_letter(len(self._letters)))
        return self._letters[:count]

    def skip(self, rows: int = 1) -> None:
        """Leave ``rows`` empty rows."""
        self.next_row += rows

    def row(
        self,
        values: Sequence[Any],
        styles: Sequence[int] | int = 0,
        *,
        height: float | None = None,
    ) -> None:
        """Write the next row: ``values`` from column A on, each with its style (one index
        for every cell, or one per value); ``height`` in points."""
        if self.closed:
            raise ValueError("this sheet is closed: a workbook writes one sheet at a time")
        n = self.next_row + 1
        if n > MAX_ROWS or len(values) > MAX_COLUMNS:
            raise ValueError("more rows or columns than a spreadsheet holds")
        self.next_row = n
        letters = self._letters if len(self._letters) >= len(values) else self.letters(len(values))
        if isinstance(styles, int):
            styles = (styles,) * len(values)
        if height is None:
            cells = [f'<row r="{n}">']
        else:
            cells = [f'<row r="{n}" ht="{height:g}" customHeight="1">']
        for col, value in enumerate(values):
            s = styles[col]
            kind = type(value)
            if kind is int:
                cells.append(f'<c r="{letters[col]}{n}" s="{s}"><v>{value}</v></c>')
            elif kind is float:
                if value - value == 0:  # neither NaN nor infinite
                    cells.append(f'<c r="{letters[col]}{n}" s="{s}"><v>{value!r}</v></c>')
                elif s:
                    cells.append(f'<c r="{letters[col]}{n}" s="{s}"/>')
            else:
                cells.append(self._cell(f"{letters[col]}{n}", s, value))
        cells.append("</row>")
        self._buffer.append("".join(cells))
        if len(self._buffer) >= _FLUSH_ROWS:
            self.flush()

    def raw_row(self, xml: str) -> None:
        """Write the next row as its ready ``<row r="N">...</row>`` XML, ``N`` being
        ``next_row + 1`` (for a caller that builds rows faster than :meth:`row` can: its
        cells made with :func:`text` and :meth:`letters`)."""
        if self.closed:
            raise ValueError("this sheet is closed: a workbook writes one sheet at a time")
        self.next_row += 1
        if self.next_row > MAX_ROWS:
            raise ValueError("more rows than a spreadsheet holds")
        self._buffer.append(xml)
        if len(self._buffer) >= _FLUSH_ROWS:
            self.flush()

    def records(
        self,
        rows: Iterable[dict[str, Any]],
        fields: Sequence[Field],
        fallback: Callable[[dict[str, Any], int], tuple[Any, int]],
        special: Container[str] = frozenset(),
    ) -> None:
        """Write a row for each of ``rows`` (dicts), a cell for each of ``fields``, the fast
        way: an ``int`` or ``float`` in a column with a ``divisor`` is written divided by it,
        a non-empty ``str`` not in ``special`` in a ``text`` column as it is; any other value
        is what ``fallback(row, column index)`` makes of it: ``(value, style)``, written as
        :meth:`row` would."""
        if self.closed:
            raise ValueError("this sheet is closed: a workbook writes one sheet at a time")
        letters = self.letters(len(fields))
        plan = [
            (col, f.key, letters[col], f.style, f.divisor or 0, f.text)
            for col, f in enumerate(fields)
        ]
        buffer, search, n = self._buffer, _SPECIAL.search, self.next_row
        for row in rows:
            n += 1
            if n > MAX_ROWS:
                raise ValueError("more rows than a spreadsheet holds")
            cells = [f'<row r="{n}">']
            for col, key, letter, s, divisor, plain in plan:
                raw: Any = row.get(key)
                kind = type(raw)
                if kind is int and divisor == 1:
                    cells.append(f'<c r="{letter}{n}" s="{s}"><v>{raw}</v></c>')
                    continue
                if (kind is int or kind is float) and divisor:
                    number = raw / divisor
                    if number - number == 0:
                        cells.append(f'<c r="{letter}{n}" s="{s}"><v>{number!r}</v></c>')
                        continue
                elif kind is str and plain and raw and raw not in special:
                    if search(raw) is None and raw == raw.strip():
                        cells.append(f'<c r="{letter}{n}" t="inlineStr"><is><t>{raw}</t></is></c>')
                    else:
                        cells.append(self._string(f"{letter}{n}", 0, raw))
                    continue
                value, style = fallback(row, col)
                cells.append(self._cell(f"{letter}{n}", style, value))
            cells.append("</row>")
            buffer.append("".join(cells))
            if len(buffer) >= _FLUSH_ROWS:
                self.flush()
        self.next_row = n

    @staticmethod
    def _string(ref: str, s: int, value: str) -> str:
        style = f' s="{s}"' if s else ""
        space = ' xml:space="preserve"' if value != value.strip() else ""
        return f'<c r="{ref}"{style} t="inlineStr"><is><t{space}>{text(value)}</t></is></c>'

    def _cell(self, ref: str, s: int, value: Any) -> str:
        """Any value but a plain int or finite float (which :meth:`row` writes itself)."""
        style = f' s="{s}"' if s else ""
        if isinstance(value, str):
            return self._string(ref, s, value)
        if value is None:
            return f'<c r="{ref}"{style}/>' if s else ""
        if isinstance(value, bool):
            return f'<c r="{ref}"{style} t="b"><v>{int(value)}</v></c>'
        if isinstance(value, date):
            return f'<c r="{ref}"{style}><v>{serial(value)!r}</v></c>'
        if isinstance(value, int | float):  # int and float subclasses (IntEnum, numpy)
            number = float(value)
            if math.isfinite(number):
                shown = str(int(value)) if isinstance(value, int) else repr(number)
                return f'<c r="{ref}"{style}><v>{shown}</v></c>'
            return f'<c r="{ref}"{style}/>' if s else ""
        try:  # Decimal, Fraction: numbers
            number = float(value)
        except (TypeError, ValueError):
            return self._string(ref, s, str(value))
        if math.isfinite(number):
            return f'<c r="{ref}"{style}><v>{number!r}</v></c>'
        return f'<c r="{ref}"{style}/>' if s else ""

    def flush(self) -> None:
        if self._buffer:
            self._stream.write("".join(self._buffer).encode("utf-8"))
            self._buffer.clear()

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self._stream.write(b"</sheetData></worksheet>")
            self._stream.close()
            self.closed = True


class Workbook:
    """An XLSX file being written (module docstring)."""

    def __init__(self, file: IO[bytes] | None = None) -> None:
        self._out: IO[bytes] = file if file is not None else io.BytesIO()
        self._zip = zipfile.ZipFile(self._out, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self._styles = _Style()
        self._sheets: list[str] = []
        self._sheet: Sheet | None = None

    def style(
        self,
        *,
        bold: bool = False,
        size: float = 11,
        num_format: str | None = None,
        bottom_border: bool = False,
        wrap: bool = False,
        valign: str | None = None,
    ) -> int:
        """The index of a cell format (the same index for the same format); ``0`` is the
        default. ``valign``: ``top``, ``center`` or ``bottom``."""
        return self._styles.add(bold, size, num_format, bottom_border, wrap, valign)

    def add_sheet(
        self,
        name: str,
        *,
        widths: Iterable[float | None] = (),
        freeze: tuple[int, int] | None = None,
    ) -> Sheet:
        """Close the open sheet, if any, and start the next one, ``name`` as the caller made
        it fit Excel (31 characters, no ``[]:*?/\\``, unique). ``widths``: each column's
        width in characters from column A on (None: the default); ``freeze``: the number of
        rows and columns that stay in view (``(3, 1)`` freezes above row 4 and left of B)."""
        if name in self._sheets:
            raise ValueError(f"two sheets named {name!r}")
        self._close_sheet()
        self._sheets.append(name)
        member = f"xl/worksheets/sheet{len(self._sheets)}.xml"
        stream = self._zip.open(member, "w")
        head = [_HEAD, f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">']
        selected = ' tabSelected="1"' if len(self._sheets) == 1 else ""
        rows, cols = freeze if freeze else (0, 0)
        if rows or cols:
            top_left = f"{column_letter(cols)}{rows + 1}"
            pane = "bottomRight" if rows and cols else ("bottomLeft" if rows else "topRight")
            split = (f' xSplit="{cols}"' if cols else "") + (f' ySplit="{rows}"' if rows else "")
            head.append(
                f'<sheetViews><sheetView{selected} workbookViewId="0">'
                f'<pane{split} topLeftCell="{top_left}" activePane="{pane}" state="frozen"/>'
                f'<selection pane="{pane}" activeCell="{top_left}" sqref="{top_left}"/>'
                "</sheetView></sheetViews>"
            )
        else:
            head.append(f'<sheetViews><sheetView{selected} workbookViewId="0"/></sheetViews>')
        head.append('<sheetFormatPr defaultRowHeight="15"/>')
        cols_xml = [
            f'<col min="{i}" max="{i}" width="{_width(w)!r}" customWidth="1"/>'
            for i, w in enumerate(widths, 1)
            if w is not None
        ]
        if cols_xml:
            head += ["<cols>", *cols_xml, "</cols>"]
        head.append("<sheetData>")
        stream.write("".join(head).encode("utf-8"))
        self._sheet = Sheet(stream)
        return self._sheet

    def _close_sheet(self) -> None:
        if self._sheet is not None:
            self._sheet.close()
            self._sheet = None

    def close(self) -> bytes:
        """Finish the file; its bytes when the book writes to its own buffer (else ``b""``)."""
        self._close_sheet()
        if not self._sheets:
            self.add_sheet("Sheet1")
            self._close_sheet()
        count = len(self._sheets)
        sheets = "".join(
            f'<sheet name="{_attr(name)}" sheetId="{i}" r:id="rId{i}"/>'
            for i, name in enumerate(self._sheets, 1)
        )
        write = self._zip.writestr
        write(
            "xl/workbook.xml",
            f'{_HEAD}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
            '<bookViews><workbookView activeTab="0"/></bookViews>'
            f"<sheets>{sheets}</sheets></workbook>",
        )
        rels = "".join(
            f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, count + 1)
        )
        rels += f'<Relationship Id="rId{count + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
        write(
            "xl/_rels/workbook.xml.rels",
            f'{_HEAD}<Relationships xmlns="{_PKG_REL}">{rels}</Relationships>',
        )
        write("xl/styles.xml", self._styles.xml())
        write(
            "docProps/core.xml",
            f"{_HEAD}<cp:coreProperties"
            ' xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"'
            ' xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>Pulpit</dc:creator>'
            "</cp:coreProperties>",
        )
        write(
            "docProps/app.xml",
            f"{_HEAD}<Properties"
            ' xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
            "<Application>Pulpit</Application></Properties>",
        )
        write(
            "_rels/.rels",
            f'{_HEAD}<Relationships xmlns="{_PKG_REL}">'
            f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
            '<Relationship Id="rId2"'
            ' Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"'
            ' Target="docProps/core.xml"/>'
            f'<Relationship Id="rId3" Type="{_REL}/extended-properties" Target="docProps/app.xml"/>'
            "</Relationships>",
        )
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml"'
            ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for i in range(1, count + 1)
        )
        write(
            "[Content_Types].xml",
            f'{_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels"'
            ' ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml"'
            ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml"'
            ' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/docProps/core.xml"'
            ' ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
            '<Override PartName="/docProps/app.xml"'
            ' ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
            f"{overrides}</Types>",
        )
        self._zip.close()
        return self._out.getvalue() if isinstance(self._out, io.BytesIO) else b""

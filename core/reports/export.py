"""A report as a file a spreadsheet opens: CSV and XLSX.

Both take the :class:`~core.reports.base.Report` every page and the API show, and a
``gettext`` for the labels (the console's language; the API's English without one).

CSV (for Excel and for scripts):
- UTF-8 with a byte order mark, so Excel reads Polish letters; lines end in CRLF (RFC 4180).
- Fields separated by a semicolon: Excel in Polish (and most of Europe) splits on ``;``,
  because ``,`` is its decimal separator; Python, LibreOffice and pandas are told
  ``sep=";"`` once. The decimal separator is the caller's (``decimal=","`` for Polish,
  ``"."`` otherwise): a number Excel does not read as a number is text it cannot sum.
- One header row of translated labels, then a row per group, then the totals row (first
  column "Total"). Durations are whole minutes (the header says "(min)"): exact, and no
  decimal separator to get wrong. Percent is 0-100 with one decimal; money is in major
  units with two decimals (the header names the currency); dates are ``YYYY-MM-DD``.
- Text that a spreadsheet would take for a formula (``=``, ``+``, ``-``, ``@``, tab, CR at
  the start: a ticket's subject comes from a stranger's mail) is prefixed with ``'``
  (OWASP "CSV injection").

XLSX (for people): real typed cells, written by our own streaming writer
(:mod:`core.reports.xlsx`): XlsxWriter spent about 5 µs a cell, 5-8 s for a year's work time
by ticket (200,000 rows); each row written as one string into the deflated zip takes about
1.2 s for the same. The column widths come first in the file, so they are measured in a
first pass over the rows and the rows written in a second.
- A title row (title, caption, period) and a blank row above the header; panes are frozen
  under the header and right of the first column, so both stay in view.
- Durations are hours as decimal numbers (``0.00``; 90 minutes is 1.5), the unit a
  bookkeeper multiplies by an hourly rate; the header says "(h)". Percent is a fraction
  shown as ``0.0%``; money is major units shown as ``#,##0.00``; dates are date cells;
  counts are integers. Text is always written as a string, never as a formula.
- A totals row in bold under the rows; column widths from the longest value.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

from core.errors import N_
from core.reports import backlog, sla, worktime, xlsx
from core.reports.base import Column, Period, Report

Gettext = Callable[[str], str]

CSV_DELIMITER = ";"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv"  # Litestar adds "; charset=utf-8"
FORMATS = ("csv", "xlsx")
TOTAL = N_("Total")
# What the reports put in a cell as a catalogue entry rather than a name: a clock's outcome,
# the group of tickets with no assignee, type, client or contract, the totals' label.
CELL_WORDS = frozenset(
    {
        *(label for _, label, _ in backlog.BUCKETS),
        *sla.OUTCOMES,
        sla.UNASSIGNED,
        sla.NO_TYPE,
        worktime.NO_CLIENT,
        worktime.NO_CONTRACT,
        worktime.NO_WORK_TYPE,
        TOTAL,
    }
)


def _same(message: str) -> str:
    return message


# --- Labels ----------------------------------------------------------------------------------


def header(column: Column, report: Report, gettext: Gettext, *, duration_unit: str) -> str:
    """A column's label in the reader's language, with its unit where the number needs one."""
    label = gettext(column.label)
    if column.kind == "minutes":
        return f"{label} ({duration_unit})"
    if column.kind == "percent":
        return f"{label} (%)"
    if column.kind == "money" and report.currency:
        return f"{label} ({report.currency})"
    return label


def _rows(report: Report) -> Iterable[tuple[bool, dict[str, Any]]]:
    for row in report.rows:
        yield False, row
    if report.totals is not None:
        yield True, report.totals


def cell_value(
    report: Report, row: dict[str, Any], i: int, gettext: Gettext, *, total: bool = False
) -> Any:
    """A row's value in column ``i``; the words a report writes as catalogue entries
    (:data:`CELL_WORDS`) in the reader's language, and "Total" in the totals row's first
    cell where the report left it empty."""
    value = row.get(report.columns[i].key)
    if total and i == 0 and value in (None, ""):
        return gettext(TOTAL)
    if isinstance(value, str) and value in CELL_WORDS:
        return gettext(value)
    return value


def filename(report: Report, extension: str) -> str:
    """``pulpit-sla-2026-03.xlsx`` for a whole month, ``pulpit-sla-2026-01-01_2026-03-31.csv``
    otherwise; a statement adds its client, in ASCII letters."""
    parts = ["pulpit", report.name]
    if report.name == "statement" and report.caption:
        slug = re.sub(r"[^a-z0-9]+", "-", report.caption.lower()).strip("-")
        if slug:
            parts.append(slug[:40])
    period = report.period
    if period is not None:
        if period == Period.month_of(period.start):
            parts.append(period.start.strftime("%Y-%m"))
        else:
            parts.append(f"{period.start.isoformat()}_{period.end.isoformat()}")
    return "-".join(parts) + "." + extension


# --- CSV -------------------------------------------------------------------------------------


def _csv_text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def _csv_cell(kind: str, value: Any, decimal: str) -> str:
    if value is None:
        return ""
    if kind == "percent":
        return f"{float(value):.1f}".replace(".", decimal)
    if kind == "money":
        return f"{int(value) / 100:.2f}".replace(".", decimal)
    if kind in ("count", "minutes") and isinstance(value, int | float):
        return str(round(value))
    if isinstance(value, date):
        return value.isoformat()
    return _csv_text(str(value))


def to_csv(report: Report, gettext: Gettext | None = None, *, decimal: str = ".") -> bytes:
    """The report as CSV bytes (see the module docstring for the choices)."""
    gettext = gettext or _same
    out = io.StringIO()
    writer = csv.writer(out, delimiter=CSV_DELIMITER, lineterminator="\r\n")
    writer.writerow(
        _csv_text(header(c, report, gettext, duration_unit="min")) for c in report.columns
    )
    for is_total, row in _rows(report):
        cells = []
        for i, column in enumerate(report.columns):
            value = cell_value(report, row, i, gettext, total=is_total)
            cells.append(_csv_cell(column.kind, value, decimal))
        writer.writerow(cells)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# --- XLSX ------------------------------------------------------------------------------------

HEADER_ROW = 2  # row 0: title and period; row 1: blank; row 2: the header
NUMBER_FORMATS = {
    "count": "0",
    "minutes": "0.00",
    "percent": "0.0%",
    "money": "#,##0.00",
    "date": "yyyy-mm-dd",
}


def _xlsx_value(kind: str, value: Any) -> Any:
    """The cell's typed value: hours for minutes, a fraction for percent, major units for
    money, a date for a date; None for an empty cell."""
    if value is None or value == "":
        return None
    if kind == "minutes":
        return value / 60
    if kind == "percent":
        return value / 100
    if kind == "money":
        return value / 100
    if kind == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return value
    return value


def to_xlsx(report: Report, gettext: Gettext | None = None, *more: Report) -> bytes:
    """The report as an XLSX workbook, one sheet per report (a statement adds its entries:
    ``more``); see the module docstring."""
    gettext = gettext or _same
    book = xlsx.Workbook()
    styles = {
        "bold": book.style(bold=True),
        "title": book.style(bold=True, size=13),
        "head": book.style(bold=True, bottom_border=True, wrap=True, valign="top"),
    }
    numbers = {
        (kind, total): book.style(num_format=fmt, bold=total)
        for kind, fmt in NUMBER_FORMATS.items()
        for total in (False, True)
    }
    names: set[str] = set()
    for one in (report, *more):
        name = _sheet_name(gettext(one.title))
        while name in names:  # Excel refuses two sheets of one name
            name = name[:29] + f" {len(names) + 1}"
        names.add(name)
        _sheet(book, name, one, gettext, styles, numbers)
    return book.close()


_SCALE = {"minutes": 60, "percent": 100, "money": 100}  # _xlsx_value of a number
_TEXT = frozenset({"text", "month"})  # the kinds whose strings are written as they are


def _sheet(
    book: xlsx.Workbook,
    name: str,
    report: Report,
    gettext: Gettext,
    styles: dict[str, int],
    numbers: dict[tuple[str, bool], int],
) -> None:
    title = gettext(report.title)
    if report.caption:
        title += f" · {report.caption}"
    if report.period is not None:
        title += f" · {report.period}"
    labels = [header(c, report, gettext, duration_unit="h") for c in report.columns]

    def typed(row: dict[str, Any], col: int, total: bool = False) -> tuple[Any, int]:
        """A cell the general way (module docstring): its typed value and style."""
        kind = report.columns[col].kind
        value = _xlsx_value(kind, cell_value(report, row, col, gettext, total=total))
        fmt = numbers.get((kind, total), 0)
        if value is None:
            return None, fmt or (styles["bold"] if total else 0)
        if isinstance(value, date):
            return value, numbers[("date", total)]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return str(value), styles["bold"] if total else 0
        return value, fmt or (styles["bold"] if total else 0)

    # The widths come before the rows (the file says them first): the label's, and the
    # longest value's, a number's being that of the column's largest or smallest (the
    # formatted length grows with the size). A first pass over the rows, column by column.
    widths = []
    rows = report.rows
    for col, column in enumerate(report.columns):
        width = min(max(len(labels[col]) * 0.9, 8), 40)
        plain = column.kind in _TEXT
        values = [row.get(column.key) for row in rows]
        found = [v for v in values if type(v) is int or type(v) is float]
        if found:
            scale = _SCALE.get(column.kind, 1)
            for value in (max(found) / scale, min(found) / scale):
                width = max(width, len(f"{value:,.2f}") + 2)
        texts = [v for v in values if type(v) is str and v and v not in CELL_WORDS] if plain else []
        if texts:
            width = min(max(width, max(map(len, texts)) + 2), 60)
        others = []  # what the writing leaves to typed(), typed here too to be measured
        if len(found) + len(texts) < len(values):
            others = [
                typed(rows[i], col)[0]
                for i, v in enumerate(values)
                if not (
                    type(v) is int
                    or type(v) is float
                    or (plain and type(v) is str and v and v not in CELL_WORDS)
                )
            ]
        if report.totals is not None:
            others.append(typed(report.totals, col, True)[0])
        for value in others:
            if isinstance(value, date):
                width = max(width, 11)
            elif isinstance(value, str):
                width = min(max(width, len(value) + 2), 60)
            elif value is not None:
                width = max(width, len(f"{value:,.2f}") + 2)
        widths.append(width)

    sheet = book.add_sheet(name, widths=widths, freeze=(HEADER_ROW + 1, 1))
    sheet.row([title], styles["title"])
    sheet.skip(HEADER_ROW - 1)
    sheet.row(labels, styles["head"], height=30)
    # The rows, a year by ticket being 1,200,000 cells: a number in a number column and text
    # in a text column written straight away, everything else (typed) the general way.
    fields = [
        xlsx.Field(
            column.key,
            numbers.get((column.kind, False), 0),
            None if column.kind == "date" else _SCALE.get(column.kind, 1),
            column.kind in _TEXT,
        )
        for column in report.columns
    ]
    sheet.records(report.rows, fields, typed, CELL_WORDS)
    if report.totals is not None:
        cells = [typed(report.totals, col, True) for col in range(len(report.columns))]
        sheet.row([value for value, _ in cells], [style for _, style in cells])


def _sheet_name(title: str) -> str:
    """Excel's limits on a sheet's name: 31 characters, none of ``[]:*?/\\``."""
    return re.sub(r"[\[\]:*?/\\]", " ", title)[:31] or "Report"


def render(
    report: Report,
    fmt: str,
    gettext: Gettext | None = None,
    *,
    decimal: str = ".",
    more: Sequence[Report] = (),
) -> bytes:
    """``fmt`` is ``csv`` (the one report) or ``xlsx`` (a sheet for it and each of ``more``)."""
    if fmt == "csv":
        return to_csv(report, gettext, decimal=decimal)
    return to_xlsx(report, gettext, *more)


def media_type(fmt: str) -> str:
    return CSV_TYPE if fmt == "csv" else XLSX_TYPE

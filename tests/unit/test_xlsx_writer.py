"""The streaming XLSX writer (core/reports/xlsx.py), read back with openpyxl and checked as a
zip of well-formed XML parts."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from datetime import date, datetime

import openpyxl
import pytest

from core.reports import xlsx


def _book() -> bytes:
    book = xlsx.Workbook()
    bold = book.style(bold=True)
    hours = book.style(num_format="0.00")
    hours_bold = book.style(num_format="0.00", bold=True)
    day = book.style(num_format="yyyy-mm-dd")
    percent = book.style(num_format="0.0%")
    head = book.style(bold=True, bottom_border=True, wrap=True, valign="top")
    assert book.style(num_format="0.00") == hours  # one index for one format
    sheet = book.add_sheet("Work & <time>", widths=[30, None, 12], freeze=(3, 1))
    sheet.row(["Title"], book.style(bold=True, size=13))
    sheet.skip()
    sheet.row(["Ticket", "Hours", "Day", "Share"], head, height=30)
    sheet.row(
        ["a & b <c> \x01\x1f\ud800 end", 1.5, date(2026, 3, 2), 0.875], [0, hours, day, percent]
    )
    sheet.row(
        ['=HYPERLINK("http://x")', None, datetime(2026, 3, 2, 12), None], [0, hours, 0, percent]
    )
    sheet.row(["  spaced  ", float("nan"), True, 3], [0, hours, 0, 0])
    sheet.records(
        [{"key": "#1 Drukarka", "minutes": 90}, {"key": "Unassigned", "minutes": "x"}],
        [xlsx.Field("key", 0, text=True), xlsx.Field("minutes", hours, 60)],
        lambda row, col: ("Nieprzypisane" if col == 0 else None, bold if col == 0 else hours),
        special={"Unassigned"},
    )
    sheet.row(["Total", 3], [bold, hours_bold])
    second = book.add_sheet("Entries")
    second.row([1, 2.25, "x"])
    with pytest.raises(ValueError):
        sheet.row(["closed"])  # the first sheet closed when the second opened
    return book.close()


def test_the_file_is_a_sound_zip_of_well_formed_xml() -> None:
    with zipfile.ZipFile(io.BytesIO(_book())) as z:
        assert z.testzip() is None
        names = z.namelist()
        assert {"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/styles.xml"} <= set(
            names
        )
        assert {"xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"} <= set(names)
        for name in names:
            ET.fromstring(z.read(name))  # raises on a broken part


def test_openpyxl_reads_values_types_and_formats() -> None:
    book = openpyxl.load_workbook(io.BytesIO(_book()))
    assert book.sheetnames == ["Work & <time>", "Entries"]
    sheet = book.worksheets[0]
    assert sheet["A1"].value == "Title" and sheet["A1"].font.b and sheet["A1"].font.sz == 13
    assert sheet["A2"].value is None
    assert sheet["B3"].font.b and sheet["B3"].alignment.wrap_text
    assert sheet["B3"].alignment.vertical == "top" and sheet["B3"].border.bottom.style == "thin"
    assert sheet.row_dimensions[3].height == 30
    # Specials survive as text; forbidden characters as Excel's _xHHHH_ escapes.
    assert sheet["A4"].value == "a & b <c> _x0001__x001F__xD800_ end"
    assert sheet["B4"].value == 1.5 and sheet["B4"].number_format == "0.00"
    assert isinstance(sheet["C4"].value, datetime) and sheet["C4"].value.date() == date(2026, 3, 2)
    assert sheet["C4"].number_format == "yyyy-mm-dd" and sheet["C4"].is_date
    assert abs(sheet["D4"].value - 0.875) < 1e-12 and sheet["D4"].number_format == "0.0%"
    # Formula-looking text is a string, not a formula.
    assert sheet["A5"].data_type == "s" and sheet["A5"].value == '=HYPERLINK("http://x")'
    # A blank with a style keeps it.
    assert sheet["B5"].value is None and sheet["B5"].number_format == "0.00"
    assert sheet["C5"].value == 46083.5  # noon as half a day, no date format
    assert sheet["A6"].value == "  spaced  "  # xml:space="preserve"
    assert sheet["B6"].value is None  # NaN is blank
    assert sheet["C6"].value is True and sheet["D6"].value == 3
    # records(): the fast path and the fallback.
    assert sheet["A7"].value == "#1 Drukarka" and sheet["B7"].value == 1.5
    assert sheet["B7"].number_format == "0.00"
    assert sheet["A8"].value == "Nieprzypisane" and sheet["A8"].font.b
    assert sheet["B8"].value is None
    assert sheet["A9"].font.b and sheet["B9"].font.b and sheet["B9"].number_format == "0.00"
    assert sheet.freeze_panes == "B4"
    assert 30 < sheet.column_dimensions["A"].width < 31
    assert 12 < sheet.column_dimensions["C"].width < 13
    entries = book.worksheets[1]
    assert [c.value for c in entries[1]] == [1, 2.25, "x"]
    assert entries.freeze_panes is None


def test_a_literal_escape_in_text_is_itself_escaped() -> None:
    assert xlsx.text("_x0041_") == "_x005F_x0041_"
    assert xlsx.text("plain") == "plain"
    assert xlsx.text("a\tb\nc\r") == "a\tb\nc\r"  # allowed in XML 1.0


def test_column_letters_and_serial_days() -> None:
    assert [xlsx.column_letter(i) for i in (0, 25, 26, 701, 702, 16383)] == [
        "A",
        "Z",
        "AA",
        "ZZ",
        "AAA",
        "XFD",
    ]
    assert xlsx.serial(date(1900, 3, 1)) == 61
    assert xlsx.serial(date(2026, 3, 2)) == 46083


def test_two_sheets_of_one_name_are_refused() -> None:
    book = xlsx.Workbook()
    book.add_sheet("A")
    with pytest.raises(ValueError):
        book.add_sheet("A")
    assert openpyxl.load_workbook(io.BytesIO(book.close())).sheetnames == ["A"]

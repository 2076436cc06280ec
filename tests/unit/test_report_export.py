"""CSV and XLSX exports and the SVG charts, on reports built by hand (core/reports/export.py,
web/charts.py): the XLSX is opened with openpyxl, the CSV parsed with the csv module."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import date

import openpyxl

from core.reports.base import Column, Period, Report
from core.reports.export import filename, to_csv, to_xlsx
from web.charts import bar_chart, pair_chart

POLISH = {
    "Client": "Klient",
    "Tickets": "Zgłoszenia",
    "Work time": "Czas pracy",
    "Compliance": "Zgodność",
    "Amount": "Kwota",
    "Total": "Razem",
    "Created": "Utworzone",
}


def _report() -> Report:
    return Report(
        name="worktime",
        title="Work time",
        columns=[
            Column("key", "Client", "text"),
            Column("tickets", "Tickets", "count"),
            Column("minutes", "Work time", "minutes"),
            Column("compliance", "Compliance", "percent"),
            Column("amount", "Amount", "money"),
            Column("created", "Created", "date"),
        ],
        rows=[
            {
                "key": "Żółw sp. z o.o.",
                "id": 1,
                "tickets": 3,
                "minutes": 90,
                "compliance": 87.5,
                "amount": 123450,
                "created": "2026-03-02",
            },
            {
                "key": '=HYPERLINK("http://x")',
                "id": 2,
                "tickets": 1,
                "minutes": 15,
                "compliance": None,
                "amount": 0,
                "created": "2026-03-31",
            },
        ],
        totals={"key": None, "tickets": 4, "minutes": 105, "compliance": 87.5, "amount": 123450},
        period=Period(date(2026, 3, 1), date(2026, 3, 31)),
        group_by="client",
        currency="PLN",
    )


def test_csv_is_excel_friendly_utf8_with_semicolons_and_translated_header() -> None:
    data = to_csv(_report(), POLISH.get, decimal=",")  # type: ignore[arg-type]
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == [
        "Klient",
        "Zgłoszenia",
        "Czas pracy (min)",
        "Zgodność (%)",
        "Kwota (PLN)",
        "Utworzone",
    ]
    assert rows[1] == ["Żółw sp. z o.o.", "3", "90", "87,5", "1234,50", "2026-03-02"]
    # A formula from a stranger's subject stays text; a missing percent is empty.
    assert rows[2][0] == '\'=HYPERLINK("http://x")'
    assert rows[2][3] == ""
    assert rows[3][:3] == ["Razem", "4", "105"]


def test_csv_in_english_uses_a_decimal_point() -> None:
    rows = list(csv.reader(io.StringIO(to_csv(_report()).decode("utf-8-sig")), delimiter=";"))
    assert rows[0][2] == "Work time (min)"
    assert rows[1][3:5] == ["87.5", "1234.50"]
    assert rows[3][0] == "Total"


def test_xlsx_has_typed_cells_a_header_and_frozen_panes() -> None:
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(_report(), POLISH.get)))  # type: ignore[arg-type]
    sheet = book.active
    assert "Czas pracy" in sheet["A1"].value and "2026-03-01" in sheet["A1"].value
    header = [c.value for c in sheet[3]]
    assert header == [
        "Klient",
        "Zgłoszenia",
        "Czas pracy (h)",
        "Zgodność (%)",
        "Kwota (PLN)",
        "Utworzone",
    ]
    assert sheet.freeze_panes == "B4"
    first = [c.value for c in sheet[4]]
    assert first[0] == "Żółw sp. z o.o."
    assert first[1] == 3 and isinstance(first[1], int)
    assert first[2] == 1.5  # 90 minutes as hours
    assert sheet["C4"].number_format == "0.00"
    assert abs(first[3] - 0.875) < 1e-9 and sheet["D4"].number_format == "0.0%"
    assert first[4] == 1234.5 and sheet["E4"].number_format == "#,##0.00"
    assert first[5].date() == date(2026, 3, 2)
    # Text that looks like a formula is a string cell, not a formula.
    assert sheet["A5"].data_type == "s" and sheet["A5"].value.startswith("=HYPERLINK")
    assert sheet["D5"].value is None
    totals = [c.value for c in sheet[6]]
    assert totals[:3] == ["Razem", 4, 1.75]
    assert sheet["A6"].font.b
    assert sheet.column_dimensions["A"].width > 10


def test_filenames_name_the_report_and_its_period() -> None:
    report = _report()
    assert filename(report, "xlsx") == "pulpit-worktime-2026-03.xlsx"
    report.period = Period(date(2026, 1, 1), date(2026, 3, 15))
    assert filename(report, "csv") == "pulpit-worktime-2026-01-01_2026-03-15.csv"
    report.name, report.caption = "statement", "Żółw Sp. z o.o."
    assert filename(report, "csv").startswith("pulpit-statement-")


def test_bar_chart_is_labelled_svg_with_values_as_text() -> None:
    svg = bar_chart(
        "c1",
        "Compliance per month",
        "The table below has the same figures.",
        [("2026-01", 95.0), ("2026-02", None), ("<b>", 50.0)],
        fmt=lambda v: f"{v:.0f}%",
        axis_label="Compliance",
        top=100,
    )
    root = ET.fromstring(str(svg))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img"
    assert root.find(f"{ns}title").text == "Compliance per month"  # type: ignore[union-attr]
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "95%" in texts and "50%" in texts and "–" in texts and "Compliance" in texts
    assert "<b>" not in str(svg).replace("&lt;b&gt;", "")
    assert "style=" not in str(svg)


def test_pair_chart_tells_series_apart_by_pattern_and_legend() -> None:
    svg = pair_chart(
        "c2",
        "Arrivals and closures per week",
        "desc",
        ["2026-W10", "2026-W11"],
        [("Arrivals", [3, 5]), ("Closures", [2, 0])],
        fmt=lambda v: f"{v:.0f}",
        axis_label="Tickets",
    )
    root = ET.fromstring(str(svg))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f"{ns}defs/{ns}pattern") is not None
    fills = {r.get("fill") for r in root.iter(f"{ns}rect")}
    assert "url(#c2-hatch)" in fills
    # A text's own words, without its <title> (the full label, for a pointer's hover).
    texts = [(t.text or "") + "".join(c.tail or "" for c in t) for t in root.iter(f"{ns}text")]
    assert {"Arrivals", "Closures", "W10", "5"} <= set(texts)
    assert "0" not in texts[-6:]  # a zero closure has no number over it
    titles = {t.text for t in root.iter(f"{ns}title")}
    assert "2026-W10" in titles

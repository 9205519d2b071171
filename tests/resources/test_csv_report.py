"""Rejects reports echo untrusted values into a file that is opened in a spreadsheet."""

import csv
import io

import pytest

from resources.csv_report import MAX_CELL_CHARS, csv_report, safe_cell


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                                   "\tvalue", "\rvalue"])
def test_formula_cells_are_neutralised(value):
    (header, row) = list(csv.reader(io.StringIO(csv_report(["reason"], [[value]]).decode(), newline="")))
    assert header == ["reason"] and row == ["'" + value]


def test_text_is_bounded_and_plain_cells_and_numbers_pass():
    assert safe_cell("plain text, with = inside") == "plain text, with = inside"
    assert safe_cell(-3) == -3 and safe_cell(2.5) == 2.5 and safe_cell(None) == ""
    long = safe_cell("x" * 900_000)
    assert len(long) == MAX_CELL_CHARS and long.endswith("…")
    assert safe_cell("=" + "x" * 1000).startswith("'=") and len(safe_cell("=" + "x" * 1000)) == MAX_CELL_CHARS + 1
    rows = list(csv.reader(io.StringIO(csv_report(["row", "reason"], [[7, "line\nbreak, \"quoted\""]]).decode(),
                                       newline="")))
    assert rows[1] == ["7", "line\nbreak, \"quoted\""]

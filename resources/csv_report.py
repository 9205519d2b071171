"""CSV reports written back to the people who sent the input (drop rejects, campaign rejects).

Their cells echo untrusted values, and the report is opened in a spreadsheet: a cell that starts with a
formula character is neutralised with a leading single quote (OWASP "CSV injection"), and every text cell
is cut to a bounded length so one huge field cannot bloat the report.
"""

import csv
import io
from collections.abc import Iterable, Sequence

MAX_CELL_CHARS = 300
ELLIPSIS = "…"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def bounded(text: str, limit: int = MAX_CELL_CHARS) -> str:
    """`text` cut to at most `limit` characters, with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def safe_cell(value: object, limit: int = MAX_CELL_CHARS) -> object:
    """A cell a spreadsheet shows as text: numbers pass as they are, text is bounded and never a formula."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = bounded("" if value is None else str(value), limit)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_report(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 CSV with a header row; every cell goes through `safe_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(name) for name in header])
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue().encode()

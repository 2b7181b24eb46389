"""CSV downloads of staff tables, safe to open in a spreadsheet."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web

# one escaping rule for every CSV/XLSX the service writes (formula injection)
from bot.core.cells import cell, csv_text  # noqa: E402,F401  (re-exported)


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> web.Response:
    """UTF-8 with a BOM so Excel shows Chinese correctly."""
    body = "\ufeff" + csv_text(header, rows)
    safe = "".join(c for c in filename if c.isalnum() or c in "-_.") or "export.csv"
    return web.Response(
        body=body.encode("utf-8"),
        headers={"Content-Type": "text/csv; charset=utf-8", "Content-Disposition": f'attachment; filename="{safe}"'},
    )

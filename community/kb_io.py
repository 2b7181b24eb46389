"""Knowledge base import and export (YAML, CSV or XLSX), idempotent, with line-numbered errors."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator
from tortoise.transactions import in_transaction

from bot.core.cells import csv_text, unescape, xlsx_bytes
from community.knowledge_admin.models import KnowledgeVersion
from community.knowledge_admin.service import next_number, snapshot
from community.models import STATUSES, KnowledgeItem

LOCALES = ("zh_CN", "zh_TW", "en")
FIELDS = ("title", "variants", "answer", "category", "sms_code", "difficulty", "tags", "status", "is_notice")


class ItemRow(BaseModel):
    """One knowledge item in one locale, as a file states it."""

    key: str = Field(min_length=1, max_length=96, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    locale: str = "zh_CN"
    title: str = Field(min_length=1, max_length=255)
    variants: list[str] = Field(default_factory=list)
    answer: str = Field(min_length=1)
    category: str = ""
    sms_code: str | None = Field(default=None, max_length=16)
    difficulty: int = Field(default=1, ge=1, le=5)
    tags: list[str] = Field(default_factory=list)
    status: str = "published"
    is_notice: bool = False

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        if v not in LOCALES:
            raise ValueError(f"locale must be one of {', '.join(LOCALES)}")
        return v

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        return v

    @field_validator("sms_code")
    @classmethod
    def _code(cls, v: str | None) -> str | None:
        if v is None or not str(v).strip():
            return None
        v = str(v).strip().upper()
        if not v.isalnum() or not v.isascii():
            raise ValueError("sms_code must be letters and digits")
        return v

    @field_validator("title", "answer", "category", mode="before")
    @classmethod
    def _strip(cls, v: object) -> object:
        return v.strip() if isinstance(v, str) else v

    @field_validator("variants", "tags")
    @classmethod
    def _clean(cls, v: list[str]) -> list[str]:
        return [str(x).strip() for x in v if str(x).strip()]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    changed_items: list[KnowledgeItem] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, rejected {len(self.rejected)}"
        )


def _error_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "row"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _yaml_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, row-or-error) for each item/locale block of a YAML file."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        yield (mark.line + 1 if mark else 0), f"invalid YAML: {getattr(exc, 'problem', exc)}"
        return
    if root is None:
        return
    if not isinstance(root, yaml.SequenceNode):
        yield root.start_mark.line + 1, "the file must be a list of items"
        return
    for node in root.value:
        line = node.start_mark.line + 1
        data = yaml.safe_load(yaml.serialize(node))
        if not isinstance(data, dict):
            yield line, "an item must be a mapping"
            continue
        if "notice" in data:
            data["is_notice"] = bool(data.pop("notice"))
        common = {k: v for k, v in data.items() if k not in LOCALES}
        blocks = {k: v for k, v in data.items() if k in LOCALES}
        if not blocks:  # flat form: one locale per entry
            yield line, data
            continue
        for locale, block in blocks.items():
            if not isinstance(block, dict):
                yield line, f"{locale}: must be a mapping with title, variants, answer"
                continue
            yield line, {**common, **block, "locale": locale}


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text))
    # our export escapes cells a spreadsheet would run as formulas ('=...): read them back as written
    rows = ((reader.line_num, {k: unescape(v) if isinstance(v, str) else v for k, v in row.items()}) for row in reader)
    yield from _flat_rows(reader.fieldnames, rows)


def _xlsx_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """The first sheet of a workbook, laid out like the CSV (header row first)."""
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile/XML errors of a damaged or non-XLSX file
        yield 1, f"not a readable XLSX workbook ({type(exc).__name__})"
        return
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None) or ()
        names = [str(h).strip() if h is not None else "" for h in header]

        def cell(v: Any) -> str:
            if v is None:
                return ""
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            return str(v)

        body = (
            (n, dict(zip(names, map(cell, r))))
            for n, r in enumerate(rows, start=2)
            if any(v is not None and str(v).strip() for v in r)
        )
        yield from _flat_rows(names, body)
    finally:
        wb.close()


def _flat_rows(
    fieldnames: Any, rows: Iterable[tuple[int, dict[str, Any]]]
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """CSV and XLSX rows: one item per row, lists joined with "|"."""
    if not fieldnames or "key" not in fieldnames:
        yield 1, "the file needs a header row with at least key,title,answer"
        return
    for line, row in rows:
        data: dict[str, Any] = {k: (v or "").strip() for k, v in row.items() if k}
        for listy in ("variants", "tags"):
            data[listy] = [p for p in data.get(listy, "").split("|") if p.strip()]
        if not data.get("difficulty"):
            data.pop("difficulty", None)
        if not data.get("locale"):
            data.pop("locale", None)
        if not data.get("status"):
            data.pop("status", None)
        data["is_notice"] = str(data.get("is_notice", "")).lower() in ("1", "true", "yes")
        yield line, data


def parse_file(path: Path) -> list[tuple[int, ItemRow | str]]:
    """Rows of a YAML, CSV or XLSX file, each validated or with its error."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        source = _xlsx_rows(path)
    else:
        text = path.read_text(encoding="utf-8-sig")
        source = _csv_rows(text) if suffix == ".csv" else _yaml_rows(text)
    out: list[tuple[int, ItemRow | str]] = []
    for line, data in source:
        if isinstance(data, str):
            out.append((line, data))
            continue
        try:
            out.append((line, ItemRow.model_validate(data)))
        except ValidationError as exc:
            out.append((line, _error_text(exc)))
    return out


IMPORT_AUTHOR = "import"
RETIRED_REASON = "retired by a reviewer"


async def _record_version(item: KnowledgeItem, number: int) -> None:
    """The import as a version row, like a decided review step (a published import
    supersedes the published version before it)."""
    decided = item.status in ("published", "retired")
    if item.status == "published":
        await KnowledgeVersion.filter(item_id=item.id, state="published").update(state="superseded")
    await KnowledgeVersion.create(
        item=item,
        number=number,
        data=snapshot(item),
        state=item.status,
        author=IMPORT_AUTHOR,
        reason="imported from a file",
        decided_by=IMPORT_AUTHOR if decided else "",
        decided_at=datetime.now(timezone.utc) if decided else None,
    )


async def import_rows(
    rows: list[tuple[int, ItemRow | str]], progress: Callable[[int], None] | None = None
) -> ImportReport:
    """Create or update items; each created or updated item gets a ``KnowledgeVersion``
    (author ``import``). A retired item is never brought back by a file: its row is rejected
    unless it keeps the item retired (bringing it back is a reviewer's edit and approval)."""
    report = ImportReport()
    seen: set[tuple[str, str]] = set()
    codes: dict[str, str] = {
        code: key for key, code in await KnowledgeItem.exclude(sms_code=None).values_list("key", "sms_code")
    }
    for line, row in rows:
        if progress:
            progress(1)
        if isinstance(row, str):
            report.rejected.append((line, row))
            continue
        ident = (row.key, row.locale)
        if ident in seen:
            report.rejected.append((line, f"duplicate item {row.key} ({row.locale}) in this file"))
            continue
        seen.add(ident)
        if row.sms_code and codes.get(row.sms_code, row.key) != row.key:
            report.rejected.append((line, f"sms_code {row.sms_code} already belongs to {codes[row.sms_code]}"))
            continue
        values = row.model_dump(exclude={"key", "locale"})
        async with in_transaction():
            item = await KnowledgeItem.select_for_update().get_or_none(key=row.key, locale=row.locale)
            if item is None:
                item = await KnowledgeItem.create(key=row.key, locale=row.locale, **values)
                await _record_version(item, item.version)
                report.created += 1
                report.changed_items.append(item)
            elif item.status == "retired" and values["status"] != "retired":
                report.rejected.append((line, f"{row.key} ({row.locale}): {RETIRED_REASON}; not re-published"))
                continue
            elif any(getattr(item, f) != values[f] for f in FIELDS):
                for f in FIELDS:
                    setattr(item, f, values[f])
                item.version = await next_number(item)
                await item.save()
                await _record_version(item, item.version)
                report.updated += 1
                report.changed_items.append(item)
            else:
                report.unchanged += 1
        if row.sms_code:
            codes[row.sms_code] = row.key
    return report


def _flat_table(items: list[KnowledgeItem]) -> list[list[Any]]:
    """Header and one row per item: the CSV/XLSX layout."""
    table: list[list[Any]] = [["key", "locale", *FIELDS]]
    for i in items:
        table.append(
            [
                i.key,
                i.locale,
                i.title,
                "|".join(i.variants),
                i.answer,
                i.category,
                i.sms_code or "",
                i.difficulty,
                "|".join(i.tags),
                i.status,
                int(i.is_notice),
            ]
        )
    return table


async def export_xlsx() -> bytes:
    """Every item as a workbook (same columns as the CSV export)."""
    # members write titles and answers: every text is a string cell, never a formula (bot/core/cells.py)
    return xlsx_bytes(_flat_table(await KnowledgeItem.all().order_by("key", "locale")), title="knowledge")


async def export_items(fmt: str = "yaml") -> str:
    items = await KnowledgeItem.all().order_by("key", "locale")
    if fmt == "csv":
        return csv_text(None, _flat_table(items))  # cells escaped against formula injection
    grouped: dict[str, dict[str, Any]] = {}
    for i in items:
        entry = grouped.setdefault(
            i.key,
            {"key": i.key, "category": i.category, "difficulty": i.difficulty, "tags": list(i.tags)},
        )
        if i.sms_code:
            entry["sms_code"] = i.sms_code
        if i.is_notice:
            entry["notice"] = True
        block: dict[str, Any] = {"title": i.title, "variants": list(i.variants), "answer": i.answer}
        if i.status != "published":
            block["status"] = i.status
        entry[i.locale] = block
    dumped = yaml.safe_dump(list(grouped.values()), allow_unicode=True, sort_keys=False, width=100)
    return cast(str, dumped)  # yaml is untyped

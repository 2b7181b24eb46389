"""Loading of synonym groups (one group per line, comma-separated, first
term canonical; '#' starts a comment)."""

from __future__ import annotations

import os

__all__ = ["load_synonyms"]


def load_synonyms(path: str | None) -> list[list[str]]:
    if not path or not os.path.exists(path):
        return []
    groups: list[list[str]] = []
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [p.strip() for p in line.replace("，", ",").split(",")]
            parts = [p for p in parts if p]
            if len(parts) >= 2:
                groups.append(parts)
    return groups

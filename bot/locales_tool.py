"""Extract member-facing strings into the Babel catalogs and keep them in step.

``python -m bot.locales_tool [--domain NAME] [--check]``

One catalog domain per package (``handlers``, ``community`` …) and per channel module
(``bot/channels/wechat.py`` -> ``wechat``), so teams edit separate files. New zh_TW
entries are filled from zh_CN by OpenCC (s2twp) for a reviewer to polish; English
msgids need no en translation.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

from bot.core.i18n import LOCALES, LOCALES_DIR
from bot.core.settings import ROOT

PACKAGES = ("bot", "handlers", "community", "gamification", "sms_gateway")
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}


def domain_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts[:2] == ("bot", "channels") and len(rel.parts) > 2:
        return Path(rel.parts[2]).stem if rel.parts[2].endswith(".py") else rel.parts[2]
    if rel.parts[0] == "bot" and "templates" in rel.parts:
        return "pages"
    if rel.parts[0] != "bot" and "templates" in rel.parts:
        return f"{rel.parts[0]}_pages"
    return {"bot": "core"}.get(rel.parts[0], rel.parts[0])


def sources() -> list[Path]:
    out: list[Path] = []
    for pkg in PACKAGES:
        base = ROOT / pkg
        if base.exists():
            out += sorted(p for p in base.rglob("*.py") if "migrations" not in p.parts)
            out += sorted(base.rglob("templates/**/*.html"))
    return [p for p in out if p.name != "locales_tool.py"]


def extract() -> dict[str, Catalog]:
    catalogs: dict[str, Catalog] = defaultdict(lambda: Catalog(project="EveryCSR", charset="utf-8"))
    for path in sources():
        method = "jinja2.ext:babel_extract" if path.suffix == ".html" else "python"
        options = {"extensions": "jinja2.ext.i18n"} if path.suffix == ".html" else {}
        found = extract_from_file(method, str(path), keywords=KEYWORDS, options=options)
        for lineno, message, _comments, _context in found:
            catalogs[domain_of(path)].add(message, locations=[(str(path.relative_to(ROOT)), lineno)])
    return catalogs


def _s2twp():  # type: ignore[no-untyped-def]
    import opencc

    return opencc.OpenCC("s2twp")


def update(domains: set[str] | None, check: bool) -> int:
    extracted = extract()
    conv = _s2twp()
    missing: list[str] = []
    for domain, template in sorted(extracted.items()):
        if domains and domain not in domains:
            continue
        zh_cn: Catalog | None = None
        for locale in LOCALES:
            po_path = LOCALES_DIR / locale / "LC_MESSAGES" / f"{domain}.po"
            if po_path.exists():
                with po_path.open("rb") as fh:
                    catalog = read_po(fh, locale=locale)
            else:
                catalog = Catalog(locale=locale, project="EveryCSR", charset="utf-8")
            catalog.update(template, no_fuzzy_matching=True)
            catalog.obsolete.clear()
            for msg in catalog:
                if not msg.id:
                    continue
                if locale == "zh_TW" and not msg.string and zh_cn is not None:
                    src = zh_cn.get(msg.id)
                    if src is not None and src.string:
                        msg.string = (
                            conv.convert(src.string)
                            if isinstance(src.string, str)
                            else tuple(conv.convert(s) for s in src.string)
                        )
                if locale != "en" and not msg.string:
                    missing.append(f"{po_path.relative_to(ROOT)}: {msg.id!r}")
            if locale == "zh_CN":
                zh_cn = catalog
            if not check:
                po_path.parent.mkdir(parents=True, exist_ok=True)
                with po_path.open("wb") as fh:
                    write_po(fh, catalog, width=100, omit_header=False, sort_output=True, include_previous=False)
    for line in missing:
        print(f"untranslated: {line}", file=sys.stderr)
    return 1 if (check and missing) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", action="append", help="only this catalog domain (repeatable)")
    parser.add_argument("--check", action="store_true", help="write nothing; fail on untranslated zh entries")
    args = parser.parse_args(argv)
    return update(set(args.domain) if args.domain else None, args.check)


if __name__ == "__main__":
    sys.exit(main())

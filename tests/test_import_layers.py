"""The layers hold: the import graph has no cycles and no arrow running the wrong way.

Reads every module's imports with ``ast`` (top-level, inside functions and under
``TYPE_CHECKING`` alike: a lazy import is still an arrow) and checks them against the layers of
docs/architecture.md. A failure names the file, the import and the rule it breaks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "handlers", "community", "gamification", "sms_gateway")

# layer of a module, by the first prefix that matches (most specific first)
LAYERS: tuple[tuple[str, str], ...] = (
    ("bot.core", "kernel"),
    ("bot.pipeline", "pipeline"),
    ("bot.channels", "channel"),
    ("sms_gateway", "channel"),
    ("bot.web", "webkit"),
    ("bot.staff", "webkit"),
    ("handlers", "handlers"),
    ("community", "domain"),
    ("gamification", "domain"),
    ("bot.migrations", "migrations"),
    ("bot", "assembly"),  # app, cli, queue, workers, ops_web, dashboard, subscriptions ...
)

# importer layer -> layers it must never import
NEVER: dict[str, frozenset[str]] = {
    "kernel": frozenset({"pipeline", "channel", "webkit", "handlers", "domain", "assembly", "migrations"}),
    "webkit": frozenset({"pipeline", "channel", "handlers", "domain", "assembly"}),
    "domain": frozenset({"pipeline", "channel", "handlers", "assembly"}),
    "channel": frozenset({"pipeline", "handlers", "domain", "assembly"}),
    "handlers": frozenset({"channel", "assembly"}),
    "pipeline": frozenset({"channel", "assembly"}),
    # a data migration may use a domain's pure normaliser (0009: tags), nothing that runs the service
    "migrations": frozenset({"pipeline", "channel", "webkit", "handlers", "assembly"}),
}


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The project module an import names (``a.b.c`` may be the module ``a.b`` taking ``c``)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def arrows(name: str, path: Path, known: dict[str, Path]) -> Iterator[Arrow]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] or [base]
        for target in targets:
            resolved = resolve(target, known)
            if resolved is not None and resolved != name:
                yield Arrow(name, resolved, node.lineno)


def loads_by_name(path: Path) -> list[int]:
    """Lines where a module is loaded from a string (importlib), which no reader can follow."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
    ]


def layer(module: str) -> str:
    for prefix, name in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return name
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def graph() -> tuple[dict[str, Path], list[Arrow]]:
    known = modules()
    return known, [a for name, path in known.items() for a in arrows(name, path, known)]


def test_no_arrow_runs_the_wrong_way() -> None:
    known, edges = graph()
    broken = []
    for a in edges:
        src, dst = layer(a.source), layer(a.target)
        if dst in NEVER.get(src, frozenset()):
            broken.append(f"{known[a.source].relative_to(ROOT)}:{a.line}: {src} {a.source} -> {dst} {a.target}")
        # one direction between the two domains: community may use gamification's services,
        # gamification hears about community through events
        if a.source.startswith("gamification") and a.target.startswith("community"):
            broken.append(f"{known[a.source].relative_to(ROOT)}:{a.line}: gamification -> community {a.target}")
    assert not broken, "imports against the layers:\n" + "\n".join(sorted(broken))


def test_modules_are_imported_for_real_not_by_name() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}" for path in modules().values() for line in loads_by_name(path)]
    assert not found, "modules loaded from strings (import them):\n" + "\n".join(found)


def test_the_import_graph_has_no_cycles() -> None:
    known, edges = graph()
    out: dict[str, set[str]] = {m: set() for m in known}
    for a in edges:
        out[a.source].add(a.target)
    # a package's __init__ that re-exports its own modules is not a cycle of the design
    for m in known:
        out[m] = {t for t in out[m] if not (known[m].name == "__init__.py" and t.startswith(m + "."))}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(out[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    import sys

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(out):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_a_wrong_arrow(tmp_path: Path) -> None:
    """The rules bite: a kernel module importing a handler is reported."""
    known = {"bot.core.x": tmp_path / "x.py", "handlers.ask": tmp_path / "ask.py"}
    known["bot.core.x"].write_text("def f():\n    from handlers.ask import router\n")
    found = list(arrows("bot.core.x", known["bot.core.x"], known))
    assert found == [Arrow("bot.core.x", "handlers.ask", 2)]
    assert layer("handlers.ask") in NEVER[layer("bot.core.x")]

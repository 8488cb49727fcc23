"""The package's layering, checked from the source (``docs/architecture.md``).

* Every import between modules of ``scconvex`` (including imports made inside functions)
  goes from a higher layer to a lower one, or stays inside one layer; no import circle
  exists, in ``scconvex/`` or in ``benchmarks/``.
* No module outside the level objects compares a level name (``"sample"``, ``"class"``,
  ``"group"``), and no module outside the losses and relaxations compares a loss or
  relaxation name: code asks the objects instead.

The imports are read with :mod:`ast`, so nothing is imported to check them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "scconvex"

LAYERS = (
    ("core", ("scconvex._version", "scconvex.errors", "scconvex.checks", "scconvex.threads",
              "scconvex.resources", "scconvex.files")),
    ("levels", ("scconvex.levels",)),
    ("losses", ("scconvex.losses",)),
    ("problem", ("scconvex.problem",)),
    ("solvers", ("scconvex.solvers",)),
    ("certificates", ("scconvex.certificates",)),
    ("pipeline", ("scconvex.pipeline",)),
    ("features", ("scconvex.features",)),
    ("studies", ("scconvex.studies",)),
    ("cli", ("scconvex.cli", "scconvex.__main__")),
    # The package's own __init__ re-exports the public API lazily (PEP 562): the top.
    ("api", ("scconvex",)),
)

LEVEL_NAMES = {"sample", "class", "group"}
LOSS_NAMES = {"sc", "negatives-only", "elliptope", "dnn"}
LEVEL_OWNERS = {"scconvex.problem.levels"}
LOSS_OWNERS = {"scconvex.losses"}  # the package: its registry, losses and relaxations


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``name`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # "from pkg import mod" imports the module mod; "from mod import name" the
            # module mod.
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod
                       for a in node.names]
        for t in targets:
            # The longest known module that t names (a name imported from a module is
            # an import of that module).
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _graph(root: Path) -> dict[str, set[str]]:
    mods = _modules(root)
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def _layer(module: str) -> int:
    best, index = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if len(prefix) > best:
                    best, index = len(prefix), i
    assert index is not None, f"{module} is in no layer: add it to LAYERS and the docs"
    return index


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_goes_up_a_layer():
    graph = _graph(PACKAGE)
    bad = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
           for m, targets in graph.items() for t in sorted(targets)
           if _layer(t) > _layer(m)]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


@pytest.mark.parametrize("folder", ["scconvex", "benchmarks"])
def test_no_import_circles(folder):
    root = ROOT / folder
    if folder == "benchmarks":
        # Scripts import each other by plain module name (they run from that folder).
        mods = {p.stem: p for p in root.glob("*.py")}
        graph = {}
        for m, p in mods.items():
            tree = ast.parse(p.read_text())
            deps = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    deps |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    deps.add(node.module.split(".")[0])
            graph[m] = {d for d in deps if d in mods and d != m}
    else:
        graph = _graph(root)
    assert _cycles(graph) == []


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _string_comparisons(path: Path, names: set[str]) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []

    def strings(node) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return set().union(*(strings(e) for e in node.elts)) if node.elts else set()
        return set()

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            hit = strings(node.left).union(*(strings(c) for c in node.comparators))
            if hit & names:
                found.append(f"{_rel(path)}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.match_case):
            pat = ast.unparse(node.pattern)
            if any(repr(n) in pat for n in names):
                found.append(f"{_rel(path)}:{node.pattern.lineno}: case {pat}")
    return found


def test_level_names_are_compared_only_by_the_level_objects():
    found = []
    for name, path in _modules(PACKAGE).items():
        if name not in LEVEL_OWNERS:
            found += _string_comparisons(path, LEVEL_NAMES)
    assert not found, "compare level objects, not names:\n" + "\n".join(found)


def test_loss_and_relaxation_names_are_compared_only_by_their_objects():
    found = []
    for name, path in _modules(PACKAGE).items():
        if not any(name == o or name.startswith(o + ".") for o in LOSS_OWNERS):
            found += _string_comparisons(path, LOSS_NAMES)
    assert not found, "ask the loss or relaxation object, not its name:\n" + "\n".join(found)


def test_the_checks_can_fail(tmp_path):
    # The checkers find a circle, an upward import and a level-name comparison when there
    # is one (a check that cannot fail proves nothing).
    pkg = tmp_path / "scconvex"
    (pkg / "problem").mkdir(parents=True)
    (pkg / "pipeline").mkdir()
    for p in (pkg, pkg / "problem", pkg / "pipeline"):
        (p / "__init__.py").write_text("")
    (pkg / "problem" / "spec.py").write_text(
        "def f(level):\n    from ..pipeline import solve\n    return level == 'group'\n")
    (pkg / "pipeline" / "solve.py").write_text("from ..problem.spec import f\n")
    graph = _graph(pkg)
    assert graph["scconvex.problem.spec"] == {"scconvex.pipeline.solve"}
    assert _cycles(graph) == [["scconvex.pipeline.solve", "scconvex.problem.spec"]]
    assert _string_comparisons(pkg / "problem" / "spec.py", LEVEL_NAMES)

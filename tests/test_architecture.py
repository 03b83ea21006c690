"""The layout's rules, read from the source: which piece may import which, and no cycles.

ARCHITECTURE.md at the repository root draws the pieces and the arrows; this test is that
drawing, checked. Every import statement counts, at module level or inside a function
(a lazy import is still a dependency), and so does ``TYPE_CHECKING``-only code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("judgealign", "optimizers")

# Each piece and the pieces it may import (besides itself). A piece is a subpackage, or a
# top-level module standing alone. Lower pieces never import higher ones.
ALLOWED: dict[str, set[str]] = {
    "judgealign.core": set(),
    "judgealign.integrations": set(),  # a namespace for the integrations below
    "judgealign.models": {"judgealign.core"},
    "judgealign.embeddings": {"judgealign.core", "judgealign.models"},
    "judgealign.prompts": {"judgealign.core"},
    "judgealign.judges": {"judgealign.core", "judgealign.models"},
    # embeddings: suggest_labels measures how far a record is from those already labelled.
    # evaluation reads records the way retrieval does (memalign's view) when it ranks
    # which records to label next; memalign never imports evaluation.
    "judgealign.evaluation": {
        "judgealign.core",
        "judgealign.judges",
        "judgealign.embeddings",
        "judgealign.memalign",
    },
    "judgealign.memalign": {
        "judgealign.core",
        "judgealign.models",
        "judgealign.embeddings",
        "judgealign.judges",
    },
    "judgealign.testing": {"judgealign.core", "judgealign.models"},
    # The observer: reads what the domain produced; the domain never imports it.
    "judgealign.tracking": {"judgealign.core", "judgealign.judges", "judgealign.evaluation"},
    "judgealign.integrations.mlflow": {
        "judgealign.core",
        "judgealign.models",
        "judgealign.judges",
        "judgealign.evaluation",
        "judgealign.memalign",
        "judgealign.prompts",
        "judgealign.tracking",
        "judgealign",  # public names only (see PUBLIC_ONLY)
    },
    # Spark and DSPy: each integration is the only importer of its library.
    "judgealign.integrations.spark": {
        "judgealign",
        "judgealign.core",
        "judgealign.models",
        "judgealign.embeddings",
        "judgealign.judges",
        "judgealign.evaluation",
        "judgealign.memalign",
    },
    "judgealign.integrations.dspy": {
        "judgealign",
        "judgealign.core",
        "judgealign.models",
        "judgealign.judges",
        "judgealign.evaluation",
        "judgealign.memalign",
    },
    # Public facades.
    "judgealign.spark": {"judgealign.integrations.spark"},
    "judgealign.dspy": {"judgealign.integrations.dspy"},
    "judgealign.mlflow_integration": {"judgealign.integrations.mlflow", "judgealign.tracking"},
    "judgealign.optimize_support": {
        "judgealign.core",
        "judgealign.models",
        "judgealign.prompts",
    },
    # The application on top: every piece, and optimizers through its public API.
    "judgealign.cli": {
        "judgealign",
        "judgealign.core",
        "judgealign.models",
        "judgealign.embeddings",
        "judgealign.prompts",
        "judgealign.judges",
        "judgealign.evaluation",
        "judgealign.memalign",
        "judgealign.tracking",
        "judgealign.integrations.mlflow",
        "judgealign.mlflow_integration",
        "optimizers",
    },
    "judgealign.__main__": {"judgealign.cli"},
    # optimizers sees judgealign through its public API and the one documented seam.
    "optimizers": {
        "judgealign",
        "judgealign.optimize_support",
        "judgealign.mlflow_integration",
        "judgealign.dspy",
    },
}

# Pieces that may import these packages only by their public names (``from judgealign
# import make_judge``), never their private modules.
PUBLIC_ONLY = {"judgealign", "optimizers"}

# The composition root: ``judgealign/__init__.py`` re-exports every piece's public names.
ROOT_MODULE_MAY_IMPORT = {name for name in ALLOWED if name.startswith("judgealign.")} - {
    "judgealign.cli",
    "judgealign.__main__",
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """Every judgealign/optimizers module ``name`` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            if target in modules and target != name:
                # ``from judgealign.x import y`` names module ``y`` only when it is one.
                yield target


def _piece(module: str) -> str:
    """The piece a module belongs to: its subpackage, or itself at the top level."""
    for piece in sorted(ALLOWED, key=len, reverse=True):
        if module == piece or module.startswith(piece + "."):
            return piece
    return module


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: set(_imports(name, path, modules)) for name, path in modules.items()}


def test_every_module_belongs_to_a_known_piece() -> None:
    strays = sorted(
        name
        for name in _modules()
        if _piece(name) not in ALLOWED and name not in PUBLIC_ONLY
        # The composition root and the public modules that re-export a piece.
    )
    assert strays == [], f"modules outside any piece of ARCHITECTURE.md: {strays}"


def test_imports_follow_the_allowed_arrows() -> None:
    wrong: list[str] = []
    for module, targets in _graph().items():
        source = _piece(module)
        for target in sorted(targets):
            dest = _piece(target)
            if dest == source:
                continue
            if module == "judgealign":
                allowed = dest in ROOT_MODULE_MAY_IMPORT
            elif module == "optimizers" or source == "optimizers":
                allowed = not target.startswith("judgealign") or target in ALLOWED["optimizers"]
            else:
                allowed = dest in ALLOWED.get(source, set())
                if dest in PUBLIC_ONLY and target != dest:
                    allowed = False  # a private module of judgealign/optimizers
            if not allowed:
                wrong.append(f"{module} -> {target}")
    assert wrong == [], "imports against ARCHITECTURE.md:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    cycles = [sorted(scc) for scc in _strongly_connected(graph) if len(scc) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_judgealign_never_imports_optimizers_outside_the_cli() -> None:
    offenders = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module.startswith("judgealign") and _piece(module) != "judgealign.cli"
        for target in targets
        if target.startswith("optimizers")
    )
    assert offenders == []


def test_the_rule_checker_sees_function_level_imports(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from judgealign.cli import main\n    return main\n")
    modules = {"judgealign.cli": ROOT / "judgealign" / "cli" / "__init__.py", "probe": source}
    assert list(_imports("probe", source, modules)) == ["judgealign.cli"]


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph is a few hundred modules deep at most)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, set())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components

"""The package layers and their imports: ``rewards <- envs <- counterfactual <- agents <- experiments`` (a module may
import its own layer and the layers below it), and no import circle between modules. Every import statement counts:
module level, function-local (lazy) and ``TYPE_CHECKING`` ones alike, read from the source with ``ast`` (nothing is
executed). ``from package import name`` is an import of ``package.name`` when that is a module, else of the
package's ``__init__``."""

from __future__ import annotations

import ast
from pathlib import Path

LAYERS = ("rewards", "envs", "counterfactual", "agents", "experiments")
"""Lowest first."""
ROOT = Path(__file__).resolve().parents[1]


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the five packages under ``root``."""
    out = {}
    for package in LAYERS:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its source)."""
    modules = _modules(root)

    def owner(name: str) -> str | None:  # the module a dotted name lives in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                subs = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in modules]
                names = subs if len(subs) == len(node.names) else [source, *subs]
            else:
                continue
            targets.update(t for n in names if n.split(".")[0] in LAYERS and (t := owner(n)) and t != module)
        graph[module] = targets
    return graph


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_no_module_imports_a_higher_layer():
    graph = import_graph()
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if _layer(b) > _layer(a))
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_circles():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_the_walker_sees_lazy_and_relative_imports(tmp_path):
    """The check itself: a function-local upward import and a circle are found."""
    for name, text in {
        "rewards/__init__.py": "",
        "rewards/a.py": "def f():\n    from experiments.z import g\n",
        "rewards/b.py": "from . import c\n",
        "rewards/c.py": "from rewards.b import x\n",
        "envs/__init__.py": "", "counterfactual/__init__.py": "", "agents/__init__.py": "",
        "experiments/__init__.py": "", "experiments/z.py": "",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["rewards.a"] == {"experiments.z"}
    assert graph["rewards.b"] == {"rewards.c"} and graph["rewards.c"] == {"rewards.b"}

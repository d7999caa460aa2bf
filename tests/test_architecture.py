"""The package's layering: a lower layer never imports a higher one, and no two modules import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import spo3

ROOT = Path(spo3.__file__).parent

# Bottom to top; a module may import only its own layer and those below. config and metrics are helpers that sit
# just above the formulas: config needs core's validated parameters, metrics needs nothing of spo3.
LAYERS = ["core", "metrics", "config", "state", "envs", "policies", "rollout", "training", "experiments", "cli"]


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every spo3 module -> the spo3 modules it imports (lazy imports inside functions included)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spo3"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("spo3"))
        graph[_module(path)] = deps - {_module(path)}
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else -1


def test_no_upward_imports():
    upward = [
        f"{mod} imports {dep}"
        for mod, deps in _imports().items()
        for dep in deps
        if _layer(mod) >= 0 and _layer(dep) > _layer(mod)
    ]
    assert not upward, upward


def test_every_top_level_module_has_a_layer():
    tops = {p.stem for p in ROOT.glob("*.py")} | {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert tops - {"__init__", "data"} <= set(LAYERS), tops - set(LAYERS)


def test_no_import_cycles():
    graph = _imports()

    def owner(dep: str) -> str | None:  # "from spo3.envs.webshop import X" names a package: its __init__
        return dep if dep in graph else None

    state: dict[str, int] = {}
    cycles = []

    def visit(mod: str, stack: list[str]) -> None:
        state[mod] = 1
        for dep in sorted(filter(None, map(owner, graph[mod]))):
            if dep.startswith(mod + "."):  # a package importing its own submodules is not a cycle
                continue
            if state.get(dep) == 1 and not mod.startswith(dep + "."):
                cycles.append(stack[stack.index(dep):] + [dep] if dep in stack else [mod, dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert not cycles, cycles

"""The package's shape: stages import only earlier stages, and no module imports itself back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import harness

ROOT = Path(harness.__file__).parent

# Pipeline order; a module may import its own stage or an earlier one, never a later one.
# Each name is a module or a package (with everything in it); "harness" is the package's own
# __init__ alone, so a new top-level module belongs nowhere until it is given a stage here.
STAGES: tuple[tuple[str, ...], ...] = (
    ("harness", "harness.errors", "harness.progress", "harness.proc", "harness.arch",
     "harness.elf", "harness.resources", "harness.cache", "harness.needs", "harness.redaction",
     "harness.retry"),
    ("harness.kernel",),
    ("harness.guest",),
    ("harness.checks",),
    ("harness.reports", "harness.series", "harness.series_source"),
    ("harness.pipeline", "harness.bisect", "harness.options", "harness.matrix", "harness.lava",
     "harness.coverage", "harness.housekeeping"),
    ("harness.cli", "harness.cli_args", "harness.pytest_plugin"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every harness module and the harness modules it imports, at any depth of its code."""
    graph: dict[str, set[str]] = {}
    names = {module_name(p) for p in ROOT.rglob("*.py")}
    for path in ROOT.rglob("*.py"):
        me = module_name(path)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("harness"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in names else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("harness")}
        graph[me] = {m for m in found if m != me}
    return graph


def stage(module: str) -> int:
    best = -1, 0
    for rank, prefixes in enumerate(STAGES):
        for p in prefixes:
            inside = p != "harness" and module.startswith(p + ".")
            if (module == p or inside) and len(p) > best[1]:
                best = rank, len(p)
    assert best[0] >= 0, f"{module} belongs to no stage: add it to STAGES"
    return best[0]


def test_every_module_belongs_to_a_stage() -> None:
    for m in imports():
        stage(m)
    with pytest.raises(AssertionError, match="belongs to no stage"):
        stage("harness.somewhere_new")  # the check can fail: no catch-all prefix


def test_no_stage_imports_a_later_one() -> None:
    wrong = [f"{m} (stage {stage(m)}) imports {d} (stage {stage(d)})"
             for m, deps in sorted(imports().items()) for d in sorted(deps)
             if stage(d) > stage(m)]
    assert wrong == []


def test_no_import_cycle() -> None:
    graph = imports()
    # A package's __init__ may re-export its submodules; that is not a cycle of code.
    edges = {m: {d for d in deps if m != d.rsplit(".", 1)[0]} for m, deps in graph.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join([*path[path.index(d):], d]))
            elif d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_kernel_model_imports_no_stage() -> None:
    assert imports()["harness.kernel.model"] <= {"harness.errors"}

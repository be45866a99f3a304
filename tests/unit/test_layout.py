"""The package's shape: stages import only earlier stages, and no module imports itself back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import harness

ROOT = Path(harness.__file__).parent

# Pipeline order, one folder of harness/ per stage (the reports stage has two: the reports and
# the mail they answer); a module may import its own stage or an earlier one, never a later
# one. The folders are the stages: a module at harness/'s top (but its __init__) belongs to
# none, nor does a folder not named here.
STAGES: tuple[tuple[str, ...], ...] = (
    ("base",), ("kernel",), ("guest",), ("checks",), ("reports", "mail"), ("runs",),
    ("faces",),
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
    """The stage of a module: that of the folder it is in (harness's own __init__: the first)."""
    if module == "harness":
        return 0
    folder = module.split(".")[1]
    for rank, folders in enumerate(STAGES):
        if folder in folders:
            return rank
    raise AssertionError(f"{module} belongs to no stage: put it in a stage's folder")


def test_the_folders_are_the_stages() -> None:
    """Every folder of harness/ is a stage's, and nothing but the package's own __init__
    stands at its top: a newcomer reads the stages off the tree."""
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert folders == {f for stage in STAGES for f in stage}
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["__init__.py"]


def test_every_module_belongs_to_a_stage() -> None:
    for m in imports():
        stage(m)
    with pytest.raises(AssertionError, match="belongs to no stage"):
        stage("harness.somewhere_new")  # the check can fail: no catch-all prefix
    with pytest.raises(AssertionError, match="belongs to no stage"):
        stage("harness.elsewhere.module")


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
    assert imports()["harness.kernel.model"] <= {"harness.base.errors"}

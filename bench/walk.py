"""How a kernel is obtained, walked: which modules a cache hit passes through, and how often it
climbs back up (calls into a module that imports the caller, which only an import cycle allows).

    python bench/walk.py [--kernel PATH]   # also runs against an older checkout via PYTHONPATH

Run on a warm cache: it traces the lookup, not a build.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import harness

ROOT = Path(harness.__file__).resolve().parent


def module_of(filename: str) -> str | None:
    path = Path(filename)
    if not path.is_relative_to(ROOT) or path.suffix != ".py":
        return None
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_closure() -> dict[str, set[str]]:
    """Module -> every harness module it imports, directly or not."""
    names = {module_of(str(p)) for p in ROOT.rglob("*.py")}
    direct: dict[str, set[str]] = {}
    for p in ROOT.rglob("*.py"):
        me = module_of(str(p))
        assert me is not None
        found = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    found.add(sub if sub in names else str(node.module))
        direct[me] = found - {me}
    closure = {}
    for m in direct:
        seen, todo = set(), list(direct[m])
        while todo:
            d = todo.pop()
            if d not in seen:
                seen.add(d)
                todo += direct.get(d, ())
        closure[m] = seen
    return closure


def walk(fn: Any, *args: Any) -> dict[str, Any]:
    calls: Counter[tuple[str, str]] = Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or frame.f_back is None:
            return
        callee, caller = module_of(frame.f_code.co_filename), \
            module_of(frame.f_back.f_code.co_filename)
        if callee and caller and callee != caller:
            calls[(caller, callee)] += 1

    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    imports = import_closure()
    climbs = {edge: n for edge, n in calls.items() if edge[0] in imports.get(edge[1], set())}
    rooms = sorted({m for edge in calls for m in edge})
    return {"rooms": len(rooms), "modules": rooms, "cross_module_calls": sum(calls.values()),
            "climbs_back_up": sum(climbs.values()),
            "climbs": {f"{a} -> {b}": n for (a, b), n in sorted(climbs.items())}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kernel", help="also walk this prebuilt kernel (--kernel of ltoboot run)")
    args = ap.parse_args()
    try:
        from harness.kernel.model import BuildSpec
        from harness.kernel.obtain import obtain
    except ImportError:  # the layout before harness/kernel/
        from harness.build import BuildSpec  # type: ignore
        from harness.build import build_kernel as obtain  # type: ignore[no-redef]
    from harness.faces.cli_args import parser
    from harness.runs.options import kernel_specs

    specs = [("built (cache hit)", BuildSpec(arch="x86_64"))]
    if args.kernel:
        run = parser().parse_args(["run", "--kernel", args.kernel])
        specs.append(("prebuilt", kernel_specs(vars(run))[0]))
    for what, spec in specs:
        obtain(spec)  # warm: what is walked next is the lookup
        w = walk(obtain, spec)
        print(f"{what}: {w['rooms']} modules, {w['cross_module_calls']} cross-module calls, "
              f"{w['climbs_back_up']} climbs back up")
        for edge, n in w["climbs"].items():
            print(f"    {n:4d}  {edge}")
        print("    modules: " + " ".join(w["modules"]))


if __name__ == "__main__":
    main()

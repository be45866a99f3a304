"""The support matrix: kernel sources x clang x arch x LTO mode x base config, each cell built
once (through the cache), booted and checked; a table of pass/fail/skip counts and build and
boot times."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.base.errors import InfraError, UsageError
from harness.base.progress import duration, say
from harness.checks import Verdict
from harness.kernel.model import BASE_TARGETS, BuildSpec
from harness.kernel.source import DEFAULT_TARBALL
from harness.reports.results import KernelReport, Stage
from harness.runs import options, pipeline


class CellStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # a check failed
    BUILD_FAILED = Stage.BUILD.value
    BOOT_FAILED = Stage.BOOT.value
    ERROR = "error"  # the cell could not run (the machine's or the input's fault)


@dataclass
class Cell:
    # its axes (options.MATRIX_AXES), named as the BuildSpec fields their options set
    kernel_src: str
    llvm: str
    arch: str
    lto: str
    config: str = "tinyconfig"  # tinyconfig, defconfig or a .config's absolute path
    release: str = ""
    compiler: str = ""
    status: CellStatus | None = None
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    build_seconds: float | None = None  # the build's own time (also when the cache had it)
    boot_seconds: float | None = None
    seconds: float = 0.0  # this run's wall time for the cell
    failures: list[str] = field(default_factory=list)  # "check: summary" or the error
    skips: list[str] = field(default_factory=list)  # "check: reason"


def cells(kernel_srcs: Sequence[str], llvms: Sequence[str], arches: Sequence[str],
          ltos: Sequence[str], configs: Sequence[str] = ("tinyconfig",)) -> list[Cell]:
    return [Cell(*axes) for axes in itertools.product(kernel_srcs, llvms, arches, ltos,
                                                      configs)]


def _list(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UsageError(f"{what} needs at least one value")
    return list(dict.fromkeys(items))


def _configs(value: str) -> list[str]:
    """--config's list, each value checked as `ltoboot run` checks its one (spec() checks a
    file against each cell's arch); a file as its absolute path, so one spelled twice is one."""
    if "," in value and Path(value).expanduser().is_file():
        raise UsageError(f"--config {value}: the matrix splits --config at commas, so a file's "
                         "path cannot hold one; link the file to a name without a comma")
    return list(dict.fromkeys(options.base_config(v) for v in _list(value, "--config")))


# an axis's option (its dest) -> the BuildSpec field it sets, which names it in a Cell
_FIELDS = {o.dest: o.field for o in options.SPEC_OPTIONS}


def spec(cell: Cell, values: Mapping[str, Any]) -> BuildSpec:
    """A cell's kernel: its own value on each axis, every other option of the kernel's as the
    command was given it (--fragment, ...)."""
    axes = {a.dest: getattr(cell, _FIELDS[a.dest]) for a in options.MATRIX_AXES}
    return options.spec_from({**values, **axes}, cell.arch)


def plan(values: Mapping[str, Any]) -> list[tuple[Cell, BuildSpec]]:
    """The cells `ltoboot matrix` was asked for (its options' values), each with its kernel:
    all made, and every option checked, before the first build."""
    todo = cells(values["kernel_src"] or [str(DEFAULT_TARBALL)], _list(values["llvm"], "--llvm"),
                 options.split_arches(values["arch"]), _list(values["lto"], "--lto"),
                 _configs(values[options.CONFIG.dest]))
    return [(c, spec(c, values)) for c in todo]


def _fill(cell: Cell, rep: KernelReport) -> None:
    if rep.kernel is not None:
        cell.release, cell.compiler = rep.kernel.release, rep.kernel.compiler
        cell.build_seconds = rep.kernel.build_seconds
    cell.boot_seconds = rep.boot_seconds
    if rep.error:
        cell.status = CellStatus(rep.failed_at or Stage.BUILD)
        cell.failures = [rep.error.splitlines()[0]]
        return
    cell.passed = sum(r.verdict is Verdict.PASS for r in rep.results)
    cell.failed = sum(r.verdict is Verdict.FAIL for r in rep.results)
    cell.skipped = sum(r.verdict is Verdict.SKIP for r in rep.results)
    cell.failures = [f"{r.name}: {r.summary}" for r in rep.results if r.verdict is Verdict.FAIL]
    cell.skips = [f"{r.name}: {r.summary.removeprefix('skipped: ')}" for r in rep.results
                  if r.verdict is Verdict.SKIP]
    cell.status = CellStatus.PASSED if rep.passed else CellStatus.FAILED


def run(todo: Sequence[tuple[Cell, BuildSpec]], accel: str, names: Sequence[str] | None,
        done: Callable[[Cell], None] = lambda c: None,
        reports: list[KernelReport] | None = None) -> list[Cell]:
    """Build, boot and check every cell (of plan()) in turn; an error in one cell (a toolchain
    that is not installed) is that cell's, and the others still run."""
    for i, (cell, kernel) in enumerate(todo, 1):
        say(f"matrix cell {i}/{len(todo)}: {cell.kernel_src} clang {cell.llvm} {cell.arch} "
            f"{cell.lto} {config_name(cell.config)}")
        started = time.monotonic()
        try:
            rep = pipeline.check_kernel(kernel, accel, names)
            if reports is not None:
                reports.append(rep)
            _fill(cell, rep)
        except (UsageError, InfraError) as e:
            cell.status, cell.failures = CellStatus.ERROR, [str(e).splitlines()[0]]
        cell.seconds = round(time.monotonic() - started, 1)
        done(cell)
    return [cell for cell, _ in todo]


HEADER = ("kernel", "clang", "arch", "lto", "config", "status", "pass", "fail", "skip", "build",
          "boot")
CONFIG_WIDTH = 20  # a file's name is cut to this, to keep the table narrow (JSON has the path)


def config_name(config: str) -> str:
    """A cell's config as the table names it: tinyconfig, defconfig or the file's name; a long
    name keeps its start and its end (config-6.1.0-18-cloud-amd64: the end tells them apart)."""
    name = config if config in BASE_TARGETS else Path(config).name
    if len(name) <= CONFIG_WIDTH:
        return name
    head = (CONFIG_WIDTH - 1) // 2
    return f"{name[:head]}…{name[head + 1 - CONFIG_WIDTH:]}"


def config_names(configs: Iterable[str]) -> dict[str, str]:
    """Each config as one table names it: config_name(), and where two files would read
    the same (/a/my.config, /b/my.config), a short hash of the path after the name."""
    configs = sorted(set(configs))
    shown = {c: config_name(c) for c in configs}
    for c in configs:
        if list(shown.values()).count(config_name(c)) > 1:
            mark = hashlib.sha256(c.encode()).hexdigest()[:4]
            shown[c] = f"{config_name(c)[:CONFIG_WIDTH - 5]}~{mark}"
    return shown


def row(c: Cell, names: Mapping[str, str] | None = None) -> tuple[str, ...]:
    kernel = c.release or c.kernel_src.rsplit("/", 1)[-1]
    clang = c.compiler.split("version ")[-1].split()[0] if c.compiler else c.llvm
    config = (names or {}).get(c.config) or config_name(c.config)
    return (kernel, clang, c.arch, c.lto, config, str(c.status or ""),
            str(c.passed), str(c.failed), str(c.skipped),
            duration(c.build_seconds) if c.build_seconds else "-",
            f"{c.boot_seconds:.1f}s" if c.boot_seconds else "-")


def table(done: list[Cell]) -> str:
    names = config_names(c.config for c in done)
    rows = [HEADER, *(row(c, names) for c in done)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {row(c)[0]} clang {row(c)[1]} {c.arch} {c.lto} {names[c.config]}: {why}"
             for c in done for why in [*c.failures, *(f"SKIP {s}" for s in c.skips)]]
    files = [f"  {names[c]}: {c}" for c in sorted(names) if c not in BASE_TARGETS]
    return "\n".join(lines + (["", "notes:", *notes] if notes else [])
                     + (["", "config files:", *files] if files else []))


KERNEL_FAILED = (CellStatus.FAILED, CellStatus.BUILD_FAILED, CellStatus.BOOT_FAILED)


def as_json(done: list[Cell]) -> list[dict[str, object]]:
    return [asdict(c) for c in done]

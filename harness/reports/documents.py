"""The documents a command writes beside its report, each declared once here: its option
(`--<name> FILE`), what it holds, and how it is written. Every command that checks kernels
(run, tested-by, matrix, lava run and submit) offers and writes them all alike: a new format
is a record here and its renderer."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.reports import junit, kcidb
from harness.reports.results import KernelReport


@dataclass(frozen=True)
class Context:
    """What a document may say of the command beyond its reports."""

    names: Sequence[str]  # the checks the command ran
    started: datetime  # when the command started
    artifact_url: str | None = None  # where LAVA fetched the kernels from
    series: dict[str, object] | None = None  # the mailed series a tested-by applied
    errors: dict[str, str] = field(default_factory=dict)  # kernels no verdict was had for
    # what bisecting a failed series' patches found (harness/runs/culprit.py's
    # Finding.as_dict() each): KCIDB's issues and incidents
    findings: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    name: str  # the option is --<name>
    title: str  # what the line that names the written file calls it
    help: str
    write: Callable[[Path, Sequence[KernelReport], Context], None]


def _junit(path: Path, reports: Sequence[KernelReport], ctx: Context) -> None:
    junit.write(reports, path)


def _kcidb(path: Path, reports: Sequence[KernelReport], ctx: Context) -> None:
    run = kcidb.Run(id=uuid.uuid4().hex[:16], started=ctx.started,
                    artifact_url=ctx.artifact_url, series=ctx.series, errors=ctx.errors,
                    findings=list(ctx.findings))
    kcidb.write(path, kcidb.document(reports, run, list(ctx.names)))


DOCUMENTS: tuple[Document, ...] = (
    Document("junit", "JUnit", "also write the verdicts as JUnit XML", _junit),
    Document("kcidb", "KCIDB", "also write the results as a KCIDB v5.3 document (KernelCI's "
             "format), validated with KernelCI's schema", _kcidb),
)


def write_all(values: Mapping[str, Any], reports: Sequence[KernelReport],
              ctx: Context) -> list[str]:
    """Every document the options ask for (`values`: option name -> file), written; the
    lines that name them."""
    said = []
    for d in DOCUMENTS:
        path = values.get(d.name)
        if path:
            d.write(Path(path), reports, ctx)
            said.append(f"ltoboot: {d.title}: {path}")
    return said

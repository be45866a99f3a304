"""The documents beside a report are declared once (harness/reports/documents.py): every
command that checks kernels offers each one, and writes each one it is asked for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.faces.cli_args import parser
from harness.reports import documents
from harness.reports.results import KernelReport, Stage

CHECKING = (["run"], ["tested-by"], ["matrix"], ["lava", "run"],
            ["lava", "submit", "--server", "https://lava.example.org/"])


@pytest.mark.parametrize("command", CHECKING, ids=" ".join)
def test_every_checking_command_offers_every_document(command: list[str]) -> None:
    argv = [a for d in documents.DOCUMENTS for a in (f"--{d.name}", f"out.{d.name}")]
    args = vars(parser().parse_args([*command, *argv]))
    assert {d.name: args[d.name] for d in documents.DOCUMENTS} == {
        d.name: f"out.{d.name}" for d in documents.DOCUMENTS}


def test_each_document_asked_for_is_written_and_named(tmp_path: Path) -> None:
    reports = [KernelReport("x86_64-thin").fail(Stage.BUILD, "make failed")]
    ctx = documents.Context(["proc_version"], datetime.now(UTC))
    values = {d.name: str(tmp_path / f"out.{d.name}") for d in documents.DOCUMENTS}
    said = documents.write_all(values, reports, ctx)
    assert said == [f"ltoboot: {d.title}: {values[d.name]}" for d in documents.DOCUMENTS]
    assert all(Path(p).stat().st_size > 0 for p in values.values())
    assert documents.write_all({}, reports, ctx) == []  # none asked for: none written

"""The README a newcomer reads in two minutes stays true: its command table is the CLI's
commands, in the CLI's order; its two code blocks are the main job and CI's own command; every
link in it and in docs/ leads to a file that exists, and every page of docs/ is linked. How
many checks there are is said once, in docs/checks.md, which lists them in the registry's
order."""

from __future__ import annotations

import re
from pathlib import Path

from harness.checks import CHECKS
from harness.faces.cli_args import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_command_table_is_the_clis() -> None:
    rows = re.findall(r"^\| `ltoboot ([a-z-]+)` \|", README.read_text(), re.M)
    assert rows == [name for name, _, _ in COMMANDS]


def test_two_code_blocks_the_main_job_and_ci() -> None:
    blocks = re.findall(r"^```\n(.*?)\n```$", README.read_text(), re.M | re.S)
    assert blocks[0] == "./setup.sh && .venv/bin/ltoboot run"
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith(("#", "set ", "cd "))]
    assert blocks[1:] == ci == ["./setup.sh && .venv/bin/pytest -n auto --junitxml=junit.xml"]


def test_links_lead_somewhere_and_every_page_is_linked() -> None:
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            assert (page.parent / target).resolve().exists(), f"{page.name}: {target}"
    linked = {(README.parent / t).resolve() for t in LINK.findall(README.read_text())}
    assert set(pages[1:]) <= linked


def test_short_enough_to_read_in_two_minutes() -> None:
    assert len(README.read_text().splitlines()) <= 80


def test_every_opt_in_test_is_named_with_its_switch() -> None:
    """What the default suite leaves out is in the README, with what turns it on."""
    switches = set()
    for test in (ROOT / "tests").rglob("*.py"):
        switches |= set(re.findall(r'mark\.opt_in\(\s*"([A-Z_]+)"', test.read_text()))
    assert switches, "no opt-in test found: the pattern is stale"
    text = README.read_text()
    assert {s for s in switches if f"{s}=1" not in text} == set()


def test_the_checks_are_counted_in_docs_checks_md_alone() -> None:
    text = (ROOT / "docs" / "checks.md").read_text()
    assert re.findall(r"\bThe (\d+) checks\b", text) == [str(len(CHECKS))]
    # its table, in the order they are reported (initcall_order, opt-in, is not a check of it)
    assert re.findall(r"^\| `([a-z0-9_]+)` \|", text, re.M) == list(CHECKS)
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        if page.name != "checks.md":
            assert not re.search(rf"\b{len(CHECKS)} checks\b", page.read_text()), page.name

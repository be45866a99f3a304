"""Kconfig fragments: parse, merge, and verify that what we asked for stuck after olddefconfig."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness import needs, resources
from harness.kernel.model import lto_mode

_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")

CONFIG_DIR = resources.KCONFIG_FRAGMENTS


def parse(text: str) -> dict[str, str]:
    """Map symbol (without CONFIG_) to its value; `is not set` becomes "n"."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if m := _SET.match(line):
            values[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            values[m.group(1)] = "n"
    return values


def merge(fragments: Iterable[str]) -> dict[str, str]:
    """Later fragments win, as with scripts/kconfig/merge_config.sh."""
    merged: dict[str, str] = {}
    for text in fragments:
        merged.update(parse(text))
    return merged


def render(values: Mapping[str, str]) -> str:
    return "".join(
        f"# CONFIG_{k} is not set\n" if v == "n" else f"CONFIG_{k}={v}\n" for k, v in values.items()
    )


def apply(base_config: str, wanted: Mapping[str, str]) -> str:
    """Drop every line of `base_config` that sets a wanted symbol and append ours."""
    kept = []
    for line in base_config.splitlines():
        m = _SET.match(line.strip()) or _UNSET.match(line.strip())
        if m and m.group(1) in wanted:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n" + render(wanted)


def not_stuck(wanted: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """Options we asked for that Kconfig silently changed, as `CONFIG_X=want (got: value)`."""
    problems = []
    for sym, want in wanted.items():
        got = actual.get(sym, "n")
        if got != want:
            shown = "not set" if got == "n" else got
            problems.append(f"CONFIG_{sym}={want} (got: {shown})")
    return problems


def wanted_options(arch_fragment: str, lto: str, extra: Iterable[Path] = (),
                   checks: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our fragments, what the checks need (`checks`; default: every check's, whatever the
    toolchain), the LTO mode's option, then the user's fragments (which win)."""
    if checks is None:
        checks = needs.build_options(clang_major=10**6, clang="any")[0]
    texts = [(CONFIG_DIR / "base.config").read_text(), (CONFIG_DIR / arch_fragment).read_text(),
             render(checks), render(lto_mode(lto).request)]
    texts.extend(p.read_text() for p in extra)
    return merge(texts)

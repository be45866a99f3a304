"""Debian updates its kernel source packages (linux-source-6.12 went from 6.12.117 to 6.12.118
under a green suite): a test that compares with a real source reads the version from that
source (its Makefile, as ltoboot does), never from a literal. Recorded data (tests/data) and
synthetic fixtures (tests/synthetic.py, and tests/unit/, which builds and boots nothing) keep
theirs: nothing real is compared with them."""

from __future__ import annotations

import re
from pathlib import Path

from harness.kernel.host_packages import DEFAULT_SOURCE_PACKAGE, TEST_SOURCE_PACKAGES

TESTS = Path(__file__).resolve().parents[1]
EXEMPT = (TESTS / "data", TESTS / "unit", TESTS / "synthetic.py")


def _pattern() -> re.Pattern[str]:
    """A release of any kernel series Debian's source packages give the suite: 6.1.N, 6.12.N."""
    series = [p.removeprefix("linux-source-") for p in (DEFAULT_SOURCE_PACKAGE,
                                                        *TEST_SOURCE_PACKAGES)]
    return re.compile(r"(?<![\d.])(?:" + "|".join(re.escape(s) for s in series)
                      + r")\.\d+(?![\d])")


def pinned(text: str) -> list[str]:
    return _pattern().findall(text)


def test_the_pattern_catches_what_broke_ci_and_nothing_else() -> None:
    assert pinned('"asks for CONFIG_X, which Linux 6.12.117 (arm64, "') == ["6.12.117"]
    assert pinned('"Linux version 6.1.192-tester "') == ["6.1.192"]
    assert pinned('"linux-source-6.12.tar.xz", "6.12.", clang 19.1.7, 16.1.0, 127.0.0.1') == []


def test_no_test_that_meets_a_real_source_pins_its_version() -> None:
    found = [f"{path.relative_to(TESTS)}:{n}: {hit}"
             for path in sorted(TESTS.rglob("*.py"))
             if not any(path == e or e in path.parents for e in EXEMPT)
             for n, line in enumerate(path.read_text().splitlines(), 1)
             for hit in pinned(line)]
    assert found == [], "read the version from the source (source.makefile_version): " \
        + "; ".join(found)

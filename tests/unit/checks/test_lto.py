"""llvm_symbols: which promoted functions can be looked up by a plain name."""

from __future__ import annotations

from harness.checks.lto import promoted_functions


def test_promoted_functions_need_unique_plain_names() -> None:
    smap = ("ffffffff81000000 t foo.llvm.1234\nffffffff81000010 t bar.llvm.99\n"
            "ffffffff81000020 t bar\nffffffff81000030 d baz.llvm.5\n")
    assert promoted_functions(smap) == [("foo", "foo.llvm.1234")]

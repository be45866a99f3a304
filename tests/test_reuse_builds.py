"""Reuse that cannot lie, on real kernels: a tester's own git clone of Linux 6.1 (real files,
not hard links to the cache), edited in each way that fooled the old reuse, built twice: the
first build starts from the default kernel's (another tree), the second from the first. Each
edit has a late initcall print a string from the edited file; each booted kernel prints its
own strings, not its donor's. The clone, .git included, keeps every byte, mode and time.
(The same on small trees, and how each edit used to go wrong: tests/unit/test_reuse.py.)
"""

from __future__ import annotations

import hashlib
import inspect
import os
import subprocess
from pathlib import Path

import pytest

from harness.base import cache
from harness.faces.pytest_plugin.fixtures import Guests, Kernels
from harness.kernel import source
from harness.kernel.build import build_kernel
from harness.kernel.model import BuildSpec, Kernel
from tests.unit.test_reuse import snapshot

pytestmark = [pytest.mark.boot, pytest.mark.xdist_group("x86_64-thin")]

DEBIAN_BLOCK = "# Debian packaging: ignore everything at the top level"
PRINTER = """#include <linux/init.h>
#include <linux/printk.h>
#include "ltoboot_reuse.h"
#include "ltoboot_link.h"

static int __init ltoboot_reuse(void)
{
	pr_info("ltoboot-reuse: %s %s %s\\n", REUSE_HEADER, REUSE_LINK, REUSE_FLAG);
#ifdef CONFIG_LTOBOOT_REUSE
	pr_info("ltoboot-reuse: kconfig-on\\n");
#endif
	return 0;
}
late_initcall(ltoboot_reuse);
"""
GONE = """#include <linux/init.h>
#include <linux/printk.h>

static int __init ltoboot_gone(void)
{
	pr_info("ltoboot-reuse: gone-still-here\\n");
	return 0;
}
late_initcall(ltoboot_gone);
"""


def _git(repo: Path, *args: str) -> str:
    date = "2026-01-01T00:00:00+00:00"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@ltoboot.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@ltoboot.invalid",
           "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
           "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "gc.auto", "GIT_CONFIG_VALUE_0": "0"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def _make_clone(tmp: Path, tree: Path) -> None:
    """A git repository of the default tree whose files are its own (copied, not linked)."""
    tmp.mkdir()
    for item in sorted(tree.iterdir()):
        if not item.name.startswith(source.CACHE_OWN):
            subprocess.run(["cp", "-r", "--preserve=mode", str(item), str(tmp / item.name)],
                           check=True)
    gitignore = (tmp / ".gitignore").read_text()
    (tmp / ".gitignore").write_text(gitignore[:gitignore.index(DEBIAN_BLOCK)])
    _git(tmp, "init", "-q")
    _git(tmp, "add", "-A", "--force")  # as the kernel's repository tracks its dot-files
    _git(tmp, "commit", "-q", "-m", "Linux 6.1 from Debian's linux-source-6.1")


@pytest.fixture(scope="module")
def clone(kernels: Kernels) -> Path:
    base = kernels.get(arch="x86_64")
    assert base.source_tree is not None
    recipe = hashlib.sha256(inspect.getsource(_make_clone).encode()).hexdigest()[:12]
    repo = cache.publish(cache.cache_root() / "test-repos" / f"reuse-{base.key}-{recipe}",
                         lambda tmp: _make_clone(tmp, base.source_tree or Path()))
    _git(repo, "checkout", "-q", "-f", "HEAD")  # as it was committed: no edit of a last run
    _git(repo, "clean", "-q", "-f", "-d")
    return repo


def _write(repo: Path, files: dict[str, str], link: str) -> None:
    for rel, text in files.items():
        (repo / rel).write_text(text)
    (repo / "init" / "ltoboot_link.h").unlink(missing_ok=True)
    (repo / "init" / "ltoboot_link.h").symlink_to(link)


def _strings(guests: Guests, kernel: Kernel) -> list[str]:
    out = guests.get(kernel).run("dmesg | grep 'ltoboot-reuse: '").output
    return sorted(line.split("ltoboot-reuse: ", 1)[1].strip() for line in out.splitlines())


def _built(repo: Path) -> Kernel:
    before = snapshot(repo)
    kernel = build_kernel(BuildSpec(arch="x86_64", kernel_src=str(repo)))
    after = snapshot(repo)
    assert after == before, [p for p in before if before[p] != after.get(p)][:5]
    print(f"{kernel.label} {kernel.key[:12]}: {kernel.build_seconds} s, {kernel.steps} steps, "
          f"from {kernel.extra.get('incremental_from')}")
    return kernel


def test_each_kind_of_edit_reaches_the_kernel_built_from_another(
        clone: Path, guests: Guests) -> None:
    makefile = (clone / "init" / "Makefile").read_text()
    kconfig = (clone / "init" / "Kconfig").read_text()
    # v1: new untracked files (a C file, a header, a symlink to one of two headers), a
    # tracked Makefile that builds them
    _write(clone, {
        "init/ltoboot_reuse.c": PRINTER, "init/ltoboot_gone.c": GONE,
        "init/ltoboot_reuse.h": '#define REUSE_HEADER "header-one"\n',
        "init/ltoboot_a.h": '#define REUSE_LINK "link-a"\n',
        "init/ltoboot_b.h": '#define REUSE_LINK "link-b"\n',
        "init/Makefile": makefile + "obj-y += ltoboot_reuse.o ltoboot_gone.o\n"
                                    'CFLAGS_ltoboot_reuse.o += -DREUSE_FLAG=\\"flag-one\\"\n',
    }, "ltoboot_a.h")
    one = _built(clone)
    # from the default kernel's build in a fresh cache (or a nearer one a cache holds)
    assert "incremental_from" in one.extra and "incremental_missed" not in one.extra, one.extra
    assert _strings(guests, one) == ["gone-still-here", "header-one link-a flag-one"]
    # v2: the header changed at the same size, the symlink retargeted to an older file, a
    # file deleted (and its Makefile line), a Kconfig option added, a flag in the Makefile
    # changed; and every edited file's time set back, as `cp -p` or `tar x` would
    _write(clone, {
        "init/ltoboot_reuse.h": '#define REUSE_HEADER "header-two"\n',
        "init/Makefile": makefile + "obj-y += ltoboot_reuse.o\n"
                                    'CFLAGS_ltoboot_reuse.o += -DREUSE_FLAG=\\"flag-two\\"\n',
        "init/Kconfig": kconfig + "\nconfig LTOBOOT_REUSE\n\tbool\n\tdefault y\n",
    }, "ltoboot_b.h")
    (clone / "init" / "ltoboot_gone.c").unlink()
    old = 978307200  # 2001
    for rel in ("init/ltoboot_reuse.h", "init/Makefile", "init/Kconfig", "init/ltoboot_b.h"):
        os.utime(clone / rel, (old, old))
    two = _built(clone)
    # from v1's (or a nearer build a cache holds): never from nothing, never a missed change
    assert "incremental_from" in two.extra and "incremental_missed" not in two.extra, two.extra
    assert _strings(guests, two) == ["header-two link-b flag-two", "kconfig-on"]

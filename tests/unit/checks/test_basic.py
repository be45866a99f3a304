"""proc_version and lto_config: what /proc/version and /proc/config.gz must say for each LTO mode,
on recorded output."""

from __future__ import annotations

from pathlib import Path

from harness.checks import basic as checks

SEED = ("Linux version 5.9.0-rc3+ (kees@...rok) (clang version 12.0.0 ( db1ec04963cc), "
        "LLD 12.0.0 ( db1ec04963cc)) #1 SMP Thu Sep 3 15:54:14 PDT 2020")


DEBIAN = ("Linux version 6.1.192 (ltoboot@ltoboot) (Debian clang version 19.1.7 (3~deb12u1), "
          "Debian LLD 19.1.7) #1 Mon Nov 23 19:47:08 UTC 2026")


GCC = "Linux version 6.1.0 (x@y) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils) 2.40) #1"


def test_proc_version() -> None:
    assert checks.evaluate_proc_version(SEED, 12)[0]
    assert checks.evaluate_proc_version(DEBIAN, 19) == (True, "clang version 19.1.7, LLD 19.1.7")
    ok, why = checks.evaluate_proc_version(DEBIAN, 18)
    assert not ok and "expected the toolchain that built it: 18" in why
    ok, why = checks.evaluate_proc_version(GCC, None)
    assert not ok and "clang version and LLD" in why


THIN = """CONFIG_LTO=y
CONFIG_LTO_CLANG=y
CONFIG_ARCH_SUPPORTS_LTO_CLANG=y
CONFIG_ARCH_SUPPORTS_LTO_CLANG_THIN=y
CONFIG_HAS_LTO_CLANG=y
# CONFIG_LTO_NONE is not set
# CONFIG_LTO_CLANG_FULL is not set
CONFIG_LTO_CLANG_THIN=y"""


NONE = """CONFIG_ARCH_SUPPORTS_LTO_CLANG=y
CONFIG_ARCH_SUPPORTS_LTO_CLANG_THIN=y
CONFIG_HAS_LTO_CLANG=y
CONFIG_LTO_NONE=y
# CONFIG_LTO_CLANG_FULL is not set
# CONFIG_LTO_CLANG_THIN is not set"""


def test_lto_config() -> None:
    assert checks.evaluate_lto_config(THIN, "thin")[0]
    ok, why = checks.evaluate_lto_config(NONE, "thin")
    assert not ok and why.startswith("not an LTO kernel") and "CONFIG_LTO_NONE=y" in why
    assert checks.evaluate_lto_config(NONE, "none")[0]
    ok, why = checks.evaluate_lto_config(THIN, "none")
    assert not ok and "ThinLTO kernel where no LTO was expected" in why
    ok, why = checks.evaluate_lto_config(THIN, "full")
    assert not ok and "ThinLTO kernel where full LTO" in why
    assert not checks.evaluate_lto_config("", "thin")[0]


def test_an_in_tree_module_that_loads_passes_and_one_the_loader_refuses_fails() -> None:
    from harness.checks.basic import evaluate_in_tree, load_one_command

    names = ["xt_MASQUERADE", "sha1_ce"]
    cmd = load_one_command(names)
    assert "for m in xt_MASQUERADE sha1_ce; do" in cmd and "> /dev/kmsg" in cmd
    assert evaluate_in_tree(names, "loaded xt_MASQUERADE\nunloaded xt_MASQUERADE\n") == (
        True, "in-tree module xt_MASQUERADE loaded and unloaded")
    ok, why = evaluate_in_tree(names, "loaded xt_MASQUERADE\n")
    assert ok and "could not remove it" in why
    # a driver without its device: busybox modprobe's strerror, nothing from the loader
    nodev = ("modprobe: can't load module xt_MASQUERADE (kernel/net/netfilter/"
             "xt_MASQUERADE.ko): No such device\nfailed xt_MASQUERADE\n"
             "modprobe: can't load module sha1_ce (kernel/arch/arm64/crypto/sha1-ce.ko): "
             "No such device\nfailed sha1_ce\n")
    ok, why = evaluate_in_tree(names, nodev)
    assert ok is None and why.startswith("none of 2 in-tree modules tried")
    refused = ("modprobe: can't load module xt_MASQUERADE (kernel/net/netfilter/"
               "xt_MASQUERADE.ko): No such file or directory\nfailed xt_MASQUERADE\n"
               "loaded sha1_ce\nunloaded sha1_ce\n"
               "loader: [   12.5] xt_MASQUERADE: Unknown symbol nf_nat_masquerade_ipv4 (err -2)\n")
    ok, why = evaluate_in_tree(names, refused)
    assert ok is False and why == ("the module loader refused an in-tree module: [   12.5] "
                                   "xt_MASQUERADE: Unknown symbol nf_nat_masquerade_ipv4 "
                                   "(err -2)")
    ok, why = evaluate_in_tree(names, "modprobe: can't load module x: Exec format error\n")
    assert ok is False and "Exec format error" in why
    # busybox words a driver's ENOENT as an unknown symbol: without the kernel's line, none
    enoent = ("modprobe: can't load module xt_MASQUERADE (kernel/net/x.ko): unknown symbol in "
              "module, or unknown parameter\nfailed xt_MASQUERADE\nfailed sha1_ce\n")
    assert evaluate_in_tree(names, enoent)[0] is None


def test_the_loader_lines_are_those_after_the_mark(tmp_path: Path) -> None:
    """The command's own shell pipeline, run here on a recorded kernel log: an earlier
    refusal (the modversions check's) before the mark is not the in-tree module's."""
    import subprocess

    from harness.checks.basic import KMSG_MARK, load_one_command

    log = tmp_path / "dmesg"
    log.write_text("[ 3.1] ltoboot_user: disagrees about version of symbol x\n"
                   f"[ 4.0] {KMSG_MARK}\n[ 4.1] xt_MASQUERADE: Unknown symbol y (err -2)\n")
    cmd = load_one_command(["xt_MASQUERADE"]).split("done; ", 1)[1]
    out = subprocess.run(["sh", "-c", cmd.replace("dmesg |", f"cat {log} |")],
                         capture_output=True, text=True).stdout
    assert out == "loader: [ 4.1] xt_MASQUERADE: Unknown symbol y (err -2)\n"
    log.write_text("[ 3.1] ltoboot_user: disagrees about version of symbol x\n")  # no mark
    out = subprocess.run(["sh", "-c", cmd.replace("dmesg |", f"cat {log} |")],
                         capture_output=True, text=True).stdout
    assert out == ""


def test_in_tree_modules_come_from_modules_order_without_test_module(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from harness.checks.basic import IN_TREE_TRIES, in_tree_modules

    d = tmp_path / "lib/modules/6.1.192"
    d.mkdir(parents=True)
    (d / "modules.order").write_text("kernel/lib/test_module.ko\n" + "".join(
        f"kernel/drivers/x/mod-{i}.ko\n" for i in range(10)))
    kernel = SimpleNamespace(modules=tmp_path)
    names = in_tree_modules(kernel)  # type: ignore[arg-type]
    assert names == [f"mod_{i}" for i in range(IN_TREE_TRIES)]
    (d / "modules.order").write_text("kernel/lib/test_module.ko\n")
    assert in_tree_modules(kernel) == []  # type: ignore[arg-type]
    assert in_tree_modules(SimpleNamespace(modules=None)) == []  # type: ignore[arg-type]

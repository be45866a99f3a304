"""`ltoboot`'s command line as declarations: each command, in the order a user meets them,
with the option groups it takes (declared once in harness/runs/options.py). What the commands do
is harness/faces/cli.py; this module knows only their names and options (as tuxrun keeps its
argparse.py apart from what runs)."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
from collections.abc import Iterable

from harness.base.arch import PREFERRED
from harness.runs import options
from harness.runs.options import Option, opt

DESCRIPTION = "Build, boot and check Clang LTO Linux kernels in QEMU (x86_64, arm64)."


def version() -> str:
    try:
        return importlib.metadata.version("ltoboot")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown (not installed)"


def _add(p: argparse.ArgumentParser, *groups: Iterable[Option]) -> None:
    for group in groups:
        for option in group:
            option.add(p.add_argument)


KERNEL_AND_CHECKS = (*options.KERNEL_OPTIONS, options.CHECK)
RUN = (
    opt("--initcalls", action="store_true",
        help="also build a non-LTO kernel per arch and compare initcall order and durations "
             "with it (one more build per arch)"),
    opt("--coverage", action="store_true",
        help="also print, per patch of the LTO series, the verdicts that cover it"),
    *options.DOCUMENTS,
)
TESTED_BY = (
    opt("--name", help="your name (default: git config user.name)"),
    opt("--email", help="your email (default: git config user.email)"),
    opt("--format", choices=("text", "json"), default="text"),
    opt("--series", metavar="MSGID|URL|FILE",
        help="a mailed series to apply onto --kernel-src at --base, then test: a Message-ID "
             "(fetched by b4 from the server b4.midmask names, lore.kernel.org by default), a "
             "lore or other public-inbox URL, a Patchwork series URL, an mbox, a maildir, or "
             "a directory of git format-patch files"),
    opt("--base", default="HEAD", metavar="REF",
        help="the commit of --kernel-src to apply --series onto (default: HEAD)"),
    opt("--reply", metavar="FILE",
        help="write the reply (RFC 5322, for git send-email or mutt -H) to FILE: the "
             "Tested-by when every check passed, else the report to the patch that breaks "
             "the kernel (no trailer)"),
    opt("--no-bisect", action="store_true",
        help="when the series fails, do not check its base or bisect its patches for the "
             "one that breaks it"),
    *options.DOCUMENTS,
)
BISECT_STEP = (
    opt("--runs", type=int, default=1, help="boots per step; bad if any fails (flaky failures)"),
    opt("--log-dir", help=argparse.SUPPRESS),
)
BISECT = (opt("--good", required=True, metavar="REV"), opt("--bad", required=True, metavar="REV"))
LAVA_EXPORT = (
    opt("--out", required=True, metavar="DIR", help="a new or empty directory"),
    opt("--artifact-url", metavar="URL",
        help="where DIR will be served (http or https); the jobs fetch kernel and initramfs "
             "from there (default: file:// URLs into DIR, for this machine)"),
)
LAVA_RUN = (
    opt("--parallel", type=int, default=os.cpu_count() or 1, metavar="N",
        help="jobs at once (default: the number of cores)"),
    *options.DOCUMENTS,
    opt("--out", help=argparse.SUPPRESS),
)
LAVA_SUBMIT = (
    opt("--server", required=True, metavar="URL",
        help="the LAVA server, e.g. https://lava.example.org/"),
    opt("--identity", default="default", metavar="NAME",
        help="lavacli identity whose token to use when LAVA_TOKEN is not set "
             "(~/.config/lavacli.yaml; default: default)"),
    opt("--artifact-url", metavar="URL",
        help="where --out will be served (http or https) for the lab to fetch kernel and "
             "initramfs (default: file:// URLs: only for a worker on this machine)"),
    opt("--out", metavar="DIR",
        help="write the jobs and their files here, to publish at --artifact-url (default: a "
             "scratch directory, removed at the end)"),
    opt("--wait", type=float, default=60.0, metavar="MINUTES",
        help="how long to wait for the jobs, queue included (default: 60)"),
    *options.DOCUMENTS,
)

# (name, help, option groups), in the order a user meets them; `lava` has commands of its own
COMMANDS: tuple[tuple[str, str, tuple[tuple[Option, ...], ...]], ...] = (
    ("run", "build, boot and check LTO kernels; print a report", (KERNEL_AND_CHECKS, RUN)),
    ("tested-by", "boot every arch, run every check, print an email-ready Tested-by block "
     "(none when anything failed)", (KERNEL_AND_CHECKS, TESTED_BY)),
    ("bisect", "bisect a kernel git tree between --good and --bad with bisect-step; report "
     "the first bad commit", (KERNEL_AND_CHECKS, BISECT_STEP, BISECT)),
    ("matrix", "build, boot and check every combination of kernel source, clang, arch, LTO "
     "mode and base config; print a table (and JSON)", (options.MATRIX_OPTIONS,)),
    ("lava", "the same checks as LAVA jobs: export them, run them here with LAVA's "
     "dispatcher, or submit them to a lab", ()),
    ("coverage", "what covers each patch of the LTO series (run-time check, build outputs, "
     "build-only) and its broken build", ()),
    ("cache", "what the cache holds, by kind, with sizes and last use; `cache prune` removes "
     "the least recently used", ()),
    ("bisect-step", "a `git bisect run` step for the checked-out commit: 0 good, 1 bad, 125 "
     "skip (does not build)", (KERNEL_AND_CHECKS, BISECT_STEP)),
)
LAVA_COMMANDS: tuple[tuple[str, str, tuple[tuple[Option, ...], ...]], ...] = (
    ("export", "write each kernel's LAVA jobs (and the files they fetch) into a new "
     "directory", (KERNEL_AND_CHECKS, LAVA_EXPORT)),
    ("run", "run the LAVA jobs here with lava-run (root), judge them with our checks, print "
     "the report", (KERNEL_AND_CHECKS, LAVA_RUN)),
    ("submit", "submit the LAVA jobs to a LAVA server, wait for them, judge them with our "
     "checks, print the report", (KERNEL_AND_CHECKS, LAVA_SUBMIT)),
)
CACHE_PRUNE = (
    opt("--older-than", type=float, metavar="DAYS",
        help="remove what was last used more than DAYS ago"),
    opt("--max-size", metavar="SIZE",
        help="then remove the least recently used until the cache is at most SIZE (30G, "
             "500M; default: $LTOBOOT_CACHE_MAX or 30G)"),
)
# one arch at a time, the host's own by default; the tree bisected: the current directory
BISECT_DEFAULTS = {"arch": PREFERRED, "kernel_src": "."}


def parser() -> argparse.ArgumentParser:
    """The parser; each command's namespace says which it is in `command` ("run",
    "lava submit", ...)."""
    p = argparse.ArgumentParser(prog="ltoboot", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"ltoboot {version()}")
    sub = p.add_subparsers(dest="top", required=True, metavar="COMMAND")
    for name, text, groups in COMMANDS:
        cmd = sub.add_parser(name, help=text, description=text)
        _add(cmd, *groups)
        cmd.set_defaults(command=name)
        if name in ("bisect", "bisect-step"):
            cmd.set_defaults(**BISECT_DEFAULTS)
        if name == "lava":
            lsub = cmd.add_subparsers(dest="lava_command", required=True, metavar="COMMAND")
            for lname, ltext, lgroups in LAVA_COMMANDS:
                lcmd = lsub.add_parser(lname, help=ltext, description=ltext)
                _add(lcmd, *lgroups)
                lcmd.set_defaults(command=f"lava {lname}")
        if name == "cache":
            csub = cmd.add_subparsers(dest="cache_command", metavar="COMMAND")
            prune = csub.add_parser("prune", help="remove the least recently used entries no "
                                    "running process holds")
            _add(prune, CACHE_PRUNE)
            prune.set_defaults(command="cache prune")
    return p

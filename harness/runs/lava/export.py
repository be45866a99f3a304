"""`ltoboot lava export`: a kernel's LAVA jobs and the files they fetch, in one directory.

Per kernel: the main job (every check that does not crash the guest, in our order) and one
job per crash check. The directory holds, per kernel, the kernel in TuxMake's layout, the
boot image and our initramfs (the kernel's modules, our probe modules and tools in it), named
in the jobs by `--artifact-url`
BASE + their path in the directory (publish the directory there), or by file:// when the jobs
run on this machine. Each job is checked against LAVA's own schema (strict) when lava_common
is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from harness.base import cache
from harness.base.arch import get_arch
from harness.base.errors import InfraError, UsageError
from harness.base.progress import say
from harness.guest import boot, qemu
from harness.guest.initramfs import build_initramfs
from harness.kernel import artifacts
from harness.kernel.model import Kernel
from harness.runs.lava import job, plan
from harness.runs.lava.job import Job

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, where lava-dispatcher's modules live
_VALIDATE = """
import sys, yaml
from lava_common.schemas import validate
for path in sys.argv[1:]:
    try:
        validate(yaml.safe_load(open(path)), strict=True)
    except Exception as e:
        print(f"{path}: {e}")
"""


def artifact_base(value: str | None) -> str | None:
    """--artifact-url: an http(s) URL (the directory's place on a web server); the files'
    names are added to it, so a ?query or #fragment (a signed URL) cannot be kept."""
    if value is None:
        return None
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 -- parses the port: 'https://[::1/' raises here
    except ValueError as e:
        raise UsageError(f"--artifact-url: not a URL ({e}); give where the export directory "
                         "will be served, e.g. https://example.org/ltoboot/") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--artifact-url {value}: not an http(s) URL; give where the export "
                         "directory will be served, e.g. https://example.org/ltoboot/")
    if parts.username is not None or parts.password is not None:
        raise UsageError("--artifact-url: the URL carries user:password@ (not shown), which "
                         "every job would carry to the lab; serve the files without it")
    if parts.query or parts.fragment:
        raise UsageError(f"--artifact-url {value}: has a ?query or #fragment, which the files' "
                         "names would be added after; give the directory's plain URL")
    return value.strip().rstrip("/") + "/"


def file_url(path: Path) -> str:
    """A file:// URL LAVA opens: it takes the URL's path as it is, without undoing
    %-escapes, so spaces and non-ASCII names stay as they are; '?' and '#' cannot."""
    if "?" in str(path) or "#" in str(path):
        raise UsageError(f"{path}: LAVA cannot open a file:// URL whose path has '?' or '#'; "
                         "give --out (or LTOBOOT_CACHE) a path without them")
    return f"file://{path}"


def _url(base: str | None, out: Path, rel: Path) -> str:
    """Where a job fetches the file `rel` of the export directory `out`."""
    return f"{base}{quote(rel.as_posix())}" if base else file_url(out / rel)


def _write(tmp: Path, kernel: Kernel, names: Sequence[str] | None, base: str | None,
           final: Path) -> list[tuple[str, Path, tuple[plan.CheckPlan, ...], str]]:
    """Write one kernel's files and jobs below tmp (they will live at `final`)."""
    arch = get_arch(kernel.arch)
    firmware = boot.default_firmware(kernel)
    the_plan = plan.make(kernel, names, firmware=firmware)
    # a plain name, with the kernel's key: a lab's folder of another kernel (an earlier
    # export at the same URL) is never this one's
    folder = tmp / re.sub(r"[^A-Za-z0-9._-]", "_", f"{kernel.label}-{kernel.key}")
    # the kernel in TuxMake's layout (image, config, System.map, modules.tar.xz, metadata):
    # the published folder is also what `ltoboot run --kernel URL` checks
    shutil.copytree(artifacts.export(kernel), folder)
    image = folder / Path(arch.image).name  # what QEMU boots (arm64's Image.gz is beside it)
    if not image.exists():
        shutil.copyfile(kernel.image, image)
    initrd = folder / "initramfs.cpio"
    shutil.copyfile(build_initramfs(kernel, None, boot.guest_files(kernel)), initrd)
    firmware_url = firmware_sum = ""
    if firmware:  # the lab boots through the same UEFI firmware, fetched with the kernel
        copied = folder / Path(firmware).name
        shutil.copyfile(firmware, copied)
        firmware_url = _url(base, final, copied.relative_to(tmp))
        firmware_sum = cache.file_sha256(copied)
    # LAVA checks what it downloaded against these: a job boots exactly what was exported
    sums = {"kernel": cache.file_sha256(image), "ramdisk": cache.file_sha256(initrd),
            "firmware": firmware_sum}
    written = []
    for name, plans, definition in definitions(
            kernel, the_plan, kernel_url=_url(base, final, image.relative_to(tmp)),
            initrd_url=_url(base, final, initrd.relative_to(tmp)), firmware_url=firmware_url,
            sha256=sums, memory_mb=qemu.memory_for(initrd.stat().st_size)):
        path = folder / f"job{'-' + name if name else ''}.yaml"
        path.write_text(dump(definition))
        written.append((name, path, plans, firmware))
    return written


def dump(definition: dict[str, Any]) -> str:
    return yaml.safe_dump(definition, sort_keys=False, width=1000)


def definitions(kernel: Kernel, the_plan: plan.Plan, *, kernel_url: str, initrd_url: str,
                firmware_url: str, sha256: dict[str, str], memory_mb: int = qemu.MEMORY_MB
                ) -> list[tuple[str, tuple[plan.CheckPlan, ...], dict[str, Any]]]:
    """Each job of a kernel's plan, as (name: "" for the main job, the plans it replays, its
    definition): a pure function of the kernel, the plan and where the files are."""
    arch = get_arch(kernel.arch)
    identity = plan.CheckPlan(plan.IDENTITY, (plan.identity_command(kernel.key),))
    found = []
    for name in the_plan.jobs():
        plans = tuple(p for p in (the_plan.on("") if not name else
                                  [c for c in the_plan.checks if c.check == name])
                      if p.commands)
        title = f"ltoboot {kernel.label} {kernel.release}" + (f" {name}" if name else "")
        definition = job.definition(
            name=title, arch=arch, firmware_url=firmware_url,
            plans=plans if name else (identity, *plans), sha256=sha256,
            kernel_url=kernel_url, initrd_url=initrd_url, memory_mb=memory_mb,
            metadata={"ltoboot.kernel": kernel.key, "ltoboot.job": name or "main"})
        found.append((name, plans, definition))
    return found


def export(kernels: Sequence[Kernel], out: Path, *, names: Sequence[str] | None = None,
           artifact_url: str | None = None) -> list[Job]:
    """Write the jobs of `kernels` into `out` (new or empty), all at once: into a temporary
    sibling first, renamed into place when complete."""
    base = artifact_base(artifact_url)
    out = out.absolute()
    if base is None:
        file_url(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory: give a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(cache.unique_name(f".tmp-{out.name}-"))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        written = [(k, *w) for k in kernels for w in _write(tmp, k, names, base, out)]
        validate([path for _, _, path, _, _ in written])
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    jobs = [Job(k, n, out / p.relative_to(tmp), pl, f) for k, n, p, pl, f in written]
    say(f"LAVA jobs: {len(jobs)} in {out}: " + ", ".join(j.path.relative_to(out).as_posix()
                                                         for j in jobs))
    return jobs


def validate(paths: Sequence[Path]) -> bool:
    """Check the jobs with LAVA's schema, strict (what a server does on submission); False
    when lava_common is not installed (said once), InfraError naming a job it refuses."""
    if not paths:
        return True
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", _VALIDATE, *map(str, paths)],
                           capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfraError(f"cannot run {SYSTEM_PYTHON} to validate the LAVA jobs: {e}") from None
    if "No module named 'lava_common'" in r.stderr:
        say("LAVA jobs not validated: lava_common is missing (apt-get install lava-dispatcher)")
        return False
    if r.returncode != 0 or r.stdout.strip():
        why = (r.stdout.strip() or r.stderr.strip()).splitlines()[-1]
        raise InfraError(f"a LAVA job fails LAVA's schema (a bug in ltoboot): {why}")
    return True

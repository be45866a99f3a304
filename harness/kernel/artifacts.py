"""Our kernels in TuxMake's artifact layout, and a small HTTP server for them.

The suite serves a kernel we built exactly as CI systems publish theirs, then checks the
fetched copy with the same tests as the built one: fetching is tested on real artifacts.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path
from typing import Any

from harness.base import cache
from harness.base.arch import get_arch
from harness.kernel.model import Kernel

RECIPE = 1


def _modules_tar(modroot: Path) -> bytes:
    """modules.tar.xz as `make modules_install` + tar make it, minus the build/source links
    that point into the builder's machine."""
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if info.issym() and info.name.count("/") == 3 and info.name.endswith(("/build",
                                                                               "/source")):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        tar.add(modroot / "lib", arcname="lib", filter=keep)
    return buf.getvalue()


def _export(tmp: Path, kernel: Kernel) -> None:
    tmp.mkdir()
    arch = get_arch(kernel.arch)
    name = arch.artifact_images[0]
    data = kernel.image.read_bytes()
    (tmp / name).write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    (tmp / "config").write_bytes(kernel.config.read_bytes())
    if kernel.system_map is not None:
        (tmp / "System.map").write_bytes(kernel.system_map.read_bytes())
    if kernel.modules is not None:
        (tmp / "modules.tar.xz").write_bytes(_modules_tar(kernel.modules))
    (tmp / "metadata.json").write_text(json.dumps({
        "build": {"target_arch": arch.kernel_arch, "toolchain": f"clang-{kernel.llvm_major}",
                  "kconfig": "ltoboot", "lto": kernel.lto},
        "results": {"artifacts": {"kernel": [name], "config": ["config"],
                                  "modules": ["modules.tar.xz"]}},
        "source": kernel.source}, indent=2))


def export(kernel: Kernel) -> Path:
    """A directory in TuxMake's layout holding `kernel`, made once per machine and build: a
    kernel built again under the same key (its entry pruned, then rebuilt) is not the same
    bytes (its build time is in them), so the image's hash is in the key too."""
    key = cache.content_key({"recipe": RECIPE, "kernel": kernel.key,
                             "image": cache.file_sha256_remembered(kernel.image)})
    return cache.publish(cache.cache_root() / "exports" / f"{kernel.label}-{key}",
                         lambda tmp: _export(tmp, kernel))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server:
    """Static files of `root` on 127.0.0.1, on a free port, in a daemon thread."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_Quiet, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.root = root
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: Path) -> str:
        rel = path.relative_to(self.root).as_posix()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{rel}" + (
            "/" if path.is_dir() else "")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

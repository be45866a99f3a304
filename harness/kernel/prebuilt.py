"""Kernels built elsewhere, given with --kernel: a kbuild O= directory, an image with its files,
TuxMake's artifact layout (a local directory or a URL), or a manifest of URLs with sha256 sums.

Whatever the source, the result is a Kernel like one we built, so booting, checks and reports
do not care where it came from. What the kernel is (architecture, LTO mode, release) is read
from the image and its config, never from the file names.
"""

from __future__ import annotations

import errno
import gzip
import json
import lzma
import os
import shutil
import tarfile
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlparse

from harness.base import cache, proc
from harness.base.arch import ARCHES, get_arch
from harness.base.errors import InfraError, NotFound, UsageError
from harness.base.progress import say
from harness.kernel import fetch, image, kconfig
from harness.kernel.model import MODROOT, BuildSpec, Checkout, Kernel, lto_of_config

RECIPE = 1
CONFIG_NAMES = ("config", ".config", "config.gz")
SYSTEM_MAP, MODULES_TAR = "System.map", "modules.tar.xz"
MANIFEST_KEYS = ("kernel", "config", "system_map", "modules")
ALL_IMAGES = tuple(dict.fromkeys(n for a in ARCHES.values() for n in a.artifact_images))


@dataclass(frozen=True)
class Files:
    """A prebuilt kernel's files, local by now."""

    origin: str  # what the user gave, for reports
    image: Path
    config: Path | None = None
    system_map: Path | None = None
    modules_tar: Path | None = None
    build_dir: Path | None = None  # a kbuild O= directory


def is_url(ref: str) -> bool:
    return "://" in ref


# -- finding the files --------------------------------------------------------------------------

def _first(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _local(path: Path, origin: str) -> Files:
    if not path.exists():
        raise NotFound(f"{path}: no such file or directory")
    if path.is_dir() and (path / ".config").is_file():  # a kbuild O= directory
        img = _first([path / a.image for a in ARCHES.values()])
        if img is None:
            raise UsageError(f"{path}: a kbuild output directory without a built image "
                             f"({' or '.join(a.image for a in ARCHES.values())}); run make")
        return Files(origin, img, path / ".config", _first([path / SYSTEM_MAP]),
                     build_dir=path)
    if path.is_dir():
        img = _first([path / n for n in ALL_IMAGES])
        if img is None:
            raise UsageError(f"{path}: neither a kbuild output directory (.config and "
                             f"arch/*/boot/...) nor TuxMake artifacts ({', '.join(ALL_IMAGES)})")
        return _local(img, origin)
    if path.suffix in (".json", ".toml"):
        return _manifest(path.resolve().as_uri(), origin)
    where = path.parent  # an image: its files are the ones beside it, by TuxMake's names
    return Files(origin, path, _first([where / n for n in CONFIG_NAMES]),
                 _first([where / SYSTEM_MAP]), _first([where / MODULES_TAR]))


def _remote_dir(base: str, origin: str, image_url: str | None = None) -> Files:
    img = None
    for url in [image_url] if image_url else [urljoin(base, n) for n in ALL_IMAGES]:
        img = fetch.fetch_optional(url)
        if img is not None:
            break
    if img is None:
        raise NotFound(f"{origin}: no kernel image there ({', '.join(ALL_IMAGES)}); "
                       "give the URL of a TuxMake artifact directory or of an image")
    config = next((p for p in (fetch.fetch_optional(urljoin(base, n)) for n in CONFIG_NAMES)
                   if p is not None), None)
    return Files(origin, img, config, fetch.fetch_optional(urljoin(base, SYSTEM_MAP)),
                 fetch.fetch_optional(urljoin(base, MODULES_TAR)))


def parse_manifest(text: str, name: str) -> dict[str, tuple[str, str | None]]:
    """{part: (url, sha256)} from a JSON or TOML manifest such as
    `kernel = {url = "bzImage", sha256 = "..."}`; a part may also be a plain URL string."""
    try:
        raw = tomllib.loads(text) if name.endswith(".toml") else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{name}: not a valid manifest: {e}") from None
    if not isinstance(raw, dict) or "kernel" not in raw:
        raise UsageError(f"{name}: a manifest needs a 'kernel' entry (url and sha256)")
    parts = {}
    for key, value in raw.items():
        if key not in MANIFEST_KEYS:
            raise UsageError(f"{name}: unknown manifest entry {key!r}; known: "
                             + ", ".join(MANIFEST_KEYS))
        if isinstance(value, str):
            value = {"url": value}
        if not isinstance(value, dict) or not isinstance(value.get("url"), str):
            raise UsageError(f"{name}: manifest entry {key!r} needs a url")
        parts[key] = (value["url"], value.get("sha256"))
    return parts


def _part_url(manifest: str, part: str) -> str:
    """Where a manifest's part is. A remote manifest may name files of its own origin only
    (scheme, host, port): never local files, never another server."""
    url = urljoin(manifest, part)
    fetch.check_url(url)
    m, u = urlparse(manifest), urlparse(url)
    if m.scheme in ("http", "https") and (u.scheme, u.netloc) != (m.scheme, m.netloc):
        raise UsageError(f"{manifest}: part {part!r} is outside the manifest's origin "
                         f"({m.scheme}://{m.netloc}): refused")
    return url


def _manifest(url: str, origin: str) -> Files:
    path = fetch.fetch(url)
    parts = parse_manifest(path.read_text(errors="replace"), urlparse(url).path)
    got = {k: fetch.fetch(_part_url(url, u), sha) for k, (u, sha) in parts.items()}
    return Files(origin, got["kernel"], got.get("config"), got.get("system_map"),
                 got.get("modules"))


def locate(ref: str) -> Files:
    """The files of prebuilt kernel `ref`, fetched into the cache when remote."""
    if not is_url(ref):
        return _local(Path(ref), ref)
    path = fetch.local_path(ref)  # checks the scheme
    if path is not None:
        return _local(path, ref)
    name = PurePosixPath(urlparse(ref).path).name
    if name.endswith((".json", ".toml")):
        return _manifest(ref, ref)
    if name in ALL_IMAGES:
        return _remote_dir(ref, ref, image_url=ref)
    return _remote_dir(ref if ref.endswith("/") else ref + "/", ref)


# -- making a Kernel of them --------------------------------------------------------------------

def config_text(files: Files, data: bytes) -> str:
    if files.config is not None:
        raw = files.config.read_bytes()
        try:
            return (gzip.decompress(raw) if raw.startswith(image.GZIP_MAGIC) else raw).decode(
                errors="replace")
        except (OSError, EOFError, zlib.error) as e:
            raise UsageError(f"{files.origin}: its config {files.config.name} does not "
                             f"decompress ({e}): give a whole config file") from None
    missing: set[tuple[str, str]] = set()
    embedded = image.embedded_config(data, missing)
    if embedded is None:
        unread = ""
        if missing:
            names = ", ".join(sorted(name for name, _ in missing))
            tools = " ".join(sorted(tool for _, tool in missing))
            unread = (f" (its {names} data was not read: install {tools}, or run ./setup.sh, "
                      "and try again)")
        raise UsageError(f"{files.origin}: no config beside the image and none found embedded "
                         f"in it (CONFIG_IKCONFIG){unread}; give the config file")
    return embedded


def check_tar(tar: tarfile.TarFile, name: str) -> list[tarfile.TarInfo]:
    """The members to extract: regular files and directories. Links are left out (a modules
    tree needs none: modules_install's build/source links point into the builder's machine),
    absolute names, '..' and device files are refused before anything is written."""
    keep = []
    for m in tar.getmembers():
        parts = PurePosixPath(m.name).parts
        if m.name.startswith("/") or ".." in parts:
            raise UsageError(f"{name}: entry {m.name!r} points outside the target directory: "
                             "refused")
        if m.isdev() or m.isfifo():
            raise UsageError(f"{name}: device or fifo entry {m.name!r}: refused")
        if m.isfile() or m.isdir():
            keep.append(m)
    return keep


def safe_extract(tar_path: Path, dest: Path, name: str) -> list[str]:
    """Extract `tar_path` into the new directory `dest`, safe by construction on any Python
    (no tarfile filter needed): only files and directories are written, never a link, so no
    path can lead outside `dest`. Returns the names of the members left out."""
    try:
        with tarfile.open(tar_path) as tar:
            members = tar.getmembers()
            keep = check_tar(tar, name)
            dest.mkdir(parents=True)
            for m in keep:
                target = dest.joinpath(*[p for p in PurePosixPath(m.name).parts if p != "."])
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                             0o755 if m.mode & 0o111 else 0o644)
                src = tar.extractfile(m)
                assert src is not None
                with os.fdopen(fd, "wb") as out, src:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error) as e:
        raise UsageError(f"{name}: not a readable tarball ({e})") from None
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InfraError(f"{name}: no space left to extract it into {dest}: free disk "
                             "space or set LTOBOOT_CACHE elsewhere") from None
        raise UsageError(f"{name}: cannot be extracted ({e.strerror}: {e.filename})") from None
    kept = {m.name for m in keep}
    return [m.name for m in members if m.name not in kept]


def extract_modules(tar_path: Path, dest: Path, name: str) -> None:
    """Extract modules.tar.xz into `dest` (an INSTALL_MOD_PATH root) and make sure depmod ran."""
    left_out = safe_extract(tar_path, dest, name)
    if left_out:
        say(f"{name}: left out {len(left_out)} link(s), a modules tree needs none: "
            + ", ".join(left_out[:4]) + (" ..." if len(left_out) > 4 else ""))
    for release in (dest / "lib" / "modules").glob("*"):
        if not (release / "modules.dep").exists():
            proc.run(["depmod", "-b", str(dest), release.name], what=f"depmod for {name}",
                     error=UsageError)


def _store(tmp: Path, files: Files, data: bytes, arch: str, config: str) -> None:
    tmp.mkdir()
    (tmp / PurePosixPath(get_arch(arch).image).name).write_bytes(data)
    (tmp / "config").write_text(config)
    if files.system_map is not None:
        shutil.copyfile(files.system_map, tmp / SYSTEM_MAP)
    if files.modules_tar is not None:
        extract_modules(files.modules_tar, tmp / MODROOT, files.origin + " modules.tar.xz")


def _install_modules(tmp: Path, build_dir: Path, release: str) -> None:
    """What `make modules_install` puts under INSTALL_MOD_PATH, from an O= directory that was
    built but not installed: the .ko files of modules.order, the builtin lists, depmod."""
    dest = tmp / "lib" / "modules" / release
    dest.mkdir(parents=True)
    for line in (build_dir / "modules.order").read_text().split():
        ko = Path(line).with_suffix(".ko")
        if not (build_dir / ko).is_file():
            raise UsageError(f"{build_dir}/modules.order lists {ko}, which is not there: run "
                             f"`make modules` in it (or give its installed modules)")
        (dest / "kernel" / ko.parent).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build_dir / ko, dest / "kernel" / ko)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (build_dir / name).is_file():
            shutil.copyfile(build_dir / name, dest / name)
    proc.run(["depmod", "-b", str(tmp), release], what=f"depmod for {build_dir}", error=UsageError)


def _build_dir_modules(d: Path, key: str) -> Path | None:
    """The O= directory's installed modules, or ones we install from it into the cache."""
    if (d / MODROOT).is_dir():
        return d / MODROOT
    release_file = d / "include" / "config" / "kernel.release"
    if not (d / "modules.order").is_file() or not release_file.is_file():
        return None
    release = release_file.read_text().strip()
    return cache.publish(cache.cache_root() / "prebuilt" / f"modules-{key}",
                         lambda tmp: _install_modules(tmp, d, release))


def _release(modroot: Path | None, info: image.ImageInfo) -> str:
    found = sorted(p.name for p in (modroot / "lib" / "modules").glob("*")) if modroot else []
    return found[0] if found else info.version or "unknown"


def resolve(spec: BuildSpec) -> Kernel:
    """The prebuilt kernel spec.prebuilt names, as a Kernel; bad input is one clear error."""
    assert spec.prebuilt is not None
    files = locate(spec.prebuilt)
    data, info = image.read(files.image)
    if spec.arch != info.arch:
        raise UsageError(f"{files.origin}: an {info.arch} kernel image, but --arch {spec.arch}; "
                         f"use --arch {info.arch}")
    text = config_text(files, data)
    config = kconfig.parse(text)
    lto = lto_of_config(config)
    if lto == "none" and spec.lto != "none":
        raise UsageError(f"{files.origin}: its config has no LTO (CONFIG_LTO_NONE=y) but "
                         f"--lto {spec.lto} wants an LTO kernel; pass --lto none to check it "
                         "anyway")
    key = cache.content_key({"recipe": RECIPE, "image": cache.file_sha256(files.image),
                             "config": text,
                             "map": files.system_map and cache.file_sha256(files.system_map),
                             "modules": files.modules_tar and cache.file_sha256(
                                 files.modules_tar)})
    clang = config.get("CLANG_VERSION", "0")
    common = dict(arch=info.arch, lto=lto, compiler=config.get("CC_VERSION_TEXT", "")
                  .strip('"'), linker="LLD" if config.get("LD_IS_LLD") == "y" else "BFD",
                  llvm_major=int(clang) // 10000 or None, key=key,
                  source=f"prebuilt {files.origin}", extra={"prebuilt": files.origin},
                  checkout=Checkout.of_prebuilt(files.origin))
    if files.build_dir is not None:
        d = files.build_dir
        modroot = _build_dir_modules(d, key)
        source = (d / "source").resolve() if (d / "source").exists() else None
        return Kernel(release=_release(modroot, info), image=files.image.resolve(),
                      config=d / ".config", system_map=files.system_map, modules=modroot,
                      build_dir=d.resolve(), source_tree=source, **common)  # type: ignore[arg-type]
    entry = cache.publish(cache.cache_root() / "prebuilt" / f"{info.arch}-{lto}-{key}",
                          lambda tmp: _store(tmp, files, data, info.arch, text))
    say(f"prebuilt {info.arch} {lto} kernel {info.version or ''} from {files.origin}: {entry}")
    modroot = entry / MODROOT if (entry / MODROOT).is_dir() else None
    return Kernel(release=_release(modroot, info),
                  image=entry / PurePosixPath(get_arch(info.arch).image).name,
                  config=entry / "config",
                  system_map=entry / SYSTEM_MAP if (entry / SYSTEM_MAP).is_file() else None,
                  modules=modroot, build_dir=None, source_tree=None,
                  **common)  # type: ignore[arg-type]


def arch_of(ref: str) -> str:
    """The architecture of prebuilt kernel `ref`, read from its image."""
    return image.read(locate(ref).image)[1].arch

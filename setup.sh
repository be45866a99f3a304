#!/usr/bin/env bash
# Set up ltoboot on Debian 12: the Debian packages it needs, then the Python package (with its
# test extras) in .venv. Idempotent: does nothing (and prints one line) when all is there.
set -euo pipefail
cd "$(dirname "$0")"

LLVM=${LTOBOOT_LLVM:-19}
packages=(
	qemu-system-x86 qemu-system-arm "clang-$LLVM" "lld-$LLVM" "llvm-$LLVM" linux-source-6.1
	busybox-static flex bison bc libelf-dev libssl-dev cpio kmod make libc6-dev xz-utils git
)
python3 -m venv --help >/dev/null 2>&1 || packages+=(python3-venv)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
need_update=
# The arm64 guest's busybox comes from Debian's arm64 package (downloaded, not installed).
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	as_root dpkg --add-architecture arm64
	need_update=1
fi
if [ ${#missing[@]} -gt 0 ] || [ -n "$need_update" ]; then
	echo "setup: installing ${missing[*]:-(arm64 package lists)}"
	as_root apt-get update -q
	[ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q \
		--no-install-recommends "${missing[@]}"
fi

stamp=.venv/.ltoboot-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
	echo "setup: installing the Python package into .venv"
	python3 -m venv .venv
	.venv/bin/python -m pip install -q --upgrade pip
	.venv/bin/python -m pip install -q -e '.[test]'
	echo "$want" > "$stamp"
fi
echo "setup: ready (Debian packages and .venv)"

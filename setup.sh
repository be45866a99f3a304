#!/usr/bin/env bash
# Set up ltoboot on Debian 12: the Debian packages it needs, then the Python package (with its
# test extras) in .venv, made from Debian's own python3. One line per stage; the output of apt
# and pip goes to a log whose path is printed, and is shown whole when a stage fails.
# Idempotent: when everything is there it changes nothing (its time: docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")"

PY=/usr/bin/python3 # Debian's own: what a user's fresh Debian 12 runs (3.11.2), not a newer one
LLVM=${LTOBOOT_LLVM:-19}
logs="${LTOBOOT_CACHE:-$HOME/.cache/ltoboot}/logs"
mkdir -p "$logs"
log="$logs/setup-$(date +%Y%m%d-%H%M%S)-$$.log"
: >"$log"

say() { echo "setup: $*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# Run a stage's command into the log; on failure show the whole log and stop.
quiet() {
	echo "\$ $*" >>"$log"
	if ! "$@" >>"$log" 2>&1; then
		say "FAILED: $* (log: $log):"
		cat "$log" >&2
		exit 1
	fi
}

if [ ! -x "$PY" ]; then
	say "Debian's $PY is missing: apt-get install python3 python3-venv"
	exit 1
fi
# What to install comes from the package itself (harness/kernel/host_packages.py, with the toolchain
# and arch tables), read with Debian's python before any venv exists: it needs nothing beyond
# the standard library.
read -r -a packages <<<"$("$PY" -m harness.kernel.host_packages packages "$LLVM")"
read -r -a foreign <<<"$("$PY" -m harness.kernel.host_packages foreign-arches)"
"$PY" -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
added=()
for a in "${foreign[@]}"; do # guests' busybox comes from Debian's packages of their arch
	dpkg --print-foreign-architectures | grep -qx "$a" || added+=("$a")
done
if [ ${#added[@]} -gt 0 ]; then
	for a in "${added[@]}"; do quiet as_root dpkg --add-architecture "$a"; done
	say "package architectures added: ${added[*]}"
fi
if [ ${#missing[@]} -gt 0 ] || [ ${#added[@]} -gt 0 ]; then
	started=$SECONDS
	quiet as_root apt-get update
	say "package lists updated ($((SECONDS - started))s)"
fi
if [ ${#missing[@]} -gt 0 ]; then
	started=$SECONDS
	say "installing ${#missing[@]} Debian packages: ${missing[*]} (log: $log)"
	quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"${missing[@]}"
	say "Debian packages installed ($((SECONDS - started))s)"
else
	say "Debian packages: all ${#packages[@]} present"
fi

stamp=.venv/.ltoboot-setup
want="$("$PY" --version 2>&1) $(sha256sum pyproject.toml | cut -d' ' -f1)"
# The wheels of what pyproject.toml asks for, kept in the cache per pyproject.toml and Python:
# a fresh clone installs from them offline (10 s instead of 26 s), with the versions the first
# install resolved. Removing the directory (or `ltoboot cache prune`) fetches them anew.
wheels="${LTOBOOT_CACHE:-$HOME/.cache/ltoboot}/wheels/$(echo "$want" | sha256sum | cut -c1-20)"
from_wheels() { # offline; any failure (a wheel missing or damaged) falls back to PyPI
	local pip=("$wheels"/pip-*.whl)
	{ "$PY" -m venv --without-pip .venv &&
		.venv/bin/python "${pip[0]}/pip" install --no-index --find-links "$wheels" \
			--no-compile pip setuptools wheel &&
		.venv/bin/python -m pip install --no-index --find-links "$wheels" \
			--no-build-isolation --no-compile -e '.[test]'; } >>"$log" 2>&1
}
keep_wheels() { # after an install from PyPI: the same wheels into the cache, whole or not at all
	local tmp="$wheels.tmp-$$"
	rm -rf "$tmp" && mkdir -p "$tmp"
	if .venv/bin/python -m pip wheel -q -w "$tmp" '.[test]' pip setuptools wheel >>"$log" 2>&1; then
		rm -f "$tmp"/ltoboot-*.whl
		mv -T "$tmp" "$wheels" 2>/dev/null || rm -rf "$tmp"
	else
		rm -rf "$tmp"
		say "note: the wheels were not kept (see $log); the next fresh clone installs from PyPI"
	fi
}
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
	started=$SECONDS
	rm -rf .venv
	if [ -d "$wheels" ] && from_wheels; then
		say "ltoboot installed into .venv from the kept wheels ($wheels, $((SECONDS - started))s)"
	else
		say "making .venv with $("$PY" --version 2>&1) ($PY) and installing ltoboot (log: $log)"
		rm -rf .venv "$wheels"
		quiet "$PY" -m venv .venv
		quiet .venv/bin/python -m pip install --upgrade pip
		quiet .venv/bin/python -m pip install -e '.[test]'
		keep_wheels
		say "ltoboot installed into .venv ($((SECONDS - started))s)"
	fi
	echo "$want" >"$stamp"
else
	say ".venv: ltoboot installed ($("$PY" --version 2>&1))"
fi
# Bytecode for what is installed and for ltoboot itself (editable: beside its sources), brought
# up to date (0.3 s when it is; 8 s after an install). The wheels go in with --no-compile, and
# where PYTHONDONTWRITEBYTECODE is set (CI machines) every process would otherwise compile every
# module it imports, each time: b4 --version 0.78 s -> 0.20 s, ltoboot --help 0.56 -> 0.26 s.
started=$SECONDS
if .venv/bin/python -m compileall -q .venv/lib harness >>"$log" 2>&1; then
	[ $((SECONDS - started)) -lt 2 ] || say "bytecode compiled ($((SECONDS - started))s)"
else # a module that does not compile only costs its own speed: a note, not a failure
	say "note: some modules were not byte-compiled (see $log)"
fi
say "ready; log: $log"

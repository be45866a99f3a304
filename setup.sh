#!/usr/bin/env bash
# Set up ltoboot on Debian 12: the Debian packages it needs, then the Python package (with its
# test extras) in .venv, made from Debian's own python3. One line per stage; the output of apt
# and pip goes to a log whose path is printed, and is shown whole when a stage fails.
# Idempotent: when everything is there it changes nothing and takes about a second.
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
# What to install comes from the package itself (the toolchain and arch tables), read with
# Debian's python before any venv exists: it needs nothing beyond the standard library.
read -r -a packages <<<"$("$PY" -m harness.kernel.toolchain packages "$LLVM")"
read -r -a foreign <<<"$("$PY" -m harness.kernel.toolchain foreign-arches)"
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
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
	started=$SECONDS
	say "making .venv with $("$PY" --version 2>&1) ($PY) and installing ltoboot (log: $log)"
	rm -rf .venv
	quiet "$PY" -m venv .venv
	quiet .venv/bin/python -m pip install --upgrade pip
	quiet .venv/bin/python -m pip install -e '.[test]'
	echo "$want" >"$stamp"
	say "ltoboot installed into .venv ($((SECONDS - started))s)"
else
	say ".venv: ltoboot installed ($("$PY" --version 2>&1))"
fi
say "ready; log: $log"

#!/usr/bin/env bash
# A real LAVA server on this machine, for `ltoboot lava submit` and tests/test_lava_server.py:
# Debian 12's lava-server 2023.01 with PostgreSQL, the web service (gunicorn), the scheduler
# and one worker with qemu devices, started as plain processes (no systemd here).
#
#   tests/lava-server.sh up     install what is missing, start everything, print the URL
#   tests/lava-server.sh down   stop the processes it started (PostgreSQL keeps running)
#
# State (pids, the worker's log, the API token in `token`, the URL in `url`) is kept in
# $LTOBOOT_CACHE/lava-server; the web service and the scheduler run as the lavaserver user
# and log to /var/log/lava-server. Idempotent: `up` on a running server only checks it.
set -euo pipefail
# lava-server's scripts run "python3" from PATH: Debian's, not a newer one first on PATH
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
STATE="${LTOBOOT_CACHE:-$HOME/.cache/ltoboot}/lava-server"
PORT=${LTOBOOT_LAVA_PORT:-8000}
URL="http://127.0.0.1:$PORT/"
WORKER=ltoboot-worker
DEVICES=${LTOBOOT_LAVA_DEVICES:-2} # qemu devices: jobs that run at once
USER_NAME=ltoboot
mkdir -p "$STATE"
log="$STATE/setup.log"

say() { echo "lava-server: $*"; }
quiet() {
	echo "\$ $*" >>"$log"
	if ! "$@" >>"$log" 2>&1; then
		say "FAILED: $* (log: $log)"
		tail -n 20 "$log" >&2
		exit 1
	fi
}
manage() { lava-server manage "$@" 2>>"$log"; }
# is `name` in a `manage <what> list` (read whole: grep -q closing the pipe early breaks it)
listed() { manage "$1" list 2>/dev/null | grep -c "^\* $2\b" >/dev/null; }
running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }
start() { # name, command...: a process in a session of its own, its pid kept
	local name=$1
	shift
	running "$name" && return 0
	setsid "$@" >"$STATE/$name.out" 2>&1 </dev/null &
	echo $! >"$STATE/$name.pid"
}

down() { # each is a session of its own: SIGTERM to the group, SIGKILL after 10 s
	for name in worker scheduler gunicorn; do
		if running "$name"; then
			pid=$(cat "$STATE/$name.pid")
			kill -- "-$pid" 2>/dev/null || kill "$pid"
			for _ in $(seq 50); do
				kill -0 -- "-$pid" 2>/dev/null || break
				sleep 0.2
			done
			kill -KILL -- "-$pid" 2>/dev/null || true
			say "stopped $name"
		fi
		rm -f "$STATE/$name.pid"
	done
}

up() {
	: >"$log"
	if [ "$(id -u)" != 0 ]; then
		say "must run as root (it installs packages and starts system services)"
		exit 1
	fi
	local t0=$SECONDS
	missing=()
	for p in lava-server lava-dispatcher postgresql; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing ${missing[*]} (log: $log)"
		quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
		say "installed ($((SECONDS - t0))s)"
	fi
	cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
	if ! pg_lsclusters -h | awk 'NR==1 {print $4}' | grep -qx online; then
		# shellcheck disable=SC2086
		quiet pg_ctlcluster $cluster start
	fi
	# the package's own configuration creates the database and migrates it; it skipped
	# that at install time when PostgreSQL was not running
	if ! manage showmigrations lava_scheduler_app 2>/dev/null | grep -c '\[X\]' >/dev/null; then
		quiet env DEBIAN_FRONTEND=noninteractive dpkg-reconfigure lava-server
	fi
	if ! listed users "$USER_NAME"; then
		quiet manage users add --superuser --staff --passwd "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" "$USER_NAME"
	fi
	if [ ! -s "$STATE/token" ]; then
		manage tokens add --user "$USER_NAME" | tail -n 1 >"$STATE/token"
		chmod 600 "$STATE/token"
	fi
	listed device-types qemu || quiet manage device-types add qemu
	listed workers "$WORKER" || quiet manage workers add "$WORKER"
	manage shell -c "from lava_scheduler_app.models import Worker; \
print(Worker.objects.get(hostname='$WORKER').token)" >"$STATE/worker-token"
	chmod 600 "$STATE/worker-token"
	for i in $(seq -f '%02g' 1 "$DEVICES"); do
		dict=/etc/lava-server/dispatcher-config/devices/qemu-$i.jinja2
		[ -f "$dict" ] || echo "{% extends 'qemu.jinja2' %}" >"$dict"
		listed devices "qemu-$i" || quiet manage devices add --device-type qemu --worker "$WORKER" "qemu-$i"
	done
	start gunicorn gunicorn3 lava_server.wsgi --bind "127.0.0.1:$PORT" --workers 2 \
		-u lavaserver -g lavaserver --log-file /var/log/lava-server/gunicorn.log
	start scheduler lava-server manage lava-scheduler --log-file /var/log/lava-server/scheduler.log
	for _ in $(seq 60); do
		curl -fsS "${URL}api/v0.2/system/version/" >/dev/null 2>&1 && break
		sleep 0.5
	done
	start worker lava-worker --name "$WORKER" --url "$URL" --token-file "$STATE/worker-token" \
		--worker-dir "$STATE/worker" --ping-interval 2 --log-file "$STATE/worker.log"
	version=$(curl -fsS "${URL}api/v0.2/system/version/") || {
		say "the web service does not answer at $URL (log: /var/log/lava-server/gunicorn.log)"
		exit 1
	}
	echo "$URL" >"$STATE/url"
	say "up in $((SECONDS - t0))s: $URL $version, $DEVICES qemu devices on $WORKER; token: $STATE/token"
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
	echo "usage: $0 up|down" >&2
	exit 2
	;;
esac

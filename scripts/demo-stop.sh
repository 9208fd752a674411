#!/usr/bin/env bash
# Stops the services scripts/demo.sh started (`make demo-stop`), by the pid files in the demo
# state directory (DEMO_DIR, default .demo): the hub first (its builder frees its tasks and logs
# out), then the git daemon and the registry. A pid whose process is no longer the program we
# started is left alone. Data stays; DEMO_RESET=1 scripts/demo.sh starts from scratch.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo=${DEMO_DIR:-$repo/.demo}

stop() { # stop NAME PROGRAM: SIGTERM the pid in NAME.pid if it runs PROGRAM, SIGKILL after 30 s
    local pidfile="$demo/$1.pid" pid exe i
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if ! [[ $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        return 0
    fi
    exe=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1 || true)
    if [ "$(basename "$exe")" != "$2" ]; then
        echo "demo-stop: pid $pid in $pidfile is not $2 any more; leaving it" >&2
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        if [ "$i" = 150 ]; then
            echo "demo-stop: $1 (pid $pid) ignored SIGTERM for 30 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
    rm -f "$pidfile"
    echo "stopped $1 (pid $pid)"
}

stop hub containerbuild
stop git-daemon git-daemon
stop registry docker-registry

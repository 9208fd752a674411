#!/usr/bin/env bash
# One-command demo (`make demo`): a containerbuild hub with an embedded builder, a local registry
# and a git daemon on 127.0.0.1, set up and driven with the stock koji CLI to build the `plain`
# fixture container (fixtures/dist-git/plain) on the fixture base image. The services keep
# running afterwards; scripts/demo-stop.sh (`make demo-stop`) stops them.
#
# Settings (environment):
#   DEMO_DIR            state directory (default: .demo in the checkout)
#   DEMO_HUB_PORT       hub port (default 8480)
#   DEMO_REGISTRY_PORT  registry port (default 5000)
#   DEMO_GIT_PORT       git daemon port (default 9418)
#   DEMO_RESET=1        wipe DEMO_DIR first (hub database, registry content, builder storage)
#   KOJI_VERSION        koji CLI version installed into .venv (default 1.36.1)
#
# Re-running restarts the services with the same data, so earlier builds stay visible; the koji
# setup steps are skipped when their records exist.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

demo=${DEMO_DIR:-$repo/.demo}
hub_port=${DEMO_HUB_PORT:-8480}
registry_port=${DEMO_REGISTRY_PORT:-5000}
git_port=${DEMO_GIT_PORT:-9418}
koji_version=${KOJI_VERSION:-1.36.1}
venv=$repo/.venv
bin=$repo/target/release/containerbuild
admin_password='admin'

say() { printf '\n==> %s\n' "$*"; }
die() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}

for p in "$hub_port" "$registry_port" "$git_port"; do
    if ! [[ $p =~ ^[0-9]{1,5}$ ]] || [ "$p" -lt 1 ] || [ "$p" -gt 65535 ]; then
        die "bad port: $p"
    fi
done
[ "$(id -u)" = 0 ] || die "the builder runs buildah with the vfs driver and chroot isolation, which needs root"
command -v cargo >/dev/null 2>&1 || die "cargo not found: install a stable Rust toolchain (1.88 or newer)"

say "dependencies (apt packages, koji $koji_version CLI in .venv)"
scripts/ensure-deps.sh
scripts/koji-venv.sh "$venv" "$koji_version"

say "release build"
cargo build --release

# Running services are restarted (by pid file) so they run the binary just built.
scripts/demo-stop.sh
if [ "${DEMO_RESET:-0}" = 1 ]; then
    say "DEMO_RESET=1: removing $demo"
    rm -rf "$demo"
fi
mkdir -p "$demo"
demo=$(cd "$demo" && pwd)

listening() { # listening PORT: something accepts connections on 127.0.0.1:PORT
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
wait_listening() { # wait_listening PORT PIDFILE NAME LOG
    local i
    for i in $(seq 1 150); do
        if listening "$1"; then
            return 0
        fi
        kill -0 "$(cat "$2")" 2>/dev/null || die "$3 exited (try $i); see $4: $(tail -n 5 "$4")"
        sleep 0.2
    done
    die "$3 does not listen on 127.0.0.1:$1; see $4"
}
for p in "$hub_port" "$registry_port" "$git_port"; do
    if listening "$p"; then
        die "127.0.0.1:$p is in use by another program; pick other ports with DEMO_HUB_PORT, DEMO_REGISTRY_PORT, DEMO_GIT_PORT"
    fi
done

say "registry on 127.0.0.1:$registry_port"
# Services run in their own session (setsid, which does not fork here: a background job of a
# script is no process group leader, so $! is the service's pid), away from the terminal's
# Ctrl-C and hangup.
mkdir -p "$demo/registry"
cat >"$demo/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $demo/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$registry_port
EOF
setsid docker-registry serve "$demo/registry/config.yml" </dev/null >"$demo/registry.log" 2>&1 &
echo "$!" >"$demo/registry.pid"
wait_listening "$registry_port" "$demo/registry.pid" docker-registry "$demo/registry.log"
registry=127.0.0.1:$registry_port

say "fixtures: RPMs, base image $registry/cb-base:1, dist-git repositories"
fixtures/rpms/build.sh "$demo/fixtures/rpms" >/dev/null
base_digest=$(fixtures/base-image/build.sh --registry "$registry" --storage "$demo/fixtures/base" \
    --rpms "$demo/fixtures/rpms")
echo "pushed $registry/cb-base:1 $base_digest"
repos=$(fixtures/dist-git/make-repos.sh --registry "$registry" --rpms "$demo/fixtures/rpms" "$demo/git")
echo "$repos"
plain_sha=$(awk '$1 == "plain" { print $2 }' <<<"$repos")
[ -n "$plain_sha" ] || die "make-repos.sh made no plain repository"

say "git daemon on 127.0.0.1:$git_port"
git_daemon="$(git --exec-path)/git-daemon"
GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 setsid "$git_daemon" --reuseaddr --export-all \
    --base-path="$demo/git" --listen=127.0.0.1 --port="$git_port" "$demo/git" \
    </dev/null >"$demo/git-daemon.log" 2>&1 &
echo "$!" >"$demo/git-daemon.pid"
wait_listening "$git_port" "$demo/git-daemon.pid" "git daemon" "$demo/git-daemon.log"

say "hub on 127.0.0.1:$hub_port with one embedded builder"
if [ ! -e "$demo/hub/containerbuild.sqlite" ]; then
    printf '%s\n' "$admin_password" |
        "$bin" user add admin --data-dir "$demo/hub" --password-stdin --admin
else
    printf '%s\n' "$admin_password" |
        "$bin" user passwd admin --data-dir "$demo/hub" --password-stdin
fi
CONTAINERBUILD_LOG=${CONTAINERBUILD_LOG:-info} setsid "$bin" serve --data-dir "$demo/hub" \
    --listen "127.0.0.1:$hub_port" --builders 1 --registry "$registry" --registry-insecure \
    </dev/null >"$demo/hub.log" 2>&1 &
echo "$!" >"$demo/hub.pid"
wait_listening "$hub_port" "$demo/hub.pid" "containerbuild serve" "$demo/hub.log"

cat >"$demo/koji.conf" <<EOF
[containerbuild]
server = http://127.0.0.1:$hub_port/kojihub
weburl = http://127.0.0.1:$hub_port/koji
topurl = http://127.0.0.1:$hub_port/kojifiles
authtype = password
poll_interval = 2
EOF
koji=("$venv/bin/koji" -c "$demo/koji.conf" -p containerbuild --user admin --password "$admin_password")
"${koji[@]}" hello

say "koji setup: tags demo-build (arches $(uname -m)) and demo, target demo-candidate, packages"
if [ "$("${koji[@]}" call getTag demo-build)" = None ]; then
    "${koji[@]}" add-tag --arches "$(uname -m)" demo-build
fi
if [ "$("${koji[@]}" call getTag demo)" = None ]; then
    "${koji[@]}" add-tag demo
fi
if [ "$("${koji[@]}" call getBuildTarget demo-candidate)" = None ]; then
    "${koji[@]}" add-target demo-candidate demo-build demo
fi
# plain is built below; the others are there to try (see fixtures/README.md).
"${koji[@]}" add-pkg --owner admin demo plain-container multistage-container tags-container \
    failing-run-container slow-container

source_url="git://127.0.0.1:$git_port/plain.git#$plain_sha"
say "buildContainer $source_url demo-candidate"
task=$("${koji[@]}" call --python buildContainer "'$source_url'" "'demo-candidate'" \
    "{'git_branch': 'main'}")
[[ $task =~ ^[0-9]+$ ]] || die "buildContainer answered: $task"
echo "task $task: http://127.0.0.1:$hub_port/kojihub (koji taskinfo $task)"

say "koji watch-logs $task (the build task; its per-arch createContainer logs are copied into it)"
"${koji[@]}" watch-logs "$task" || true
say "koji watch-task $task"
state=0
"${koji[@]}" watch-task "$task" || state=$?

say "koji call getTaskResult $task"
"${koji[@]}" call --json-output getTaskResult "$task" | tee "$demo/result.json" || state=1
[ "$state" = 0 ] || die "the build failed; logs: koji ... download-task --logs $task, $demo/hub.log"

mapfile -t specs < <("$venv/bin/python" -c '
import json, sys
for spec in json.load(open(sys.argv[1])).get("repositories", []):
    print(spec)
' "$demo/result.json")
[ "${#specs[@]}" -gt 0 ] || die "the task result names no repositories"
say "the image is in the registry"
skopeo inspect --tls-verify=false --format '{{.Name}} {{.Digest}} labels: {{.Labels}}' \
    "docker://${specs[0]}"

kojicmd="$venv/bin/koji -c $demo/koji.conf -p containerbuild --user admin --password $admin_password"
cat <<EOF

Done. Running (stop with: make demo-stop):
  hub       http://127.0.0.1:$hub_port/kojihub (log: $demo/hub.log)
  registry  http://$registry/v2/ (log: $demo/registry.log)
  dist-git  git://127.0.0.1:$git_port/<name>.git, branch main, one commit each:
$(while read -r n c; do printf '            %-14s %s\n' "$n" "$c"; done <<<"$repos")

Pull specs of task $task:
$(printf '  %s\n' "${specs[@]}")

Pull or inspect them:
  skopeo inspect --tls-verify=false docker://${specs[0]}
  podman pull --tls-verify=false ${specs[0]}

Use the stock koji CLI:
  $kojicmd taskinfo -v $task
  $kojicmd list-tasks --all --after 2000-01-01
  $kojicmd call --python buildContainer "'git://127.0.0.1:$git_port/plain.git#$plain_sha'" "'demo-candidate'" "{'git_branch': 'main', 'scratch': True}"
EOF

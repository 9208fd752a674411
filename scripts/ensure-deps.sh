#!/usr/bin/env bash
# Installs the system packages the build and its tests need: those to pip-install the stock koji
# CLI (its gssapi dependency is built from source and needs krb5-config and Python headers), and
# the container tools (buildah, skopeo, Debian's docker-registry, busybox-static for the fixture
# base image, rpm), and chromium with chromium-driver for the headless-browser test of the web
# pages. Debian/Ubuntu only; no-op when everything is present.
set -euo pipefail

need=0
pkgs=()
if ! dpkg -s libkrb5-dev >/dev/null 2>&1; then
    need=1
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need=1
fi
if ! python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' >/dev/null 2>&1; then
    need=1
fi
if ! command -v cc >/dev/null 2>&1; then
    need=1
fi
[ "$need" = 1 ] && pkgs+=(libkrb5-dev python3-venv python3-dev gcc)

# Container tools: package name, then a binary that shows it is installed some other way
# (none for busybox-static: the base image needs the static build, not Debian's dynamic busybox).
# gpg and gpg-agent: rpmsign (package rpm) signs with them in the rpmdb tests.
# chromium and chromium-driver: tests/web_browser.rs drives the pages over WebDriver.
for pair in buildah:/usr/bin/buildah skopeo:/usr/bin/skopeo \
    docker-registry:/usr/bin/docker-registry busybox-static: rpm:/usr/bin/rpm \
    gpg:/usr/bin/gpg gpg-agent:/usr/bin/gpg-agent \
    chromium:/usr/bin/chromium chromium-driver:/usr/bin/chromedriver; do
    pkg=${pair%%:*}
    file=${pair#*:}
    if ! dpkg -s "$pkg" >/dev/null 2>&1 && { [ -z "$file" ] || [ ! -x "$file" ]; }; then
        pkgs+=("$pkg")
    fi
done
[ "${#pkgs[@]}" = 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-deps: need ${pkgs[*]}; install them manually" >&2
    exit 1
fi

if [ "$(id -u)" = 0 ]; then
    SUDO=()
else
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}"

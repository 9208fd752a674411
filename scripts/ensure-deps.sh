#!/usr/bin/env bash
# Installs the system packages needed to pip-install the stock koji CLI (its gssapi dependency
# is built from source and needs krb5-config and Python headers). Debian/Ubuntu only; no-op when
# everything is present.
set -euo pipefail

need=0
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
[ "$need" = 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-deps: need libkrb5-dev, python3-venv, python3-dev and a C compiler; install them manually" >&2
    exit 1
fi

if [ "$(id -u)" = 0 ]; then
    SUDO=()
else
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends libkrb5-dev python3-venv python3-dev gcc

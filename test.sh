#!/usr/bin/env bash
# One command from a fresh clone: install everything, then run the whole test suite, integration tests
# included (the session starts its own Kafka-protocol broker and S3 server on loopback).
# Exits non-zero on any failure, and also when no test was collected (pytest exit code 5).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: no tests were collected" >&2
fi
exit "$rc"

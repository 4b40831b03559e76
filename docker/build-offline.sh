#!/usr/bin/env bash
# Build (and smoke-test) the CPU image without Docker, Docker Hub or PyTorch's index: only Debian's
# archive and PyPI. Run as root from anywhere; see docs/deploy.md ("Building without Docker").
#
#   docker/build-offline.sh              # base image, torch wheel, image, then /liveness check
#   SKIP_RUN=1 docker/build-offline.sh   # build only
#   SKIP_BUILD=1 docker/build-offline.sh # run and check the image built before
#
# Steps:
#   1. base image: `debootstrap --variant=minbase bookworm` with python3 + venv (+ python-is-python3,
#      so `python` exists as in python:3.11-slim), plus this machine's extra CA certificates
#      ($EXTRA_CA_DIR/*.crt, for a TLS-inspecting proxy), imported as localhost/ppviz-base:bookworm
#      by `buildah from scratch` + copy + `buildah commit` (skipped when that image exists);
#   2. torch: when $TORCH_INDEX_URL (default PyTorch's CPU index) cannot be reached, torch's CPU
#      wheel goes to docker/wheels/ (`pip download torch==2.13.0 --no-deps`, which must resolve to
#      a +cpu wheel: PyPI's own torch 2.13.0 is the CUDA build) and the build uses PyPI's index;
#   3. `buildah bud` of the Dockerfile with PYTHON_IMAGE=localhost/ppviz-base:bookworm (vfs storage,
#      chroot isolation, host network, no pulls) -> localhost/ppviz:cpu (its base-cpu stage built
#      first with --target, a workaround for buildah 1.28, see below);
#   4. run the image's entry point (podman, else `buildah run`) bound to 127.0.0.1:$PORT, wait for
#      /liveness, print it, check torch is the CPU build, stop it.
#
# Tools: apt-get install -y buildah debootstrap podman (podman optional).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/var/tmp/ppviz-offline}
BASE=${BASE:-localhost/ppviz-base:bookworm}
IMAGE=${IMAGE:-localhost/ppviz:cpu}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
PIP=${PIP:-pip3}
PORT=${PORT:-5077}
EXTRA_CA_DIR=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
BUILDAH=(buildah --storage-driver vfs)
PODMAN=(podman --storage-driver vfs)

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'build-offline: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and vfs storage need it)"
for tool in buildah debootstrap curl; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install -y buildah debootstrap curl"
done

# 1. base image ---------------------------------------------------------------------------------
if "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
    say "base image $BASE exists"
else
    say "debootstrap bookworm (minbase + python3) -> $BASE"
    rootfs="$WORK/rootfs"
    if [ -x "$rootfs/usr/bin/python" ] && [ -f "$rootfs/etc/debian_version" ]; then
        say "reusing the debootstrapped $rootfs"
    else
        rm -rf "$rootfs" && mkdir -p "$WORK"
        debootstrap --variant=minbase \
            --include=python3,python3-venv,python-is-python3,ca-certificates,passwd \
            bookworm "$rootfs" "$MIRROR"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # This machine's extra certificate authorities (a TLS-inspecting proxy in front of PyPI) go into
    # the local base too, or pip in the build cannot verify pypi.org. The base stays on this machine.
    if compgen -G "$EXTRA_CA_DIR/*.crt" >/dev/null; then
        cp "$EXTRA_CA_DIR"/*.crt "$rootfs/usr/local/share/ca-certificates/"
        chroot "$rootfs" update-ca-certificates >/dev/null
    fi
    ctr=$("${BUILDAH[@]}" from scratch)
    mnt=$("${BUILDAH[@]}" mount "$ctr")
    tar -C "$rootfs" -cf - . | tar -C "$mnt" -xf -
    "${BUILDAH[@]}" umount "$ctr" >/dev/null
    "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd /bin/bash "$ctr"
    "${BUILDAH[@]}" commit --rm "$ctr" "$BASE"
fi

# 2. torch ----------------------------------------------------------------------------------------
torch_args=()
if curl -fsS -m 20 -o /dev/null "$TORCH_INDEX_URL/torch/"; then
    say "torch from $TORCH_INDEX_URL"
    torch_args=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
else
    say "$TORCH_INDEX_URL unreachable: torch's CPU wheel into docker/wheels/"
    ls "$REPO"/docker/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1 \
        || "$PIP" download --no-deps --only-binary :all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
               -d "$REPO/docker/wheels" "torch==2.13.0"
    ls "$REPO"/docker/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1 \
        || die "pip download torch==2.13.0 gave no +cpu wheel (PyPI's torch is the CUDA build); put torch-2.13.0+cpu-cp311-*.whl in docker/wheels/"
    torch_args=(--build-arg "TORCH_INDEX_URL=https://pypi.org/simple")
fi

# 3. image ----------------------------------------------------------------------------------------
if [ -n "${SKIP_BUILD:-}" ]; then
    say "SKIP_BUILD: using the existing $IMAGE"
else
say "buildah bud -> $IMAGE"
# buildah 1.28 does not see that `FROM base-${VARIANT}` uses the stage base-cpu: it skips that stage
# as unused and then looks for an image called base-cpu. So that stage is built first, on its own,
# and tagged localhost/base-cpu, which the main build then finds (same Dockerfile, same arguments).
# --format docker keeps the HEALTHCHECK (OCI image configs have none); --layers caches the steps.
common=(--isolation chroot --network host --pull=never --format docker --layers
        --build-arg "PYTHON_IMAGE=$BASE" "${torch_args[@]}")
"${BUILDAH[@]}" bud "${common[@]}" --target base-cpu -f "$REPO/Dockerfile" -t localhost/base-cpu "$REPO"
"${BUILDAH[@]}" bud "${common[@]}" \
    -f "$REPO/Dockerfile" -t "$IMAGE" "$REPO"
fi

[ -n "${SKIP_RUN:-}" ] && exit 0

# 4. run and check /liveness --------------------------------------------------------------------
say "run $IMAGE on 127.0.0.1:$PORT"
log="$WORK/run.log"
mkdir -p "$WORK"
env_args=(-e PPVIZ_ADDRESS=127.0.0.1 -e "PPVIZ_PORT=$PORT" -e PPVIZ_SYNTH_DAYS=3)
descendants() {  # child processes of $1, recursively
    local c
    for c in $(ps -o pid= --ppid "$1"); do echo "$c"; descendants "$c"; done
}
if command -v podman >/dev/null && "${PODMAN[@]}" run --rm --network host "$IMAGE" true >"$WORK/podman.log" 2>&1; then
    cid=$("${PODMAN[@]}" run -d --rm --network host "${env_args[@]}" "$IMAGE")
    stop() { "${PODMAN[@]}" stop -t 10 "$cid" >/dev/null; }
    logs=("${PODMAN[@]}" logs "$cid")
    check=("${PODMAN[@]}" exec "$cid")
    how="podman run --network host"
else
    # podman cannot start containers everywhere (here: "crun: setrlimit RLIMIT_NOFILE: Operation
    # not permitted", see $WORK/podman.log). buildah run: the image's user, environment and entry
    # point under chroot isolation, sharing the host's network.
    [ -s "$WORK/podman.log" ] && { echo "podman run failed:" >&2; cat "$WORK/podman.log" >&2; }
    ctr=$("${BUILDAH[@]}" from "$IMAGE")
    "${BUILDAH[@]}" run --isolation chroot --network host --user 10001:10001 \
        --env PPVIZ_ADDRESS=127.0.0.1 --env "PPVIZ_PORT=$PORT" --env PPVIZ_SYNTH_DAYS=3 \
        "$ctr" -- /usr/local/bin/ppviz-entrypoint >"$log" 2>&1 &
    pid=$!
    stop() {
        # SIGTERM to `ppviz serve` (what `docker stop` sends to the entry point), which passes it on
        # to panel serve's process group; killing `buildah run` alone would orphan panel serve.
        local family p
        family=$(descendants "$pid")
        for p in $family; do
            tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q 'ppviz serve' && kill -TERM "$p" 2>/dev/null
        done
        for _ in $(seq 1 20); do
            alive=""
            for p in $family; do kill -0 "$p" 2>/dev/null && alive=1; done
            [ -z "$alive" ] && break
            sleep 0.5
        done
        for p in $family; do kill -KILL "$p" 2>/dev/null || true; done
        wait "$pid" 2>/dev/null || true
        "${BUILDAH[@]}" rm "$ctr" >/dev/null
    }
    logs=(cat "$log")
    check=("${BUILDAH[@]}" run --isolation chroot --user 10001:10001 "$ctr" --)
    how="buildah run --isolation chroot --network host"
fi
say "started with: $how"
ok=""
for _ in $(seq 1 120); do
    if body=$(curl -fsS -m 5 "http://127.0.0.1:$PORT/liveness" 2>/dev/null); then ok=1; break; fi
    sleep 1
done
"${logs[@]}" >&2 || true
if [ -n "$ok" ]; then
    echo "GET http://127.0.0.1:$PORT/liveness -> $body"
    code=$(curl -s -m 60 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/app")
    echo "GET http://127.0.0.1:$PORT/app -> HTTP $code"
    "${check[@]}" python -c "import torch, ppviz.resources as r; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| app', r.APP)"
fi
stop || true
if curl -fsS -m 3 -o /dev/null "http://127.0.0.1:$PORT/liveness" 2>/dev/null; then
    die "still answering on 127.0.0.1:$PORT after the stop"
fi
echo "stopped: nothing answers on 127.0.0.1:$PORT any more"
[ -n "$ok" ] || die "no /liveness on 127.0.0.1:$PORT within 120 s"
[ "${code:-}" = 200 ] || die "/app answered HTTP ${code:-none}"

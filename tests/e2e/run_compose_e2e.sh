#!/usr/bin/env bash
# End-to-end test of the Docker Compose stack, run by .ci/run after the unit tests.
#
# Starts a Docker engine if none runs (installing Debian's docker.io if needed), builds the base
# images locally when no registry is reachable (docker/build-local-base-images.sh), builds the
# images, brings the stack up under its own project name and ports, then runs tests/e2e: a
# whole-graph materialisation launched through Dagster's GraphQL API as "Materialize all" does,
# POST /similar on the service, and the Dagster UI's lineage page in headless Chromium. Always
# ends with `down -v` (and stops the engine if it started it). Artefacts (screenshot, timings,
# logs) go to build/e2e/.
#
# With --slurm it tests the `slurm` profile instead: the SLURM image is built on the pipeline
# image, the stack comes up with the cluster and compute.mode slurm (the demo city through
# /opt/geotriplet/slurm-demo.yaml), and tests/e2e/test_slurm_stack.py runs: the whole graph
# through Dagster with its heavy steps as SLURM jobs, sacct's record of them, the service's
# answer, a compute node killed during an embedding partition and that partition retried.
# Artefacts go to build/e2e-slurm/; the stack is taken down and checked gone. With
# `--slurm --bench` it runs benchmarks/bench_slurm.py in the stack instead of the tests
# (the demo settings over the city on the volume, both compute modes; `make bench-slurm`).
#
# Environment: PYTHON_IMAGE, POSTGRES_IMAGE, TORCH_INDEX_URL, TORCH_REQUIREMENTS as in
# compose.yaml; E2E_DAGSTER_PORT (13000) and E2E_SERVICE_PORT (18000) on the host.
set -euo pipefail

cd "$(dirname "$0")/../.."
root="$PWD"
profile=default bench=0
[[ "${1:-}" == "--slurm" ]] && profile=slurm
[[ "${2:-}" == "--bench" ]] && bench=1
artifacts="$root/build/e2e"
[[ $profile == slurm ]] && artifacts="$root/build/e2e-slurm"
venv_python="$root/${VENV:-.venv}/bin/python"
project=geotriplet-e2e
export DAGSTER_WEBSERVER_PORT="${E2E_DAGSTER_PORT:-13000}"
export GEOTRIPLET_SERVICE_PORT="${E2E_SERVICE_PORT:-18000}"
# compose.yaml has no default password; each run of this test gets its own
export POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}"

started_at=$(date +%s)
build_s="-" up_s="-"
dockerd_pid="" stack_created=0
server_pids=()
compose=() default_services=()

log() { printf '[e2e %4ds] %s\n' "$(($(date +%s) - started_at))" "$*"; }
fail() { echo "e2e: $*" >&2; exit 1; }

apt_install() {
    [[ $EUID -eq 0 ]] || fail "$* missing and installing it needs root"
    log "installing $*"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

cleanup() {
    local status=$?
    set +e
    if ((stack_created)); then
        "${compose[@]}" ps >"$artifacts/compose-ps.txt" 2>&1
        "${compose[@]}" logs --no-color >"$artifacts/compose.log" 2>&1
        log "taking the stack down (logs in $artifacts/compose.log)"
        "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1
        local left
        left="$(docker ps -aq --filter "label=com.docker.compose.project=$project")"
        if [[ -n "$left" ]]; then
            log "containers left after down: $left"
            ((status == 0)) && status=1
        fi
    fi
    for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null; done
    if [[ -n "$dockerd_pid" ]]; then
        log "stopping the Docker engine this script started"
        kill "$dockerd_pid" && wait "$dockerd_pid" 2>/dev/null
    fi
    local timings="build ${build_s} s, up ${up_s} s"
    [[ -f "$artifacts/timings.txt" ]] && timings+=", $(cat "$artifacts/timings.txt")"
    log "timings: ${timings}, total $(($(date +%s) - started_at)) s"
    ((status == 0)) && log "PASSED" || log "FAILED (exit $status)"
    exit "$status"
}
trap cleanup EXIT
# a stopped run must not end in "PASSED": the EXIT trap sees the signal's status
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_docker() {
    if docker info >/dev/null 2>&1; then return; fi
    command -v dockerd >/dev/null || apt_install docker.io
    log "starting a Docker engine"
    dockerd >"$artifacts/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    fail "the Docker engine did not start; see build/e2e/dockerd.log"
}

choose_compose() {
    if docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    else
        command -v docker-compose >/dev/null || apt_install docker-compose
        compose=(docker-compose)
    fi
    compose+=(-p "$project" -f "$root/compose.yaml")
    default_services=("${compose[@]}")
    [[ $profile == slurm ]] && compose+=(--profile slurm)
    return 0
}

image_available() {
    docker image inspect "$1" >/dev/null 2>&1 || timeout 300 docker pull -q "$1" >/dev/null 2>&1
}

choose_base_images() {
    export PYTHON_IMAGE="${PYTHON_IMAGE:-python:3.11-slim}"
    export POSTGRES_IMAGE="${POSTGRES_IMAGE:-postgres:16}"
    if image_available "$PYTHON_IMAGE" && image_available "$POSTGRES_IMAGE"; then return; fi
    command -v debootstrap >/dev/null || apt_install debootstrap
    log "no registry reachable: local base images (docker/build-local-base-images.sh)"
    bash docker/build-local-base-images.sh
    export PYTHON_IMAGE=geotriplet-local/python:3.11-slim
    export POSTGRES_IMAGE=geotriplet-local/postgres:15
}

# PyTorch's CPU index unreachable (a closed network): serve the local wheel indexes that pip on
# this machine is configured with (file:// extra-index-url) over loopback, build with the host's
# network, and install the torch and torchvision versions of the project's own virtualenv.
choose_torch_source() {
    if [[ -n "${TORCH_INDEX_URL:-}" ]] \
        || curl -sfI --max-time 15 https://download.pytorch.org/whl/cpu/torch/ >/dev/null; then
        return
    fi
    local port=18600 extra=() url dir
    for url in $(python3 -m pip config get global.extra-index-url 2>/dev/null || true); do
        [[ "$url" == file://* ]] || continue
        dir="${url#file://}"
        dir="${dir%/}"
        [[ "$(basename "$dir")" == simple ]] || continue
        port=$((port + 1))
        python3 -m http.server "$port" --bind 127.0.0.1 --directory "$(dirname "$dir")" \
            >/dev/null 2>&1 &
        server_pids+=($!)
        if [[ -z "${TORCH_INDEX_URL:-}" && -d "$dir/torch" ]]; then
            TORCH_INDEX_URL="http://127.0.0.1:$port/simple/"
        else
            extra+=("http://127.0.0.1:$port/simple/")
        fi
    done
    [[ -n "${TORCH_INDEX_URL:-}" ]] \
        || fail "download.pytorch.org is unreachable and no local pip index carries torch"
    extra+=(https://pypi.org/simple/)
    local versions
    versions="$("$venv_python" - <<'PY'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name).partition('+')[0]}" for name in ("torch", "torchvision")))
PY
)"
    export TORCH_INDEX_URL TORCH_REQUIREMENTS="$versions"
    export GEOTRIPLET_PIP_EXTRA_INDEX_URL="${extra[*]}" GEOTRIPLET_BUILD_NETWORK=host
    for _ in $(seq 20); do curl -sf "$TORCH_INDEX_URL" >/dev/null && break; sleep 0.5; done
    log "torch from local wheels: $TORCH_REQUIREMENTS via $TORCH_INDEX_URL"
}

ensure_browser() {
    command -v chromium >/dev/null || apt_install chromium
    "$venv_python" -c "import playwright" 2>/dev/null \
        || "$venv_python" -m pip install --quiet "playwright>=1.42"
}

rm -rf "$artifacts"
mkdir -p "$artifacts"
ensure_docker
choose_compose
ensure_browser
choose_base_images
choose_torch_source
"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true

log "building the images with ${compose[*]}"
build_started=$(date +%s)
# the default services first: the SLURM image is built on the pipeline image
if ! "${default_services[@]}" build >"$artifacts/build.log" 2>&1 \
    || { [[ $profile == slurm ]] && ! "${compose[@]}" build slurm-controller slurm-node-1 \
        slurm-node-2 >>"$artifacts/build.log" 2>&1; }; then
    tail -40 "$artifacts/build.log" >&2
    fail "image build failed; see $artifacts/build.log"
fi
build_s=$(($(date +%s) - build_started))
docker image prune -f >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
    | grep -E '^geotriplet-(pipeline|service|proxy|slurm):' | tee "$artifacts/image-sizes.txt"
# The service image carries OpenCV for re-ranking and must stay under 700 MB (issue 13).
service_bytes=$(docker image inspect --format '{{.Size}}' "${GEOTRIPLET_SERVICE_IMAGE:-geotriplet-service:latest}" 2>/dev/null || echo 0)
if [ "$service_bytes" -ge 700000000 ] || [ "$service_bytes" -eq 0 ]; then
    fail "the service image is $service_bytes bytes: it must be under 700 MB"
fi

tests=(tests/e2e --ignore=tests/e2e/test_slurm_stack.py)
if [[ $profile == slurm && $bench == 0 ]]; then
    export GEOTRIPLET_COMPUTE_MODE=slurm GEOTRIPLET_DEMO_CITY=always \
        GEOTRIPLET_CONFIG=/opt/geotriplet/slurm-demo.yaml
    tests=(tests/e2e/test_slurm_stack.py)
fi

log "starting the stack"
up_started=$(date +%s)
stack_created=1
"${compose[@]}" up -d --no-build
up_s=$(($(date +%s) - up_started))

if ((bench)); then
    log "waiting for the code server (it generates the demo city)"
    for _ in $(seq 120); do
        [[ "$(docker inspect -f '{{.State.Health.Status}}' "$("${compose[@]}" ps -q pipeline)")" == healthy ]] \
            && break
        sleep 5
    done
    log "running benchmarks/bench_slurm.py in the pipeline container"
    "${compose[@]}" exec -T pipeline python - <benchmarks/bench_slurm.py | tee "$artifacts/bench_slurm.txt"
    exit "${PIPESTATUS[0]}"
fi

log "running tests/e2e"
GEOTRIPLET_E2E_DAGSTER_URL="http://127.0.0.1:$DAGSTER_WEBSERVER_PORT" \
    GEOTRIPLET_E2E_SERVICE_URL="http://127.0.0.1:$GEOTRIPLET_SERVICE_PORT" \
    GEOTRIPLET_E2E_COMPOSE="${compose[*]}" \
    GEOTRIPLET_E2E_ARTIFACTS="$artifacts" \
    GEOTRIPLET_E2E_UP_STARTED_AT="$up_started" \
    GEOTRIPLET_E2E_PROFILE="$profile" \
    "$venv_python" -m pytest "${tests[@]}" -x -q -p no:cacheprovider

#!/usr/bin/env bash
# Fill nginx.conf.template from the environment (defaults below) and run nginx in the
# foreground. PROXY_GLOBAL_DIRECTIVES is passed to `nginx -g` (default "daemon off;").
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
template="${PROXY_TEMPLATE:-$here/nginx.conf.template}"
[[ -f "$template" ]] || template=/etc/geotriplet/nginx.conf.template

export PROXY_UPSTREAM="${PROXY_UPSTREAM:-service:8000}"
export PROXY_PORT="${PROXY_PORT:-8080}"
export PROXY_RUN_DIR="${PROXY_RUN_DIR:-/tmp/geotriplet-proxy}"
export PROXY_HEADER_TIMEOUT_S="${PROXY_HEADER_TIMEOUT_S:-10}"
export PROXY_BODY_TIMEOUT_S="${PROXY_BODY_TIMEOUT_S:-30}"
export PROXY_MAX_BODY="${PROXY_MAX_BODY:-20m}"
export PROXY_MAX_CONNECTIONS="${PROXY_MAX_CONNECTIONS:-1024}"
export PROXY_MAX_CONNECTIONS_PER_CLIENT="${PROXY_MAX_CONNECTIONS_PER_CLIENT:-64}"

mkdir -p "$PROXY_RUN_DIR"
variables='${PROXY_UPSTREAM} ${PROXY_PORT} ${PROXY_RUN_DIR} ${PROXY_HEADER_TIMEOUT_S}'
variables+=' ${PROXY_BODY_TIMEOUT_S} ${PROXY_MAX_BODY} ${PROXY_MAX_CONNECTIONS}'
variables+=' ${PROXY_MAX_CONNECTIONS_PER_CLIENT}'
envsubst "$variables" <"$template" >"$PROXY_RUN_DIR/nginx.conf"
exec nginx -c "$PROXY_RUN_DIR/nginx.conf" -g "${PROXY_GLOBAL_DIRECTIVES:-daemon off;}"

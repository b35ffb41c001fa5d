#!/usr/bin/env bash
# Entry point of the pipeline image. Roles:
#   code-server  generate the demo city on a fresh data volume (embedded demo config, or any with
#                GEOTRIPLET_DEMO_CITY=always), create the Optuna database named by a Postgres
#                GEOTRIPLET_OPTUNA_STORAGE, then serve the GeoTriplet code location over gRPC on
#                port 4000; runs execute here (their heavy steps as SLURM jobs with
#                compute.mode slurm)
#   webserver    the Dagster UI and GraphQL API on port 3000
#   daemon       the Dagster daemon: run queue, sensors, backfills
# Anything else is executed as given (e.g. `geotriplet synth`).
set -euo pipefail

workspace=/opt/dagster/workspace.yaml
role="${1:-code-server}"
echo "$role" > /tmp/geotriplet-role

ensure_demo_city() {
    # Only the embedded demo config describes a city that can be generated; a configured
    # dataset that is missing is an error for the pipeline to report, not something to invent.
    # GEOTRIPLET_DEMO_CITY=always: a config of one's own whose synth section describes it.
    case "${GEOTRIPLET_DEMO_CITY:-auto}" in
        never) return ;;
        always) ;;
        *) [[ -z "${GEOTRIPLET_CONFIG:-}" ]] || return 0 ;;
    esac
    local input_dir
    input_dir="$(python -c 'from geotriplet_assets.config import load_config; print(load_config().input_dir)')"
    if [[ -d "$input_dir" ]]; then
        return
    fi
    local parent staging
    parent="$(dirname "$input_dir")"
    mkdir -p "$parent"
    rm -rf "$parent"/.demo-city-*
    staging="$(mktemp -d "$parent/.demo-city-XXXXXX")"
    echo "generating the demo city into $input_dir"
    geotriplet synth --out "$staging" --workers "$(nproc)"
    mv "$staging" "$input_dir"
}

ensure_optuna_database() {
    # A Postgres study storage gets its own database on the Dagster instance's server: Optuna's
    # tables (alembic_version among them) cannot share Dagster's.
    [[ "${GEOTRIPLET_OPTUNA_STORAGE:-}" == postgresql* ]] || return 0
    python - <<'PY'
import os

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

url = make_url(os.environ["GEOTRIPLET_OPTUNA_STORAGE"])
connection = psycopg2.connect(
    host=url.host, port=url.port or 5432, user=url.username, password=url.password,
    dbname=os.environ.get("DAGSTER_POSTGRES_DB", "postgres"),
)
connection.autocommit = True
with connection.cursor() as cursor:
    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
    if cursor.fetchone() is None:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
        print(f"created the Optuna database {url.database}")
connection.close()
PY
}

case "$role" in
    code-server)
        # The webserver and the daemon mount the data read-only: what Dagster writes there
        # (run artefacts, step logs) is created here, where runs execute.
        mkdir -p "${DAGSTER_ARTIFACT_DIR:-/data/dagster/storage}" \
            "${DAGSTER_COMPUTE_LOG_DIR:-/data/dagster/compute_logs}"
        ensure_demo_city
        ensure_optuna_database
        exec dagster code-server start --host 0.0.0.0 --port 4000 \
            --module-name geotriplet_assets.definitions --location-name geotriplet
        ;;
    webserver)
        exec dagster-webserver --host 0.0.0.0 --port 3000 --workspace "$workspace"
        ;;
    daemon)
        exec dagster-daemon run --workspace "$workspace"
        ;;
    *)
        exec "$@"
        ;;
esac

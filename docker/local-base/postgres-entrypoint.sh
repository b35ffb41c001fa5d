#!/usr/bin/env bash
# First start: initialise $PGDATA with POSTGRES_USER / POSTGRES_PASSWORD and create POSTGRES_DB,
# as the official postgres image does; then run the server on every interface.
set -euo pipefail

user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"

if [[ "${1:-}" == "postgres" && ! -s "$PGDATA/PG_VERSION" ]]; then
    if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
        echo "POSTGRES_PASSWORD is not set: the database would accept anyone" >&2
        exit 1
    fi
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 -D "$PGDATA" >/dev/null
    printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
    if [[ "$database" != "postgres" ]]; then
        postgres --single -D "$PGDATA" -j postgres <<<"CREATE DATABASE \"$database\" OWNER \"$user\";" >/dev/null
    fi
    echo "initialised $PGDATA for user $user, database $database"
fi

if [[ "${1:-}" == "postgres" ]]; then
    exec postgres -c listen_addresses='*' "${@:2}"
fi
exec "$@"

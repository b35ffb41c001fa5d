#!/usr/bin/env bash
# Health of whichever role the entrypoint started (see pipeline-entrypoint.sh). The checks run
# every few seconds on small machines, so they avoid importing Dagster where they can.
set -euo pipefail
case "$(cat /tmp/geotriplet-role 2>/dev/null || echo none)" in
    code-server)
        # what `dagster api grpc-health-check` asks, without its seconds of imports
        exec python - <<'PY'
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

with grpc.insecure_channel("127.0.0.1:4000") as channel:
    request = health_pb2.HealthCheckRequest(service="DagsterApi")
    try:
        status = health_pb2_grpc.HealthStub(channel).Check(request, timeout=10).status
    except grpc.RpcError as error:
        sys.exit(f"code server unreachable: {error.code()}")
sys.exit(0 if status == health_pb2.HealthCheckResponse.SERVING else f"code server: {status}")
PY
        ;;
    webserver)
        exec python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/server_info', timeout=10)"
        ;;
    daemon) exec dagster-daemon liveness-check ;;
    *) exit 0 ;;
esac

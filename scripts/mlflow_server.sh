#!/usr/bin/env bash
# A shared MLflow tracking server for a team; point airush at it with MLFLOW_TRACKING_URI=http://HOST:PORT.
#
#   scripts/mlflow_server.sh                      # 127.0.0.1:5000, sqlite + artifacts under outputs/server/
#   HOST=0.0.0.0 PORT=5000 scripts/mlflow_server.sh   # reachable from other machines: only behind a firewall/VPN
#
# Settings (environment):
#   HOST       bind address (default 127.0.0.1: this machine only; binding elsewhere is your explicit choice)
#   PORT       default 5000
#   WORKERS    server worker processes (default 2)
#   BACKEND    backend store URI: runs, params, metrics. Default sqlite under outputs/server/. For a team use
#              PostgreSQL: postgresql://USER:PASSWORD@DBHOST:5432/mlflow (pip install psycopg2-binary)
#   ARTIFACTS  where the server keeps artifacts it proxies for clients (--serve-artifacts): a directory, or an
#              S3-compatible store s3://bucket/prefix (pip install boto3; AWS_ACCESS_KEY_ID,
#              AWS_SECRET_ACCESS_KEY and, for MinIO/Ceph, MLFLOW_S3_ENDPOINT_URL in the server's environment).
#              Clients never need bucket credentials: they upload through the server.
#   ALLOWED_HOSTS  extra Host headers to accept when HOST is not loopback (e.g. "mlflow.team.lan:5000")
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-5000}"
WORKERS="${WORKERS:-2}"
BACKEND="${BACKEND:-sqlite:///${ROOT}/outputs/server/mlflow.db}"
ARTIFACTS="${ARTIFACTS:-${ROOT}/outputs/server/artifacts}"
MLFLOW="${MLFLOW:-$(command -v mlflow || echo "${ROOT}/.venv/bin/mlflow")}"

case "$BACKEND" in
  sqlite:///*) mkdir -p "$(dirname "${BACKEND#sqlite:///}")" ;;
esac
case "$ARTIFACTS" in
  *://*) ;;
  *) mkdir -p "$ARTIFACTS" ;;
esac

# The server's background job runner is not needed for tracking and would start extra processes.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

args=(server --backend-store-uri "$BACKEND" --artifacts-destination "$ARTIFACTS" --serve-artifacts
      --host "$HOST" --port "$PORT" --workers "$WORKERS")
if [[ -n "${ALLOWED_HOSTS:-}" ]]; then
  args+=(--allowed-hosts "$ALLOWED_HOSTS")
fi
echo "MLflow server on http://${HOST}:${PORT} (backend ${BACKEND%%://*}://…, artifacts ${ARTIFACTS})" >&2
echo "clients: export MLFLOW_TRACKING_URI=http://${HOST}:${PORT}" >&2
exec "$MLFLOW" "${args[@]}"

#!/usr/bin/env bash
# A shared MLflow tracking server for a team; point airush at it with MLFLOW_TRACKING_URI=http://HOST:PORT.
#
#   scripts/mlflow_server.sh                      # 127.0.0.1:5000, sqlite + artifacts under outputs/server/
#   HOST=0.0.0.0 PORT=5000 scripts/mlflow_server.sh   # reachable from other machines: only behind a firewall/VPN
#
# Settings (environment; the script takes no arguments but --help):
#   HOST       bind address (default 127.0.0.1: this machine only; binding elsewhere is your explicit choice)
#   PORT       default 5000
#   WORKERS    server worker processes (default 2; MLflow's own default is 4). Each is a Python process of
#              ~250 MB that also serves requests concurrently on threads, so 2 are plenty for a small team;
#              a sqlite backend takes one write at a time whatever the count: more pay off with PostgreSQL.
#   BACKEND    backend store URI: runs, params, metrics (also read from MLFLOW_BACKEND_STORE_URI). Default
#              sqlite under outputs/server/. For a team use PostgreSQL:
#              postgresql://USER:PASSWORD@DBHOST:5432/mlflow (pip install psycopg2-binary)
#   ARTIFACTS  where the server keeps artifacts it proxies for clients (--serve-artifacts): a directory, or an
#              S3-compatible store s3://bucket/prefix (pip install boto3; AWS_ACCESS_KEY_ID,
#              AWS_SECRET_ACCESS_KEY and, for MinIO/Ceph, MLFLOW_S3_ENDPOINT_URL in the server's environment).
#              Also read from MLFLOW_ARTIFACTS_DESTINATION. Clients never need bucket credentials: they
#              upload through the server.
#   ALLOWED_HOSTS  extra Host headers to accept when HOST is not loopback (e.g. "mlflow.team.lan:5000")
#   AUTH       "basic-auth": every request needs a user and password (`mlflow server --app-name basic-auth`;
#              pip install "mlflow[auth]"). Also set, in the server's environment only:
#              MLFLOW_FLASK_SERVER_SECRET_KEY (any long random string), MLFLOW_AUTH_CONFIG_PATH (an ini with
#              [mlflow] default_permission, database_uri of the users' database, admin_username) and, on
#              the first start, MLFLOW_AUTH_ADMIN_PASSWORD (12+ characters). Clients pass
#              MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
#
# The backend URI and the artifacts destination reach `mlflow server` as the environment variables
# MLFLOW_BACKEND_STORE_URI and MLFLOW_ARTIFACTS_DESTINATION, never as arguments: a password in a URI would be
# readable by every user of the machine in `ps`; a process's environment is readable by its owner only.
# Messages print them without user:password@ and without a ?query.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

case "${1:-}" in
  "") ;;
  -h | --help) usage; exit 0 ;;
  *) echo "mlflow_server.sh: unknown argument '$1': settings are environment variables (see --help)" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-5000}"
WORKERS="${WORKERS:-2}"
BACKEND="${BACKEND:-${MLFLOW_BACKEND_STORE_URI:-sqlite:///${ROOT}/outputs/server/mlflow.db}}"
ARTIFACTS="${ARTIFACTS:-${MLFLOW_ARTIFACTS_DESTINATION:-${ROOT}/outputs/server/artifacts}}"
MLFLOW="${MLFLOW:-$(command -v mlflow || echo "${ROOT}/.venv/bin/mlflow")}"
case "${AUTH:-}" in
  "" | basic-auth) ;;
  *) echo "mlflow_server.sh: AUTH='${AUTH}': the one authentication app is basic-auth (see --help)" >&2; exit 2 ;;
esac

# A URI as it may be shown: without user:password@ and without a ?query (e.g. ?password=...).
shown() {
  local uri=$1 scheme rest authority
  [[ $uri == *://* ]] || { printf '%s' "$uri"; return; }
  scheme=${uri%%://*}
  rest=${uri#*://}
  rest=${rest%%\?*}
  authority=${rest%%/*}
  [[ $authority == *@* ]] && rest="${authority##*@}${rest:${#authority}}"
  printf '%s://%s' "$scheme" "$rest"
}

case "$BACKEND" in
  sqlite:///*) mkdir -p "$(dirname "${BACKEND#sqlite:///}")" ;;
esac
case "$ARTIFACTS" in
  *://*) ;;
  *) mkdir -p "$ARTIFACTS" ;;
esac

# The server's background job runner is not needed for tracking and would start extra processes.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
export MLFLOW_BACKEND_STORE_URI="$BACKEND" MLFLOW_ARTIFACTS_DESTINATION="$ARTIFACTS"

args=(server --serve-artifacts --host "$HOST" --port "$PORT" --workers "$WORKERS")
if [[ -n "${ALLOWED_HOSTS:-}" ]]; then
  args+=(--allowed-hosts "$ALLOWED_HOSTS")
fi
if [[ -n "${AUTH:-}" ]]; then
  args+=(--app-name "$AUTH")
fi
echo "MLflow server on http://${HOST}:${PORT} (backend $(shown "$BACKEND"), artifacts $(shown "$ARTIFACTS"))" >&2
echo "clients: export MLFLOW_TRACKING_URI=http://${HOST}:${PORT}" >&2
exec "$MLFLOW" "${args[@]}"

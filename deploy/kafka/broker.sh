#!/usr/bin/env bash
# Embedded single-node Apache Kafka (KRaft) broker for development and tests.
#
#   broker.sh fetch
#   broker.sh start  --data-dir DIR [--port 9092] [--controller-port 9093] [--timeout 60]
#   broker.sh stop   --data-dir DIR [--timeout 30]
#   broker.sh status --data-dir DIR
#
# Jars come from Maven Central through ./pom.xml (see README.md).
# Environment overrides:
#   KAFKA_LIBS_DIR    jar directory            (default: <this dir>/.cache/libs)
#   KAFKA_HEAP_OPTS   JVM heap options         (default: -Xms256m -Xmx512m)
#   KAFKA_JIT_OPTS    JIT options              (default: -XX:TieredStopAtLevel=1, i.e.
#                     C1 only: ~2x faster start on 2 cores; set to "" for peak
#                     throughput in long benchmarks)
#   KAFKA_JVM_OPTS    extra JVM options        (default: none)
#   KAFKA_LOG_LEVEL   broker log level         (default: WARN)
#   JAVA_HOME / MVN   java and maven to use    (default: from PATH)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/pom.xml"
LIBS_DIR="${KAFKA_LIBS_DIR:-$SCRIPT_DIR/.cache/libs}"
MVN="${MVN:-mvn}"
if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

die() { printf 'broker.sh: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '4,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

# --- fetch -------------------------------------------------------------------
# Idempotent: the jar dir holds a stamp with the pom's hash; if it matches,
# nothing is done. Otherwise the jars are resolved into a fresh dir that then
# replaces the old one.
cmd_fetch() {
  local want stamp="$LIBS_DIR/.pom.sha256"
  want="$(pom_hash)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v "$MVN" >/dev/null || die "maven ('$MVN') not found; needed to fetch the Kafka jars"
  local tmp out
  mkdir -p "$(dirname "$LIBS_DIR")"
  tmp="$(mktemp -d "$LIBS_DIR.tmp.XXXXXX")"
  if ! out="$("$MVN" -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" -DincludeScope=runtime 2>&1)"; then
    rm -rf "$tmp"
    printf '%s\n' "$out" >&2
    die "maven could not resolve the Kafka jars"
  fi
  printf '%s\n' "$want" >"$tmp/.pom.sha256"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  echo "kafka jars: $LIBS_DIR ($(find "$LIBS_DIR" -name '*.jar' | wc -l) jars)"
}

# --- helpers -------------------------------------------------------------------
DATA_DIR="" PORT=9092 CONTROLLER_PORT=9093 TIMEOUT=""

parse_args() {
  while (($#)); do
    case "$1" in
      --data-dir) DATA_DIR="${2:?--data-dir needs a value}"; shift 2 ;;
      --data-dir=*) DATA_DIR="${1#*=}"; shift ;;
      --port) PORT="${2:?--port needs a value}"; shift 2 ;;
      --port=*) PORT="${1#*=}"; shift ;;
      --controller-port) CONTROLLER_PORT="${2:?--controller-port needs a value}"; shift 2 ;;
      --controller-port=*) CONTROLLER_PORT="${1#*=}"; shift ;;
      --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
      --timeout=*) TIMEOUT="${1#*=}"; shift ;;
      -h|--help) usage ;;
      *) die "unknown argument: $1" ;;
    esac
  done
  [[ -n "$DATA_DIR" ]] || die "--data-dir is required"
  [[ "$PORT" =~ ^[0-9]+$ && "$CONTROLLER_PORT" =~ ^[0-9]+$ ]] || die "ports must be numbers"
  [[ "$PORT" != "$CONTROLLER_PORT" ]] || die "--port and --controller-port must differ"
  [[ -z "$TIMEOUT" || "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
  mkdir -p "$DATA_DIR"
  DATA_DIR="$(cd "$DATA_DIR" && pwd)"
  PID_FILE="$DATA_DIR/broker.pid"
}

# Prints the pid of the running broker of DATA_DIR, or fails.
running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True when a Kafka broker on 127.0.0.1:$1 answers an ApiVersions request
# (the broker only serves requests once it has joined the quorum, caught up
# with the metadata log and been unfenced).
kafka_answers() {
  local n
  # size=10, api_key=18 (ApiVersions), api_version=0, correlation_id=1, client_id=null
  n="$( {
      exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
      printf '\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff' >&3
      timeout 2 head -c 8 <&3 | wc -c
    } 2>/dev/null)" || true
  [[ "${n:-0}" -ge 8 ]]
}

# A Kafka Uuid as `kafka-storage random-uuid` prints it (base64url of 16 random
# bytes, no padding, not starting with '-'), without starting a JVM for it.
new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    [[ "$id" != -* ]] && break
  done
  echo "$id"
}

java_cmd() {
  # shellcheck disable=SC2206 # word splitting of the option strings is intended
  local heap=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}) extra=(${KAFKA_JVM_OPTS:-}) \
    jit=(${KAFKA_JIT_OPTS--XX:TieredStopAtLevel=1})
  JAVA_CMD=("$JAVA" "${heap[@]}" "${jit[@]}"
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$DATA_DIR/log4j2.properties"
    "${extra[@]}" -cp "$LIBS_DIR/*")
}

write_configs() {
  local log_dir="$DATA_DIR/kafka-data"
  cat >"$DATA_DIR/server.properties" <<EOF
# Generated by deploy/kafka/broker.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
log.dirs=$log_dir

# Single node: every replication factor / ISR is 1.
num.partitions=8
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true

# Small machine (2 cores).
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
EOF
  cat >"$DATA_DIR/log4j2.properties" <<EOF
# Generated by deploy/kafka/broker.sh on every start.
status = warn
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $DATA_DIR/broker.log
appender.file.filePattern = $DATA_DIR/broker.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = ${KAFKA_LOG_LEVEL:-WARN}
rootLogger.appenderRef.file.ref = FILE
# Keep the start/stop lines even at WARN.
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
EOF
}

# --- start ---------------------------------------------------------------------
cmd_start() {
  parse_args "$@"
  local pid
  if pid="$(running_pid)"; then
    echo "kafka already running (pid $pid): 127.0.0.1:$(configured_port)"
    return 0
  fi
  rm -f "$PID_FILE"
  if port_open "$PORT"; then die "port 127.0.0.1:$PORT is already in use"; fi
  if port_open "$CONTROLLER_PORT"; then die "port 127.0.0.1:$CONTROLLER_PORT is already in use"; fi

  # The controller's endpoint is written into the metadata log at format time.
  if [[ -f "$DATA_DIR/server.properties" && -f "$DATA_DIR/kafka-data/meta.properties" ]]; then
    local old
    old="$(sed -n 's/^controller\.quorum\.bootstrap\.servers=127\.0\.0\.1:\([0-9]*\)$/\1/p' "$DATA_DIR/server.properties")"
    if [[ -n "$old" && "$old" != "$CONTROLLER_PORT" ]]; then
      die "$DATA_DIR was formatted with --controller-port $old; use it again (or a fresh --data-dir)"
    fi
  fi

  cmd_fetch
  command -v "$JAVA" >/dev/null || die "java ('$JAVA') not found"
  write_configs
  java_cmd

  if [[ ! -f "$DATA_DIR/kafka-data/meta.properties" ]]; then
    local cluster_id out
    cluster_id="$(new_cluster_id)"
    if ! out="$("${JAVA_CMD[@]}" kafka.tools.StorageTool format --standalone \
        --config "$DATA_DIR/server.properties" --cluster-id "$cluster_id" 2>&1)"; then
      printf '%s\n' "$out" >&2
      die "formatting $DATA_DIR/kafka-data failed"
    fi
  fi

  # setsid: the broker must not get the caller's Ctrl-C / SIGHUP.
  setsid "${JAVA_CMD[@]}" kafka.Kafka "$DATA_DIR/server.properties" \
    >>"$DATA_DIR/broker.out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"

  local deadline=$((SECONDS + ${TIMEOUT:-60}))
  until kafka_answers "$PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      tail -n 20 "$DATA_DIR/broker.out" "$DATA_DIR/broker.log" >&2 2>/dev/null || true
      die "kafka exited during start-up (logs: $DATA_DIR/broker.log, $DATA_DIR/broker.out)"
    fi
    if ((SECONDS >= deadline)); then
      die "kafka (pid $pid) did not answer on 127.0.0.1:$PORT within ${TIMEOUT:-60}s (log: $DATA_DIR/broker.log)"
    fi
    sleep 0.25
  done
  echo "kafka ready (pid $pid): 127.0.0.1:$PORT"
}

configured_port() {
  sed -n 's/^advertised\.listeners=PLAINTEXT:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' \
    "$DATA_DIR/server.properties" 2>/dev/null || true
}

# --- stop ----------------------------------------------------------------------
cmd_stop() {
  parse_args "$@"
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    echo "kafka not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + ${TIMEOUT:-30}))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "kafka (pid $pid) did not stop within ${TIMEOUT:-30}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$PID_FILE"
  echo "kafka stopped"
}

# --- status --------------------------------------------------------------------
# Exit status: 0 running and answering, 1 running but not answering, 3 stopped.
cmd_status() {
  parse_args "$@"
  local pid port
  if ! pid="$(running_pid)"; then
    echo "kafka not running"
    exit 3
  fi
  port="$(configured_port)"
  if [[ -n "$port" ]] && kafka_answers "$port"; then
    echo "kafka running (pid $pid): 127.0.0.1:$port"
  else
    echo "kafka running (pid $pid) but not answering on 127.0.0.1:${port:-?}"
    exit 1
  fi
}

case "${1:-}" in
  fetch) shift; (($# == 0)) || die "fetch takes no arguments"; cmd_fetch ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  *) usage ;;
esac

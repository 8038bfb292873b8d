#!/usr/bin/env bash
# How this folder was made (issue 13, read-ahead): three brokers one after another, each measured
# by scripts/bench.sh with both load generators on the fetch and fetch-cold workloads:
#   Apache Kafka 4.1.2 (page cache, Kafka's default flush policy),
#   Ringtail before read-ahead ($BEFORE_BIN, main 990619f), Ringtail with it ($AFTER_BIN, 36dedcd).
#   results/<this folder>/run.sh [FETCH_BYTES]      (from the repository root, as root; OUT=DIR
#   writes elsewhere, BROKERS="ringtail ringtail-before" picks brokers and order)
# Load generator binary: target/release/ringtail. Ports 19460-19481. Work dirs under $WORK.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-$(dirname "$0")}"
fetch_bytes=${1:-4294967296}
work=${WORK:-/tmp/bench-read-ahead}
before_bin=${BEFORE_BIN:-/work/bin/ringtail-990619f}
after_bin=${AFTER_BIN:-/work/bin/ringtail-ra2}
kafka_libs=${KAFKA_PEER_LIBS:-/work/peers/kafka/libs}
export KAFKA_PEER_LIBS="$kafka_libs"
bench=(scripts/bench.sh --duration 10 --fetch-bytes "$fetch_bytes" --out "$out" --workloads fetch,fetch-cold
  --kafka-libs "$kafka_libs" --bin target/release/ringtail)
mkdir -p "$work"
machine=()
run_bench() { "${bench[@]}" "${machine[@]}" "$@"; machine=(--skip-machine); }

kafka_run() {
  local pid; pid=$(scripts/peers/kafka.sh start "$work/kafka" 19460)
  trap "scripts/peers/kafka.sh stop '$work/kafka'" EXIT
  run_bench --broker "kafka=127.0.0.1:19460,pid=$pid" \
    --broker-note "kafka=Apache Kafka 4.1.2, one KRaft node, page cache (Kafka's default flush policy)"
  scripts/peers/kafka.sh stop "$work/kafka"
  trap - EXIT
}

ringtail_run() { # NAME BIN PORT
  local name=$1 bin=$2 port=$3
  rm -rf "$work/$name"; mkdir -p "$work/$name"
  "$bin" serve --listeners "PLAINTEXT://127.0.0.1:$port" --log-dirs "$work/$name" > "$work/$name.log" 2>&1 &
  local pid=$!
  trap "kill $pid 2>/dev/null || true" EXIT
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  run_bench --broker "$name=127.0.0.1:$port,pid=$pid" \
    --broker-note "$name=Ringtail ($bin, $("$bin" --version | head -1)), $(nproc) shards"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  trap - EXIT
}

for broker in ${BROKERS:-ringtail kafka ringtail-before}; do
  case $broker in
    kafka) kafka_run ;;
    ringtail) ringtail_run ringtail "$after_bin" 19470 ;;
    ringtail-before) ringtail_run ringtail-before "$before_bin" 19480 ;;
  esac
done
rm -rf "$work"

#!/usr/bin/env bash
# How this folder was made (2026-12-02, a7bd490; BROKERS="kafka ringtail kafka-durable tansu" RINGTAIL_BROKER_BIN=/work/bin/ringtail-a7bd490 run.sh 10): four brokers, one after another (so the idle ones are not on the
# machine), each measured by scripts/bench.sh with both load generators into this folder.
#   results/<this folder>/run.sh [DURATION] [FETCH_BYTES]      (from the repository root)
# Brokers: Apache Kafka 4.1.2 (page cache: Kafka's default flush policy), Apache Kafka 4.1.2
# durable (log.flush.interval.messages=1), tansu 0.6.0 (memory engine), Ringtail ($RINGTAIL_BROKER_BIN,
# default /work/bin/ringtail = main at the time). Load generator binary: target/release/ringtail.
# Ports 19420-19451. Work dirs under $WORK (default /tmp/bench-peers).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-$(dirname "$0")}"
duration=${1:-10}
fetch_bytes=${2:-2147483648}
work=${WORK:-/tmp/bench-peers}
ringtail_broker=${RINGTAIL_BROKER_BIN:-/work/bin/ringtail}
tansu_bin=${TANSU_BIN:-.venv/peers/tansu}
kafka_libs=${KAFKA_PEER_LIBS:-.venv/peers/kafka/libs}
# Every workload on Kafka (page cache) and Ringtail; on Kafka durable and tansu the produce
# workloads without the slow ones (the run had to fit the time the shared machine allowed).
all_workloads=${WORKLOADS:-throughput,durable,small,latency,partitions,many-producers,fetch}
short_workloads=${SHORT_WORKLOADS:-throughput,durable,small,latency}
bench=(scripts/bench.sh --duration "$duration" --fetch-bytes "$fetch_bytes" --out "$out"
  --kafka-libs "$kafka_libs" --bin target/release/ringtail)
mkdir -p "$work"
[[ -f "$kafka_libs/.installed" ]] || scripts/peers/kafka.sh install "$(dirname "$kafka_libs")"
machine=()
run_bench() { "${bench[@]}" "${machine[@]}" "$@"; machine=(--skip-machine); }
export KAFKA_PEER_LIBS="$(cd "$kafka_libs" && pwd)"

kafka_run() { # MODE
  local name=kafka port=19420 flag=() note="page cache (Kafka's default flush policy)"
  if [[ $1 == durable ]]; then
    name=kafka-durable port=19430 flag=(--durable) note="log.flush.interval.messages=1 (fsync before acks=all answers)"
  fi
  local pid; pid=$(scripts/peers/kafka.sh start "$work/$name" "$port" "${flag[@]}")
  trap "scripts/peers/kafka.sh stop '$work/$name'" EXIT
  local workloads=$all_workloads
  [[ $name == kafka-durable ]] && workloads=$short_workloads
  run_bench --workloads "$workloads" --broker "$name=127.0.0.1:$port,pid=$pid" --broker-note "$name=Apache Kafka 4.1.2, one KRaft node, $note"
  scripts/peers/kafka.sh stop "$work/$name"
  rm -rf "$work/$name/data"
  trap - EXIT
}

ringtail_run() {
  rm -rf "$work/ringtail"; mkdir -p "$work/ringtail"
  "$ringtail_broker" serve --listeners PLAINTEXT://127.0.0.1:19450 --log-dirs "$work/ringtail" > "$work/ringtail.log" 2>&1 &
  local pid=$!
  trap "kill $pid 2>/dev/null || true" EXIT
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/19450) 2>/dev/null && break; sleep 0.1; done
  run_bench --workloads "$all_workloads" --broker "ringtail=127.0.0.1:19450,pid=$pid" \
    --broker-note "ringtail=Ringtail ($ringtail_broker, $("$ringtail_broker" --version | head -1)), $(nproc) shards; acks=all answers after fdatasync"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$work/ringtail"
  trap - EXIT
}

tansu_run() {
  "$tansu_bin" broker --listener-url tcp://127.0.0.1:19440 --advertised-listener-url tcp://127.0.0.1:19440 \
    --storage-engine memory://tansu/ > "$work/tansu.log" 2>&1 &
  local pid=$!
  trap "kill $pid 2>/dev/null || true" EXIT
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/19440) 2>/dev/null && break; sleep 0.1; done
  run_bench --workloads "$short_workloads" --broker "tansu=127.0.0.1:19440,pid=$pid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  trap - EXIT
}

# Most important first, in case the run is cut short: Kafka (page cache), Ringtail, Kafka durable, tansu.
for broker in ${BROKERS:-kafka ringtail kafka-durable tansu}; do
  case $broker in
    kafka) kafka_run pagecache ;;
    kafka-durable) kafka_run durable ;;
    ringtail) ringtail_run ;;
    tansu) tansu_run ;;
  esac
done
rm -rf "$work/ringtail" "$work/kafka/data" "$work/kafka-durable/data"

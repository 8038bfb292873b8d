#!/usr/bin/env bash
# How this folder was made (2026-12-03, d6c9de8): the rows issue 13's table still lacked, Ringtail
# beside Apache Kafka 4.1.2 (page cache), one broker at a time, both load generators
# (scripts/bench.sh into this folder):
#   - few-producers (4 producers at 200 MiB/s) and many-producers (50) in the same run;
#   - fetch-cold of a 10 GiB topic (page cache dropped after the write and before each reader);
#   - fetch of a cached tail: Ringtail with ringtail.partition.cache.bytes=268435456, so the
#     448 MiB topic (56 MiB a partition, under the 64 MiB each of 4 partitions gets of a shard's
#     256 MiB bound) is read back from the tail cache; Kafka's row reads it from its page cache.
#   results/<this folder>/run.sh [DURATION]      (from the repository root)
# Ports 19470-19479. Work dirs under $WORK (default /tmp/bench-gaps).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-$(dirname "$0")}"
duration=${1:-10}
work=${WORK:-/tmp/bench-gaps}
ringtail_broker=${RINGTAIL_BROKER_BIN:-/work/bin/ringtail-d6c9de8}
kafka_libs=${KAFKA_PEER_LIBS:-.venv/peers/kafka/libs}
export KAFKA_PEER_LIBS="$(cd "$kafka_libs" && pwd)"
mkdir -p "$work"
machine=()
bench() { scripts/bench.sh --duration "$duration" --out "$out" --kafka-libs "$kafka_libs" \
  --bin target/release/ringtail "${machine[@]}" "$@"; machine=(--skip-machine); }

kafka_run() {
  local pid; pid=$(scripts/peers/kafka.sh start "$work/kafka" 19470)
  trap "scripts/peers/kafka.sh stop '$work/kafka'" EXIT
  local b=(--broker "kafka=127.0.0.1:19470,pid=$pid" --broker-note "kafka=Apache Kafka 4.1.2, one KRaft node, page cache (Kafka's default flush policy)")
  bench --workloads few-producers,many-producers "${b[@]}"
  bench --workloads fetch --fetch-bytes 469762048 "${b[@]}"
  bench --workloads fetch-cold --fetch-bytes 10737418240 "${b[@]}"
  scripts/peers/kafka.sh stop "$work/kafka"; rm -rf "$work/kafka/data"; trap - EXIT
}

ringtail_run() { # NAME PORT SETTINGS...
  local name=$1 port=$2; shift 2
  rm -rf "$work/$name"; mkdir -p "$work/$name"
  "$ringtail_broker" serve --listeners "PLAINTEXT://127.0.0.1:$port" --log-dirs "$work/$name" \
    --set ringtail.http.listener= "$@" > "$work/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  echo "127.0.0.1:$port,pid=$pid"
}
ringtail_stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

# (This folder: Kafka's rows first, then the Ringtail rows by a second call with SKIP_KAFKA=1
# after a fix to this script: a trap in the command substitution had stopped the broker.)
[[ -n ${SKIP_KAFKA:-} ]] || kafka_run
note="Ringtail ($ringtail_broker, $("$ringtail_broker" --version | head -1)), $(nproc) shards; acks=all answers after fdatasync"
addr=$(ringtail_run ringtail 19471); pid=${addr##*pid=}
bench --workloads few-producers,many-producers --broker "ringtail=$addr" --broker-note "ringtail=$note"
bench --workloads fetch-cold --fetch-bytes 10737418240 --broker "ringtail=$addr" --broker-note "ringtail=$note"
ringtail_stop "$pid"; rm -rf "$work/ringtail"
addr=$(ringtail_run ringtail-cached 19472 --set ringtail.partition.cache.bytes=268435456 \
  --set ringtail.http.listener=127.0.0.1:19473); pid=${addr##*pid=}
bench --workloads fetch --fetch-bytes 469762048 --broker "ringtail-cached=$addr" \
  --broker-note "ringtail-cached=$note; ringtail.partition.cache.bytes=268435456 (the fetched topic is in the tail cache)"
# The tail cache's hits and misses over the run (reads served from memory vs the segment files).
curl -s http://127.0.0.1:19473/metrics | grep -E '^ringtail_shard_tail_cache' > "$out/ringtail-cached-tail-cache-metrics.txt" || true
ringtail_stop "$pid"; rm -rf "$work/ringtail-cached"

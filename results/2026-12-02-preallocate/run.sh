#!/usr/bin/env bash
# How this folder was made (2026-12-02, f1187a4): one Ringtail binary, started twice in turn,
# with log.preallocate=false and =true (2 shards, a fresh data dir under $WORK each time), each
# measured by scripts/bench.sh with both load generators. Then the same again in the other order
# (rerun/). Brokers run one at a time.
#   results/2026-12-02-preallocate/run.sh [DURATION]      (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-$(dirname "$0")}"
duration=${1:-10}
work=${WORK:-/tmp/bench-prealloc}
bin=${RINGTAIL_BROKER_BIN:-/work/bin/ringtail-f1187a4}
order=${ORDER:-"false true"}
workloads=${WORKLOADS:-throughput,durable,latency}
port=19460
for preallocate in $order; do
  rm -rf "$work" && mkdir -p "$work"
  "$bin" serve --listeners "PLAINTEXT://127.0.0.1:$port" --log-dirs "$work/data" --shards 2 \
    --set ringtail.http.listener= --set "log.preallocate=$preallocate" > "$out/broker-preallocate-$preallocate.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do kcat -b "127.0.0.1:$port" -L >/dev/null 2>&1 && break; sleep 0.2; done
  scripts/bench.sh --broker "preallocate-$preallocate=127.0.0.1:$port,pid=$pid" \
    --broker-note "preallocate-$preallocate=Ringtail f1187a4, 2 shards, log.preallocate=$preallocate" \
    --workloads "$workloads" --duration "$duration" --out "$out" --skip-machine --bin "$bin"
  kill "$pid"; wait "$pid" || true
  rm -rf "$work"
  port=$((port + 1))
done

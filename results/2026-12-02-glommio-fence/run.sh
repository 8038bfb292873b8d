#!/usr/bin/env bash
# How this folder was made (2026-12-02): two Ringtail binaries in turn, 2 shards, a fresh data dir
# each, log.preallocate=false on both: "membarrier" = /work/bin/ringtail-f1187a4 (crates.io
# glommio 0.9.0) and "fence" = /work/bin/ringtail-fence (the working tree of the commit adding
# vendor/glommio: the reactor's pre-sleep membarrier replaced by a SeqCst fence). Each measured
# by scripts/bench.sh with both load generators; then again in the other order (rerun/).
#   results/2026-12-02-glommio-fence/run.sh [DURATION]      (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-$(dirname "$0")}"
duration=${1:-10}
work=${WORK:-/tmp/bench-fence}
order=${ORDER:-"membarrier fence"}
workloads=${WORKLOADS:-throughput,durable,latency}
port=19470
for variant in $order; do
  case $variant in
    membarrier) bin=/work/bin/ringtail-f1187a4 ;;
    fence) bin=/work/bin/ringtail-fence ;;
  esac
  rm -rf "$work" && mkdir -p "$work"
  "$bin" serve --listeners "PLAINTEXT://127.0.0.1:$port" --log-dirs "$work/data" --shards 2 \
    --set ringtail.http.listener= --set log.preallocate=false > "$out/broker-$variant.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do kcat -b "127.0.0.1:$port" -L >/dev/null 2>&1 && break; sleep 0.2; done
  scripts/bench.sh --broker "$variant=127.0.0.1:$port,pid=$pid" \
    --broker-note "$variant=Ringtail $bin, 2 shards, log.preallocate=false" \
    --workloads "$workloads" --duration "$duration" --out "$out" --skip-machine --bin /work/bin/ringtail-fence
  kill "$pid"; wait "$pid" || true
  rm -rf "$work"
  port=$((port + 1))
done

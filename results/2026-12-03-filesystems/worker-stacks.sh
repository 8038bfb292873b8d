#!/usr/bin/env bash
# What the io_uring workers do on XFS: 8 s of acks=1 `ringtail bench` on a fresh XFS (loop
# device as in run.sh), `perf record -g` on the broker, then the kernel call chains of the
# iou-wrk threads by symbol, as a share of all the broker's samples (worker-stacks.txt). Root.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$(cd "$(dirname "$0")" && pwd)"
bin=${RINGTAIL_BROKER_BIN:-target/release/ringtail}
image=/work/fs-image/img; mnt=/mnt/ringtail-fs; port=19499
mkdir -p /work/fs-image "$mnt"; rm -f "$image"; fallocate -l 20G "$image"
loop=$(losetup --find --show --direct-io=on "$image")
trap 'umount "$mnt" 2>/dev/null || true; losetup -d "$loop"; rm -f "$image" /tmp/perf-stacks.data' EXIT
mkfs.xfs -f -q "$loop"; mount "$loop" "$mnt"; mkdir -p "$mnt/data"
"$bin" serve --listeners "PLAINTEXT://127.0.0.1:$port" --log-dirs "$mnt/data" --shards 2 \
  --set ringtail.http.listener= > /tmp/worker-stacks-broker.log 2>&1 &
pid=$!
for _ in $(seq 100); do kcat -b "127.0.0.1:$port" -L >/dev/null 2>&1 && break; sleep 0.2; done
b=("$bin" bench produce --bootstrap-server "127.0.0.1:$port" --topic stacks --partitions 8
   --record-size 1024 --threads 1 --no-progress --producer-props acks=1)
"${b[@]}" --duration 1 --results-dir /tmp/ringtail-warm-up >/dev/null 2>&1
perf record -F 999 -g -p "$pid" -o /tmp/perf-stacks.data -- sleep 8 >/dev/null 2>&1 &
perf_pid=$!
"${b[@]}" --duration 8 --results-dir /tmp/ringtail-warm-up >/dev/null 2>&1
wait "$perf_pid"
kill "$pid"; wait "$pid" || true
{
  echo "# kernel $(uname -r), XFS on a loop device: the iou-wrk threads' samples by symbol (self), as % of all the broker's samples"
  perf report -i /tmp/perf-stacks.data --comms "$(perf report -i /tmp/perf-stacks.data --sort comm --stdio 2>/dev/null | grep -oE 'iou-wrk-[0-9]+' | sort -u | paste -sd,)" \
    --no-children --sort sym --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -25 || true
} > "$out/worker-stacks.txt"

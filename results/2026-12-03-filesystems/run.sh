#!/usr/bin/env bash
# How this folder was made (issue 13, "document the recommended filesystem with figures"): one
# Ringtail binary, one broker at a time (2 shards, defaults: log.preallocate=false), its log dir
# on each filesystem in turn:
#   ext4-native  the machine's own root filesystem (ext4 on the virtio disk)
#   ext4-loop    a fresh ext4 made on a 20 GiB image through a loop device (--direct-io=on, so
#                the loop device adds no page cache of its own)
#   xfs-loop     a fresh XFS on the same image
#   xfs-extsize  the same XFS with an extent size hint of 16 MiB on the log dir (inherited by
#                every partition directory: `xfs_io -c "extsize 16m"`)
# Each is measured by scripts/bench.sh (ringtail bench: throughput acks=1, durable acks=all,
# latency acks=all at 50 MiB/s), then 8 s of acks=1 under `perf record`, split by thread
# (shard threads against io_uring workers, iou-wrk-*: the writes the filesystem could not take
# without blocking). Needs root (losetup, mkfs.xfs, mount, perf).
#   results/2026-12-03-filesystems/run.sh [DURATION]      (from the repository root)
#   FILESYSTEMS="xfs-loop ext4-loop" ... to choose and order them; OUT=dir for another folder
#   (rerun/: OUT=results/2026-12-03-filesystems/rerun FILESYSTEMS="xfs-extsize xfs-loop ext4-loop ext4-native")
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-$(cd "$(dirname "$0")" && pwd)}"; mkdir -p "$out"; out="$(cd "$out" && pwd)"
duration=${1:-10}
bin=${RINGTAIL_BROKER_BIN:-target/release/ringtail}
commit=$(git rev-parse --short HEAD)
filesystems=${FILESYSTEMS:-"ext4-native ext4-loop xfs-loop xfs-extsize"}
workloads=${WORKLOADS:-throughput,durable,latency}
image=${IMAGE:-/work/fs-image/img}
mnt=/mnt/ringtail-fs
port=19480
loop=""
cleanup() {
  mountpoint -q "$mnt" && umount "$mnt" || true
  [[ -n "$loop" ]] && losetup -d "$loop" 2>/dev/null || true
  rm -f "$image"
}
trap cleanup EXIT
ready() { for _ in $(seq 100); do kcat -b "127.0.0.1:$1" -L >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
mkdir -p "$(dirname "$image")" "$mnt"
for fs in $filesystems; do
  mountpoint -q "$mnt" && umount "$mnt"
  case "$fs" in
    ext4-native) dir=/work/fs-native; rm -rf "$dir"; mkdir -p "$dir" ;;
    *)
      if [[ -z "$loop" ]]; then
        rm -f "$image"; fallocate -l 20G "$image"
        loop=$(losetup --find --show --direct-io=on "$image")
      fi
      case "$fs" in
        ext4-loop) mkfs.ext4 -F -q "$loop" ;;
        xfs-*) mkfs.xfs -f -q "$loop" ;;
      esac
      mount "$loop" "$mnt"
      dir="$mnt/data"; mkdir -p "$dir"
      [[ "$fs" == xfs-extsize ]] && xfs_io -c "extsize 16m" "$dir"
      ;;
  esac
  "$bin" serve --listeners "PLAINTEXT://127.0.0.1:$port" --log-dirs "$dir" --shards 2 \
    --set ringtail.http.listener= > "$out/broker-$fs.log" 2>&1 &
  pid=$!
  ready "$port"
  scripts/bench.sh --broker "$fs=127.0.0.1:$port,pid=$pid" \
    --broker-note "$fs=Ringtail $commit, 2 shards, log dir on $fs" \
    --workloads "$workloads" --load-generators ringtail --duration "$duration" --out "$out" \
    --skip-machine --bin "$bin" --data-dir "$dir"
  # CPU by thread during 8 s of acks=1 (one warm-up second first, on a fresh topic).
  b=("$bin" bench produce --bootstrap-server "127.0.0.1:$port" --topic "perf-$fs" --partitions 8
     --record-size 1024 --threads 1 --no-progress --producer-props acks=1)
  "${b[@]}" --duration 1 --results-dir /tmp/ringtail-warm-up >/dev/null 2>&1
  sleep 1
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  perf record -F 999 -g -p "$pid" -o "/tmp/perf-$fs.data" -- sleep 8 >/dev/null 2>&1 &
  perf_pid=$!
  rm -rf "/tmp/perf-bench-$fs"
  "${b[@]}" --duration 8 --results-dir "/tmp/perf-bench-$fs" >/dev/null 2>&1
  wait "$perf_pid"
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  {
    echo "## $fs"
    python3 - "$fs" "$t0" "$t1" "/tmp/perf-bench-$fs" <<'PY'
import glob, json, sys
fs, t0, t1, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
f = sorted(glob.glob(d + "/*.json"))[-1]
p = json.load(open(f))["figures"]["produce"]
gib = p["bytes"] / 2**30
cpu = (t1 - t0) / 100
print(f"{fs} cpu_s {cpu:.2f} GiB {gib:.2f} cpu_s/GiB {cpu / gib:.2f} MB/s {p['mb_per_sec']:.1f}")
PY
    perf report -i "/tmp/perf-$fs.data" --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | sed -E 's/iou-wrk-[0-9]+/iou-wrk/' | head -8
  } >> "$out/perf-by-thread.txt"
  rm -f "/tmp/perf-$fs.data"
  kill "$pid"; wait "$pid" || true
  rm -rf "$dir"
  port=$((port + 1))
done

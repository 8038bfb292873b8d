#!/usr/bin/env bash
# Named workloads against one or more Kafka-compatible brokers, side by side, in one results
# folder: results/<date>-<commit>/ with one JSON + SVG + log per (workload, broker), the machine's
# own limits (machine.md), and summary.md (a markdown table of everything).
#
#   scripts/bench.sh --broker ringtail=127.0.0.1:9092 --broker tansu=127.0.0.1:19092 \
#       --workloads throughput,durable,small,latency,compressed,fetch,partitions
#
# Options:
#   --broker NAME=HOST:PORT   a broker to measure (repeatable; at least one)
#   --broker-note NAME=TEXT   a note for that broker's rows (tansu gets "memory engine, not durable")
#   --workloads LIST          comma-separated (default: all of throughput,durable,small,latency,
#                             compressed,fetch,partitions; e2e is also available)
#   --duration SECONDS        length of each produce run (default 30)
#   --fetch-bytes BYTES       size of the topic the fetch workload reads (default 10737418240)
#   --latency-mb-per-sec N    rate of the latency workload (default 50)
#   --threads N               executors of the load generator (default 1)
#   --out DIR                 results folder (default results/<date>-<commit>)
#   --data-dir DIR            filesystem to measure write bandwidth on (default .)
#   --bin PATH                the ringtail binary (default target/release/ringtail, built if missing)
#   --skip-machine            do not measure disk and loopback bandwidth
#   --install-tools           apt-get install fio and iperf3 first (else dd and a python socket test)
set -euo pipefail

cd "$(dirname "$0")/.."
brokers=()
declare -A broker_notes=()
workloads="throughput,durable,small,latency,compressed,fetch,partitions"
duration=30
fetch_bytes=10737418240
latency_mb=50
threads=1
out=""
data_dir="."
bin=""
skip_machine=0
install_tools=0

die() { echo "bench.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --broker) [[ "${2:-}" == *=*:* ]] || die "--broker takes NAME=HOST:PORT"; brokers+=("$2"); shift 2 ;;
    --broker-note) [[ "${2:-}" == *=* ]] || die "--broker-note takes NAME=TEXT"; broker_notes["${2%%=*}"]="${2#*=}"; shift 2 ;;
    --workloads) workloads="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --fetch-bytes) fetch_bytes="$2"; shift 2 ;;
    --latency-mb-per-sec) latency_mb="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --skip-machine) skip_machine=1; shift ;;
    --install-tools) install_tools=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ ${#brokers[@]} -gt 0 ]] || die "give at least one --broker NAME=HOST:PORT"
[[ "$duration" =~ ^[0-9]+$ && "$duration" -gt 0 ]] || die "--duration must be a positive number of seconds"
[[ "$fetch_bytes" =~ ^[0-9]+$ && "$fetch_bytes" -ge 1048576 ]] || die "--fetch-bytes must be at least 1048576"

if [[ $install_tools -eq 1 ]] && ! { command -v fio && command -v iperf3; } >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y fio iperf3 </dev/null >/dev/null \
    || { apt-get update </dev/null >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y fio iperf3 </dev/null >/dev/null; } \
    || echo "bench.sh: could not install fio/iperf3; falling back to dd and a python socket test" >&2
fi

commit=$(git rev-parse --short HEAD 2>/dev/null || echo nogit)
run_id="$(date -u +%Y-%m-%d)-${commit}"
out="${out:-results/${run_id}}"
mkdir -p "$out"
if [[ -z "$bin" ]]; then
  bin="${CARGO_TARGET_DIR:-target}/release/ringtail"
  [[ -x "$bin" ]] || cargo build --release
fi
[[ -x "$bin" ]] || die "no ringtail binary at $bin"
tag=$(date -u +%H%M%S)

for b in "${brokers[@]}"; do
  name="${b%%=*}"
  if [[ -z "${broker_notes[$name]:-}" && "$name" == *tansu* ]]; then
    broker_notes[$name]="tansu memory engine: not durable"
  fi
done

# ---- machine limits --------------------------------------------------------------------------
measure_machine() {
  local md="$out/machine.md" tmp seq_num="null" sync_num="null" tcp_num="null"
  tmp=$(mktemp -d "${data_dir%/}/.bench-io.XXXXXX")
  {
    echo "# Machine limits"
    echo
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) cores online)"
    echo "- Kernel: $(uname -r)"
    echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "- Load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared; figures are fractions of what was free)"
    echo "- Filesystem of the data dir: $(df -hT "$data_dir" | awk 'NR==2 {print $2" on "$1}')"
  } > "$md"
  if command -v fio >/dev/null; then
    local seq sync
    seq=$(fio --name=seqwrite --directory="$tmp" --rw=write --bs=1M --size=1G --direct=1 --ioengine=libaio --iodepth=8 --end_fsync=1 --output-format=json 2>/dev/null \
      | python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.0f" % (j["jobs"][0]["write"]["bw"]/1024))' || echo "?")
    sync=$(fio --name=syncwrite --directory="$tmp" --rw=write --bs=64k --size=256M --fdatasync=1 --ioengine=sync --output-format=json 2>/dev/null \
      | python3 -c 'import json,sys; j=json.load(sys.stdin); w=j["jobs"][0]["write"]; print("%.0f MiB/s, %.0f writes/s" % (w["bw"]/1024, w["iops"]))' || echo "?")
    echo "- Sequential write, O_DIRECT, 1 MiB blocks, iodepth 8 (fio): ${seq} MiB/s" >> "$md"
    [[ "$seq" =~ ^[0-9]+$ ]] && seq_num=$seq
    [[ "${sync%% *}" =~ ^[0-9]+$ ]] && sync_num=${sync%% *}
    echo "- Write + fdatasync per 64 KiB (fio; bounds acks=all with one sync per batch): ${sync}" >> "$md"
  else
    local seq sync
    seq=$(dd if=/dev/zero of="$tmp/dd" bs=1M count=1024 oflag=direct conv=fdatasync 2>&1 | awk '/copied/ {print $(NF-1)" "$NF}')
    sync=$(dd if=/dev/zero of="$tmp/dd" bs=64k count=2000 oflag=dsync 2>&1 | awk '/copied/ {print $(NF-1)" "$NF}')
    echo "- Sequential write, O_DIRECT, 1 MiB blocks (dd): ${seq}" >> "$md"
    echo "- Write with O_DSYNC per 64 KiB (dd): ${sync}" >> "$md"
  fi
  rm -rf "$tmp"
  if command -v iperf3 >/dev/null; then
    iperf3 -s -1 -p 15201 >/dev/null 2>&1 &
    local server=$!
    sleep 0.5
    local tcp
    tcp=$(iperf3 -c 127.0.0.1 -p 15201 -t 5 -J 2>/dev/null | python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.0f" % (j["end"]["sum_received"]["bits_per_second"]/8/1048576))' || echo "?")
    wait "$server" 2>/dev/null || true
    echo "- Loopback TCP, one stream (iperf3, 5 s): ${tcp} MiB/s" >> "$md"
    [[ "$tcp" =~ ^[0-9]+$ ]] && tcp_num=$tcp
  else
    local tcp
    tcp=$(python3 - <<'PY'
import socket, threading, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
port = srv.getsockname()[1]
def sink():
    c, _ = srv.accept()
    while c.recv(1 << 20): pass
threading.Thread(target=sink, daemon=True).start()
s = socket.create_connection(("127.0.0.1", port)); buf = b"x" * (1 << 20)
n, t0 = 0, time.time()
while time.time() - t0 < 3: s.sendall(buf); n += len(buf)
print("%.0f" % (n / (time.time() - t0) / 1048576))
PY
)
    echo "- Loopback TCP, one stream (python socket, 3 s): ${tcp} MiB/s" >> "$md"
    [[ "$tcp" =~ ^[0-9]+$ ]] && tcp_num=$tcp
  fi
  printf '{"disk_seq_write_mib_s": %s, "disk_fdatasync_64k_write_mib_s": %s, "loopback_tcp_mib_s": %s, "load_average": "%s"}\n' \
    "$seq_num" "$sync_num" "$tcp_num" "$(cut -d' ' -f1-3 /proc/loadavg)" > "$out/machine.json"
  cat "$md"
}
[[ $skip_machine -eq 1 ]] || measure_machine

# ---- workloads -------------------------------------------------------------------------------
# run WORKLOAD BROKER_NAME ADDR KIND EXTRA_ARGS...
run() {
  local workload="$1" name="$2" addr="$3" kind="$4"; shift 4
  local result="${workload}-${name}"
  echo "== ${workload} on ${name} (${addr})" >&2
  if ! "$bin" bench "$kind" --bootstrap-server "$addr" --results-dir "$out" --result-name "$result" \
      --workload "$workload" --broker-label "$name" --note "${broker_notes[$name]:-}" --threads "$threads" --no-progress "$@" \
      > "$out/${result}.log" 2>&1; then
    echo "   FAILED (see $out/${result}.log):" >&2
    tail -3 "$out/${result}.log" >&2
  else
    tail -2 "$out/${result}.log" >&2
  fi
}

base_props=(acks=1 linger.ms=5 batch.size=65536)
latency_rate=$(( latency_mb * 1024 ))   # records/s of 1 KiB for latency_mb MiB/s
fetch_records=$(( fetch_bytes / 1024 ))
IFS=',' read -r -a selected <<< "$workloads"
for workload in "${selected[@]}"; do
  for b in "${brokers[@]}"; do
    name="${b%%=*}" addr="${b#*=}"
    topic="bench-${workload}-${tag}"
    case "$workload" in
      throughput) run throughput "$name" "$addr" produce --topic "$topic" --partitions 8 --record-size 1024 --duration "$duration" --producer-props "${base_props[@]}" ;;
      durable) run durable "$name" "$addr" produce --topic "$topic" --partitions 8 --record-size 1024 --duration "$duration" --producer-props acks=all linger.ms=5 batch.size=65536 ;;
      small) run small "$name" "$addr" produce --topic "$topic" --partitions 8 --record-size 100 --duration "$duration" --producer-props "${base_props[@]}" ;;
      latency) run latency "$name" "$addr" produce --topic "$topic" --partitions 8 --record-size 1024 --duration "$duration" --throughput "$latency_rate" --producer-props acks=all linger.ms=5 batch.size=65536 ;;
      compressed)
        for codec in lz4 zstd; do
          run "compressed-${codec}" "$name" "$addr" produce --topic "${topic}-${codec}" --partitions 8 --record-size 1024 --payload json --duration "$duration" --producer-props "${base_props[@]}" compression.type="$codec"
        done ;;
      fetch)
        run fetch-load "$name" "$addr" produce --topic "$topic" --partitions 8 --record-size 1024 --num-records "$fetch_records" --producer-props "${base_props[@]}"
        run fetch "$name" "$addr" consume --topic "$topic" --num-records "$fetch_records" --timeout-ms 30000 ;;
      partitions) run partitions "$name" "$addr" produce --topic "$topic" --partitions 1000 --record-size 1024 --duration "$duration" --producer-props "${base_props[@]}" ;;
      e2e) run e2e "$name" "$addr" e2e --topic "$topic" --partitions 8 --record-size 1024 --num-records $(( latency_rate * duration / 10 )) --throughput $(( latency_rate / 10 )) --producer-props acks=all linger.ms=1 ;;
      *) die "unknown workload $workload" ;;
    esac
  done
done

notes=()
[[ -f "$out/machine.md" ]] && notes+=("$(sed 's/^# Machine limits/**Machine limits**/' "$out/machine.md")")
for name in "${!broker_notes[@]}"; do
  [[ -n "${broker_notes[$name]}" ]] && notes+=("**${name}**: ${broker_notes[$name]}.")
done
notes+=("durable and latency use acks=all: Ringtail answers them only after fdatasync covered the batch (group commit); a broker without durable storage answers at once.")
notes+=("Workloads: throughput/durable/small/compressed/partitions run ${duration} s each with linger.ms=5, batch.size=65536 (acks=1; durable and latency acks=all). latency: acks=all at ${latency_mb} MiB/s, latency from the intended send time (no coordinated omission). fetch: consume ${fetch_records} records of 1 KiB from the start. Command lines are in each JSON file.")
summary_args=()
for n in "${notes[@]}"; do summary_args+=(--note "$n"); done
"$bin" bench summary --results-dir "$out" --title "Ringtail bench ${run_id}" "${summary_args[@]}" > /dev/null
echo "summary: $out/summary.md" >&2

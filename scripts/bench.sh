#!/usr/bin/env bash
# Named workloads against one or more Kafka-compatible brokers, side by side, with two load
# generators each: `ringtail bench` and Apache Kafka's own perf tools by their main classes
# (org.apache.kafka.tools.ProducerPerformance, ConsumerPerformance, EndToEndLatency) with the same
# record size, acks, linger.ms, batch.size, compression and throughput. One results folder:
# results/<date>-<commit>/ with one JSON + SVG + log per (workload, broker) for ringtail bench, one
# log per Kafka-tool run, rows.jsonl (every row of both generators with the broker's CPU seconds
# per GiB of record values and its peak RSS), the machine's own limits (machine.md), summary.md
# (ringtail bench rows) and summary-peers.md (brokers side by side, ratios to Apache Kafka).
#
#   scripts/peers/kafka.sh start /tmp/kafka 19092                  # pid printed, also in /tmp/kafka/kafka.pid
#   scripts/bench.sh --broker kafka=127.0.0.1:19092,pid=$(cat /tmp/kafka/kafka.pid) \
#       --broker ringtail=127.0.0.1:9092,pid=$RINGTAIL_PID --duration 10 --fetch-bytes 2147483648
#
# Options:
#   --broker NAME=HOST:PORT[,pid=PID]  a broker to measure (repeatable; at least one). With pid=,
#                             each row records the broker's CPU-s/GiB (utime+stime from /proc/PID/stat)
#                             and peak RSS (VmRSS sampled every 0.2 s during the run)
#   --broker-note NAME=TEXT   a note for that broker's rows (tansu gets "memory engine, not durable")
#   --workloads LIST          comma-separated (default: throughput,durable,small,latency,compressed,
#                             fetch,partitions,many-producers,keyed; e2e, txn (transactional),
#                             few-producers (many-producers' rate from 4 producers)
#                             and fetch-cold (fetch with the page cache dropped before each
#                             read; root) are also available)
#   --load-generators LIST    ringtail,kafka (default both)
#   --kafka-libs DIR          Kafka's jars for its tools (default $KAFKA_PEER_LIBS, else
#                             .venv/peers/kafka/libs, installed there by scripts/peers/kafka.sh if missing)
#   --duration SECONDS        length of each produce run (default 30)
#   --fetch-bytes BYTES       size of the topic the fetch workload reads (default 10737418240)
#   --latency-mb-per-sec N    rate of the latency workload (default 50)
#   --threads N               executors of the ringtail load generator (default 1)
#   --out DIR                 results folder (default results/<date>-<commit>); an existing folder
#                             is added to (run once per broker into one folder)
#   --data-dir DIR            filesystem to measure write bandwidth on (default .)
#   --bin PATH                the ringtail binary (default target/release/ringtail, built if missing)
#   --skip-machine            do not measure disk and loopback bandwidth
#   --install-tools           apt-get install fio and iperf3 first (else dd and a python socket test)
set -euo pipefail

cd "$(dirname "$0")/.."
brokers=()
declare -A broker_notes=()
workloads="throughput,durable,small,latency,compressed,fetch,partitions,many-producers,keyed"
generators="ringtail,kafka"
kafka_libs="${KAFKA_PEER_LIBS:-}"
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
    --broker) [[ "${2:-}" == *=*:* ]] || die "--broker takes NAME=HOST:PORT[,pid=PID]"; brokers+=("$2"); shift 2 ;;
    --load-generators) generators="$2"; shift 2 ;;
    --kafka-libs) kafka_libs="$2"; shift 2 ;;
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
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
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

# ---- load generators and broker measurements ------------------------------------------------
use_generator() { [[ ",$generators," == *",$1,"* ]]; }
for g in ${generators//,/ }; do [[ "$g" == ringtail || "$g" == kafka ]] || die "unknown load generator $g"; done
tmp_dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-sh.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT
if use_generator kafka; then
  command -v java >/dev/null || die "the kafka load generator needs java (apt-get install openjdk-17-jre-headless)"
  if [[ -z "$kafka_libs" ]]; then
    kafka_libs=.venv/peers/kafka/libs
    [[ -f "$kafka_libs/.installed" ]] || scripts/peers/kafka.sh install .venv/peers/kafka
  fi
  [[ -f "$kafka_libs/.installed" ]] || die "no Kafka installation in $kafka_libs (scripts/peers/kafka.sh install DIR)"
  kafka_libs=$(cd "$kafka_libs" && pwd)
fi
# One of Kafka's tools by its main class, with the JVM flags of Kafka's scripts (kafka.sh tool).
kafka_tool() { KAFKA_PEER_LIBS="$kafka_libs" scripts/peers/kafka.sh tool "$tmp_dir/kafka-tools" "$@"; }

declare -A broker_addr=() broker_pid=()
names=()
for b in "${brokers[@]}"; do
  name="${b%%=*}" rest="${b#*=}"
  broker_addr[$name]="${rest%%,*}"
  if [[ "$rest" == *,pid=* ]]; then
    broker_pid[$name]="${rest##*,pid=}"
    [[ -r "/proc/${broker_pid[$name]}/stat" ]] || die "broker $name: no process ${broker_pid[$name]}"
  fi
  names+=("$name")
done

# utime + stime of a process, clock ticks (fields 14 and 15 of /proc/PID/stat; the name field
# may hold spaces, so count from its closing parenthesis).
cpu_ticks() {
  local stat; stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo ""; return; }
  stat=${stat##*) }
  local fields; read -r -a fields <<< "$stat"
  echo $(( fields[11] + fields[12] ))
}

# Samples VmRSS of PID every 0.2 s into FILE (its maximum, KiB) until killed or PID ends.
rss_sampler() {
  local pid=$1 file=$2 max=0 key value unit
  while kill -0 "$pid" 2>/dev/null; do
    while read -r key value unit; do
      if [[ "$key" == VmRSS: ]]; then
        # Written whole and renamed, so a reader never sees a half-written file.
        (( value > max )) && { max=$value; echo "$max" > "$file.new"; mv -f "$file.new" "$file"; }
        break
      fi
    done < "/proc/$pid/status"
    sleep 0.2
  done
}

# measure WORKLOAD BROKER GENERATOR KIND FORMAT SOURCE RECORD_SIZE RECORDS LOG -- COMMAND...
# Runs COMMAND (output to LOG) while measuring the broker, then appends a row to rows.jsonl.
measure() {
  local workload=$1 name=$2 generator=$3 kind=$4 format=$5 source=$6 size=$7 records=$8 log=$9
  shift 10
  local pid="${broker_pid[$name]:-}" before="" sampler="" status=ok reason="" extra=()
  echo "== ${workload} on ${name} (${broker_addr[$name]}), ${generator} load generator" >&2
  if [[ -n "$pid" ]]; then
    before=$(cpu_ticks "$pid")
    echo 0 > "$tmp_dir/rss"
    rss_sampler "$pid" "$tmp_dir/rss" &
    sampler=$!
  fi
  local rc=0
  "$@" > "$log" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    status=failed reason="exit $rc (see ${log#"$out"/})"
    [[ $rc -eq 124 ]] && reason="timed out after the bound (see ${log#"$out"/})"
    tail -3 "$log" >&2
  fi
  if [[ -n "$pid" ]]; then
    local after; after=$(cpu_ticks "$pid")
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    [[ -n "$before" && -n "$after" ]] && extra+=(--cpu-ticks $(( after - before )))
    local rss; rss=$(cat "$tmp_dir/rss" 2>/dev/null || true)
    [[ "$rss" =~ ^[0-9]+$ && "$rss" -gt 0 ]] && extra+=(--peak-rss-kib "$rss")
  fi
  python3 scripts/bench_peers.py row --out "$out" --workload "$workload" --broker "$name" \
    --generator "$generator" --kind "$kind" --format "$format" --source "$source" \
    --record-size "$size" --records "$records" --status "$status" --reason "$reason" "${extra[@]}"
}

na_row() { # na_row WORKLOAD BROKER GENERATOR REASON
  echo "== ${1} on ${2}, ${3} load generator: n/a (${4})" >&2
  python3 scripts/bench_peers.py row --out "$out" --workload "$1" --broker "$2" --generator "$3" \
    --kind produce --status n/a --reason "$4"
}

# ringtail_run WORKLOAD BROKER KIND RECORD_SIZE ARGS...: `ringtail bench KIND`, measured.
ringtail_run() {
  local workload=$1 name=$2 kind=$3 size=$4; shift 4
  local result="${workload}-${name}"
  rm -f "$out/${result}.json"
  measure "$workload" "$name" ringtail "$kind" ringtail-json "$out/${result}.json" "$size" 0 "$out/${result}.log" -- \
    timeout -k 10 "$run_timeout" "$bin" bench "$kind" --bootstrap-server "${broker_addr[$name]}" --results-dir "$out" \
      --result-name "$result" --workload "$workload" --broker-label "$name" --note "${broker_notes[$name]:-}" \
      --threads "$threads" --no-progress "$@"
  tail -1 "$out/${result}.log" >&2 || true
}

# Creates a topic with Kafka's kafka-topics tool (CreateTopics), for the Kafka tools' runs.
kafka_create_topic() { # BROKER TOPIC PARTITIONS
  timeout -k 10 120 bash -c "$(declare -f kafka_tool); kafka_libs='$kafka_libs' tmp_dir='$tmp_dir'; \
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server '${broker_addr[$1]}' --create \
      --topic '$2' --partitions '$3' --replication-factor 1" >> "$tmp_dir/topics.log" 2>&1
}

# The ringtail load generator's records/s in this workload on this broker (rows.jsonl), so the
# Kafka tool (which takes --num-records, not a duration) runs for about --duration seconds.
records_for_duration() { # WORKLOAD BROKER RECORD_SIZE
  python3 - "$out/rows.jsonl" "$1" "$2" "$3" "$duration" <<'PY'
import json, sys
path, workload, broker, size, duration = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rate = None
try:
    for line in open(path):
        r = json.loads(line)
        if (r["workload"], r["broker"], r["generator"], r["status"]) == (workload, broker, "ringtail", "ok"):
            rate = r.get("records_per_sec")
except OSError:
    pass
if not rate:
    rate = 50 * 1048576 / size  # no ringtail row: assume 50 MiB/s
print(max(1000, int(rate * duration)))
PY
}

# kafka_produce WORKLOAD BROKER TOPIC PARTITIONS RECORD_SIZE NUM_RECORDS THROUGHPUT PAYLOAD_FILE PROPS...
kafka_produce() {
  local workload=$1 name=$2 topic=$3 partitions=$4 size=$5 records=$6 rate=$7 payload=$8; shift 8
  local log="$out/${workload}-${name}-kafka-tools.log" value_args=(--record-size "$size")
  [[ -n "$payload" ]] && value_args=(--payload-file "$payload")
  if ! kafka_create_topic "$name" "$topic" "$partitions"; then
    cp "$tmp_dir/topics.log" "$log"
    measure "$workload" "$name" kafka produce none "" "$size" 0 /dev/null -- false
    return
  fi
  measure "$workload" "$name" kafka produce producer-performance "$log" "$size" "$records" "$log" -- \
    timeout -k 10 "$run_timeout" bash -c "$(declare -f kafka_tool); kafka_libs='$kafka_libs' tmp_dir='$tmp_dir'; \
      kafka_tool org.apache.kafka.tools.ProducerPerformance --topic '$topic' --num-records '$records' \
        ${value_args[*]} --throughput '$rate' --producer-props bootstrap.servers='${broker_addr[$name]}' $*"
}

# 50 ProducerPerformance processes (one producer each) at RATE records/s in total.
kafka_many_producers() { # WORKLOAD BROKER TOPIC PARTITIONS RECORD_SIZE PRODUCERS RATE PROPS...
  local workload=$1 name=$2 topic=$3 partitions=$4 size=$5 producers=$6 rate=$7; shift 7
  local each_rate=$(( rate / producers )) each_records=$(( rate / producers * duration ))
  local logs="$out/${workload}-${name}-kafka-tools"
  mkdir -p "$logs"
  kafka_create_topic "$name" "$topic" "$partitions" || { measure "$workload" "$name" kafka produce none "" "$size" 0 /dev/null -- false; return; }
  cat > "$tmp_dir/many.sh" <<EOF
$(declare -f kafka_tool)
kafka_libs='$kafka_libs' tmp_dir='$tmp_dir'
# 50 JVMs on a small machine: a small heap, the serial collector and C1 only, so they start fast
# (each sends only 1/$producers of the rate, far below what one JIT-compiled client can do).
export KAFKA_HEAP_OPTS=-Xmx128M
export KAFKA_JVM_PERFORMANCE_OPTS="-server -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"
date +%s.%N > '$logs'/span.txt
pids=()
for i in \$(seq 1 $producers); do
  kafka_tool org.apache.kafka.tools.ProducerPerformance --topic '$topic' --num-records $each_records \
    --record-size $size --throughput $each_rate --producer-props bootstrap.servers='${broker_addr[$name]}' \
    client.id=perf-producer-\$i $* > '$logs'/producer-\$i.log 2>&1 &
  pids+=(\$!)
done
failed=0
for p in "\${pids[@]}"; do wait \$p || failed=1; done
date +%s.%N >> '$logs'/span.txt
exit \$failed
EOF
  measure "$workload" "$name" kafka produce producer-performance-many "$logs/producer-*.log" "$size" 0 "$logs/all.log" -- \
    timeout -k 10 $(( run_timeout + 600 )) bash "$tmp_dir/many.sh"
}

# A JSON-like payload file (distinct ~1 KiB events, one a line) for the compressed workloads, so
# both load generators send the same values (Kafka's tool: --payload-file).
json_payload_file() {
  python3 - "$1" <<'PY'
import json, random, sys
rng = random.Random(0x5eed)
words = ["checkout", "search", "login", "view", "cart", "refund", "signup", "logout", "share", "rate"]
with open(sys.argv[1], "w") as f:
    for i in range(1024):
        event = {"id": f"evt-{i:08d}", "ts": 1795000000000 + rng.randrange(10**9), "type": rng.choice(words),
                 "user": {"id": rng.randrange(10**6), "region": rng.choice(["eu-west-1", "us-east-1", "ap-south-1"])},
                 "url": f"https://shop.example.com/{rng.choice(words)}/{rng.randrange(10**5)}?ref={rng.choice(words)}",
                 "items": [{"sku": f"SKU-{rng.randrange(10**6):06d}", "qty": rng.randrange(1, 5),
                            "price": round(rng.uniform(1, 500), 2), "tags": rng.sample(words, 3)} for _ in range(10)]}
        f.write(json.dumps(event, separators=(",", ":")) + "\n")
PY
}

# ---- workloads -------------------------------------------------------------------------------
# Writes dirty pages back and drops the page cache (fetch-cold); needs root.
drop_page_cache() {
  sync
  echo 3 > /proc/sys/vm/drop_caches || die "fetch-cold needs root to drop the page cache"
}
base_props=(acks=1 linger.ms=5 batch.size=65536)
latency_rate=$(( latency_mb * 1024 ))   # records/s of 1 KiB for latency_mb MiB/s
fetch_records=$(( fetch_bytes / 1024 ))
many_producers=50
few_producers=4                         # the many-producers baseline (issue 13: "p99 flat vs 4")
many_rate=$(( 200 * 1024 ))             # 200 MiB/s of 1 KiB records over all producers
keyed_keys=10000
keyed_props=(acks=1 linger.ms=1 batch.size=16384)
txn_records=1000
txn_props=(acks=all linger.ms=5 batch.size=65536)
txn_kafka_ms=100
run_timeout=$(( duration * 6 + 180 ))
payload_file="$tmp_dir/payload-json.txt"
json_payload_file "$payload_file"
payload_mean=$(awk '{ n++; s += length($0) } END { printf "%d", s / n }' "$payload_file")
IFS=',' read -r -a selected <<< "$workloads"
for workload in "${selected[@]}"; do
  for name in "${names[@]}"; do
    topic="bench-${workload}-${tag}"
    ktopic="${topic}-k"
    case "$workload" in
      throughput|durable|small|partitions)
        size=1024 parts=8 props=("${base_props[@]}")
        [[ $workload == small ]] && size=100
        [[ $workload == partitions ]] && parts=1000
        [[ $workload == durable ]] && props=(acks=all linger.ms=5 batch.size=65536)
        use_generator ringtail && ringtail_run "$workload" "$name" produce "$size" --topic "$topic" --partitions "$parts" \
          --record-size "$size" --duration "$duration" --producer-props "${props[@]}"
        use_generator kafka && kafka_produce "$workload" "$name" "$ktopic" "$parts" "$size" \
          "$(records_for_duration "$workload" "$name" "$size")" -1 "" "${props[@]}" ;;
      latency)
        use_generator ringtail && ringtail_run latency "$name" produce 1024 --topic "$topic" --partitions 8 --record-size 1024 \
          --duration "$duration" --throughput "$latency_rate" --producer-props acks=all linger.ms=5 batch.size=65536
        use_generator kafka && kafka_produce latency "$name" "$ktopic" 8 1024 $(( latency_rate * duration )) "$latency_rate" "" \
          acks=all linger.ms=5 batch.size=65536 ;;
      compressed)
        for codec in lz4 zstd; do
          use_generator ringtail && ringtail_run "compressed-${codec}" "$name" produce "$payload_mean" --topic "${topic}-${codec}" \
            --partitions 8 --payload-file "$payload_file" --duration "$duration" --producer-props "${base_props[@]}" compression.type="$codec"
          use_generator kafka && kafka_produce "compressed-${codec}" "$name" "${ktopic}-${codec}" 8 "$payload_mean" \
            "$(records_for_duration "compressed-${codec}" "$name" "$payload_mean")" -1 "$payload_file" "${base_props[@]}" compression.type="$codec"
        done ;;
      fetch)
        # The topic is written once (by ringtail bench) and read from the start by each load generator.
        ringtail_run fetch-load "$name" produce 1024 --topic "$topic" --partitions 8 --record-size 1024 --num-records "$fetch_records" \
          --producer-props "${base_props[@]}"
        use_generator ringtail && ringtail_run fetch "$name" consume 1024 --topic "$topic" --num-records "$fetch_records" --timeout-ms 30000
        use_generator kafka && measure fetch "$name" kafka consume consumer-performance "$out/fetch-${name}-kafka-tools.log" 1024 \
          "$fetch_records" "$out/fetch-${name}-kafka-tools.log" -- timeout -k 10 "$run_timeout" bash -c \
          "$(declare -f kafka_tool); kafka_libs='$kafka_libs' tmp_dir='$tmp_dir'; kafka_tool org.apache.kafka.tools.ConsumerPerformance \
            --bootstrap-server '${broker_addr[$name]}' --topic '$topic' --messages '$fetch_records' --timeout 30000" ;;
      fetch-cold)
        # As fetch, but the kernel's page cache is dropped (as root) after the topic is written
        # and before each load generator reads it, so no broker reads from memory it did not
        # keep itself (Ringtail's tail cache holds the last 4 MiB per partition at most).
        ringtail_run fetch-cold-load "$name" produce 1024 --topic "${topic}-cold" --partitions 8 --record-size 1024 \
          --num-records "$fetch_records" --producer-props "${base_props[@]}"
        drop_page_cache
        use_generator ringtail && ringtail_run fetch-cold "$name" consume 1024 --topic "${topic}-cold" --num-records "$fetch_records" --timeout-ms 30000
        drop_page_cache
        use_generator kafka && measure fetch-cold "$name" kafka consume consumer-performance "$out/fetch-cold-${name}-kafka-tools.log" 1024 \
          "$fetch_records" "$out/fetch-cold-${name}-kafka-tools.log" -- timeout -k 10 "$run_timeout" bash -c \
          "$(declare -f kafka_tool); kafka_libs='$kafka_libs' tmp_dir='$tmp_dir'; kafka_tool org.apache.kafka.tools.ConsumerPerformance \
            --bootstrap-server '${broker_addr[$name]}' --topic '${topic}-cold' --messages '$fetch_records' --timeout 30000" ;;
      many-producers)
        use_generator ringtail && ringtail_run many-producers "$name" produce 1024 --topic "$topic" --partitions 8 --record-size 1024 \
          --duration "$duration" --producers "$many_producers" --throughput "$many_rate" --producer-props "${base_props[@]}"
        use_generator kafka && kafka_many_producers many-producers "$name" "$ktopic" 8 1024 "$many_producers" "$many_rate" "${base_props[@]}" ;;
      few-producers)
        # The baseline of many-producers: the same total rate from 4 producers.
        use_generator ringtail && ringtail_run few-producers "$name" produce 1024 --topic "$topic" --partitions 8 --record-size 1024 \
          --duration "$duration" --producers "$few_producers" --throughput "$many_rate" --producer-props "${base_props[@]}"
        use_generator kafka && kafka_many_producers few-producers "$name" "$ktopic" 8 1024 "$few_producers" "$many_rate" "${base_props[@]}" ;;
      keyed)
        use_generator ringtail && ringtail_run keyed "$name" produce 1024 --topic "$topic" --partitions 64 --record-size 1024 \
          --duration "$duration" --keys "$keyed_keys" --producer-props "${keyed_props[@]}"
        use_generator kafka && na_row keyed "$name" kafka \
          "ProducerPerformance has no key option (only --record-size, --payload-file, --payload-monotonic; null keys, sticky partitioner); VerifiableProducer --repeating-keys is not a perf tool (tiny values, one JSON line per record)" ;;
      txn)
        # Transactions (KIP-98) of txn_records records of 1 KiB over 8 partitions, acks=all, one
        # transaction in flight per producer. Kafka's ProducerPerformance commits by time
        # (--transaction-duration-ms), so its row runs transactions of about the same length.
        use_generator ringtail && ringtail_run txn "$name" txn 1024 --topic "$topic" --partitions 8 --record-size 1024 \
          --duration "$duration" --transactional-id "bench-txn-${tag}-${name}" --records-per-transaction "$txn_records" \
          --producer-props "${txn_props[@]}"
        use_generator kafka && kafka_produce txn "$name" "$ktopic" 8 1024 "$(records_for_duration txn "$name" 1024)" -1 "" \
          "${txn_props[@]}" transactional.id="bench-txn-${tag}-${name}-k" --transaction-duration-ms "$txn_kafka_ms" ;;
      e2e)
        use_generator ringtail && ringtail_run e2e "$name" e2e 1024 --topic "$topic" --partitions 8 --record-size 1024 \
          --num-records $(( latency_rate * duration / 10 )) --throughput $(( latency_rate / 10 )) --producer-props acks=all linger.ms=1
        if use_generator kafka; then
          e2e_records=$(( duration * 100 ))
          if kafka_create_topic "$name" "$ktopic" 1; then
            measure e2e "$name" kafka e2e end-to-end-latency "$out/e2e-${name}-kafka-tools.log" 1024 "$e2e_records" \
              "$out/e2e-${name}-kafka-tools.log" -- timeout -k 10 "$run_timeout" bash -c \
              "$(declare -f kafka_tool); kafka_libs='$kafka_libs' tmp_dir='$tmp_dir'; kafka_tool org.apache.kafka.tools.EndToEndLatency \
                '${broker_addr[$name]}' '$ktopic' '$e2e_records' all 1024"
          else
            measure e2e "$name" kafka e2e none "" 1024 0 /dev/null -- false
          fi
        fi ;;
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
notes+=("Workloads: throughput/durable/small/partitions/many-producers/keyed run ${duration} s each (throughput/small/partitions/many-producers: acks=1, linger.ms=5, batch.size=65536; durable and latency acks=all). compressed: the same 1,024 JSON-like events (mean ${payload_mean} B) from a payload file for both load generators. latency: acks=all at ${latency_mb} MiB/s, latency from the intended send time (no coordinated omission). fetch: consume ${fetch_records} records of 1 KiB from the start. fetch-cold: the same after \`echo 3 > /proc/sys/vm/drop_caches\` following the write and each read. many-producers: ${many_producers} producers (own connections) at ${many_rate} records/s of 1 KiB in total; few-producers: the same from ${few_producers}. keyed: ${keyed_keys} distinct keys (murmur2), 64 partitions, acks=1, linger.ms=1, batch.size=16384. txn: transactions of ${txn_records} records of 1 KiB over 8 partitions (ringtail bench txn: InitProducerId/AddPartitionsToTxn/Produce/EndTxn, latency = transaction start to commit; Kafka's ProducerPerformance: a transaction every ${txn_kafka_ms} ms). Command lines are in each JSON file.")
summary_args=()
for n in "${notes[@]}"; do summary_args+=(--note "$n"); done
"$bin" bench summary --results-dir "$out" --title "Ringtail bench ${run_id}" "${summary_args[@]}" > /dev/null
echo "summary: $out/summary.md" >&2
peer_notes=("${notes[@]}")
peer_notes+=("Kafka's tools: ProducerPerformance takes --num-records, not a duration; it is given the ringtail load generator's records/s on the same broker times ${duration} s (at most ${run_timeout} s). Its latency is from send() to the acknowledgement, without coordinated-omission correction. many-producers with Kafka's tools: ${many_producers} ProducerPerformance JVMs (-Xmx128M, serial GC, C1 only, for start-up on 2 cores), each at 1/${many_producers} of the rate for ${duration} s; their start-up is staggered, so MB/s is all their record values over the wall time from the first start to the last exit (a lower bound; rows.jsonl also has the sum of each process's own rate), p99 the worst process's. fetch with Kafka's tools: ConsumerPerformance (a group consumer, subscribe) over the topic the ringtail load generator wrote; its MB/s is fetch.MB.sec, without the group join. e2e with Kafka's tools: EndToEndLatency (one record in flight, acks=all, 1 partition), ${duration}00 records.")
peer_notes+=("On this 2-core machine the load generator competes with the broker for CPU: the JVM tools cost more CPU than ringtail bench, so throughput rows are bounded by the client too. Broker CPU-s/GiB and RSS are the broker's own figures.")
peer_args=()
for n in "${peer_notes[@]}"; do peer_args+=(--note "$n"); done
python3 scripts/bench_peers.py summary --out "$out" --title "Brokers side by side ${run_id}: ringtail bench and Kafka's perf tools" "${peer_args[@]}"

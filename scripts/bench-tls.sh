#!/usr/bin/env bash
# TLS beside plaintext (issue 11): one broker with a PLAINTEXT and an SSL listener, the same
# `ringtail bench produce` / `consume` over each, broker CPU seconds per GiB from /proc.
# Certificates are made with openssl in a temp dir. Writes results/<date>-tls/.
#
# usage: scripts/bench-tls.sh [RECORDS (default 500000)] [RECORD_SIZE (default 1024)]
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-500000}
SIZE=${2:-1024}
BIN=${RINGTAIL_BIN:-target/release/ringtail}
OUT=results/$(date -u +%Y-%m-%d)-tls
PLAIN_PORT=${PLAIN_PORT:-19810}
SSL_PORT=${SSL_PORT:-19811}
mkdir -p "$OUT"
WORK=$(mktemp -d)
BROKER_PID=
cleanup() { [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/ca.key" \
    -out "$WORK/ca.crt" -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/server.key" 2>/dev/null
openssl req -new -key "$WORK/server.key" -out "$WORK/server.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$WORK/ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
    -out "$WORK/server.crt" -days 2 -extfile "$WORK/ext" 2>/dev/null
cat "$WORK/server.key" "$WORK/server.crt" > "$WORK/keystore.pem"

"$BIN" serve --listeners "PLAINTEXT://127.0.0.1:$PLAIN_PORT,SSL://127.0.0.1:$SSL_PORT" \
    --log-dirs "$WORK/data" --shards 1 --set ringtail.http.listener= \
    --set ssl.keystore.type=PEM --set "ssl.keystore.location=$WORK/keystore.pem" \
    > "$OUT/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PLAIN_PORT) 2>/dev/null && break; sleep 0.1; done

cpu_s() { awk '{ print ($14 + $15) / 100 }' "/proc/$BROKER_PID/stat"; }
{
  echo "# TLS beside plaintext: ringtail bench, $(date -u +%FT%TZ)"
  echo
  echo "commit $(git rev-parse --short HEAD); $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); kernel $(uname -r)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: figures are indicative)"
  echo "records $RECORDS x $SIZE B, 1 partition, 1 shard, acks=1, linger.ms=5, batch.size=65536"
  echo
  echo "| run | protocol | MB/s | records/s | broker CPU-s | broker CPU-s/GiB |"
  echo "| --- | --- | --- | --- | --- | --- |"
} > "$OUT/summary.md"

for protocol in PLAINTEXT SSL; do
  if [ "$protocol" = SSL ]; then
    port=$SSL_PORT; security=(--security-props security.protocol=SSL "ssl.truststore.location=$WORK/ca.crt")
  else
    port=$PLAIN_PORT; security=()
  fi
  topic="tls-bench-$protocol"
  before=$(cpu_s)
  "$BIN" bench produce --bootstrap-server "127.0.0.1:$port" --topic "$topic" --partitions 1 \
      --num-records "$RECORDS" --record-size "$SIZE" --throughput -1 --results-dir "$OUT" \
      --result-name "produce-$protocol" --no-progress "${security[@]}" \
      --producer-props acks=1 linger.ms=5 batch.size=65536 | tee "$OUT/produce-$protocol.txt"
  after=$(cpu_s)
  line=$(tail -1 "$OUT/produce-$protocol.txt")
  rps=$(echo "$line" | sed -E 's/.*records sent, ([0-9.]+) records\/sec.*/\1/')
  mbs=$(echo "$line" | sed -E 's/.*\(([0-9.]+) MB\/sec\).*/\1/')
  awk -v p="$protocol" -v r="$rps" -v m="$mbs" -v b="$before" -v a="$after" -v n="$RECORDS" -v s="$SIZE" \
      'BEGIN { c = a - b; printf "| produce | %s | %s | %s | %.2f | %.2f |\n", p, m, r, c, c / (n * s / 1073741824) }' \
      >> "$OUT/summary.md"
  before=$(cpu_s)
  "$BIN" bench consume --bootstrap-server "127.0.0.1:$port" --topic "$topic" --results-dir "$OUT" \
      --result-name "consume-$protocol" --no-progress "${security[@]}" | tee "$OUT/consume-$protocol.txt"
  after=$(cpu_s)
  # kafka-consumer-perf-test columns: start, end, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
  line=$(grep -E '^[0-9]{4}-' "$OUT/consume-$protocol.txt" | tail -1)
  mbs=$(echo "$line" | cut -d, -f4 | xargs)
  rps=$(echo "$line" | cut -d, -f6 | xargs)
  awk -v p="$protocol" -v r="$rps" -v m="$mbs" -v b="$before" -v a="$after" -v n="$RECORDS" -v s="$SIZE" \
      'BEGIN { c = a - b; printf "| fetch | %s | %s | %s | %.2f | %.2f |\n", p, m, r, c, c / (n * s / 1073741824) }' \
      >> "$OUT/summary.md"
done
echo >> "$OUT/summary.md"
echo "command: scripts/bench-tls.sh $RECORDS $SIZE" >> "$OUT/summary.md"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/summary.md"
cat "$OUT/summary.md"

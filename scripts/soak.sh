#!/usr/bin/env bash
# Soak (issue 14): one Ringtail broker under mixed produce, fetch and consumer-group traffic at
# about half of the machine's measured maximum for DURATION, sampling a well-behaved probe
# producer's p99 latency and the broker's RSS every 10 s into a CSV, plotted as SVG.
#
#   scripts/soak.sh DURATION [--port PORT] [--max-mb-s MB] [--out DIR] [--bin PATH]
#
#   DURATION       seconds, or with a unit: 90s, 10m, 1h
#   --port PORT    broker port (default 19850; the broker also gets nothing else)
#   --max-mb-s MB  the machine's maximum acks=all produce rate in MB/s to take half of; default:
#                  measured first with `ringtail bench produce` for 20 s on this broker
#   --out DIR      results folder (default results/<date>-soak)
#   --bin PATH     ringtail binary (default target/release/ringtail; copied into a temp dir so a
#                  rebuild during the run does not touch the running broker)
#
# Writes DIR/soak.csv (one row per 10 s), DIR/soak.svg (p99 and RSS over time), DIR/summary.md
# (commit, machine, load average, command, rates, flatness verdict), DIR/bench-*.log and
# DIR/broker.log. Runs nice'd (nice 10): the machine may be shared. Every process it starts is
# stopped at the end, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $# -ge 1 ]] || { sed -n 2,18p "$0"; exit 2; }
duration="$1"; shift
port=19850
max_mb=""
out="results/$(date -u +%Y-%m-%d)-soak"
bin="target/release/ringtail"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --max-mb-s) max_mb="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
python=".venv/bin/python"
[[ -x "$python" ]] || python="python3"
[[ -x "$bin" ]] || { echo "soak.sh: no ringtail binary at $bin (cargo build --release)" >&2; exit 2; }
mkdir -p "$out"
args=(--duration "$duration" --port "$port" --out "$out" --bin "$bin")
[[ -n "$max_mb" ]] && args+=(--max-mb-s "$max_mb")
exec nice -n 10 "$python" scripts/soak.py "${args[@]}"

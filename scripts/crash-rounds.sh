#!/usr/bin/env bash
# Runs ROUNDS seeded crash rounds at scale (tests/test_crash_scale.py, tests/crash_workload.py:
# idempotent, plain acks=all and transactional producers plus a consumer group committing
# offsets, the broker SIGKILLed at a seeded moment and restarted, then every check) and writes
# the counts, seeds and durations to results/<date>-crash-rounds-<target>.md.
#
#   scripts/crash-rounds.sh 100 42            # 100 rounds, seeds drawn from base seed 42
#   scripts/crash-rounds.sh 100               # base seed drawn at random (printed)
#   RINGTAIL_CRASH_SCALE_SEEDS=1234,5678 scripts/crash-rounds.sh   # replay rounds by their seeds
#   RINGTAIL_TEST_TARGET=kafka KAFKA_PEER_LIBS=/work/peers/kafka/libs scripts/crash-rounds.sh 2 7
#
# Each round is bounded by the test's timeout (pytest-timeout); the script exits non-zero if any
# round failed. Build first (`cargo build --release`): this script does not build.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-20}"
seed="${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
case "$rounds$seed" in
  ''|*[!0-9]*) echo "usage: $0 [ROUNDS] [SEED]" >&2; exit 2 ;;
esac
target="${RINGTAIL_TEST_TARGET:-ringtail}"
python=".venv/bin/python"
[ -x "$python" ] || { echo "$python missing: run scripts/test.sh once (it makes .venv)" >&2; exit 2; }

mkdir -p results
out="${RINGTAIL_CRASH_RESULTS:-results/$(date -u +%Y-%m-%d)-crash-rounds-${target}.md}"
log="$(mktemp -t crash-rounds.XXXXXX.log)"
echo "crash rounds: ${rounds} rounds, base seed ${seed}, target ${target}; log ${log}"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
status=0
RINGTAIL_CRASH_SCALE_ROUNDS="$rounds" RINGTAIL_CRASH_SCALE_BASE_SEED="$seed" \
  "$python" -m pytest tests/test_crash_scale.py -v -s -rfE -p no:logging --junitxml="$log.xml" \
  >"$log" 2>&1 || status=$?
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

"$python" - "$log" "$rounds" "$seed" "$target" "$started" "$load_before" "$load_after" \
  "$(git rev-parse --short HEAD)" "$(nproc)" "$(uname -r)" >"$out" <<'PY'
import ast, os, re, statistics, sys
log, rounds, seed, target, started, load_before, load_after, commit, cpus, kernel = sys.argv[1:]
text = open(log, errors="replace").read()
summaries = [ast.literal_eval(m) for m in re.findall(r"crash round summary (\{.*\})", text)]
# Outcomes from pytest's JUnit XML: with -s the PASSED word may end a line of client output,
# so the text log is not a reliable count.
import xml.etree.ElementTree as ET
outcomes_by_seed = {}
try:
    for case in ET.parse(log + ".xml").getroot().iter("testcase"):
        m = re.search(r"seed=(\d+)", case.get("name", ""))
        if not m:
            continue
        bad = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        outcomes_by_seed[m.group(1)] = "FAILED" if bad else ("SKIPPED" if skipped else "PASSED")
except (OSError, ET.ParseError) as e:
    print(f"(no JUnit XML from pytest: {e})")
passed = sum(1 for w in outcomes_by_seed.values() if w == "PASSED")
failed = sorted(s for s, w in outcomes_by_seed.items() if w != "PASSED")
reasons = dict(re.findall(r"crash round seed=(\d+) FAILED: (.*)", text))
durations = [s["duration_s"] for s in summaries]
outcomes = {}
for s in summaries:
    for k, v in s["transactions"].items():
        outcomes[k] = outcomes.get(k, 0) + v
print(f"# Crash rounds at scale ({started}, target {target}, commit {commit})\n")
print(f"`scripts/crash-rounds.sh {rounds} {seed}` (tests/test_crash_scale.py), broker "
      f"{os.environ.get('RINGTAIL_BIN', 'target/release/ringtail')}, on {cpus} CPUs, "
      f"kernel {kernel}; load average {load_before} before, {load_after} after.\n")
print("| rounds | passed | failed | duration per round s (min / median / max) | idempotent acked | "
      "plain acked | txn committed | txn aborted | in doubt: whole / absent | group commits |")
print("|---|---|---|---|---|---|---|---|---|---|")
d = (f"{min(durations)} / {statistics.median(durations)} / {max(durations)}" if durations else "-")
print(f"| {rounds} | {passed} | {len(failed)} | {d} | {sum(s['idempotent_acked'] for s in summaries)} | "
      f"{sum(s['plain_acked'] for s in summaries)} | {outcomes.get('committed', 0)} | "
      f"{outcomes.get('aborted', 0)} | {outcomes.get('doubt-whole', 0)} / "
      f"{outcomes.get('doubt-absent', 0)} | {sum(s['group_commits'] for s in summaries)} |\n")
if failed:
    print("Failed rounds (replay with `RINGTAIL_CRASH_SCALE_SEEDS=<seed> pytest tests/test_crash_scale.py`): "
          + ", ".join(failed) + "\n")
    for seed in failed:
        print(f"    seed={seed}: {reasons.get(seed, '(no reason printed)')[:300]}")
    print()
print("Seeds of the rounds: " + ", ".join(str(s["seed"]) for s in summaries) + "\n")
tail = [line for line in text.splitlines() if line.startswith("=")][-1:]
print("pytest summary: " + (tail[0] if tail else "(none)"))
PY
cat "$out"
echo "full log: $log"
exit "$status"

#!/usr/bin/env bash
# Runs N seeded transaction crash rounds (tests/test_transactions_crash.py: SIGKILL in the middle
# of a transaction or during its commit, restart, check read_committed) and writes the counts and
# the seeds of failed rounds to results/<date>-txn-crash-rounds-<target>.md.
#
#   scripts/txn-crash-rounds.sh 50                       # against target/release/ringtail
#   RINGTAIL_TEST_TARGET=kafka KAFKA_PEER_LIBS=/work/peers/kafka/libs scripts/txn-crash-rounds.sh 10
#   RINGTAIL_TXN_SEED=1234,5678 scripts/txn-crash-rounds.sh   # replay seeds (N is ignored)
#
# Each round is bounded by the test's timeout (pytest-timeout); the script exits non-zero if any
# round failed. Build first (`cargo build --release`): this script does not build.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-20}"
case "$rounds" in
  ''|*[!0-9]*) echo "usage: $0 [ROUNDS]" >&2; exit 2 ;;
esac
target="${RINGTAIL_TEST_TARGET:-ringtail}"
python=".venv/bin/python"
[ -x "$python" ] || { echo "$python missing: run scripts/test.sh once (it makes .venv)" >&2; exit 2; }

mkdir -p results
stamp="$(date -u +%Y-%m-%d)"
out="results/${stamp}-txn-crash-rounds-${target}.md"
log="$(mktemp -t txn-crash-rounds.XXXXXX.log)"

status=0
RINGTAIL_TXN_ROUNDS="$rounds" "$python" -m pytest tests/test_transactions_crash.py -v -rfEsxP \
  -p no:logging >"$log" 2>&1 || status=$?

passed=$(grep -c ' PASSED' "$log" || true)
failed=$(grep -c ' FAILED' "$log" || true)
errors=$(grep -c ' ERROR' "$log" || true)
skipped=$(grep -c ' SKIPPED' "$log" || true)
whole=$(grep -c 'interrupted transaction whole' "$log" || true)
absent=$(grep -c 'interrupted transaction absent' "$log" || true)
commit=$(grep -c 'mode=commit' "$log" || true)
mid=$(grep -c 'mode=mid' "$log" || true)
{
  echo "# Transaction crash rounds ($(date -u +%Y-%m-%dT%H:%MZ), target ${target}, commit $(git rev-parse --short HEAD))"
  echo
  echo "\`scripts/txn-crash-rounds.sh ${rounds}\` (tests/test_transactions_crash.py)."
  echo
  echo "| rounds passed | failed | errors | skipped | mode mid | mode commit | interrupted whole | interrupted absent |"
  echo "|---|---|---|---|---|---|---|---|"
  echo "| ${passed} | ${failed} | ${errors} | ${skipped} | ${mid} | ${commit} | ${whole} | ${absent} |"
  echo
  if [ "$failed" != 0 ] || [ "$errors" != 0 ]; then
    echo "Failed rounds (replay with RINGTAIL_TXN_SEED=<seed>):"
    echo
    grep -E '(FAILED|ERROR) .*seed=' "$log" | sed -E 's/^/    /' | sort -u || true
    echo
  fi
  echo "pytest summary: $(tail -n 1 "$log")"
} >"$out"
cat "$out"
echo "full log: $log"
exit "$status"

#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/, src/fuzzing.rs) for SECONDS, one at a time, niced.
#
# usage: scripts/fuzz.sh SECONDS [TARGET...]
#   FUZZ_RUNS=N       stop a target after N executions instead (SECONDS still bounds it)
#   FUZZ_SANITIZER=s  cargo-fuzz sanitizer (default none: safe Rust, debug assertions on;
#                     `address` for ASan at ~1/3 of the speed)
#   FUZZ_RESULTS=f    append one line per target to f (default results/fuzz/runs.tsv)
#   FUZZ_FORK=n       libFuzzer's fork mode with n worker processes sharing one corpus: one run
#                     on n cores (FUZZ_RUNS then counts the executions of all workers)
#   FUZZ_MAX_LEN=n    libFuzzer's -max_len, bytes per input (default 65536; a run given one says
#                     max_len=n in its status). 4096, libFuzzer's own default, suits the
#                     config-text targets (jaas, principal_rules), which slow as inputs grow
#   FUZZ_TIMEOUT=s    libFuzzer's -timeout, seconds per input (default 60). Its clock is the
#                     wall clock, so a niced fuzzer starved by a build beside it was stopped
#                     at 10 s on inputs that take 7 ms (results/fuzz/README.md, session 27)
#   FUZZ_TMPDIR=d     where the targets write their scratch files (default /dev/shm, a tmpfs, when
#                     it is writable, else /tmp): log_recovery opens a partition on real files
#                     for every input, and its fsyncs on a disk made it ~40 executions/s
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New inputs go to
# fuzz/corpus-work/<target>/ (not committed); the committed seeds in fuzz/corpus/<target>/
# are read only. A crash is written to fuzz/artifacts/<target>/ and stops that target; the
# script goes on with the next one and exits 1 at the end. Each result line: date, commit,
# target, executions, seconds, exec/s, libFuzzer's final cov: and ft: figures, corpus size,
# peak RSS (MB), status.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
sanitizer=${FUZZ_SANITIZER:-none}
results=${FUZZ_RESULTS:-results/fuzz/runs.tsv}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^ringtail-fuzz$')
fi
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
mkdir -p "$(dirname "$results")" fuzz/corpus-work
[ -s "$results" ] || printf 'date\tcommit\ttarget\texecutions\tseconds\texec_per_s\tcov\tft\tcorpus\trss_mb\tstatus\n' >"$results"
commit=$(git rev-parse --short HEAD)
tmp_root=${FUZZ_TMPDIR:-}
if [ -z "$tmp_root" ]; then
    tmp_root=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && tmp_root=/dev/shm
fi
scratch=$(mktemp -d "$tmp_root/ringtail-fuzz-run.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
nice -n 10 cargo +nightly fuzz build -s "$sanitizer" -O --debug-assertions --fuzz-dir fuzz "${targets[@]:0:1}" >/dev/null 2>&1 || true
failed=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus-work/$target" "fuzz/corpus/$target"
    log="$scratch/$target.log"
    extra=()
    [ -n "${FUZZ_RUNS:-}" ] && extra+=("-runs=$FUZZ_RUNS")
    [ -n "${FUZZ_FORK:-}" ] && extra+=("-fork=$FUZZ_FORK")
    status=ok
    started=$(date +%s)
    if ! TMPDIR="$scratch" nice -n 10 cargo +nightly fuzz run -s "$sanitizer" -O --debug-assertions \
        --fuzz-dir fuzz "$target" "fuzz/corpus-work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -max_len="${FUZZ_MAX_LEN:-65536}" \
        -timeout="${FUZZ_TIMEOUT:-60}" "${extra[@]}" >"$log" 2>&1; then
        status=crash
        failed=1
        tail -40 "$log" >&2
    fi
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    last=$(grep -E '#[0-9]+.*cov:' "$log" | tail -1 || true)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
    corpus=$(sed -n 's/.*corp: \([0-9]*\).*/\1/p' <<<"$last")
    # libFuzzer's own figure when it finished; after a crash, the wall time of the run.
    elapsed=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE '[0-9]+ second' | grep -oE '[0-9]+' || echo $(( $(date +%s) - started )))
    if [ -n "${FUZZ_FORK:-}" ]; then
        # Fork mode prints no final stats: its status lines read "#N: cov: .. ft: .. corp: ..",
        # and it ends with "INFO: exiting: 0 time: Ns".
        executions=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -1)
        elapsed=$(sed -n 's/^INFO: exiting: .* time: \([0-9]*\)s.*/\1/p' "$log" | tail -1)
        elapsed=${elapsed:-$(( $(date +%s) - started ))}
        status+=" fork=$FUZZ_FORK"
    fi
    [ -n "${FUZZ_MAX_LEN:-}" ] && status+=" max_len=$FUZZ_MAX_LEN"
    rate=$(( ${executions:-0} / (${elapsed:-1} > 0 ? ${elapsed:-1} : 1) ))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$commit" "$target" \
        "${executions:-0}" "${elapsed:-$seconds}" "$rate" "${cov:-?}" "${ft:-?}" "${corpus:-?}" "${rss:-?}" "$status" | tee -a "$results"
    cp "$log" "fuzz/corpus-work/$target.last.log"
done
exit $failed

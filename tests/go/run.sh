#!/usr/bin/env bash
# The Go client suite (franz-go kgo/kadm and sarama) against the real broker.
#
#   tests/go/run.sh [extra `go test` arguments, e.g. -run Sarama]
#
# Target: Ringtail by default ($RINGTAIL_BIN, else target/release/ringtail: build it first);
# RINGTAIL_TEST_TARGET=kafka runs the same tests against Apache Kafka, started through
# scripts/peers/kafka.sh ($KAFKA_PEER_SCRIPT overrides the script). Its jars come from
# $KAFKA_PEER_LIBS, else `kafka.sh install` puts them in $KAFKA_PEER_HOME/libs
# (default .venv/peers/kafka, a cache kept between runs).
#
# Installs the pinned modules (go.mod/go.sum) with `go mod download` (the module cache is the
# download cache), runs `go test -v` with a bounded timeout, and exits non-zero on any failure;
# go test's own `ok`/`FAIL` lines are the summary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

log() { printf '==> %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { echo "tests/go/run.sh: go not found" >&2; exit 1; }

# glommio (io_uring) needs locked memory; raise the limit where we may (Ringtail raises it
# itself as root).
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true

target="${RINGTAIL_TEST_TARGET:-ringtail}"
if [[ "$target" == "kafka" && -z "${KAFKA_PEER_LIBS:-}" ]]; then
    script="${KAFKA_PEER_SCRIPT:-$repo/scripts/peers/kafka.sh}"
    peer_home="${KAFKA_PEER_HOME:-$repo/.venv/peers/kafka}"
    log "installing Apache Kafka into $peer_home ($script install)"
    "$script" install "$peer_home" </dev/null
    export KAFKA_PEER_LIBS="$peer_home/libs"
fi

log "go mod download"
go mod download

log "go test (target: $target)"
# -count=1: never a cached result; the broker is started anew on every run.
exec go test -v -count=1 -timeout "${GO_TEST_TIMEOUT:-300s}" "$@" ./... </dev/null

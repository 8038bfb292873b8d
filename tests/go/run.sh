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

# Locked memory, and the Kafka peer for RINGTAIL_TEST_TARGET=kafka.
. "$repo/tests/lib/suite-env.sh"

log "go mod download"
go mod download

log "go test (target: $target)"
# -count=1: never a cached result; the broker is started anew on every run.
exec go test -v -count=1 -timeout "${GO_TEST_TIMEOUT:-300s}" "$@" ./... </dev/null

#!/usr/bin/env bash
# The JavaScript client suite (KafkaJS 2.x) against the real broker.
#
#   tests/js/run.sh [extra `node --test` arguments, e.g. --test-name-pattern=group]
#
# Target: Ringtail by default ($RINGTAIL_BIN, else target/release/ringtail: build it first);
# RINGTAIL_TEST_TARGET=kafka runs the same tests against Apache Kafka, started through
# scripts/peers/kafka.sh ($KAFKA_PEER_SCRIPT overrides the script). Its jars come from
# $KAFKA_PEER_LIBS, else `kafka.sh install` puts them in $KAFKA_PEER_HOME/libs
# (default .venv/peers/kafka, a cache kept between runs).
#
# Installs the locked packages (package-lock.json) with `npm ci` (npm's cache is the download
# cache), runs node's built-in test runner with the TAP reporter, bounded in time (600 s for the
# file, 120 s per test), and exits non-zero on any failure; TAP's `# pass N` / `# fail N` lines
# are the summary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

log() { printf '==> %s\n' "$*" >&2; }

command -v node >/dev/null 2>&1 || { echo "tests/js/run.sh: node not found" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "tests/js/run.sh: npm not found" >&2; exit 1; }

# Locked memory, and the Kafka peer for RINGTAIL_TEST_TARGET=kafka.
. "$repo/tests/lib/suite-env.sh"

log "npm ci"
npm ci --no-audit --no-fund --prefer-offline </dev/null

log "node --test (target: $target)"
exec node --test --test-reporter=tap --test-timeout=600000 "$@" test/ </dev/null

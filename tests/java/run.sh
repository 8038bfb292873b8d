#!/usr/bin/env bash
# The Java client suite (tests/java): Apache Kafka's Java client, Streams and CLI tools against
# the real broker. Each test class starts its own broker on a free loopback port with a temp dir:
# Ringtail ($RINGTAIL_BIN, default ../../target/release/ringtail) or, with
# RINGTAIL_TEST_TARGET=kafka, Apache Kafka through scripts/peers/kafka.sh (its jars from
# $KAFKA_PEER_LIBS, else installed once into tests/java/target/kafka-peer).
#
# usage: tests/java/run.sh [extra mvn arguments, e.g. -Dtest=AdminClientTest]
# Exits non-zero on any failure, or when no test ran; prints Surefire's totals at the end.
set -uo pipefail
cd "$(dirname "$0")"

log() { printf '==> %s\n' "$*" >&2; }

if ! command -v mvn >/dev/null 2>&1; then
    log "installing maven (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends maven </dev/null \
        || { apt-get update </dev/null && \
             apt-get install -y --no-install-recommends maven </dev/null; } \
        || { echo "tests/java/run.sh: cannot install maven" >&2; exit 2; }
fi

# glommio (io_uring) needs locked memory; Ringtail raises it itself as root, this helps elsewhere.
ulimit -l unlimited 2>/dev/null || true
if [ -n "${RINGTAIL_BIN:-}" ]; then
    export RINGTAIL_BIN
fi
if [ "${RINGTAIL_TEST_TARGET:-ringtail}" = kafka ]; then
    log "mvn test (target: Apache Kafka via ${RINGTAIL_KAFKA_PEER:-scripts/peers/kafka.sh})"
else
    log "mvn test (target: ringtail ${RINGTAIL_BIN:-../../target/release/ringtail})"
fi

rm -rf target/surefire-reports
# A hung build ends by itself (Surefire's own fork timeout is 900 s).
timeout 1800 mvn -q -B test "$@" </dev/null
status=$?

# Surefire's totals from its XML reports (-q hides its own summary lines).
tests=0; failures=0; errors=0; skipped=0
for report in target/surefire-reports/TEST-*.xml; do
    [ -f "$report" ] || continue
    line=$(grep -m1 -o '<testsuite [^>]*>' "$report")
    attr() { printf '%s' "$line" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
    tests=$(( tests + $(attr tests) ))
    failures=$(( failures + $(attr failures) ))
    errors=$(( errors + $(attr errors) ))
    skipped=$(( skipped + $(attr skipped) ))
done
echo "Tests run: $tests, Failures: $failures, Errors: $errors, Skipped: $skipped"
echo "java: $(( tests - failures - errors - skipped )) passed, $(( failures + errors )) failed, $skipped skipped"
if [ "$tests" -eq 0 ]; then
    echo "tests/java/run.sh: no test ran" >&2
    [ "$status" -ne 0 ] || status=1
fi
if [ "$status" -eq 0 ] && [ $(( failures + errors )) -gt 0 ]; then
    status=1
fi
exit "$status"

# Sourced by the client suites' run.sh (tests/go, tests/js): what every suite needs before it
# starts a broker. Expects $repo (the repository root) and a log function.
#
# - Raises the locked-memory limit where we may: glommio (io_uring) needs it (Ringtail raises it
#   itself as root).
# - With RINGTAIL_TEST_TARGET=kafka and no KAFKA_PEER_LIBS: installs Apache Kafka with
#   scripts/peers/kafka.sh (or $KAFKA_PEER_SCRIPT) into $KAFKA_PEER_HOME (default
#   .venv/peers/kafka, a cache kept between runs) and exports KAFKA_PEER_LIBS.
ulimit -l unlimited 2>/dev/null || ulimit -l "$(ulimit -H -l)" 2>/dev/null || true

target="${RINGTAIL_TEST_TARGET:-ringtail}"
if [[ "$target" == "kafka" && -z "${KAFKA_PEER_LIBS:-}" ]]; then
    script="${KAFKA_PEER_SCRIPT:-$repo/scripts/peers/kafka.sh}"
    peer_home="${KAFKA_PEER_HOME:-$repo/.venv/peers/kafka}"
    log "installing Apache Kafka into $peer_home ($script install)"
    "$script" install "$peer_home" </dev/null
    export KAFKA_PEER_LIBS="$peer_home/libs"
fi

#!/usr/bin/env bash
# Apache Kafka as a peer broker: installed from Maven Central, started as one KRaft node on
# loopback, stopped by its pid. Used by scripts/bench.sh and by the test suites' Kafka target.
#
#   scripts/peers/kafka.sh install DIR                 resolve Kafka (kafka-pom.xml) into DIR/libs
#   scripts/peers/kafka.sh start DIR PORT [--durable]  format + start one node; waits until it serves
#   scripts/peers/kafka.sh stop DIR                    stop the node started in DIR (by its pid)
#   scripts/peers/kafka.sh status DIR                  exit 0 and print the pid if it runs
#   scripts/peers/kafka.sh tool DIR MAIN_CLASS ARGS... run one of Kafka's tools by its main class
#                                                      (e.g. org.apache.kafka.tools.ProducerPerformance)
#   scripts/peers/kafka.sh classpath DIR               print the classpath (DIR/libs/*)
#
# Several nodes can share one installation: with KAFKA_PEER_LIBS=INSTALLED_DIR/libs, start, tool
# and classpath take the jars from there and DIR holds only that node's config, data, logs and pid
# (e.g. KAFKA_PEER_LIBS=/work/peers/kafka/libs kafka.sh start /tmp/my-node 19400).
#
# install: `mvn dependency:copy-dependencies` of kafka-pom.xml (kafka_2.13, kafka-tools,
#   kafka-streams, log4j2 behind slf4j, pinned to one Kafka version) into DIR/libs. Idempotent: a
#   stamp holding the pom's checksum skips the work when nothing changed; Maven's local repository
#   (~/.m2, or $KAFKA_PEER_MAVEN_REPO) is the download cache. Also writes DIR/config/log4j2.properties.
# start: the node is broker and controller in one process (process.roles=broker,controller,
#   node.id=1). Clients use PLAINTEXT://127.0.0.1:PORT; the controller listens on
#   127.0.0.1:PORT+1 (both must be free). The log dir DIR/data is formatted afresh on every start
#   (kafka.tools.StorageTool format --standalone). Everything else is Kafka's default, except what a
#   single node needs: the internal topics' replication factor 1 and min ISR 1, and
#   group.initial.rebalance.delay.ms=0. --durable adds log.flush.interval.messages=1, so acks=all
#   also waits for fsync (as it does on Ringtail). JVM flags as kafka-server-start.sh and
#   kafka-run-class.sh set them (-Xmx1G -Xms1G, G1, GC log); fits this 2-core, 24 GiB machine.
#   The wait for the node is bounded ($KAFKA_PEER_START_TIMEOUT_S, default 90 s). Logs:
#   DIR/logs/server.log (log4j2), DIR/logs/kafka.out (stdout/stderr), DIR/logs/kafkaServer-gc.log.
#   The pid is in DIR/kafka.pid; the port in DIR/kafka.port.
# stop: SIGTERM (Kafka's controlled shutdown), then SIGKILL after $KAFKA_PEER_STOP_TIMEOUT_S
#   (default 30 s).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="${KAFKA_PEER_POM:-$here/kafka-pom.xml}"
start_timeout_s="${KAFKA_PEER_START_TIMEOUT_S:-90}"
stop_timeout_s="${KAFKA_PEER_STOP_TIMEOUT_S:-30}"

die() { echo "kafka.sh: $*" >&2; exit 2; }
usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" >&2; exit 2; }

# JVM flags of kafka-server-start.sh (heap) and kafka-run-class.sh (performance options).
server_heap_opts=(-Xmx1G -Xms1G)
jvm_performance_opts=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true)
# The perf-test scripts (kafka-producer-perf-test.sh etc.) give the tools -Xmx512M. For `tool`,
# $KAFKA_HEAP_OPTS and $KAFKA_JVM_PERFORMANCE_OPTS replace the heap and performance flags, as
# they do in kafka-run-class.sh (e.g. for many tool processes at once).
read -r -a tool_heap_opts <<< "${KAFKA_HEAP_OPTS:--Xmx512M}"
read -r -a tool_performance_opts <<< "${KAFKA_JVM_PERFORMANCE_OPTS:-${jvm_performance_opts[*]}}"

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

running_pid() {
  local dir="$1" pid
  [[ -f "$dir/kafka.pid" ]] || return 1
  pid=$(cat "$dir/kafka.pid")
  pid_alive "$pid" || return 1
  # Guard against a recycled pid: it must be a java process started from this DIR.
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-Dkafka.logs.dir=$dir/logs" || return 1
  echo "$pid"
}

write_log4j2_config() {
  local dir="$1"
  mkdir -p "$dir/config"
  # Like Kafka's config/log4j2.yaml: server.log for the broker, WARN for noisy loggers; tools
  # log WARN to stderr (tools-log4j2.yaml).
  cat > "$dir/config/log4j2.properties" <<'EOF'
# Written by scripts/peers/kafka.sh (broker logging, like Kafka's config/log4j2.yaml).
status = warn
name = RingtailKafkaPeer
property.logDir = ${sys:kafka.logs.dir}
appender.server.type = RollingFile
appender.server.name = Server
appender.server.fileName = ${logDir}/server.log
appender.server.filePattern = ${logDir}/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 100MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 5
rootLogger.level = INFO
rootLogger.appenderRef.server.ref = Server
logger.kafkaRequest.name = kafka.request.logger
logger.kafkaRequest.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
EOF
  cat > "$dir/config/tools-log4j2.properties" <<'EOF'
# Written by scripts/peers/kafka.sh (tool logging, like Kafka's config/tools-log4j2.yaml).
status = warn
name = RingtailKafkaPeerTools
appender.stderr.type = Console
appender.stderr.name = Stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = Stderr
EOF
}

cmd_install() {
  local dir; dir=$(abs_dir "$1")
  [[ -f "$pom" ]] || die "no pom at $pom"
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  command -v java >/dev/null || die "java not found (apt-get install openjdk-17-jre-headless)"
  local sum; sum=$(sha256sum "$pom" | cut -d' ' -f1)
  write_log4j2_config "$dir"
  if [[ -f "$dir/libs/.installed" && "$(cat "$dir/libs/.installed")" == "$sum" ]]; then
    echo "kafka.sh: Kafka already installed in $dir/libs ($(ls "$dir/libs" | grep -c '\.jar$') jars)" >&2
    return 0
  fi
  local tmp; tmp=$(mktemp -d "$dir/.libs.XXXXXX")
  local maven_args=(-B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp")
  [[ -n "${KAFKA_PEER_MAVEN_REPO:-}" ]] && maven_args+=(-Dmaven.repo.local="$KAFKA_PEER_MAVEN_REPO")
  echo "kafka.sh: resolving $(grep -o '<kafka.version>[^<]*' "$pom" | cut -d'>' -f2) from Maven Central into $dir/libs" >&2
  if ! (cd "$dir" && timeout 1200 mvn "${maven_args[@]}" >&2); then
    rm -rf "$tmp"; die "mvn dependency:copy-dependencies failed"
  fi
  ls "$tmp"/kafka_2.13-*.jar "$tmp"/kafka-tools-*.jar "$tmp"/kafka-streams-*.jar "$tmp"/log4j-core-*.jar >/dev/null \
    || { rm -rf "$tmp"; die "resolved libs lack kafka_2.13, kafka-tools, kafka-streams or log4j-core"; }
  echo "$sum" > "$tmp/.installed"
  rm -rf "$dir/libs.old"
  [[ -d "$dir/libs" ]] && mv "$dir/libs" "$dir/libs.old"
  mv "$tmp" "$dir/libs"
  rm -rf "$dir/libs.old"
  echo "kafka.sh: installed $(ls "$dir/libs" | grep -c '\.jar$') jars in $dir/libs" >&2
}

# The jars a node in DIR runs: $KAFKA_PEER_LIBS if set, else DIR/libs.
libs_dir() { echo "${KAFKA_PEER_LIBS:-$1/libs}"; }

require_installed() {
  local libs; libs=$(libs_dir "$1")
  [[ -f "$libs/.installed" ]] || die "Kafka is not installed in $libs (run: $0 install $1, or set KAFKA_PEER_LIBS)"
  [[ -f "$1/config/log4j2.properties" ]] || write_log4j2_config "$1"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_start() {
  local dir; dir=$(abs_dir "$1"); local port="$2"; shift 2
  local durable=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --durable) durable=1; shift ;;
      *) die "start: unknown option $1" ;;
    esac
  done
  [[ "$port" =~ ^[0-9]+$ && "$port" -ge 1 && "$port" -le 65534 ]] || die "start: PORT must be 1..65534"
  require_installed "$dir"
  local pid
  if pid=$(running_pid "$dir"); then die "Kafka already runs from $dir (pid $pid); stop it first"; fi
  local controller_port=$(( port + 1 ))
  port_free "$port" || die "port $port is in use"
  port_free "$controller_port" || die "controller port $controller_port (PORT+1) is in use"

  rm -rf "$dir/data" "$dir/logs"
  mkdir -p "$dir/data" "$dir/logs"
  local props="$dir/config/server.properties"
  {
    echo "# Written by scripts/peers/kafka.sh: one KRaft node, broker and controller in one process."
    echo "# Kafka's defaults, except what a single node needs."
    echo "process.roles=broker,controller"
    echo "node.id=1"
    echo "controller.quorum.bootstrap.servers=127.0.0.1:${controller_port}"
    echo "listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller_port}"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller_port}"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "controller.listener.names=CONTROLLER"
    echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    echo "log.dirs=$dir/data"
    echo "offsets.topic.replication.factor=1"
    echo "transaction.state.log.replication.factor=1"
    echo "transaction.state.log.min.isr=1"
    echo "share.coordinator.state.topic.replication.factor=1"
    echo "share.coordinator.state.topic.min.isr=1"
    echo "group.initial.rebalance.delay.ms=0"
    if [[ $durable -eq 1 ]]; then
      echo "# --durable: fsync every message before acknowledging acks=all (as Ringtail does)."
      echo "log.flush.interval.messages=1"
    fi
  } > "$props"

  local libs; libs=$(libs_dir "$dir")
  local cp="$libs/*"
  local log_opts=(-Dlog4j2.configurationFile="file:$dir/config/log4j2.properties" -Dkafka.logs.dir="$dir/logs")
  local cluster_id
  cluster_id=$(java -Xmx256M -cp "$cp" -Dlog4j2.configurationFile="file:$dir/config/tools-log4j2.properties" \
    kafka.tools.StorageTool random-uuid 2>>"$dir/logs/kafka.out" | tail -1)
  [[ -n "$cluster_id" ]] || die "StorageTool random-uuid failed (see $dir/logs/kafka.out)"
  java -Xmx256M -cp "$cp" -Dlog4j2.configurationFile="file:$dir/config/tools-log4j2.properties" \
    kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$props" >>"$dir/logs/kafka.out" 2>&1 \
    || die "StorageTool format failed (see $dir/logs/kafka.out)"

  local gc_opts=(-Xlog:gc*:file="$dir/logs/kafkaServer-gc.log":time,tags:filecount=10,filesize=100M)
  # setsid: the broker outlives this script and its caller's terminal; it is ended by `stop`.
  setsid nohup java "${server_heap_opts[@]}" "${jvm_performance_opts[@]}" "${gc_opts[@]}" "${log_opts[@]}" \
    ${KAFKA_PEER_JVM_OPTS:-} -cp "$cp" kafka.Kafka "$props" >>"$dir/logs/kafka.out" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$dir/kafka.pid"
  echo "$port" > "$dir/kafka.port"
  local deadline=$(( SECONDS + start_timeout_s ))
  while (( SECONDS < deadline )); do
    if ! pid_alive "$pid"; then
      tail -30 "$dir/logs/kafka.out" "$dir/logs/server.log" >&2 2>/dev/null || true
      rm -f "$dir/kafka.pid"
      die "Kafka exited during start-up (logs: $dir/logs/kafka.out, $dir/logs/server.log)"
    fi
    if grep -q "Kafka Server started" "$dir/logs/server.log" 2>/dev/null && ! port_free "$port"; then
      echo "kafka.sh: Kafka $(ls "$libs" | sed -n 's/^kafka_2.13-\(.*\)\.jar$/\1/p') serves on 127.0.0.1:${port}" \
        "(controller 127.0.0.1:${controller_port}, pid ${pid}$([[ $durable -eq 1 ]] && echo ', durable: log.flush.interval.messages=1'));" \
        "log: $dir/logs/server.log" >&2
      echo "$pid"
      return 0
    fi
    sleep 0.5
  done
  echo "kafka.sh: Kafka did not serve on 127.0.0.1:${port} within ${start_timeout_s} s; stopping it" >&2
  tail -30 "$dir/logs/server.log" >&2 2>/dev/null || true
  cmd_stop "$dir" || true
  exit 1
}

cmd_stop() {
  local dir; dir=$(abs_dir "$1"); local pid
  if ! pid=$(running_pid "$dir"); then
    rm -f "$dir/kafka.pid"
    echo "kafka.sh: no Kafka runs from $dir" >&2
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(( SECONDS + stop_timeout_s ))
  while pid_alive "$pid" && (( SECONDS < deadline )); do sleep 0.2; done
  if pid_alive "$pid"; then
    echo "kafka.sh: Kafka (pid $pid) did not stop within ${stop_timeout_s} s; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    local kill_deadline=$(( SECONDS + 10 ))
    while pid_alive "$pid" && (( SECONDS < kill_deadline )); do sleep 0.2; done
  fi
  rm -f "$dir/kafka.pid"
  echo "kafka.sh: stopped Kafka (pid $pid); log: $dir/logs/server.log" >&2
}

cmd_tool() {
  local dir; dir=$(abs_dir "$1"); local main_class="$2"; shift 2
  require_installed "$dir"
  exec java "${tool_heap_opts[@]}" "${tool_performance_opts[@]}" \
    -Dlog4j2.configurationFile="file:$dir/config/tools-log4j2.properties" ${KAFKA_PEER_TOOL_JVM_OPTS:-} \
    -cp "$(libs_dir "$dir")/*" "$main_class" "$@"
}

[[ $# -ge 2 ]] || usage
command="$1"; shift
case "$command" in
  install) [[ $# -eq 1 ]] || usage; cmd_install "$1" ;;
  start) [[ $# -ge 2 ]] || usage; cmd_start "$@" ;;
  stop) [[ $# -eq 1 ]] || usage; cmd_stop "$1" ;;
  status) [[ $# -eq 1 ]] || usage; running_pid "$(abs_dir "$1")" || { echo "kafka.sh: not running" >&2; exit 1; } ;;
  tool) [[ $# -ge 2 ]] || usage; cmd_tool "$@" ;;
  classpath) [[ $# -eq 1 ]] || usage; echo "$(libs_dir "$(abs_dir "$1")")/*" ;;
  *) usage ;;
esac

#!/bin/bash
# run.sh BIN LABEL PROFILE(0/1) WORKLOAD...   (workload: thr|dur|small|part|fetch)
BIN=$1; LABEL=$2; PROF=$3; shift 3
D=/work/perf-runs; PORT=${PORT:-19392}
for W in "$@"; do
  rm -rf $D/data-$LABEL; mkdir -p $D/data-$LABEL $D/out
  $BIN serve --listeners PLAINTEXT://127.0.0.1:$PORT --log-dirs $D/data-$LABEL $EXTRA > $D/out/broker-$LABEL-$W.log 2>&1 &
  BP=$!; sleep 1
  B="${BENCH:-$BIN} bench"; A="--bootstrap-server 127.0.0.1:$PORT --results-dir $D/out --result-name $W-$LABEL --no-progress"
  if [ "$W" = fetch ]; then
    $B produce $A --topic t --partitions 8 --record-size 1024 --num-records 2097152 --producer-props acks=1 linger.ms=5 batch.size=65536 > $D/out/$W-$LABEL-load.log 2>&1
  fi
  [ "$PROF" = 1 ] && { perf record -e cpu-clock -F 999 -g --call-graph dwarf,16384 -p $BP -o $D/out/perf-$LABEL-$W.data > /dev/null 2>&1 & PP=$!; sleep 0.3; }
  LA=$(cut -d' ' -f1-3 /proc/loadavg)
  T0=$(awk '{print $14+$15}' /proc/$BP/stat); F0=$(awk '{print $10}' /proc/$BP/stat)
  case $W in
    thr) $B produce $A --topic t --partitions 8 --record-size 1024 --duration ${DUR:-10} --producer-props acks=1 linger.ms=5 batch.size=65536 ;;
    dur) $B produce $A --topic t --partitions 8 --record-size 1024 --duration ${DUR:-10} --producer-props acks=all linger.ms=5 batch.size=65536 ;;
    small) $B produce $A --topic t --partitions 8 --record-size 100 --duration ${DUR:-10} --producer-props acks=1 linger.ms=5 batch.size=65536 ;;
    part) $B produce $A --topic t --partitions 1000 --record-size 1024 --duration ${DUR:-10} --producer-props acks=1 linger.ms=5 batch.size=65536 ;;
    fetch) $B consume $A --topic t --num-records 2097152 --timeout-ms 30000 ;;
  esac > $D/out/$W-$LABEL.log 2>&1
  [ "$PROF" = 1 ] && { kill -INT $PP; wait $PP; }
  RSS=$(awk "/VmRSS/ {print \$2}" /proc/$BP/status); T1=$(awk '{print $14+$15}' /proc/$BP/stat); F1=$(awk '{print $10}' /proc/$BP/stat)
  echo "$LABEL $W load[$LA] broker_cpu_s=$(( (T1-T0) ))e-2 minflt=$((F1-F0)) rss_kb=$RSS :: $(grep -E 'th\.|^20[0-9][0-9]-' $D/out/$W-$LABEL.log | tail -1 | cut -c1-200)" | tee -a $D/summary.txt
  kill $BP; wait $BP 2>/dev/null
done
rm -rf $D/data-$LABEL

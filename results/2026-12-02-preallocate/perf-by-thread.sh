#!/bin/bash
# prof.sh BIN LABEL ACKS : perf record of the broker during a throughput run
BIN=$1; LABEL=$2; ACKS=${3:-1}; shift 3
D=/work/exp/data-$LABEL; rm -rf $D; mkdir -p $D
PORT=$((20000 + RANDOM % 5000))
env "$@" $BIN serve --listeners PLAINTEXT://127.0.0.1:$PORT --log-dirs $D --shards 2 --set ringtail.http.listener= --set log.preallocate=${PREALLOC:-true} > /work/exp/$LABEL.log 2>&1 &
PID=$!
for i in $(seq 50); do kcat -b 127.0.0.1:$PORT -L >/dev/null 2>&1 && break; sleep 0.2; done
B="/work/bin/ringtail-f1187a4 bench produce --bootstrap-server 127.0.0.1:$PORT --topic lat --partitions 8 --record-size 1024 --threads 1 --no-progress --producer-props acks=$ACKS"
$B --duration 1 > /dev/null 2>&1; sleep ${SETTLE:-1}
T0=$(awk '{print $14+$15}' /proc/$PID/stat)
perf record -F 999 -g -p $PID -o /work/exp/$LABEL.perf -- sleep 8 > /dev/null 2>&1 &
PP=$!
$B --duration 8 --results-dir /work/exp/r-$LABEL > /work/exp/$LABEL.bench 2>&1
wait $PP
T1=$(awk '{print $14+$15}' /proc/$PID/stat)
kill $PID; wait $PID
python3 -c "
import json,glob
f=sorted(glob.glob('/work/exp/r-$LABEL/*.json'))[-1]
d=json.load(open(f))['figures']['produce']; gib=d['bytes']/2**30
print('$LABEL', 'cpu_s', ($T1-$T0)/100, 'GiB %.2f'%gib, 'cpu_s/GiB %.2f'%(($T1-$T0)/100/gib), 'MB/s %.1f'%d['mb_per_sec'])"

#!/bin/bash
# cs.sh VARIANT: 5 s thr, per-thread CPU ticks and voluntary context switches of the broker
v=$1; rm -rf data-x && mkdir data-x; ./ringtail-$v serve --listeners PLAINTEXT://127.0.0.1:19393 --log-dirs data-x > out/x.log 2>&1 & BP=$!; sleep 1
./ringtail-drain bench produce --bootstrap-server 127.0.0.1:19393 --topic t --partitions 8 --record-size 1024 --duration 5 --producer-props acks=${ACKS:-1} linger.ms=5 batch.size=65536 --no-results --no-progress 2>&1 | tail -1 | cut -c1-90 & sleep 4
echo "$v: $(for t in /proc/$BP/task/*; do echo "$(cat $t/comm) $(awk '{print $14+$15}' $t/stat) $(grep -h ^voluntary_ctxt $t/status | awk '{print $2}')"; done | awk '{k=$1; sub(/-[0-9]+$/,"",k); n[k]++; cpu[k]+=$2; cs[k]+=$3} END {for (k in n) printf "%s x%d cpu=%d cs=%d; ", k, n[k], cpu[k], cs[k]}')"
wait %2 2>/dev/null; sleep 1; kill $BP; wait $BP; ls -la data-x/t-0/*.log

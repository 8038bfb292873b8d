#!/usr/bin/env python3
"""Broker memory with many idle partitions (issue 13: "1,000 idle partitions <= 256 MiB RSS").

For each broker named (ringtail, kafka): start it on a fresh data dir on a loopback port,
create --topics topics totalling --partitions partitions, write one 1 KiB record to every
partition (so each has an open segment, index and tail cache), then leave it idle for
--settle seconds and read its resident set (VmRSS, and the peak VmHWM) from /proc. Ringtail
runs with its defaults (2 shards on this machine); Kafka with scripts/peers/kafka.sh's heap
(its default -Xmx1G -Xms1G: the JVM reserves the heap, so Kafka's RSS is mostly heap it touched).

usage: scripts/measure-idle-memory.py [--brokers ringtail,kafka] [--partitions 1000]
       [--topics 10] [--settle 15] [--binary target/release/ringtail] [--port 19740] [--out F]
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import kafka_wire  # noqa: E402

measure_startup = __import__("measure-startup")


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def create_topics(port, names, partitions_each):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    futures = admin.create_topics([NewTopic(n, partitions_each, 1) for n in names],
                                  operation_timeout=60)
    for future in futures.values():
        future.result(120)


def touch_every_partition(port, names, partitions_each):
    batch = kafka_wire.record_batch([kafka_wire.Record(b"x" * 1024)])
    deadline = time.monotonic() + 120
    pending = {(n, p) for n in names for p in range(partitions_each)}
    while pending and time.monotonic() < deadline:
        with kafka_wire.Connection(f"127.0.0.1:{port}", timeout_s=30) as conn:
            by_topic = {}
            for n, p in pending:
                by_topic.setdefault(n, {})[p] = batch
            answer = conn.produce(by_topic, acks=-1)
        pending = {key for key, (error, _) in answer.items() if error != 0}
        if pending:
            time.sleep(0.5)
    if pending:
        raise RuntimeError(f"{len(pending)} partitions refused a record: {sorted(pending)[:5]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brokers", default="ringtail,kafka")
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--settle", type=float, default=15)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/ringtail"))
    parser.add_argument("--port", type=int, default=19740)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out")
    args = parser.parse_args()
    each = args.partitions // args.topics
    names = [f"idle-{i}" for i in range(args.topics)]

    load_before = os.getloadavg()
    rows = []
    for kind in args.brokers.split(","):
        work = tempfile.mkdtemp(prefix=f"ringtail-idle-{kind}-")
        broker = measure_startup.Broker(kind, args, work)
        try:
            broker.start_fresh()
            rss_started = status_kib(broker.pid, "VmRSS") / 1024
            create_topics(args.port, names, each)
            touch_every_partition(args.port, names, each)
            time.sleep(args.settle)
            row = {"broker": kind, "partitions": each * args.topics,
                   "rss_started_mib": round(rss_started, 1),
                   "rss_idle_mib": round(status_kib(broker.pid, "VmRSS") / 1024, 1),
                   "peak_rss_mib": round(status_kib(broker.pid, "VmHWM") / 1024, 1),
                   "threads": status_kib(broker.pid, "Threads")}
            rows.append(row)
            print(json.dumps(row), flush=True)
        finally:
            broker.stop()
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()

    date = datetime.date.today().isoformat()
    out = args.out or os.path.join(ROOT, "results", f"{date}-idle-memory", "README.md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    lines = measure_startup.report_header(
        f"Broker memory with {args.partitions} idle partitions", load_before, load_after) + [
        f"- load: {args.topics} topics x {each} partitions, one 1 KiB record (acks=all) to each, "
        f"then {args.settle:g} s idle",
        "",
        "| broker | partitions | RSS at start MiB | RSS idle MiB | peak RSS MiB | threads |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['broker']} | {r['partitions']} | {r['rss_started_mib']} | "
                     f"**{r['rss_idle_mib']}** | {r['peak_rss_mib']} | {r['threads']} |")
    lines += [""]
    measure_startup.write_report(out, lines)


if __name__ == "__main__":
    main()

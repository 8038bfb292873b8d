#!/usr/bin/env python3
"""Measures how long a /metrics scrape and the status page take on a broker with many
partitions (issue 12: "10,000 partitions must still scrape in well under a second").

usage: scripts/measure-scrape.py [--partitions 10000] [--shards 2] [--scrapes 10] [--out FILE]

Starts the release binary (RINGTAIL_BIN or target/release/ringtail) on 127.0.0.1 ports 19620
(Kafka) and 19621 (HTTP) with a temporary data dir, creates the partitions in two topics with
confluent-kafka's AdminClient, produces 4 records to every partition (so every series has
data), then times `--scrapes` scrapes of /metrics (Prometheus text and OpenMetrics) and of `/`.
Writes a Markdown report naming the commit, the machine and the command to --out (default
results/<date>-scrape-<N>-partitions.md) and prints it. Stops the broker it started.
"""

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KAFKA_PORT = 19620
HTTP_PORT = 19621


def get(path, accept=None):
    request = urllib.request.Request(f"http://127.0.0.1:{HTTP_PORT}{path}",
                                     headers={"Accept": accept} if accept else {})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
    return time.perf_counter() - started, body


def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--scrapes", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args()
    binary = os.environ.get("RINGTAIL_BIN", os.path.join(ROOT, "target/release/ringtail"))
    data = tempfile.mkdtemp(prefix="ringtail-scrape-")
    log = open(os.path.join(data, "broker.log"), "wb")
    broker = subprocess.Popen(
        [binary, "serve", "--listeners", f"PLAINTEXT://127.0.0.1:{KAFKA_PORT}",
         "--log-dirs", os.path.join(data, "data"), "--shards", str(args.shards),
         "--set", f"ringtail.http.listener=127.0.0.1:{HTTP_PORT}",
         # 10,000 tail caches would be 2.5 GiB of fresh pages; keep them small.
         "--set", "ringtail.partition.cache.bytes=65536"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get("/healthz")[1] == b"ok\n":
                    break
            except OSError:
                pass
            assert broker.poll() is None and time.monotonic() < deadline, "broker did not start"
            time.sleep(0.1)
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{KAFKA_PORT}"})
        per_topic = args.partitions // 2
        started = time.perf_counter()
        for name in ("scrape-a", "scrape-b"):
            admin.create_topics([NewTopic(name, per_topic, 1)],
                                request_timeout=600)[name].result(timeout=600)
        create_s = time.perf_counter() - started
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{KAFKA_PORT}", "linger.ms": 50})
        for i in range(4 * args.partitions):
            topic = "scrape-a" if i % 2 else "scrape-b"
            while True:
                try:
                    producer.produce(topic, value=b"v" * 100, partition=(i // 2) % per_topic)
                    break
                except BufferError:
                    producer.poll(0.05)
        assert producer.flush(120) == 0
        rows = []
        for label, path, accept in (
                ("/metrics (Prometheus text 0.0.4)", "/metrics", None),
                ("/metrics (OpenMetrics)", "/metrics", "application/openmetrics-text"),
                ("/ (status page)", "/", None)):
            times, body = [], b""
            for _ in range(args.scrapes):
                seconds, body = get(path, accept)
                times.append(seconds)
            rows.append((label, times, len(body), body.count(b"\n")))
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=120)
        except subprocess.TimeoutExpired:
            broker.kill()
        shutil.rmtree(data, ignore_errors=True)

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    today = datetime.date.today().isoformat()
    lines = [
        f"# /metrics scrape time with {args.partitions} partitions",
        "",
        f"- date: {today}",
        f"- commit: {commit}{' (with uncommitted changes)' if dirty else ''}",
        f"- machine: {cpu_model()}, {os.cpu_count()} CPUs, kernel {platform.release()} "
        "(shared with other builds and tests while measured)",
        f"- broker: `ringtail serve --shards {args.shards} --set ringtail.partition.cache.bytes=65536`, "
        f"{args.partitions} partitions in 2 topics, 4 records of 100 bytes per partition; "
        f"creating the topics took {create_s:.1f} s",
        f"- command: `scripts/measure-scrape.py --partitions {args.partitions} "
        f"--shards {args.shards} --scrapes {args.scrapes}`",
        "- time: wall clock of one HTTP GET (connect, gather from every shard, encode, read), "
        f"{args.scrapes} in a row",
        "",
        "| endpoint | median s | min s | max s | body bytes | lines |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, times, size, count in rows:
        lines.append(f"| {label} | {statistics.median(times):.3f} | {min(times):.3f} | "
                     f"{max(times):.3f} | {size} | {count} |")
    report = "\n".join(lines) + "\n"
    out = args.out or os.path.join(ROOT, "results", f"{today}-scrape-{args.partitions}-partitions.md")
    with open(out, "w") as f:
        f.write(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

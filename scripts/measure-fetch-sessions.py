#!/usr/bin/env python3
"""Broker CPU per fetch with 1,000 partitions: sessionless full fetches (what every client sent
while Ringtail answered session id 0) against incremental fetch sessions (KIP-227).

Starts the broker binary (and optionally a baseline binary, e.g. a build from before fetch
sessions) on a loopback port, creates a topic of --partitions partitions with one record each,
then per mode sends --fetches Fetch v11 requests one at a time from a raw socket (max_wait_ms 0,
all partitions at their end, so the broker reads every partition and finds nothing new):

  sessionless  epoch -1, every partition listed in every request and answered in every response
  session      one full fetch (epoch 0) opening a session, then incremental fetches naming no
               partition; the broker still fetches all of them and answers only changes (none)

Broker CPU is utime + stime from /proc/<pid>/stat before and after each mode. The machine may
be shared: the report gives ratios from the same run, counts (bytes per request and response,
CPU-s per 10k fetches) and the load average. Writes results/<date>-fetch-sessions/README.md.

usage: scripts/measure-fetch-sessions.py [--binary target/release/ringtail]
       [--baseline-binary /path/to/older/ringtail] [--partitions 1000] [--fetches 5000]
       [--port 19710]
"""

import argparse
import datetime
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FETCH, FETCH_VERSION = 1, 11


def string(value):
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def fetch_body(topic, partitions, session_id, epoch, offset):
    """Fetch v11 (KIP-227 fields, topics by name, not flexible)."""
    body = struct.pack(">iiiibii", -1, 0, 0, 64 << 20, 0, session_id, epoch)
    if partitions:
        body += struct.pack(">i", 1) + string(topic) + struct.pack(">i", len(partitions))
        for p in partitions:
            body += struct.pack(">iiqqi", p, -1, offset, -1, 1 << 20)
    else:
        body += struct.pack(">i", 0)
    body += struct.pack(">i", 0) + string("")  # forgotten topics, rack id
    return body


class Connection:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation = 0

    def frame(self, body):
        self.correlation += 1
        header = struct.pack(">hhi", FETCH, FETCH_VERSION, self.correlation) + string("measure")
        payload = header + body
        return struct.pack(">i", len(payload)) + payload

    def call(self, frame):
        self.sock.sendall(frame)
        size = struct.unpack(">i", self._exact(4))[0]
        body = self._exact(size)
        # correlation id, throttle_time_ms, error_code, session_id, responses count
        _, _, error, session_id, topics = struct.unpack(">iihii", body[:18])
        return error, session_id, topics, 4 + size

    def _exact(self, count):
        chunks = []
        while count:
            chunk = self.sock.recv(min(count, 1 << 20))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_broker(binary, port, data_dir, log_path, no_http=True):
    log = open(log_path, "ab")
    # No operator HTTP listener (an older baseline build may not know the property).
    http = ["--set", "ringtail.http.listener="] if no_http else []
    process = subprocess.Popen(
        [binary, "serve", "--listeners", f"PLAINTEXT://127.0.0.1:{port}", "--log-dirs", data_dir,
         "--shards", "1", *http],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{binary} exited with {process.returncode}; see {log_path}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{binary} not ready on port {port}")


def prepare_topic(port, topic, partitions):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(60)
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "linger.ms": 20})
    deadline = time.monotonic() + 60
    for p in range(partitions):
        while True:
            try:
                producer.produce(topic, value=b"x" * 100, partition=p)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)
    # Every partition at high watermark 1 before measuring.
    with_connection = Connection(port)
    while time.monotonic() < deadline:
        error, _, _, _ = with_connection.call(with_connection.frame(
            fetch_body(topic, range(partitions), 0, -1, 0)))
        if error == 0:
            break
        time.sleep(0.5)
    with_connection.sock.close()


def run_mode(pid, port, topic, partitions, fetches, mode):
    connection = Connection(port)
    all_partitions = list(range(partitions))
    if mode == "sessionless":
        body = fetch_body(topic, all_partitions, 0, -1, 1)
        session_id = 0
    else:
        error, session_id, _, _ = connection.call(connection.frame(
            fetch_body(topic, all_partitions, 0, 0, 1)))
        if error != 0 or session_id == 0:
            raise RuntimeError(f"no fetch session: error {error}, session id {session_id}")
    cpu_before = cpu_seconds(pid)
    wall_before = time.monotonic()
    request_bytes = response_bytes = topics_answered = 0
    for i in range(fetches):
        if mode == "session":
            body = fetch_body(topic, (), session_id, i + 1, 1)
        frame = connection.frame(body)
        error, answered_session, topics, size = connection.call(frame)
        if error != 0 or answered_session != session_id:
            raise RuntimeError(f"{mode} fetch {i}: error {error}, session {answered_session}")
        request_bytes += len(frame)
        response_bytes += size
        topics_answered += topics
    wall = time.monotonic() - wall_before
    cpu = cpu_seconds(pid) - cpu_before
    connection.sock.close()
    return {
        "mode": mode, "fetches": fetches, "cpu_s": cpu, "wall_s": wall,
        "cpu_s_per_10k": cpu * 10_000 / fetches,
        "request_bytes": request_bytes / fetches, "response_bytes": response_bytes / fetches,
        "topics_answered": topics_answered,
    }


def measure(binary, label, args, modes, no_http=True):
    data = tempfile.mkdtemp(prefix="ringtail-measure-fetch-")
    log_path = os.path.join(data, "broker.log")
    process = start_broker(binary, args.port, os.path.join(data, "data"), log_path, no_http)
    try:
        topic = f"measure-fetch-{os.getpid()}"
        prepare_topic(args.port, topic, args.partitions)
        results = []
        for mode in modes:
            result = run_mode(process.pid, args.port, topic, args.partitions, args.fetches, mode)
            result["broker"] = label
            results.append(result)
            print(result, flush=True)
        return results
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(data, ignore_errors=True)


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/ringtail"))
    parser.add_argument("--baseline-binary")
    parser.add_argument("--baseline-default-http", action="store_true",
                        help="do not pass ringtail.http.listener= to a baseline built before it")
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--fetches", type=int, default=5000)
    parser.add_argument("--port", type=int, default=19710)
    parser.add_argument("--baseline-modes", default="sessionless",
                        help="comma-separated modes measured on the baseline too "
                             "(sessionless,session to compare both with this commit)")
    parser.add_argument("--modes", default="sessionless,session",
                        help="modes measured on --binary (the report needs both)")
    parser.add_argument("--out")
    args = parser.parse_args()

    load_before = os.getloadavg()
    results = []
    if args.baseline_binary:
        results += measure(args.baseline_binary, "baseline", args,
                           args.baseline_modes.split(","),
                           no_http=not args.baseline_default_http)
    results += measure(args.binary, "this commit", args, args.modes.split(","))
    load_after = os.getloadavg()

    by = {(r["broker"], r["mode"]): r for r in results}
    if ("this commit", "sessionless") not in by or ("this commit", "session") not in by:
        print(results)
        return
    full = by[("this commit", "sessionless")]
    incremental = by[("this commit", "session")]
    date = datetime.date.today().isoformat()
    out = args.out or os.path.join(ROOT, "results", f"{date}-fetch-sessions", "README.md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    lines = [
        f"# Broker CPU per fetch, {args.partitions} partitions: sessionless vs fetch sessions",
        "",
        f"- commit: `{git('rev-parse', '--short', 'HEAD')}`"
        f"{' (dirty tree)' if git('status', '--porcelain', '--untracked-files=no') else ''}",
        f"- machine: {cpu_model()}, {os.cpu_count()} CPUs, kernel {platform.release()}",
        f"- command: `{' '.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])}`",
        f"- load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)} -- the machine is shared, so compare "
        "the ratios of one run, not absolute times",
        f"- broker: 1 shard; client: one raw-socket connection, Fetch v11, one request at a time, "
        f"max_wait_ms 0, every partition at its end (nothing new to return)",
        "",
        "| broker | mode | fetches | broker CPU-s | CPU-s per 10k fetches | request bytes | "
        "response bytes | wall s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['broker']} | {r['mode']} | {r['fetches']} | {r['cpu_s']:.2f} | "
                     f"{r['cpu_s_per_10k']:.2f} | {r['request_bytes']:.0f} | "
                     f"{r['response_bytes']:.0f} | {r['wall_s']:.1f} |")
    ratio = full["cpu_s_per_10k"] / incremental["cpu_s_per_10k"] if incremental["cpu_s"] else 0
    lines += [
        "",
        f"Sessionless / session, same binary, same run: broker CPU per fetch x{ratio:.2f}, "
        f"response bytes x{full['response_bytes'] / incremental['response_bytes']:.0f}, "
        f"request bytes x{full['request_bytes'] / incremental['request_bytes']:.0f}.",
    ]
    if ("baseline", "sessionless") in by:
        base = by[("baseline", "sessionless")]
        lines.append(
            f"Baseline binary (sessionless, as every client fetched before) / session: broker CPU "
            f"per fetch x{base['cpu_s_per_10k'] / incremental['cpu_s_per_10k']:.2f}.")
    for mode in ("sessionless", "session"):
        if ("baseline", mode) in by:
            base, mine = by[("baseline", mode)], by[("this commit", mode)]
            lines.append(f"Baseline / this commit, {mode}: broker CPU per fetch "
                         f"x{base['cpu_s_per_10k'] / mine['cpu_s_per_10k']:.2f}.")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Start-up after kill -9 with a large log (issue 13: "serving within 2 s with 10 GB of logs").

For each broker named (ringtail, kafka): start it on a fresh data dir on a loopback port,
create a topic of --partitions partitions and fill it with --gib GiB of 1 KiB records with
`ringtail bench produce` (acks=all), note each partition's log end offset, then SIGKILL the
broker (its whole process group) and start the same command line again on the same data.
From the exec of the restarted process, the time until:

  port      the listener accepts a TCP connection
  metadata  Metadata v1 names every partition of the topic with a leader
  offsets   ListOffsets (latest) answers every partition with at least the offset noted
  produce   a Produce v3 acks=all of one batch to every partition is acknowledged
  fetch     a Fetch v4 of the last record before the kill returns it, on every partition

"serving" is the last of these. Also the restarted broker's CPU seconds and peak RSS until then,
and for Ringtail what its log says it recovered. Every wait is bounded (--timeout). Kafka runs
from scripts/peers/kafka.sh's jars (KAFKA_PEER_LIBS or .venv/peers/kafka/libs) in its page-cache
mode; after a kill -9 it recovers the segments after its recovery point.

usage: scripts/measure-startup.py [--brokers ringtail,kafka] [--gib 10] [--partitions 8]
       [--binary target/release/ringtail] [--port 19730] [--out results/<date>-startup/README.md]
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import kafka_wire  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
RECORD_BYTES = 1024
TOPIC = "startup"


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except OSError:
        return float("nan")


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait(what, check, timeout_s, interval_s=0.01):
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            if check():
                return time.monotonic()
        except (OSError, kafka_wire.ProtocolError) as e:
            last_error = e
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not reached within {timeout_s} s (last error: {last_error})")


class Broker:
    """One broker process: its command line, environment and data, restartable as it was."""

    def __init__(self, kind, args, work):
        self.kind, self.args, self.work = kind, args, work
        self.port = args.port
        self.process = None
        self.pid = None
        self.argv = None
        self.env = None
        self.cwd = None

    def start_fresh(self):
        if self.kind == "ringtail":
            data = os.path.join(self.work, "data")
            self.argv = [os.path.abspath(self.args.binary), "serve", "--listeners",
                         f"PLAINTEXT://127.0.0.1:{self.port}", "--log-dirs", data,
                         "--set", "ringtail.http.listener="]
            self.env, self.cwd = dict(os.environ), self.work
            self.exec()
            wait("ringtail port", lambda: port_open(self.port), 60)
        else:
            libs = os.environ.get("KAFKA_PEER_LIBS", os.path.join(ROOT, ".venv/peers/kafka/libs"))
            env = dict(os.environ, KAFKA_PEER_LIBS=libs)
            subprocess.run([os.path.join(ROOT, "scripts/peers/kafka.sh"), "install", self.work],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            out = subprocess.run(
                [os.path.join(ROOT, "scripts/peers/kafka.sh"), "start", self.work, str(self.port)],
                env=env, check=True, capture_output=True, text=True)
            self.pid = int(out.stdout.strip().splitlines()[-1])
            with open(f"/proc/{self.pid}/cmdline", "rb") as f:
                self.argv = [a.decode() for a in f.read().split(b"\0") if a]
            with open(f"/proc/{self.pid}/environ", "rb") as f:
                self.env = dict(kv.decode().split("=", 1) for kv in f.read().split(b"\0")
                                if b"=" in kv)
            self.cwd = os.readlink(f"/proc/{self.pid}/cwd")

    def exec(self):
        log = open(os.path.join(self.work, f"{self.kind}-broker.log"), "ab")
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log,
                                        stderr=log, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        self.pid = self.process.pid
        return time.monotonic()

    def kill9(self):
        try:
            os.killpg(os.getpgid(self.pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and os.path.exists(f"/proc/{self.pid}"):
            if self.process is not None:
                self.process.poll()
            try:
                os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            try:
                with open(f"/proc/{self.pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.05)

    def stop(self):
        if self.pid:
            self.kill9()


def fill(args, port, partitions, gib):
    records = int(gib * (1 << 30) / RECORD_BYTES)
    started = time.monotonic()
    subprocess.run(
        [os.path.abspath(args.binary), "bench", "produce", "--bootstrap-server",
         f"127.0.0.1:{port}", "--topic", TOPIC, "--partitions", str(partitions),
         "--num-records", str(records), "--record-size", str(RECORD_BYTES), "--no-results",
         "--no-progress"],
        check=True, stdout=subprocess.DEVNULL, timeout=3600)
    return records, time.monotonic() - started


def end_offsets(port, partitions):
    with kafka_wire.Connection(f"127.0.0.1:{port}") as conn:
        answer = conn.list_offsets({(TOPIC, p): kafka_wire.LATEST_TIMESTAMP
                                    for p in range(partitions)})
    if any(error for error, _, _ in answer.values()):
        raise kafka_wire.ProtocolError(f"ListOffsets errors {answer}")
    return {p: answer[(TOPIC, p)][2] for p in range(partitions)}


def measure_restart(broker, partitions, expected, timeout_s):
    port = broker.port
    t0 = broker.exec()
    marks = {}
    conn = {}

    def connection():
        if "c" not in conn:
            conn["c"] = kafka_wire.Connection(f"127.0.0.1:{port}", timeout_s=5)
        return conn["c"]

    def reset(check):
        def run():
            try:
                return check()
            except (OSError, kafka_wire.ProtocolError):
                if "c" in conn:
                    conn.pop("c").close()
                raise
        return run

    marks["port"] = wait("port", lambda: port_open(port), timeout_s) - t0

    def metadata_ok():
        answer = connection().metadata([TOPIC])
        topic = answer["topics"][0]
        return (topic["error_code"] == 0 and len(topic["partitions"]) == partitions
                and all(p["error_code"] == 0 and p["leader"] >= 0 for p in topic["partitions"]))
    marks["metadata"] = wait("metadata", reset(metadata_ok), timeout_s) - t0

    def offsets_ok():
        answer = connection().list_offsets({(TOPIC, p): kafka_wire.LATEST_TIMESTAMP
                                            for p in range(partitions)})
        return all(answer[(TOPIC, p)][0] == 0 and answer[(TOPIC, p)][2] >= expected[p]
                   for p in range(partitions))
    marks["offsets"] = wait("offsets", reset(offsets_ok), timeout_s) - t0

    batch = kafka_wire.record_batch([kafka_wire.Record(b"after-restart", key=b"k")])

    def produce_ok():
        answer = connection().produce({TOPIC: {p: batch for p in range(partitions)}}, acks=-1)
        return all(error == 0 for error, _ in answer.values())
    marks["produce"] = wait("produce", reset(produce_ok), timeout_s) - t0

    def fetch_ok():
        answer = connection().fetch({(TOPIC, p): expected[p] - 1 for p in range(partitions)},
                                    max_wait_ms=0, min_bytes=0,
                                    partition_max_bytes=64 * 1024)
        for p in range(partitions):
            part = answer[(TOPIC, p)]
            if part["error_code"] != 0:
                return False
            offsets = [offset for offset, _ in kafka_wire.records_of(
                kafka_wire.parse_record_batches(part["records"]))]
            if expected[p] - 1 not in offsets:
                return False
        return True
    marks["fetch"] = wait("fetch", reset(fetch_ok), timeout_s) - t0
    marks["serving"] = max(marks.values())
    marks["cpu_s"] = cpu_seconds(broker.pid)
    marks["rss_mib"] = rss_mib(broker.pid)
    if "c" in conn:
        conn["c"].close()
    return marks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brokers", default="ringtail,kafka")
    parser.add_argument("--gib", type=float, default=10)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/ringtail"))
    parser.add_argument("--port", type=int, default=19730)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--work", help="data dirs go here (default: a temp dir, removed)")
    parser.add_argument("--out")
    args = parser.parse_args()

    date = datetime.date.today().isoformat()
    out = args.out or os.path.join(ROOT, "results", f"{date}-startup", "README.md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    load_before = os.getloadavg()
    rows = []
    for kind in args.brokers.split(","):
        work = tempfile.mkdtemp(prefix=f"ringtail-startup-{kind}-", dir=args.work)
        broker = Broker(kind, args, work)
        try:
            broker.start_fresh()
            records, fill_s = fill(args, args.port, args.partitions, args.gib)
            expected = end_offsets(args.port, args.partitions)
            data_bytes = int(subprocess.run(["du", "-sb", work], capture_output=True,
                                            text=True).stdout.split()[0])
            broker.kill9()
            marks = measure_restart(broker, args.partitions, expected, args.timeout)
            row = {"broker": kind, "records": records, "fill_s": round(fill_s, 1),
                   "data_gib": round(data_bytes / (1 << 30), 2),
                   **{k: round(v, 3) for k, v in marks.items()}}
            if kind == "ringtail":
                with open(os.path.join(work, "ringtail-broker.log"), errors="replace") as f:
                    text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
                    lines = [line for line in text.splitlines()
                             if "recover" in line.lower() or "truncat" in line.lower()]
                row["recovery_log_lines"] = len(lines)
                row["recovery_log_sample"] = lines[-3:]
                with open(os.path.join(os.path.dirname(out), f"{kind}-recovery.log"),
                          "w") as recovery_log:
                    recovery_log.write("\n".join(lines) + "\n")
            rows.append(row)
            print(json.dumps(row), flush=True)
        finally:
            broker.stop()
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()

    lines = report_header(f"Start-up after kill -9 with {args.gib:g} GiB of logs",
                          load_before, load_after) + [
        f"- load: one topic of {args.partitions} partitions filled with 1 KiB records by "
        "`ringtail bench produce` (acks=all), then SIGKILL and the same command line again",
        "",
        "Seconds from the exec of the restarted process:",
        "",
        "| broker | data GiB | fill s | port | metadata | offsets | produce | fetch | serving | "
        "CPU-s to serving | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['broker']} | {r['data_gib']} | {r['fill_s']} | {r['port']} | "
                     f"{r['metadata']} | {r['offsets']} | {r['produce']} | {r['fetch']} | "
                     f"**{r['serving']}** | {r['cpu_s']} | {r['rss_mib']:.0f} |")
    lines += ["", "Raw rows:", "", "```"] + [json.dumps(r) for r in rows] + ["```", ""]
    write_report(out, lines)


def report_header(title, load_before, load_after):
    """The first lines of a results README: title, commit, machine, command, load averages."""
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return [
        f"# {title}",
        "",
        f"- commit: `{git('rev-parse', '--short', 'HEAD')}`{' (dirty tree)' if dirty else ''}",
        f"- machine: {platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}",
        f"- command: `{' '.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])}`",
        f"- load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)}",
    ]


def write_report(out, lines):
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

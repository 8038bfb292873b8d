#!/usr/bin/env python3
"""Instructions per request of the broker, counted by callgrind (issue 13's "Method").

Starts one broker under `valgrind --tool=callgrind --instr-atstart=no` (1 shard, so no
cross-shard hop; a fresh log dir), makes one topic of one partition, warms the request path
up, then for each phase zeroes the counts, turns instrumentation on, sends a fixed number of
requests of one fixed shape on one connection (one in flight), dumps the counts and turns
instrumentation off again:

  produce-acks1    Produce v3, acks=1, one record batch v2 of RECORDS records of RECORD_SIZE
                   bytes (uncompressed, no key)
  produce-acksall  the same with acks=-1 (answered after fdatasync)
  fetch            Fetch v4 of exactly one of those batches (partition_max_bytes=1, so the
                   first whole batch at the offset; KIP-74), walking the log from offset 0

The figure printed is the broker's user-space instructions (callgrind's `Ir`, every thread of
the process) divided by the number of requests, and its split: glibc's memcpy/memmove and
memset, which callgrind counts at one instruction per byte (`rep movsb` / `rep stosb`, each
iteration one instruction), so those two are about the bytes copied and zeroed per request,
and everything else. The kernel's share (TCP, io_uring, the disk)
is not counted: this is a regression number for the code Ringtail owns, repeatable on a noisy
machine, not a CPU-time figure (those are in the bench results).

    scripts/instructions.py [--bin target/release/ringtail] [--requests 500] [--out FILE]

`--out` appends one JSON line (date, commit, shape, Ir per request per phase); `--keep-dumps DIR`
keeps each phase's dump for `callgrind_annotate DIR/<phase>.callgrind`. Needs valgrind
(Debian's `valgrind`, with callgrind_control). Exits 1 if the broker does not come up under
valgrind or a request fails.
"""

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import kafka_wire  # noqa: E402

TOPIC = "instructions"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the broker exited under valgrind (rc {proc.returncode})")
        try:
            with kafka_wire.Connection(f"127.0.0.1:{port}", timeout_s=5) as conn:
                conn.api_versions()
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the broker did not answer ApiVersions within {timeout_s} s")


def wait_topic(conn, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = conn.metadata([TOPIC])["topics"]
        if topics and topics[0]["error_code"] == 0 and topics[0]["partitions"] and \
                topics[0]["partitions"][0]["leader"] >= 0:
            return
        time.sleep(0.5)
    raise SystemExit(f"topic {TOPIC} was not created within {timeout_s} s")


def callgrind(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def dumped_ir(out_dir, pid, before, keep_dir=None, phase=None):
    """(`Ir` total, the dump files) written since `before` (with --separate-threads=no, one
    file for the whole process)."""
    total = 0
    found = False
    paths = []
    for path in sorted(glob.glob(os.path.join(out_dir, f"callgrind.out.{pid}*"))):
        if path in before:
            continue
        paths.append(path)
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
                if m:
                    total += int(m.group(1))
                    found = True
                    break
        if keep_dir:
            os.makedirs(keep_dir, exist_ok=True)
            shutil.copy(path, os.path.join(keep_dir, f"{phase}.callgrind"))
    if not found:
        raise SystemExit("callgrind wrote no dump with a summary line")
    return total, paths


def rep_string_counts(paths):
    """(memcpy/memmove, memset) instructions in the dumps, from `callgrind_annotate`. glibc's
    large copies and fills are `rep movsb` / `rep stosb`, and callgrind counts each iteration
    of those as one instruction, so these are about the bytes copied and zeroed."""
    copied = zeroed = 0
    for path in paths:
        text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
                              capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            m = re.match(r"^\s*([\d,]+) \(", line)
            if not m:
                continue
            count = int(m.group(1).replace(",", ""))
            if re.search(r":__mem(cpy|move)\w*", line):
                copied += count
            elif re.search(r":__memset\w*", line):
                zeroed += count
    return copied, zeroed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/release/ringtail")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--records", type=int, default=16, help="records per batch")
    parser.add_argument("--record-size", type=int, default=1024, help="value bytes")
    parser.add_argument("--out", help="append one JSON line here")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--keep-dumps", help="copy each phase's callgrind dump here "
                        "(<phase>.callgrind, for callgrind_annotate)")
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("valgrind with callgrind_control is needed (apt-get install valgrind)")

    work = tempfile.mkdtemp(prefix="ringtail-instructions-")
    port = free_port()
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no",
         "--separate-threads=no", f"--callgrind-out-file={work}/callgrind.out.%p",
         args.bin, "serve", "--listeners", f"PLAINTEXT://127.0.0.1:{port}",
         "--log-dirs", f"{work}/data", "--shards", "1", "--set", "ringtail.http.listener=",
         "--set", "num.partitions=1"],
        stdout=open(f"{work}/broker.log", "w"), stderr=subprocess.STDOUT)
    results = {}
    split = {}
    batch_bytes = None
    try:
        wait_ready(port, proc, args.startup_timeout)
        value = bytes(i % 251 for i in range(args.record_size))
        batch = kafka_wire.record_batch([kafka_wire.Record(value)] * args.records)
        batch_bytes = len(batch)
        with kafka_wire.Connection(f"127.0.0.1:{port}", timeout_s=120) as conn:
            wait_topic(conn, 60)

            def produce(acks):
                result = conn.produce({TOPIC: {0: batch}}, acks=acks)
                error, _ = result[(TOPIC, 0)]
                if error != 0:
                    raise SystemExit(f"Produce failed with error code {error}")

            next_fetch = [0]

            def fetch():
                result = conn.fetch({(TOPIC, 0): next_fetch[0]}, max_wait_ms=0,
                                    partition_max_bytes=1)[(TOPIC, 0)]
                if result["error_code"] != 0 or not result["records"]:
                    raise SystemExit(f"Fetch at {next_fetch[0]} failed: {result['error_code']}")
                next_fetch[0] += args.records

            for _ in range(50):  # warm-up: allocations, the first segment, caches
                produce(1)
                fetch()
            phases = [("produce-acks1", lambda: produce(1)),
                      ("produce-acksall", lambda: produce(-1)),
                      ("fetch", fetch)]
            for name, send in phases:
                before = set(glob.glob(os.path.join(work, "callgrind.out.*")))
                callgrind(proc.pid, "--zero")
                callgrind(proc.pid, "--instr=on")
                for _ in range(args.requests):
                    send()
                callgrind(proc.pid, f"--dump={name}")  # before --instr=off, which drops the counts
                callgrind(proc.pid, "--instr=off")
                ir, paths = dumped_ir(work, proc.pid, before, args.keep_dumps, name)
                copied, zeroed = rep_string_counts(paths)
                n = args.requests
                results[name] = round(ir / n)
                split[name] = {"other": round((ir - copied - zeroed) / n),
                               "memcpy": round(copied / n), "memset": round(zeroed / n)}
                print(f"{name:16} {results[name]:>9,} instructions per request: "
                      f"{split[name]['other']:>8,} outside memcpy/memset, "
                      f"{split[name]['memcpy']:>7,} memcpy (about bytes copied), "
                      f"{split[name]['memset']:>7,} memset (about bytes zeroed); "
                      f"{n} requests, batch {len(batch)} bytes", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if not results:
            sys.stderr.write(open(f"{work}/broker.log").read()[-4000:])
        shutil.rmtree(work, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    line = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit, "bin": args.bin, "shards": 1, "requests": args.requests,
            "records_per_batch": args.records, "record_size": args.record_size,
            "batch_bytes": batch_bytes,
            "instructions_per_request": results, "split_per_request": split}
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()

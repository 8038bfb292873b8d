#!/usr/bin/env python3
"""Soak driver behind scripts/soak.sh (issue 14, "Soak").

One Ringtail broker (2 shards on this machine's cores) under, at once:
- produce: `ringtail bench produce` (acks=all, 1 KiB records, 8 partitions) at half of the
  machine's maximum acks=all produce rate (measured first for 20 s on the same broker, or given
  with --max-mb-s);
- fetch and group traffic: two confluent-kafka consumers in group `soak-group` reading that topic
  (auto-commit every 5 s, heartbeats), plus a third member that joins for 20 s every 60 s and
  leaves (two rebalances a minute);
- a well-behaved probe: a confluent-kafka producer, acks=all, linger.ms=0, 100 records/s of 1 KiB
  to its own topic, latency from each record's intended send time to its acknowledgement.

Every 10 s one CSV row: the probe's p50/p99/max latency in that window, the broker's RSS, CPU
time, open fds and data-dir size, the consumers' records/s, the load generator's last periodic
line, the load average. At the end: an SVG plot and summary.md. All bounded: the run stops after
--duration plus at most a few minutes of set-up and teardown, and kills what it started.
"""

import argparse
import csv
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE_S = 10.0
RECORD_SIZE = 1024
PARTITIONS = 8
TOPIC = "soak"
PROBE_TOPIC = "soak-probe"
GROUP = "soak-group"
PROBE_RATE = 100  # records/s
BROKER_SETTINGS = {
    # Bounded disk over an hour at tens of MB/s: 8 partitions x (256 MiB + one 32 MiB segment).
    "log.segment.bytes": str(32 * 1024 * 1024),
    "log.retention.bytes": str(256 * 1024 * 1024),
    "log.retention.check.interval.ms": "5000",
    "ringtail.http.listener": "",
    "group.initial.rebalance.delay.ms": "0",
}


def parse_duration(text):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h)?", text.strip())
    if not match:
        raise SystemExit(f"soak: DURATION {text!r}: seconds, or 90s / 10m / 1h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def wait_port(port, timeout_s, process):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"soak: broker exited with {process.returncode} during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"soak: broker not listening on {port} after {timeout_s}s")


def proc_sample(pid):
    """(rss_kib, cpu_s, fds) of process `pid` from /proc."""
    rss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, cpu_s, fds


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[index]


# ----- consumers (own processes, so the GIL does not couple them to the probe) -----

def consumer_main(bootstrap, stop_at, records, rebalances, churn):
    from confluent_kafka import Consumer
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while time.time() < stop_at:
        consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
            "enable.auto.commit": True, "auto.commit.interval.ms": 5000,
            "session.timeout.ms": 30000, "client.id": "soak-churn" if churn else "soak-consumer",
        })

        def on_assign(_consumer, _partitions):
            with rebalances.get_lock():
                rebalances.value += 1

        consumer.subscribe([TOPIC], on_assign=on_assign)
        member_until = min(stop_at, time.time() + (20 if churn else 1e9))
        while time.time() < member_until:
            batch = consumer.consume(num_messages=5000, timeout=0.5)
            if batch:
                with records.get_lock():
                    records.value += sum(1 for m in batch if m.error() is None)
        consumer.close()  # LeaveGroup
        if churn:
            time.sleep(max(0.0, min(40.0, stop_at - time.time())))
        else:
            break


# ----- plot (plain SVG: no plotting library in the venv) -----

def svg_plot(rows, path, title):
    width, height, left, right, top, gap = 900, 560, 70, 20, 40, 50
    panel_h = (height - top - gap - 40) / 2
    minutes = [r["elapsed_s"] / 60.0 for r in rows]
    x_max = max(minutes) if minutes else 1.0
    panels = [
        ("probe p99 latency (ms)", [r["probe_p99_ms"] for r in rows], "#c0392b"),
        ("broker RSS (MiB)", [r["broker_rss_kib"] / 1024.0 for r in rows], "#2c3e50"),
    ]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    for index, (label, values, colour) in enumerate(panels):
        y0 = top + index * (panel_h + gap)
        finite = [v for v in values if v == v]
        y_max = max(finite) * 1.15 if finite else 1.0
        y_max = y_max or 1.0
        plot_w = width - left - right

        def xy(minute, value):
            return (left + minute / (x_max or 1.0) * plot_w,
                    y0 + panel_h - value / y_max * panel_h)

        out.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" '
                   f'fill="none" stroke="#999"/>')
        out.append(f'<text x="{left}" y="{y0 - 6}">{label}</text>')
        for tick in range(5):
            value = y_max * tick / 4
            _, y = xy(0, value)
            out.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                       f'stroke="#eee"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.0f}</text>')
        step = max(1, int(x_max / 6) or 1)
        for tick in range(0, int(x_max) + 1, step):
            x, _ = xy(tick, 0)
            out.append(f'<text x="{x:.1f}" y="{y0 + panel_h + 15}" text-anchor="middle">'
                       f'{tick} min</text>')
        points = " ".join(f"{xy(m, v)[0]:.1f},{xy(m, v)[1]:.1f}"
                          for m, v in zip(minutes, values) if v == v)
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def slope_per_hour(rows, key):
    xs = [r["elapsed_s"] / 3600.0 for r in rows]
    ys = [r[key] for r in rows]
    if len(xs) < 3:
        return float("nan")
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var if var else float("nan")


def git(*args):
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", required=True)
    parser.add_argument("--port", type=int, default=19850)
    parser.add_argument("--max-mb-s", type=float)
    parser.add_argument("--out", required=True)
    parser.add_argument("--bin", required=True)
    args = parser.parse_args()
    duration_s = parse_duration(args.duration)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ringtail-soak-"))
    binary = work / "ringtail"
    shutil.copy2(args.bin, binary)
    bootstrap = f"127.0.0.1:{args.port}"
    started = []  # (name, Popen | Process)
    load_at_start = os.getloadavg()
    commit = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))

    broker_cmd = [str(binary), "serve", "--listeners", f"PLAINTEXT://{bootstrap}",
                  "--log-dirs", str(work / "data"), "--shards", str(len(os.sched_getaffinity(0)))]
    for key, value in BROKER_SETTINGS.items():
        broker_cmd += ["--set", f"{key}={value}"]
    broker_log = open(out / "broker.log", "wb")
    env = dict(os.environ, RUST_LOG="warn", NO_COLOR="1")
    broker = subprocess.Popen(broker_cmd, stdout=broker_log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    started.append(("broker", broker))

    def stop_all():
        for name, thing in reversed(started):
            if isinstance(thing, subprocess.Popen):
                if thing.poll() is None:
                    thing.send_signal(signal.SIGTERM)
                    try:
                        thing.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        thing.kill()
                        thing.wait(timeout=10)
            else:
                thing.join(timeout=15)
                if thing.is_alive():
                    thing.kill()
                    thing.join(timeout=5)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    rows = []
    notes = []
    try:
        wait_port(args.port, 30, broker)
        bench = [str(binary), "bench", "produce", "--bootstrap-server", bootstrap,
                 "--record-size", str(RECORD_SIZE), "--no-results", "--no-progress",
                 "--producer-props", "acks=all", "linger.ms=5", "batch.size=65536"]
        if args.max_mb_s:
            max_mb = args.max_mb_s
            max_source = f"given with --max-mb-s {max_mb}"
        else:
            with open(out / "bench-max.log", "w") as log:
                subprocess.run(bench[:3] + ["--topic", "soak-max", "--partitions", str(PARTITIONS),
                                            "--duration", "20", "--throughput", "-1"] + bench[3:],
                               stdout=log, stderr=subprocess.STDOUT, timeout=120, check=True)
            last = (out / "bench-max.log").read_text().strip().splitlines()[-1]
            max_mb = float(re.search(r"\(([\d.]+) MB/sec\)", last).group(1))
            max_source = (f"measured at start: `ringtail bench produce` acks=all, 8 partitions, "
                          f"1 KiB, 20 s, unlimited, on this broker: {last}")
            subprocess.run([str(binary), "topic", "delete", "-b", bootstrap, "soak-max"],
                           capture_output=True, timeout=60)
        target_mb = max_mb / 2
        target_rps = int(target_mb * 1024 * 1024 / RECORD_SIZE)
        stop_at = time.time() + duration_s
        with open(out / "bench-load.log", "w") as log:
            load = subprocess.Popen(
                bench[:3] + ["--topic", TOPIC, "--partitions", str(PARTITIONS),
                             "--topic-config", f"retention.bytes={256 * 1024 * 1024}",
                             "--duration", f"{int(duration_s)}", "--throughput", str(target_rps),
                             "--reporting-interval-ms", "10000"] + bench[3:],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        started.append(("load", load))
        time.sleep(3)  # the topic exists before the consumers subscribe

        records = multiprocessing.Value("q", 0)
        rebalances = multiprocessing.Value("q", 0)
        for churn in (False, False, True):
            process = multiprocessing.Process(
                target=consumer_main, args=(bootstrap, stop_at, records, rebalances, churn),
                daemon=True)
            process.start()
            started.append(("consumer", process))

        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(PROBE_TOPIC, 1, 1)]).values():
            future.result(timeout=30)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                             "enable.idempotence": True, "client.id": "soak-probe"})
        latencies, errors = [], [0]
        value = b"p" * RECORD_SIZE

        def delivered(intended):
            def callback(error, _message):
                if error is not None:
                    errors[0] += 1
                else:
                    latencies.append((time.monotonic() - intended) * 1000.0)
            return callback

        csv_file = open(out / "soak.csv", "w", newline="")
        fields = ["elapsed_s", "unix_time", "probe_sent", "probe_acked", "probe_errors",
                  "probe_p50_ms", "probe_p99_ms", "probe_max_ms", "broker_rss_kib",
                  "broker_cpu_pct", "broker_fds", "data_dir_mib", "consumed_records_per_s",
                  "group_assignments", "load_records_per_s", "load_avg_ms", "load_max_ms",
                  "loadavg_1m"]
        writer = csv.DictWriter(csv_file, fieldnames=fields)
        writer.writeheader()
        t0 = time.monotonic()
        next_send = t0
        next_sample = t0 + SAMPLE_S
        sent = 0
        last_cpu = proc_sample(broker.pid)[1]
        last_records = 0
        period = 1.0 / PROBE_RATE
        while time.time() < stop_at:
            now = time.monotonic()
            while next_send <= now:
                producer.produce(PROBE_TOPIC, value, on_delivery=delivered(next_send))
                sent += 1
                next_send += period
            producer.poll(max(0.0, min(next_send, next_sample) - time.monotonic()))
            if time.monotonic() >= next_sample:
                if broker.poll() is not None:
                    notes.append(f"broker exited with {broker.returncode} at "
                                 f"{time.monotonic() - t0:.0f} s")
                    break
                window, latencies[:] = list(latencies), []
                rss, cpu, fds = proc_sample(broker.pid)
                load_line = ""
                for line in (out / "bench-load.log").read_text(errors="replace").splitlines():
                    if "records sent" in line:
                        load_line = line
                numbers = re.findall(r"([\d.]+) (?:records/sec|ms avg latency|ms max latency)",
                                     load_line)
                with records.get_lock():
                    consumed = records.value
                row = {
                    "elapsed_s": round(now - t0, 1), "unix_time": int(time.time()),
                    "probe_sent": sent, "probe_acked": len(window), "probe_errors": errors[0],
                    "probe_p50_ms": round(percentile(window, 50), 2),
                    "probe_p99_ms": round(percentile(window, 99), 2),
                    "probe_max_ms": round(max(window) if window else float("nan"), 2),
                    "broker_rss_kib": rss,
                    "broker_cpu_pct": round((cpu - last_cpu) / SAMPLE_S * 100, 1),
                    "broker_fds": fds, "data_dir_mib": round(dir_bytes(work / "data") / 2**20),
                    "consumed_records_per_s": round((consumed - last_records) / SAMPLE_S),
                    "group_assignments": rebalances.value,
                    "load_records_per_s": float(numbers[0]) if len(numbers) > 0 else "",
                    "load_avg_ms": float(numbers[1]) if len(numbers) > 1 else "",
                    "load_max_ms": float(numbers[2]) if len(numbers) > 2 else "",
                    "loadavg_1m": os.getloadavg()[0],
                }
                last_cpu, last_records = cpu, consumed
                writer.writerow(row)
                csv_file.flush()
                rows.append(row)
                next_sample += SAMPLE_S
        producer.flush(30)
        csv_file.close()
        del producer, admin  # their threads stop before the broker does
    except KeyboardInterrupt as interrupt:
        notes.append(f"interrupted ({interrupt}) after {len(rows)} samples")
    finally:
        alive_at_end = broker.poll() is None
        stop_all()
        broker_log.close()
        shutil.rmtree(work, ignore_errors=True)

    if not rows:
        print("soak: no samples", file=sys.stderr)
        return 1
    load_at_end = os.getloadavg()
    title = f"Ringtail soak, {duration_s / 60:.0f} min, commit {commit[:7]}"
    svg_plot(rows, out / "soak.svg", title)
    steady = [r for r in rows if r["elapsed_s"] >= 120] or rows
    tenth = max(1, len(steady) // 10)
    first, last = steady[:tenth], steady[-tenth:]

    def med(sample, key):
        return statistics.median(r[key] for r in sample if r[key] == r[key])

    p99_slope = slope_per_hour([r for r in steady if r["probe_p99_ms"] == r["probe_p99_ms"]],
                               "probe_p99_ms")
    rss_slope = slope_per_hour(steady, "broker_rss_kib") / 1024.0
    summary = {
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "machine": f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
                   f"kernel {os.uname().release}",
        "command": "scripts/soak.sh " + " ".join(sys.argv[1:]),
        "duration_s": duration_s, "samples": len(rows),
        "max_source": max_source, "max_mb_s": max_mb, "target_mb_s": round(target_mb, 1),
        "target_records_per_s": target_rps,
        "load_average_start": load_at_start, "load_average_end": load_at_end,
        "loadavg_1m_median": statistics.median(r["loadavg_1m"] for r in rows),
        "probe_p99_ms_first_tenth_median": med(first, "probe_p99_ms"),
        "probe_p99_ms_last_tenth_median": med(last, "probe_p99_ms"),
        "probe_p99_ms_max_window": max(r["probe_p99_ms"] for r in rows),
        "probe_p99_slope_ms_per_hour": round(p99_slope, 2),
        "rss_mib_first_tenth_median": round(med(first, "broker_rss_kib") / 1024, 1),
        "rss_mib_last_tenth_median": round(med(last, "broker_rss_kib") / 1024, 1),
        "rss_mib_max": round(max(r["broker_rss_kib"] for r in rows) / 1024, 1),
        "rss_slope_mib_per_hour": round(rss_slope, 1),
        "probe_errors": rows[-1]["probe_errors"],
        "consumed_records_per_s_median": statistics.median(
            r["consumed_records_per_s"] for r in steady),
        "group_assignments": rows[-1]["group_assignments"],
        "broker_alive_at_end": alive_at_end, "notes": notes,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# Soak {time.strftime('%Y-%m-%d', time.gmtime())}", ""]
    lines += [f"- **{key}**: {value}" for key, value in summary.items()]
    lines += ["", "Series: `soak.csv` (one row per 10 s), plot: `soak.svg`; the load generator's "
              "and the broker's logs beside them. The machine is shared with other work: "
              "`loadavg_1m` in each row says how busy it was."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if alive_at_end else 1


if __name__ == "__main__":
    sys.exit(main())

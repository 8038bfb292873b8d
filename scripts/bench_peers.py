#!/usr/bin/env python3
"""Rows and the side-by-side table of scripts/bench.sh (both load generators, every broker).

    bench_peers.py row --out DIR --workload W --broker B --generator G --kind K --source FILE
        --format F [--record-size N] [--cpu-ticks T] [--peak-rss-kib K] [--status S] [--reason R]
    bench_peers.py summary --out DIR [--baseline NAME]

`row` reads one run's output and appends one JSON line to DIR/rows.jsonl. Formats:
  ringtail-json          a `ringtail bench` result file (produce, consume or e2e)
  producer-performance   the last line of org.apache.kafka.tools.ProducerPerformance
  producer-performance-many  several ProducerPerformance logs (--source is a glob), summed
  consumer-performance   the CSV line of org.apache.kafka.tools.ConsumerPerformance
  end-to-end-latency     org.apache.kafka.tools.EndToEndLatency's final lines
  none                   no run (--status n/a or failed with --reason)
CPU seconds per GiB: the broker's utime+stime (clock ticks, /proc/PID/stat) across the run
divided by the GiB of record values the run moved (produced, or consumed for consume rows).

`summary` writes DIR/summary-peers.md: per workload and load generator, every broker's MB/s,
p99 latency, broker CPU-s/GiB and peak RSS, and each as a ratio to the baseline broker (the
first whose name starts with "kafka" unless --baseline).
"""

import argparse
import glob
import json
import os
import re
import sys
import time

GIB = float(1 << 30)
MIB = float(1 << 20)

PERF_LINE = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>[\d.]+) ms 50th, "
    r"(?P<p95>[\d.]+) ms 95th, (?P<p99>[\d.]+) ms 99th, (?P<p999>[\d.]+) ms 99.9th"
)


def producer_performance(path, record_size):
    text = open(path, errors="replace").read()
    matches = list(PERF_LINE.finditer(text))
    if not matches:
        raise ValueError(f"no ProducerPerformance summary line in {path}")
    m = matches[-1]
    records = int(m["records"])
    return {
        "records": records,
        "records_per_sec": float(m["rate"]),
        "mb_per_sec": float(m["mb"]),
        "value_bytes": records * record_size,
        "p50_ms": float(m["p50"]),
        "p99_ms": float(m["p99"]),
        "p999_ms": float(m["p999"]),
        "max_ms": float(m["max"]),
    }


def producer_performance_many(pattern, record_size):
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise ValueError(f"no logs match {pattern}")
    runs = [producer_performance(p, record_size) for p in paths]
    records = sum(r["records"] for r in runs)
    value_bytes = sum(r["value_bytes"] for r in runs)
    # The processes start staggered (JVM start-up), so the figure is all their values over the
    # wall time from the first start to the last exit (span.txt beside the logs): a lower bound.
    # The sum of each process's own rate (an upper bound) is kept beside it.
    span = [float(t) for t in open(os.path.join(os.path.dirname(pattern), "span.txt")).read().split()]
    wall_s = span[-1] - span[0]
    return {
        "records": records,
        "records_per_sec": records / wall_s,
        "mb_per_sec": value_bytes / MIB / wall_s,
        "wall_s": wall_s,
        "sum_of_process_mb_per_sec": sum(r["mb_per_sec"] for r in runs),
        "value_bytes": value_bytes,
        # Per-process percentiles cannot be merged exactly: the median p50, the worst p99.
        "p50_ms": sorted(r["p50_ms"] for r in runs)[len(runs) // 2],
        "p99_ms": max(r["p99_ms"] for r in runs),
        "p999_ms": max(r["p999_ms"] for r in runs),
        "max_ms": max(r["max_ms"] for r in runs),
        "processes": len(runs),
    }


def consumer_performance(path):
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
    for line in reversed(open(path, errors="replace").read().splitlines()):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 6 and re.match(r"\d{4}-\d\d-\d\d", cells[0]):
            mb, records = float(cells[2]), int(cells[4])
            figures = {
                "records": records,
                "records_per_sec": float(cells[5]),
                "mb_per_sec": float(cells[3]),
                "value_bytes": int(mb * MIB),
            }
            if len(cells) >= 10:
                # fetch.MB.sec / fetch.nMsg.sec exclude the group join (rebalance.time.ms), which
                # ringtail bench consume (assign, no group) does not have: those are the figures.
                figures["mb_per_sec_with_join"] = figures["mb_per_sec"]
                figures["mb_per_sec"] = float(cells[8])
                figures["records_per_sec"] = float(cells[9])
            return figures
    raise ValueError(f"no ConsumerPerformance result line in {path}")


def end_to_end_latency(path, record_size, records_hint):
    text = open(path, errors="replace").read()
    avg = re.search(r"Avg latency: ([\d.]+) ms", text)
    pct = re.search(r"Percentiles: 50th = ([\d.]+), 99th = ([\d.]+), 99\.9th = ([\d.]+)", text)
    if not (avg and pct):
        raise ValueError(f"no EndToEndLatency result in {path}")
    return {
        "records": records_hint,
        "value_bytes": records_hint * record_size,
        "e2e_avg_ms": float(avg[1]),
        "e2e_p50_ms": float(pct[1]),
        "e2e_p99_ms": float(pct[2]),
        "e2e_p999_ms": float(pct[3]),
    }


def ringtail_json(path):
    j = json.load(open(path))
    kind, f = j["kind"], j["figures"]
    if kind == "consume":
        return {
            "records": f["records"],
            "records_per_sec": f["records_per_sec"],
            "mb_per_sec": f["mb_per_sec"],
            "value_bytes": f["bytes"],
        }
    p = f["produce"]
    figures = {
        "records": p["records"],
        "records_per_sec": p["records_per_sec"],
        "mb_per_sec": p["mb_per_sec"],
        "value_bytes": p["bytes"],
        "p50_ms": p["latency_p50_ms"],
        "p99_ms": p["latency_p99_ms"],
        "p999_ms": p["latency_p999_ms"],
        "max_ms": p["latency_max_ms"],
    }
    if "e2e" in f:
        e = f["e2e"]
        figures.update(e2e_avg_ms=e["latency_avg_ms"], e2e_p50_ms=e["latency_p50_ms"],
                       e2e_p99_ms=e["latency_p99_ms"], e2e_p999_ms=e["latency_p999_ms"])
    return figures


def cmd_row(a):
    row = {"workload": a.workload, "broker": a.broker, "generator": a.generator, "kind": a.kind,
           "status": a.status, "reason": a.reason, "source": os.path.basename(a.source or ""),
           "load_average": open("/proc/loadavg").read().split()[:3], "timestamp_unix_s": int(time.time())}
    if a.status == "ok":
        try:
            if a.format == "ringtail-json":
                row.update(ringtail_json(a.source))
            elif a.format == "producer-performance":
                row.update(producer_performance(a.source, a.record_size))
            elif a.format == "producer-performance-many":
                row.update(producer_performance_many(a.source, a.record_size))
            elif a.format == "consumer-performance":
                row.update(consumer_performance(a.source))
            elif a.format == "end-to-end-latency":
                row.update(end_to_end_latency(a.source, a.record_size, a.records))
            else:
                raise ValueError(f"unknown format {a.format}")
        except (OSError, ValueError, KeyError) as e:
            row.update(status="failed", reason=f"unreadable result: {e}")
    if a.cpu_ticks is not None:
        row["broker_cpu_s"] = a.cpu_ticks / os.sysconf("SC_CLK_TCK")
        if row.get("value_bytes"):
            row["broker_cpu_s_per_gib"] = row["broker_cpu_s"] / (row["value_bytes"] / GIB)
    if a.peak_rss_kib is not None:
        row["broker_peak_rss_mib"] = a.peak_rss_kib / 1024.0
    with open(os.path.join(a.out, "rows.jsonl"), "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
    shown = {k: row[k] for k in ("mb_per_sec", "p99_ms", "e2e_p99_ms", "broker_cpu_s_per_gib",
                                 "broker_peak_rss_mib") if k in row}
    print(f"   {a.generator}: {row['status']} {row['reason']} "
          + " ".join(f"{k}={v:.2f}" for k, v in shown.items()), file=sys.stderr)


WORKLOAD_ORDER = ["throughput", "durable", "small", "latency", "compressed-lz4", "compressed-zstd",
                  "fetch-load", "fetch", "partitions", "many-producers", "keyed", "e2e"]


def fmt(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio(value, base):
    if value is None or not base:
        return ""
    return f" ({value / base:.2f}×)"


def cmd_summary(a):
    path = os.path.join(a.out, "rows.jsonl")
    rows = [json.loads(line) for line in open(path) if line.strip()]
    brokers = []
    for r in rows:
        if r["broker"] not in brokers:
            brokers.append(r["broker"])
    baseline = a.baseline or next((b for b in brokers if b.startswith("kafka")), brokers[0])
    latest = {}
    for r in rows:  # a later row for the same cell replaces an earlier one (a rerun)
        latest[(r["workload"], r["generator"], r["broker"])] = r
    keys = sorted({(w, g) for (w, g, _) in latest},
                  key=lambda k: (WORKLOAD_ORDER.index(k[0]) if k[0] in WORKLOAD_ORDER else 99, k))
    md = [f"# {a.title}", "",
          f"Ratios in parentheses are to **{baseline}** (same workload, same load generator). "
          "MB/s is MiB/s of record values; p99 is produce latency (e2e rows: end-to-end); "
          "CPU-s/GiB is the broker process's utime+stime per GiB of record values; RSS is the "
          "broker's peak resident set sampled during the run (VmRSS every 0.2 s).", ""]
    footnotes = []
    header = "| workload | load generator | " + " | ".join(brokers) + " |"
    md += [header, "|---|---|" + "---|" * len(brokers)]
    for workload, generator in keys:
        base = latest.get((workload, generator, baseline), {})
        cells = []
        for b in brokers:
            r = latest.get((workload, generator, b))
            if r is None:
                cells.append("–")
                continue
            if r["status"] != "ok":
                if r["reason"] not in footnotes:
                    footnotes.append(r["reason"])
                cells.append(f"{r['status']} [{footnotes.index(r['reason']) + 1}]")
                continue
            base_ok = base if base.get("status") == "ok" else {}
            p99_key = "e2e_p99_ms" if "e2e_p99_ms" in r else "p99_ms"
            parts = []
            if r.get("mb_per_sec") is not None:
                parts.append(f"{fmt(r['mb_per_sec'])} MB/s{ratio(r['mb_per_sec'], base_ok.get('mb_per_sec'))}")
            if r.get(p99_key) is not None:
                parts.append(f"p99 {fmt(r[p99_key], 1)} ms{ratio(r[p99_key], base_ok.get(p99_key))}")
            if r.get("broker_cpu_s_per_gib") is not None:
                parts.append(f"{fmt(r['broker_cpu_s_per_gib'], 2)} CPU-s/GiB"
                             f"{ratio(r['broker_cpu_s_per_gib'], base_ok.get('broker_cpu_s_per_gib'))}")
            if r.get("broker_peak_rss_mib") is not None:
                parts.append(f"RSS {fmt(r['broker_peak_rss_mib'], 0)} MiB"
                             f"{ratio(r['broker_peak_rss_mib'], base_ok.get('broker_peak_rss_mib'))}")
            cells.append("<br>".join(parts))
        md.append(f"| {workload} | {generator} | " + " | ".join(cells) + " |")
    md.append("")
    for i, reason in enumerate(footnotes):
        md.append(f"[{i + 1}] {reason}".replace("|", "/") + "  ")
    if footnotes:
        md.append("")
    subject = a.subject
    kafkas = [b for b in brokers if b.startswith("kafka")]
    if subject in brokers and kafkas:
        md += [f"## {subject} as a ratio to Apache Kafka", "",
               "Above 1 is better for MB/s, below 1 is better for p99, CPU-s/GiB and RSS.", ""]
        metrics = [("MB/s", "mb_per_sec"), ("p99", None), ("CPU-s/GiB", "broker_cpu_s_per_gib"),
                   ("RSS", "broker_peak_rss_mib")]
        md.append("| workload | load generator | " + " | ".join(
            f"{label} vs {k}" for label, _ in metrics for k in kafkas) + " |")
        md.append("|---|---|" + "---:|" * (len(metrics) * len(kafkas)))
        for workload, generator in keys:
            r = latest.get((workload, generator, subject), {})
            if r.get("status") != "ok":
                continue
            p99_key = "e2e_p99_ms" if "e2e_p99_ms" in r else "p99_ms"
            cells = []
            for label, key in metrics:
                key = key or p99_key
                for k in kafkas:
                    base = latest.get((workload, generator, k), {})
                    ok = base.get("status") == "ok" and base.get(key) and r.get(key) is not None
                    cells.append(f"{r[key] / base[key]:.2f}" if ok else "–")
            md.append(f"| {workload} | {generator} | " + " | ".join(cells) + " |")
        md.append("")
    loads = [float(r["load_average"][0]) for r in rows if r.get("load_average")]
    if loads:
        md.append(f"Load average (1 min) at the end of each row: {min(loads)} to {max(loads)} on "
                  f"{os.cpu_count()} cores; the machine is shared with other agents, so figures "
                  "are noisy and fractions of what was free.")
        md.append("")
    for note in a.note:
        md += [note, ""]
    out = os.path.join(a.out, "summary-peers.md")
    open(out, "w").write("\n".join(md))
    print(f"summary: {out}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("row")
    r.add_argument("--out", required=True)
    r.add_argument("--workload", required=True)
    r.add_argument("--broker", required=True)
    r.add_argument("--generator", required=True)
    r.add_argument("--kind", required=True)
    r.add_argument("--source", default="")
    r.add_argument("--format", default="none")
    r.add_argument("--record-size", type=int, default=1024)
    r.add_argument("--records", type=int, default=0)
    r.add_argument("--cpu-ticks", type=int)
    r.add_argument("--peak-rss-kib", type=int)
    r.add_argument("--status", default="ok", choices=["ok", "failed", "n/a"])
    r.add_argument("--reason", default="")
    s = sub.add_parser("summary")
    s.add_argument("--out", required=True)
    s.add_argument("--baseline")
    s.add_argument("--subject", default="ringtail", help="broker of the ratio table (default ringtail)")
    s.add_argument("--title", default="Brokers side by side, both load generators")
    s.add_argument("--note", action="append", default=[])
    a = p.parse_args()
    (cmd_row if a.command == "row" else cmd_summary)(a)


if __name__ == "__main__":
    main()

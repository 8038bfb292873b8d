//! Shared by the criterion benches: short settings for a shared 2-core machine, and a summary
//! file per bench under `results/criterion/` naming the commit, CPU and kernel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;
use ringtail_bench::report::MachineInfo;
use serde_json::{json, Value};

/// Criterion with short warm-up and measurement, overridable from the command line.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("criterion")
}

fn find_benchmarks(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "new") && path.join("estimates.json").exists()
            {
                out.push(path);
            } else if path
                .file_name()
                .is_none_or(|n| n != "base" && n != "report" && n != "change")
            {
                find_benchmarks(&path, out);
            }
        }
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Collects criterion's estimates for `groups` and writes `results/criterion/<name>.json` and
/// `.md` with the machine's identity: mean time per iteration and, where a throughput was set,
/// MiB/s or elements/s.
pub fn write_summary(name: &str, groups: &[&str]) {
    let mut rows = Vec::new();
    for group in groups {
        let mut found = Vec::new();
        find_benchmarks(&criterion_dir().join(group), &mut found);
        found.sort();
        for dir in found {
            let (Some(benchmark), Some(estimates)) = (
                read_json(&dir.join("benchmark.json")),
                read_json(&dir.join("estimates.json")),
            ) else {
                continue;
            };
            let mean_ns = estimates["mean"]["point_estimate"]
                .as_f64()
                .unwrap_or(f64::NAN);
            let id = benchmark["full_id"].as_str().unwrap_or("?").to_string();
            let throughput = &benchmark["throughput"];
            let (rate, unit) = if let Some(bytes) = throughput.get("Bytes").and_then(Value::as_f64)
            {
                (bytes / (mean_ns / 1e9) / (1024.0 * 1024.0), "MiB/s")
            } else if let Some(elements) = throughput.get("Elements").and_then(Value::as_f64) {
                (elements / (mean_ns / 1e9), "elements/s")
            } else {
                (f64::NAN, "")
            };
            rows.push(json!({ "id": id, "mean_ns": mean_ns, "throughput": rate, "unit": unit }));
        }
    }
    let machine = MachineInfo::detect();
    let dir = Path::new("results/criterion");
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return;
    }
    let command: Vec<String> = std::env::args().collect();
    let summary =
        json!({ "bench": name, "command": command.join(" "), "machine": machine, "results": rows });
    let _ = std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    );
    let mut md = format!(
        "# criterion: {name}\n\nCommit {} · {} · {} cores · kernel {}\n\n| benchmark | mean | throughput |\n|---|---:|---:|\n",
        machine.commit.as_deref().unwrap_or("?"),
        machine.cpu_model.as_deref().unwrap_or("?"),
        machine.cores,
        machine.kernel.as_deref().unwrap_or("?")
    );
    for row in &rows {
        let mean_ns = row["mean_ns"].as_f64().unwrap_or(f64::NAN);
        let mean = if mean_ns >= 1e6 {
            format!("{:.2} ms", mean_ns / 1e6)
        } else if mean_ns >= 1e3 {
            format!("{:.2} µs", mean_ns / 1e3)
        } else {
            format!("{mean_ns:.0} ns")
        };
        let rate = row["throughput"]
            .as_f64()
            .filter(|r| r.is_finite())
            .map_or(String::new(), |r| {
                format!("{r:.1} {}", row["unit"].as_str().unwrap_or(""))
            });
        md += &format!(
            "| {} | {mean} | {rate} |\n",
            row["id"].as_str().unwrap_or("?")
        );
    }
    let _ = std::fs::write(dir.join(format!("{name}.md")), md);
    eprintln!("summary: results/criterion/{name}.md");
}

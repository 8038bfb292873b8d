//! Result files: the machine's identity, a JSON record of every setting and figure, a latency
//! percentile plot (SVG), and the markdown summary of a results folder.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde_json::{json, Value};

/// Why a result file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// File system error.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Plotting failed.
    #[error("plotting {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
    /// A result file was not the JSON this tool writes.
    #[error("reading {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// The machine and build a figure was measured on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MachineInfo {
    /// `git rev-parse HEAD`, when available.
    pub commit: Option<String>,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: Option<String>,
    /// `uname -r`.
    pub kernel: Option<String>,
    /// Online CPUs.
    pub cores: usize,
    /// Total memory in bytes, from /proc/meminfo.
    pub memory_bytes: Option<u64>,
}

impl MachineInfo {
    /// Reads the machine's identity; missing pieces are `None`.
    pub fn detect() -> MachineInfo {
        let command = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string());
        let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        });
        MachineInfo {
            commit: command("git", &["rev-parse", "HEAD"]),
            cpu_model,
            kernel: command("uname", &["-r"]),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
        }
    }
}

/// Percentiles stored in result files and plotted.
pub const PLOT_PERCENTILES: &[f64] = &[
    0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// `[percentile, latency ms]` pairs of `histogram` (microseconds) at `PLOT_PERCENTILES`.
pub fn percentile_table(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    PLOT_PERCENTILES
        .iter()
        .map(|&p| (p, histogram.value_at_percentile(p) as f64 / 1000.0))
        .collect()
}

/// Writes `result` as `<dir>/<name>.json` and returns the path.
pub fn write_json(dir: &Path, name: &str, result: &Value) -> Result<PathBuf, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        op: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(result).expect("serde_json::Value always serializes");
    std::fs::write(&path, text + "\n").map_err(|source| ReportError::Io {
        op: "writing",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Draws latency-by-percentile curves (x: percentile on a "number of nines" scale, y: ms) into
/// an SVG file, one curve per `(label, [(percentile, ms)])` series.
pub fn plot_percentiles(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), ReportError> {
    let plot_error = |reason: String| ReportError::Plot {
        path: path.to_path_buf(),
        reason,
    };
    // x = -log10(1 - p/100), capped at 5 nines so p100 sits at the right edge.
    let nines = |p: f64| -(1.0 - (p / 100.0).min(0.99999)).log10();
    let y_max = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|&(_, ms)| ms))
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.1;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(25)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..5f64, 0f64..y_max)
        .map_err(|e| plot_error(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(6)
        .x_label_formatter(&|x| match x.round() as i32 {
            0 => "0%".to_string(),
            1 => "90%".to_string(),
            2 => "99%".to_string(),
            3 => "99.9%".to_string(),
            4 => "99.99%".to_string(),
            _ => "99.999%".to_string(),
        })
        .draw()
        .map_err(|e| plot_error(e.to_string()))?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(p, ms)| (nines(p), ms)),
                color.stroke_width(2),
            ))
            .map_err(|e| plot_error(e.to_string()))?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| plot_error(e.to_string()))?;
    root.present().map_err(|e| plot_error(e.to_string()))?;
    Ok(())
}

/// One labelled latency curve: `(label, [(percentile, ms)])`.
type Series = (String, Vec<(f64, f64)>);

/// Row order of the summary: scripts/bench.sh's workloads as the issue lists them.
const WORKLOAD_ORDER: &[&str] = &[
    "throughput",
    "durable",
    "small",
    "latency",
    "compressed-lz4",
    "compressed-zstd",
    "fetch-load",
    "fetch",
    "partitions",
    "e2e",
];

/// A result file with its parsed JSON.
struct ResultFile {
    json: Value,
}

fn read_results(dir: &Path) -> Result<Vec<ResultFile>, ReportError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ReportError::Io {
        op: "listing",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io {
            op: "reading",
            path: path.clone(),
            source,
        })?;
        let json: Value = serde_json::from_str(&text).map_err(|e| ReportError::Parse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if json.get("kind").is_some() {
            files.push(ResultFile { json });
        }
    }
    Ok(files)
}

fn f(v: &Value, path: &[&str]) -> Option<f64> {
    let mut v = v;
    for key in path {
        v = v.get(key)?;
    }
    v.as_f64()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut v = v;
    for key in path {
        match v.get(key) {
            Some(next) => v = next,
            None => return "",
        }
    }
    v.as_str().unwrap_or("")
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or("–".to_string(), |x| format!("{x:.decimals$}"))
}

/// A short description of a run's settings: kind, acks, partitions, record size, payload, codec.
fn setup_cell(kind: &str, settings: &Value) -> String {
    let mut parts = vec![kind.to_string()];
    if let Some(acks) = settings["producer"]["acks"].as_str() {
        parts.push(match acks {
            "None" => "acks=0".to_string(),
            "Leader" => "acks=1".to_string(),
            _ => "acks=all".to_string(),
        });
    }
    if let Some(partitions) = settings["partitions"].as_u64() {
        parts.push(format!("{partitions} p"));
    }
    // The transactional workload (`bench txn`).
    if let Some(per_txn) = settings["records_per_transaction"].as_u64() {
        parts.push(format!("{per_txn} rec/txn"));
    }
    if let Some(size) = settings["load"]["record_size"].as_u64() {
        parts.push(format!("{size} B"));
    }
    if let Some(payload) = settings["load"]["payload"]
        .as_str()
        .filter(|p| *p != "random")
    {
        parts.push(payload.to_string());
    }
    if let Some(codec) = settings["producer"]["compression"]
        .as_str()
        .filter(|c| *c != "none")
    {
        parts.push(codec.to_string());
    }
    if let Some(rate) = settings["load"]["throughput"].as_f64().filter(|r| *r > 0.0) {
        parts.push(format!("{rate:.0} rec/s"));
    }
    parts.join(" · ")
}

/// Writes `<dir>/summary.md` (one table row per result file) and one overlaid latency plot per
/// workload (`<workload>-latency.svg`), and returns the markdown.
pub fn write_summary(dir: &Path, title: &str, notes: &[String]) -> Result<String, ReportError> {
    let mut files = read_results(dir)?;
    sort_by_workload(&mut files);
    let mut md = format!("# {title}\n\n");
    if let Some(first) = files.first() {
        let m = &first.json["machine"];
        md += &format!(
            "Machine: {} · {} cores · kernel {} · commit {}\n\n",
            s(m, &["cpu_model"]),
            m["cores"],
            s(m, &["kernel"]),
            s(m, &["commit"])
        );
    }
    // Machine limits written by scripts/bench.sh, to read each figure as a fraction of them.
    let limits = std::fs::read_to_string(dir.join("machine.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let loopback = limits.as_ref().and_then(|l| f(l, &["loopback_tcp_mib_s"]));
    let disk = limits
        .as_ref()
        .and_then(|l| f(l, &["disk_seq_write_mib_s"]));
    md += "| workload | broker | setup | records | records/s | MB/s | % loopback / disk | p50 ms | p99 ms | p99.9 ms | max ms | e2e p99 ms | notes |\n";
    md += "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
    let mut plots: std::collections::BTreeMap<String, Vec<Series>> = Default::default();
    for file in &files {
        md += &summary_row(&file.json, loopback, disk);
        if let Some((key, series)) = latency_series(&file.json) {
            plots.entry(key).or_default().push(series);
        }
    }
    md += "\nMB = 1024 × 1024 bytes of record values, as kafka-producer-perf-test and kafka-consumer-perf-test count. \
            Latency columns are produce latency (send to acknowledgment) from the intended send time; \
            `% loopback / disk` divides MB/s by the machine's loopback TCP and O_DIRECT sequential write bandwidth (machine.json).\n";
    for note in notes {
        md += &format!("\n{note}\n");
    }
    for (workload, series) in &plots {
        let path = dir.join(format!("{workload}-latency.svg"));
        plot_percentiles(
            &path,
            &format!("{workload}: produce latency by percentile"),
            series,
        )?;
        md += &format!("\n![{workload} latency]({workload}-latency.svg)\n");
    }
    let path = dir.join("summary.md");
    std::fs::write(&path, &md).map_err(|source| ReportError::Io {
        op: "writing",
        path,
        source,
    })?;
    Ok(md)
}

/// Orders result files by workload (as [`WORKLOAD_ORDER`], unknown ones last), then broker.
fn sort_by_workload(files: &mut [ResultFile]) {
    files.sort_by_key(|file| {
        let workload = s(&file.json, &["workload"]);
        let rank = WORKLOAD_ORDER
            .iter()
            .position(|w| *w == workload)
            .unwrap_or(WORKLOAD_ORDER.len());
        (
            rank,
            workload.to_string(),
            s(&file.json, &["broker"]).to_string(),
        )
    });
}

/// The summary table's row for one result file `j`; `loopback` and `disk` are the machine's
/// limits in MiB/s when known.
fn summary_row(j: &Value, loopback: Option<f64>, disk: Option<f64>) -> String {
    let workload = s(j, &["workload"]);
    let broker = s(j, &["broker"]);
    let kind = s(j, &["kind"]);
    let figures = &j["figures"];
    let (records, rate, mb, p50, p99, p999, max) = if kind == "consume" {
        (
            f(figures, &["records"]),
            f(figures, &["records_per_sec"]),
            f(figures, &["mb_per_sec"]),
            None,
            None,
            None,
            None,
        )
    } else {
        let p = &figures["produce"];
        (
            f(p, &["records"]),
            f(p, &["records_per_sec"]),
            f(p, &["mb_per_sec"]),
            f(p, &["latency_p50_ms"]),
            f(p, &["latency_p99_ms"]),
            f(p, &["latency_p999_ms"]),
            f(p, &["latency_max_ms"]),
        )
    };
    let e2e = f(figures, &["e2e", "latency_p99_ms"]);
    let settings = &j["settings"];
    let note = s(settings, &["note"]);
    let setup = setup_cell(kind, settings);
    let fraction = match (mb, loopback, disk) {
        (Some(mb), Some(l), Some(d)) if l > 0.0 && d > 0.0 => {
            format!("{:.0}% / {:.0}%", 100.0 * mb / l, 100.0 * mb / d)
        }
        _ => "–".to_string(),
    };
    format!(
        "| {workload} | {broker} | {setup} | {} | {} | {} | {fraction} | {} | {} | {} | {} | {} | {} |\n",
        cell(records, 0),
        cell(rate, 0),
        cell(mb, 1),
        cell(p50, 2),
        cell(p99, 2),
        cell(p999, 2),
        cell(max, 2),
        cell(e2e, 2),
        note.trim()
    )
}

/// The latency percentile curve of result file `j`, keyed by workload (or kind) and named by
/// broker; `None` without points.
fn latency_series(j: &Value) -> Option<(String, Series)> {
    let workload = s(j, &["workload"]);
    let broker = s(j, &["broker"]);
    let kind = s(j, &["kind"]);
    let points: Vec<(f64, f64)> = j["latency_percentiles_ms"]
        .as_array()?
        .iter()
        .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
        .collect();
    if points.is_empty() {
        return None;
    }
    let key = if workload.is_empty() {
        kind.to_string()
    } else {
        workload.to_string()
    };
    let name = if broker.is_empty() {
        "run".to_string()
    } else {
        broker.to_string()
    };
    Some((key, (name, points)))
}

/// The common fields of every result file.
pub fn result_envelope(
    kind: &str,
    workload: &str,
    broker: &str,
    command: &[String],
    settings: Value,
    figures: Value,
) -> Value {
    json!({
        "kind": kind,
        "workload": workload,
        "broker": broker,
        "command": command.join(" "),
        "timestamp_unix_s": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "machine": MachineInfo::detect(),
        "settings": settings,
        "figures": figures,
    })
}

/// `yyyy-MM-dd HH:mm:ss:SSS` in UTC, the date format of kafka-consumer-perf-test.
pub fn format_time_ms(unix_ms: i64) -> String {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}:{:03}",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_like_the_consumer_perf_test() {
        assert_eq!(format_time_ms(0), "1970-01-01 00:00:00:000");
        assert_eq!(format_time_ms(1_700_000_000_123), "2023-11-14 22:13:20:123");
        assert_eq!(format_time_ms(951_782_400_000), "2000-02-29 00:00:00:000");
    }
}

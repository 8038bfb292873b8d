//! Criterion benchmarks of the partition log: segment append throughput through the DMA writer
//! (`Log::append`, 1 KiB to 64 KiB chunks, rolling 64 MiB segments, no fsync per append) and
//! offset-index lookup.
//!
//! `cargo bench --bench log` also writes `results/criterion/log.json`: the commit, CPU, kernel,
//! command and, per benchmark, the mean time per iteration and throughput over all samples.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use ringtail::log::{Log, LogConfig, OffsetIndex};
use ringtail_protocol::record_batch::{set_base_offset, validate_batch};
use ringtail_protocol::testing::{encode_batch, BatchSpec};

/// One measured benchmark: iterations, time and bytes over every sample criterion took.
#[derive(Default)]
struct Measured {
    iterations: u64,
    elapsed: Duration,
    bytes_per_iteration: u64,
}

type Summary = Rc<RefCell<Vec<(String, Measured)>>>;

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let summary: Summary = Rc::default();
    bench_append(&mut criterion, &summary);
    bench_offset_index_lookup(&mut criterion, &summary);
    criterion.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        write_summary(&summary.borrow());
    }
}

/// A single uncompressed batch of about `target_bytes`, as a producer would send it.
fn batch_of(target_bytes: usize) -> BytesMut {
    let value_bytes = 100;
    encode_batch(&BatchSpec {
        count: (target_bytes.saturating_sub(61) / (value_bytes + 8)).max(1),
        value_bytes,
        timestamp_step_ms: 0,
        ..BatchSpec::default()
    })
}

fn bench_append(criterion: &mut Criterion, summary: &Summary) {
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("executor");
    let root = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 64 << 20,
        ..LogConfig::default()
    };
    let mut group = criterion.benchmark_group("log_append");
    for chunk_kib in [1usize, 4, 16, 64] {
        let template = batch_of(chunk_kib * 1024);
        let name = format!("log_append/{chunk_kib}KiB");
        group.throughput(Throughput::Bytes(template.len() as u64));
        let mut runs = 0u32;
        let mut measured = Measured {
            bytes_per_iteration: template.len() as u64,
            ..Measured::default()
        };
        group.bench_function(
            BenchmarkId::from_parameter(format!("{chunk_kib}KiB")),
            |b| {
                b.iter_custom(|iterations| {
                    runs += 1;
                    let dir: PathBuf = root.path().join(format!("bench-{chunk_kib}-{runs}"));
                    let elapsed = executor.run(append_run(
                        dir,
                        config.clone(),
                        template.clone(),
                        iterations,
                    ));
                    measured.iterations += iterations;
                    measured.elapsed += elapsed;
                    elapsed
                })
            },
        );
        summary.borrow_mut().push((name, measured));
    }
    group.finish();
}

/// Appends `iterations` copies of `batch` to a fresh log and returns the time the appends took
/// (open and delete excluded).
async fn append_run(
    dir: PathBuf,
    config: LogConfig,
    mut batch: BytesMut,
    iterations: u64,
) -> Duration {
    let log = Log::open(dir, config, false).await.expect("open");
    let start = Instant::now();
    for _ in 0..iterations {
        set_base_offset(&mut batch, log.log_end_offset());
        let header = validate_batch(&batch, 1 << 24).expect("valid");
        log.append(&batch, &[header]).await.expect("append");
    }
    let elapsed = start.elapsed();
    log.delete().await.expect("delete");
    elapsed
}

fn bench_offset_index_lookup(criterion: &mut Criterion, summary: &Summary) {
    const ENTRIES: i64 = 100_000;
    let mut index = OffsetIndex::new(0, 10 << 20);
    for i in 0..ENTRIES {
        index.append(i * 10 + 9, (i * 4200) as u32);
    }
    let targets: Vec<i64> = (0..1024u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % (ENTRIES as u64 * 10)) as i64)
        .collect();
    let mut measured = Measured::default();
    criterion.bench_function("offset_index_lookup/100k_entries", |b| {
        b.iter_custom(|iterations| {
            let start = Instant::now();
            for i in 0..iterations {
                black_box(index.lookup(black_box(targets[i as usize % targets.len()])));
            }
            let elapsed = start.elapsed();
            measured.iterations += iterations;
            measured.elapsed += elapsed;
            elapsed
        })
    });
    summary
        .borrow_mut()
        .push(("offset_index_lookup/100k_entries".to_string(), measured));
}

/// Writes `results/criterion/log.json` with what the numbers need to be reproduced.
fn write_summary(summary: &[(String, Measured)]) {
    let command_output = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default();
    let benchmarks: Vec<serde_json::Value> = summary
        .iter()
        .filter(|(_, m)| m.iterations > 0)
        .map(|(name, m)| {
            let mean_ns = m.elapsed.as_nanos() as f64 / m.iterations as f64;
            let mut value = serde_json::json!({
                "name": name,
                "iterations": m.iterations,
                "mean_ns_per_iteration": mean_ns,
            });
            if m.bytes_per_iteration > 0 {
                value["bytes_per_iteration"] = m.bytes_per_iteration.into();
                value["mib_per_second"] =
                    (m.bytes_per_iteration as f64 / mean_ns * 1e9 / (1 << 20) as f64).into();
            }
            value
        })
        .collect();
    let report = serde_json::json!({
        "bench": "log",
        "command": "cargo bench --bench log",
        "commit": command_output("git", &["rev-parse", "HEAD"]),
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": command_output("uname", &["-srm"]),
        "note": "append = Log::append of one batch per call through glommio DMA (O_DIRECT), 64 MiB segments, no fdatasync per append; temp dir on the machine's disk",
        "benchmarks": benchmarks,
    });
    let path = PathBuf::from("results/criterion/log.json");
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create results dir");
    }
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).expect("json") + "\n",
    )
    .expect("write summary");
    println!("wrote {}", path.display());
}

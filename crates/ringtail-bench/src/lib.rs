//! `ringtail bench`: a Kafka producer/consumer load generator of our own, on glommio (crate
//! `ringtail-bench`; it speaks Kafka through `ringtail-protocol` only, not the broker library).
//!
//! `produce`, `consume` and `e2e` speak the Kafka protocol to any Kafka-compatible broker and
//! print the same lines as Apache Kafka's kafka-producer-perf-test and kafka-consumer-perf-test,
//! so figures compare directly. Each run also writes a JSON result file (machine, commit, every
//! setting, every figure) and a latency percentile plot (SVG) under `--results-dir`; `summary`
//! turns a folder of them into a markdown table. Every wait is bounded: an unreachable broker,
//! an unknown topic or an invalid setting ends the run with a message and a non-zero exit.
//!
//! Layout: `config` (producer properties), `partitioner` (murmur2, sticky), `batch` + `codec`
//! (record batch v2 writing/reading), `accumulator` (linger.ms / batch.size), `client`
//! (connection, pipelining, ApiVersions), `cluster` (Metadata, CreateTopics), `producer`,
//! `consumer`, `stats` (shared counters, progress), `report` (JSON, SVG, summary).

// The wire code, under the path the modules of this crate use.
use ringtail_protocol as protocol;

pub mod accumulator;
pub mod client;
pub mod cluster;
pub mod config;
pub mod consumer;
pub mod open_batch;
pub mod partitioner;
pub mod payload;
pub mod producer;
pub mod report;
pub mod stats;
pub mod txn_producer;

/// Record batches: the producer's open batch and, from ringtail-protocol, record walking.
pub mod batch {
    pub use super::open_batch::BatchBuilder;
    pub use ringtail_protocol::records::{walk_records, RecordView, WalkError};
}
/// The codecs with Kafka's framings (ringtail-protocol).
pub use ringtail_protocol::codec;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use glommio::{LocalExecutorBuilder, Placement};
use serde_json::json;

use self::client::ClientError;
use self::cluster::TopicLayout;
use self::config::{ConfigError, ProducerConfig};
use self::consumer::{ConsumeFigures, ConsumeSpec, StartFrom};
use self::payload::{PayloadError, PayloadKind, Payloads};
use self::producer::{ProduceFigures, ProduceSpec};
use self::report::ReportError;
use self::stats::{latency_histogram, Reporter, SharedStats};

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Talking to a broker failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A producer property was invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The payload file was unusable.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Writing results failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A fetched batch could not be read.
    #[error(transparent)]
    Walk(#[from] batch::WalkError),
    /// The topic does not exist and was not to be created.
    #[error("topic `{topic}` does not exist on {broker} (pass --partitions N to create it)")]
    UnknownTopic { topic: String, broker: String },
    /// The topic did not get leaders in time.
    #[error("topic `{topic}` not ready after {waited_ms} ms: {reason}")]
    TopicNotReady {
        topic: String,
        reason: String,
        waited_ms: u64,
    },
    /// `bootstrap.servers` held no address.
    #[error("no broker address in `{0}`")]
    NoBootstrap(String),
    /// zstd needs Produce v7 (KIP-110).
    #[error("broker {broker} supports Produce only up to v{version}; compression.type=zstd needs v7 (KIP-110)")]
    ZstdUnsupported { broker: String, version: i16 },
    /// `buffer.memory` stayed full: the broker stopped answering.
    #[error("buffer.memory stayed full for {timeout_ms} ms (request.timeout.ms): the broker is not draining requests")]
    BufferFull { timeout_ms: u64 },
    /// A batch could not be encoded.
    #[error("encoding a record batch: {0}")]
    Encode(String),
    /// The broker answered something this client cannot use.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The consumer saw no record for the timeout.
    #[error("no records from {broker} for {timeout_ms} ms ({consumed} consumed so far)")]
    NoProgress {
        consumed: u64,
        timeout_ms: u64,
        broker: String,
    },
    /// A command-line argument was invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No record completed for too long while workers were still running.
    #[error("no progress for {stalled_ms} ms ({records} records completed); giving up")]
    Stalled { stalled_ms: u64, records: u64 },
    /// An executor could not be started or panicked.
    #[error("executor: {0}")]
    Executor(String),
}

/// `ringtail bench` arguments.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// What to run.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The bench subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Produce records, like kafka-producer-perf-test.
    Produce(ProduceArgs),
    /// Consume a topic, like kafka-consumer-perf-test.
    Consume(ConsumeArgs),
    /// Produce and consume at once; end-to-end latency from a timestamp in each value.
    E2e(E2eArgs),
    /// Write summary.md and overlaid latency plots for a folder of result files.
    Summary(SummaryArgs),
    /// Transactional producers (KIP-98): InitProducerId(transactional.id), then transactions
    /// of AddPartitionsToTxn, Produce, EndTxn(commit); transactions/s and records/s.
    Txn(TxnArgs),
}

/// `bench txn`.
#[derive(clap::Args, Debug, Clone)]
pub struct TxnArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// The producers' `transactional.id` (producer i of several uses `<id>-<i>`); also taken
    /// from `--producer-props transactional.id=...`.
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// Records per transaction.
    #[arg(long, default_value_t = 100)]
    pub records_per_transaction: u64,
}

/// Arguments shared by produce, consume and e2e.
#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct CommonArgs {
    /// Broker address(es), `host:port[,host:port]` (Kafka `bootstrap.servers`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Topic to use.
    #[arg(long)]
    pub topic: String,
    /// Create the topic with this many partitions (CreateTopics) if it does not exist.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor for a topic this tool creates.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i16,
    /// Topic config for a topic this tool creates (CreateTopics `configs`), `key=value`,
    /// repeatable: e.g. `--topic-config compression.type=zstd`. Ignored for an existing topic.
    #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = parse_topic_config)]
    pub topic_config: Vec<(String, String)>,
    /// Executors (threads), each with its own connections.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Folder for the JSON result and the SVG plot.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// File name (without extension) of the result; default `<kind>-<topic>-<unix time>`.
    #[arg(long)]
    pub result_name: Option<String>,
    /// Workload label stored in the result (for `summary`).
    #[arg(long, default_value = "")]
    pub workload: String,
    /// Broker label stored in the result (for `summary`).
    #[arg(long, default_value = "")]
    pub broker_label: String,
    /// Free-text note stored in the result and shown in the summary table.
    #[arg(long, default_value = "")]
    pub note: String,
    /// Write no result files.
    #[arg(long)]
    pub no_results: bool,
    /// Never show the progress bar (it is shown only when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// The producer's load: what to send and how fast.
#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct LoadArgs {
    /// Records to send.
    #[arg(long)]
    pub num_records: Option<u64>,
    /// Send for this long instead: seconds, or with a unit `500ms`, `30s`, `5m`.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Value size in bytes (ignored with --payload-file).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Values: `random` (kafka-producer-perf-test's random letters) or `json` (compressible
    /// JSON-like events).
    #[arg(long, value_enum, default_value = "random")]
    pub payload: PayloadKind,
    /// Take values from this file, split by --payload-delimiter.
    #[arg(long)]
    pub payload_file: Option<String>,
    /// Delimiter of records in --payload-file.
    #[arg(long, default_value = "\n")]
    pub payload_delimiter: String,
    /// Records per second over all threads; -1 for no limit.
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    pub throughput: f64,
    /// Producer properties `k=v ...` (acks, linger.ms, batch.size, compression.type, ...).
    #[arg(long, num_args = 1..)]
    pub producer_props: Vec<String>,
    /// Give records one of N keys (`key-<i % N>`, murmur2-partitioned); null keys otherwise.
    #[arg(long)]
    pub keys: Option<u64>,
    /// Producers over all threads, each with its own connections, batches and share of the
    /// records and throughput (like that many producer processes), spread round-robin over the
    /// executors; default one per thread. At most 1024.
    #[arg(long)]
    pub producers: Option<usize>,
    /// Interval of the periodic lines, milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub reporting_interval_ms: u64,
}

/// `bench produce`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `bench consume`.
#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Records to consume over all partitions; default: up to the end offsets seen at start.
    #[arg(long, alias = "messages")]
    pub num_records: Option<u64>,
    /// Where to start.
    #[arg(long, value_enum, default_value = "earliest")]
    pub from: StartFrom,
    /// `fetch.max.bytes`, bytes.
    #[arg(long, default_value_t = 52_428_800)]
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`, bytes.
    #[arg(long, default_value_t = 1_048_576)]
    pub max_partition_fetch_bytes: i32,
    /// `fetch.max.wait.ms`, milliseconds.
    #[arg(long, default_value_t = 500)]
    pub fetch_max_wait_ms: i32,
    /// Give up after this many milliseconds without a record.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// `bench e2e`.
#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Give up after this many milliseconds without a consumed record.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// `bench summary`.
#[derive(clap::Args, Debug, Clone)]
pub struct SummaryArgs {
    /// Folder of result files.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// Title of the summary.
    #[arg(long, default_value = "Ringtail bench results")]
    pub title: String,
    /// Paragraphs added below the table (repeatable).
    #[arg(long)]
    pub note: Vec<String>,
}

/// Runs a bench subcommand. Errors carry a message for the user; the caller exits non-zero.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Produce(args) => run_produce(args),
        BenchCommand::Consume(args) => run_consume(args),
        BenchCommand::E2e(args) => run_e2e(args),
        BenchCommand::Txn(args) => run_txn(args),
        BenchCommand::Summary(args) => {
            let markdown = report::write_summary(&args.results_dir, &args.title, &args.note)?;
            print!("{markdown}");
            Ok(())
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 30, 30s, 500ms, 5m)"))?;
    if !(value > 0.0 && value.is_finite()) {
        return Err(format!("`{text}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn check_common(common: &CommonArgs) -> Result<(), BenchError> {
    if common.threads == 0 || common.threads > 64 {
        return Err(BenchError::InvalidArgument(format!(
            "--threads {} must be 1..=64",
            common.threads
        )));
    }
    if common.partitions.is_some_and(|p| p <= 0) {
        return Err(BenchError::InvalidArgument(
            "--partitions must be positive".into(),
        ));
    }
    if common.topic.is_empty() {
        return Err(BenchError::InvalidArgument(
            "--topic must not be empty".into(),
        ));
    }
    Ok(())
}

fn check_load(load: &LoadArgs, minimum_record_size: usize) -> Result<Payloads, BenchError> {
    match (load.num_records, load.duration) {
        (None, None) => {
            return Err(BenchError::InvalidArgument(
                "give --num-records or --duration".into(),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(BenchError::InvalidArgument(
                "give only one of --num-records and --duration".into(),
            ))
        }
        (Some(0), _) => {
            return Err(BenchError::InvalidArgument(
                "--num-records must be positive".into(),
            ))
        }
        _ => {}
    }
    if load.producers.is_some_and(|p| p == 0 || p > 1024) {
        return Err(BenchError::InvalidArgument(
            "--producers must be 1..=1024".into(),
        ));
    }
    if load.throughput == 0.0 || !load.throughput.is_finite() {
        return Err(BenchError::InvalidArgument(
            "--throughput must be positive, or -1 for no limit".into(),
        ));
    }
    let payloads = match &load.payload_file {
        Some(path) => Payloads::from_file(path, &load.payload_delimiter)?,
        None => {
            if load.record_size < minimum_record_size || load.record_size > 64 << 20 {
                return Err(BenchError::InvalidArgument(format!(
                    "--record-size must be {minimum_record_size}..=67108864 bytes"
                )));
            }
            Payloads::generate(load.payload, load.record_size, 0x5eed)
        }
    };
    Ok(payloads)
}

/// Runs `f` on a new glommio executor thread and returns its join handle. The executor keeps
/// `io_memory` small: the bench does no DMA file I/O, and the default would exceed a small
/// `RLIMIT_MEMLOCK`.
fn spawn_executor<T, G, F>(name: String, f: G) -> Result<glommio::ExecutorJoinHandle<T>, BenchError>
where
    T: Send + 'static,
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(&name)
        .io_memory(1 << 20)
        .preempt_timer(Duration::from_millis(2))
        .spawn(move || {
            // A heartbeat timer, so the executor never parks without a deadline: a backstop
            // against lost wake-ups in the executor's park path (glommio 0.9).
            glommio::spawn_local(async {
                loop {
                    glommio::timer::sleep(HEARTBEAT).await;
                }
            })
            .detach();
            f()
        })
        .map_err(|e| BenchError::Executor(format!("starting {name}: {e}")))
}

/// Slack beyond the longest legitimate wait before the reporter declares a run stalled.
const STALL_MARGIN: Duration = Duration::from_secs(15);

/// Period of each executor's heartbeat timer.
const HEARTBEAT: Duration = Duration::from_millis(10);

fn join<T: Send>(
    handle: glommio::ExecutorJoinHandle<Result<T, BenchError>>,
) -> Result<T, BenchError> {
    handle
        .join()
        .map_err(|e| BenchError::Executor(e.to_string()))?
}

/// Connects, creates the topic if asked (`--partitions`, CreateTopics), and returns its layout.
/// Without `--partitions`, `auto_create` lets a broker that auto-creates topics create it from
/// the Metadata request, as a Kafka producer does (`allow_auto_topic_creation`).
fn setup(
    common: &CommonArgs,
    bootstrap: String,
    client_id: String,
    timeout: Duration,
    auto_create: bool,
) -> Result<TopicLayout, BenchError> {
    let topic = common.topic.clone();
    let partitions = common.partitions;
    let replication_factor = common.replication_factor;
    let topic_config = common.topic_config.clone();
    join(spawn_executor("bench-setup".into(), move || async move {
        let connection = cluster::bootstrap(&bootstrap, &client_id, timeout).await?;
        let created = match partitions {
            Some(n) => {
                cluster::create_topic(
                    &connection,
                    &topic,
                    n,
                    replication_factor,
                    &topic_config,
                    timeout,
                )
                .await?
            }
            None => false,
        };
        let auto_create = auto_create && partitions.is_none();
        let layout = cluster::describe_topic(
            &connection,
            &topic,
            Duration::from_secs(10),
            created,
            auto_create,
        )
        .await?;
        if created || auto_create {
            cluster::wait_until_served(&layout, &client_id, Duration::from_secs(30)).await?;
        }
        if let Some(n) = partitions {
            if layout.partitions() != n as usize {
                eprintln!(
                    "warning: topic {topic} exists with {} partitions, not {n}",
                    layout.partitions()
                );
            }
        }
        Ok(layout)
    })?)
}

/// `bench txn`: see [`txn_producer`].
fn run_txn(args: TxnArgs) -> anyhow::Result<()> {
    let TxnArgs {
        common,
        load,
        transactional_id,
        records_per_transaction,
    } = args;
    check_common(&common)?;
    let payloads = check_load(&load, 1)?;
    if load.throughput != -1.0 {
        return Err(BenchError::InvalidArgument(
            "--throughput is not supported by the transactional workload (use -1)".into(),
        )
        .into());
    }
    if load.keys.is_some() {
        return Err(BenchError::InvalidArgument(
            "--keys is not supported by the transactional workload".into(),
        )
        .into());
    }
    if records_per_transaction == 0 {
        return Err(BenchError::InvalidArgument(
            "--records-per-transaction must be positive".into(),
        )
        .into());
    }
    // Kafka's transactional properties, taken out before the producer's own.
    let mut transactional_id = transactional_id;
    let mut transaction_timeout_ms: i32 = 60_000;
    let mut props = Vec::new();
    for prop in &load.producer_props {
        match prop.split_once('=') {
            Some(("transactional.id", value)) => transactional_id = Some(value.trim().to_owned()),
            Some(("transaction.timeout.ms", value)) => {
                transaction_timeout_ms = value.trim().parse().map_err(|_| ConfigError::Invalid {
                    key: "transaction.timeout.ms".into(),
                    value: value.into(),
                    reason: "not a number of milliseconds".into(),
                })?
            }
            _ => props.push(prop.clone()),
        }
    }
    let transactional_id = transactional_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| BenchError::InvalidArgument("give --transactional-id".into()))?;
    let config = ProducerConfig::from_props(&props)?;
    if config.acks != config::Acks::All || !config.enable_idempotence {
        return Err(BenchError::InvalidArgument(
            "a transactional producer needs acks=all and enable.idempotence=true (Kafka's ProducerConfig)".into(),
        )
        .into());
    }
    let bootstrap = config
        .bootstrap_servers
        .clone()
        .unwrap_or_else(|| common.bootstrap_server.clone());
    let layout = setup(
        &common,
        bootstrap.clone(),
        config.client_id.clone(),
        config.request_timeout(),
        true,
    )
    .with_context(|| format!("setting up topic {}", common.topic))?;
    let producers = load.producers.unwrap_or(common.threads);
    let spec = Arc::new(txn_producer::TxnSpec {
        topic: common.topic.clone(),
        transactional_id: transactional_id.clone(),
        records_per_transaction,
        transaction_timeout_ms,
        num_records: load.num_records,
        duration: load.duration,
        producers,
        config: config.clone(),
        payloads,
        bootstrap,
    });
    let stats = Arc::new(SharedStats::default());
    let started = Instant::now();
    let mut handles = Vec::new();
    for thread in 0..common.threads {
        let workers: Vec<usize> = (thread..producers).step_by(common.threads).collect();
        let (spec, layout, stats) = (spec.clone(), layout.clone(), stats.clone());
        handles.push(spawn_executor(
            format!("bench-txn-{thread}"),
            move || async move {
                let tasks: Vec<_> = workers
                    .into_iter()
                    .map(|worker| {
                        let (spec, layout, stats) = (spec.clone(), layout.clone(), stats.clone());
                        glommio::spawn_local(txn_producer::txn_worker(
                            spec, layout, worker, stats, started,
                        ))
                    })
                    .collect();
                futures::future::join_all(tasks)
                    .await
                    .into_iter()
                    .collect::<Result<Vec<_>, BenchError>>()
            },
        )?);
    }
    let mut histogram = latency_histogram();
    let (mut transactions, mut batches, mut requests) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    for handle in handles {
        match join(handle) {
            Ok(results) => {
                for r in results {
                    histogram.add(&r.histogram).expect("same bounds");
                    transactions += r.transactions;
                    batches += r.batches;
                    requests += r.requests;
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e.into());
    }
    let elapsed = started.elapsed();
    let bytes = stats.bytes.load(Ordering::Relaxed);
    let figures = ProduceFigures::new(&histogram, bytes, elapsed, batches, requests, 0, 0);
    let transactions_per_sec = transactions as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "{transactions} transactions ({records_per_transaction} records each), {transactions_per_sec:.2} transactions/sec, {}",
        figures.perf_test_line()
    );
    let settings = json!({ "common": common, "load": load, "producer": config,
        "partitions": layout.partitions(), "note": common.note,
        "transactional_id": transactional_id, "records_per_transaction": records_per_transaction,
        "transaction_timeout_ms": transaction_timeout_ms });
    write_results(
        &common,
        "txn",
        settings,
        json!({ "produce": figures, "transactions": transactions,
            "transactions_per_sec": transactions_per_sec }),
        Some(&histogram),
        &format!("transaction commit latency: {}", common.topic),
    )?;
    Ok(())
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn result_name(common: &CommonArgs, kind: &str) -> String {
    common
        .result_name
        .clone()
        .unwrap_or_else(|| format!("{kind}-{}-{}", common.topic, unix_ms() / 1000))
}

struct ProduceRun {
    figures: ProduceFigures,
    histogram: hdrhistogram::Histogram<u64>,
}

/// Runs producer workers to completion with a reporter on this thread.
fn produce(
    spec: ProduceSpec,
    layout: &TopicLayout,
    reporting_interval: Duration,
    progress: bool,
    stats: Arc<SharedStats>,
) -> Result<ProduceRun, BenchError> {
    let spec = Arc::new(spec);
    let started = Instant::now();
    let mut handles = Vec::new();
    for thread in 0..spec.threads {
        let (spec, layout, worker_stats) = (spec.clone(), layout.clone(), stats.clone());
        // Producer `worker` runs on executor `worker % threads`.
        let workers: Vec<usize> = (thread..spec.producers).step_by(spec.threads).collect();
        let worker_count = workers.len();
        let handle = spawn_executor(format!("bench-produce-{thread}"), move || async move {
            let tasks: Vec<_> = workers
                .into_iter()
                .map(|worker| {
                    let (spec, layout, stats) =
                        (spec.clone(), layout.clone(), worker_stats.clone());
                    glommio::spawn_local(async move {
                        let result =
                            producer::produce_worker(spec, layout, worker, stats.clone()).await;
                        stats.workers_done.fetch_add(1, Ordering::Release);
                        result
                    })
                })
                .collect();
            merge_worker_results(futures::future::join_all(tasks).await)
        });
        match handle {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                stats.fail(e.to_string());
                stats
                    .workers_done
                    .fetch_add(worker_count, Ordering::Release);
            }
        }
    }
    let mut reporter = Reporter::new(
        reporting_interval,
        true,
        progress,
        spec.num_records,
        spec.duration,
    );
    let stall_limit = spec.config.request_timeout() + STALL_MARGIN;
    reporter.run(
        &stats,
        spec.producers,
        started,
        spec.duration.is_some(),
        stall_limit,
    )?;
    let elapsed = started.elapsed();
    let mut histogram = latency_histogram();
    let (mut batches, mut requests, mut wire, mut uncompressed) = (0, 0, 0, 0);
    let mut first_error = None;
    for handle in handles {
        match join(handle) {
            Ok(r) => {
                histogram.add(&r.histogram).expect("same bounds");
                batches += r.batches;
                requests += r.requests;
                wire += r.wire_bytes;
                uncompressed += r.uncompressed_bytes;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(message) = producer::stopped_early(&stats) {
        return Err(first_error.unwrap_or(BenchError::Protocol(message)));
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let bytes = stats.bytes.load(Ordering::Relaxed);
    let figures = ProduceFigures::new(
        &histogram,
        bytes,
        elapsed,
        batches,
        requests,
        wire,
        uncompressed,
    );
    Ok(ProduceRun { figures, histogram })
}

/// The figures of the producers on one executor, summed; the first error if any failed.
fn merge_worker_results(
    results: Vec<Result<producer::ProduceWorkerResult, BenchError>>,
) -> Result<producer::ProduceWorkerResult, BenchError> {
    let mut merged = producer::ProduceWorkerResult {
        histogram: latency_histogram(),
        batches: 0,
        requests: 0,
        wire_bytes: 0,
        uncompressed_bytes: 0,
    };
    for result in results {
        let r = result?;
        merged.histogram.add(&r.histogram).expect("same bounds");
        merged.batches += r.batches;
        merged.requests += r.requests;
        merged.wire_bytes += r.wire_bytes;
        merged.uncompressed_bytes += r.uncompressed_bytes;
    }
    Ok(merged)
}

fn produce_spec(
    common: &CommonArgs,
    load: &LoadArgs,
    config: ProducerConfig,
    payloads: Payloads,
    stamp_epoch: Option<Instant>,
) -> ProduceSpec {
    ProduceSpec {
        topic: common.topic.clone(),
        num_records: load.num_records,
        duration: load.duration,
        throughput: load.throughput,
        config,
        threads: common.threads,
        producers: load.producers.unwrap_or(common.threads),
        keys: load.keys,
        payloads,
        stamp_epoch,
    }
}

fn write_results(
    common: &CommonArgs,
    kind: &str,
    settings: serde_json::Value,
    figures: serde_json::Value,
    histogram: Option<&hdrhistogram::Histogram<u64>>,
    plot_title: &str,
) -> Result<(), BenchError> {
    if common.no_results {
        return Ok(());
    }
    let name = result_name(common, kind);
    let command: Vec<String> = std::env::args().collect();
    let mut result = report::result_envelope(
        kind,
        &common.workload,
        &common.broker_label,
        &command,
        settings,
        figures,
    );
    if let Some(histogram) = histogram.filter(|h| !h.is_empty()) {
        let table = report::percentile_table(histogram);
        result["latency_percentiles_ms"] =
            json!(table.iter().map(|&(p, ms)| [p, ms]).collect::<Vec<_>>());
        let svg = common.results_dir.join(format!("{name}.svg"));
        std::fs::create_dir_all(&common.results_dir).map_err(|source| ReportError::Io {
            op: "creating",
            path: common.results_dir.clone(),
            source,
        })?;
        let label = if common.broker_label.is_empty() {
            common.bootstrap_server.clone()
        } else {
            common.broker_label.clone()
        };
        report::plot_percentiles(&svg, plot_title, &[(label, table)])?;
    }
    let path = report::write_json(&common.results_dir, &name, &result)?;
    eprintln!("results: {}", path.display());
    Ok(())
}

fn run_produce(args: ProduceArgs) -> anyhow::Result<()> {
    let ProduceArgs { common, load } = args;
    check_common(&common)?;
    let payloads = check_load(&load, 1)?;
    let config = ProducerConfig::from_props(&load.producer_props)?;
    let bootstrap = config
        .bootstrap_servers
        .clone()
        .unwrap_or_else(|| common.bootstrap_server.clone());
    let layout = setup(
        &common,
        bootstrap,
        config.client_id.clone(),
        config.request_timeout(),
        true,
    )
    .with_context(|| format!("setting up topic {}", common.topic))?;
    let spec = produce_spec(&common, &load, config.clone(), payloads, None);
    let stats = Arc::new(SharedStats::default());
    let run = produce(
        spec,
        &layout,
        Duration::from_millis(load.reporting_interval_ms),
        !common.no_progress,
        stats,
    )?;
    println!("{}", run.figures.perf_test_line());
    let settings = json!({ "common": common, "load": load, "producer": config, "partitions": layout.partitions(), "note": common.note });
    write_results(
        &common,
        "produce",
        settings,
        json!({ "produce": run.figures }),
        Some(&run.histogram),
        &format!("produce latency: {}", common.topic),
    )?;
    Ok(())
}

fn run_consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let common = &args.common;
    check_common(common)?;
    if args.fetch_max_bytes <= 0
        || args.max_partition_fetch_bytes <= 0
        || args.fetch_max_wait_ms < 0
    {
        return Err(BenchError::InvalidArgument(
            "fetch sizes must be positive and --fetch-max-wait-ms non-negative".into(),
        )
        .into());
    }
    let request_timeout_ms = 30_000u64.max(args.fetch_max_wait_ms as u64 + 5_000);
    let client_id = "ringtail-bench-consumer".to_string();
    let layout = setup(
        common,
        common.bootstrap_server.clone(),
        client_id.clone(),
        Duration::from_millis(request_timeout_ms),
        false,
    )
    .with_context(|| format!("setting up topic {}", common.topic))?;
    let spec = ConsumeSpec {
        topic: common.topic.clone(),
        num_records: args.num_records,
        threads: common.threads,
        start_from: args.from,
        fetch_max_bytes: args.fetch_max_bytes,
        max_partition_fetch_bytes: args.max_partition_fetch_bytes,
        fetch_max_wait_ms: args.fetch_max_wait_ms,
        request_timeout_ms,
        timeout_ms: args.timeout_ms,
        client_id,
        e2e_epoch: None,
    };
    let stats = Arc::new(SharedStats::default());
    let start_ms = unix_ms();
    let started = Instant::now();
    let handles = spawn_consumers(Arc::new(spec.clone()), &layout, &stats);
    let mut reporter = Reporter::new(
        Duration::from_secs(3600),
        false,
        !common.no_progress,
        args.num_records,
        None,
    );
    let stall_limit = Duration::from_millis(request_timeout_ms.max(args.timeout_ms)) + STALL_MARGIN;
    reporter.run(&stats, spec.threads, started, false, stall_limit)?;
    let (records, bytes, _) = join_consumers(handles, &stats)?;
    let figures = ConsumeFigures::new(records, bytes, start_ms, unix_ms());
    println!("{}", ConsumeFigures::HEADER);
    println!("{}", figures.perf_test_line());
    let settings = json!({ "common": common, "consume": args, "partitions": layout.partitions(), "note": common.note });
    write_results(
        common,
        "consume",
        settings,
        serde_json::to_value(&figures).expect("figures serialize"),
        None,
        "",
    )?;
    Ok(())
}

fn spawn_consumers(
    spec: Arc<ConsumeSpec>,
    layout: &TopicLayout,
    stats: &Arc<SharedStats>,
) -> Vec<glommio::ExecutorJoinHandle<Result<consumer::ConsumeWorkerResult, BenchError>>> {
    let mut handles = Vec::new();
    for worker in 0..spec.threads {
        let (spec, layout, worker_stats) = (spec.clone(), layout.clone(), stats.clone());
        let stats_done = stats.clone();
        match spawn_executor(format!("bench-consume-{worker}"), move || async move {
            let result = consumer::consume_worker(spec, layout, worker, worker_stats).await;
            stats_done.workers_done.fetch_add(1, Ordering::Release);
            result
        }) {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                stats.fail(e.to_string());
                stats.workers_done.fetch_add(1, Ordering::Release);
            }
        }
    }
    handles
}

fn join_consumers(
    handles: Vec<glommio::ExecutorJoinHandle<Result<consumer::ConsumeWorkerResult, BenchError>>>,
    stats: &SharedStats,
) -> Result<(u64, u64, hdrhistogram::Histogram<u64>), BenchError> {
    let (mut records, mut bytes, mut histogram) = (0, 0, latency_histogram());
    let mut first_error = None;
    for handle in handles {
        match join(handle) {
            Ok(r) => {
                records += r.records;
                bytes += r.bytes;
                histogram.add(&r.histogram).expect("same bounds");
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if let Some(message) = producer::stopped_early(stats) {
        return Err(BenchError::Protocol(message));
    }
    Ok((records, bytes, histogram))
}

fn run_e2e(args: E2eArgs) -> anyhow::Result<()> {
    let E2eArgs {
        common,
        load,
        timeout_ms,
    } = args;
    check_common(&common)?;
    let payloads = check_load(&load, 8)?;
    let Some(num_records) = load.num_records else {
        return Err(BenchError::InvalidArgument(
            "e2e needs --num-records (the consumer stops after that many)".into(),
        )
        .into());
    };
    let config = ProducerConfig::from_props(&load.producer_props)?;
    let bootstrap = config
        .bootstrap_servers
        .clone()
        .unwrap_or_else(|| common.bootstrap_server.clone());
    let layout = setup(
        &common,
        bootstrap,
        config.client_id.clone(),
        config.request_timeout(),
        true,
    )
    .with_context(|| format!("setting up topic {}", common.topic))?;
    let epoch = Instant::now();
    let consume_spec = Arc::new(ConsumeSpec {
        topic: common.topic.clone(),
        num_records: Some(num_records),
        threads: common.threads,
        start_from: StartFrom::Latest,
        fetch_max_bytes: 52_428_800,
        max_partition_fetch_bytes: 1_048_576,
        fetch_max_wait_ms: 500,
        request_timeout_ms: config.request_timeout_ms.max(5_500),
        timeout_ms,
        client_id: format!("{}-consumer", config.client_id),
        e2e_epoch: Some(epoch),
    });
    let consume_stats = Arc::new(SharedStats::default());
    let consumers = spawn_consumers(consume_spec.clone(), &layout, &consume_stats);
    // Let the consumers read the end offsets before the first record is sent.
    std::thread::sleep(Duration::from_millis(500));
    let spec = produce_spec(&common, &load, config.clone(), payloads, Some(epoch));
    let produce_stats = Arc::new(SharedStats::default());
    let produced = produce(
        spec,
        &layout,
        Duration::from_millis(load.reporting_interval_ms),
        !common.no_progress,
        produce_stats,
    );
    if produced.is_err() {
        consume_stats.stop.store(true, Ordering::Relaxed);
    }
    let consumed = join_consumers(consumers, &consume_stats);
    let run = produced?;
    let (records, _, e2e) = consumed?;
    println!("{}", run.figures.perf_test_line());
    let e2e_figures = json!({
        "records": records,
        "latency_avg_ms": e2e.mean() / 1000.0,
        "latency_p50_ms": e2e.value_at_quantile(0.50) as f64 / 1000.0,
        "latency_p95_ms": e2e.value_at_quantile(0.95) as f64 / 1000.0,
        "latency_p99_ms": e2e.value_at_quantile(0.99) as f64 / 1000.0,
        "latency_p999_ms": e2e.value_at_quantile(0.999) as f64 / 1000.0,
        "latency_max_ms": e2e.max() as f64 / 1000.0,
        "percentiles_ms": report::percentile_table(&e2e).iter().map(|&(p, ms)| [p, ms]).collect::<Vec<_>>(),
    });
    println!(
        "{} records consumed end to end, {:.2} ms avg latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th, {:.2} ms max latency.",
        records,
        e2e.mean() / 1000.0,
        e2e.value_at_quantile(0.50) as f64 / 1000.0,
        e2e.value_at_quantile(0.95) as f64 / 1000.0,
        e2e.value_at_quantile(0.99) as f64 / 1000.0,
        e2e.value_at_quantile(0.999) as f64 / 1000.0,
        e2e.max() as f64 / 1000.0
    );
    let settings = json!({ "common": common, "load": load, "producer": config, "partitions": layout.partitions(), "note": common.note });
    write_results(
        &common,
        "e2e",
        settings,
        json!({ "produce": run.figures, "e2e": e2e_figures }),
        Some(&e2e),
        &format!("end-to-end latency: {}", common.topic),
    )?;
    Ok(())
}

/// Parses one `--topic-config key=value` (the value may contain `=`).
fn parse_topic_config(argument: &str) -> Result<(String, String), String> {
    match argument.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("`{argument}`: expected key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }
}

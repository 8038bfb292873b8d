//! Merging shard snapshots into one view ([`Scrape`]) and rendering it with `prometheus-client`
//! as OpenMetrics text, or as Prometheus text format 0.0.4 (the same samples; counter families
//! named with their `_total` suffix and no `# EOF`), whichever the scraper's `Accept` asks for.

use std::collections::{BTreeMap, HashMap};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::health::HealthReport;
use super::{
    api_name, error_name, CloseReason, GroupSnapshot, HistogramSnapshot, PartitionSnapshot,
    ShardSnapshot, TopicSnapshot, CODECS, LATENCY_BUCKETS_SECONDS,
};

/// Content type of OpenMetrics text 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of Prometheus text format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One consumer group's lag on one partition, as `kafka-consumer-groups.sh --describe`
/// computes it: LOG-END-OFFSET (the high watermark, what ListOffsets latest returns to a
/// read_uncommitted consumer) minus CURRENT-OFFSET (the committed offset).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupLag {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    /// `None` when the partition does not exist (any more).
    pub high_watermark: Option<i64>,
}

impl GroupLag {
    /// High watermark minus committed offset; `None` without a high watermark.
    pub fn lag(&self) -> Option<i64> {
        self.high_watermark.map(|hw| hw - self.committed_offset)
    }
}

/// What the broker is, for the scrape and the status page.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerInfo {
    pub version: &'static str,
    pub node_id: i32,
    /// (listener name, host:port).
    pub listeners: Vec<(String, String)>,
    pub health: HealthReport,
}

/// Every shard's snapshot merged: what `/metrics` and the status page show.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub broker: BrokerInfo,
    /// Per topic, summed over shards, by name.
    pub topics: BTreeMap<String, TopicSnapshot>,
    /// Every partition, by (topic, partition).
    pub partitions: BTreeMap<(String, i32), PartitionSnapshot>,
    /// Latency per API key, summed over shards.
    pub requests: BTreeMap<i16, HistogramSnapshot>,
    /// Error counts per (API key, error code), summed over shards.
    pub errors: BTreeMap<(i16, i16), u64>,
    pub log_flush: HistogramSnapshot,
    pub produce_batches: [u64; CODECS.len()],
    pub connections: i64,
    pub connections_closed: [u64; CloseReason::ALL.len()],
    /// Every group, by id, with its lag per partition.
    pub groups: BTreeMap<String, (GroupSnapshot, Vec<GroupLag>)>,
    /// The shards' own snapshots (per-shard metrics), by shard id; partitions and groups moved
    /// out into the maps above.
    pub shards: Vec<ShardSnapshot>,
}

impl Scrape {
    /// Merges the snapshots of every shard.
    pub fn merge(broker: BrokerInfo, mut shards: Vec<ShardSnapshot>) -> Scrape {
        shards.sort_by_key(|s| s.shard_id);
        let mut scrape = Scrape {
            broker,
            topics: BTreeMap::new(),
            partitions: BTreeMap::new(),
            requests: BTreeMap::new(),
            errors: BTreeMap::new(),
            log_flush: HistogramSnapshot::default(),
            produce_batches: [0; CODECS.len()],
            connections: 0,
            connections_closed: [0; CloseReason::ALL.len()],
            groups: BTreeMap::new(),
            shards: Vec::new(),
        };
        let mut groups = Vec::new();
        for shard in &mut shards {
            add_topics(&mut scrape.topics, shard.topics.drain(..));
            for partition in shard.partitions.drain(..) {
                scrape
                    .partitions
                    .insert((partition.topic.clone(), partition.partition), partition);
            }
            for (api, histogram) in &shard.requests {
                scrape.requests.entry(*api).or_default().merge(histogram);
            }
            for (key, count) in &shard.errors {
                *scrape.errors.entry(*key).or_insert(0) += count;
            }
            scrape.log_flush.merge(&shard.log_flush);
            for (total, n) in scrape.produce_batches.iter_mut().zip(shard.produce_batches) {
                *total += n;
            }
            scrape.connections += shard.connections;
            for (total, n) in scrape
                .connections_closed
                .iter_mut()
                .zip(shard.connections_closed)
            {
                *total += n;
            }
            groups.append(&mut shard.groups);
        }
        // Partitions exist before anything was produced to them: list their topics too.
        let topic_names: Vec<String> = scrape.partitions.keys().map(|(t, _)| t.clone()).collect();
        add_topics(
            &mut scrape.topics,
            topic_names.into_iter().map(TopicSnapshot::empty),
        );
        let high_watermarks: HashMap<(&str, i32), i64> = scrape
            .partitions
            .values()
            .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
            .collect();
        let mut lags_by_group = BTreeMap::new();
        for mut group in groups {
            group.offsets.sort();
            let lags = group
                .offsets
                .iter()
                .map(|(topic, partition, committed)| GroupLag {
                    topic: topic.clone(),
                    partition: *partition,
                    committed_offset: *committed,
                    high_watermark: high_watermarks.get(&(topic.as_str(), *partition)).copied(),
                })
                .collect();
            lags_by_group.insert(group.group_id.clone(), (group, lags));
        }
        scrape.groups = lags_by_group;
        scrape.shards = shards;
        scrape
    }

    /// The exposition: OpenMetrics text when `openmetrics`, else Prometheus text 0.0.4.
    pub fn encode(self, openmetrics: bool) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Collected(self)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("invariant: encoding into a String does not fail");
        if openmetrics {
            out
        } else {
            openmetrics_to_prometheus_text(&out)
        }
    }
}

/// Adds each of `topics` (one shard's counters of a topic) to its topic's sum in `sums`.
pub fn add_topics(
    sums: &mut BTreeMap<String, TopicSnapshot>,
    topics: impl IntoIterator<Item = TopicSnapshot>,
) {
    for topic in topics {
        let sum = sums
            .entry(topic.topic.clone())
            .or_insert_with(|| TopicSnapshot::empty(topic.topic.clone()));
        sum.bytes_in += topic.bytes_in;
        sum.bytes_out += topic.bytes_out;
        sum.messages_in += topic.messages_in;
    }
}

/// Rewrites prometheus-client's OpenMetrics text as Prometheus text format 0.0.4: a counter
/// family is named like its samples (`x_total`), `# UNIT` and `# EOF` are dropped. Samples are
/// the same in both formats.
fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match rewritten {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[derive(Debug)]
struct Collected(Scrape);

type Labels<'a> = Vec<(&'static str, std::borrow::Cow<'a, str>)>;

fn label<'a>(
    key: &'static str,
    value: impl Into<std::borrow::Cow<'a, str>>,
) -> (&'static str, std::borrow::Cow<'a, str>) {
    (key, value.into())
}

/// Writes one family: `# HELP`/`# TYPE` and one sample per label set.
fn family<V, I>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: I,
) -> Result<(), std::fmt::Error>
where
    I: IntoIterator<Item = (Labels<'static>, V)>,
    V: Sample,
{
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in samples {
        value.write(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A value written as a counter or gauge sample.
trait Sample {
    fn write(
        &self,
        encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error>;
}

/// Sample types: the value and whether prometheus-client writes it as a counter or a gauge.
macro_rules! samples {
    ($($name:ident($value:ty) => $metric:ident),* $(,)?) => {$(
        struct $name($value);

        impl Sample for $name {
            fn write(
                &self,
                encoder: prometheus_client::encoding::MetricEncoder,
            ) -> Result<(), std::fmt::Error> {
                $metric::new(self.0).encode(encoder)
            }
        }
    )*};
}

samples!(
    Counter(u64) => ConstCounter,
    CounterF(f64) => ConstCounter,
    Gauge(i64) => ConstGauge,
    GaugeF(f64) => ConstGauge,
);

fn histogram_family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, &'a HistogramSnapshot)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, histogram) in samples {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_SECONDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(histogram.buckets)
            .collect();
        metric
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(
                histogram.sum_seconds,
                histogram.count,
                &buckets,
                None,
            )?;
    }
    Ok(())
}

fn owned(labels: Vec<(&'static str, String)>) -> Labels<'static> {
    labels.into_iter().map(|(k, v)| label(k, v)).collect()
}

impl prometheus_client::collector::Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let e = &mut encoder;
        let topic = |t: &TopicSnapshot| owned(vec![("topic", t.topic.clone())]);
        family(e, "ringtail_topic_bytes_in", "Bytes of record batches produced to the topic (Kafka BrokerTopicMetrics BytesInPerSec)", MetricType::Counter,
            s.topics.values().map(|t| (topic(t), Counter(t.bytes_in))))?;
        family(e, "ringtail_topic_bytes_out", "Bytes of record batches fetched from the topic (Kafka BrokerTopicMetrics BytesOutPerSec)", MetricType::Counter,
            s.topics.values().map(|t| (topic(t), Counter(t.bytes_out))))?;
        family(
            e,
            "ringtail_topic_messages_in",
            "Records produced to the topic (Kafka BrokerTopicMetrics MessagesInPerSec)",
            MetricType::Counter,
            s.topics
                .values()
                .map(|t| (topic(t), Counter(t.messages_in))),
        )?;

        histogram_family(e, "ringtail_request_latency_seconds", "Time from reading a request to its response being ready, per API (Kafka RequestMetrics TotalTimeMs)",
            s.requests.iter().map(|(api, h)| (owned(vec![("api", api_name(*api))]), h)))?;
        family(e, "ringtail_request_errors", "Error codes in responses, per API and error, NONE included (Kafka RequestMetrics ErrorsPerSec)", MetricType::Counter,
            s.errors.iter().map(|((api, code), n)| (owned(vec![("api", api_name(*api)), ("error", error_name(*code))]), Counter(*n))))?;

        let partition = |p: &PartitionSnapshot| {
            owned(vec![
                ("topic", p.topic.clone()),
                ("partition", p.partition.to_string()),
            ])
        };
        family(
            e,
            "ringtail_partition_log_end_offset",
            "Offset the next record appended to the partition gets (Kafka Log LogEndOffset)",
            MetricType::Gauge,
            s.partitions
                .values()
                .map(|p| (partition(p), Gauge(p.log_end_offset))),
        )?;
        family(
            e,
            "ringtail_partition_log_start_offset",
            "First offset still in the partition log (Kafka Log LogStartOffset)",
            MetricType::Gauge,
            s.partitions
                .values()
                .map(|p| (partition(p), Gauge(p.log_start_offset))),
        )?;
        family(
            e,
            "ringtail_partition_high_watermark",
            "Offset below which records are visible to consumers (Kafka Partition HighWatermark)",
            MetricType::Gauge,
            s.partitions
                .values()
                .map(|p| (partition(p), Gauge(p.high_watermark))),
        )?;
        family(
            e,
            "ringtail_partition_size_bytes",
            "Bytes of the partition's segment files (Kafka Log Size)",
            MetricType::Gauge,
            s.partitions
                .values()
                .map(|p| (partition(p), Gauge(p.size_bytes as i64))),
        )?;
        family(
            e,
            "ringtail_partition_segments",
            "Segments of the partition log (Kafka Log NumLogSegments)",
            MetricType::Gauge,
            s.partitions
                .values()
                .map(|p| (partition(p), Gauge(p.segments as i64))),
        )?;

        family(e, "ringtail_consumer_group_lag", "High watermark minus committed offset, as kafka-consumer-groups --describe computes LAG", MetricType::Gauge,
            s.groups.values().flat_map(|(g, lags)| lags.iter().filter_map(move |l| Some((owned(vec![("group", g.group_id.clone()), ("topic", l.topic.clone()), ("partition", l.partition.to_string())]), Gauge(l.lag()?))))))?;
        family(
            e,
            "ringtail_consumer_group_committed_offset",
            "Committed offset of the group on the partition (kafka-consumer-groups CURRENT-OFFSET)",
            MetricType::Gauge,
            s.groups.values().flat_map(|(g, lags)| {
                lags.iter().map(move |l| {
                    (
                        owned(vec![
                            ("group", g.group_id.clone()),
                            ("topic", l.topic.clone()),
                            ("partition", l.partition.to_string()),
                        ]),
                        Gauge(l.committed_offset),
                    )
                })
            }),
        )?;
        family(
            e,
            "ringtail_consumer_group_members",
            "Members of the consumer group (kafka-consumer-groups --members)",
            MetricType::Gauge,
            s.groups.values().map(|(g, _)| {
                (
                    owned(vec![
                        ("group", g.group_id.clone()),
                        ("state", g.state.to_string()),
                    ]),
                    Gauge(g.members as i64),
                )
            }),
        )?;

        let listener = s
            .broker
            .listeners
            .first()
            .map_or("PLAINTEXT".to_string(), |l| l.0.clone());
        family(
            e,
            "ringtail_connections",
            "Open Kafka connections per listener (Kafka socket-server-metrics connection-count)",
            MetricType::Gauge,
            [(
                owned(vec![("listener", listener.clone())]),
                Gauge(s.connections),
            )],
        )?;
        family(e, "ringtail_connections_closed", "Kafka connections closed, per listener and reason (Kafka socket-server-metrics connection-close-total)", MetricType::Counter,
            CloseReason::ALL.iter().map(|r| (owned(vec![("listener", listener.clone()), ("reason", r.name().to_string())]), Counter(s.connections_closed[*r as usize]))))?;

        histogram_family(
            e,
            "ringtail_log_flush_latency_seconds",
            "Time of one fdatasync of a partition log (Kafka LogFlushStats LogFlushRateAndTimeMs)",
            [(Labels::new(), &s.log_flush)],
        )?;
        family(e, "ringtail_produce_batches", "Produced record batches per compression codec (Kafka BrokerTopicMetrics ProduceMessageConversionsPerSec is the nearest; Kafka has no per-codec count)", MetricType::Counter,
            CODECS.iter().enumerate().map(|(i, c)| (owned(vec![("codec", c.to_string())]), Counter(s.produce_batches[i]))))?;

        let shard = |x: &ShardSnapshot| owned(vec![("shard", x.shard_id.to_string())]);
        family(e, "ringtail_shard_busy_seconds", "Time the shard's executor spent running tasks (glommio ExecutorStats executor_runtime; Kafka RequestHandlerAvgIdlePercent is its complement)", MetricType::Counter,
            s.shards.iter().map(|x| (shard(x), CounterF(x.executor.busy_seconds))))?;
        family(
            e,
            "ringtail_shard_tasks_executed",
            "Tasks the shard's executor ran (glommio ExecutorStats tasks_executed)",
            MetricType::Counter,
            s.shards
                .iter()
                .map(|x| (shard(x), Counter(x.executor.tasks_executed))),
        )?;
        family(e, "ringtail_shard_scheduler_runs", "Times the shard's scheduler selected a task queue (glommio ExecutorStats scheduler_runs)", MetricType::Counter,
            s.shards.iter().map(|x| (shard(x), Counter(x.executor.scheduler_runs))))?;
        family(e, "ringtail_shard_tasks_queued", "Work sent by other shards that is queued or running on this shard (Kafka RequestChannel RequestQueueSize is the nearest)", MetricType::Gauge,
            s.shards.iter().map(|x| (shard(x), Gauge(x.cross_shard_tasks_queued))))?;
        family(
            e,
            "ringtail_shard_cross_shard_messages",
            "Closures this shard sent to other shards over the mesh",
            MetricType::Counter,
            s.shards
                .iter()
                .map(|x| (shard(x), Counter(x.cross_shard_sent))),
        )?;
        family(
            e,
            "ringtail_shard_tail_cache_hits",
            "Fetch reads served from the partitions' in-memory tail cache",
            MetricType::Counter,
            s.shards
                .iter()
                .map(|x| (shard(x), Counter(x.tail_cache_hits))),
        )?;
        family(
            e,
            "ringtail_shard_tail_cache_misses",
            "Fetch reads that went to the segment files",
            MetricType::Counter,
            s.shards
                .iter()
                .map(|x| (shard(x), Counter(x.tail_cache_misses))),
        )?;
        family(
            e,
            "ringtail_shard_read_ahead_hits",
            "Log reads answered by bytes read ahead of a sequential fetch",
            MetricType::Counter,
            s.shards
                .iter()
                .map(|x| (shard(x), Counter(x.read_ahead_hits))),
        )?;
        family(
            e,
            "ringtail_shard_read_ahead_bytes",
            "Bytes the shard's read-aheads hold or are reading (at most ringtail.fetch.read.ahead.bytes)",
            MetricType::Gauge,
            s.shards
                .iter()
                .map(|x| (shard(x), Gauge(x.read_ahead_bytes as i64))),
        )?;
        family(
            e,
            "ringtail_shard_tail_cache_hit_ratio",
            "Hits over all fetch reads since start-up (0 before any read)",
            MetricType::Gauge,
            s.shards.iter().map(|x| {
                let reads = x.tail_cache_hits + x.tail_cache_misses;
                (
                    shard(x),
                    GaugeF(if reads == 0 {
                        0.0
                    } else {
                        x.tail_cache_hits as f64 / reads as f64
                    }),
                )
            }),
        )?;
        family(
            e,
            "ringtail_fetch_session_cache_sessions",
            "Open incremental fetch sessions (Kafka FetchSessionCache NumIncrementalFetchSessions)",
            MetricType::Gauge,
            s.shards
                .iter()
                .map(|x| (shard(x), Gauge(x.fetch_sessions.sessions as i64))),
        )?;
        family(e, "ringtail_fetch_session_cache_partitions", "Partitions cached over all fetch sessions (Kafka FetchSessionCache NumIncrementalFetchPartitionsCached)", MetricType::Gauge,
            s.shards.iter().map(|x| (shard(x), Gauge(x.fetch_sessions.partitions as i64))))?;
        family(e, "ringtail_fetch_session_cache_evictions", "Fetch sessions evicted to make room for new ones (Kafka FetchSessionCache IncrementalFetchSessionEvictionsPerSec)", MetricType::Counter,
            s.shards.iter().map(|x| (shard(x), Counter(x.fetch_sessions.evictions))))?;
        family(e, "ringtail_shard_io_file_reads", "File reads the shard submitted to io_uring (glommio IoStats file_reads + file_buffered_reads)", MetricType::Counter,
            s.shards.iter().map(|x| (shard(x), Counter(x.executor.file_reads))))?;
        family(
            e,
            "ringtail_shard_io_file_read_bytes",
            "Bytes read by those reads",
            MetricType::Counter,
            s.shards
                .iter()
                .map(|x| (shard(x), Counter(x.executor.file_read_bytes))),
        )?;
        family(e, "ringtail_shard_io_file_writes", "File writes the shard submitted to io_uring (glommio IoStats file_writes + file_buffered_writes)", MetricType::Counter,
            s.shards.iter().map(|x| (shard(x), Counter(x.executor.file_writes))))?;
        family(
            e,
            "ringtail_shard_io_file_write_bytes",
            "Bytes written by those writes",
            MetricType::Counter,
            s.shards
                .iter()
                .map(|x| (shard(x), Counter(x.executor.file_write_bytes))),
        )?;

        family(
            e,
            "ringtail_uptime_seconds",
            "Seconds since the broker process started",
            MetricType::Gauge,
            [(Labels::new(), GaugeF(s.broker.health.uptime_seconds))],
        )?;
        family(
            e,
            "ringtail_shards_ready",
            "Shards that finished loading their partitions and groups",
            MetricType::Gauge,
            [(
                Labels::new(),
                Gauge(
                    s.broker
                        .health
                        .shards
                        .iter()
                        .filter(|p| **p == super::health::ShardPhase::Ready)
                        .count() as i64,
                ),
            )],
        )?;
        family(
            e,
            "ringtail_offline_partitions",
            "Partitions offline after a storage error (Kafka ReplicaManager OfflineReplicaCount)",
            MetricType::Gauge,
            [(
                Labels::new(),
                Gauge(s.broker.health.offline_partitions as i64),
            )],
        )?;
        family(
            e,
            "ringtail_build_info",
            "Always 1; the labels name the version and node",
            MetricType::Gauge,
            [(
                owned(vec![
                    ("version", s.broker.version.to_string()),
                    ("node_id", s.broker.node_id.to_string()),
                ]),
                Gauge(1),
            )],
        )?;
        Ok(())
    }
}

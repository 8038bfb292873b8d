//! Broker and topic configuration: Kafka's property names and defaults, read once at start-up.
//!
//! Sources, lowest precedence first: built-in defaults, the `--config` file (TOML or Java
//! `.properties`), the `serve` flags (`--listeners`, `--advertised-listeners`, `--log-dirs`,
//! `--shards`), then `--set key=value`. Every source is reduced to `(name, string value)`
//! pairs and goes through one parser, so a value means the same thing wherever it comes from.
//!
//! Invariants: an unknown property or an invalid value is an error naming the property and the
//! value (start-up stops with it); no input makes this module panic; a [`BrokerConfig`] that
//! exists has passed every check below, so the rest of the broker never re-validates it.

// ----- KIP-848 consumer group properties (group.consumer.*): their own block -----
mod consumer_group;
pub use consumer_group::{ConsumerGroupConfig, ConsumerGroupMigrationPolicy};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Args;
use serde::{Deserialize, Serialize};

/// Arguments of `ringtail serve`. The flags are sugar for broker properties; precedence is
/// defaults < `--config` file < flags < `--set`.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeArgs {
    /// Configuration file: TOML when the name ends in `.toml`, Java `.properties` otherwise
    /// (Kafka's `server.properties` works as is; read as ISO-8859-1 with `\uXXXX` escapes, like
    /// Java's `Properties.load`). Nested TOML tables join their keys with `.`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Property `listeners`, e.g. `PLAINTEXT://127.0.0.1:9092`.
    #[arg(long, value_name = "LISTENERS")]
    pub listeners: Option<String>,
    /// Property `advertised.listeners` (default: `listeners`, with 0.0.0.0 as 127.0.0.1).
    #[arg(long, value_name = "LISTENERS")]
    pub advertised_listeners: Option<String>,
    /// Property `log.dirs`: the data directories, comma-separated (all are used, as Kafka
    /// does; the first holds the metadata and the internal topics).
    #[arg(long, value_name = "DIRS")]
    pub log_dirs: Option<String>,
    /// Property `ringtail.shards`: executors, one per core (default 0 = all online cores).
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// Any property, `--set key=value`; repeatable; wins over the file and the other flags.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set_argument)]
    pub set: Vec<(String, String)>,
}

/// Why a configuration was refused. Every variant that concerns one property names it and the
/// offending value, so the start-up error message is enough to fix the input.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named by `--config`.
        path: PathBuf,
        /// The I/O error (or invalid UTF-8 in a TOML file).
        #[source]
        source: std::io::Error,
    },
    /// The TOML file is not valid TOML.
    #[error("cannot parse TOML config file {path}: {source}")]
    Toml {
        /// The file named by `--config`.
        path: PathBuf,
        /// The TOML parser's error, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// The `.properties` file is not valid Java properties syntax.
    #[error("cannot parse properties config file {path}: {source}")]
    Properties {
        /// The file named by `--config`.
        path: PathBuf,
        /// The properties parser's error, with line number.
        #[source]
        source: java_properties::PropertiesError,
    },
    /// A `--set` argument without `=`, or with an empty key.
    #[error("invalid --set argument `{argument}`: expected key=value")]
    SetArgument {
        /// The argument as given.
        argument: String,
    },
    /// A property name that is neither a Kafka property Ringtail supports nor one of ours.
    #[error("unknown property `{name}` (value `{value}`, from {origin})")]
    UnknownProperty {
        /// The property name as given.
        name: String,
        /// Its value as given.
        value: String,
        /// Where it came from: the config file, the command line or topic configs.
        origin: String,
    },
    /// A known property with a value that does not parse or is out of range.
    #[error("invalid value `{value}` for property `{name}`: {reason}")]
    InvalidValue {
        /// The property's Kafka name.
        name: String,
        /// The refused value as given.
        value: String,
        /// What is accepted, e.g. `must be in [14, 2147483647]`.
        reason: String,
    },
}

/// A listener's security protocol (Kafka's `SecurityProtocol`), from
/// `listener.security.protocol.map` or, without an entry there, the listener's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SecurityProtocol {
    /// No encryption, no authentication (principal `User:ANONYMOUS`).
    Plaintext,
    /// TLS; the principal comes from the client certificate, if any.
    Ssl,
    /// SASL authentication over plain TCP.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name, e.g. `SASL_SSL`.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Parses Kafka's name, case-insensitively (`SecurityProtocol.forName`).
    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// True for the protocols that encrypt with TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// True for the protocols that authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One listener from `listeners` / `advertised.listeners`, written `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    /// Listener name (upper case), e.g. `PLAINTEXT`, `SASL_SSL` or a custom name mapped by
    /// `listener.security.protocol.map`.
    pub name: String,
    /// The security protocol the listener speaks.
    pub security_protocol: SecurityProtocol,
    /// Host name or IP address; `0.0.0.0` (written as an empty host) binds every interface.
    /// IPv6 addresses are kept without brackets.
    pub host: String,
    /// TCP port; 0 binds an ephemeral port.
    pub port: u16,
}

/// `log.message.timestamp.type` / `message.timestamp.type` (Kafka broker and topic configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimestampType {
    /// Keep the producer's timestamp.
    CreateTime,
    /// Overwrite with the broker's append time.
    LogAppendTime,
}

/// `compression.type` (Kafka broker and topic configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionType {
    /// Store batches uncompressed.
    Uncompressed,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
    /// Keep whatever codec the producer used (Kafka's default).
    Producer,
}

/// `log.cleanup.policy` / `cleanup.policy` (Kafka broker and topic configs).
///
/// `compact` (alone or with `delete`) hands the partition to the shard's log cleaner
/// (`log::cleaner`); `delete` applies retention, so `compact,delete` gets both, as in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CleanupPolicy {
    /// `delete`: drop old segments by `retention.ms` / `retention.bytes`.
    Delete,
    /// `compact`.
    Compact,
    /// `compact,delete` (either order).
    CompactDelete,
}

/// The validated broker configuration. Field names are Kafka's property names with `.` as `_`;
/// `ringtail.*` properties drop the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `node.id` (alias `broker.id`); default 0.
    pub node_id: i32,
    /// `listeners`: addresses to bind; default `PLAINTEXT://127.0.0.1:9092`.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners`: addresses given to clients in Metadata; default `listeners` with
    /// a 0.0.0.0 host replaced by 127.0.0.1. An explicit 0.0.0.0 or empty host is refused.
    pub advertised_listeners: Vec<Listener>,
    /// `log.dirs` (alias `log.dir`); default `./data`. Several entries (JBOD) are all used:
    /// new partitions go to the one with the fewest partitions (Kafka's `nextLogDirs`); the
    /// first ([`BrokerConfig::log_dir`]) also holds the metadata file and the internal topics.
    pub log_dirs: Vec<PathBuf>,
    /// `num.partitions`: partitions of auto-created topics; default 1, at least 1.
    pub num_partitions: i32,
    /// `default.replication.factor`; default 1, and 1 is the only value allowed (single node).
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`; default true.
    pub auto_create_topics_enable: bool,
    /// `delete.topic.enable`; default true.
    pub delete_topic_enable: bool,
    /// `log.segment.bytes`: segment size in bytes; default 1073741824 (1 GiB), at least 14.
    pub log_segment_bytes: i32,
    /// Segment roll time in ms: `log.roll.ms` if set, else `log.roll.hours` (default 168).
    pub log_roll_ms: i64,
    /// Retention time in ms, -1 = unlimited: `log.retention.ms`, else `log.retention.minutes`,
    /// else `log.retention.hours` (default 168); any negative value means -1 (Kafka docs).
    pub log_retention_ms: i64,
    /// `log.retention.bytes`: per-partition size limit in bytes; default -1 (unlimited).
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms`; default 300000 ms, at least 1.
    pub log_retention_check_interval_ms: i64,
    /// `log.index.interval.bytes`: bytes of log between offset index entries; default 4096.
    pub log_index_interval_bytes: i32,
    /// `log.index.size.max.bytes`: maximum index file size in bytes; default 10485760, min 4.
    pub log_index_size_max_bytes: i32,
    /// `log.preallocate`: write zeros ahead of the active segment's appends; default false, as
    /// Kafka's (the README says how Ringtail's preallocation works and what it measured).
    pub log_preallocate: bool,
    /// `message.max.bytes`: largest record batch in bytes; default 1048588.
    pub message_max_bytes: i32,
    /// `socket.request.max.bytes`: largest request frame in bytes; default 104857600, min 1.
    pub socket_request_max_bytes: i32,
    /// `queued.max.requests`: requests in flight per shard before backpressure; default 500.
    pub queued_max_requests: i32,
    /// `log.message.timestamp.type`; default CreateTime.
    pub log_message_timestamp_type: TimestampType,
    /// `compression.type`; default producer.
    pub compression_type: CompressionType,
    /// `log.cleanup.policy`; default delete.
    pub log_cleanup_policy: CleanupPolicy,
    /// `min.insync.replicas`; default 1, at least 1 (more makes acks=all fail on one node).
    pub min_insync_replicas: i32,
    /// `group.min.session.timeout.ms`; default 6000 ms.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`; default 1800000 ms, not below the minimum.
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`; default 3000 ms.
    pub group_initial_rebalance_delay_ms: i32,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`; default 50.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`; default 1, the only value allowed.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.retention.minutes`: committed offsets of empty groups kept; default 10080.
    pub offsets_retention_minutes: i32,
    /// KIP-848 consumer groups: `group.consumer.*`, `group.coordinator.rebalance.protocols`.
    pub consumer_group: ConsumerGroupConfig,
    /// `fetch.max.bytes`: largest Fetch response in bytes; default 57671680, at least 1024.
    pub fetch_max_bytes: i32,
    // ---- Fetch sessions (KIP-227) ----
    /// `max.incremental.fetch.session.cache.slots`: incremental fetch sessions the broker
    /// keeps; default 1000, at least 0. Split evenly over the shards (`slots / shards` each),
    /// as Kafka splits it over its 8 cache shards.
    pub max_incremental_fetch_session_cache_slots: i32,
    /// `ringtail.shards`: executors (one per core); 0 = all online cores, else 1..=cores.
    /// Use [`BrokerConfig::shard_count`] for the resolved number.
    pub shards: u32,
    /// `ringtail.io.memory.bytes`: glommio `io_memory` per shard in bytes; default 2097152,
    /// at least 65536.
    pub io_memory_bytes: u64,
    /// `ringtail.partition.cache.bytes`: in-memory tail cache per partition for Fetch, in
    /// bytes; default 4194304; 0 disables it.
    pub partition_cache_bytes: u64,
    /// `ringtail.fetch.read.ahead.bytes`: bytes each shard may hold read ahead of sequential
    /// fetches from the segment files (`log::read_ahead`); default 67108864; 0 disables it.
    pub fetch_read_ahead_bytes: u64,
    // --- Log cleaner (compaction), Kafka's `CleanerConfig` / `ServerLogConfigs` names ---
    /// `log.cleaner.enable`; default true. False: no partition is compacted.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: sleep between cleaning passes when nothing was cleanable;
    /// default 15000 ms, at least 0.
    pub log_cleaner_backoff_ms: i64,
    /// `log.cleaner.dedupe.buffer.size`: bytes of the key -> offset map of one cleaning pass
    /// (per shard here, for all Kafka cleaner threads there); default 134217728.
    pub log_cleaner_dedupe_buffer_size: i64,
    /// `log.cleaner.threads`: accepted with a warning; Ringtail runs one cleaner per shard.
    pub log_cleaner_threads: i32,
    /// `log.cleaner.delete.retention.ms`: default of `delete.retention.ms` (86400000).
    pub log_cleaner_delete_retention_ms: i64,
    /// `log.cleaner.min.cleanable.ratio`: default of `min.cleanable.dirty.ratio` (0.5).
    pub log_cleaner_min_cleanable_ratio: Ratio,
    /// `log.cleaner.min.compaction.lag.ms`: default of `min.compaction.lag.ms` (0).
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms`: default of `max.compaction.lag.ms` (i64::MAX).
    pub log_cleaner_max_compaction_lag_ms: i64,
    // --- `__consumer_offsets` cleaned by the log cleaner (Kafka's `GroupCoordinatorConfig`) ---
    /// `offsets.topic.segment.bytes`: `segment.bytes` of `__consumer_offsets`; default
    /// 104857600, at least 1 (Kafka's `atLeast(1)`; Ringtail rolls no smaller than
    /// `crate::log::SEGMENT_BYTES_MIN`).
    pub offsets_topic_segment_bytes: i32,
    // --- operator HTTP listener (issue 12: /metrics, /healthz, status page) ---
    /// `ringtail.http.listener`: address of the HTTP listener serving `/metrics`, `/healthz`
    /// and the status page `/`; default `127.0.0.1:9644` (Redpanda's admin port); empty
    /// disables it.
    pub http_listener: Option<std::net::SocketAddr>,
    // ----- logging (issue 12) -----
    /// `log.level`: the log filter when `RUST_LOG` is unset; a log4j level name (`INFO`,
    /// `DEBUG`, ...) or `RUST_LOG`-style directives, validated by
    /// [`crate::logging::parse_filter`]; default `info`.
    pub log_level: String,
    // --- Record validation on append (Kafka's LogValidator; issue 9) ---
    /// `log.message.timestamp.before.max.ms`: how far in ms a CreateTime timestamp may lie
    /// before the broker's clock (KIP-937); default Long.MAX_VALUE (no bound), at least 0.
    pub log_message_timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms`: how far in ms a CreateTime timestamp may lie after
    /// the broker's clock (KIP-937); default 3600000 (Kafka 4), at least 0.
    pub log_message_timestamp_after_max_ms: i64,
    /// `compression.gzip.level` (KIP-390): gzip level when the broker recompresses; 1-9, or
    /// -1 (default) for the codec's default (6).
    pub compression_gzip_level: i32,
    /// `compression.zstd.level` (KIP-390): zstd level when the broker recompresses;
    /// -131072..=22, default 3.
    pub compression_zstd_level: i32,
    // --- Transactions (issue 10): Kafka's `TransactionStateManagerConfig` /
    // `TransactionLogConfig` names and defaults ---
    /// `transaction.max.timeout.ms`: largest `transaction.timeout.ms` a producer may ask for
    /// (INVALID_TRANSACTION_TIMEOUT above); default 900000, at least 1.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an idle transactional id is removed after this many
    /// ms; default 604800000, at least 1.
    pub transactional_id_expiration_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often transactions
    /// past their timeout are aborted; default 10000, at least 1.
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: i32,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often expired
    /// transactional ids are removed; default 3600000, at least 1.
    pub transaction_remove_expired_transaction_cleanup_interval_ms: i32,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`; default 50.
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.state.log.segment.bytes`: `segment.bytes` of `__transaction_state`;
    /// default 104857600, at least 1.
    pub transaction_state_log_segment_bytes: i32,
    /// `transaction.state.log.replication.factor`; 1, the only value allowed (as
    /// `offsets.topic.replication.factor`).
    pub transaction_state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr`; 1, the only value allowed.
    pub transaction_state_log_min_isr: i32,
    /// `transaction.state.log.load.buffer.size`: bytes read per step when loading
    /// `__transaction_state`; default 5242880, at least 1 (a batch larger than this is still
    /// read whole).
    pub transaction_state_log_load_buffer_size: i32,
    /// `transaction.partition.verification.enable` (KIP-890): verify that a transactional
    /// produce goes to a partition of the ongoing transaction; default true.
    pub transaction_partition_verification_enable: bool,
    // --- Authorization (issue 11): Kafka's StandardAuthorizer settings ---
    /// `authorizer.class.name`, `super.users`, `allow.everyone.if.no.acl.found`.
    pub authorizer: AuthorizerConfig,
    /// Floods (issue 14): connection limits, idle connections, unsent-bytes cap.
    pub connection_limits: ConnectionLimits,
    /// Effective value of every property, for DescribeConfigs.
    effective: BTreeMap<&'static str, Option<String>>,
    /// Properties set by the file, a flag or `--set` (alias names resolved).
    set_by_user: BTreeSet<&'static str>,
    /// Values set at start-up (file, flags, `--set`) by canonical name: STATIC_BROKER_CONFIG.
    static_values: BTreeMap<&'static str, String>,
    /// Dynamic cluster-wide defaults (broker resource ""): DYNAMIC_DEFAULT_BROKER_CONFIG.
    dynamic_default: BTreeMap<String, String>,
    /// Dynamic configs of this broker (resource "<node.id>"): DYNAMIC_BROKER_CONFIG.
    dynamic_broker: BTreeMap<String, String>,
    /// Kafka settings accepted without effect: (setting as given, why it means nothing here).
    /// Start-up logs one warning line for each ([`BrokerConfig::ignored_settings`]).
    ignored: Vec<(String, &'static str)>,
    /// Listener-prefixed settings (`listener.name.<listener>.<property>`, Kafka's per-listener
    /// overrides, e.g. `listener.name.sasl_ssl.ssl.keystore.location` or
    /// `listener.name.sasl_ssl.plain.sasl.jaas.config`), by full name; see
    /// [`BrokerConfig::listener_property`].
    listener_overrides: BTreeMap<String, String>,
}

/// Per-topic settings with Kafka's topic-level names (`segment.bytes`, ...). Defaults come
/// from the broker's `log.*` properties ([`BrokerConfig::default_topic_config`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// `segment.bytes`: segment size in bytes, at least 14.
    pub segment_bytes: i32,
    /// `segment.ms`: roll a segment older than this many ms, at least 1.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments older than this many ms; -1 = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`: per-partition size limit in bytes; -1 = unlimited.
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest record batch in bytes.
    pub max_message_bytes: i32,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `compression.type`.
    pub compression_type: CompressionType,
    /// `index.interval.bytes`: bytes of log between offset index entries.
    pub index_interval_bytes: i32,
    /// `segment.index.bytes`: maximum offset index size in bytes, at least 4.
    pub segment_index_bytes: i32,
    /// `preallocate`: write zeros ahead of the active segment's appends (`log.preallocate`).
    pub preallocate: bool,
    /// `min.insync.replicas`, at least 1.
    pub min_insync_replicas: i32,
    // --- Log cleaner (compaction) topic configs, Kafka's `TopicConfig` names ---
    /// `delete.retention.ms`: how long a tombstone stays after the cleaner first saw it
    /// (KIP-534 delete horizon), ms, at least 0.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: dirty / (clean + dirty) bytes above which the log is
    /// cleaned, in [0, 1].
    pub min_cleanable_dirty_ratio: Ratio,
    /// `min.compaction.lag.ms`: records younger than this (by segment largest timestamp) are not
    /// compacted, ms, at least 0.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty segment whose first batch is older than this is
    /// cleaned whatever the ratio; also caps `segment.ms` of compacted topics; ms, at least 1.
    pub max_compaction_lag_ms: i64,
    // --- Record validation on append (Kafka's LogValidator; issue 9) ---
    /// `message.timestamp.before.max.ms` (KIP-937), ms, at least 0.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (KIP-937), ms, at least 0.
    pub message_timestamp_after_max_ms: i64,
    /// `compression.gzip.level` (KIP-390): 1-9, or -1 for the codec's default.
    pub compression_gzip_level: i32,
    /// `compression.zstd.level` (KIP-390): -131072..=22.
    pub compression_zstd_level: i32,
}

/// A `DOUBLE` property in [0, 1] (`min.cleanable.dirty.ratio`); never NaN, so it is `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratio(pub f64);

impl Eq for Ratio {}

impl FromStr for Ratio {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(Ratio(v)),
            _ => Err("expected a number in [0, 1]".to_string()),
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Java's Double.toString writes at least one fractional digit (0.5, 1.0).
        if self.0.fract() == 0.0 {
            write!(f, "{:.1}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// One row of a DescribeConfigs answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Where the value comes from (Kafka's `ConfigSource`): the first synonym's source, or
    /// DEFAULT_CONFIG when there is none.
    pub source: ConfigSource,
    /// Kafka's synonyms, most specific first (`ConfigHelper.createTopicConfigEntry` /
    /// `configSynonyms`): the topic override, then this broker's dynamic value, the dynamic
    /// cluster default, the static value and Kafka's default of the broker-level names.
    pub synonyms: Vec<ConfigSynonym>,
    /// Kafka's `ConfigDef.Type` of the property.
    pub config_type: ConfigType,
    /// One-line documentation (DescribeConfigs v3+), where Ringtail has it.
    pub documentation: Option<&'static str>,
    /// Kafka property name.
    pub name: String,
    /// Effective value; `None` for a property that is unset and has no default.
    pub value: Option<String>,
    /// True when the value is the default (not set by file, flag, `--set` or topic override).
    pub is_default: bool,
    /// True when the value cannot be changed at run time (every broker property).
    pub read_only: bool,
    /// True for secrets; no Ringtail property is one.
    pub sensitive: bool,
}

impl BrokerConfig {
    /// Builds the configuration from `ringtail serve` arguments: defaults, then the
    /// `--config` file, then the flags, then every `--set` in order.
    pub fn from_args(args: &ServeArgs) -> Result<BrokerConfig, ConfigError> {
        let mut overrides = Vec::new();
        let flags = [
            ("listeners", args.listeners.clone()),
            ("advertised.listeners", args.advertised_listeners.clone()),
            ("log.dirs", args.log_dirs.clone()),
            ("ringtail.shards", args.shards.map(|n| n.to_string())),
        ];
        for (name, value) in flags {
            if let Some(value) = value {
                overrides.push((name.to_string(), value));
            }
        }
        overrides.extend(args.set.iter().cloned());
        Self::load(args.config.as_deref(), &overrides)
    }

    /// Builds the configuration from an optional file (TOML if the name ends in `.toml`, else
    /// Java properties) and `(name, value)` overrides applied after it, later ones winning.
    pub fn load(
        file: Option<&Path>,
        overrides: &[(String, String)],
    ) -> Result<BrokerConfig, ConfigError> {
        let mut layers = Layers::default();
        if let Some(path) = file {
            let origin = format!("config file {}", path.display());
            for (name, value) in read_config_file(path)? {
                layers.set(0, &name, &value, &origin)?;
            }
        }
        for (index, (name, value)) in overrides.iter().enumerate() {
            layers.set(index + 1, name, value, "command line")?;
        }
        Self::from_layers(layers)
    }

    /// The data directory: the first entry of `log.dirs`.
    pub fn log_dir(&self) -> &Path {
        // `log.dirs` parsing refuses an empty list, so there is always a first entry.
        self.log_dirs
            .first()
            .map(PathBuf::as_path)
            .unwrap_or(Path::new(DEFAULT_LOG_DIR))
    }

    /// Number of shards to start: `ringtail.shards`, or every online core when it is 0.
    pub fn shard_count(&self) -> usize {
        if self.shards == 0 {
            online_cores()
        } else {
            self.shards as usize
        }
    }

    /// Topic defaults taken from the broker's `log.*` properties, as Kafka's LogConfig does.
    pub fn default_topic_config(&self) -> TopicConfig {
        TopicConfig {
            segment_bytes: self.log_segment_bytes,
            segment_ms: self.log_roll_ms,
            retention_ms: self.log_retention_ms,
            retention_bytes: self.log_retention_bytes,
            max_message_bytes: self.message_max_bytes,
            cleanup_policy: self.log_cleanup_policy,
            message_timestamp_type: self.log_message_timestamp_type,
            compression_type: self.compression_type,
            index_interval_bytes: self.log_index_interval_bytes,
            segment_index_bytes: self.log_index_size_max_bytes,
            preallocate: self.log_preallocate,
            min_insync_replicas: self.min_insync_replicas,
            delete_retention_ms: self.log_cleaner_delete_retention_ms,
            min_cleanable_dirty_ratio: self.log_cleaner_min_cleanable_ratio,
            min_compaction_lag_ms: self.log_cleaner_min_compaction_lag_ms,
            max_compaction_lag_ms: self.log_cleaner_max_compaction_lag_ms,
            message_timestamp_before_max_ms: self.log_message_timestamp_before_max_ms,
            message_timestamp_after_max_ms: self.log_message_timestamp_after_max_ms,
            compression_gzip_level: self.compression_gzip_level,
            compression_zstd_level: self.compression_zstd_level,
        }
    }

    /// Warnings for consumer group settings that have no effect on Ringtail.
    pub fn consumer_group_warnings(&self) -> Vec<String> {
        consumer_group::warnings(
            self.set_by_user
                .contains("group.coordinator.rebalance.protocols"),
            self.set_by_user.contains("group.consumer.migration.policy"),
            &self.consumer_group,
        )
    }

    /// Warnings for cleaner settings that mean nothing on Ringtail (one cleaner per shard).
    pub fn cleaner_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.set_by_user.contains("log.cleaner.threads") {
            warnings.push(format!(
                "log.cleaner.threads={} has no effect: Ringtail runs one log cleaner per shard",
                self.log_cleaner_threads
            ));
        }
        warnings
    }

    /// Every broker property (aliases included) for DescribeConfigs of this broker, sorted by
    /// name: sources and synonyms as Kafka's `ConfigHelper` gives them; only the properties in
    /// [`TOPIC_CONFIG_SYNONYMS`] (Kafka's `DynamicLogConfig.ReconfigurableConfigs`) are not
    /// read-only.
    pub fn describe(&self) -> Vec<ConfigEntry> {
        let mut entries = Vec::with_capacity(BROKER_PROPERTIES.len() + 2);
        for property in BROKER_PROPERTIES {
            let sensitive = is_sensitive(property.name);
            let value = self
                .effective
                .get(property.name)
                .cloned()
                .flatten()
                .filter(|_| !sensitive);
            for name in std::iter::once(property.name).chain(property.alias) {
                let mut synonyms = self.broker_synonyms(property.name);
                if sensitive {
                    synonyms.iter_mut().for_each(|s| s.value = None);
                }
                entries.push(ConfigEntry {
                    name: name.to_string(),
                    value: value.clone(),
                    is_default: synonyms.is_empty() || synonyms[0].source == ConfigSource::Default,
                    read_only: !is_dynamic_broker_config(property.name),
                    sensitive,
                    source: synonyms.first().map_or(ConfigSource::Default, |s| s.source),
                    synonyms,
                    config_type: broker_config_type(property.name),
                    documentation: documentation(property.name),
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    fn from_layers(layers: Layers) -> Result<BrokerConfig, ConfigError> {
        let controller_names = layers
            .ignored
            .get("controller.listener.names")
            .cloned()
            .unwrap_or_default();
        let mut ignored = ignored_settings(&layers);
        let listeners_value = without_controller_listeners(
            "listeners",
            layers.get("listeners"),
            &controller_names,
            &mut ignored,
        );
        let protocol_map = parse_protocol_map(layers.get("listener.security.protocol.map"))?;
        let mut listeners = parse_listeners("listeners", &listeners_value, false)?;
        resolve_protocols("listeners", &mut listeners, &protocol_map)?;
        let mut advertised_listeners = match layers.value("advertised.listeners") {
            Some(value) => parse_listeners(
                "advertised.listeners",
                &without_controller_listeners(
                    "advertised.listeners",
                    value,
                    &controller_names,
                    &mut ignored,
                ),
                true,
            )?,
            None => listeners.iter().map(advertisable).collect(),
        };
        resolve_protocols(
            "advertised.listeners",
            &mut advertised_listeners,
            &protocol_map,
        )?;
        check_advertised(&listeners, &advertised_listeners)?;
        let log_dirs = parse_log_dirs(&layers)?;
        let group_min_session_timeout_ms = layers.int("group.min.session.timeout.ms", 0, MAX32)?;
        let group_max_session_timeout_ms = layers.int("group.max.session.timeout.ms", 0, MAX32)?;
        if group_max_session_timeout_ms < group_min_session_timeout_ms {
            return Err(invalid(
                "group.max.session.timeout.ms",
                &group_max_session_timeout_ms.to_string(),
                format!(
                    "must not be below group.min.session.timeout.ms ({group_min_session_timeout_ms})"
                ),
            ));
        }
        let listeners_for_limits: Vec<String> = listeners.iter().map(|l| l.name.clone()).collect();
        let config = BrokerConfig {
            node_id: layers.int("node.id", 0, MAX32)?,
            listeners,
            advertised_listeners,
            log_dirs,
            num_partitions: layers.int("num.partitions", 1, MAX32)?,
            default_replication_factor: layers.int("default.replication.factor", 1, 1)?,
            auto_create_topics_enable: layers.boolean("auto.create.topics.enable")?,
            delete_topic_enable: layers.boolean("delete.topic.enable")?,
            log_segment_bytes: layers.int("log.segment.bytes", SEGMENT_BYTES_MIN, MAX32)?,
            log_roll_ms: resolve_roll_ms(&layers)?,
            log_retention_ms: resolve_retention_ms(&layers)?,
            log_retention_bytes: layers.int("log.retention.bytes", -1, i64::MAX)?,
            log_retention_check_interval_ms: layers.int(
                "log.retention.check.interval.ms",
                1,
                i64::MAX,
            )?,
            log_index_interval_bytes: layers.int("log.index.interval.bytes", 0, MAX32)?,
            log_index_size_max_bytes: layers.int("log.index.size.max.bytes", 4, MAX32)?,
            log_preallocate: layers.boolean("log.preallocate")?,
            message_max_bytes: layers.int("message.max.bytes", 0, MAX32)?,
            socket_request_max_bytes: layers.int("socket.request.max.bytes", 1, MAX32)?,
            queued_max_requests: layers.int("queued.max.requests", 1, MAX32)?,
            log_message_timestamp_type: layers.parse("log.message.timestamp.type")?,
            compression_type: layers.parse("compression.type")?,
            log_cleanup_policy: layers.parse("log.cleanup.policy")?,
            min_insync_replicas: layers.int("min.insync.replicas", 1, MAX32)?,
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            group_initial_rebalance_delay_ms: layers.int(
                "group.initial.rebalance.delay.ms",
                0,
                MAX32,
            )?,
            offsets_topic_num_partitions: layers.int("offsets.topic.num.partitions", 1, MAX32)?,
            offsets_topic_replication_factor: layers.int(
                "offsets.topic.replication.factor",
                1,
                1,
            )?,
            offsets_retention_minutes: layers.int("offsets.retention.minutes", 1, MAX32)?,
            consumer_group: consumer_group::parse(&layers)?,
            fetch_max_bytes: layers.int("fetch.max.bytes", 1024, MAX32)?,
            // Fetch sessions (KIP-227).
            max_incremental_fetch_session_cache_slots: layers.int(
                "max.incremental.fetch.session.cache.slots",
                0,
                MAX32,
            )?,
            shards: parse_shards(&layers)?,
            io_memory_bytes: layers.int(
                "ringtail.io.memory.bytes",
                IO_MEMORY_BYTES_MIN,
                u64::MAX,
            )?,
            partition_cache_bytes: layers.int("ringtail.partition.cache.bytes", 0, u64::MAX)?,
            fetch_read_ahead_bytes: layers.int("ringtail.fetch.read.ahead.bytes", 0, u64::MAX)?,
            log_cleaner_enable: layers.boolean("log.cleaner.enable")?,
            log_cleaner_backoff_ms: layers.int("log.cleaner.backoff.ms", 0, i64::MAX)?,
            log_cleaner_dedupe_buffer_size: layers.int(
                "log.cleaner.dedupe.buffer.size",
                0,
                i64::MAX,
            )?,
            log_cleaner_threads: layers.int("log.cleaner.threads", 0, MAX32)?,
            log_cleaner_delete_retention_ms: layers.int(
                "log.cleaner.delete.retention.ms",
                0,
                i64::MAX,
            )?,
            log_cleaner_min_cleanable_ratio: layers.parse("log.cleaner.min.cleanable.ratio")?,
            log_cleaner_min_compaction_lag_ms: layers.int(
                "log.cleaner.min.compaction.lag.ms",
                0,
                i64::MAX,
            )?,
            log_cleaner_max_compaction_lag_ms: layers.int(
                "log.cleaner.max.compaction.lag.ms",
                1,
                i64::MAX,
            )?,
            offsets_topic_segment_bytes: layers.int("offsets.topic.segment.bytes", 1, MAX32)?,
            http_listener: parse_http_listener(layers.get("ringtail.http.listener"))?,
            log_level: parse_log_level(&layers)?,
            log_message_timestamp_before_max_ms: layers.int(
                "log.message.timestamp.before.max.ms",
                0,
                i64::MAX,
            )?,
            log_message_timestamp_after_max_ms: layers.int(
                "log.message.timestamp.after.max.ms",
                0,
                i64::MAX,
            )?,
            compression_gzip_level: parse_gzip_level(
                "compression.gzip.level",
                layers.get("compression.gzip.level"),
            )?,
            compression_zstd_level: layers.int(
                "compression.zstd.level",
                ZSTD_LEVEL_MIN,
                ZSTD_LEVEL_MAX,
            )?,
            transaction_max_timeout_ms: layers.int("transaction.max.timeout.ms", 1, MAX32)?,
            transactional_id_expiration_ms: layers.int(
                "transactional.id.expiration.ms",
                1,
                MAX32,
            )?,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: layers.int(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                1,
                MAX32,
            )?,
            transaction_remove_expired_transaction_cleanup_interval_ms: layers.int(
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                1,
                MAX32,
            )?,
            transaction_state_log_num_partitions: layers.int(
                "transaction.state.log.num.partitions",
                1,
                MAX32,
            )?,
            transaction_state_log_segment_bytes: layers.int(
                "transaction.state.log.segment.bytes",
                1,
                MAX32,
            )?,
            transaction_state_log_replication_factor: layers.int(
                "transaction.state.log.replication.factor",
                1,
                1,
            )?,
            transaction_state_log_min_isr: layers.int("transaction.state.log.min.isr", 1, 1)?,
            transaction_state_log_load_buffer_size: layers.int(
                "transaction.state.log.load.buffer.size",
                1,
                MAX32,
            )?,
            transaction_partition_verification_enable: layers
                .boolean("transaction.partition.verification.enable")?,
            authorizer: parse_authorizer(&layers)?,
            connection_limits: parse_connection_limits(&layers, &listeners_for_limits)?,
            effective: BTreeMap::new(),
            set_by_user: layers.set_by_user.clone(),
            static_values: layers
                .values
                .iter()
                .map(|(name, v)| (*name, v.value.clone()))
                .collect(),
            dynamic_default: BTreeMap::new(),
            dynamic_broker: BTreeMap::new(),
            ignored,
            listener_overrides: layers.listener_overrides.clone(),
        };
        let mut effective: BTreeMap<&'static str, Option<String>> = BROKER_PROPERTIES
            .iter()
            .map(|p| (p.name, layers.value(p.name).map(str::to_string)))
            .collect();
        effective.insert(
            "advertised.listeners",
            Some(render_listeners(&config.advertised_listeners)),
        );
        Ok(BrokerConfig {
            effective,
            ..config
        })
    }
}

impl Default for BrokerConfig {
    /// Every property at its default.
    fn default() -> Self {
        match Self::from_layers(Layers::default()) {
            Ok(config) => config,
            Err(error) => unreachable!("built-in defaults are invalid: {error}"),
        }
    }
}

impl TopicConfig {
    /// Applies CreateTopics / AlterConfigs topic configs, later entries winning. An unknown
    /// name, an invalid value or a null value (Kafka refuses null topic configs in
    /// CreateTopics) is an error naming the property; callers answer INVALID_CONFIG (40).
    pub fn with_overrides(
        &self,
        overrides: &[(String, Option<String>)],
    ) -> Result<TopicConfig, ConfigError> {
        let mut config = self.clone();
        for (name, value) in overrides {
            let Some(value) = value else {
                return Err(invalid(
                    name,
                    "null",
                    "null topic config values are not supported",
                ));
            };
            config.set(name, value)?;
        }
        Ok(config)
    }

    /// Rebuilds a topic's configuration from overrides saved by [`TopicConfig::overrides_map`].
    pub fn with_override_map(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ConfigError> {
        let mut config = self.clone();
        for (name, value) in overrides {
            config.set(name, value)?;
        }
        Ok(config)
    }

    /// The properties whose value differs from `defaults`, by Kafka topic-level name: what the
    /// broker persists for a topic (e.g. as JSON with serde_json).
    pub fn overrides_map(&self, defaults: &TopicConfig) -> BTreeMap<String, String> {
        let defaults = defaults.values();
        self.values()
            .into_iter()
            .zip(defaults)
            .filter(|((_, value), (_, default))| value != default)
            .map(|((name, value), _)| (name.to_string(), value))
            .collect()
    }

    /// Every topic-level property for DescribeConfigs; `is_default` when equal to `defaults`.
    pub fn describe(&self, defaults: &TopicConfig) -> Vec<ConfigEntry> {
        self.values()
            .into_iter()
            .zip(defaults.values())
            .map(|((name, value), (_, default))| ConfigEntry {
                name: name.to_string(),
                is_default: value == default,
                source: if value == default {
                    ConfigSource::Default
                } else {
                    ConfigSource::DynamicTopic
                },
                value: Some(value),
                read_only: false,
                sensitive: false,
                synonyms: Vec::new(),
                config_type: topic_config_type(name),
                documentation: documentation(name),
            })
            .collect()
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let v = value.trim();
        match name {
            "segment.bytes" => self.segment_bytes = parse_int(name, v, SEGMENT_BYTES_MIN, MAX32)?,
            "segment.ms" => self.segment_ms = parse_int(name, v, 1, i64::MAX)?,
            "retention.ms" => self.retention_ms = parse_int(name, v, -1, i64::MAX)?,
            "retention.bytes" => self.retention_bytes = parse_int(name, v, -1, i64::MAX)?,
            "max.message.bytes" => self.max_message_bytes = parse_int(name, v, 0, MAX32)?,
            "cleanup.policy" => self.cleanup_policy = parse_value(name, v)?,
            "message.timestamp.type" => self.message_timestamp_type = parse_value(name, v)?,
            "compression.type" => self.compression_type = parse_value(name, v)?,
            "index.interval.bytes" => self.index_interval_bytes = parse_int(name, v, 0, MAX32)?,
            "segment.index.bytes" => self.segment_index_bytes = parse_int(name, v, 4, MAX32)?,
            "preallocate" => self.preallocate = parse_bool(name, v)?,
            "min.insync.replicas" => self.min_insync_replicas = parse_int(name, v, 1, MAX32)?,
            // Log cleaner (compaction).
            "delete.retention.ms" => self.delete_retention_ms = parse_int(name, v, 0, i64::MAX)?,
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio = parse_value(name, v)?,
            "min.compaction.lag.ms" => {
                self.min_compaction_lag_ms = parse_int(name, v, 0, i64::MAX)?
            }
            "max.compaction.lag.ms" => {
                self.max_compaction_lag_ms = parse_int(name, v, 1, i64::MAX)?
            }
            // Record validation on append (issue 9).
            "message.timestamp.before.max.ms" => {
                self.message_timestamp_before_max_ms = parse_int(name, v, 0, i64::MAX)?
            }
            "message.timestamp.after.max.ms" => {
                self.message_timestamp_after_max_ms = parse_int(name, v, 0, i64::MAX)?
            }
            "compression.gzip.level" => self.compression_gzip_level = parse_gzip_level(name, v)?,
            "compression.zstd.level" => {
                self.compression_zstd_level = parse_int(name, v, ZSTD_LEVEL_MIN, ZSTD_LEVEL_MAX)?
            }
            _ => {
                return Err(ConfigError::UnknownProperty {
                    name: name.to_string(),
                    value: value.to_string(),
                    origin: "topic configs".to_string(),
                })
            }
        }
        Ok(())
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        let mut values = vec![
            ("cleanup.policy", self.cleanup_policy.to_string()),
            ("compression.type", self.compression_type.to_string()),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
            (
                "index.interval.bytes",
                self.index_interval_bytes.to_string(),
            ),
            (
                "max.compaction.lag.ms",
                self.max_compaction_lag_ms.to_string(),
            ),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            (
                "message.timestamp.type",
                self.message_timestamp_type.to_string(),
            ),
            (
                "min.cleanable.dirty.ratio",
                self.min_cleanable_dirty_ratio.to_string(),
            ),
            (
                "min.compaction.lag.ms",
                self.min_compaction_lag_ms.to_string(),
            ),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            ("preallocate", self.preallocate.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("retention.ms", self.retention_ms.to_string()),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.index.bytes", self.segment_index_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
        ];
        // Record validation on append (issue 9).
        values.extend([
            (
                "compression.gzip.level",
                self.compression_gzip_level.to_string(),
            ),
            (
                "compression.zstd.level",
                self.compression_zstd_level.to_string(),
            ),
            (
                "message.timestamp.after.max.ms",
                self.message_timestamp_after_max_ms.to_string(),
            ),
            (
                "message.timestamp.before.max.ms",
                self.message_timestamp_before_max_ms.to_string(),
            ),
        ]);
        values
    }
}

impl Default for TopicConfig {
    /// The topic defaults of a broker with every property at its default.
    fn default() -> Self {
        BrokerConfig::default().default_topic_config()
    }
}

/// TLS (issue 11): Kafka's PASSWORD-typed properties, whose values DescribeConfigs never shows
/// (`sensitive`, value null).
fn is_sensitive(name: &str) -> bool {
    matches!(
        name,
        "ssl.keystore.password"
            | "ssl.key.password"
            | "ssl.keystore.key"
            | "ssl.keystore.certificate.chain"
            | "ssl.truststore.password"
            | "ssl.truststore.certificates"
    ) || name.ends_with("sasl.jaas.config")
}

/// Kafka's prefix of per-listener settings (`ListenerName.configPrefix`).
const LISTENER_PREFIX: &str = "listener.name.";

/// Broker properties outside the `ssl.*` / `sasl.*` families that may be set per listener
/// (each must be read through [`BrokerConfig::listener_property`] where it takes effect).
const LISTENER_OVERRIDABLE: &[&str] = &[
    // SASL (issue 11): Kafka reads these per listener (and per mechanism).
    "connections.max.reauth.ms",
    "connection.failed.authentication.delay.ms",
    // Floods (issue 14): Kafka's per-listener connection limit (ConnectionQuotas).
    "max.connections",
];

impl BrokerConfig {
    /// The per-listener override of `property` for listener `listener` (Kafka's
    /// `listener.name.<listener lower case>.<property>`), if set; the caller falls back to the
    /// broker-wide value. `property` may carry a SASL mechanism prefix, e.g.
    /// `listener_property("SASL_SSL", "scram-sha-256.sasl.jaas.config")`.
    pub fn listener_property(&self, listener: &str, property: &str) -> Option<&str> {
        self.listener_overrides
            .get(&format!(
                "{LISTENER_PREFIX}{}.{property}",
                listener.to_ascii_lowercase()
            ))
            .map(String::as_str)
    }

    /// TLS (issue 11): the effective value of broker property `property` for listener
    /// `listener`: its `listener.name.<listener>.<property>` override, else the broker-wide
    /// value, else Kafka's default; `None` when none exists.
    pub fn listener_or_broker_property(&self, listener: &str, property: &str) -> Option<&str> {
        self.listener_property(listener, property)
            .or_else(|| self.effective.get(property).and_then(|v| v.as_deref()))
    }

    /// TLS (issue 11): whether `property` was set (file, flag or `--set`), broker-wide or for
    /// `listener`, rather than left at its default.
    pub fn property_is_set(&self, listener: &str, property: &str) -> bool {
        self.listener_property(listener, property).is_some() || self.set_by_user.contains(property)
    }

    /// The value of broker property `name` as set at start-up, else its default; `None` when
    /// neither exists (SASL settings are read this way by `security::sasl`).
    pub fn property_value(&self, name: &str) -> Option<&str> {
        self.effective.get(name).and_then(|v| v.as_deref())
    }

    /// Every `listener.name.*` setting, by full name, e.g. for start-up validation.
    pub fn listener_overrides(&self) -> &BTreeMap<String, String> {
        &self.listener_overrides
    }

    /// The address Metadata, FindCoordinator and DescribeCluster give a client connected on
    /// listener `name`: its entry in `advertised.listeners`, else the bound address (0.0.0.0 as
    /// 127.0.0.1). Kafka answers each client with the endpoints of its own listener.
    pub fn advertised_listener(&self, name: &str) -> Listener {
        self.advertised_listeners
            .iter()
            .find(|l| l.name == name)
            .cloned()
            .or_else(|| {
                self.listeners
                    .iter()
                    .find(|l| l.name == name)
                    .map(advertisable)
            })
            .unwrap_or_else(|| self.advertised_listeners[0].clone())
    }
}

impl Listener {
    /// `NAME://host:port`, with IPv6 hosts in brackets.
    pub fn to_url(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            format!("{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_url())
    }
}

impl FromStr for TimestampType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "CreateTime" => Ok(TimestampType::CreateTime),
            "LogAppendTime" => Ok(TimestampType::LogAppendTime),
            _ => Err("String must be one of: CreateTime, LogAppendTime".to_string()),
        }
    }
}

impl fmt::Display for TimestampType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        })
    }
}

impl FromStr for CompressionType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // Kafka compares case-insensitively (CompressionType.forName lower-cases).
        match s.to_ascii_lowercase().as_str() {
            "uncompressed" => Ok(CompressionType::Uncompressed),
            "gzip" => Ok(CompressionType::Gzip),
            "snappy" => Ok(CompressionType::Snappy),
            "lz4" => Ok(CompressionType::Lz4),
            "zstd" => Ok(CompressionType::Zstd),
            "producer" => Ok(CompressionType::Producer),
            _ => Err(
                "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"
                    .to_string(),
            ),
        }
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
            CompressionType::Producer => "producer",
        })
    }
}

impl FromStr for CleanupPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut delete = false;
        let mut compact = false;
        for item in s.split(',').map(str::trim) {
            match item.to_ascii_lowercase().as_str() {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => return Err("String must be one of: compact, delete".to_string()),
            }
        }
        match (compact, delete) {
            (true, true) => Ok(CleanupPolicy::CompactDelete),
            (true, false) => Ok(CleanupPolicy::Compact),
            (false, _) => Ok(CleanupPolicy::Delete),
        }
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        })
    }
}

/// Parses one `--set key=value` argument (the value may contain `=`).
pub fn parse_set_argument(argument: &str) -> Result<(String, String), ConfigError> {
    match argument.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(ConfigError::SetArgument {
            argument: argument.to_string(),
        }),
    }
}

/// Smallest `log.segment.bytes` / `segment.bytes` (Kafka: LegacyRecord.RECORD_OVERHEAD_V0).
pub const SEGMENT_BYTES_MIN: i32 = 14;
/// Smallest `ringtail.io.memory.bytes`: 64 KiB.
pub const IO_MEMORY_BYTES_MIN: u64 = 65_536;
const SEGMENT_BYTES_DEFAULT: i32 = 1_073_741_824;
const IO_MEMORY_BYTES_DEFAULT: u64 = 2_097_152;
const DEFAULT_LOG_DIR: &str = "./data";
const MAX32: i32 = i32::MAX;
const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_HOUR: i64 = 3_600_000;

const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT);
const _: () = assert!(IO_MEMORY_BYTES_MIN <= IO_MEMORY_BYTES_DEFAULT);

/// A broker property: canonical Kafka name, optional alias, default as Kafka writes it.
struct BrokerProperty {
    name: &'static str,
    alias: Option<&'static str>,
    default: Option<&'static str>,
}

const fn property(name: &'static str, default: Option<&'static str>) -> BrokerProperty {
    BrokerProperty {
        name,
        alias: None,
        default,
    }
}

const BROKER_PROPERTIES: &[BrokerProperty] = &[
    // ----- TLS (issue 11; src/security/tls.rs reads these, per listener through
    // `BrokerConfig::listener_or_broker_property`). Kafka's names and defaults
    // (`SslConfigs` / `BrokerSecurityConfigs`). -----
    property("ssl.keystore.type", Some("JKS")),
    property("ssl.keystore.location", None),
    property("ssl.keystore.password", None),
    property("ssl.key.password", None),
    property("ssl.keystore.certificate.chain", None),
    property("ssl.keystore.key", None),
    property("ssl.truststore.type", Some("JKS")),
    property("ssl.truststore.location", None),
    property("ssl.truststore.password", None),
    property("ssl.truststore.certificates", None),
    property("ssl.client.auth", Some("none")),
    property("ssl.principal.mapping.rules", Some("DEFAULT")),
    property("ssl.enabled.protocols", Some("TLSv1.2,TLSv1.3")),
    property("ssl.protocol", Some("TLSv1.3")),
    property("ssl.cipher.suites", None),
    // Accepted for compatibility; src/security/tls.rs warns that they have no effect.
    property("ssl.keymanager.algorithm", Some("SunX509")),
    property("ssl.trustmanager.algorithm", Some("PKIX")),
    property("ssl.secure.random.implementation", None),
    property("ssl.endpoint.identification.algorithm", Some("https")),
    property("ssl.provider", None),
    property("ssl.engine.factory.class", None),
    property("ssl.allow.dn.changes", Some("false")),
    property("ssl.allow.san.changes", Some("false")),
    // Ringtail's bound on a TLS handshake (Kafka has none short of connections.max.idle.ms).
    property("ringtail.ssl.handshake.timeout.ms", Some("10000")),
    // ----- end of TLS -----
    BrokerProperty {
        name: "node.id",
        alias: Some("broker.id"),
        default: Some("0"),
    },
    property("listeners", Some("PLAINTEXT://127.0.0.1:9092")),
    property("advertised.listeners", None),
    property(
        "listener.security.protocol.map",
        Some(DEFAULT_SECURITY_PROTOCOL_MAP),
    ),
    BrokerProperty {
        name: "log.dirs",
        alias: Some("log.dir"),
        default: Some(DEFAULT_LOG_DIR),
    },
    property("num.partitions", Some("1")),
    property("default.replication.factor", Some("1")),
    property("auto.create.topics.enable", Some("true")),
    property("delete.topic.enable", Some("true")),
    property("log.segment.bytes", Some("1073741824")),
    property("log.roll.ms", None),
    property("log.roll.hours", Some("168")),
    property("log.retention.ms", None),
    property("log.retention.minutes", None),
    property("log.retention.hours", Some("168")),
    property("log.retention.bytes", Some("-1")),
    property("log.retention.check.interval.ms", Some("300000")),
    property("log.index.interval.bytes", Some("4096")),
    property("log.index.size.max.bytes", Some("10485760")),
    property("log.preallocate", Some("false")),
    property("message.max.bytes", Some("1048588")),
    property("socket.request.max.bytes", Some("104857600")),
    property("queued.max.requests", Some("500")),
    property("log.message.timestamp.type", Some("CreateTime")),
    property("compression.type", Some("producer")),
    property("log.cleanup.policy", Some("delete")),
    property("min.insync.replicas", Some("1")),
    property("group.min.session.timeout.ms", Some("6000")),
    property("group.max.session.timeout.ms", Some("1800000")),
    property("group.initial.rebalance.delay.ms", Some("3000")),
    property("offsets.topic.num.partitions", Some("50")),
    property("offsets.topic.replication.factor", Some("1")),
    property("offsets.retention.minutes", Some("10080")),
    // KIP-848 consumer groups: Kafka 4.1's GroupCoordinatorConfig names and defaults
    // (parsed and checked in config/consumer_group.rs).
    property(
        "group.coordinator.rebalance.protocols",
        Some("classic,consumer,streams"),
    ),
    property("group.consumer.assignors", Some("uniform,range")),
    property("group.consumer.session.timeout.ms", Some("45000")),
    property("group.consumer.min.session.timeout.ms", Some("45000")),
    property("group.consumer.max.session.timeout.ms", Some("60000")),
    property("group.consumer.heartbeat.interval.ms", Some("5000")),
    property("group.consumer.min.heartbeat.interval.ms", Some("5000")),
    property("group.consumer.max.heartbeat.interval.ms", Some("15000")),
    property("group.consumer.max.size", Some("2147483647")),
    property("group.consumer.migration.policy", Some("bidirectional")),
    property("group.consumer.regex.refresh.interval.ms", Some("600000")),
    // ----- end of KIP-848 consumer groups -----
    property("fetch.max.bytes", Some("57671680")),
    // Fetch sessions (KIP-227): Kafka's name and default (ServerConfigs).
    property("max.incremental.fetch.session.cache.slots", Some("1000")),
    property("ringtail.shards", Some("0")),
    property("ringtail.io.memory.bytes", Some("2097152")),
    property("ringtail.partition.cache.bytes", Some("4194304")),
    property("ringtail.fetch.read.ahead.bytes", Some("67108864")),
    // Log cleaner (compaction): Kafka's names and defaults (CleanerConfig, ServerLogConfigs).
    property("log.cleaner.enable", Some("true")),
    property("log.cleaner.backoff.ms", Some("15000")),
    property("log.cleaner.dedupe.buffer.size", Some("134217728")),
    property("log.cleaner.threads", Some("1")),
    property("log.cleaner.delete.retention.ms", Some("86400000")),
    property("log.cleaner.min.cleanable.ratio", Some("0.5")),
    property("log.cleaner.min.compaction.lag.ms", Some("0")),
    property(
        "log.cleaner.max.compaction.lag.ms",
        Some("9223372036854775807"),
    ),
    // `__consumer_offsets` segments (Kafka's GroupCoordinatorConfig default).
    property("offsets.topic.segment.bytes", Some("104857600")),
    // operator HTTP listener (issue 12)
    property("ringtail.http.listener", Some("127.0.0.1:9644")),
    // ----- logging (issue 12): see crate::logging -----
    property("log.level", Some("info")),
    // Record validation on append (issue 9): Kafka's ServerLogConfigs defaults.
    property(
        "log.message.timestamp.before.max.ms",
        Some("9223372036854775807"),
    ),
    property("log.message.timestamp.after.max.ms", Some("3600000")),
    property("compression.gzip.level", Some("-1")),
    property("compression.zstd.level", Some("3")),
    // Transactions (issue 10): Kafka's TransactionStateManagerConfig / TransactionLogConfig
    // defaults; the replication factor and min ISR are 1 as for __consumer_offsets.
    property("transaction.max.timeout.ms", Some("900000")),
    property("transactional.id.expiration.ms", Some("604800000")),
    property(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        Some("10000"),
    ),
    property(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        Some("3600000"),
    ),
    property("transaction.state.log.num.partitions", Some("50")),
    property("transaction.state.log.segment.bytes", Some("104857600")),
    property("transaction.state.log.replication.factor", Some("1")),
    property("transaction.state.log.min.isr", Some("1")),
    property("transaction.state.log.load.buffer.size", Some("5242880")),
    property("transaction.partition.verification.enable", Some("true")),
    // ----- Authorization (issue 11): Kafka's names and defaults (see AuthorizerConfig) -----
    property("authorizer.class.name", Some("")),
    property("super.users", None),
    property("allow.everyone.if.no.acl.found", Some("false")),
    // ----- SASL (issue 11): read by crate::security::sasl::SaslConfig, per listener through
    // `listener.name.<l>.<property>` (or `.<mechanism>.<property>`). Kafka's names and defaults
    // (BrokerSecurityConfigs, SaslConfigs, SocketServerConfigs); GSSAPI, the default, is refused
    // at start-up on a SASL listener.
    property("sasl.enabled.mechanisms", Some("GSSAPI")),
    property("sasl.jaas.config", None),
    property("sasl.server.max.receive.size", Some("524288")),
    property("connection.failed.authentication.delay.ms", Some("100")),
    property("connections.max.reauth.ms", Some("0")),
    // Ringtail's bound on a SASL client that never completes authentication, ms.
    property("ringtail.sasl.authentication.timeout.ms", Some("30000")),
    // ----- Floods (issue 14): Kafka's SocketServerConfigs names and defaults; read by
    // network::connection_quotas and network::serve_connection (see ConnectionLimits). -----
    property("max.connections", Some("2147483647")),
    property("max.connections.per.ip", Some("2147483647")),
    property("max.connections.per.ip.overrides", Some("")),
    property("connections.max.idle.ms", Some("600000")),
    // Ringtail's cap on a connection's responses not yet written to its socket, bytes.
    property("ringtail.connection.max.unsent.bytes", Some("1048576")),
    // ----- end of floods -----
];

// ----- Floods (issue 14): connection limits and idle connections -----

/// Connection limits (Kafka's `ConnectionQuotas`, `SocketServerConfigs`) and per-connection
/// memory bounds, validated at start-up. Enforced in `network::connection_quotas` (counts are
/// broker-wide: shared atomics across shards) and `network::serve_connection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `max.connections`: connections over all listeners; default 2147483647, at least 0. At
    /// the limit a listener stops accepting (the accepted socket waits) until one closes, as
    /// Kafka's `Acceptor` blocks in `ConnectionQuotas.waitForConnectionSlot`.
    pub max_connections: i32,
    /// `listener.name.<listener>.max.connections`: per listener, by listener name (upper case);
    /// default the broker-wide value. Same blocking behaviour.
    pub listener_max_connections: BTreeMap<String, i32>,
    /// `max.connections.per.ip`: connections from one address; default 2147483647, at least 0
    /// (0 only with overrides, as Kafka). Over it the connection is closed right after accept
    /// (Kafka's `TooManyConnectionsException`).
    pub max_connections_per_ip: i32,
    /// `max.connections.per.ip.overrides`: `host:count,ip:count`; host names are resolved at
    /// start-up (Kafka's `InetAddress.getByName`).
    pub max_connections_per_ip_overrides: Vec<(String, i32)>,
    /// `connections.max.idle.ms`: a connection without a read or write for this long is closed
    /// (Kafka's `Selector` idle expiry); default 600000; negative: never.
    pub connections_max_idle_ms: i64,
    /// `ringtail.connection.max.unsent.bytes`: while a connection's finished responses not yet
    /// written to its socket exceed this, its next request is not read; default 1048576, at
    /// least 1. A single response larger than the cap is still sent whole.
    pub max_unsent_bytes: usize,
}

fn parse_connection_limits(
    layers: &Layers,
    listeners: &[String],
) -> Result<ConnectionLimits, ConfigError> {
    let max_connections = layers.int("max.connections", 0, MAX32)?;
    let max_connections_per_ip = layers.int("max.connections.per.ip", 0, MAX32)?;
    let overrides_name = "max.connections.per.ip.overrides";
    let overrides_value = layers.get(overrides_name);
    let mut max_connections_per_ip_overrides = Vec::new();
    for entry in overrides_value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let Some((host, count)) = entry.rsplit_once(':') else {
            return Err(invalid(
                overrides_name,
                overrides_value,
                format!("`{entry}` is not host:count"),
            ));
        };
        let count = parse_int(overrides_name, count.trim(), 0, MAX32)?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        max_connections_per_ip_overrides.push((host.to_string(), count));
    }
    if max_connections_per_ip == 0 && max_connections_per_ip_overrides.is_empty() {
        // Kafka's KafkaConfig.validateValues message.
        return Err(invalid(
            "max.connections.per.ip",
            "0",
            "max.connections.per.ip can be set to zero only if max.connections.per.ip.overrides \
             property is set.",
        ));
    }
    let mut listener_max_connections = BTreeMap::new();
    for listener in listeners {
        let key = format!(
            "{LISTENER_PREFIX}{}.max.connections",
            listener.to_ascii_lowercase()
        );
        if let Some(value) = layers.listener_overrides.get(&key) {
            let limit = parse_int(&key, value, 0, MAX32)?;
            listener_max_connections.insert(listener.clone(), limit);
        }
    }
    let connections_max_idle_ms = layers.int("connections.max.idle.ms", i64::MIN, i64::MAX)?;
    let max_unsent_bytes: u64 = layers.int("ringtail.connection.max.unsent.bytes", 1, u64::MAX)?;
    let max_unsent_bytes = usize::try_from(max_unsent_bytes).unwrap_or(usize::MAX);
    Ok(ConnectionLimits {
        max_connections,
        listener_max_connections,
        max_connections_per_ip,
        max_connections_per_ip_overrides,
        connections_max_idle_ms,
        max_unsent_bytes,
    })
}

// ----- end of floods -----

// ----- Authorization (issue 11) -----

/// Kafka's KRaft authorizer class, the only `authorizer.class.name` Ringtail implements.
pub const STANDARD_AUTHORIZER_CLASS: &str =
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The authorizer settings (Kafka's `ServerConfigs.AUTHORIZER_CLASS_NAME_CONFIG` and
/// `StandardAuthorizer`'s `super.users` / `allow.everyone.if.no.acl.found`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizerConfig {
    /// True when `authorizer.class.name` is [`STANDARD_AUTHORIZER_CLASS`]; false when it is
    /// empty (Kafka's default: no authorization, every request allowed, the ACL APIs answer
    /// SECURITY_DISABLED). Any other class is refused at start-up.
    pub enabled: bool,
    /// `super.users`: principals (`User:alice`) allowed everything, from a `;`-separated list
    /// (Kafka's `StandardAuthorizer.getConfiguredSuperUsers`: entries trimmed, empty ones
    /// dropped); each must be `Type:name`.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`; default false: a resource no ACL names is allowed
    /// only to super users.
    pub allow_everyone_if_no_acl_found: bool,
}

fn parse_authorizer(layers: &Layers) -> Result<AuthorizerConfig, ConfigError> {
    let class = layers.get("authorizer.class.name").trim();
    let enabled = match class {
        "" => false,
        STANDARD_AUTHORIZER_CLASS => true,
        other => {
            return Err(invalid(
                "authorizer.class.name",
                other,
                format!("Ringtail implements only {STANDARD_AUTHORIZER_CLASS} (or empty for none)"),
            ))
        }
    };
    let users = layers.get("super.users");
    let mut super_users = Vec::new();
    for entry in users.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                super_users.push(entry.to_string())
            }
            _ => {
                return Err(invalid(
                    "super.users",
                    users,
                    format!("'{entry}' is not a principal of the form Type:name (User:alice)"),
                ))
            }
        }
    }
    Ok(AuthorizerConfig {
        enabled,
        super_users,
        allow_everyone_if_no_acl_found: layers.boolean("allow.everyone.if.no.acl.found")?,
    })
}

/// `compression.zstd.level` range (Kafka's `ZstdCompression.MIN_LEVEL` / `MAX_LEVEL`).
const ZSTD_LEVEL_MIN: i32 = -131_072;
const ZSTD_LEVEL_MAX: i32 = 22;

/// `compression.gzip.level`: 1-9, or -1 for the codec's default (Kafka's
/// `GzipCompression.LevelValidator`).
fn parse_gzip_level(name: &str, value: &str) -> Result<i32, ConfigError> {
    let level: i32 = parse_int(name, value, -1, 9)?;
    if level == 0 {
        return Err(invalid(name, value, "must be -1 or in [1, 9]"));
    }
    Ok(level)
}

/// Values set by the sources, by canonical name. A later source wins; within one source
/// (the config file) the canonical name wins over its alias whatever the order, as in Kafka
/// (`log.dirs` over `log.dir`, `node.id` over `broker.id`).
#[derive(Default)]
struct Layers {
    values: BTreeMap<&'static str, LayerValue>,
    set_by_user: BTreeSet<&'static str>,
    /// Kafka settings without meaning here ([`IGNORED_PROPERTIES`]), by name: value.
    ignored: BTreeMap<&'static str, String>,
    /// `listener.name.<listener>.<property>` settings, by full name (listener part lower case).
    listener_overrides: BTreeMap<String, String>,
}

struct LayerValue {
    value: String,
    source: usize,
    via_alias: bool,
}

impl Layers {
    /// Records `name = value` from source number `source` (higher numbers win).
    fn set(
        &mut self,
        source: usize,
        name: &str,
        value: &str,
        origin: &str,
    ) -> Result<(), ConfigError> {
        let name = name.trim();
        if let Some(rest) = name.strip_prefix(LISTENER_PREFIX) {
            return self.set_listener_override(rest, value, origin);
        }
        if let Some((ignored, _)) = IGNORED_PROPERTIES.iter().find(|(n, _)| *n == name) {
            if let Some(reason) = refusal(ignored, value.trim()) {
                return Err(invalid(ignored, value, reason));
            }
            self.ignored.insert(ignored, value.trim().to_string());
            return Ok(());
        }
        let Some(property) = BROKER_PROPERTIES
            .iter()
            .find(|p| p.name == name || p.alias == Some(name))
        else {
            return Err(ConfigError::UnknownProperty {
                name: name.to_string(),
                value: value.to_string(),
                origin: origin.to_string(),
            });
        };
        let via_alias = property.name != name;
        let keep_old = self
            .values
            .get(property.name)
            .is_some_and(|old| old.source == source && via_alias && !old.via_alias);
        if !keep_old {
            let value = value.trim().to_string();
            let new = LayerValue {
                value,
                source,
                via_alias,
            };
            self.values.insert(property.name, new);
        }
        self.set_by_user.insert(property.name);
        Ok(())
    }

    /// Records `listener.name.<listener>.<property>` (`rest` is what follows the prefix). As
    /// Kafka, the listener part is case-insensitive (stored lower case) and `<property>` is a
    /// broker property, optionally after a SASL mechanism (`plain.sasl.jaas.config`). A later
    /// source wins.
    fn set_listener_override(
        &mut self,
        rest: &str,
        value: &str,
        origin: &str,
    ) -> Result<(), ConfigError> {
        let unknown = || ConfigError::UnknownProperty {
            name: format!("{LISTENER_PREFIX}{rest}"),
            value: value.to_string(),
            origin: origin.to_string(),
        };
        let (listener, property) = rest.split_once('.').ok_or_else(unknown)?;
        // Only the settings Kafka reads per listener (the ssl.* and sasl.* families and
        // LISTENER_OVERRIDABLE): a listener override of anything else would be ignored.
        let known = |name: &str| {
            (name.starts_with("ssl.")
                || name.starts_with("sasl.")
                || LISTENER_OVERRIDABLE.contains(&name))
                && BROKER_PROPERTIES.iter().any(|p| p.name == name)
        };
        let after_mechanism = property.split_once('.').map(|(_, p)| p);
        if listener.is_empty() || !(known(property) || after_mechanism.is_some_and(known)) {
            return Err(unknown());
        }
        let name = format!(
            "{LISTENER_PREFIX}{}.{property}",
            listener.to_ascii_lowercase()
        );
        self.listener_overrides
            .insert(name, value.trim().to_string());
        Ok(())
    }

    /// The set value, else the default; `None` when neither exists.
    fn value(&self, name: &'static str) -> Option<&str> {
        self.values.get(name).map(|v| v.value.as_str()).or_else(|| {
            BROKER_PROPERTIES
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.default)
        })
    }

    /// Like `value`, for properties that have a default.
    fn get(&self, name: &'static str) -> &str {
        self.value(name).unwrap_or_default()
    }

    fn int<T: Integer>(&self, name: &'static str, min: T, max: T) -> Result<T, ConfigError> {
        parse_int(name, self.get(name), min, max)
    }

    fn optional_int<T: Integer>(
        &self,
        name: &'static str,
        min: T,
        max: T,
    ) -> Result<Option<T>, ConfigError> {
        self.value(name)
            .map(|value| parse_int(name, value, min, max))
            .transpose()
    }

    fn boolean(&self, name: &'static str) -> Result<bool, ConfigError> {
        parse_bool(name, self.get(name))
    }

    fn parse<T: FromStr<Err = String>>(&self, name: &'static str) -> Result<T, ConfigError> {
        parse_value(name, self.get(name))
    }
}

/// Integer types of properties.
trait Integer: FromStr + PartialOrd + fmt::Display + Copy {
    /// Kafka's `ConfigDef.Type` name, for "Not a number of type INT".
    const KAFKA_TYPE: &'static str;
}
impl Integer for i16 {
    const KAFKA_TYPE: &'static str = "SHORT";
}
impl Integer for i32 {
    const KAFKA_TYPE: &'static str = "INT";
}
impl Integer for i64 {
    const KAFKA_TYPE: &'static str = "LONG";
}
impl Integer for u32 {
    const KAFKA_TYPE: &'static str = "INT";
}
impl Integer for u64 {
    const KAFKA_TYPE: &'static str = "LONG";
}

fn parse_int<T: Integer>(name: &str, value: &str, min: T, max: T) -> Result<T, ConfigError> {
    match value.trim().parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        // Kafka's ConfigDef messages (`Range.atLeast`, `ConfigDef.parseType`).
        Ok(n) if n < min => Err(invalid(
            name,
            value,
            format!("Value must be at least {min}"),
        )),
        Ok(_) => Err(invalid(
            name,
            value,
            format!("Value must be no more than {max}"),
        )),
        Err(_) => Err(invalid(
            name,
            value,
            format!("Not a number of type {}", T::KAFKA_TYPE),
        )),
    }
}

/// `true` or `false`, any case (Kafka's BOOLEAN type).
fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(
            name,
            value,
            "Expected value to be either true or false",
        )),
    }
}

fn parse_value<T: FromStr<Err = String>>(name: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|reason: String| invalid(name, value, reason))
}

/// `ringtail.http.listener`: `host:port` with an IP address (IPv6 in brackets), or empty for
/// no HTTP listener.
fn parse_http_listener(value: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        invalid(
            "ringtail.http.listener",
            value,
            "expected IP:PORT (e.g. 127.0.0.1:9644), or empty to disable the HTTP listener",
        )
    })
}

/// `log.level`, checked by [`crate::logging::parse_filter`].
fn parse_log_level(layers: &Layers) -> Result<String, ConfigError> {
    let value = layers.get("log.level");
    crate::logging::parse_filter(value).map_err(|reason| invalid("log.level", value, reason))?;
    Ok(value.trim().to_string())
}

fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Kafka: `log.roll.ms` if set, else `log.roll.hours`.
fn resolve_roll_ms(layers: &Layers) -> Result<i64, ConfigError> {
    let hours: i64 = layers.int("log.roll.hours", 1, i64::from(MAX32))?;
    Ok(layers
        .optional_int("log.roll.ms", 1, i64::MAX)?
        .unwrap_or(hours * MS_PER_HOUR))
}

/// Kafka: `log.retention.ms`, else `log.retention.minutes`, else `log.retention.hours`;
/// a negative result means unlimited (-1).
fn resolve_retention_ms(layers: &Layers) -> Result<i64, ConfigError> {
    let int_range = (i64::from(i32::MIN), i64::from(MAX32));
    let hours: i64 = layers.int("log.retention.hours", int_range.0, int_range.1)?;
    let minutes = layers.optional_int("log.retention.minutes", int_range.0, int_range.1)?;
    let ms = layers.optional_int("log.retention.ms", i64::MIN, i64::MAX)?;
    let retention_ms = ms
        .or(minutes.map(|m| m * MS_PER_MINUTE))
        .unwrap_or(hours * MS_PER_HOUR);
    Ok(if retention_ms < 0 { -1 } else { retention_ms })
}

fn parse_log_dirs(layers: &Layers) -> Result<Vec<PathBuf>, ConfigError> {
    let value = layers.get("log.dirs");
    let dirs: Vec<PathBuf> = value
        .split(',')
        .map(str::trim)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .collect();
    if dirs.is_empty() {
        return Err(invalid(
            "log.dirs",
            value,
            "expected at least one directory",
        ));
    }
    // ---- log.dirs with several entries (JBOD, issue 14) ----
    // Every entry is used, as in Kafka: partitions are spread by `log::log_dirs` (fewest
    // partitions first); the first entry also holds the metadata file and the internal topics
    // (Kafka's `metadata.log.dir` default). The same directory twice is refused after
    // canonicalization at start-up (`server`), as Kafka's LogManager refuses duplicates.
    for (i, dir) in dirs.iter().enumerate() {
        if dirs[..i].contains(dir) {
            return Err(invalid(
                "log.dirs",
                value,
                format!("duplicate log directory {}", dir.display()),
            ));
        }
    }
    Ok(dirs)
}

fn parse_shards(layers: &Layers) -> Result<u32, ConfigError> {
    let shards: u32 = layers.int("ringtail.shards", 0, u32::MAX)?;
    let cores = online_cores();
    if shards as usize > cores {
        return Err(invalid(
            "ringtail.shards",
            &shards.to_string(),
            format!("must be 0 (all cores) or 1..={cores} (online cores)"),
        ));
    }
    Ok(shards)
}

fn online_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Parses a comma-separated `NAME://host:port` list. `advertised` listeners must name a
/// host clients can connect to, so 0.0.0.0 and an empty host are refused there.
fn parse_listeners(
    name: &str,
    value: &str,
    advertised: bool,
) -> Result<Vec<Listener>, ConfigError> {
    let mut listeners: Vec<Listener> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let listener = parse_listener(item).map_err(|reason| invalid(name, value, reason))?;
        if advertised && (listener.host.is_empty() || listener.host == "0.0.0.0") {
            return Err(invalid(
                name,
                value,
                "0.0.0.0 or an empty host cannot be advertised to clients; name a reachable host such as 127.0.0.1",
            ));
        }
        if listeners.iter().any(|l| l.name == listener.name) {
            return Err(invalid(
                name,
                value,
                format!("listener name {} appears twice", listener.name),
            ));
        }
        listeners.push(listener);
    }
    if listeners.is_empty() {
        return Err(invalid(name, value, "expected at least one listener"));
    }
    Ok(listeners)
}

/// Parses `PLAINTEXT://host:port`; an empty host is kept empty (the caller decides).
fn parse_listener(item: &str) -> Result<Listener, String> {
    let Some((name, address)) = item.split_once("://") else {
        return Err(format!("`{item}` is not of the form NAME://host:port"));
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!("listener `{item}`: invalid listener name `{name}`"));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("listener `{item}` has no :port"));
    };
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed
            .strip_suffix(']')
            .ok_or_else(|| format!("listener `{item}`: unclosed `[` in host"))?,
        None => host,
    };
    if host.contains(['/', ' ', '[', ']']) || (host.contains(':') && !address.starts_with('[')) {
        return Err(format!("listener `{item}`: invalid host `{host}`"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("listener `{item}`: invalid port `{port}` (0-65535)"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok(Listener {
        name: name.to_ascii_uppercase(),
        // Resolved from `listener.security.protocol.map` by `resolve_protocols`.
        security_protocol: SecurityProtocol::Plaintext,
        host: host.to_string(),
        port,
    })
}

/// The default advertised form of a bound listener: a wildcard host becomes 127.0.0.1.
fn advertisable(listener: &Listener) -> Listener {
    let host = match listener.host.as_str() {
        "" | "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "::1".to_string(),
        host => host.to_string(),
    };
    Listener {
        host,
        ..listener.clone()
    }
}

fn render_listeners(listeners: &[Listener]) -> String {
    listeners
        .iter()
        .map(Listener::to_url)
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads a config file into `(name, value)` pairs in file order.
fn read_config_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let is_toml = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"));
    if is_toml {
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        let table: toml::Table = text.parse().map_err(|source| ConfigError::Toml {
            path: path.to_path_buf(),
            source,
        })?;
        let mut pairs = Vec::new();
        flatten_toml("", &table, &mut pairs)?;
        Ok(pairs)
    } else {
        let mut pairs = Vec::new();
        java_properties::PropertiesIter::new(bytes.as_slice())
            .read_into(|name, value| pairs.push((name, value)))
            .map_err(|source| ConfigError::Properties {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(pairs)
    }
}

/// Flattens nested tables by joining keys with `.` (`[log] segment.bytes = 1` and
/// `"log.segment.bytes" = 1` are the same property); scalars become strings, arrays are
/// joined with `,`.
fn flatten_toml(
    prefix: &str,
    table: &toml::Table,
    pairs: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten_toml(&name, inner, pairs)?,
            toml::Value::Array(items) => {
                let items = items
                    .iter()
                    .map(|item| {
                        toml_scalar(item).ok_or_else(|| {
                            invalid(
                                &name,
                                &value.to_string(),
                                "arrays may hold only strings, numbers and booleans",
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                pairs.push((name, items.join(",")));
            }
            scalar => {
                let text = toml_scalar(scalar).unwrap_or_else(|| scalar.to_string());
                pairs.push((name, text));
            }
        }
    }
    Ok(())
}

fn toml_scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

// ----- Kafka settings without meaning on Ringtail: accepted with a warning, or refused -----

/// Kafka broker properties that mean nothing on a single-process, thread-per-core broker with
/// no controller quorum and no replication; each is accepted (Kafka 4.1's
/// stock `config/server.properties` sets many of them) and named in one warning line at
/// start-up. Values that would change what Ringtail does are refused instead ([`refusal`]).
pub const IGNORED_PROPERTIES: &[(&str, &str)] = &[
    (
        "process.roles",
        "Ringtail is always one broker with its own metadata, no KRaft controller",
    ),
    (
        "controller.quorum.bootstrap.servers",
        "there is no KRaft controller quorum",
    ),
    (
        "controller.quorum.voters",
        "there is no KRaft controller quorum",
    ),
    (
        "controller.listener.names",
        "there is no KRaft controller; its listeners are not bound",
    ),
    (
        "inter.broker.listener.name",
        "a single broker has no inter-broker traffic",
    ),
    // Security (issue 11): the SASL mechanisms a Kafka node's own inter-broker and
    // broker-to-controller clients use; a secured server.properties sets them.
    (
        "sasl.mechanism.inter.broker.protocol",
        "a single broker has no inter-broker traffic",
    ),
    (
        "sasl.mechanism.controller.protocol",
        "there is no KRaft controller; its listeners are not bound",
    ),
    (
        "metadata.log.dir",
        "topic metadata is kept in the first log.dirs entry (ringtail-metadata.json), Kafka's default for metadata.log.dir",
    ),
    (
        "num.network.threads",
        "one executor per core serves the network (ringtail.shards)",
    ),
    (
        "num.io.threads",
        "one executor per core does the I/O (ringtail.shards)",
    ),
    (
        "num.recovery.threads.per.data.dir",
        "each shard recovers its own partitions, 8 at once (replica_manager::PARTITIONS_OPENED_AT_ONCE)",
    ),
    ("num.replica.fetchers", "there is no replication"),
    ("background.threads", "background work runs on the shards"),
    (
        "socket.send.buffer.bytes",
        "the kernel's socket buffer defaults are used",
    ),
    (
        "socket.receive.buffer.bytes",
        "the kernel's socket buffer defaults are used",
    ),
    (
        "share.coordinator.state.topic.replication.factor",
        "share groups are not supported",
    ),
    (
        "share.coordinator.state.topic.min.isr",
        "share groups are not supported",
    ),
    (
        "kafka.metrics.reporters",
        "JMX / metrics reporters are not supported",
    ),
    (
        "metric.reporters",
        "JMX / metrics reporters are not supported",
    ),
];

/// Why `value` of ignored property `name` is refused: accepting it would silently change its
/// meaning (a controller-only node).
fn refusal(name: &str, value: &str) -> Option<String> {
    match name {
        "process.roles" => {
            let roles: Vec<&str> = value.split(',').map(str::trim).collect();
            (!roles.contains(&"broker")).then(|| {
                "Ringtail is a broker; a node without the broker role (a dedicated KRaft controller) is not supported".to_string()
            })
        }
        _ => None,
    }
}

impl BrokerConfig {
    /// The Kafka settings accepted without effect, as `(name=value, why)`; start-up logs one
    /// warning line for each.
    pub fn ignored_settings(&self) -> &[(String, &'static str)] {
        &self.ignored
    }
}

fn ignored_settings(layers: &Layers) -> Vec<(String, &'static str)> {
    layers
        .ignored
        .iter()
        .map(|(name, value)| {
            let why = IGNORED_PROPERTIES
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, why)| *why);
            (format!("{name}={value}"), why)
        })
        .collect()
}

/// `value` (a listener list) without the listeners named in `controller.listener.names`, each
/// dropped one noted in `ignored`.
fn without_controller_listeners(
    property: &str,
    value: &str,
    controller_names: &str,
    ignored: &mut Vec<(String, &'static str)>,
) -> String {
    let controllers: Vec<&str> = controller_names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    value
        .split(',')
        .map(str::trim)
        .filter(|item| {
            let name = item.split_once("://").map_or("", |(name, _)| name);
            let controller = controllers.iter().any(|c| c.eq_ignore_ascii_case(name));
            if controller {
                ignored.push((
                    format!("{property}: {item}"),
                    "a KRaft controller listener (controller.listener.names); not bound",
                ));
            }
            !controller
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every advertised listener names a bound listener, and every bound listener is advertised
/// (Kafka: `advertised.listeners` listener names must be a subset of `listeners`; a listener
/// left out of `advertised.listeners` is advertised with its bound address).
fn check_advertised(listeners: &[Listener], advertised: &[Listener]) -> Result<(), ConfigError> {
    for listener in advertised {
        if !listeners.iter().any(|l| l.name == listener.name) {
            return Err(invalid(
                "advertised.listeners",
                &render_listeners(advertised),
                format!(
                    "advertised listener {} is not one of `listeners` ({})",
                    listener.name,
                    render_listeners(listeners)
                ),
            ));
        }
    }
    Ok(())
}

/// Kafka's default `listener.security.protocol.map`: each protocol's own name maps to it.
const DEFAULT_SECURITY_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`, Kafka's
/// `listenerSecurityProtocolMap`): names upper-cased, each protocol one of Kafka's four.
fn parse_protocol_map(value: &str) -> Result<Vec<(String, SecurityProtocol)>, ConfigError> {
    let name = "listener.security.protocol.map";
    let mut map = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((listener, protocol)) = pair.split_once(':') else {
            return Err(invalid(
                name,
                value,
                format!("`{pair}` is not LISTENER_NAME:PROTOCOL"),
            ));
        };
        let protocol = SecurityProtocol::from_name(protocol).ok_or_else(|| {
            invalid(
                name,
                value,
                format!(
                    "unknown security protocol `{}` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)",
                    protocol.trim()
                ),
            )
        })?;
        map.push((listener.trim().to_ascii_uppercase(), protocol));
    }
    Ok(map)
}

/// Gives each listener its security protocol from `map` (as Kafka, a listener missing from the
/// map is an error: "No security protocol defined for listener").
fn resolve_protocols(
    property: &str,
    listeners: &mut [Listener],
    map: &[(String, SecurityProtocol)],
) -> Result<(), ConfigError> {
    for listener in listeners.iter_mut() {
        let Some((_, protocol)) = map.iter().find(|(name, _)| *name == listener.name) else {
            return Err(invalid(
                property,
                &listener.to_url(),
                format!(
                    "no security protocol defined for listener {} in listener.security.protocol.map",
                    listener.name
                ),
            ));
        };
        listener.security_protocol = *protocol;
    }
    Ok(())
}

// ----- Dynamic configuration: IncrementalAlterConfigs / AlterConfigs / DescribeConfigs -----
//
// Topic overrides and dynamic broker configs are stored by shard 0 with the topic metadata and
// published to every shard; each shard rebuilds its effective [`BrokerConfig`] with
// [`BrokerConfig::with_dynamic`] and its partitions' [`TopicConfig`]s from it. Table-driven: a
// topic-level property becomes alterable on topics and (through its broker-level synonym)
// dynamically on brokers by one entry in [`TOPIC_CONFIG_SYNONYMS`] (plus its parsing in
// `TopicConfig::set` / `values` and `BrokerConfig::default_topic_config`).

/// Kafka's `ConfigSource` (DescribeConfigs v1+), with Kafka's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// A topic override (`DYNAMIC_TOPIC_CONFIG`, 1).
    DynamicTopic = 1,
    /// Set for this broker at run time (`DYNAMIC_BROKER_CONFIG`, 2).
    DynamicBroker = 2,
    /// Set at run time for every broker (resource name ""; `DYNAMIC_DEFAULT_BROKER_CONFIG`, 3).
    DynamicDefaultBroker = 3,
    /// Set in the config file or on the command line (`STATIC_BROKER_CONFIG`, 4).
    StaticBroker = 4,
    /// Kafka's default (`DEFAULT_CONFIG`, 5).
    Default = 5,
}

/// One synonym of a DescribeConfigs entry (KIP-226).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// Property name (the topic-level or a broker-level name).
    pub name: String,
    /// Its value at that level.
    pub value: Option<String>,
    /// The level.
    pub source: ConfigSource,
}

/// Kafka's `ConfigDef.Type` ids as DescribeConfigs v3 sends them (KIP-569).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// BOOLEAN (1).
    Boolean = 1,
    /// STRING (2).
    String = 2,
    /// INT (3).
    Int = 3,
    /// SHORT (4).
    Short = 4,
    /// LONG (5).
    Long = 5,
    /// DOUBLE (6).
    Double = 6,
    /// LIST (7).
    List = 7,
}

/// Each topic-level config Ringtail honours with its broker-level synonym, as Kafka's
/// `ServerTopicConfigSynonyms.TOPIC_CONFIG_SYNONYMS`. The broker names are exactly the dynamic
/// broker configs (Kafka: `DynamicLogConfig.ReconfigurableConfigs`); `log.roll.hours` and
/// `log.retention.hours` / `.minutes` stay read-only, as in Kafka.
pub const TOPIC_CONFIG_SYNONYMS: &[(&str, &str)] = &[
    ("cleanup.policy", "log.cleanup.policy"),
    ("compression.type", "compression.type"),
    ("index.interval.bytes", "log.index.interval.bytes"),
    ("max.message.bytes", "message.max.bytes"),
    ("message.timestamp.type", "log.message.timestamp.type"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("preallocate", "log.preallocate"),
    ("retention.bytes", "log.retention.bytes"),
    ("retention.ms", "log.retention.ms"),
    ("segment.bytes", "log.segment.bytes"),
    ("segment.index.bytes", "log.index.size.max.bytes"),
    ("segment.ms", "log.roll.ms"),
    // Log cleaner (compaction).
    ("delete.retention.ms", "log.cleaner.delete.retention.ms"),
    ("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"),
    (
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
    ),
    ("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"),
    // Record validation on append (KIP-937, KIP-390).
    ("compression.gzip.level", "compression.gzip.level"),
    ("compression.zstd.level", "compression.zstd.level"),
    (
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
    ),
    (
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
    ),
];

/// Topic-level configs whose value is a comma-separated list (APPEND / SUBTRACT allowed).
pub const LIST_CONFIGS: &[&str] = &["cleanup.policy", "log.cleanup.policy"];

/// True for a broker property that IncrementalAlterConfigs may change at run time.
pub fn is_dynamic_broker_config(name: &str) -> bool {
    TOPIC_CONFIG_SYNONYMS
        .iter()
        .any(|(_, broker)| *broker == name)
}

/// True for a broker property Ringtail knows (canonical name or alias).
pub fn is_broker_property(name: &str) -> bool {
    BROKER_PROPERTIES
        .iter()
        .any(|p| p.name == name || p.alias == Some(name))
}

/// The topic-level property names Ringtail honours, sorted.
pub fn topic_config_names() -> impl Iterator<Item = &'static str> {
    TOPIC_CONFIG_SYNONYMS.iter().map(|(topic, _)| *topic)
}

impl ConfigError {
    /// The error as Kafka words it in an AlterConfigs answer (`ConfigException`'s "Invalid
    /// value V for configuration N: reason", `LogConfig.validateNames`' "Unknown topic config
    /// name: N").
    pub fn kafka_message(&self) -> String {
        match self {
            ConfigError::InvalidValue {
                name,
                value,
                reason,
            } => format!("Invalid value {value} for configuration {name}: {reason}"),
            ConfigError::UnknownProperty { name, .. } => {
                format!("Unknown topic config name: {name}")
            }
            other => other.to_string(),
        }
    }
}

impl BrokerConfig {
    /// This configuration with dynamic broker configs applied: `cluster_default` (resource "")
    /// over the static values, `per_broker` (resource "<node.id>") over both, as Kafka's
    /// `DynamicBrokerConfig`. Every name must be dynamic ([`is_dynamic_broker_config`]); values
    /// go through the same parser as at start-up, so an invalid one is the same error.
    pub fn with_dynamic(
        &self,
        cluster_default: &BTreeMap<String, String>,
        per_broker: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut layers = Layers::default();
        // `ringtail.shards` is checked against the online cores, which a shard thread pinned
        // to one core does not see; it is not dynamic, so it is copied, not re-parsed.
        for (name, value) in self
            .static_values
            .iter()
            .filter(|(n, _)| **n != "ringtail.shards")
        {
            layers.set(0, name, value, "static configuration")?;
        }
        for (source, values) in [(1, cluster_default), (2, per_broker)] {
            for (name, value) in values {
                if !is_dynamic_broker_config(name) {
                    return Err(ConfigError::UnknownProperty {
                        name: name.clone(),
                        value: value.clone(),
                        origin: "dynamic broker configs".to_string(),
                    });
                }
                layers.set(source, name, value, "dynamic broker configs")?;
            }
        }
        let mut config = Self::from_layers(layers)?;
        config.shards = self.shards;
        let shards = self.effective.get("ringtail.shards").cloned().flatten();
        config.effective.insert("ringtail.shards", shards);
        config.static_values = self.static_values.clone();
        config.set_by_user = self.set_by_user.clone();
        config.dynamic_default = cluster_default.clone();
        config.dynamic_broker = per_broker.clone();
        Ok(config)
    }

    /// The dynamic cluster-wide defaults (broker resource "").
    pub fn dynamic_default_configs(&self) -> &BTreeMap<String, String> {
        &self.dynamic_default
    }

    /// This broker's dynamic configs (broker resource "<node.id>").
    pub fn dynamic_broker_configs(&self) -> &BTreeMap<String, String> {
        &self.dynamic_broker
    }

    /// DescribeConfigs of the broker resource "": the dynamic cluster defaults only, as Kafka.
    pub fn describe_cluster_defaults(&self) -> Vec<ConfigEntry> {
        self.dynamic_default
            .iter()
            .map(|(name, value)| {
                let synonym = ConfigSynonym {
                    name: name.clone(),
                    value: Some(value.clone()),
                    source: ConfigSource::DynamicDefaultBroker,
                };
                ConfigEntry {
                    name: name.clone(),
                    value: Some(value.clone()),
                    is_default: false,
                    read_only: false,
                    sensitive: false,
                    source: ConfigSource::DynamicDefaultBroker,
                    synonyms: vec![synonym],
                    config_type: broker_config_type(name),
                    documentation: documentation(name),
                }
            })
            .collect()
    }

    /// DescribeConfigs of a topic: every topic config Ringtail honours with its effective value
    /// (`topic`, built from this config's defaults and `overrides`), source and synonyms.
    pub fn describe_topic(
        &self,
        topic: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<ConfigEntry> {
        topic
            .values()
            .into_iter()
            .map(|(name, value)| {
                let broker_name = TOPIC_CONFIG_SYNONYMS
                    .iter()
                    .find(|(topic_name, _)| *topic_name == name)
                    .map_or(name, |(_, broker)| *broker);
                let mut synonyms = Vec::new();
                if overrides.contains_key(name) {
                    synonyms.push(ConfigSynonym {
                        name: name.to_string(),
                        value: Some(value.clone()),
                        source: ConfigSource::DynamicTopic,
                    });
                }
                synonyms.extend(self.broker_synonyms(broker_name));
                let source = synonyms.first().map_or(ConfigSource::Default, |s| s.source);
                ConfigEntry {
                    name: name.to_string(),
                    value: Some(value),
                    is_default: source == ConfigSource::Default,
                    read_only: false,
                    sensitive: false,
                    source,
                    synonyms,
                    config_type: topic_config_type(name),
                    documentation: documentation(name),
                }
            })
            .collect()
    }

    /// Kafka's `configSynonyms(name, brokerConfigSynonyms(name))`: for each level (this broker's
    /// dynamic value, the dynamic default, the static value, Kafka's default) every set name of
    /// the synonym group, then everything before the first entry named `name` dropped.
    fn broker_synonyms(&self, name: &str) -> Vec<ConfigSynonym> {
        let group: &[&str] = match name {
            "log.roll.ms" | "log.roll.hours" => &["log.roll.ms", "log.roll.hours"],
            "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => &[
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours",
            ],
            _ => std::slice::from_ref(&name),
        };
        let default_of = |n: &str| {
            BROKER_PROPERTIES
                .iter()
                .find(|p| p.name == n)
                .and_then(|p| p.default)
                .map(str::to_string)
        };
        let mut synonyms = Vec::new();
        let levels: [(ConfigSource, &Lookup<'_>); 4] = [
            (ConfigSource::DynamicBroker, &|n| {
                self.dynamic_broker.get(n).cloned()
            }),
            (ConfigSource::DynamicDefaultBroker, &|n| {
                self.dynamic_default.get(n).cloned()
            }),
            (ConfigSource::StaticBroker, &|n| {
                self.static_values.get(n).cloned()
            }),
            (ConfigSource::Default, &default_of),
        ];
        for (source, lookup) in levels {
            for synonym in group {
                if let Some(value) = lookup(synonym) {
                    synonyms.push(ConfigSynonym {
                        name: synonym.to_string(),
                        value: Some(value),
                        source,
                    });
                }
            }
        }
        let first = synonyms.iter().position(|s| s.name == name);
        synonyms.split_off(first.unwrap_or(synonyms.len()))
    }
}

/// Looks up a property's value at one configuration level.
type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Kafka's type of a topic-level config (`LogConfig`).
fn topic_config_type(name: &str) -> ConfigType {
    match name {
        "cleanup.policy" => ConfigType::List,
        "compression.type" | "message.timestamp.type" => ConfigType::String,
        "retention.ms"
        | "retention.bytes"
        | "segment.ms"
        | "delete.retention.ms"
        | "min.compaction.lag.ms"
        | "max.compaction.lag.ms"
        | "message.timestamp.before.max.ms"
        | "message.timestamp.after.max.ms" => ConfigType::Long,
        "min.cleanable.dirty.ratio" => ConfigType::Double,
        "preallocate" => ConfigType::Boolean,
        _ => ConfigType::Int,
    }
}

/// Kafka's type of a broker property (`KafkaConfig`); STRING for the ones Kafka has no
/// number or list type for and for Ringtail's own.
fn broker_config_type(name: &str) -> ConfigType {
    match name {
        "auto.create.topics.enable" | "delete.topic.enable" => ConfigType::Boolean,
        "log.cleanup.policy" => ConfigType::List,
        name if consumer_group::is_list(name) => ConfigType::List,
        name if consumer_group::is_int(name) => ConfigType::Int,
        "default.replication.factor"
        | "offsets.topic.replication.factor"
        | "transaction.state.log.replication.factor" => ConfigType::Short,
        "transaction.partition.verification.enable" => ConfigType::Boolean,
        "log.roll.ms"
        | "log.retention.ms"
        | "log.retention.bytes"
        | "log.retention.check.interval.ms"
        | "ringtail.io.memory.bytes"
        | "ringtail.partition.cache.bytes"
        | "ringtail.fetch.read.ahead.bytes"
        | "log.cleaner.backoff.ms"
        | "log.cleaner.dedupe.buffer.size"
        | "log.cleaner.delete.retention.ms"
        | "log.cleaner.min.compaction.lag.ms"
        | "log.cleaner.max.compaction.lag.ms"
        | "log.message.timestamp.before.max.ms"
        | "log.message.timestamp.after.max.ms"
        | "connections.max.idle.ms"
        | "ringtail.connection.max.unsent.bytes" => ConfigType::Long,
        "log.cleaner.enable" | "allow.everyone.if.no.acl.found" | "log.preallocate" => {
            ConfigType::Boolean
        }
        "log.cleaner.min.cleanable.ratio" => ConfigType::Double,
        "node.id"
        | "broker.id"
        | "num.partitions"
        | "log.segment.bytes"
        | "log.roll.hours"
        | "log.retention.minutes"
        | "log.retention.hours"
        | "log.index.interval.bytes"
        | "log.index.size.max.bytes"
        | "message.max.bytes"
        | "socket.request.max.bytes"
        | "queued.max.requests"
        | "min.insync.replicas"
        | "group.min.session.timeout.ms"
        | "group.max.session.timeout.ms"
        | "group.initial.rebalance.delay.ms"
        | "offsets.topic.num.partitions"
        | "offsets.topic.segment.bytes"
        | "offsets.retention.minutes"
        | "fetch.max.bytes"
        | "max.incremental.fetch.session.cache.slots"
        | "log.cleaner.threads"
        | "compression.gzip.level"
        | "compression.zstd.level"
        | "ringtail.shards"
        | "transaction.max.timeout.ms"
        | "transactional.id.expiration.ms"
        | "transaction.abort.timed.out.transaction.cleanup.interval.ms"
        | "transaction.remove.expired.transaction.cleanup.interval.ms"
        | "transaction.state.log.num.partitions"
        | "transaction.state.log.segment.bytes"
        | "transaction.state.log.min.isr"
        | "transaction.state.log.load.buffer.size"
        | "max.connections"
        | "max.connections.per.ip" => ConfigType::Int,
        _ => ConfigType::String,
    }
}

/// One-line documentation of the configs Ringtail changes at run time (our own words; Kafka's
/// documentation describes the same settings at length).
fn documentation(name: &str) -> Option<&'static str> {
    Some(match name {
        "cleanup.policy" | "log.cleanup.policy" => {
            "Retention policy of old segments: delete (by retention.ms / retention.bytes), compact, or both."
        }
        "compression.type" => {
            "Final compression of stored batches: producer keeps the producer's codec; uncompressed, gzip, snappy, lz4 or zstd recompress."
        }
        "index.interval.bytes" | "log.index.interval.bytes" => {
            "Bytes of log between two offset index entries."
        }
        "preallocate" | "log.preallocate" => {
            "Write zeros ahead of the active segment's appends, so O_DIRECT appends overwrite allocated blocks (no io_uring worker, no journal commit per fdatasync)."
        }
        "max.message.bytes" | "message.max.bytes" => {
            "Largest record batch accepted, in bytes (after compression)."
        }
        "message.timestamp.type" | "log.message.timestamp.type" => {
            "CreateTime keeps the producer's timestamp; LogAppendTime stamps batches with the broker's time."
        }
        "min.insync.replicas" => {
            "Fewest in-sync replicas for an acks=all write to succeed (NOT_ENOUGH_REPLICAS below)."
        }
        "retention.bytes" | "log.retention.bytes" => {
            "Largest size of a partition before old segments are deleted, in bytes; -1 for no limit."
        }
        "retention.ms" | "log.retention.ms" => {
            "Longest time a segment is kept before deletion, in ms; -1 for no limit."
        }
        "segment.bytes" | "log.segment.bytes" => "Size at which a segment is rolled, in bytes.",
        "segment.index.bytes" | "log.index.size.max.bytes" => {
            "Largest offset and time index size per segment, in bytes."
        }
        "segment.ms" | "log.roll.ms" => "Age at which the active segment is rolled, in ms.",
        "delete.retention.ms" | "log.cleaner.delete.retention.ms" => {
            "How long a tombstone is kept after the cleaner first saw it, in ms (compacted topics)."
        }
        "min.cleanable.dirty.ratio" | "log.cleaner.min.cleanable.ratio" => {
            "Dirty share of a compacted log above which the cleaner compacts it, 0 to 1."
        }
        "min.compaction.lag.ms" | "log.cleaner.min.compaction.lag.ms" => {
            "Records younger than this are never compacted, in ms."
        }
        "message.timestamp.before.max.ms" | "log.message.timestamp.before.max.ms" => {
            "How far before the broker's clock a CreateTime timestamp may lie, in ms (KIP-937)."
        }
        "message.timestamp.after.max.ms" | "log.message.timestamp.after.max.ms" => {
            "How far after the broker's clock a CreateTime timestamp may lie, in ms (KIP-937)."
        }
        "compression.gzip.level" => "gzip level when the broker recompresses (-1: the codec's default).",
        "compression.zstd.level" => "zstd level when the broker recompresses.",
        "max.compaction.lag.ms" | "log.cleaner.max.compaction.lag.ms" => {
            "A dirty record older than this is compacted whatever the dirty ratio, in ms."
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Expected outcome: `Ok(pairs)` = these (name, value) appear in `describe()`;
    /// `Err(fragments)` = the error message contains every fragment.
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    type Expected<'a> = Result<Pairs<'a>, &'a [&'a str]>;
    type TopicInput<'a> = &'a [(&'a str, Option<&'a str>)];

    fn write_temp(extension: &str, content: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new()
            .suffix(extension)
            .tempfile()
            .expect("temp file");
        file.write_all(content.as_bytes()).expect("write temp file");
        file
    }

    fn overrides(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check_result(result: Result<BrokerConfig, ConfigError>, expected: Expected<'_>) {
        match (result, expected) {
            (Ok(config), Ok(pairs)) => {
                let described = config.describe();
                for (name, value) in pairs {
                    let entry = described
                        .iter()
                        .find(|e| e.name == *name)
                        .unwrap_or_else(|| panic!("no entry {name}"));
                    assert_eq!(entry.value.as_deref(), Some(*value), "property {name}");
                }
            }
            (Err(error), Err(fragments)) => {
                let message = error.to_string();
                for fragment in fragments {
                    assert!(message.contains(fragment), "`{message}` lacks `{fragment}`");
                }
            }
            (Ok(config), Err(_)) => panic!("expected an error, got {config:?}"),
            (Err(error), Ok(_)) => panic!("unexpected error: {error}"),
        }
    }

    /// Loads `content` as a file with `extension` plus `--set` style overrides.
    fn check(extension: &str, content: &str, set: &[(&str, &str)], expected: Expected<'_>) {
        let file = write_temp(extension, content);
        check_result(
            BrokerConfig::load(Some(file.path()), &overrides(set)),
            expected,
        );
    }

    #[test]
    fn defaults() {
        let config = BrokerConfig::default();
        assert_eq!(config.node_id, 0);
        assert_eq!(config.listeners, vec![listener("127.0.0.1", 9092)]);
        assert_eq!(config.advertised_listeners, config.listeners);
        assert_eq!(config.log_dir(), Path::new("./data"));
        assert_eq!(config.log_segment_bytes, 1_073_741_824);
        assert_eq!(config.log_roll_ms, 168 * MS_PER_HOUR);
        assert_eq!(config.log_retention_ms, 168 * MS_PER_HOUR);
        assert_eq!(config.log_retention_bytes, -1);
        assert_eq!(config.message_max_bytes, 1_048_588);
        assert_eq!(config.compression_type, CompressionType::Producer);
        assert_eq!(config.io_memory_bytes, 2_097_152);
        assert_eq!(config.partition_cache_bytes, 4_194_304);
        assert_eq!(config.shards, 0);
        assert!(config.shard_count() >= 1);
        assert!(config
            .describe()
            .iter()
            .all(|e| e.is_default && e.read_only != is_dynamic_broker_config(&e.name)));
        let names: Vec<String> = config.describe().into_iter().map(|e| e.name).collect();
        assert_eq!(names.len(), BROKER_PROPERTIES.len() + 2);
        assert!(names.contains(&"broker.id".to_string()));
    }

    #[test]
    fn toml_files() {
        check(
            ".toml",
            "\"log.segment.bytes\" = 1048576\n\"auto.create.topics.enable\" = false\n",
            &[],
            Ok(&[
                ("log.segment.bytes", "1048576"),
                ("auto.create.topics.enable", "false"),
            ]),
        );
        check(
            ".toml",
            "log.segment.bytes = 2048\nnode.id = 3\n[log.retention]\nms = 1000\n",
            &[],
            Ok(&[
                ("log.segment.bytes", "2048"),
                ("node.id", "3"),
                ("log.retention.ms", "1000"),
            ]),
        );
        check(
            ".toml",
            "[log]\n\"dirs\" = [\"/a\", \"/b\"]\n\"index.interval.bytes\" = 100\n",
            &[],
            // Arrays join with `,`; several log.dirs (JBOD) are all used.
            Ok(&[("log.dirs", "/a,/b"), ("log.index.interval.bytes", "100")]),
        );
        check(
            ".toml",
            "[log]\n\"dirs\" = [\"/a\", \"/a\"]\n",
            &[],
            Err(&["`log.dirs`", "duplicate log directory /a"]),
        );
        check(
            ".TOML",
            "listeners = \"PLAINTEXT://:9093\"\n",
            &[],
            Ok(&[
                ("listeners", "PLAINTEXT://:9093"),
                ("advertised.listeners", "PLAINTEXT://127.0.0.1:9093"),
            ]),
        );
        check(
            ".toml",
            "log.segment = { bytez = 5 }\n",
            &[],
            Err(&["`log.segment.bytez`"]),
        );
        check(".toml", "node.id = [[1]]\n", &[], Err(&["node.id"]));
        check(".toml", "node.id = \n", &[], Err(&["TOML", "cannot parse"]));
        check(
            ".toml",
            "num.partitions = 1.5\n",
            &[],
            Err(&["`num.partitions`", "`1.5`"]),
        );
    }

    #[test]
    fn properties_files() {
        check(
            ".properties",
            "# comment\n! also a comment\nnode.id=7\nlog.dirs: /var/ringtail\n\
             listeners = PLAINTEXT://0.0.0.0:9094,\\\n    \n\
             message.max.bytes \\\n  2000\n",
            &[],
            Ok(&[
                ("node.id", "7"),
                ("log.dirs", "/var/ringtail"),
                ("listeners", "PLAINTEXT://0.0.0.0:9094,"),
                ("advertised.listeners", "PLAINTEXT://127.0.0.1:9094"),
                ("message.max.bytes", "2000"),
            ]),
        );
        // Any extension but .toml is read as properties; aliases resolve to one property.
        check(
            ".conf",
            "broker.id=5\nlog.dir=/x\n",
            &[],
            Ok(&[("node.id", "5"), ("broker.id", "5"), ("log.dirs", "/x")]),
        );
        check(
            ".properties",
            "log.dirs=/canonical\nlog.dir=/alias\nbroker.id=9\nnode.id=8\n",
            &[("log.dir", "/set")],
            Ok(&[("log.dirs", "/set"), ("node.id", "8")]),
        );
        check(
            ".properties",
            "log.dirs=/canonical\nlog.dir=/alias\n",
            &[],
            Ok(&[("log.dirs", "/canonical"), ("log.dir", "/canonical")]),
        );
        check(
            ".properties",
            "log.retention.hours=1\nlog.retention.minutes=2\n",
            &[],
            Ok(&[("log.retention.minutes", "2")]),
        );
        check(
            ".properties",
            "no.such.thing=42\n",
            &[],
            Err(&["unknown property `no.such.thing`", "`42`", "config file"]),
        );
        check(
            ".properties",
            "log.segment.bytes=13\n",
            &[],
            Err(&["`log.segment.bytes`", "`13`"]),
        );
    }

    #[test]
    fn precedence() {
        let file = write_temp(
            ".properties",
            "node.id=1\nlog.dirs=/file\nnum.partitions=4\n",
        );
        let args = ServeArgs {
            config: Some(file.path().to_path_buf()),
            log_dirs: Some("/flag".to_string()),
            listeners: Some("PLAINTEXT://127.0.0.1:9999".to_string()),
            shards: Some(1),
            set: overrides(&[("num.partitions", "6"), ("num.partitions", "8")]),
            ..ServeArgs::default()
        };
        let config = BrokerConfig::from_args(&args).expect("valid");
        assert_eq!(config.node_id, 1);
        assert_eq!(config.log_dir(), Path::new("/flag"));
        assert_eq!(config.num_partitions, 8);
        assert_eq!(config.shards, 1);
        assert_eq!(config.listeners, vec![listener("127.0.0.1", 9999)]);
        let args = ServeArgs {
            set: overrides(&[("log.dirs", "/set")]),
            ..args
        };
        assert_eq!(
            BrokerConfig::from_args(&args).expect("valid").log_dir(),
            Path::new("/set")
        );
        let described = BrokerConfig::from_args(&args).expect("valid").describe();
        let is_default = |name: &str| {
            described
                .iter()
                .find(|e| e.name == name)
                .unwrap()
                .is_default
        };
        assert!(!is_default("node.id"));
        assert!(!is_default("log.dirs"));
        assert!(!is_default("ringtail.shards"));
        assert!(is_default("log.segment.bytes"));
    }

    #[test]
    fn set_values() {
        let cases: &[(&[(&str, &str)], Expected<'_>)] = &[
            (&[("log.roll.hours", "2")], Ok(&[("log.roll.hours", "2")])),
            (
                &[("log.retention.ms", "-5")],
                Ok(&[("log.retention.ms", "-5")]),
            ),
            (
                &[("compression.type", "zstd")],
                Ok(&[("compression.type", "zstd")]),
            ),
            (&[("bogus", "1")], Err(&["unknown property `bogus`", "`1`"])),
            (
                &[("num.partitions", "zero")],
                Err(&["`num.partitions`", "`zero`"]),
            ),
            (
                &[("num.partitions", "0")],
                Err(&["`num.partitions`", "`0`"]),
            ),
            (
                &[("default.replication.factor", "3")],
                Err(&["`default.replication.factor`", "`3`"]),
            ),
            (
                &[("auto.create.topics.enable", "yes")],
                Err(&["`auto.create.topics.enable`", "`yes`"]),
            ),
            (
                &[("compression.type", "brotli")],
                Err(&["`compression.type`", "`brotli`"]),
            ),
            (
                &[("log.message.timestamp.type", "Now")],
                Err(&["`log.message.timestamp.type`", "`Now`"]),
            ),
            (
                &[("ringtail.shards", "100000")],
                Err(&["`ringtail.shards`", "`100000`"]),
            ),
            (
                &[("ringtail.io.memory.bytes", "1024")],
                Err(&["`ringtail.io.memory.bytes`", "`1024`"]),
            ),
            (&[("log.dirs", " , ")], Err(&["`log.dirs`"])),
            (
                &[
                    ("group.min.session.timeout.ms", "10"),
                    ("group.max.session.timeout.ms", "5"),
                ],
                Err(&["`group.max.session.timeout.ms`", "`5`"]),
            ),
            (
                &[("listeners", "INTERNAL://:9093")],
                Err(&["no security protocol defined for listener INTERNAL"]),
            ),
            (
                &[
                    ("listeners", "PLAINTEXT://127.0.0.1:9092"),
                    ("advertised.listeners", "OTHER://127.0.0.1:9092"),
                    (
                        "listener.security.protocol.map",
                        "PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT",
                    ),
                ],
                Err(&["advertised listener OTHER is not one of `listeners`"]),
            ),
            (
                &[("listener.security.protocol.map", "PLAINTEXT:TLS")],
                Err(&["unknown security protocol `TLS`"]),
            ),
            (
                &[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")],
                Err(&["`advertised.listeners`", "0.0.0.0"]),
            ),
        ];
        for (set, expected) in cases {
            check_result(BrokerConfig::load(None, &overrides(set)), *expected);
        }
        assert!(matches!(
            parse_set_argument("novalue"),
            Err(ConfigError::SetArgument { .. })
        ));
        assert_eq!(
            parse_set_argument("a.b = x=y").expect("valid"),
            ("a.b".to_string(), "x=y".to_string())
        );
    }

    #[test]
    fn retention_and_roll_precedence() {
        let cases: &[(Pairs<'_>, i64, i64)] = &[
            (&[], 168 * MS_PER_HOUR, 168 * MS_PER_HOUR),
            (
                &[("log.retention.hours", "2")],
                2 * MS_PER_HOUR,
                168 * MS_PER_HOUR,
            ),
            (
                &[("log.retention.hours", "2"), ("log.retention.minutes", "3")],
                3 * MS_PER_MINUTE,
                168 * MS_PER_HOUR,
            ),
            (
                &[("log.retention.minutes", "3"), ("log.retention.ms", "10")],
                10,
                168 * MS_PER_HOUR,
            ),
            (&[("log.retention.ms", "-7")], -1, 168 * MS_PER_HOUR),
            (&[("log.retention.hours", "-1")], -1, 168 * MS_PER_HOUR),
            (&[("log.roll.hours", "1")], 168 * MS_PER_HOUR, MS_PER_HOUR),
            (
                &[("log.roll.hours", "1"), ("log.roll.ms", "500")],
                168 * MS_PER_HOUR,
                500,
            ),
        ];
        for (set, retention_ms, roll_ms) in cases {
            let config = BrokerConfig::load(None, &overrides(set)).expect("valid");
            assert_eq!(config.log_retention_ms, *retention_ms, "{set:?}");
            assert_eq!(config.log_roll_ms, *roll_ms, "{set:?}");
            let topic = config.default_topic_config();
            assert_eq!(topic.retention_ms, *retention_ms);
            assert_eq!(topic.segment_ms, *roll_ms);
        }
    }

    fn listener(host: &str, port: u16) -> Listener {
        Listener {
            name: "PLAINTEXT".to_string(),
            security_protocol: SecurityProtocol::Plaintext,
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn listener_overrides() {
        // No ssl.* / sasl.* property exists yet: every listener override is refused by name.
        let result = BrokerConfig::load(
            None,
            &overrides(&[("listener.name.SASL_SSL.log.retention.ms", "1")]),
        );
        let message = result.expect_err("refused").to_string();
        assert!(
            message.contains("unknown property `listener.name.SASL_SSL.log.retention.ms`"),
            "{message}"
        );
        let config = BrokerConfig::load(None, &overrides(&[])).expect("defaults");
        assert_eq!(
            config.listener_property("PLAINTEXT", "ssl.keystore.location"),
            None
        );
    }

    #[test]
    fn listeners() {
        let cases: &[(&str, Result<Vec<Listener>, &str>)] = &[
            (
                "PLAINTEXT://127.0.0.1:9092",
                Ok(vec![listener("127.0.0.1", 9092)]),
            ),
            ("PLAINTEXT://:9092", Ok(vec![listener("0.0.0.0", 9092)])),
            (
                "plaintext://host.example:0",
                Ok(vec![listener("host.example", 0)]),
            ),
            ("PLAINTEXT://[::1]:9092", Ok(vec![listener("::1", 9092)])),
            (" PLAINTEXT://a:1 , ", Ok(vec![listener("a", 1)])),
            ("PLAINTEXT://a:1,PLAINTEXT://b:2", Err("appears twice")),
            ("BAD NAME://a:1", Err("invalid listener name")),
            ("PLAINTEXT://a", Err("no :port")),
            ("PLAINTEXT://a:70000", Err("invalid port")),
            ("PLAINTEXT://a:-1", Err("invalid port")),
            ("PLAINTEXT://::1:9092", Err("invalid host")),
            ("PLAINTEXT://[::1:9092", Err("unclosed")),
            ("a:9092", Err("not of the form")),
            ("", Err("at least one")),
        ];
        for (input, expected) in cases {
            let result = parse_listeners("listeners", input, false);
            match (result, expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{input}"),
                (Err(error), Err(fragment)) => {
                    let message = error.to_string();
                    assert!(message.contains(fragment), "{input}: {message}");
                    assert!(message.contains("`listeners`"), "{message}");
                }
                (got, _) => panic!("{input}: unexpected {got:?}"),
            }
        }
        assert_eq!(listener("::1", 1).to_url(), "PLAINTEXT://[::1]:1");
        assert_eq!(advertisable(&listener("::", 1)).host, "::1");
    }

    #[test]
    fn topic_overrides() {
        let defaults = TopicConfig::default();
        let cases: &[(TopicInput<'_>, Expected<'_>)] = &[
            (&[], Ok(&[])),
            (
                &[("retention.ms", Some("1000"))],
                Ok(&[("retention.ms", "1000")]),
            ),
            (
                &[
                    ("cleanup.policy", Some("delete, compact")),
                    ("segment.bytes", Some("1024")),
                ],
                Ok(&[
                    ("cleanup.policy", "compact,delete"),
                    ("segment.bytes", "1024"),
                ]),
            ),
            (&[("compression.type", Some("producer"))], Ok(&[])),
            (
                &[
                    ("message.timestamp.type", Some("LogAppendTime")),
                    ("retention.bytes", Some("-1")),
                ],
                Ok(&[("message.timestamp.type", "LogAppendTime")]),
            ),
            (
                &[("segment.bytes", Some("13"))],
                Err(&["`segment.bytes`", "`13`"]),
            ),
            (
                &[("retention.ms", Some("-2"))],
                Err(&["`retention.ms`", "`-2`"]),
            ),
            (
                &[("cleanup.policy", Some("shred"))],
                Err(&["`cleanup.policy`", "`shred`"]),
            ),
            (
                &[("log.segment.bytes", Some("1024"))],
                Err(&["unknown property `log.segment.bytes`"]),
            ),
            (
                &[("min.insync.replicas", None)],
                Err(&["`min.insync.replicas`", "null"]),
            ),
        ];
        for (input, expected) in cases {
            let input: Vec<(String, Option<String>)> = input
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect();
            match (defaults.with_overrides(&input), expected) {
                (Ok(topic), Ok(want)) => {
                    let map = topic.overrides_map(&defaults);
                    let want: BTreeMap<String, String> = want
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    assert_eq!(map, want, "{input:?}");
                    assert_eq!(defaults.with_override_map(&map).expect("round trip"), topic);
                    let json = serde_json::to_string(&map).expect("json");
                    let back: BTreeMap<String, String> = serde_json::from_str(&json).expect("json");
                    assert_eq!(back, map);
                    for entry in topic.describe(&defaults) {
                        assert_eq!(
                            entry.is_default,
                            !map.contains_key(&entry.name),
                            "{entry:?}"
                        );
                        assert!(!entry.read_only);
                    }
                }
                (Err(error), Err(fragments)) => {
                    let message = error.to_string();
                    for fragment in *fragments {
                        assert!(message.contains(fragment), "`{message}` lacks `{fragment}`");
                    }
                }
                (got, _) => panic!("{input:?}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn topic_defaults_follow_broker() {
        let config = BrokerConfig::load(
            None,
            &overrides(&[
                ("log.segment.bytes", "4096"),
                ("log.index.size.max.bytes", "1024"),
                ("message.max.bytes", "500"),
                ("log.cleanup.policy", "compact"),
                ("min.insync.replicas", "2"),
                ("log.preallocate", "TRUE"),
            ]),
        )
        .expect("valid");
        let topic = config.default_topic_config();
        assert!(topic.preallocate, "log.preallocate, any case");
        assert!(!BrokerConfig::default().default_topic_config().preallocate);
        assert_eq!(topic.segment_bytes, 4096);
        assert_eq!(topic.segment_index_bytes, 1024);
        assert_eq!(topic.max_message_bytes, 500);
        assert_eq!(topic.cleanup_policy, CleanupPolicy::Compact);
        assert_eq!(topic.min_insync_replicas, 2);
        let names: Vec<String> = topic.describe(&topic).into_iter().map(|e| e.name).collect();
        assert_eq!(
            names.len(),
            20,
            "12 + the 4 log cleaner + the 4 record validation topic configs"
        );
    }

    #[test]
    fn dynamic_broker_configs_and_synonyms() {
        let config =
            BrokerConfig::load(None, &overrides(&[("log.segment.bytes", "4096")])).expect("valid");
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let dynamic = config
            .with_dynamic(
                &map(&[("log.retention.ms", "1000"), ("log.segment.bytes", "8192")]),
                &map(&[("log.segment.bytes", "16384")]),
            )
            .expect("valid");
        assert_eq!(dynamic.log_retention_ms, 1000);
        assert_eq!(dynamic.log_segment_bytes, 16384);
        assert_eq!(dynamic.default_topic_config().segment_bytes, 16384);
        let entry = |entries: Vec<ConfigEntry>, name: &str| {
            entries.into_iter().find(|e| e.name == name).expect(name)
        };
        let segment = entry(dynamic.describe(), "log.segment.bytes");
        assert_eq!(segment.source, ConfigSource::DynamicBroker);
        let sources: Vec<ConfigSource> = segment.synonyms.iter().map(|s| s.source).collect();
        assert_eq!(
            sources,
            [
                ConfigSource::DynamicBroker,
                ConfigSource::DynamicDefaultBroker,
                ConfigSource::StaticBroker,
                ConfigSource::Default
            ]
        );
        // Kafka drops the synonyms before the first one of the described name.
        let retention = entry(config.describe(), "log.retention.ms");
        assert_eq!(
            (retention.source, retention.synonyms.len()),
            (ConfigSource::Default, 0)
        );
        let topic = dynamic.default_topic_config();
        let overrides = map(&[("segment.ms", "5")]);
        let described =
            dynamic.describe_topic(&topic.with_override_map(&overrides).unwrap(), &overrides);
        let retention = entry(described.clone(), "retention.ms");
        assert_eq!(retention.source, ConfigSource::DynamicDefaultBroker);
        assert_eq!(retention.synonyms[0].name, "log.retention.ms");
        assert_eq!(retention.synonyms[1].name, "log.retention.hours");
        let segment_ms = entry(described, "segment.ms");
        assert_eq!(segment_ms.source, ConfigSource::DynamicTopic);
        assert_eq!(segment_ms.synonyms.len(), 1);
        for (bad, fragment) in [
            (map(&[("num.partitions", "3")]), "num.partitions"),
            (
                map(&[("log.retention.ms", "x")]),
                "Not a number of type LONG",
            ),
        ] {
            let error = config.with_dynamic(&bad, &BTreeMap::new()).unwrap_err();
            assert!(error.kafka_message().contains(fragment), "{error}");
        }
    }

    #[test]
    fn clap_parses_serve_args() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let cli = Cli::try_parse_from([
            "ringtail",
            "--config",
            "x.toml",
            "--shards",
            "2",
            "--set",
            "node.id=4",
            "--set",
            "log.dirs=/d",
            "--advertised-listeners",
            "PLAINTEXT://h:1",
        ])
        .expect("parses");
        assert_eq!(cli.serve.config, Some(PathBuf::from("x.toml")));
        assert_eq!(cli.serve.shards, Some(2));
        assert_eq!(
            cli.serve.advertised_listeners.as_deref(),
            Some("PLAINTEXT://h:1")
        );
        assert_eq!(
            cli.serve.set,
            overrides(&[("node.id", "4"), ("log.dirs", "/d")])
        );
        assert!(Cli::try_parse_from(["ringtail", "--set", "oops"]).is_err());
    }

    /// Log cleaner properties: Kafka's defaults, topic overrides of the broker defaults,
    /// Kafka's bounds, and the warning for `log.cleaner.threads`.
    #[test]
    fn log_cleaner_properties() {
        let config = BrokerConfig::load(None, &[]).expect("defaults");
        let topic = config.default_topic_config();
        assert_eq!(topic.delete_retention_ms, 86_400_000);
        assert_eq!(topic.min_cleanable_dirty_ratio, Ratio(0.5));
        assert_eq!(topic.min_compaction_lag_ms, 0);
        assert_eq!(topic.max_compaction_lag_ms, i64::MAX);
        assert!(config.log_cleaner_enable);
        assert_eq!(config.log_cleaner_backoff_ms, 15_000);
        assert_eq!(config.log_cleaner_dedupe_buffer_size, 134_217_728);
        assert!(config.cleaner_warnings().is_empty());
        let config = BrokerConfig::load(
            None,
            &overrides(&[
                ("log.cleaner.min.cleanable.ratio", "0.25"),
                ("log.cleaner.delete.retention.ms", "5"),
                ("log.cleaner.threads", "4"),
            ]),
        )
        .expect("valid");
        let topic = config.default_topic_config();
        assert_eq!(topic.min_cleanable_dirty_ratio, Ratio(0.25));
        assert_eq!(topic.delete_retention_ms, 5);
        assert_eq!(config.cleaner_warnings().len(), 1);
        let altered = topic
            .with_overrides(&[
                (
                    "min.cleanable.dirty.ratio".to_string(),
                    Some("1".to_string()),
                ),
                (
                    "max.compaction.lag.ms".to_string(),
                    Some("1000".to_string()),
                ),
            ])
            .expect("valid overrides");
        assert_eq!(altered.min_cleanable_dirty_ratio.to_string(), "1.0");
        let described = altered.describe(&topic);
        let ratio = described
            .iter()
            .find(|e| e.name == "min.cleanable.dirty.ratio")
            .expect("described");
        assert_eq!(ratio.value.as_deref(), Some("1.0"));
        assert!(!ratio.is_default);
        for (name, value) in [
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "NaN"),
            ("max.compaction.lag.ms", "0"),
            ("delete.retention.ms", "-1"),
        ] {
            let result = topic.with_overrides(&[(name.to_string(), Some(value.to_string()))]);
            assert!(result.is_err(), "{name}={value} must be refused");
        }
    }
}

//! Producer settings under Kafka's own property names (`--producer-props k=v ...`).
//!
//! Names, meanings, units and defaults follow Apache Kafka 4.x `ProducerConfig`
//! (<https://kafka.apache.org/documentation/#producerconfigs>). Settings are validated once,
//! here; an invalid value is an error naming the property, never a silent fallback.

use std::time::Duration;

use crate::protocol::record_batch::Compression;

/// Why a `--producer-props` setting was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The argument was not of the form `key=value`.
    #[error("producer property `{0}` is not of the form key=value")]
    NotKeyValue(String),
    /// The property is not one this producer knows.
    #[error("unknown producer property `{key}` (supported: {supported})")]
    Unknown { key: String, supported: String },
    /// The value could not be parsed or is out of range.
    #[error("invalid value `{value}` for producer property `{key}`: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// `acks`: how many acknowledgments the leader must have received before answering a Produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Acks {
    /// `acks=0`: the broker sends no response; a record counts as sent once written to the socket.
    None,
    /// `acks=1`: the leader answers once the record is in its local log.
    Leader,
    /// `acks=all` (or `-1`): the leader answers once all in-sync replicas have it (on Ringtail,
    /// once it is fsynced).
    All,
}

impl Acks {
    /// The value of the Produce request's `acks` field.
    pub fn wire_value(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// The producer's settings, in Kafka's units.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProducerConfig {
    /// `acks`; Kafka's default since 3.0 is `all`.
    pub acks: Acks,
    /// `linger.ms`: how long a partition's batch may wait for more records before it is sent, in
    /// milliseconds. Kafka 4.0 changed the default from 0 to 5 (KIP-1030).
    pub linger_ms: u64,
    /// `batch.size`: the target size of one partition's batch in bytes (default 16384). A record
    /// larger than this gets a batch of its own.
    pub batch_size: usize,
    /// `compression.type`: codec of whole batches (default `none`).
    #[serde(serialize_with = "serialize_compression")]
    pub compression: Compression,
    /// `max.in.flight.requests.per.connection`: unanswered Produce requests per connection
    /// (default 5; at most 5 with idempotence, KIP-679).
    pub max_in_flight_requests_per_connection: usize,
    /// `enable.idempotence`: assign a producer id (InitProducerId) and per-partition sequence
    /// numbers (KIP-98). Kafka's default is true since 3.0, switched off silently when `acks` or
    /// `max.in.flight.requests.per.connection` are incompatible and it was not set explicitly.
    pub enable_idempotence: bool,
    /// `request.timeout.ms`: longest wait for any response, in milliseconds (default 30000).
    pub request_timeout_ms: u64,
    /// `buffer.memory`: bytes of records buffered before `send` blocks (default 33554432).
    pub buffer_memory: usize,
    /// `max.request.size`: the largest Produce request in bytes (default 1048576).
    pub max_request_size: usize,
    /// `compression.{gzip,lz4,zstd}.level` (KIP-390); `None` uses the codec's default.
    pub compression_level: Option<i32>,
    /// `client.id` sent in every request header.
    pub client_id: String,
    /// `bootstrap.servers` when given in the properties (overrides `--bootstrap-server`).
    pub bootstrap_servers: Option<String>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            linger_ms: 5,
            batch_size: 16384,
            compression: Compression::None,
            max_in_flight_requests_per_connection: 5,
            enable_idempotence: true,
            request_timeout_ms: 30_000,
            buffer_memory: 33_554_432,
            max_request_size: 1_048_576,
            compression_level: None,
            client_id: "ringtail-bench".to_string(),
            bootstrap_servers: None,
        }
    }
}

/// Properties accepted for compatibility with kafka-producer-perf-test but without effect here.
const IGNORED: &[&str] = &[
    "key.serializer",
    "value.serializer",
    "retries",
    "delivery.timeout.ms",
    "partitioner.class",
    "send.buffer.bytes",
    "receive.buffer.bytes",
    "metadata.max.age.ms",
];

const SUPPORTED: &[&str] = &[
    "acks",
    "linger.ms",
    "batch.size",
    "compression.type",
    "max.in.flight.requests.per.connection",
    "enable.idempotence",
    "request.timeout.ms",
    "buffer.memory",
    "max.request.size",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "client.id",
    "bootstrap.servers",
];

impl ProducerConfig {
    /// Parses `key=value` strings over Kafka's defaults, then applies Kafka's cross-checks
    /// (`ProducerConfig.postProcessAndValidateIdempotenceConfigs`).
    pub fn from_props<S: AsRef<str>>(props: &[S]) -> Result<ProducerConfig, ConfigError> {
        let mut config = ProducerConfig::default();
        let mut idempotence_explicit = false;
        for prop in props {
            let prop = prop.as_ref();
            let (key, value) = prop
                .split_once('=')
                .ok_or_else(|| ConfigError::NotKeyValue(prop.to_string()))?;
            let (key, value) = (key.trim(), value.trim());
            let invalid = |reason: &str| ConfigError::Invalid {
                key: key.to_string(),
                value: value.to_string(),
                reason: reason.to_string(),
            };
            match key {
                "acks" => {
                    config.acks = match value {
                        "0" => Acks::None,
                        "1" => Acks::Leader,
                        "all" | "-1" => Acks::All,
                        _ => return Err(invalid("expected 0, 1, all or -1")),
                    }
                }
                "linger.ms" => {
                    config.linger_ms = parse_in(value, 0, 3_600_000)
                        .ok_or_else(|| invalid("expected 0..=3600000 ms"))?
                }
                "batch.size" => {
                    config.batch_size = parse_in(value, 0, 1 << 30)
                        .ok_or_else(|| invalid("expected 0..=1073741824 bytes"))?
                        as usize
                }
                "compression.type" => {
                    config.compression = match value {
                        "none" => Compression::None,
                        "gzip" => Compression::Gzip,
                        "snappy" => Compression::Snappy,
                        "lz4" => Compression::Lz4,
                        "zstd" => Compression::Zstd,
                        _ => return Err(invalid("expected none, gzip, snappy, lz4 or zstd")),
                    }
                }
                "max.in.flight.requests.per.connection" => {
                    config.max_in_flight_requests_per_connection = parse_in(value, 1, 1000)
                        .ok_or_else(|| invalid("expected 1..=1000"))?
                        as usize
                }
                "enable.idempotence" => {
                    idempotence_explicit = true;
                    config.enable_idempotence = match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid("expected true or false")),
                    }
                }
                "request.timeout.ms" => {
                    config.request_timeout_ms = parse_in(value, 1, 3_600_000)
                        .ok_or_else(|| invalid("expected 1..=3600000 ms"))?
                }
                "buffer.memory" => {
                    config.buffer_memory = parse_in(value, 1024, 1 << 40)
                        .ok_or_else(|| invalid("expected at least 1024 bytes"))?
                        as usize
                }
                "max.request.size" => {
                    config.max_request_size = parse_in(value, 1024, 1 << 30)
                        .ok_or_else(|| invalid("expected 1024..=1073741824 bytes"))?
                        as usize
                }
                "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => {
                    let level: i64 = value.parse().map_err(|_| invalid("expected an integer"))?;
                    config.compression_level = Some(level as i32);
                }
                "client.id" => config.client_id = value.to_string(),
                "bootstrap.servers" => config.bootstrap_servers = Some(value.to_string()),
                _ if IGNORED.contains(&key) => {
                    eprintln!(
                        "warning: producer property `{key}` is accepted but has no effect here"
                    );
                }
                _ => {
                    return Err(ConfigError::Unknown {
                        key: key.to_string(),
                        supported: SUPPORTED.join(", "),
                    })
                }
            }
        }
        let compatible =
            config.acks == Acks::All && config.max_in_flight_requests_per_connection <= 5;
        if config.enable_idempotence && !compatible {
            if idempotence_explicit {
                return Err(ConfigError::Invalid {
                    key: "enable.idempotence".to_string(),
                    value: "true".to_string(),
                    reason: "requires acks=all and max.in.flight.requests.per.connection <= 5"
                        .to_string(),
                });
            }
            config.enable_idempotence = false;
        }
        Ok(config)
    }

    /// `linger.ms` as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    /// `request.timeout.ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

fn parse_in(value: &str, min: u64, max: u64) -> Option<u64> {
    let parsed: u64 = value.parse().ok()?;
    (min..=max).contains(&parsed).then_some(parsed)
}

fn serialize_compression<S: serde::Serializer>(c: &Compression, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let config = ProducerConfig::from_props::<&str>(&[]).unwrap();
        assert_eq!(config.acks, Acks::All);
        assert_eq!(config.batch_size, 16384);
        assert!(config.enable_idempotence);
    }

    #[test]
    fn idempotence_off_silently_with_acks_1() {
        let config = ProducerConfig::from_props(&["acks=1", "linger.ms=5"]).unwrap();
        assert!(!config.enable_idempotence);
        assert_eq!(config.linger_ms, 5);
    }

    #[test]
    fn explicit_idempotence_with_acks_1_is_an_error() {
        assert!(ProducerConfig::from_props(&["acks=1", "enable.idempotence=true"]).is_err());
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            "acks=2",
            "compression.type=brotli",
            "linger.ms=-1",
            "nope=1",
            "batch.size",
        ] {
            assert!(ProducerConfig::from_props(&[bad]).is_err(), "{bad}");
        }
    }
}

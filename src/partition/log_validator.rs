//! Record-level checks and recompression on append: Kafka's `LogValidator` for the settings that
//! need the records, not only the batch header.
//!
//! - `cleanup.policy` with `compact`: every record needs a key (INVALID_RECORD, KIP-467
//!   per-record errors);
//! - `message.timestamp.type=CreateTime` with `message.timestamp.before.max.ms` /
//!   `message.timestamp.after.max.ms` (KIP-937): every record timestamp within the bounds of the
//!   broker's clock (INVALID_TIMESTAMP);
//! - `compression.type` other than `producer`: a batch whose codec differs is recompressed with
//!   the topic's codec (offsets, timestamps, producer id / epoch / sequence kept, CRC recomputed).
//!
//! Hot path: [`needs_record_pass`] decides per batch from the header alone, so a batch of a topic
//! with Kafka's defaults (`compression.type=producer`, `delete`, `after.max.ms` 1 h and no
//! `before` bound) whose `max_timestamp` is within an hour of the clock is never decoded. That
//! trusts the header's `max_timestamp` for the `after` bound, where Kafka walks the records; the
//! records are walked whenever the header says a record may be out of bounds.
//!
//! Memory: a records section is decompressed into one scratch buffer, at most
//! [`decompressed_max_bytes`] (a decompression bomb answers MESSAGE_TOO_LARGE once the bound is
//! reached, having used no more than it).

use crate::protocol::record_batch::{Compression, RecordBatchHeader, RECORD_BATCH_HEADER_BYTES};
use crate::protocol::records::{self, WalkError};

use super::{AppendError, PartitionConfig, RecordErrorKind};

/// A decompressed records section may always be this large, whatever `max.message.bytes`:
/// 64 MiB, so that a 1 MiB batch of compressible records (JSON compresses 10-50x) passes.
pub const DECOMPRESSED_RECORDS_FLOOR_BYTES: usize = 64 << 20;

/// How large a batch's decompressed records section may be: `max.message.bytes` or
/// [`DECOMPRESSED_RECORDS_FLOOR_BYTES`], whichever is larger.
pub fn decompressed_max_bytes(config: &PartitionConfig) -> usize {
    config
        .max_message_bytes
        .max(DECOMPRESSED_RECORDS_FLOOR_BYTES)
}

/// Whether `header`'s batch must be decoded on append under `config` at broker time `now_ms`.
pub fn needs_record_pass(
    config: &PartitionConfig,
    header: &RecordBatchHeader,
    now_ms: i64,
) -> bool {
    if config.compacted {
        return true;
    }
    if config
        .compression
        .is_some_and(|target| header.compression() != Some(target))
    {
        return true;
    }
    if config.log_append_time {
        return false;
    }
    config.timestamp_before_max_ms != i64::MAX
        || (header.max_timestamp != NO_TIMESTAMP
            && timestamp_out_of_range(config, header.max_timestamp, now_ms))
}

/// Checks every record of the batch `batch` (exactly one whole batch, `header` parsed from it)
/// and returns the batch to store instead when it must be recompressed, `None` when it is kept
/// byte for byte. `scratch` is reused for decompression.
///
/// Errors: [`AppendError::RecordErrors`] naming every offending record (nothing of the
/// request is appended), [`AppendError::DecompressedTooLarge`], [`AppendError::RecordTooLarge`]
/// when the recompressed batch passes `max.message.bytes`, [`AppendError::Undecodable`] when
/// the records cannot be read.
pub fn validate_records(
    config: &PartitionConfig,
    topic_partition: &str,
    batch: &[u8],
    header: &RecordBatchHeader,
    now_ms: i64,
    scratch: &mut Vec<u8>,
) -> Result<Option<Vec<u8>>, AppendError> {
    let max_bytes = decompressed_max_bytes(config);
    let section =
        records::records_section(header, batch, scratch, max_bytes).map_err(|e| match e {
            WalkError::TooLarge { max_bytes, .. } => AppendError::DecompressedTooLarge {
                topic_partition: topic_partition.to_string(),
                max_bytes,
            },
            other => AppendError::Undecodable(other.to_string()),
        })?;
    let check_timestamps = !config.log_append_time;
    let mut errors: Vec<(i32, String)> = Vec::new();
    let mut kind = RecordErrorKind::InvalidRecord;
    let mut index: i32 = 0;
    records::walk_section(header, section, |record| {
        if config.compacted && record.key.is_none() {
            errors.push((
                index,
                format!(
                    "Compacted topic cannot accept message without key in topic partition \
                     {topic_partition}"
                ),
            ));
        } else if check_timestamps
            && record.timestamp != NO_TIMESTAMP
            && timestamp_out_of_range(config, record.timestamp, now_ms)
        {
            kind = RecordErrorKind::InvalidTimestamp;
            errors.push((
                index,
                format!(
                    "Timestamp {} of message with offset {} is out of range. The timestamp \
                     should be within [{}, {}]",
                    record.timestamp,
                    record.offset,
                    now_ms.wrapping_sub(config.timestamp_before_max_ms),
                    now_ms.wrapping_add(config.timestamp_after_max_ms),
                ),
            ));
        }
        index += 1;
    })
    .map_err(|e| AppendError::Undecodable(e.to_string()))?;
    if !errors.is_empty() {
        return Err(record_errors(kind, errors));
    }
    let Some(target) = config
        .compression
        .filter(|target| header.compression() != Some(*target))
    else {
        return Ok(None);
    };
    let level = match target {
        Compression::Gzip => config.compression_gzip_level,
        Compression::Zstd => config.compression_zstd_level,
        _ => None,
    };
    let rebuilt = records::recompress_batch(batch, section, target, level)
        .map_err(|e| AppendError::Undecodable(e.to_string()))?;
    if rebuilt.len() > config.max_message_bytes {
        return Err(AppendError::RecordTooLarge {
            topic_partition: topic_partition.to_string(),
            size: rebuilt.len(),
            max: config.max_message_bytes,
        });
    }
    assert!(
        rebuilt.len() >= RECORD_BATCH_HEADER_BYTES,
        "invariant: a recompressed batch keeps its header"
    );
    Ok(Some(rebuilt))
}

/// Kafka's `RecordBatch.NO_TIMESTAMP`.
const NO_TIMESTAMP: i64 = -1;

/// Kafka's `LogValidator.recordHasInvalidTimestamp`, with Java's wrapping arithmetic.
fn timestamp_out_of_range(config: &PartitionConfig, timestamp: i64, now_ms: i64) -> bool {
    let difference = now_ms.wrapping_sub(timestamp);
    difference > config.timestamp_before_max_ms
        || difference.wrapping_neg() > config.timestamp_after_max_ms
}

/// Kafka's `LogValidator.processRecordErrors`: INVALID_TIMESTAMP when any record's timestamp
/// is out of range, else INVALID_RECORD with the first three errors in the message.
fn record_errors(kind: RecordErrorKind, errors: Vec<(i32, String)>) -> AppendError {
    let message = match kind {
        RecordErrorKind::InvalidTimestamp => {
            "One or more records have been rejected due to invalid timestamp".to_string()
        }
        RecordErrorKind::InvalidRecord => {
            let shown: Vec<String> = errors
                .iter()
                .take(3)
                .map(|(index, message)| {
                    format!("RecordError(batchIndex={index}, message='{message}')")
                })
                .collect();
            format!(
                "One or more records have been rejected due to {} record errors in total, and \
                 only showing the first three errors at most: [{}]",
                errors.len(),
                shown.join(", ")
            )
        }
    };
    AppendError::RecordErrors {
        kind,
        record_errors: errors,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TopicConfig;
    use crate::protocol::record_batch::validate_batch;
    use crate::protocol::records::RecordBatchBuilder;

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn config(overrides: &[(&str, &str)]) -> PartitionConfig {
        let overrides: Vec<(String, Option<String>)> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
        let topic = TopicConfig::default().with_overrides(&overrides).unwrap();
        PartitionConfig::new(&topic, 0)
    }

    /// (key, timestamp) per record.
    fn batch(codec: Compression, records: &[(Option<&[u8]>, i64)]) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::new(1024);
        for (key, timestamp) in records {
            builder.append(*key, b"value", *timestamp);
        }
        builder.finish(codec, None, -1, -1, -1).unwrap().to_vec()
    }

    fn check(
        overrides: &[(&str, &str)],
        bytes: &[u8],
        needs_pass: bool,
        expected: Result<Option<Compression>, (RecordErrorKind, &[i32])>,
    ) {
        let config = config(overrides);
        let header = validate_batch(bytes, 1 << 20).unwrap();
        assert_eq!(
            needs_record_pass(&config, &header, NOW),
            needs_pass,
            "{overrides:?}"
        );
        let mut scratch = Vec::new();
        let result = validate_records(&config, "t-0", bytes, &header, NOW, &mut scratch);
        match (result, expected) {
            (Ok(None), Ok(None)) => {}
            (Ok(Some(rebuilt)), Ok(Some(codec))) => {
                let rebuilt = validate_batch(&rebuilt, 1 << 20).unwrap();
                assert_eq!(rebuilt.compression(), Some(codec));
                assert_eq!(rebuilt.max_timestamp, header.max_timestamp);
            }
            (
                Err(AppendError::RecordErrors {
                    kind,
                    record_errors,
                    ..
                }),
                Err((want_kind, want_indexes)),
            ) => {
                assert_eq!(kind, want_kind, "{overrides:?}");
                let indexes: Vec<i32> = record_errors.iter().map(|(i, _)| *i).collect();
                assert_eq!(indexes, want_indexes, "{overrides:?}");
            }
            (got, want) => panic!("{overrides:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn record_rules() {
        let keyed = batch(Compression::None, &[(Some(b"k"), NOW), (Some(b"k"), NOW)]);
        let keyless = batch(
            Compression::Lz4,
            &[(Some(b"k"), NOW), (None, NOW), (None, NOW)],
        );
        let skewed = batch(
            Compression::None,
            &[(None, NOW - 2 * HOUR), (None, NOW), (None, NOW + 2 * HOUR)],
        );
        // Kafka's defaults: the header alone decides, nothing is decoded.
        check(&[], &keyed, false, Ok(None));
        check(&[], &keyless, false, Ok(None));
        check(
            &[],
            &skewed,
            true,
            Err((RecordErrorKind::InvalidTimestamp, &[2])),
        );
        check(
            &[("cleanup.policy", "compact")],
            &keyless,
            true,
            Err((RecordErrorKind::InvalidRecord, &[1, 2])),
        );
        check(&[("cleanup.policy", "compact")], &keyed, true, Ok(None));
        check(
            &[("message.timestamp.before.max.ms", "3600000")],
            &skewed,
            true,
            Err((RecordErrorKind::InvalidTimestamp, &[0, 2])),
        );
        check(
            &[("message.timestamp.type", "LogAppendTime")],
            &skewed,
            false,
            Ok(None),
        );
        check(
            &[("compression.type", "zstd")],
            &keyed,
            true,
            Ok(Some(Compression::Zstd)),
        );
        check(&[("compression.type", "lz4")], &keyless, false, Ok(None));
        check(
            &[("compression.type", "uncompressed")],
            &keyless,
            true,
            Ok(Some(Compression::None)),
        );
        // Key errors come before timestamp errors, and a key error makes it INVALID_RECORD.
        check(
            &[("cleanup.policy", "compact"), ("compression.type", "gzip")],
            &skewed,
            true,
            Err((RecordErrorKind::InvalidRecord, &[0, 1, 2])),
        );
    }

    #[test]
    fn kafka_messages_and_bounds() {
        let config = config(&[("message.timestamp.after.max.ms", "0")]);
        let bytes = batch(Compression::None, &[(None, NOW + 1)]);
        let header = validate_batch(&bytes, 1 << 20).unwrap();
        let error =
            validate_records(&config, "t-0", &bytes, &header, NOW, &mut Vec::new()).unwrap_err();
        let AppendError::RecordErrors {
            record_errors,
            message,
            ..
        } = error
        else {
            panic!("{error:?}");
        };
        assert_eq!(
            message,
            "One or more records have been rejected due to invalid timestamp"
        );
        assert_eq!(
            record_errors,
            vec![(
                0,
                format!(
                    "Timestamp {} of message with offset 0 is out of range. The timestamp \
                     should be within [{}, {NOW}]",
                    NOW + 1,
                    NOW.wrapping_sub(i64::MAX)
                )
            )]
        );
        // A zstd bomb: 80 MiB of zeros in one record, past the 64 MiB bound.
        let mut builder = RecordBatchBuilder::new(0);
        builder.append(Some(b"k"), &vec![0u8; 80 << 20], NOW);
        let bomb = builder.finish(Compression::Zstd, None, -1, -1, -1).unwrap();
        let header = validate_batch(&bomb, 1 << 20).unwrap();
        let config = self::config(&[("compression.type", "gzip")]);
        let error =
            validate_records(&config, "t-0", &bomb, &header, NOW, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(error, AppendError::DecompressedTooLarge { max_bytes, .. } if max_bytes == DECOMPRESSED_RECORDS_FLOOR_BYTES),
            "{error:?}"
        );
    }
}

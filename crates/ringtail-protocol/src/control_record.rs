//! Control records: the transaction markers a transaction coordinator writes to every partition
//! of a transaction (KIP-98).
//!
//! A control batch is a v2 record batch with attribute bits 4 (transactional) and 5 (control)
//! set and exactly one record, whose key is the control record key and whose value is, for
//! COMMIT and ABORT, the end-transaction marker. Byte layouts as Kafka's `ControlRecordType`
//! (key: `int16 version = 0, int16 type`) and `EndTransactionMarker` (value: `int16 version = 0,
//! int32 coordinator_epoch`). Parsing never panics; unknown key types are reported, not refused
//! (Kafka's `ControlRecordType.UNKNOWN`), and readers skip trailing bytes of newer versions as
//! Kafka's `ControlRecordType.parse` / `EndTransactionMarker.deserialize` do.

use crate::record_batch::{Compression, RecordBatchHeader, RECORD_BATCH_HEADER_BYTES};
use crate::records::RecordBatchBuilder;

/// Size of a control record key in bytes (`int16 version, int16 type`).
pub const CONTROL_KEY_BYTES: usize = 4;
/// Size of an end-transaction marker value in bytes (`int16 version, int32 coordinator_epoch`).
pub const END_TXN_MARKER_VALUE_BYTES: usize = 6;
/// The only control key / marker value version Kafka writes (`ControlRecordType.CURRENT_CONTROL_RECORD_KEY_VERSION`).
pub const CONTROL_RECORD_VERSION: i16 = 0;

/// Batch attributes of a transaction marker: transactional (bit 4) | control (bit 5), no codec,
/// CreateTime (Kafka's `MemoryRecords.withEndTransactionMarker`).
pub const CONTROL_BATCH_ATTRIBUTES: i16 = 0x10 | 0x20;

/// The type in a control record key (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRecordType {
    /// 0: the transaction was aborted.
    Abort,
    /// 1: the transaction was committed.
    Commit,
    /// Any other type id (Kafka: `UNKNOWN`; e.g. KIP-853's KRaft control records 2..).
    Unknown(i16),
}

impl ControlRecordType {
    /// The wire id of the type.
    pub fn id(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
            ControlRecordType::Unknown(id) => id,
        }
    }

    /// The type for a wire id.
    pub fn from_id(id: i16) -> ControlRecordType {
        match id {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Unknown(other),
        }
    }
}

/// Why a control record key or marker value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlRecordError {
    /// Fewer bytes than the fixed fields need (Kafka: `InvalidRecordException`).
    #[error("control record {what} needs {needed} bytes, got {available}")]
    Truncated {
        /// "batch", "key" or "value".
        what: &'static str,
        /// Bytes the fields need.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// The batch's record could not be decoded.
    #[error("control batch record is malformed")]
    Malformed,
    /// A version below 0 (Kafka logs and reads newer versions' known prefix).
    #[error("invalid control record {what} version {version}")]
    InvalidVersion {
        /// "key" or "value".
        what: &'static str,
        /// The version read.
        version: i16,
    },
}

/// Encodes a control record key: `int16 version = 0, int16 type`.
pub fn encode_key(record_type: ControlRecordType) -> [u8; CONTROL_KEY_BYTES] {
    let mut key = [0u8; CONTROL_KEY_BYTES];
    key[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    key[2..].copy_from_slice(&record_type.id().to_be_bytes());
    key
}

/// Parses a control record key (Kafka's `ControlRecordType.parse`): the type at bytes 2..4;
/// bytes beyond are ignored (newer versions only append).
///
/// Errors: [`ControlRecordError::Truncated`] under 4 bytes, [`ControlRecordError::InvalidVersion`]
/// for a negative version.
pub fn parse_key(key: &[u8]) -> Result<ControlRecordType, ControlRecordError> {
    if key.len() < CONTROL_KEY_BYTES {
        return Err(ControlRecordError::Truncated {
            what: "key",
            needed: CONTROL_KEY_BYTES,
            available: key.len(),
        });
    }
    let version = i16::from_be_bytes([key[0], key[1]]);
    if version < 0 {
        return Err(ControlRecordError::InvalidVersion {
            what: "key",
            version,
        });
    }
    Ok(ControlRecordType::from_id(i16::from_be_bytes([
        key[2], key[3],
    ])))
}

/// Encodes an end-transaction marker value: `int16 version = 0, int32 coordinator_epoch`.
pub fn encode_end_txn_marker(coordinator_epoch: i32) -> [u8; END_TXN_MARKER_VALUE_BYTES] {
    let mut value = [0u8; END_TXN_MARKER_VALUE_BYTES];
    value[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    value
}

/// Parses an end-transaction marker value and returns its coordinator epoch (Kafka's
/// `EndTransactionMarker.deserializeValue`; bytes beyond the known fields are ignored).
///
/// Errors: [`ControlRecordError::Truncated`] under 6 bytes, [`ControlRecordError::InvalidVersion`]
/// for a negative version.
pub fn parse_end_txn_marker(value: &[u8]) -> Result<i32, ControlRecordError> {
    if value.len() < END_TXN_MARKER_VALUE_BYTES {
        return Err(ControlRecordError::Truncated {
            what: "value",
            needed: END_TXN_MARKER_VALUE_BYTES,
            available: value.len(),
        });
    }
    let version = i16::from_be_bytes([value[0], value[1]]);
    if version < 0 {
        return Err(ControlRecordError::InvalidVersion {
            what: "value",
            version,
        });
    }
    Ok(i32::from_be_bytes([value[2], value[3], value[4], value[5]]))
}

/// A commit (`commit`) or abort transaction marker as one v2 control batch, as Kafka's
/// `MemoryRecords.withEndTransactionMarker` builds it: attributes transactional | control,
/// uncompressed, one record at offset delta 0 with CreateTime `timestamp_ms`, key
/// [`encode_key`], value [`encode_end_txn_marker`]; producer id and epoch as given, base
/// sequence -1, base offset 0 and leader epoch -1 (the broker assigns both), CRC-32C set.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
    timestamp_ms: i64,
) -> Vec<u8> {
    let record_type = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    let mut builder = RecordBatchBuilder::new(64);
    builder.append(
        Some(&encode_key(record_type)),
        &encode_end_txn_marker(coordinator_epoch),
        timestamp_ms,
    );
    let mut batch = builder
        .finish(Compression::None, None, producer_id, producer_epoch, -1)
        .expect("invariant: an uncompressed batch always encodes")
        .to_vec();
    batch[21..23].copy_from_slice(&CONTROL_BATCH_ATTRIBUTES.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// The marker type and coordinator epoch of a control batch (`batch` one whole v2 batch with
/// the control attribute), decoding its single record; `None` for a control batch without
/// records (Kafka: the cleaner removed the transaction) or one that is not a marker.
///
/// Errors: the record or key/value does not decode, or the batch is compressed (never panics
/// on input). Control batches are written uncompressed (Kafka's `MemoryRecords
/// .withEndTransactionMarker`, Ringtail's [`control_batch`]); a compressed one is refused
/// rather than decompressed, so that a damaged or hostile batch cannot make the reader inflate
/// megabytes (found by the `internal_records` fuzz target: 2 MiB allocated for 103 bytes).
pub fn parse_control_batch(
    batch: &[u8],
) -> Result<Option<(ControlRecordType, i32)>, ControlRecordError> {
    let header = RecordBatchHeader::parse(batch).map_err(|_| ControlRecordError::Truncated {
        what: "batch",
        needed: RECORD_BATCH_HEADER_BYTES,
        available: batch.len(),
    })?;
    if header.compression() != Some(Compression::None) {
        return Err(ControlRecordError::Malformed);
    }
    let batch = &batch[..header.size_bytes().min(batch.len())];
    let mut found: Option<Result<(ControlRecordType, i32), ControlRecordError>> = None;
    let mut scratch = Vec::new();
    let walked = crate::records::walk_records(&header, batch, &mut scratch, |record| {
        if found.is_none() {
            let key = record.key.unwrap_or(&[]);
            found = Some(parse_key(key).and_then(|t| match t {
                ControlRecordType::Abort | ControlRecordType::Commit => {
                    parse_end_txn_marker(record.value.unwrap_or(&[])).map(|epoch| (t, epoch))
                }
                other => Ok((other, -1)),
            }));
        }
    });
    match (walked, found) {
        (_, Some(result)) => result.map(Some),
        (Ok(()), None) => Ok(None),
        (Err(_), None) => Err(ControlRecordError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::validate_batch;

    #[test]
    fn key_round_trips_and_matches_kafka_bytes() {
        assert_eq!(encode_key(ControlRecordType::Abort), [0, 0, 0, 0]);
        assert_eq!(encode_key(ControlRecordType::Commit), [0, 0, 0, 1]);
        assert_eq!(parse_key(&[0, 0, 0, 1]), Ok(ControlRecordType::Commit));
        assert_eq!(parse_key(&[0, 0, 0, 0]), Ok(ControlRecordType::Abort));
        assert_eq!(parse_key(&[0, 0, 0, 5]), Ok(ControlRecordType::Unknown(5)));
        // A newer version with more fields: the known prefix is read.
        assert_eq!(
            parse_key(&[0, 1, 0, 1, 9, 9]),
            Ok(ControlRecordType::Commit)
        );
    }

    #[test]
    fn bad_keys_and_values_are_errors_not_panics() {
        for len in 0..CONTROL_KEY_BYTES {
            assert!(matches!(
                parse_key(&vec![0; len]),
                Err(ControlRecordError::Truncated { .. })
            ));
        }
        for len in 0..END_TXN_MARKER_VALUE_BYTES {
            assert!(matches!(
                parse_end_txn_marker(&vec![0; len]),
                Err(ControlRecordError::Truncated { .. })
            ));
        }
        assert!(matches!(
            parse_key(&[0xff, 0xff, 0, 0]),
            Err(ControlRecordError::InvalidVersion { .. })
        ));
        assert!(matches!(
            parse_end_txn_marker(&[0x80, 0, 0, 0, 0, 0]),
            Err(ControlRecordError::InvalidVersion { .. })
        ));
    }

    #[test]
    fn a_compressed_control_batch_is_refused_not_inflated() {
        let mut batch = control_batch(7, 0, 3, true, 0);
        assert_eq!(
            parse_control_batch(&batch),
            Ok(Some((ControlRecordType::Commit, 3)))
        );
        // Codec bits 0-2 of the attributes (byte 22): gzip.
        batch[22] |= 1;
        assert_eq!(
            parse_control_batch(&batch),
            Err(ControlRecordError::Malformed)
        );
    }

    #[test]
    fn marker_value_round_trips() {
        assert_eq!(encode_end_txn_marker(7), [0, 0, 0, 0, 0, 7]);
        assert_eq!(parse_end_txn_marker(&encode_end_txn_marker(-3)), Ok(-3));
        assert_eq!(parse_end_txn_marker(&[0, 0, 0, 0, 1, 0, 0xaa]), Ok(256));
    }

    #[test]
    fn control_batch_is_a_valid_transactional_control_batch() {
        for commit in [true, false] {
            let batch = control_batch(42, 3, 11, commit, 1_700_000_000_000);
            let header = validate_batch(&batch, 1 << 20).expect("valid batch, CRC set");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(header.attributes, CONTROL_BATCH_ATTRIBUTES);
            assert_eq!(
                (
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence
                ),
                (42, 3, -1)
            );
            assert_eq!((header.base_offset, header.partition_leader_epoch), (0, -1));
            assert_eq!((header.record_count, header.last_offset_delta), (1, 0));
            assert_eq!(header.max_timestamp, 1_700_000_000_000);
            let expected = if commit {
                ControlRecordType::Commit
            } else {
                ControlRecordType::Abort
            };
            assert_eq!(parse_control_batch(&batch), Ok(Some((expected, 11))));
            assert_eq!(RecordBatchHeader::parse(&batch).unwrap(), header);
        }
    }

    #[test]
    fn parse_control_batch_never_panics_on_garbage() {
        let batch = control_batch(1, 0, 0, true, 0);
        for cut in 0..batch.len() {
            let _ = parse_control_batch(&batch[..cut]);
        }
        let mut flipped = batch.clone();
        for i in 61..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = parse_control_batch(&flipped);
            flipped[i] ^= 0xff;
        }
    }
}

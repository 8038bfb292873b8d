//! Transactional batches of `__consumer_offsets` (KIP-98, KIP-447): TxnOffsetCommit records
//! and the commit/abort markers that end them, as Kafka's group coordinator writes and
//! replays them.
//!
//! - A TxnOffsetCommit is stored as one record batch v2 with the transactional attribute set
//!   and the producer's id and epoch, base sequence 0 (Kafka's `GroupMetadataManager.storeOffsets`
//!   with `isTxnOffsetCommit`); its records are ordinary `OffsetCommit` key/values.
//! - The transaction coordinator ends it with a control batch (attributes transactional |
//!   control, one record: key `int16 version=0, int16 type` with 0 = ABORT, 1 = COMMIT, value
//!   `int16 version=0, int32 coordinator_epoch`: Kafka's `ControlRecordType` and
//!   `EndTransactionMarker`).
//! - Replay ([`decode_log_batches`]) keeps each batch's base offset, producer id and kind, so
//!   the coordinator can hold transactional offsets pending until their marker (Kafka's
//!   `GroupMetadataManager.doLoadGroupsAndOffsets`).
//!
//! No I/O, never panics on input.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::consumer_offsets::{CoordinatorRecord, RecordError};

/// Control record type of an abort marker (Kafka's `ControlRecordType.ABORT`).
pub const CONTROL_TYPE_ABORT: i16 = 0;
/// Control record type of a commit marker (Kafka's `ControlRecordType.COMMIT`).
pub const CONTROL_TYPE_COMMIT: i16 = 1;

/// What one stored `__consumer_offsets` batch holds.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchContent {
    /// Group metadata and offset commits outside any transaction.
    Plain(Vec<CoordinatorRecord>),
    /// Offset commits of `producer_id`'s ongoing transaction (TxnOffsetCommit).
    Transactional {
        /// The producer whose transaction holds the offsets.
        producer_id: i64,
        /// Its epoch.
        producer_epoch: i16,
        /// The records of the batch.
        records: Vec<CoordinatorRecord>,
    },
    /// The end of `producer_id`'s transaction: `commit` true for COMMIT, false for ABORT.
    Marker {
        /// The producer whose transaction ended.
        producer_id: i64,
        /// The epoch the marker carries.
        producer_epoch: i16,
        /// True for a commit marker.
        commit: bool,
    },
}

/// One decoded batch with its base offset (the position Kafka's `olderThan` compares).
#[derive(Clone, Debug, PartialEq)]
pub struct LogBatch {
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// What the batch holds.
    pub content: BatchContent,
}

/// Encodes `records` as one transactional record batch v2 of `producer_id`/`producer_epoch`
/// (base offset 0, base sequence 0; the caller assigns the base offset in place).
pub fn encode_txn_batch(
    records: &[CoordinatorRecord],
    producer_id: i64,
    producer_epoch: i16,
    timestamp_ms: i64,
) -> Result<BytesMut, RecordError> {
    let mut wire = Vec::with_capacity(records.len());
    for (delta, record) in records.iter().enumerate() {
        wire.push(Record {
            delete_horizon: false,
            transactional: true,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: delta as i64,
            sequence: delta as i32,
            timestamp: timestamp_ms,
            key: Some(record.encode_key()?),
            value: record.encode_value()?,
            headers: IndexMap::new(),
        });
    }
    encode(&wire)
}

/// Encodes a transaction marker as a control batch (base offset 0): the control record key
/// (`version 0`, `type` COMMIT or ABORT) and the `EndTransactionMarker` value
/// (`version 0`, `coordinator_epoch`).
pub fn encode_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
    timestamp_ms: i64,
) -> Result<BytesMut, RecordError> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(if commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    });
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let record = Record {
        delete_horizon: false,
        transactional: true,
        control: true,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: timestamp_ms,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: IndexMap::new(),
    };
    encode(std::slice::from_ref(&record))
}

fn encode(records: &[Record]) -> Result<BytesMut, RecordError> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options)
        .map_err(|source| RecordError::Batch { source })?;
    Ok(buf)
}

/// Reads a control record key: `Some(true)` for COMMIT, `Some(false)` for ABORT, `None` for
/// other control types (Kafka skips unknown ones) or a key too short to hold one.
pub fn control_record_is_commit(key: &[u8]) -> Option<bool> {
    if key.len() < 4 {
        return None;
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        CONTROL_TYPE_COMMIT => Some(true),
        CONTROL_TYPE_ABORT => Some(false),
        _ => None,
    }
}

/// Decodes every batch of `bytes` (whole batches, as read from the log) with its base offset
/// and kind. Keys of unknown schemas are skipped; control batches of unknown types are
/// skipped. Stops with an error at the first batch or record that does not decode.
pub fn decode_log_batches(bytes: Bytes) -> Result<Vec<LogBatch>, RecordError> {
    let mut out = Vec::new();
    crate::stored_records::for_each_batch(
        &bytes,
        |header, records| {
            // An empty batch (left by the cleaner) holds nothing to replay.
            let Some(first) = records.first() else {
                return Ok(());
            };
            let base_offset = first.offset;
            let producer_id = header.producer_id;
            let producer_epoch = header.producer_epoch;
            if header.is_control() {
                let commit = first.key.as_deref().and_then(control_record_is_commit);
                if let Some(commit) = commit {
                    out.push(LogBatch {
                        base_offset,
                        content: BatchContent::Marker {
                            producer_id,
                            producer_epoch,
                            commit,
                        },
                    });
                }
                return Ok(());
            }
            let mut decoded_records = Vec::new();
            for record in records {
                let key = record.key.as_deref().ok_or(RecordError::MissingKey)?;
                if let Some(decoded) = CoordinatorRecord::decode(key, record.value.as_deref())? {
                    decoded_records.push(decoded);
                }
            }
            let content = if header.is_transactional() {
                BatchContent::Transactional {
                    producer_id,
                    producer_epoch,
                    records: decoded_records,
                }
            } else {
                BatchContent::Plain(decoded_records)
            };
            out.push(LogBatch {
                base_offset,
                content,
            });
            Ok(())
        },
        |reason| RecordError::Batch {
            source: anyhow::anyhow!(reason),
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer_offsets::{encode_batch, OffsetCommitKey, OffsetCommitValue};
    use crate::record_batch::{set_base_offset, RecordBatchHeader};
    use kafka_protocol::records::RecordBatchDecoder;

    fn commit(partition: i32, offset: i64) -> CoordinatorRecord {
        CoordinatorRecord::OffsetCommit {
            key: OffsetCommitKey {
                group: "g".into(),
                topic: "t".into(),
                partition,
            },
            value: Some(OffsetCommitValue {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 7,
            }),
        }
    }

    #[test]
    fn txn_batch_has_producer_and_transactional_attribute() {
        let batch = encode_txn_batch(&[commit(0, 5), commit(1, 6)], 42, 3, 1000).unwrap();
        let header = RecordBatchHeader::parse(&batch).unwrap();
        assert!(header.is_transactional());
        assert!(!header.is_control());
        assert_eq!(header.producer_id, 42);
        assert_eq!(header.producer_epoch, 3);
        assert_eq!(header.base_sequence, 0);
        assert_eq!(header.record_count, 2);
    }

    #[test]
    fn marker_batch_is_control_with_kafka_key_and_value() {
        let batch = encode_marker_batch(42, 3, 9, true, 1000).unwrap();
        let header = RecordBatchHeader::parse(&batch).unwrap();
        assert!(header.is_transactional() && header.is_control());
        assert_eq!(header.record_count, 1);
        let mut bytes = batch.freeze();
        let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
        let record = &sets[0].records[0];
        assert_eq!(record.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(record.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 9][..]));
    }

    #[test]
    fn decode_keeps_offsets_producers_and_kinds() {
        let mut log = BytesMut::new();
        let mut plain = encode_batch(&[commit(0, 1)], 1).unwrap();
        set_base_offset(&mut plain, 0);
        log.extend_from_slice(&plain);
        let mut txn = encode_txn_batch(&[commit(0, 2), commit(1, 3)], 7, 0, 1).unwrap();
        set_base_offset(&mut txn, 1);
        log.extend_from_slice(&txn);
        let mut abort = encode_marker_batch(7, 0, 0, false, 1).unwrap();
        set_base_offset(&mut abort, 3);
        log.extend_from_slice(&abort);
        let batches = decode_log_batches(log.freeze()).unwrap();
        assert_eq!(
            batches,
            vec![
                LogBatch {
                    base_offset: 0,
                    content: BatchContent::Plain(vec![commit(0, 1)]),
                },
                LogBatch {
                    base_offset: 1,
                    content: BatchContent::Transactional {
                        producer_id: 7,
                        producer_epoch: 0,
                        records: vec![commit(0, 2), commit(1, 3)],
                    },
                },
                LogBatch {
                    base_offset: 3,
                    content: BatchContent::Marker {
                        producer_id: 7,
                        producer_epoch: 0,
                        commit: false,
                    },
                },
            ]
        );
    }

    #[test]
    fn control_keys_of_other_types_or_short_are_ignored() {
        assert_eq!(control_record_is_commit(&[0, 0, 0, 1]), Some(true));
        assert_eq!(control_record_is_commit(&[0, 0, 0, 0]), Some(false));
        assert_eq!(control_record_is_commit(&[0, 0, 0, 5]), None);
        assert_eq!(control_record_is_commit(&[0, 0]), None);
    }

    #[test]
    fn garbage_and_truncated_batches_do_not_panic() {
        let whole = encode_txn_batch(&[commit(0, 2)], 7, 0, 1).unwrap();
        for len in 0..whole.len() {
            let _ = decode_log_batches(Bytes::copy_from_slice(&whole[..len]));
        }
        let mut flipped = whole.to_vec();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = decode_log_batches(Bytes::copy_from_slice(&flipped));
            flipped[i] ^= 0xff;
        }
    }
}

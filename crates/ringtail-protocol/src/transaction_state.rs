//! Key/value schemas of the records in `__transaction_state`, Kafka's own byte layout.
//!
//! Kafka's `transaction-coordinator/src/main/resources/common/message/TransactionLog{Key,Value}.json`,
//! each prefixed by its `i16` schema version (`MessageUtil.toVersionPrefixedBytes`):
//!
//! ```text
//! TransactionLogKey   v0      transactional_id string
//! TransactionLogValue v0      producer_id i64, producer_epoch i16, transaction_timeout_ms i32,
//!                             transaction_status i8, transaction_partitions [topic string,
//!                             partition_ids [i32]]? (null when Empty), last_update_timestamp_ms
//!                             i64, start_timestamp_ms i64
//!                     v1      the same fields in the flexible encoding (compact strings and
//!                             arrays, a tagged-field section after each struct) with tagged
//!                             fields 0 previous_producer_id i64 (-1), 1 next_producer_id i64
//!                             (-1), 2 client_transaction_version i16 (0)
//! ```
//!
//! Kafka writes v0 until `transaction.version` 1 is finalized
//! (`TransactionVersion.transactionLogValueVersion`); Ringtail finalizes no transaction version,
//! so it writes v0 and reads both. A null value is a tombstone (an expired transactional id).
//! Records are written as uncompressed record batches v2, as `__consumer_offsets` records are
//! ([`crate::consumer_offsets::encode_batch`]'s encoder). This module does no I/O and never
//! panics on input.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub use crate::consumer_offsets::RecordError;

/// The key version Kafka writes (`TransactionLogKey` has only v0).
pub const TRANSACTION_LOG_KEY_VERSION: i16 = 0;
/// The value version Ringtail writes (Kafka's with `transaction.version` 0).
pub const TRANSACTION_LOG_VALUE_VERSION: i16 = 0;
/// The highest value version read (v1: flexible, tagged fields).
pub const TRANSACTION_LOG_VALUE_VERSION_MAX: i16 = 1;

/// Kafka's `TransactionState` with its stored ids (`TransactionState.java` / `TransactionMetadata.scala`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// No transaction in progress (id 0).
    Empty,
    /// A transaction in progress (1).
    Ongoing,
    /// EndTxn(commit) accepted, markers being written (2).
    PrepareCommit,
    /// EndTxn(abort) or a timeout/fence accepted, markers being written (3).
    PrepareAbort,
    /// Every commit marker written (4).
    CompleteCommit,
    /// Every abort marker written (5).
    CompleteAbort,
    /// The transactional id expired and is being removed (6).
    Dead,
    /// The epoch is being fenced before an abort (7).
    PrepareEpochFence,
}

impl TransactionStatus {
    /// The id stored in `TransactionStatus`.
    pub fn id(self) -> i8 {
        match self {
            TransactionStatus::Empty => 0,
            TransactionStatus::Ongoing => 1,
            TransactionStatus::PrepareCommit => 2,
            TransactionStatus::PrepareAbort => 3,
            TransactionStatus::CompleteCommit => 4,
            TransactionStatus::CompleteAbort => 5,
            TransactionStatus::Dead => 6,
            TransactionStatus::PrepareEpochFence => 7,
        }
    }

    /// The state of a stored id, `None` for an unknown one.
    pub fn from_id(id: i8) -> Option<TransactionStatus> {
        Some(match id {
            0 => TransactionStatus::Empty,
            1 => TransactionStatus::Ongoing,
            2 => TransactionStatus::PrepareCommit,
            3 => TransactionStatus::PrepareAbort,
            4 => TransactionStatus::CompleteCommit,
            5 => TransactionStatus::CompleteAbort,
            6 => TransactionStatus::Dead,
            7 => TransactionStatus::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions / ListTransactions use (Kafka's `TransactionState.stateName`).
    pub fn name(self) -> &'static str {
        match self {
            TransactionStatus::Empty => "Empty",
            TransactionStatus::Ongoing => "Ongoing",
            TransactionStatus::PrepareCommit => "PrepareCommit",
            TransactionStatus::PrepareAbort => "PrepareAbort",
            TransactionStatus::CompleteCommit => "CompleteCommit",
            TransactionStatus::CompleteAbort => "CompleteAbort",
            TransactionStatus::Dead => "Dead",
            TransactionStatus::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// One topic's partitions in a transaction (`PartitionsSchema`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionPartitions {
    /// The topic name.
    pub topic: String,
    /// Its partitions in the transaction.
    pub partition_ids: Vec<i32>,
}

/// `TransactionLogValue`: the state of one transactional id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionLogValue {
    /// Producer id in use by the transactional id.
    pub producer_id: i64,
    /// v1 tagged 0: producer id of the last committed transaction (-1).
    pub previous_producer_id: i64,
    /// v1 tagged 1: the producer id sent to the producer after an epoch exhaustion (-1).
    pub next_producer_id: i64,
    /// Epoch of the producer id.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub transaction_timeout_ms: i32,
    /// The state.
    pub transaction_status: TransactionStatus,
    /// Partitions of the transaction; Kafka stores null for Empty.
    pub transaction_partitions: Vec<TransactionPartitions>,
    /// When the state last changed, ms since the epoch.
    pub transaction_last_update_timestamp_ms: i64,
    /// When the transaction started (its first AddPartitions), ms since the epoch; -1 if none.
    pub transaction_start_timestamp_ms: i64,
    /// v1 tagged 2: the client's transaction version (0).
    pub client_transaction_version: i16,
}

/// One `__transaction_state` record: a transactional id and its state, or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionLogRecord {
    /// `TransactionLogKey.TransactionalId`.
    pub transactional_id: String,
    /// The value; `None` is a tombstone.
    pub value: Option<TransactionLogValue>,
}

/// Encodes a `TransactionLogKey` with its version prefix.
pub fn encode_key(transactional_id: &str) -> Result<Bytes, RecordError> {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(TRANSACTION_LOG_KEY_VERSION);
    put_string(&mut buf, "transactional_id", transactional_id)?;
    Ok(buf.freeze())
}

/// Decodes a version-prefixed key; `Ok(None)` for a key version Kafka would skip (`UnknownKey`).
pub fn decode_key(bytes: &[u8]) -> Result<Option<String>, RecordError> {
    let mut reader = Reader { bytes };
    let version = reader.i16("key version")?;
    if version != TRANSACTION_LOG_KEY_VERSION {
        return Ok(None);
    }
    reader.string("transactional_id").map(Some)
}

/// Encodes `value` with the version prefix `version` (0 or 1).
pub fn encode_value(value: &TransactionLogValue, version: i16) -> Result<Bytes, RecordError> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(version);
    let flexible = match version {
        0 => false,
        1 => true,
        _ => {
            return Err(RecordError::UnsupportedVersion {
                schema: "TransactionLogValue",
                version,
            })
        }
    };
    buf.put_i64(value.producer_id);
    buf.put_i16(value.producer_epoch);
    buf.put_i32(value.transaction_timeout_ms);
    buf.put_i8(value.transaction_status.id());
    let partitions = (value.transaction_status != TransactionStatus::Empty)
        .then_some(&value.transaction_partitions);
    match (partitions, flexible) {
        (None, false) => buf.put_i32(-1),
        (None, true) => put_uvarint(&mut buf, 0),
        (Some(topics), _) => {
            put_array_len(&mut buf, "transaction_partitions", topics.len(), flexible)?;
            for topic in topics {
                if flexible {
                    put_compact_string(&mut buf, "topic", &topic.topic)?;
                } else {
                    put_string(&mut buf, "topic", &topic.topic)?;
                }
                put_array_len(
                    &mut buf,
                    "partition_ids",
                    topic.partition_ids.len(),
                    flexible,
                )?;
                for id in &topic.partition_ids {
                    buf.put_i32(*id);
                }
                if flexible {
                    put_uvarint(&mut buf, 0);
                }
            }
        }
    }
    buf.put_i64(value.transaction_last_update_timestamp_ms);
    buf.put_i64(value.transaction_start_timestamp_ms);
    if flexible {
        // Tagged fields in tag order, each only when it differs from its default.
        let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
        if value.previous_producer_id != -1 {
            tagged.push((0, value.previous_producer_id.to_be_bytes().to_vec()));
        }
        if value.next_producer_id != -1 {
            tagged.push((1, value.next_producer_id.to_be_bytes().to_vec()));
        }
        if value.client_transaction_version != 0 {
            tagged.push((2, value.client_transaction_version.to_be_bytes().to_vec()));
        }
        put_uvarint(&mut buf, tagged.len() as u32);
        for (tag, data) in tagged {
            put_uvarint(&mut buf, tag);
            put_uvarint(&mut buf, data.len() as u32);
            buf.put_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Decodes a version-prefixed value (v0 or v1; unknown tagged fields are skipped).
pub fn decode_value(bytes: &[u8]) -> Result<TransactionLogValue, RecordError> {
    let mut reader = Reader { bytes };
    let version = reader.i16("value version")?;
    let flexible = match version {
        0 => false,
        1 => true,
        _ => {
            return Err(RecordError::UnsupportedVersion {
                schema: "TransactionLogValue",
                version,
            })
        }
    };
    let producer_id = reader.i64("producer_id")?;
    let producer_epoch = reader.i16("producer_epoch")?;
    let transaction_timeout_ms = reader.i32("transaction_timeout_ms")?;
    let status_id = reader.i8("transaction_status")?;
    let transaction_status =
        TransactionStatus::from_id(status_id).ok_or(RecordError::InvalidLength {
            field: "transaction_status",
            length: status_id as i32,
        })?;
    let mut transaction_partitions = Vec::new();
    if let Some(topics) = reader.array_len("transaction_partitions", flexible)? {
        for _ in 0..topics {
            let topic = if flexible {
                reader.compact_string("topic")?
            } else {
                reader.string("topic")?
            };
            let count =
                reader
                    .array_len("partition_ids", flexible)?
                    .ok_or(RecordError::InvalidLength {
                        field: "partition_ids",
                        length: -1,
                    })?;
            let mut partition_ids = Vec::with_capacity(count.min(reader.bytes.len() / 4));
            for _ in 0..count {
                partition_ids.push(reader.i32("partition_ids")?);
            }
            if flexible {
                reader.skip_tagged_fields(|_, _| Ok(()))?;
            }
            transaction_partitions.push(TransactionPartitions {
                topic,
                partition_ids,
            });
        }
    }
    let mut value = TransactionLogValue {
        producer_id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch,
        transaction_timeout_ms,
        transaction_status,
        transaction_partitions,
        transaction_last_update_timestamp_ms: reader.i64("transaction_last_update_timestamp_ms")?,
        transaction_start_timestamp_ms: reader.i64("transaction_start_timestamp_ms")?,
        client_transaction_version: 0,
    };
    if flexible {
        reader.skip_tagged_fields(|tag, data| {
            let mut field = Reader { bytes: data };
            match tag {
                0 => value.previous_producer_id = field.i64("previous_producer_id")?,
                1 => value.next_producer_id = field.i64("next_producer_id")?,
                2 => value.client_transaction_version = field.i16("client_transaction_version")?,
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(value)
}

/// Encodes `records` as one uncompressed record batch v2 (base offset 0, no producer id).
pub fn encode_batch(
    records: &[TransactionLogRecord],
    timestamp_ms: i64,
) -> Result<BytesMut, RecordError> {
    let mut wire = Vec::with_capacity(records.len());
    for (delta, record) in records.iter().enumerate() {
        let value = match &record.value {
            Some(value) => Some(encode_value(value, TRANSACTION_LOG_VALUE_VERSION)?),
            None => None,
        };
        wire.push(Record {
            delete_horizon: false,
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: delta as i64,
            // Keeps the batch's base sequence at -1, as for `__consumer_offsets`.
            sequence: delta as i32 - 1,
            timestamp: timestamp_ms,
            key: Some(encode_key(&record.transactional_id)?),
            value,
            headers: IndexMap::new(),
        });
    }
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, wire.iter(), &options)
        .map_err(|source| RecordError::Batch { source })?;
    Ok(buf)
}

/// Decodes every record of the batches in `bytes`, skipping control records and unknown key
/// versions. Stops with an error at the first batch or record that does not decode.
pub fn decode_batches(bytes: Bytes) -> Result<Vec<TransactionLogRecord>, RecordError> {
    let mut out = Vec::new();
    crate::stored_records::for_each_batch(
        &bytes,
        |header, records| {
            if header.is_control() {
                return Ok(());
            }
            for record in records {
                let key = record.key.as_deref().ok_or(RecordError::MissingKey)?;
                let Some(transactional_id) = decode_key(key)? else {
                    continue;
                };
                let value = record.value.as_deref().map(decode_value).transpose()?;
                out.push(TransactionLogRecord {
                    transactional_id,
                    value,
                });
            }
            Ok(())
        },
        |reason| RecordError::Batch {
            source: anyhow::anyhow!(reason),
        },
    )?;
    Ok(out)
}

fn put_string(buf: &mut BytesMut, field: &'static str, value: &str) -> Result<(), RecordError> {
    if value.len() > i16::MAX as usize {
        return Err(RecordError::TooLong {
            field,
            length: value.len(),
        });
    }
    buf.put_i16(value.len() as i16);
    buf.put_slice(value.as_bytes());
    Ok(())
}

fn put_compact_string(
    buf: &mut BytesMut,
    field: &'static str,
    value: &str,
) -> Result<(), RecordError> {
    if value.len() > i16::MAX as usize {
        return Err(RecordError::TooLong {
            field,
            length: value.len(),
        });
    }
    put_uvarint(buf, value.len() as u32 + 1);
    buf.put_slice(value.as_bytes());
    Ok(())
}

fn put_array_len(
    buf: &mut BytesMut,
    field: &'static str,
    len: usize,
    flexible: bool,
) -> Result<(), RecordError> {
    if len >= i32::MAX as usize {
        return Err(RecordError::TooLong { field, length: len });
    }
    if flexible {
        put_uvarint(buf, len as u32 + 1);
    } else {
        buf.put_i32(len as i32);
    }
    Ok(())
}

fn put_uvarint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Big-endian reader over untrusted bytes: every read checks the length first.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        if self.bytes.len() < n {
            return Err(RecordError::Truncated { field });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn i8(&mut self, field: &'static str) -> Result<i8, RecordError> {
        Ok(self.take(1, field)?[0] as i8)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        let b = self.take(8, field)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(b);
        Ok(i64::from_be_bytes(array))
    }

    fn uvarint(&mut self, field: &'static str) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1, field)?[0];
            value |= ((byte & 0x7f) as u32) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::InvalidLength { field, length: -1 })
    }

    fn utf8(&mut self, len: usize, field: &'static str) -> Result<String, RecordError> {
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| RecordError::InvalidUtf8 { field })
    }

    fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        let length = self.i16(field)?;
        if length < 0 {
            return Err(RecordError::InvalidLength {
                field,
                length: length as i32,
            });
        }
        self.utf8(length as usize, field)
    }

    fn compact_string(&mut self, field: &'static str) -> Result<String, RecordError> {
        let length = self.uvarint(field)?;
        if length == 0 {
            return Err(RecordError::InvalidLength { field, length: -1 });
        }
        self.utf8(length as usize - 1, field)
    }

    /// An array length; `None` is null.
    fn array_len(
        &mut self,
        field: &'static str,
        flexible: bool,
    ) -> Result<Option<usize>, RecordError> {
        if flexible {
            let n = self.uvarint(field)?;
            return Ok((n > 0).then(|| n as usize - 1));
        }
        match self.i32(field)? {
            -1 => Ok(None),
            n if n < 0 => Err(RecordError::InvalidLength { field, length: n }),
            n => Ok(Some(n as usize)),
        }
    }

    fn skip_tagged_fields(
        &mut self,
        mut each: impl FnMut(u32, &[u8]) -> Result<(), RecordError>,
    ) -> Result<(), RecordError> {
        let count = self.uvarint("tagged fields")?;
        for _ in 0..count {
            let tag = self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")?;
            let data = self.take(size as usize, "tagged field")?;
            each(tag, data)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TransactionLogValue {
        TransactionLogValue {
            producer_id: 1000,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            transaction_timeout_ms: 60_000,
            transaction_status: TransactionStatus::Ongoing,
            transaction_partitions: vec![TransactionPartitions {
                topic: "t".into(),
                partition_ids: vec![0, 2],
            }],
            transaction_last_update_timestamp_ms: 7,
            transaction_start_timestamp_ms: 5,
            client_transaction_version: 0,
        }
    }

    /// The bytes Kafka's generated `TransactionLogValue.write` gives for `ongoing()` at v0,
    /// built field by field from the JSON schema.
    fn ongoing_v0_bytes() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(0i16.to_be_bytes()); // version
        b.extend(1000i64.to_be_bytes()); // ProducerId
        b.extend(3i16.to_be_bytes()); // ProducerEpoch
        b.extend(60_000i32.to_be_bytes()); // TransactionTimeoutMs
        b.push(1); // TransactionStatus Ongoing
        b.extend(1i32.to_be_bytes()); // TransactionPartitions: 1 topic
        b.extend(1i16.to_be_bytes()); // Topic "t"
        b.push(b't');
        b.extend(2i32.to_be_bytes()); // PartitionIds: 2
        b.extend(0i32.to_be_bytes());
        b.extend(2i32.to_be_bytes());
        b.extend(7i64.to_be_bytes()); // TransactionLastUpdateTimestampMs
        b.extend(5i64.to_be_bytes()); // TransactionStartTimestampMs
        b
    }

    #[test]
    fn key_is_version_prefixed_string() {
        let key = encode_key("tx-1").unwrap();
        assert_eq!(&key[..], &[0, 0, 0, 4, b't', b'x', b'-', b'1']);
        assert_eq!(decode_key(&key).unwrap().as_deref(), Some("tx-1"));
        assert_eq!(
            decode_key(&[0, 1, 0, 0]).unwrap(),
            None,
            "unknown key version"
        );
        assert!(decode_key(&[0, 0, 0, 9, b'a']).is_err(), "truncated");
    }

    #[test]
    fn value_v0_matches_kafka_bytes() {
        let bytes = encode_value(&ongoing(), 0).unwrap();
        assert_eq!(&bytes[..], &ongoing_v0_bytes()[..]);
        assert_eq!(decode_value(&bytes).unwrap(), ongoing());
    }

    #[test]
    fn empty_state_stores_null_partitions() {
        let mut value = ongoing();
        value.transaction_status = TransactionStatus::Empty;
        value.transaction_partitions.clear();
        value.transaction_start_timestamp_ms = -1;
        let bytes = encode_value(&value, 0).unwrap();
        // version 2 + pid 8 + epoch 2 + timeout 4 + status 1 = 17: then the null array.
        assert_eq!(&bytes[17..21], &(-1i32).to_be_bytes());
        assert_eq!(bytes.len(), 21 + 16);
        assert_eq!(decode_value(&bytes).unwrap(), value);
    }

    #[test]
    fn value_v1_flexible_with_tagged_fields() {
        let mut value = ongoing();
        value.previous_producer_id = 999;
        value.client_transaction_version = 2;
        let mut b = Vec::new();
        b.extend(1i16.to_be_bytes());
        b.extend(1000i64.to_be_bytes());
        b.extend(3i16.to_be_bytes());
        b.extend(60_000i32.to_be_bytes());
        b.push(1);
        b.push(2); // compact array: 1 topic + 1
        b.push(2); // compact string "t": length 1 + 1
        b.push(b't');
        b.push(3); // compact array: 2 ids + 1
        b.extend(0i32.to_be_bytes());
        b.extend(2i32.to_be_bytes());
        b.push(0); // PartitionsSchema tagged fields: none
        b.extend(7i64.to_be_bytes());
        b.extend(5i64.to_be_bytes());
        b.push(2); // two tagged fields
        b.push(0); // tag 0 PreviousProducerId
        b.push(8);
        b.extend(999i64.to_be_bytes());
        b.push(2); // tag 2 ClientTransactionVersion
        b.push(2);
        b.extend(2i16.to_be_bytes());
        let bytes = encode_value(&value, 1).unwrap();
        assert_eq!(&bytes[..], &b[..]);
        assert_eq!(decode_value(&b).unwrap(), value);
        // An unknown tag is skipped.
        let mut unknown = b.clone();
        let tags_at = unknown.len() - 15;
        unknown[tags_at] = 3;
        unknown.extend([9, 1, 0xff]);
        assert_eq!(decode_value(&unknown).unwrap(), value);
    }

    #[test]
    fn every_status_round_trips() {
        for id in 0..8 {
            let status = TransactionStatus::from_id(id).unwrap();
            assert_eq!(status.id(), id);
        }
        assert_eq!(TransactionStatus::from_id(8), None);
        let mut bad = ongoing_v0_bytes();
        bad[16] = 42;
        assert!(decode_value(&bad).is_err());
    }

    #[test]
    fn truncated_or_garbage_values_are_errors_not_panics() {
        let bytes = ongoing_v0_bytes();
        for end in 0..bytes.len() {
            assert!(decode_value(&bytes[..end]).is_err(), "prefix {end}");
        }
        assert!(decode_value(&[0, 5]).is_err(), "unknown version");
        let mut huge = bytes.clone();
        huge[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_value(&huge).is_err());
        let mut flexible = vec![0u8, 1];
        flexible.extend([0xff; 40]);
        assert!(decode_value(&flexible).is_err());
    }

    #[test]
    fn batches_round_trip_with_tombstones() {
        let records = vec![
            TransactionLogRecord {
                transactional_id: "a".into(),
                value: Some(ongoing()),
            },
            TransactionLogRecord {
                transactional_id: "b".into(),
                value: None,
            },
        ];
        let batch = encode_batch(&records, 42).unwrap();
        assert_eq!(decode_batches(batch.freeze()).unwrap(), records);
    }
}

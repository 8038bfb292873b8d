//! Record batches as a producer encodes them, for unit tests and criterion benches.
//!
//! Not part of the broker: hidden from docs, used by `#[cfg(test)]` modules (here and in the
//! broker crate, as `ringtail::test_support`) and `benches/`.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// What [`encode_batch`] builds. `Default` is one uncompressed record of 100 bytes from a
/// producer without idempotence, timestamps from 1_700_000_000_000 ms one apart.
#[derive(Clone, Debug)]
pub struct BatchSpec {
    pub count: usize,
    /// Bytes per record value; values cycle through `a..z` by record index.
    pub value_bytes: usize,
    /// Keys `key-0`, `key-1`, ... when true; null keys otherwise.
    pub keyed: bool,
    /// Timestamp of record `i` is `first_timestamp + i * timestamp_step_ms` (ms).
    pub first_timestamp: i64,
    pub timestamp_step_ms: i64,
    /// -1 for a producer without idempotence.
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence of the first record; -1 without idempotence.
    pub base_sequence: i32,
    pub control: bool,
    pub compression: Compression,
}

impl Default for BatchSpec {
    fn default() -> BatchSpec {
        BatchSpec {
            count: 1,
            value_bytes: 100,
            keyed: false,
            first_timestamp: 1_700_000_000_000,
            timestamp_step_ms: 1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            control: false,
            compression: Compression::None,
        }
    }
}

/// Encodes one v2 record batch with kafka-protocol's encoder, base offset 0.
pub fn encode_batch(spec: &BatchSpec) -> BytesMut {
    let records: Vec<Record> = (0..spec.count)
        .map(|i| Record {
            delete_horizon: false,
            transactional: false,
            control: spec.control,
            partition_leader_epoch: -1,
            producer_id: spec.producer_id,
            producer_epoch: spec.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence stays constant, which keeps the encoder to one batch.
            sequence: spec.base_sequence.wrapping_add(i as i32),
            timestamp: spec.first_timestamp + spec.timestamp_step_ms * i as i64,
            key: spec.keyed.then(|| Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; spec.value_bytes])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: spec.compression,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode");
    buf
}

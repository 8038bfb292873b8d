//! The producer's open batch: a [`RecordBatchBuilder`] (ringtail-protocol) plus the times the
//! accumulator and the latency figures need.

use std::time::Instant;

use bytes::Bytes;
use ringtail_protocol::codec::CodecError;
use ringtail_protocol::record_batch::Compression;
use ringtail_protocol::records::RecordBatchBuilder;

/// An open batch for one partition: records appended uncompressed, compressed at `finish`.
#[derive(Debug)]
pub struct BatchBuilder {
    records: RecordBatchBuilder,
    /// When the batch was opened: `linger.ms` counts from here (Kafka `ProducerBatch.createdMs`).
    pub created: Instant,
    /// Each record's send time (the intended one when a rate is set), for latency.
    pub send_times: Vec<Instant>,
}

impl BatchBuilder {
    /// An empty batch opened at `created`.
    pub fn new(created: Instant, capacity_bytes: usize) -> BatchBuilder {
        BatchBuilder {
            records: RecordBatchBuilder::new(capacity_bytes),
            created,
            send_times: Vec::new(),
        }
    }

    /// Records appended so far.
    pub fn record_count(&self) -> usize {
        self.records.record_count()
    }

    /// Uncompressed size of the batch so far in bytes (header plus records).
    pub fn uncompressed_bytes(&self) -> usize {
        self.records.uncompressed_bytes()
    }

    /// Appends one record with CreateTime `timestamp_ms`, sent (or due) at `send_time`.
    pub fn append(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp_ms: i64,
        send_time: Instant,
    ) {
        self.records.append(key, value, timestamp_ms);
        self.send_times.push(send_time);
    }

    /// Writes the complete batch ([`RecordBatchBuilder::finish`]).
    pub fn finish(
        &self,
        compression: Compression,
        level: Option<i32>,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Result<Bytes, CodecError> {
        self.records.finish(
            compression,
            level,
            producer_id,
            producer_epoch,
            base_sequence,
        )
    }
}

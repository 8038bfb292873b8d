//! The producer's record accumulator: one open batch per partition, `linger.ms` and
//! `batch.size` as Kafka's `RecordAccumulator` applies them.
//!
//! A partition's batch is *ready* to send when it is full (its estimated size reached
//! `batch.size`, or the next record did not fit), when it has waited `linger.ms` since it was
//! opened, or when the producer is flushing. A record larger than `batch.size` gets a batch of
//! its own. For compressed batches the size is estimated from the uncompressed bytes times a
//! running compression ratio, as Kafka's `CompressionRatioEstimator` does (start 1.0, step down
//! 0.005 when better, up 0.05 when worse). Sans-io: time is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::batch::BatchBuilder;
use crate::protocol::record_batch::{Compression, RECORD_BATCH_HEADER_BYTES};

/// `CompressionRatioEstimator.COMPRESSION_RATIO_IMPROVING_STEP`.
const RATIO_IMPROVING_STEP: f32 = 0.005;
/// `CompressionRatioEstimator.COMPRESSION_RATIO_DETERIORATE_STEP`.
const RATIO_DETERIORATE_STEP: f32 = 0.05;

/// What an append did, for the partitioner and the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendOutcome {
    /// The record opened a new batch.
    pub new_batch: bool,
    /// A batch of this partition became full and is ready to send.
    pub batch_full: bool,
}

/// Per-partition batches waiting to be sent.
#[derive(Debug)]
pub struct RecordAccumulator {
    batch_size: usize,
    linger: Duration,
    compression: Compression,
    ratio_estimate: f32,
    open: Vec<Option<BatchBuilder>>,
    closed: Vec<VecDeque<BatchBuilder>>,
    buffered_bytes: usize,
    flushing: bool,
    drain_start: usize,
}

impl RecordAccumulator {
    /// An accumulator for `partitions` partitions with `batch.size` bytes, `linger.ms` and
    /// `compression.type`.
    pub fn new(
        partitions: usize,
        batch_size: usize,
        linger: Duration,
        compression: Compression,
    ) -> RecordAccumulator {
        RecordAccumulator {
            batch_size,
            linger,
            compression,
            ratio_estimate: 1.0,
            open: (0..partitions).map(|_| None).collect(),
            closed: (0..partitions).map(|_| VecDeque::new()).collect(),
            buffered_bytes: 0,
            flushing: false,
            drain_start: 0,
        }
    }

    /// Uncompressed bytes of records held, open or closed (for `buffer.memory`).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.buffered_bytes == 0
    }

    /// From now on every batch is ready regardless of `linger.ms` (`KafkaProducer.flush`).
    pub fn begin_flush(&mut self) {
        self.flushing = true;
    }

    /// Appends a record to `partition`'s open batch, opening or closing batches as
    /// `batch.size` requires.
    pub fn append(
        &mut self,
        partition: usize,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp_ms: i64,
        send_time: Instant,
        now: Instant,
    ) -> AppendOutcome {
        let mut outcome = AppendOutcome::default();
        let record_bytes = key.map_or(0, <[u8]>::len) + value.len() + 8;
        let fits = match &self.open[partition] {
            Some(batch) => {
                self.estimated_bytes(batch.uncompressed_bytes() + record_bytes) <= self.batch_size
            }
            None => true,
        };
        if !fits {
            self.close(partition);
        }
        let batch = self.open[partition].get_or_insert_with(|| {
            outcome.new_batch = true;
            BatchBuilder::new(now, self.batch_size.min(1 << 20))
        });
        let before = batch.uncompressed_bytes();
        batch.append(key, value, timestamp_ms, send_time);
        let after = batch.uncompressed_bytes();
        self.buffered_bytes += after - before;
        if self.estimated_bytes(after) >= self.batch_size {
            self.close(partition);
        }
        outcome.batch_full = !fits || !self.closed[partition].is_empty();
        outcome
    }

    /// Whether `partition` has a batch ready at `now`.
    pub fn is_ready(&self, partition: usize, now: Instant) -> bool {
        if !self.closed[partition].is_empty() {
            return true;
        }
        match &self.open[partition] {
            Some(batch) => self.flushing || now.duration_since(batch.created) >= self.linger,
            None => false,
        }
    }

    /// The earliest time an open batch becomes ready by `linger.ms`, if any is open.
    pub fn next_linger_deadline(&self) -> Option<Instant> {
        self.open
            .iter()
            .flatten()
            .map(|b| b.created + self.linger)
            .min()
    }

    /// Takes at most one ready batch per partition among `partitions` (one leader's), up to
    /// `max_request_bytes` of uncompressed data (at least one batch). Like the Java client's
    /// `RecordAccumulator.drainBatchesForOneNode`, the next call starts at the last partition
    /// this one visited (the one that did not fit), so every partition is reached within a few
    /// requests; starting one partition further per call instead starves partitions far from
    /// the start when many are ready (1,000 partitions: batches waited seconds).
    pub fn drain(
        &mut self,
        partitions: &[usize],
        now: Instant,
        max_request_bytes: usize,
    ) -> Vec<(usize, BatchBuilder)> {
        let mut drained = Vec::new();
        if partitions.is_empty() {
            return drained;
        }
        let mut request_bytes = 0;
        let start = self.drain_start % partitions.len();
        for i in 0..partitions.len() {
            let index = (start + i) % partitions.len();
            self.drain_start = index;
            let partition = partitions[index];
            if !self.is_ready(partition, now) {
                continue;
            }
            let size = self.closed[partition]
                .front()
                .or(self.open[partition].as_ref())
                .map_or(0, BatchBuilder::uncompressed_bytes);
            if !drained.is_empty() && request_bytes + size > max_request_bytes {
                break;
            }
            let batch = match self.closed[partition].pop_front() {
                Some(batch) => batch,
                None => self.open[partition]
                    .take()
                    .expect("is_ready saw an open batch"),
            };
            request_bytes += size;
            self.buffered_bytes -= batch.uncompressed_bytes() - RECORD_BATCH_HEADER_BYTES;
            drained.push((partition, batch));
        }
        drained
    }

    /// Feeds back one sent batch's compressed/uncompressed ratio.
    pub fn observe_compression(&mut self, uncompressed_bytes: usize, compressed_bytes: usize) {
        if self.compression == Compression::None || uncompressed_bytes == 0 {
            return;
        }
        let observed = compressed_bytes as f32 / uncompressed_bytes as f32;
        if observed > self.ratio_estimate {
            self.ratio_estimate = (self.ratio_estimate + RATIO_DETERIORATE_STEP).max(observed);
        } else if observed < self.ratio_estimate {
            self.ratio_estimate = (self.ratio_estimate - RATIO_IMPROVING_STEP).max(observed);
        }
    }

    fn estimated_bytes(&self, uncompressed_bytes: usize) -> usize {
        if self.compression == Compression::None {
            return uncompressed_bytes;
        }
        RECORD_BATCH_HEADER_BYTES
            + ((uncompressed_bytes - RECORD_BATCH_HEADER_BYTES.min(uncompressed_bytes)) as f32
                * self.ratio_estimate) as usize
    }

    fn close(&mut self, partition: usize) {
        if let Some(batch) = self.open[partition].take() {
            self.closed[partition].push_back(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accumulator(batch_size: usize, linger_ms: u64) -> RecordAccumulator {
        RecordAccumulator::new(
            4,
            batch_size,
            Duration::from_millis(linger_ms),
            Compression::None,
        )
    }

    #[test]
    fn not_ready_before_linger_then_ready() {
        let t0 = Instant::now();
        let mut acc = accumulator(16384, 5);
        acc.append(1, None, &[0; 100], 0, t0, t0);
        assert!(!acc.is_ready(1, t0 + Duration::from_millis(4)));
        assert!(acc
            .drain(&[0, 1, 2, 3], t0 + Duration::from_millis(4), 1 << 20)
            .is_empty());
        assert_eq!(
            acc.next_linger_deadline(),
            Some(t0 + Duration::from_millis(5))
        );
        let drained = acc.drain(&[0, 1, 2, 3], t0 + Duration::from_millis(5), 1 << 20);
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].0, 1);
        assert_eq!(drained[0].1.record_count(), 1);
        assert!(acc.is_empty());
    }

    #[test]
    fn linger_zero_is_ready_at_once() {
        let t0 = Instant::now();
        let mut acc = accumulator(16384, 0);
        acc.append(0, None, b"x", 0, t0, t0);
        assert!(acc.is_ready(0, t0));
    }

    #[test]
    fn full_batch_is_ready_before_linger() {
        let t0 = Instant::now();
        let mut acc = accumulator(1000, 1000);
        let mut full_at = None;
        for i in 0..12 {
            let outcome = acc.append(2, None, &[0; 100], 0, t0, t0);
            if outcome.batch_full && full_at.is_none() {
                full_at = Some(i);
            }
        }
        // 61 + 9 * (100 + 8 bytes framing) = 1033 > 1000: the ninth record does not fit.
        assert_eq!(full_at, Some(8));
        let drained = acc.drain(&[2], t0, 1 << 20);
        assert_eq!(drained.len(), 1, "one batch per partition per request");
        assert_eq!(drained[0].1.record_count(), 8);
        assert!(drained[0].1.uncompressed_bytes() <= 1000);
        assert!(!acc.is_ready(2, t0), "the rest waits for linger.ms");
    }

    #[test]
    fn record_larger_than_batch_size_gets_its_own_batch() {
        let t0 = Instant::now();
        let mut acc = accumulator(100, 1000);
        acc.append(0, None, b"small", 0, t0, t0);
        let outcome = acc.append(0, None, &[0; 500], 0, t0, t0);
        assert!(outcome.new_batch && outcome.batch_full);
        let first = acc.drain(&[0], t0, 1 << 20);
        assert_eq!(first[0].1.record_count(), 1);
        let second = acc.drain(&[0], t0, 1 << 20);
        assert_eq!(second[0].1.record_count(), 1);
        assert!(second[0].1.uncompressed_bytes() > 500);
    }

    #[test]
    fn drain_resumes_where_the_last_request_stopped() {
        let t0 = Instant::now();
        let partitions: Vec<usize> = (0..4).collect();
        let mut acc = RecordAccumulator::new(4, 16384, Duration::ZERO, Compression::None);
        // Two batches queued per partition; a request holds two of them.
        let mut order = Vec::new();
        for _ in 0..2 {
            for &partition in &partitions {
                acc.append(partition, None, &[0; 1000], 0, t0, t0);
                acc.close(partition);
            }
        }
        for _ in 0..4 {
            let drained = acc.drain(&partitions, t0, 2500);
            assert_eq!(drained.len(), 2);
            order.extend(drained.into_iter().map(|(partition, _)| partition));
        }
        // Java's drainIndex: 0 1 | 2 3 | 0 1 | 2 3, not 0 1 | 1 2 | 2 3 | 3 0 (the old rotation).
        assert_eq!(order, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        assert!(acc.is_empty());
    }

    #[test]
    fn flush_makes_everything_ready_and_drain_respects_request_size() {
        let t0 = Instant::now();
        let mut acc = accumulator(16384, 60_000);
        for partition in 0..4 {
            acc.append(partition, None, &[0; 1000], 0, t0, t0);
        }
        assert!(acc.drain(&[0, 1, 2, 3], t0, 1 << 20).is_empty());
        acc.begin_flush();
        let drained = acc.drain(&[0, 1, 2, 3], t0, 2500);
        assert_eq!(drained.len(), 2, "max.request.size caps one request");
        let rest = acc.drain(&[0, 1, 2, 3], t0, 2500);
        assert_eq!(rest.len(), 2);
        assert!(acc.is_empty());
        assert_eq!(acc.next_linger_deadline(), None);
    }

    #[test]
    fn compression_estimate_lets_batches_grow() {
        let t0 = Instant::now();
        let mut acc = RecordAccumulator::new(1, 1000, Duration::from_secs(1), Compression::Zstd);
        for _ in 0..200 {
            acc.observe_compression(1000, 100);
        }
        for _ in 0..30 {
            acc.append(0, None, &[0; 100], 0, t0, t0);
        }
        acc.begin_flush();
        let drained = acc.drain(&[0], t0, 1 << 20);
        assert!(
            drained[0].1.record_count() > 9,
            "estimated compressed size fills the batch"
        );
    }
}

//! The partition side of transactions (KIP-98): each producer's ongoing transaction, the last
//! stable offset, transaction markers, read_committed reads and DescribeProducers.
//!
//! Rules from Kafka's `ProducerAppendInfo` / `ProducerStateManager`:
//! - a transactional data batch of a producer without an ongoing transaction here starts one at
//!   the batch's base offset; a non-transactional batch of a producer with one is refused
//!   (INVALID_TXN_STATE);
//! - a marker ([`Partition::write_txn_marker`]) older than the producer's epoch is refused
//!   (INVALID_PRODUCER_EPOCH), one from an older coordinator epoch too
//!   (TRANSACTION_COORDINATOR_FENCED); otherwise it is appended like a batch, its epoch becomes
//!   the producer's, and the ongoing transaction (if any) ends; an ABORT of a non-empty
//!   transaction gets a `.txnindex` entry;
//! - the last stable offset is the first offset of the earliest transaction not yet decided,
//!   else the high watermark. A transaction counts as undecided until its marker is durable
//!   (Kafka keeps it until the marker is replicated: `unreplicatedTxns`), so read_committed
//!   never sees data whose marker a crash could still lose.
//!
//! Invariant: `log_start_offset`-independent: `last_stable_offset() <= high_watermark` (asserted
//! on every call).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::{AppendError, FetchRead, Partition, ProducerState, ReadError, ReadNow, StorageError};
use crate::log::{AbortedTxn, Log, LogError};
use crate::protocol::control_record::{self, ControlRecordType};
use crate::protocol::record_batch::{BatchIter, RecordBatchHeader};

/// A commit or abort marker for one producer's transaction on one partition (KIP-98
/// WriteTxnMarkers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
}

/// One producer of the partition as DescribeProducers v0 reports it (Kafka's `ProducerState`
/// entry of `DescribeProducersResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerDescription {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence of the last record appended, -1 when none.
    pub last_sequence: i32,
    /// Largest timestamp of the last batch or marker, ms; -1 when unknown.
    pub last_timestamp: i64,
    /// Coordinator epoch of the last marker, -1 when none.
    pub coordinator_epoch: i32,
    /// First offset of the ongoing transaction, -1 when none.
    pub current_txn_start_offset: i64,
}

/// Per-partition transaction state; lives in [`Partition`] behind a `RefCell`.
#[derive(Debug, Default, Clone)]
pub(crate) struct TransactionState {
    /// Producer id -> first offset of its ongoing transaction on this partition.
    ongoing: HashMap<i64, i64>,
    /// Producer id -> coordinator epoch of its last marker.
    coordinator_epochs: HashMap<i64, i32>,
    /// Transactions ended by a marker not yet durable: (first offset, marker offset).
    undecided: Vec<(i64, i64)>,
}

/// What the producer-state snapshot keeps of [`TransactionState`] (serde: absent in older
/// snapshots, which had no transactions).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct TransactionSnapshot {
    /// (producer id, first offset of its ongoing transaction).
    #[serde(default)]
    ongoing: Vec<(i64, i64)>,
    /// (producer id, coordinator epoch of its last marker).
    #[serde(default)]
    coordinator_epochs: Vec<(i64, i32)>,
}

impl TransactionState {
    /// The state a clean close left, checked against the log end: an ongoing transaction
    /// starting beyond it is dropped.
    pub(crate) fn from_snapshot(
        snapshot: TransactionSnapshot,
        log_start_offset: i64,
        log_end_offset: i64,
    ) -> TransactionState {
        TransactionState {
            ongoing: snapshot
                .ongoing
                .into_iter()
                .filter(|&(id, first)| id >= 0 && first < log_end_offset)
                .map(|(id, first)| (id, first.max(log_start_offset)))
                .collect(),
            coordinator_epochs: snapshot.coordinator_epochs.into_iter().collect(),
            undecided: Vec::new(),
        }
    }

    pub(crate) fn snapshot(&self) -> TransactionSnapshot {
        let mut ongoing: Vec<(i64, i64)> = self.ongoing.iter().map(|(&k, &v)| (k, v)).collect();
        ongoing.sort_unstable();
        let mut coordinator_epochs: Vec<(i64, i32)> = self
            .coordinator_epochs
            .iter()
            .map(|(&k, &v)| (k, v))
            .collect();
        coordinator_epochs.sort_unstable();
        TransactionSnapshot {
            ongoing,
            coordinator_epochs,
        }
    }

    /// Forgets the coordinator epochs of producers `keep` refuses (expired producers).
    pub(crate) fn retain_producers(&mut self, keep: impl Fn(i64) -> bool) {
        self.coordinator_epochs.retain(|&id, _| keep(id));
    }

    /// True while a marker is appended but not yet durable (its abort's `.txnindex` entry may
    /// not be written yet).
    pub(crate) fn has_undecided(&self) -> bool {
        !self.undecided.is_empty()
    }

    pub(crate) fn has_ongoing(&self, producer_id: i64) -> bool {
        self.ongoing.contains_key(&producer_id)
    }

    /// The first offset of the earliest undecided transaction (Kafka's `firstUndecidedOffset`
    /// plus the markers not yet durable).
    pub(crate) fn first_undecided_offset(&self) -> Option<i64> {
        let ongoing = self.ongoing.values().copied().min();
        let undecided = self.undecided.iter().map(|&(first, _)| first).min();
        match (ongoing, undecided) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Refuses a non-transactional batch of a producer with an ongoing transaction (Kafka's
    /// `appendDataBatch`: INVALID_TXN_STATE); `next_offset` is the offset the first batch gets.
    pub(crate) fn check_data_batches(
        &self,
        headers: &[RecordBatchHeader],
        next_offset: i64,
        topic_partition: impl Fn() -> String,
    ) -> Result<(), AppendError> {
        let mut offset = next_offset;
        for header in headers {
            if header.has_producer_id()
                && !header.is_transactional()
                && self.ongoing.contains_key(&header.producer_id)
            {
                return Err(AppendError::InvalidTxnState {
                    producer_id: header.producer_id,
                    offset,
                    topic_partition: topic_partition(),
                });
            }
            offset += header.last_offset_delta as i64 + 1;
        }
        Ok(())
    }

    /// Notes an appended data batch (offsets assigned): a transactional one of a producer
    /// without an ongoing transaction starts one at its base offset.
    pub(crate) fn on_data_batch(&mut self, header: &RecordBatchHeader) {
        if header.is_transactional() && header.has_producer_id() {
            self.ongoing
                .entry(header.producer_id)
                .or_insert(header.base_offset);
        }
    }

    /// The coordinator-epoch check of a marker (Kafka's `checkCoordinatorEpoch`).
    pub(crate) fn check_coordinator_epoch(&self, marker: &TxnMarker) -> Result<(), i32> {
        match self.coordinator_epochs.get(&marker.producer_id) {
            Some(&current) if current > marker.coordinator_epoch => Err(current),
            _ => Ok(()),
        }
    }

    /// Ends `producer_id`'s ongoing transaction with a marker at `marker_offset` (Kafka's
    /// `appendEndTxnMarker` + `completeTxn`): returns the transaction's first offset and the
    /// last stable offset after it (Kafka's `lastStableOffset(completedTxn)`), `None` for a
    /// marker without a transaction here. `durable` false keeps it undecided until
    /// [`Self::marker_durable`].
    fn end_transaction(
        &mut self,
        producer_id: i64,
        coordinator_epoch: i32,
        marker_offset: i64,
        durable: bool,
    ) -> Option<(i64, i64)> {
        self.coordinator_epochs
            .insert(producer_id, coordinator_epoch);
        let first = self.ongoing.remove(&producer_id)?;
        let last_stable_offset = self
            .ongoing
            .values()
            .copied()
            .min()
            .unwrap_or(marker_offset + 1);
        if !durable {
            self.undecided.push((first, marker_offset));
        }
        Some((first, last_stable_offset))
    }

    /// The marker at `marker_offset` is durable: its transaction is decided.
    fn marker_durable(&mut self, marker_offset: i64) {
        self.undecided
            .retain(|&(_, marker)| marker != marker_offset);
    }
}

/// Rebuilds transaction state by replaying batches in offset order (recovery).
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub(crate) state: TransactionState,
    /// Aborted transactions whose markers were replayed at or after `rebuild_from`.
    pub(crate) aborted: Vec<AbortedTxn>,
    rebuild_from: i64,
}

impl Replay {
    /// A replay whose ABORT markers at or after `rebuild_from` produce index entries.
    pub(crate) fn new(rebuild_from: i64) -> Replay {
        Replay {
            rebuild_from,
            ..Replay::default()
        }
    }

    /// A replay continuing from `state` (a snapshot's) whose ABORT markers at or after
    /// `rebuild_from` produce index entries.
    pub(crate) fn resume(state: TransactionState, rebuild_from: i64) -> Replay {
        Replay {
            state,
            aborted: Vec::new(),
            rebuild_from,
        }
    }

    /// Applies one batch (offsets assigned) with its decoded marker (control batches), as
    /// the append path and [`Partition::write_txn_marker`] did.
    pub(crate) fn apply(
        &mut self,
        header: &RecordBatchHeader,
        marker: Option<(ControlRecordType, i32)>,
    ) {
        if !header.has_producer_id() {
            return;
        }
        if !header.is_control() {
            self.state.on_data_batch(header);
            return;
        }
        let commit = match marker {
            Some((ControlRecordType::Commit, _)) => true,
            Some((ControlRecordType::Abort, _)) => false,
            _ => return,
        };
        let coordinator_epoch = marker.map_or(-1, |(_, epoch)| epoch);
        let ended = self.state.end_transaction(
            header.producer_id,
            coordinator_epoch,
            header.base_offset,
            true,
        );
        if let (false, Some((first_offset, last_stable_offset))) = (commit, ended) {
            if header.base_offset >= self.rebuild_from {
                self.aborted.push(AbortedTxn {
                    producer_id: header.producer_id,
                    first_offset,
                    last_offset: header.base_offset,
                    last_stable_offset,
                });
            }
        }
    }
}

/// Rebuilds producer and transaction state from the log (no usable snapshot): replays the
/// batch headers (and markers) of every segment, oldest first, since an ongoing transaction
/// may have started anywhere (Kafka bounds this with a producer snapshot at every roll; here
/// only a clean close leaves one, so an unclean restart reads every segment's headers once).
/// Producer state is kept from the newest `min_batches` batches at least, as before. Returns
/// the producers, the transaction state and the aborted transactions of markers at or after
/// `rebuild_from`.
pub(crate) async fn rebuild_from_log(
    log: &Log,
    min_batches: usize,
    rebuild_from: i64,
    opened_ms: i64,
) -> Result<
    (
        HashMap<i64, ProducerState>,
        TransactionState,
        Vec<AbortedTxn>,
    ),
    LogError,
> {
    let mut newest_first = Vec::new();
    while let Some(segment) = log.segment_batches(newest_first.len()).await? {
        newest_first.push(segment);
    }
    let total: usize = newest_first.iter().map(|s| s.batches.len()).sum();
    // Producer state from the newest segments holding `min_batches` (older ones add nothing
    // that the newer batches of a producer do not replace, but cost memory for expired ids).
    let mut kept = 0;
    let mut producer_segments = 0;
    for segment in &newest_first {
        if producer_segments > 0 && kept >= min_batches {
            break;
        }
        kept += segment.batches.len();
        producer_segments += 1;
    }
    let first_producer_segment = newest_first.len() - producer_segments;
    let mut replay = Replay::new(rebuild_from);
    let mut producers = HashMap::new();
    for (i, segment) in newest_first.iter().rev().enumerate() {
        for (header, marker) in &segment.batches {
            replay.apply(header, *marker);
            if i < first_producer_segment || !header.has_producer_id() {
                continue;
            }
            if header.is_control() {
                ProducerState::record_marker(&mut producers, header, opened_ms);
            } else {
                ProducerState::record(&mut producers, header, header.base_offset, opened_ms);
            }
        }
    }
    // A producer with an ongoing transaction started in an older segment is kept too.
    let missing: std::collections::HashSet<i64> = replay
        .state
        .ongoing
        .keys()
        .copied()
        .filter(|id| !producers.contains_key(id))
        .collect();
    if !missing.is_empty() {
        for segment in newest_first.iter().rev().take(first_producer_segment) {
            for (header, _) in &segment.batches {
                if missing.contains(&header.producer_id) {
                    if header.is_control() {
                        ProducerState::record_marker(&mut producers, header, opened_ms);
                    } else {
                        ProducerState::record(
                            &mut producers,
                            header,
                            header.base_offset,
                            opened_ms,
                        );
                    }
                }
            }
        }
    }
    tracing::debug!(
        batches = total,
        "producer and transaction state rebuilt from the log"
    );
    Ok((producers, replay.state, replay.aborted))
}

impl Partition {
    /// Appends the control batch, ends the producer's ongoing transaction here (LSO moves,
    /// `.txnindex` entry on abort), and returns the marker's offset once it is durable.
    /// A marker for a producer with no ongoing transaction here is still written (Kafka does).
    /// Errors: producer_epoch older than the producer's current epoch -> AppendError
    /// (INVALID_PRODUCER_EPOCH); an older coordinator epoch than the producer's last marker ->
    /// [`AppendError::TransactionCoordinatorFenced`]; a storage failure -> [`AppendError::Offline`].
    pub async fn write_txn_marker(
        self: &Rc<Self>,
        marker: TxnMarker,
        now_ms: i64,
    ) -> Result<i64, AppendError> {
        if let Some(error) = self.offline.borrow().as_ref() {
            return Err(AppendError::Offline(error.clone()));
        }
        if let Some(state) = self.producers.borrow().get(&marker.producer_id) {
            if marker.producer_epoch < state.epoch {
                return Err(AppendError::InvalidProducerEpoch {
                    producer_id: marker.producer_id,
                    epoch: marker.producer_epoch,
                    current: state.epoch,
                });
            }
        }
        if let Err(current) = self.transactions.borrow().check_coordinator_epoch(&marker) {
            return Err(AppendError::TransactionCoordinatorFenced {
                producer_id: marker.producer_id,
                coordinator_epoch: marker.coordinator_epoch,
                current,
                topic_partition: format!("{}-{}", self.topic, self.partition),
            });
        }
        let batch = control_record::control_batch(
            marker.producer_id,
            marker.producer_epoch,
            marker.coordinator_epoch,
            marker.commit,
            now_ms,
        );
        let header = RecordBatchHeader::parse(&batch)
            .expect("invariant: control_batch encodes a valid header");
        let offset = self.next_offset.get();
        let ended = self.transactions.borrow_mut().end_transaction(
            marker.producer_id,
            marker.coordinator_epoch,
            offset,
            false,
        );
        let appended = self.enqueue(&batch, &[header], now_ms);
        assert!(
            matches!(appended, super::Appended::New { base_offset, .. } if base_offset == offset),
            "invariant: a marker is appended at the next offset"
        );
        let result = self.finish_marker(&marker, offset, ended).await;
        self.transactions.borrow_mut().marker_durable(offset);
        // The LSO moved: wake read_committed fetches waiting at it (every waiter of a written
        // offset re-checks).
        self.written_waiters.notify(self.high_watermark.get());
        result.map(|()| offset)
    }

    /// Waits for the marker at `offset` to be written, indexes an aborted transaction, then
    /// waits for fdatasync.
    async fn finish_marker(
        &self,
        marker: &TxnMarker,
        offset: i64,
        ended: Option<(i64, i64)>,
    ) -> Result<(), AppendError> {
        let storage = |e: StorageError| match e {
            StorageError::Offline(e) => AppendError::Offline(e),
            StorageError::Closed => AppendError::Offline(Arc::new(LogError::Closed {
                path: self.log.dir().to_path_buf(),
            })),
        };
        self.wait_written(offset).await.map_err(storage)?;
        if let (false, Some((first_offset, last_stable_offset))) = (marker.commit, ended) {
            let txn = AbortedTxn {
                producer_id: marker.producer_id,
                first_offset,
                last_offset: offset,
                last_stable_offset,
            };
            if let Err(e) = self.log.append_aborted_txn(txn) {
                let e = Arc::new(e);
                self.go_offline_shared(e.clone());
                return Err(AppendError::Offline(e));
            }
        }
        self.wait_durable(offset).await.map_err(storage)
    }

    /// Takes the partition offline after a transaction-index write failed.
    fn go_offline_shared(&self, error: Arc<LogError>) {
        tracing::error!(topic = %self.topic, partition = self.partition, "transaction index write failed: {error}");
        crate::metrics::health::partition_offline(&self.topic, self.partition, &error.to_string());
        self.offline.borrow_mut().get_or_insert(error);
    }

    /// True if `producer_id` has an ongoing transaction on this partition (a transactional batch
    /// appended and no marker yet) -- used by produce verification (KIP-890 part 1).
    pub fn has_ongoing_transaction(&self, producer_id: i64) -> bool {
        self.transactions.borrow().has_ongoing(producer_id)
    }

    /// Kafka's last stable offset: the first offset of the earliest ongoing transaction, else the
    /// high watermark (a transaction whose marker is not durable yet still counts as ongoing).
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark.get();
        let lso = self
            .transactions
            .borrow()
            .first_undecided_offset()
            .map_or(high_watermark, |first| first.min(high_watermark));
        assert!(
            lso <= high_watermark,
            "invariant: last_stable_offset {lso} <= high_watermark {high_watermark}"
        );
        lso
    }

    /// A Fetch read at an isolation level (KIP-98): read_uncommitted is [`Partition::read`];
    /// read_committed returns whole batches below the last stable offset only (cut at the first
    /// batch whose base offset reaches it; no record decoded) and the aborted transactions of
    /// the range read (Kafka's `collectAbortedTransactions` with the offset after the last batch
    /// read as upper bound).
    pub async fn read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        read_committed: bool,
    ) -> Result<FetchRead, ReadError> {
        if let ReadNow::Done(read) = self.read_isolated_now(offset, max_bytes, read_committed) {
            return read;
        }
        // NeedsLog: nothing awaited since `read_isolated_now` looked.
        if !read_committed {
            return self
                .read_from_log(offset, max_bytes, self.high_watermark.get())
                .await;
        }
        let mut read = self
            .read_from_log(offset, max_bytes, self.last_stable_offset())
            .await?;
        read.aborted_transactions = Some(self.aborted_transactions_of(offset, &read.records));
        Ok(read)
    }

    /// [`Self::read_isolated`] when it needs no I/O (an error, nothing new, or a tail cache
    /// hit), answered without a future: a fetch of many quiet partitions costs no task per
    /// partition. [`ReadNow::NeedsLog`] otherwise; then call [`Self::read_isolated`], which
    /// reads the segment files.
    pub fn read_isolated_now(
        &self,
        offset: i64,
        max_bytes: usize,
        read_committed: bool,
    ) -> ReadNow {
        let max_offset = if read_committed {
            self.last_stable_offset()
        } else {
            self.high_watermark.get()
        };
        match self.read_below_now(offset, max_bytes, max_offset) {
            ReadNow::Done(Ok(mut read)) if read_committed => {
                read.aborted_transactions =
                    Some(self.aborted_transactions_of(offset, &read.records));
                ReadNow::Done(Ok(read))
            }
            other => other,
        }
    }

    /// Kafka's `collectAbortedTransactions` for `records` read from `offset`: the upper bound is
    /// the offset after the last batch read; none when nothing was read.
    fn aborted_transactions_of(&self, offset: i64, records: &[u8]) -> Vec<AbortedTxn> {
        match BatchIter::new(records)
            .last()
            .map(|(_, header)| header.next_offset())
        {
            Some(upper) => self.log.collect_aborted_transactions(offset, upper),
            None => Vec::new(),
        }
    }

    /// The producers of this partition with their state (DescribeProducers v0), by producer id.
    pub fn describe_producers(&self) -> Vec<ProducerDescription> {
        let transactions = self.transactions.borrow();
        let mut out: Vec<ProducerDescription> = self
            .producers
            .borrow()
            .iter()
            .map(|(&producer_id, state)| ProducerDescription {
                producer_id,
                producer_epoch: state.epoch,
                last_sequence: state.last_sequence,
                last_timestamp: state.last_timestamp,
                coordinator_epoch: transactions
                    .coordinator_epochs
                    .get(&producer_id)
                    .copied()
                    .unwrap_or(-1),
                current_txn_start_offset: transactions
                    .ongoing
                    .get(&producer_id)
                    .copied()
                    .unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }
}

#[cfg(test)]
mod tests;

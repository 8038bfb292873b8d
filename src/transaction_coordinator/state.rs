//! The sans-io transaction state machine of one shard: Kafka's `TransactionMetadata` and the
//! checks of `TransactionCoordinator.scala` (transaction version 0 semantics: the epoch is bumped
//! by InitProducerId and by fencing, not by every EndTxn). No I/O and no clock: `now_ms` is passed
//! in, and a fresh producer id is passed in when a transition needs one
//! ([`InitError::NeedProducerId`] asks for it).
//!
//! A transition is two steps, as Kafka's `prepareTransitionTo` / `completeTransitionTo`: a
//! `prepare_*` call checks the request and returns the [`Transit`] (the metadata after the
//! change) while marking the transactional id as pending, so any other request on it gets
//! CONCURRENT_TRANSACTIONS; once the transit's record is durable in `__transaction_state` the
//! caller applies it with [`CoordinatorState::complete`], or drops it with
//! [`CoordinatorState::abort_pending`] when the write failed.
//!
//! Invariant: a transactional id has at most one pending transition; the in-memory state is
//! only what was made durable (plus the pending marker).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use ringtail_protocol::transaction_state::{
    TransactionLogRecord, TransactionLogValue, TransactionPartitions, TransactionStatus,
};

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's `TransactionMetadata.isEpochExhausted`: an epoch this high cannot be bumped again
/// (the last value is kept for fencing), so InitProducerId rotates to a new producer id.
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// Coordinator settings, Kafka's broker properties with Kafka's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionSettings {
    /// `transaction.max.timeout.ms`: largest `transaction.timeout.ms` a producer may ask for (900000).
    pub transaction_max_timeout_ms: i32,
    /// `transaction.state.log.num.partitions` (50).
    pub transaction_state_log_num_partitions: i32,
    /// `transactional.id.expiration.ms`: an idle transactional id is removed after this (604800000).
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (10000).
    pub abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (3600000).
    pub remove_expired_transaction_cleanup_interval_ms: i64,
}

impl Default for TransactionSettings {
    fn default() -> TransactionSettings {
        TransactionSettings {
            transaction_max_timeout_ms: 900_000,
            transaction_state_log_num_partitions: 50,
            transactional_id_expiration_ms: 604_800_000,
            abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            remove_expired_transaction_cleanup_interval_ms: 3_600_000,
        }
    }
}

/// A topic partition in a transaction: (topic, partition).
pub type TopicPartition = (String, i32);

/// The state of one transactional id (Kafka's `TransactionMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation (epoch exhaustion); -1 if none.
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last InitProducerId bump, so a retried bump is recognised
    /// (KIP-360); -1 after a load or a fence.
    pub last_producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    pub state: TransactionStatus,
    pub partitions: BTreeSet<TopicPartition>,
    /// When the ongoing transaction started (its first AddPartitions), ms; -1 if none.
    pub start_timestamp_ms: i64,
    pub last_update_timestamp_ms: i64,
    /// The state a prepared transition is going to (its record is being written).
    pub pending_state: Option<TransactionStatus>,
}

impl TransactionMetadata {
    /// The `__transaction_state` value of this metadata (Kafka's `TransactionLog.valueToBytes`:
    /// partitions grouped by topic, none for Empty).
    pub fn log_value(&self) -> TransactionLogValue {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in &self.partitions {
            by_topic.entry(topic).or_default().push(*partition);
        }
        TransactionLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: self.producer_epoch,
            transaction_timeout_ms: self.transaction_timeout_ms,
            transaction_status: self.state,
            transaction_partitions: by_topic
                .into_iter()
                .map(|(topic, partition_ids)| TransactionPartitions {
                    topic: topic.to_string(),
                    partition_ids,
                })
                .collect(),
            transaction_last_update_timestamp_ms: self.last_update_timestamp_ms,
            transaction_start_timestamp_ms: self.start_timestamp_ms,
            client_transaction_version: 0,
        }
    }

    fn from_log(transactional_id: String, value: TransactionLogValue) -> TransactionMetadata {
        let partitions = if value.transaction_status == TransactionStatus::Empty {
            BTreeSet::new()
        } else {
            value
                .transaction_partitions
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic;
                    t.partition_ids.into_iter().map(move |p| (topic.clone(), p))
                })
                .collect()
        };
        TransactionMetadata {
            transactional_id,
            producer_id: value.producer_id,
            previous_producer_id: value.previous_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            transaction_timeout_ms: value.transaction_timeout_ms,
            state: value.transaction_status,
            partitions,
            start_timestamp_ms: value.transaction_start_timestamp_ms,
            last_update_timestamp_ms: value.transaction_last_update_timestamp_ms,
            pending_state: None,
        }
    }

    /// The record that makes this metadata durable (a tombstone for Dead).
    pub fn log_record(&self) -> TransactionLogRecord {
        TransactionLogRecord {
            transactional_id: self.transactional_id.clone(),
            value: (self.state != TransactionStatus::Dead).then(|| self.log_value()),
        }
    }
}

/// A prepared transition: the metadata as it will be once its record is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transit(pub TransactionMetadata);

/// Why InitProducerId cannot go on yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// A Kafka error for the client.
    Error(ResponseError),
    /// The transition needs a new producer id: call again with one.
    NeedProducerId,
}

impl From<ResponseError> for InitError {
    fn from(error: ResponseError) -> InitError {
        InitError::Error(error)
    }
}

/// What an accepted InitProducerId does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitOutcome {
    /// Write the transit (Empty, new epoch or producer id), then answer with its id and epoch.
    Write(Transit),
    /// An ongoing transaction is fenced: write this PrepareAbort (epoch bumped), write the abort
    /// markers, complete it, and answer CONCURRENT_TRANSACTIONS so the client retries.
    FenceAndAbort(Transit),
}

/// What an accepted EndTxn does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndOutcome {
    /// Already done (a retry after CompleteCommit/CompleteAbort): answer NONE.
    AlreadyComplete,
    /// Write this PrepareCommit/PrepareAbort, answer, then write the markers.
    Write(Transit),
}

/// A transaction whose markers must be written: for every partition of `partitions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingMarkers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
}

/// One transactional id as DescribeTransactions / ListTransactions show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionSummary {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: TransactionStatus,
    pub transaction_timeout_ms: i32,
    pub start_timestamp_ms: i64,
    pub partitions: Vec<TopicPartition>,
}

/// The transactional ids of one shard.
#[derive(Debug, Default)]
pub struct CoordinatorState {
    settings: TransactionSettings,
    transactions: BTreeMap<String, TransactionMetadata>,
    loaded: bool,
}

impl CoordinatorState {
    pub fn new(settings: TransactionSettings) -> CoordinatorState {
        CoordinatorState {
            settings,
            transactions: BTreeMap::new(),
            loaded: false,
        }
    }

    pub fn settings(&self) -> &TransactionSettings {
        &self.settings
    }

    /// False until the shard's `__transaction_state` logs are replayed; requests then get
    /// COORDINATOR_LOAD_IN_PROGRESS.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    pub fn set_loaded(&mut self, loaded: bool) {
        self.loaded = loaded;
    }

    /// The metadata of `transactional_id`, if any.
    pub fn get(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.transactions.get(transactional_id)
    }

    /// Applies one replayed record (the last record of a key wins; a tombstone removes it).
    pub fn replay(&mut self, record: TransactionLogRecord) {
        match record.value {
            Some(value) => {
                let metadata = TransactionMetadata::from_log(record.transactional_id, value);
                self.transactions
                    .insert(metadata.transactional_id.clone(), metadata);
            }
            None => {
                self.transactions.remove(&record.transactional_id);
            }
        }
    }

    /// The transactions loaded in PrepareCommit/PrepareAbort: their markers must be finished.
    pub fn incomplete_transactions(&self) -> Vec<PendingMarkers> {
        self.transactions
            .values()
            .filter(|m| {
                m.pending_state.is_none()
                    && matches!(
                        m.state,
                        TransactionStatus::PrepareCommit | TransactionStatus::PrepareAbort
                    )
            })
            .map(pending_markers)
            .collect()
    }

    fn check_loaded(&self) -> Result<(), ResponseError> {
        if self.loaded {
            Ok(())
        } else {
            Err(ResponseError::CoordinatorLoadInProgress)
        }
    }

    /// InitProducerId with a transactional id (Kafka's `handleInitProducerId` and
    /// `prepareInitProducerIdTransit`). `expected` is the producer id and epoch the client sent
    /// (KIP-360), `None` when both were -1. `fresh_producer_id` is used when the id is new or its
    /// epoch is exhausted; without one such a call returns [`InitError::NeedProducerId`].
    pub fn prepare_init_producer_id(
        &mut self,
        transactional_id: &str,
        transaction_timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_producer_id: Option<i64>,
        now_ms: i64,
    ) -> Result<InitOutcome, InitError> {
        self.check_loaded()?;
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest.into());
        }
        if transaction_timeout_ms <= 0
            || transaction_timeout_ms > self.settings.transaction_max_timeout_ms
        {
            return Err(ResponseError::InvalidTransactionTimeout.into());
        }
        if !self.transactions.contains_key(transactional_id) {
            let producer_id = fresh_producer_id.ok_or(InitError::NeedProducerId)?;
            self.transactions.insert(
                transactional_id.to_string(),
                TransactionMetadata {
                    transactional_id: transactional_id.to_string(),
                    producer_id,
                    previous_producer_id: NO_PRODUCER_ID,
                    producer_epoch: NO_PRODUCER_EPOCH,
                    last_producer_epoch: NO_PRODUCER_EPOCH,
                    transaction_timeout_ms,
                    state: TransactionStatus::Empty,
                    partitions: BTreeSet::new(),
                    start_timestamp_ms: -1,
                    last_update_timestamp_ms: now_ms,
                    pending_state: None,
                },
            );
            // The fresh id is taken: the retry below must not ask for another.
            return self.prepare_init_producer_id(
                transactional_id,
                transaction_timeout_ms,
                expected,
                None,
                now_ms,
            );
        }
        let metadata = self
            .transactions
            .get_mut(transactional_id)
            .expect("checked above");
        if metadata.pending_state.is_some() {
            return Err(ResponseError::ConcurrentTransactions.into());
        }
        if let Some((producer_id, epoch)) = expected {
            let valid = metadata.producer_epoch == NO_PRODUCER_EPOCH
                || producer_id == metadata.producer_id
                || (producer_id == metadata.previous_producer_id && is_epoch_exhausted(epoch));
            if !valid {
                return Err(ResponseError::ProducerFenced.into());
            }
        }
        let mut next = metadata.clone();
        next.pending_state = None;
        next.last_update_timestamp_ms = now_ms;
        match metadata.state {
            TransactionStatus::PrepareCommit | TransactionStatus::PrepareAbort => {
                Err(ResponseError::ConcurrentTransactions.into())
            }
            TransactionStatus::Empty
            | TransactionStatus::CompleteCommit
            | TransactionStatus::CompleteAbort => {
                next.state = TransactionStatus::Empty;
                next.partitions.clear();
                next.start_timestamp_ms = -1;
                next.transaction_timeout_ms = transaction_timeout_ms;
                let exhausted = is_epoch_exhausted(metadata.producer_epoch)
                    && expected.is_none_or(|(_, epoch)| epoch == metadata.producer_epoch);
                if exhausted {
                    // prepareProducerIdRotation: a new id at epoch 0.
                    let producer_id = fresh_producer_id.ok_or(InitError::NeedProducerId)?;
                    next.previous_producer_id = metadata.producer_id;
                    next.producer_id = producer_id;
                    next.producer_epoch = 0;
                    next.last_producer_epoch = if expected.is_some() {
                        metadata.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                } else {
                    // prepareIncrementProducerEpoch.
                    let bumped = if metadata.producer_epoch == NO_PRODUCER_EPOCH {
                        0
                    } else {
                        metadata.producer_epoch + 1
                    };
                    match expected {
                        None => {
                            next.producer_epoch = bumped;
                            next.last_producer_epoch = NO_PRODUCER_EPOCH;
                        }
                        Some((_, epoch))
                            if metadata.producer_epoch == NO_PRODUCER_EPOCH
                                || epoch == metadata.producer_epoch =>
                        {
                            next.producer_epoch = bumped;
                            next.last_producer_epoch = metadata.producer_epoch;
                        }
                        // A retry of a bump whose answer was lost: the same epoch again.
                        Some((_, epoch)) if epoch == metadata.last_producer_epoch => {}
                        Some(_) => return Err(ResponseError::ProducerFenced.into()),
                    }
                }
                metadata.pending_state = Some(TransactionStatus::Empty);
                Ok(InitOutcome::Write(Transit(next)))
            }
            TransactionStatus::Ongoing => {
                let transit = fence_and_abort(metadata, now_ms)?;
                Ok(InitOutcome::FenceAndAbort(transit))
            }
            TransactionStatus::Dead | TransactionStatus::PrepareEpochFence => {
                panic!(
                    "invariant: transactional id {transactional_id} is {:?} without a pending \
                     transition",
                    metadata.state
                )
            }
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn (Kafka's `handleAddPartitionsToTransaction`).
    /// `Ok(None)`: every partition is already in the ongoing transaction, nothing to write.
    pub fn prepare_add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Result<Option<Transit>, ResponseError> {
        self.check_loaded()?;
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let metadata = self
            .transactions
            .get_mut(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if metadata.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if metadata.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if metadata.pending_state.is_some()
            || matches!(
                metadata.state,
                TransactionStatus::PrepareCommit | TransactionStatus::PrepareAbort
            )
        {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if metadata.state == TransactionStatus::Ongoing
            && partitions.iter().all(|p| metadata.partitions.contains(p))
        {
            return Ok(None);
        }
        let mut next = metadata.clone();
        if matches!(
            metadata.state,
            TransactionStatus::Empty
                | TransactionStatus::CompleteCommit
                | TransactionStatus::CompleteAbort
        ) {
            next.start_timestamp_ms = now_ms;
            next.partitions.clear();
        }
        next.state = TransactionStatus::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_timestamp_ms = now_ms;
        metadata.pending_state = Some(TransactionStatus::Ongoing);
        Ok(Some(Transit(next)))
    }

    /// The verify-only AddPartitionsToTxn (v4+ `verify_only`) and the produce-path check
    /// (KIP-890 part 1, Kafka's `handleVerifyPartitionsInTransaction`): one result per
    /// partition, `None` when it is in the transaction, TRANSACTION_ABORTABLE when not.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        self.check_loaded()?;
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let metadata = self
            .transactions
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if metadata.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if metadata.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if matches!(
            metadata.state,
            TransactionStatus::PrepareCommit | TransactionStatus::PrepareAbort
        ) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(partitions
            .iter()
            .map(|p| {
                (!metadata.partitions.contains(p)).then_some(ResponseError::TransactionAbortable)
            })
            .collect())
    }

    /// EndTxn from a client (Kafka's `endTransaction` with `isFromClient`, transaction
    /// version 0: the epoch must be the current one).
    pub fn prepare_end_transaction(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<EndOutcome, ResponseError> {
        self.check_loaded()?;
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let metadata = self
            .transactions
            .get_mut(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if metadata.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if producer_epoch != metadata.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if metadata.pending_state.is_some() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        match (metadata.state, commit) {
            (TransactionStatus::Ongoing, _) => {
                let mut next = metadata.clone();
                next.state = if commit {
                    TransactionStatus::PrepareCommit
                } else {
                    TransactionStatus::PrepareAbort
                };
                next.last_update_timestamp_ms = now_ms;
                metadata.pending_state = Some(next.state);
                Ok(EndOutcome::Write(Transit(next)))
            }
            (TransactionStatus::CompleteCommit, true)
            | (TransactionStatus::CompleteAbort, false) => Ok(EndOutcome::AlreadyComplete),
            (TransactionStatus::PrepareCommit, true) | (TransactionStatus::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            (
                TransactionStatus::Empty
                | TransactionStatus::CompleteCommit
                | TransactionStatus::CompleteAbort
                | TransactionStatus::PrepareCommit
                | TransactionStatus::PrepareAbort,
                _,
            ) => Err(ResponseError::InvalidTxnState),
            (TransactionStatus::Dead | TransactionStatus::PrepareEpochFence, _) => panic!(
                "invariant: transactional id {transactional_id} is {:?} without a pending \
                 transition",
                metadata.state
            ),
        }
    }

    /// Ongoing transactions older than their timeout, with no transition pending (Kafka's
    /// `timedOutTransactions`).
    pub fn timed_out_transactions(&self, now_ms: i64) -> Vec<String> {
        self.transactions
            .values()
            .filter(|m| {
                m.state == TransactionStatus::Ongoing
                    && m.pending_state.is_none()
                    && m.start_timestamp_ms + m.transaction_timeout_ms as i64 <= now_ms
            })
            .map(|m| m.transactional_id.clone())
            .collect()
    }

    /// Aborts a timed-out transaction (Kafka's `abortTimedOutTransactions`:
    /// `prepareFenceProducerEpoch`, then an abort with the bumped epoch): the PrepareAbort to
    /// write. `None` if it is no longer Ongoing or a transition is pending.
    pub fn prepare_abort_timed_out(
        &mut self,
        transactional_id: &str,
        now_ms: i64,
    ) -> Option<Transit> {
        let metadata = self.transactions.get_mut(transactional_id)?;
        if metadata.state != TransactionStatus::Ongoing || metadata.pending_state.is_some() {
            return None;
        }
        fence_and_abort(metadata, now_ms).ok()
    }

    /// After the markers of a PrepareCommit/PrepareAbort are durable: the CompleteCommit /
    /// CompleteAbort to write (Kafka's `prepareComplete`, partitions cleared). `None` if the
    /// transaction is no longer in that prepare state with that producer id and epoch.
    pub fn prepare_complete(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        now_ms: i64,
    ) -> Option<Transit> {
        let metadata = self.transactions.get_mut(transactional_id)?;
        if metadata.pending_state.is_some()
            || metadata.producer_id != producer_id
            || metadata.producer_epoch != producer_epoch
        {
            return None;
        }
        let state = match metadata.state {
            TransactionStatus::PrepareCommit => TransactionStatus::CompleteCommit,
            TransactionStatus::PrepareAbort => TransactionStatus::CompleteAbort,
            _ => return None,
        };
        let mut next = metadata.clone();
        next.state = state;
        next.partitions.clear();
        next.last_update_timestamp_ms = now_ms;
        metadata.pending_state = Some(state);
        Some(Transit(next))
    }

    /// Transactional ids idle for `transactional.id.expiration.ms` (Empty, CompleteCommit or
    /// CompleteAbort, nothing pending): the Dead transits whose tombstones remove them (Kafka's
    /// `removeExpiredTransactionalIds`).
    pub fn prepare_expirations(&mut self, now_ms: i64) -> Vec<Transit> {
        let expiration = self.settings.transactional_id_expiration_ms;
        let mut transits = Vec::new();
        for metadata in self.transactions.values_mut() {
            let idle = matches!(
                metadata.state,
                TransactionStatus::Empty
                    | TransactionStatus::CompleteCommit
                    | TransactionStatus::CompleteAbort
            ) && metadata.pending_state.is_none()
                && metadata.last_update_timestamp_ms.saturating_add(expiration) <= now_ms;
            if idle {
                let mut next = metadata.clone();
                next.state = TransactionStatus::Dead;
                next.last_update_timestamp_ms = now_ms;
                metadata.pending_state = Some(TransactionStatus::Dead);
                transits.push(Transit(next));
            }
        }
        transits
    }

    /// Applies a transit whose record is durable; for PrepareCommit/PrepareAbort returns the
    /// markers to write now. Dead removes the transactional id.
    pub fn complete(&mut self, transit: Transit) -> Option<PendingMarkers> {
        let Transit(next) = transit;
        let id = next.transactional_id.clone();
        let current = self.transactions.get(&id);
        assert!(
            current.is_some_and(|m| m.pending_state == Some(next.state)),
            "invariant: completing {id} to {:?} without that pending transition",
            next.state
        );
        if next.state == TransactionStatus::Dead {
            self.transactions.remove(&id);
            return None;
        }
        let markers = matches!(
            next.state,
            TransactionStatus::PrepareCommit | TransactionStatus::PrepareAbort
        )
        .then(|| pending_markers(&next));
        self.transactions.insert(id, next);
        markers
    }

    /// Drops the pending transition of `transactional_id` (its write failed). A transactional id
    /// created by this InitProducerId whose first write failed stays, at epoch -1, as in Kafka.
    pub fn abort_pending(&mut self, transactional_id: &str) {
        if let Some(metadata) = self.transactions.get_mut(transactional_id) {
            metadata.pending_state = None;
        }
    }

    /// DescribeTransactions for one id: TRANSACTIONAL_ID_NOT_FOUND when unknown.
    pub fn describe(&self, transactional_id: &str) -> Result<TransactionSummary, ResponseError> {
        self.check_loaded()
            .map_err(|_| ResponseError::CoordinatorLoadInProgress)?;
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        self.transactions
            .get(transactional_id)
            .filter(|m| m.state != TransactionStatus::Dead)
            .map(summary)
            .ok_or(ResponseError::TransactionalIdNotFound)
    }

    /// ListTransactions: every id matching the filters (empty filter = all; `min_duration_ms`
    /// -1 = no duration filter, else only transactions running longer, Kafka's
    /// `listTransactionStates`).
    pub fn list(
        &self,
        producer_ids: &[i64],
        states: &[TransactionStatus],
        min_duration_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<TransactionSummary>, ResponseError> {
        self.check_loaded()?;
        Ok(self
            .transactions
            .values()
            .filter(|m| m.state != TransactionStatus::Dead)
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| states.is_empty() || states.contains(&m.state))
            .filter(|m| min_duration_ms < 0 || now_ms - m.start_timestamp_ms > min_duration_ms)
            .map(summary)
            .collect())
    }
}

/// Kafka's `prepareFenceProducerEpoch` followed by the abort `endTransaction` makes of it: the
/// epoch is bumped (not past `i16::MAX`) and the transaction goes to PrepareAbort.
fn fence_and_abort(
    metadata: &mut TransactionMetadata,
    now_ms: i64,
) -> Result<Transit, ResponseError> {
    let mut next = metadata.clone();
    if metadata.producer_epoch < i16::MAX {
        next.producer_epoch = metadata.producer_epoch + 1;
    }
    next.last_producer_epoch = NO_PRODUCER_EPOCH;
    next.state = TransactionStatus::PrepareAbort;
    next.last_update_timestamp_ms = now_ms;
    metadata.pending_state = Some(TransactionStatus::PrepareAbort);
    Ok(Transit(next))
}

fn pending_markers(metadata: &TransactionMetadata) -> PendingMarkers {
    PendingMarkers {
        transactional_id: metadata.transactional_id.clone(),
        producer_id: metadata.producer_id,
        producer_epoch: metadata.producer_epoch,
        commit: metadata.state == TransactionStatus::PrepareCommit,
        partitions: metadata.partitions.iter().cloned().collect(),
    }
}

fn summary(metadata: &TransactionMetadata) -> TransactionSummary {
    TransactionSummary {
        transactional_id: metadata.transactional_id.clone(),
        producer_id: metadata.producer_id,
        producer_epoch: metadata.producer_epoch,
        state: metadata.state,
        transaction_timeout_ms: metadata.transaction_timeout_ms,
        start_timestamp_ms: metadata.start_timestamp_ms,
        partitions: metadata.partitions.iter().cloned().collect(),
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

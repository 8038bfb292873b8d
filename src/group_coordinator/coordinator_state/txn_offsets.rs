//! Transactional offset commits (KIP-98 TxnOffsetCommit, KIP-447 `require_stable`) in the
//! sans-io coordinator state.
//!
//! Kafka's `GroupMetadata.pendingTransactionalOffsetCommits` and `CommitRecordMetadataAndOffset`:
//! a TxnOffsetCommit's offsets are held per producer id ([`TxnOffsetState`]) from the moment
//! the request is accepted ([`CoordinatorState::prepare_txn_offset_commit`]); once their
//! transactional batch is durable its base offset is recorded
//! ([`CoordinatorState::on_txn_offset_commit_append`]); the commit or abort marker on the same
//! `__consumer_offsets` partition applies or drops them
//! ([`CoordinatorState::complete_txn_offset_commit`]). A pending offset replaces the committed
//! one only when the committed one was appended earlier in the log (Kafka's `olderThan`), so a
//! plain OffsetCommit written after the transactional one wins, at runtime and on replay
//! ([`CoordinatorState::replay_batch`], Kafka's `doLoadGroupsAndOffsets`). A transaction still
//! open at the end of the log stays pending. Producer epochs are tracked per
//! `__consumer_offsets` partition as the log's producer state does: a TxnOffsetCommit or a
//! marker with an older epoch gets INVALID_PRODUCER_EPOCH.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use ringtail_protocol::consumer_offsets_txn::{BatchContent, LogBatch};

use super::{CoordinatorState, GroupApi};
use crate::group_coordinator::group::{GroupMetadata, GroupState};
use crate::group_coordinator::offsets_partition_for;
use crate::group_coordinator::records::{CoordinatorRecord, OffsetCommitValue};

/// (group id, topic, partition).
pub type GroupTopicPartition = (String, String, i32);

/// One offset of an ongoing transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingTxnOffset {
    /// The offset to commit.
    pub value: OffsetCommitValue,
    /// The `__consumer_offsets` partition its batch went to (the group's).
    pub offsets_partition: i32,
    /// Base offset of its transactional batch once durable; `None` while being written.
    pub appended_batch_offset: Option<i64>,
}

/// Every pending transactional offset, and what ordering them needs.
#[derive(Debug, Default)]
pub struct TxnOffsetState {
    /// Producer id -> its pending offsets (Kafka's `pendingTransactionalOffsetCommits`).
    pending: HashMap<i64, BTreeMap<GroupTopicPartition, PendingTxnOffset>>,
    /// Base offset of the batch holding each committed offset (Kafka's
    /// `CommitRecordMetadataAndOffset.appendedBatchOffset`); absent: unknown, older than all.
    committed_batch_offsets: HashMap<GroupTopicPartition, i64>,
    /// (`__consumer_offsets` partition, producer id) -> latest producer epoch seen there.
    producer_epochs: HashMap<(i32, i64), i16>,
}

impl CoordinatorState {
    /// Checks that a TxnOffsetCommit may store offsets for `group_id` now (Kafka's
    /// `GroupCoordinator.handleTxnCommitOffsets` and `ClassicGroup.validateOffsetCommit` with
    /// `isTransactional`): INVALID_GROUP_ID for an empty id, NOT_COORDINATOR /
    /// COORDINATOR_LOAD_IN_PROGRESS, ILLEGAL_GENERATION for a generation of a group that does
    /// not exist, COORDINATOR_NOT_AVAILABLE for a Dead group, and (v3+ fields set)
    /// UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION; INVALID_PRODUCER_EPOCH when
    /// the group's `__consumer_offsets` partition saw a newer epoch of the producer. Unlike
    /// OffsetCommit, a non-member may commit to a non-Empty group (v0-2 carry no member id) and
    /// CompletingRebalance is no error. Creates a simple group for `generation_id < 0`.
    #[allow(clippy::too_many_arguments)]
    pub fn validate_txn_offset_commit(
        &mut self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if let Some(error) = self.group_status(group_id, GroupApi::TxnOffsetCommit) {
            return Err(error);
        }
        let offsets_partition =
            offsets_partition_for(group_id, self.settings.offsets_topic_num_partitions);
        if let Some(&current) = self
            .txn
            .producer_epochs
            .get(&(offsets_partition, producer_id))
        {
            if producer_epoch < current {
                return Err(ResponseError::InvalidProducerEpoch);
            }
        }
        if !self.groups.contains_key(group_id) {
            if generation_id >= 0 {
                return Err(ResponseError::IllegalGeneration);
            }
            self.groups
                .insert(group_id.to_owned(), GroupMetadata::new(group_id, now_ms));
        }
        let group = self.groups.get(group_id).expect("inserted above");
        if group.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && group.is(GroupState::Empty) {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            match group_instance_id {
                Some(instance_id) => match group.static_member_id(instance_id) {
                    None => return Err(ResponseError::UnknownMemberId),
                    Some(current) if current != member_id => {
                        return Err(ResponseError::FencedInstanceId)
                    }
                    Some(_) => {}
                },
                None if !group.has(member_id) => return Err(ResponseError::UnknownMemberId),
                None => {}
            }
            if generation_id != group.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        }
        Ok(())
    }

    /// Holds `offsets` pending for `producer_id` before their batch is written (Kafka's
    /// `prepareTxnOffsetCommit`): OffsetFetch with `require_stable` answers
    /// UNSTABLE_OFFSET_COMMIT for them from now on.
    pub fn prepare_txn_offset_commit(
        &mut self,
        group_id: &str,
        producer_id: i64,
        offsets: &[(String, i32, OffsetCommitValue)],
    ) {
        let offsets_partition =
            offsets_partition_for(group_id, self.settings.offsets_topic_num_partitions);
        let pending = self.txn.pending.entry(producer_id).or_default();
        for (topic, partition, value) in offsets {
            pending.insert(
                (group_id.to_owned(), topic.clone(), *partition),
                PendingTxnOffset {
                    value: value.clone(),
                    offsets_partition,
                    appended_batch_offset: None,
                },
            );
        }
    }

    /// The batch of `offsets` is durable at `base_offset` with `producer_epoch` (Kafka's
    /// `onTxnOffsetCommitAppend`): only entries still holding these values are updated (a
    /// later TxnOffsetCommit of the same partition replaced them).
    pub fn on_txn_offset_commit_append(
        &mut self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets: &[(String, i32, OffsetCommitValue)],
        base_offset: i64,
    ) {
        let offsets_partition =
            offsets_partition_for(group_id, self.settings.offsets_topic_num_partitions);
        self.observe_producer_epoch(offsets_partition, producer_id, producer_epoch);
        let Some(pending) = self.txn.pending.get_mut(&producer_id) else {
            return;
        };
        for (topic, partition, value) in offsets {
            let key = (group_id.to_owned(), topic.clone(), *partition);
            if let Some(entry) = pending.get_mut(&key) {
                if entry.value == *value {
                    entry.appended_batch_offset = Some(base_offset);
                }
            }
        }
    }

    /// The batch of `offsets` was not written (Kafka's `failPendingTxnOffsetCommit`).
    pub fn fail_txn_offset_commit(
        &mut self,
        group_id: &str,
        producer_id: i64,
        offsets: &[(String, i32, OffsetCommitValue)],
    ) {
        let Some(pending) = self.txn.pending.get_mut(&producer_id) else {
            return;
        };
        for (topic, partition, value) in offsets {
            let key = (group_id.to_owned(), topic.clone(), *partition);
            if pending.get(&key).is_some_and(|e| e.value == *value) {
                pending.remove(&key);
            }
        }
        if pending.is_empty() {
            self.txn.pending.remove(&producer_id);
        }
    }

    /// Checks a marker for `producer_id` on `offsets_partition` before it is written: an
    /// epoch older than the one seen there is INVALID_PRODUCER_EPOCH (the log's producer
    /// state check).
    pub fn validate_txn_marker(
        &self,
        offsets_partition: i32,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<(), ResponseError> {
        match self
            .txn
            .producer_epochs
            .get(&(offsets_partition, producer_id))
        {
            Some(&current) if producer_epoch < current => Err(ResponseError::InvalidProducerEpoch),
            _ => Ok(()),
        }
    }

    /// The marker of `producer_id` is durable on `offsets_partition`: applies (`commit`) or
    /// drops its pending offsets of that partition (Kafka's `completePendingTxnOffsetCommit`).
    /// Returns how many offsets were applied.
    pub fn complete_txn_offset_commit(
        &mut self,
        offsets_partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> usize {
        self.observe_producer_epoch(offsets_partition, producer_id, producer_epoch);
        let Some(pending) = self.txn.pending.get_mut(&producer_id) else {
            return 0;
        };
        let (ended, kept): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(pending)
            .into_iter()
            .partition(|(_, p)| p.offsets_partition == offsets_partition);
        if kept.is_empty() {
            self.txn.pending.remove(&producer_id);
        } else {
            *self.txn.pending.get_mut(&producer_id).expect("present") = kept;
        }
        if !commit {
            return 0;
        }
        let mut applied = 0;
        for (key, pending) in ended {
            let Some(batch_offset) = pending.appended_batch_offset else {
                // The marker overtook its TxnOffsetCommit's append: the transaction
                // coordinator only ends a transaction after the client got its answer.
                tracing::warn!(group = %key.0, topic = %key.1, partition = key.2, producer_id,
                    "transactional offset without a durable batch at its commit marker; dropped");
                continue;
            };
            if self.apply_if_newer(key, pending.value, batch_offset, now_ms) {
                applied += 1;
            }
        }
        applied
    }

    /// True when `producer_id` holds pending transactional offsets on `offsets_partition`.
    pub fn has_pending_txn_offsets(&self, offsets_partition: i32, producer_id: i64) -> bool {
        self.txn
            .pending
            .get(&producer_id)
            .is_some_and(|p| p.values().any(|o| o.offsets_partition == offsets_partition))
    }

    /// True when any producer holds a pending transactional offset for the group's partition
    /// (Kafka's `hasPendingOffsetCommitsForTopicPartition`, KIP-447).
    pub fn has_pending_txn_offset_for(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let key = (group_id.to_owned(), topic.to_owned(), partition);
        self.txn.pending.values().any(|p| p.contains_key(&key))
    }

    /// The pending offset of `producer_id` for (group, topic, partition), if any.
    pub fn pending_txn_offset(
        &self,
        producer_id: i64,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<&PendingTxnOffset> {
        self.txn
            .pending
            .get(&producer_id)?
            .get(&(group_id.to_owned(), topic.to_owned(), partition))
    }

    /// Records that the committed offsets of `group_id` in `offsets` now come from the plain
    /// batch at `base_offset` (so a later commit marker does not apply an older pending one).
    pub fn on_offset_commit_append(
        &mut self,
        group_id: &str,
        offsets: &[(String, i32, OffsetCommitValue)],
        base_offset: i64,
    ) {
        for (topic, partition, _) in offsets {
            self.txn.committed_batch_offsets.insert(
                (group_id.to_owned(), topic.clone(), *partition),
                base_offset,
            );
        }
    }

    /// Applies one replayed batch of `offsets_partition` (Kafka's `doLoadGroupsAndOffsets`):
    /// plain records as [`CoordinatorState::replay`]; transactional offset records become
    /// pending for their producer; a COMMIT marker applies the producer's pending offsets of
    /// this partition where newer than the loaded ones, an ABORT drops them.
    pub fn replay_batch(&mut self, offsets_partition: i32, batch: LogBatch, now_ms: i64) {
        match batch.content {
            BatchContent::Plain(records) => {
                for record in records {
                    if let CoordinatorRecord::OffsetCommit { key, value } = &record {
                        let gtp = (key.group.clone(), key.topic.clone(), key.partition);
                        match value {
                            Some(_) => {
                                self.txn
                                    .committed_batch_offsets
                                    .insert(gtp, batch.base_offset);
                            }
                            None => {
                                self.txn.committed_batch_offsets.remove(&gtp);
                            }
                        }
                    }
                    self.replay(record, now_ms);
                }
            }
            BatchContent::Transactional {
                producer_id,
                producer_epoch,
                records,
            } => {
                self.observe_producer_epoch(offsets_partition, producer_id, producer_epoch);
                for record in records {
                    match record {
                        CoordinatorRecord::OffsetCommit { key, value } => {
                            let gtp = (key.group, key.topic, key.partition);
                            let pending = self.txn.pending.entry(producer_id).or_default();
                            match value {
                                Some(value) => {
                                    pending.insert(
                                        gtp,
                                        PendingTxnOffset {
                                            value,
                                            offsets_partition,
                                            appended_batch_offset: Some(batch.base_offset),
                                        },
                                    );
                                }
                                None => {
                                    pending.remove(&gtp);
                                }
                            }
                        }
                        // Kafka writes no group metadata transactionally; applied as is.
                        other => self.replay(other, now_ms),
                    }
                }
                if self
                    .txn
                    .pending
                    .get(&producer_id)
                    .is_some_and(|p| p.is_empty())
                {
                    self.txn.pending.remove(&producer_id);
                }
            }
            BatchContent::Marker {
                producer_id,
                producer_epoch,
                commit,
            } => {
                self.complete_txn_offset_commit(
                    offsets_partition,
                    producer_id,
                    producer_epoch,
                    commit,
                    now_ms,
                );
            }
        }
    }

    /// Drops every pending offset and epoch (the coordinator unloads).
    pub(super) fn clear_txn_offsets(&mut self) {
        self.txn = TxnOffsetState::default();
    }

    fn observe_producer_epoch(&mut self, offsets_partition: i32, producer_id: i64, epoch: i16) {
        if epoch < 0 {
            return;
        }
        let entry = self
            .txn
            .producer_epochs
            .entry((offsets_partition, producer_id))
            .or_insert(epoch);
        *entry = (*entry).max(epoch);
    }

    /// Puts `value` as the committed offset unless the current one came from a later batch
    /// (Kafka's `olderThan`). Returns whether it was applied.
    fn apply_if_newer(
        &mut self,
        key: GroupTopicPartition,
        value: OffsetCommitValue,
        batch_offset: i64,
        now_ms: i64,
    ) -> bool {
        let (group_id, topic, partition) = key;
        let group = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| GroupMetadata::new(group_id.clone(), now_ms));
        if group.is(GroupState::Dead) {
            return false;
        }
        let current_key = (topic, partition);
        let gtp = (group_id, current_key.0.clone(), current_key.1);
        if group.offsets.contains_key(&current_key) {
            if let Some(&current) = self.txn.committed_batch_offsets.get(&gtp) {
                if current > batch_offset {
                    return false;
                }
            }
        }
        group.offsets.insert(current_key, value);
        self.txn.committed_batch_offsets.insert(gtp, batch_offset);
        true
    }
}

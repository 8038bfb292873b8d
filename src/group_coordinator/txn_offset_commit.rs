//! The group coordinator's side of transactions (KIP-98, KIP-447): TxnOffsetCommit v0-5,
//! the commit/abort markers the transaction coordinator writes to `__consumer_offsets`
//! ([`GroupCoordinator::write_txn_marker`], the interface of brief s18 tx-interface.md), and
//! OffsetFetch `require_stable`.
//!
//! Flow (Kafka's `GroupCoordinator.handleTxnCommitOffsets` and `GroupMetadataManager.storeOffsets`
//! with `isTxnOffsetCommit`): validate the member and generation, hold the offsets pending for
//! the producer, append them as one transactional batch (producer id and epoch set) to the
//! group's `__consumer_offsets` partition, answer once flushed. The offsets become the group's
//! committed offsets only when the COMMIT marker for the producer is durable on that
//! partition; an ABORT marker drops them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    OffsetFetchResponse, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::records::{CoordinatorRecord, OffsetCommitKey, OffsetCommitValue};
use super::{code, now_ms, offsets_partition_for, GroupCoordinator, StoreError, WritePayload};

impl GroupCoordinator {
    /// TxnOffsetCommit v0-5 (v3+ carry member id, generation and `group.instance.id`).
    /// Answered once the transactional batch is flushed; per-partition errors as Kafka's
    /// (validation errors for every partition, OFFSET_METADATA_TOO_LARGE per partition,
    /// COORDINATOR_NOT_AVAILABLE when the append failed, NOT_COORDINATOR when the partition
    /// is not this shard's). The request handler removed unknown topics before.
    pub async fn txn_offset_commit(
        &self,
        request: TxnOffsetCommitRequest,
        version: i16,
    ) -> TxnOffsetCommitResponse {
        let group_id = request.group_id.to_string();
        let producer_id = request.producer_id.0;
        let producer_epoch = request.producer_epoch;
        let now = now_ms();
        let (generation_id, member_id, group_instance_id) = if version >= 3 {
            (
                request.generation_id,
                request.member_id.to_string(),
                request.group_instance_id.as_ref().map(|s| s.to_string()),
            )
        } else {
            (-1, String::new(), None)
        };
        let validation = self.inner.state.borrow_mut().validate_txn_offset_commit(
            &group_id,
            producer_id,
            producer_epoch,
            generation_id,
            &member_id,
            group_instance_id.as_deref(),
            now,
        );
        // KIP-890 part 1 verification (the offsets partition is in the transaction) ran in
        // request_handler::txn_offset_commit before this call.
        if let Err(error) = validation {
            tracing::debug!(group = %group_id, producer_id, %error, "txn offset commit rejected");
        }
        let (max_metadata, num_partitions) = {
            let state = self.inner.state.borrow();
            (
                state.settings().offset_metadata_max_bytes,
                state.settings().offsets_topic_num_partitions,
            )
        };
        let mut results: Vec<(String, i32, Option<ResponseError>)> = Vec::new();
        let mut accepted: Vec<(String, i32, OffsetCommitValue)> = Vec::new();
        for topic in &request.topics {
            for partition in &topic.partitions {
                let name = topic.name.to_string();
                let metadata = partition.committed_metadata.as_deref().unwrap_or("");
                let error = match validation {
                    Err(error) => Some(error),
                    Ok(()) if metadata.len() > max_metadata => {
                        Some(ResponseError::OffsetMetadataTooLarge)
                    }
                    Ok(()) => {
                        accepted.push((
                            name.clone(),
                            partition.partition_index,
                            OffsetCommitValue {
                                offset: partition.committed_offset,
                                leader_epoch: if version >= 2 {
                                    partition.committed_leader_epoch
                                } else {
                                    -1
                                },
                                metadata: metadata.to_owned(),
                                commit_timestamp: now,
                            },
                        ));
                        None
                    }
                };
                results.push((name, partition.partition_index, error));
            }
        }
        if !accepted.is_empty() {
            self.inner.state.borrow_mut().prepare_txn_offset_commit(
                &group_id,
                producer_id,
                &accepted,
            );
            let records = accepted
                .iter()
                .map(
                    |(topic, partition, value)| CoordinatorRecord::OffsetCommit {
                        key: OffsetCommitKey {
                            group: group_id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        value: Some(value.clone()),
                    },
                )
                .collect();
            let stored = self
                .inner
                .write_durable(
                    offsets_partition_for(&group_id, num_partitions),
                    WritePayload::Transactional {
                        producer_id,
                        producer_epoch,
                        records,
                    },
                )
                .await;
            let mut state = self.inner.state.borrow_mut();
            match stored {
                Ok(Some(base_offset)) => state.on_txn_offset_commit_append(
                    &group_id,
                    producer_id,
                    producer_epoch,
                    &accepted,
                    base_offset,
                ),
                Ok(None) => unreachable!("invariant: a transactional batch is never empty"),
                Err(error) => {
                    tracing::warn!(group = %group_id, producer_id, %error, "txn offset commit not stored");
                    state.fail_txn_offset_commit(&group_id, producer_id, &accepted);
                    let code = store_error_code(&error);
                    for result in results.iter_mut().filter(|r| r.2.is_none()) {
                        result.2 = Some(code);
                    }
                }
            }
        }
        txn_offset_commit_response(results)
    }

    /// Writes the marker to `__consumer_offsets-<offsets_partition>` (owned by this shard)
    /// and applies (commit) or drops (abort) the pending transactional offsets of
    /// `marker.producer_id` in that partition; Ok once durable (the interface of brief s18
    /// tx-interface.md, Kafka's WriteTxnMarkers on a `__consumer_offsets` partition followed
    /// by `GroupCoordinator.onTransactionCompleted`). A marker for a producer without pending
    /// offsets is still written, as Kafka does.
    ///
    /// Errors: NOT_COORDINATOR when the partition is not this shard's (or out of range),
    /// COORDINATOR_LOAD_IN_PROGRESS before replay finished, INVALID_PRODUCER_EPOCH when the
    /// partition saw a newer epoch of the producer, COORDINATOR_NOT_AVAILABLE when the
    /// coordinator stops or the append fails (nothing is applied then; the transaction
    /// coordinator retries the marker).
    pub async fn write_txn_marker(
        &self,
        offsets_partition: i32,
        marker: crate::partition::TxnMarker,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        {
            let state = self.inner.state.borrow();
            let partitions = state.settings().offsets_topic_num_partitions;
            if !(0..partitions).contains(&offsets_partition)
                || offsets_partition as usize % self.inner.shard_count != self.inner.shard_id
            {
                return Err(ResponseError::NotCoordinator);
            }
            if !state.is_loaded() {
                return Err(ResponseError::CoordinatorLoadInProgress);
            }
            state.validate_txn_marker(
                offsets_partition,
                marker.producer_id,
                marker.producer_epoch,
            )?;
        }
        let stored = self
            .inner
            .write_durable(offsets_partition, WritePayload::Marker(marker))
            .await;
        match stored {
            Ok(_) => {
                let applied = self.inner.state.borrow_mut().complete_txn_offset_commit(
                    offsets_partition,
                    marker.producer_id,
                    marker.producer_epoch,
                    marker.commit,
                    now_ms,
                );
                tracing::debug!(
                    offsets_partition,
                    producer_id = marker.producer_id,
                    commit = marker.commit,
                    applied,
                    "transaction marker written to __consumer_offsets"
                );
                Ok(())
            }
            Err(error) => {
                tracing::warn!(offsets_partition, producer_id = marker.producer_id, %error,
                    "transaction marker not written to __consumer_offsets");
                Err(store_error_code(&error))
            }
        }
    }
}

/// KIP-447 `require_stable` (OffsetFetch v7+): every partition of `response` with a pending
/// transactional offset of its group gets UNSTABLE_OFFSET_COMMIT and offset -1 (Kafka's
/// `GroupMetadataManager.getOffsets` / `OffsetMetadataManager.fetchOffsets`). `group_of_v7` is
/// the group of a v7 response (v8+ responses name their groups).
pub(super) fn mark_unstable_offsets(
    state: &super::coordinator_state::CoordinatorState,
    response: &mut OffsetFetchResponse,
    group_of_v7: &str,
) {
    let unstable = ResponseError::UnstableOffsetCommit.code();
    for topic in response.topics.iter_mut() {
        for partition in topic.partitions.iter_mut() {
            if partition.error_code == 0
                && state.has_pending_txn_offset_for(
                    group_of_v7,
                    topic.name.as_str(),
                    partition.partition_index,
                )
            {
                partition.error_code = unstable;
                partition.committed_offset = -1;
                partition.committed_leader_epoch = -1;
                partition.metadata = Some(Default::default());
            }
        }
    }
    for group in response.groups.iter_mut() {
        for topic in group.topics.iter_mut() {
            for partition in topic.partitions.iter_mut() {
                if partition.error_code == 0
                    && state.has_pending_txn_offset_for(
                        group.group_id.as_str(),
                        topic.name.as_str(),
                        partition.partition_index,
                    )
                {
                    partition.error_code = unstable;
                    partition.committed_offset = -1;
                    partition.committed_leader_epoch = -1;
                    partition.metadata = Some(Default::default());
                }
            }
        }
    }
}

/// The response in request order, one topic entry per run of the same topic.
fn txn_offset_commit_response(
    results: Vec<(String, i32, Option<ResponseError>)>,
) -> TxnOffsetCommitResponse {
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for (topic, partition, error) in results {
        let partition = TxnOffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(code(error));
        match topics.last_mut() {
            Some(last) if last.name.as_str() == topic => last.partitions.push(partition),
            _ => topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// Kafka's mapping of append errors for the group coordinator (`GroupCoordinatorService`
/// `handleOperationException`): a stopped coordinator or failed log is
/// COORDINATOR_NOT_AVAILABLE (the client looks the coordinator up again and retries), a
/// partition of another shard NOT_COORDINATOR.
fn store_error_code(error: &StoreError) -> ResponseError {
    match error {
        StoreError::NotOwned { .. } => ResponseError::NotCoordinator,
        _ => ResponseError::CoordinatorNotAvailable,
    }
}

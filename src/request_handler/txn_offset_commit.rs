//! TxnOffsetCommit (28) v0-5 (KIP-98, KIP-447): a transactional producer's consumer offsets,
//! held by the group's coordinator until the transaction's marker lands on its
//! `__consumer_offsets` partition (see `group_coordinator::txn_offset_commit`).
//!
//! As Kafka's `KafkaApis.handleTxnOffsetCommitRequest`: partitions of topics or partitions
//! that do not exist get UNKNOWN_TOPIC_OR_PARTITION here, the rest goes whole to the shard
//! coordinating the group (`group_coordinator::shard_for_group`).

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::shard::{invoke_on, ShardContext};

/// TxnOffsetCommit v0-5 on the group's shard; answered once the transactional batch is durable.
pub async fn handle(
    ctx: Rc<ShardContext>,
    mut request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let metadata = ctx.metadata();
    let mut unknown: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for topic in request.topics.iter_mut() {
        let known = metadata.topic(topic.name.as_str());
        let (kept, missing): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.partitions)
            .into_iter()
            .partition(|p| {
                known.is_some_and(|t| (0..t.partitions.len() as i32).contains(&p.partition_index))
            });
        topic.partitions = kept;
        if !missing.is_empty() {
            unknown.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        missing
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            })
                            .collect(),
                    ),
            );
        }
    }
    request.topics.retain(|t| !t.partitions.is_empty());
    let verified = if request.topics.is_empty() {
        Ok(())
    } else {
        verify_offsets_partition(&ctx, &request).await
    };
    let mut response = if let Err(error) = verified {
        // Every partition gets the verification's error, as Kafka's append callback answers.
        TxnOffsetCommitResponse::default().with_topics(
            request
                .topics
                .iter()
                .map(|t| {
                    TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(error.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    } else if request.topics.is_empty() {
        TxnOffsetCommitResponse::default()
    } else {
        let target = ctx.group_coordinator.shard_for(&request.group_id);
        invoke_on(target, move |ctx| {
            Box::pin(async move {
                ctx.group_coordinator
                    .txn_offset_commit(request, version)
                    .await
            })
        })
        .await
    };
    response.topics.extend(unknown);
    response
}

/// KIP-890 part 1 (`transaction.partition.verification.enable`): the group's
/// `__consumer_offsets` partition must be in the producer's transaction (AddOffsetsToTxn),
/// asked of the transaction coordinator. A busy coordinator (NOT_ENOUGH_REPLICAS on the produce
/// path) is COORDINATOR_NOT_AVAILABLE here, retriable for the client, as Kafka's group
/// coordinator maps append errors of offset commits.
async fn verify_offsets_partition(
    ctx: &ShardContext,
    request: &TxnOffsetCommitRequest,
) -> Result<(), ResponseError> {
    if !ctx.config.transaction_partition_verification_enable {
        return Ok(());
    }
    let partition = crate::group_coordinator::offsets_partition_for(
        &request.group_id,
        ctx.config.offsets_topic_num_partitions,
    );
    super::transactions::verify_partition(
        ctx,
        &request.transactional_id,
        request.producer_id.0,
        request.producer_epoch,
        crate::group_coordinator::OFFSETS_TOPIC_NAME,
        partition,
    )
    .await
    .map_err(|error| match error {
        ResponseError::NotEnoughReplicas => ResponseError::CoordinatorNotAvailable,
        other => other,
    })
}

impl super::request_metrics::ErrorCodes for TxnOffsetCommitResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            topic.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

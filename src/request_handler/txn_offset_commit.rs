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
    let mut response = if request.topics.is_empty() {
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

impl super::request_metrics::ErrorCodes for TxnOffsetCommitResponse {
    fn error_codes(&self, f: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            topic.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

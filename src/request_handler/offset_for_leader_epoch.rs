//! OffsetForLeaderEpoch (key 23), v2-4: the end offset of a leader epoch (KIP-101, KIP-320:
//! consumers validate their position after a leader change with it), and the
//! `current_leader_epoch` check shared with Fetch and ListOffsets.
//!
//! Kafka's rules (`Partition.lastOffsetForLeaderEpoch`, `LeaderEpochFileCache.endOffsetFor`):
//! `current_leader_epoch` older than the leader's -> FENCED_LEADER_EPOCH, newer ->
//! UNKNOWN_LEADER_EPOCH, -1 unchecked; the latest epoch ends at the log end offset, an older one
//! where the next epoch starts (answered with the largest known epoch at or below the requested,
//! or the requested epoch itself when it is below the first known one); an epoch above the
//! latest or -1 -> leader_epoch -1, end_offset -1 (UNDEFINED_EPOCH_OFFSET), no error.

use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;

use super::authorize;
use crate::log::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use crate::metadata::TopicMetadata;
use crate::partition::LeaderEpochError;
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::{self, ShardContext};

/// The error for a request naming `current_leader_epoch` of `partition` (-1: none), checked
/// against the metadata's leader epoch, which the owning partition is stamped with.
pub fn leader_epoch_error(
    topic: &TopicMetadata,
    partition: i32,
    current_leader_epoch: i32,
) -> Option<ResponseError> {
    let index = usize::try_from(partition).ok()?;
    let leader_epoch = topic.partitions.get(index)?.leader_epoch;
    if current_leader_epoch == -1 || leader_epoch < 0 || current_leader_epoch == leader_epoch {
        return None;
    }
    Some(if current_leader_epoch < leader_epoch {
        ResponseError::FencedLeaderEpoch
    } else {
        ResponseError::UnknownLeaderEpoch
    })
}

/// Kafka's error code for a failed epoch check on the partition itself.
pub fn leader_epoch_error_code(error: &LeaderEpochError) -> ResponseError {
    match error {
        LeaderEpochError::Fenced { .. } => ResponseError::FencedLeaderEpoch,
        LeaderEpochError::Unknown { .. } => ResponseError::UnknownLeaderEpoch,
    }
}

/// ACLs: DESCRIBE on each topic, else its partitions TOPIC_AUTHORIZATION_FAILED.
pub async fn handle(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
) -> OffsetForLeaderEpochResponse {
    let image = ctx.metadata();
    let mut lookups = Vec::new();
    let mut response = OffsetForLeaderEpochResponse::default();
    for (t, topic) in request.topics.into_iter().enumerate() {
        let metadata = image.topic(topic.topic.as_str()).cloned();
        let denied = !authorize::authorize(
            &ctx,
            &session,
            AclOperation::Describe,
            ResourceType::Topic,
            topic.topic.as_str(),
        );
        let mut result = OffsetForLeaderTopicResult::default().with_topic(topic.topic.clone());
        for (p, wanted) in topic.partitions.into_iter().enumerate() {
            result.partitions.push(
                EpochEndOffset::default()
                    .with_partition(wanted.partition)
                    .with_leader_epoch(UNDEFINED_EPOCH)
                    .with_end_offset(UNDEFINED_EPOCH_OFFSET),
            );
            let name = topic.topic.to_string();
            let shard = metadata.as_ref().and_then(|m| m.shard_of(wanted.partition));
            let checked = metadata
                .as_ref()
                .and_then(|m| leader_epoch_error(m, wanted.partition, wanted.current_leader_epoch));
            lookups.push(async move {
                let answer = match (shard, checked) {
                    _ if denied => Err(ResponseError::TopicAuthorizationFailed),
                    (None, _) => Err(ResponseError::UnknownTopicOrPartition),
                    (Some(_), Some(error)) => Err(error),
                    (Some(shard), None) => {
                        shard::invoke_on(shard, move |ctx| {
                            Box::pin(async move {
                                let partition =
                                    super::online_partition(&ctx, &name, wanted.partition)?;
                                partition
                                    .check_leader_epoch(wanted.current_leader_epoch)
                                    .map_err(|e| leader_epoch_error_code(&e))?;
                                Ok(partition.log().end_offset_for_epoch(wanted.leader_epoch))
                            })
                        })
                        .await
                    }
                };
                ((t, p), answer)
            });
        }
        response.topics.push(result);
    }
    for ((t, p), answer) in join_all(lookups).await {
        let entry = &mut response.topics[t].partitions[p];
        match answer {
            Ok((leader_epoch, end_offset)) => {
                entry.leader_epoch = leader_epoch;
                entry.end_offset = end_offset;
            }
            Err(error) => entry.error_code = error.code(),
        }
    }
    response
}

//! ListOffsets (key 2), v1-10: earliest (-2), latest (-1, the high watermark), max timestamp
//! (-3, KIP-734), earliest local (-4, KIP-405: the log start offset, as there is no tiered
//! storage), latest tiered (-5, KIP-1005: offset -1 without tiered storage) and by timestamp
//! (the first record with timestamp >= the target, else -1; Kafka's
//! `UnifiedLog.fetchOffsetByTimestamp`). With isolation_level 1 (read_committed, KIP-98) latest
//! is the last stable offset and no answer reaches it (Kafka's `lastFetchableOffset`).

use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::*;

use super::authorize;
use super::offset_for_leader_epoch::leader_epoch_error;
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::{self, ShardContext};

/// Kafka's special timestamps (`ListOffsetsRequest.LATEST_TIMESTAMP`, ...).
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// ACLs: DESCRIBE on each topic, else its partitions TOPIC_AUTHORIZATION_FAILED.
pub async fn handle(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let image = ctx.metadata();
    let mut lookups = Vec::new();
    let mut response = ListOffsetsResponse::default();
    // KIP-98: read_committed (1) bounds every answer by the last stable offset.
    let read_committed = request.isolation_level == 1;
    for (t, topic) in request.topics.into_iter().enumerate() {
        let metadata = image.topic(topic.name.as_str()).cloned();
        let denied = !authorize::authorize(
            &ctx,
            &session,
            AclOperation::Describe,
            ResourceType::Topic,
            topic.name.as_str(),
        );
        let mut topic_response = ListOffsetsTopicResponse::default().with_name(topic.name.clone());
        for (p, partition) in topic.partitions.into_iter().enumerate() {
            topic_response.partitions.push(
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(partition.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1)
                    .with_leader_epoch(-1),
            );
            let index = partition.partition_index;
            let timestamp = partition.timestamp;
            let shard = metadata.as_ref().and_then(|m| m.shard_of(index));
            let fenced = metadata
                .as_ref()
                .and_then(|m| leader_epoch_error(m, index, partition.current_leader_epoch));
            let name = topic.name.to_string();
            lookups.push(async move {
                let result = match (shard, fenced) {
                    _ if denied => Err(ResponseError::TopicAuthorizationFailed),
                    (None, _) => Err(ResponseError::UnknownTopicOrPartition),
                    (Some(_), Some(error)) => Err(error),
                    (Some(shard), None) => {
                        shard::invoke_on(shard, move |ctx| {
                            Box::pin(async move {
                                let found = lookup(
                                    ctx.clone(),
                                    name.clone(),
                                    index,
                                    timestamp,
                                    read_committed,
                                );
                                let (offset, timestamp) = found.await?;
                                // Kafka answers the epoch the offset was written in (v4+).
                                let leader_epoch = ctx
                                    .replica_manager
                                    .get(&name, index)
                                    .and_then(|p| p.log().epoch_for_offset(offset))
                                    .filter(|_| offset >= 0)
                                    .unwrap_or(-1);
                                Ok((offset, timestamp, leader_epoch))
                            })
                        })
                        .await
                    }
                };
                ((t, p), result)
            });
        }
        response.topics.push(topic_response);
    }
    for ((t, p), result) in join_all(lookups).await {
        let partition = &mut response.topics[t].partitions[p];
        match result {
            Ok((offset, timestamp, leader_epoch)) => {
                partition.offset = offset;
                partition.timestamp = timestamp;
                if version >= 4 {
                    partition.leader_epoch = leader_epoch;
                }
            }
            Err(error) => partition.error_code = error.code(),
        }
    }
    response
}

async fn lookup(
    ctx: Rc<ShardContext>,
    topic: String,
    index: i32,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), ResponseError> {
    let partition = super::online_partition(&ctx, &topic, index)?;
    let storage = |e: crate::log::LogError| {
        tracing::error!(%topic, partition = index, "ListOffsets failed: {e}");
        ResponseError::KafkaStorageError
    };
    // Kafka's `Partition.fetchOffsetForTimestamp`: `lastFetchableOffset` is the LSO for
    // read_committed, the high watermark otherwise; a found offset at or beyond it is none.
    let last_fetchable_offset = if read_committed {
        partition.last_stable_offset()
    } else {
        partition.high_watermark()
    };
    let fetchable = |found: (i64, i64)| {
        if found.0 < last_fetchable_offset {
            found
        } else {
            (-1, -1)
        }
    };
    match timestamp {
        LATEST_TIMESTAMP => Ok((last_fetchable_offset, -1)),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => Ok((partition.log_start_offset(), -1)),
        // Kafka without remote storage: `TimestampAndOffset(NO_TIMESTAMP, -1, ...)`.
        LATEST_TIERED_TIMESTAMP => Ok((-1, -1)),
        MAX_TIMESTAMP => Ok(fetchable(
            partition
                .log()
                .max_timestamp_offset()
                .await
                .map_err(storage)?
                .unwrap_or((-1, -1)),
        )),
        t if t < 0 => Err(ResponseError::InvalidRequest),
        t => Ok(fetchable(
            partition
                .log()
                .offset_for_timestamp(t)
                .await
                .map_err(storage)?
                .unwrap_or((-1, -1)),
        )),
    }
}

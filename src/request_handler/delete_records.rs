//! DeleteRecords (key 21), v0-2: moves each partition's log start offset (Kafka's
//! `ReplicaManager.deleteRecords` -> `Partition.deleteRecordsOnLeader`), on the owning shard
//! (via the shard mesh). Offset -1 means the high watermark; an offset above it (or below 0)
//! -> OFFSET_OUT_OF_RANGE. The answer carries the new low watermark (the log start offset).
//! The new start is checkpointed in the log dir's `log-start-offset-checkpoint` before it is
//! answered, so it survives a restart; whole segments below it are deleted.

use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::*;

use super::authorize;
use crate::partition::DeleteRecordsError;
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::{self, ShardContext};

/// Kafka's error code for a failed DeleteRecords on one partition.
fn delete_records_error_code(error: &DeleteRecordsError) -> ResponseError {
    match error {
        DeleteRecordsError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        DeleteRecordsError::Offline(_) | DeleteRecordsError::Log(_) => {
            ResponseError::KafkaStorageError
        }
    }
}

/// ACLs: DELETE on each topic, else its partitions TOPIC_AUTHORIZATION_FAILED.
pub async fn handle(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: DeleteRecordsRequest,
    _version: i16,
) -> DeleteRecordsResponse {
    let image = ctx.metadata();
    let mut deletions = Vec::new();
    let mut response = DeleteRecordsResponse::default();
    for (t, topic) in request.topics.into_iter().enumerate() {
        let metadata = image.topic(topic.name.as_str()).cloned();
        let denied = !authorize::authorize(
            &ctx,
            &session,
            AclOperation::Delete,
            ResourceType::Topic,
            topic.name.as_str(),
        );
        let mut result = DeleteRecordsTopicResult::default().with_name(topic.name.clone());
        for (p, wanted) in topic.partitions.into_iter().enumerate() {
            result.partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(wanted.partition_index)
                    .with_low_watermark(-1),
            );
            let shard = metadata
                .as_ref()
                .filter(|m| !m.internal)
                .and_then(|m| m.shard_of(wanted.partition_index));
            let name = topic.name.to_string();
            deletions.push(async move {
                let answer = match shard {
                    _ if denied => Err(ResponseError::TopicAuthorizationFailed),
                    None => Err(ResponseError::UnknownTopicOrPartition),
                    Some(shard) => {
                        shard::invoke_on(shard, move |ctx| {
                            Box::pin(async move {
                                let partition =
                                    super::online_partition(&ctx, &name, wanted.partition_index)?;
                                let deleted = partition.delete_records(wanted.offset).await;
                                deleted.map_err(|e| {
                                    tracing::info!(topic = %name, partition = wanted.partition_index, "delete records refused: {e}");
                                    delete_records_error_code(&e)
                                })
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
    for ((t, p), answer) in join_all(deletions).await {
        let entry = &mut response.topics[t].partitions[p];
        match answer {
            Ok(low_watermark) => entry.low_watermark = low_watermark,
            Err(error) => entry.error_code = error.code(),
        }
    }
    response
}

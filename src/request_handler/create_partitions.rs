//! CreatePartitions (key 37), v0-3: grows a topic (never shrinks it), on shard 0, the metadata
//! owner, which publishes the new image to every shard before answering; the new partitions
//! are placed by the topic store's rule (`TopicStore::create_partitions`) and open on their
//! shards before the answer goes out, so the next Metadata lists them and Produce works.
//!
//! Also the manual replica assignment checks CreateTopics shares. Kafka's rules and messages
//! (`ReplicationControlManager.createPartitions` / `validateManualPartitionAssignment`): equal
//! count -> INVALID_PARTITIONS "Topic already has N partition(s).", fewer -> INVALID_PARTITIONS
//! "The topic T currently has N partition(s); M would not be an increase."; an assignment naming
//! another broker, an empty or duplicate replica list, a replica count unlike the existing
//! partitions', or a wrong number of assignments -> INVALID_REPLICA_ASSIGNMENT.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::authorize;
use crate::metadata::MetadataError;
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::{self, ShardContext};

/// A Kafka error code with the message Kafka sends along.
pub type Refusal = (ResponseError, String);

/// Checks one manual replica assignment (a partition's broker ids) on this single-node broker:
/// `replicas` must be exactly `[node_id]` (and have `replication_factor` entries when given).
pub fn check_replica_assignment(
    replicas: &[BrokerId],
    node_id: i32,
    replication_factor: Option<usize>,
) -> Result<(), Refusal> {
    let invalid = |message: String| (ResponseError::InvalidReplicaAssignment, message);
    if replicas.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".to_string(),
        ));
    }
    for (i, broker) in replicas.iter().enumerate() {
        if replicas[..i].contains(broker) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {} more than once.",
                broker.0
            )));
        }
        if broker.0 != node_id {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {}, but no such broker is registered.",
                broker.0
            )));
        }
    }
    if let Some(expected) = replication_factor.filter(|&n| n != replicas.len()) {
        return Err(invalid(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is inconsistent with previous partitions, which have {expected} replica(s).",
            replicas.len()
        )));
    }
    Ok(())
}

///
/// ACLs: ALTER on each topic, else TOPIC_AUTHORIZATION_FAILED (KafkaApis / ControllerApis).
pub async fn handle(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for topic in request.topics {
        let name = topic.name.to_string();
        let result = if authorize::authorize(
            &ctx,
            &session,
            AclOperation::Alter,
            ResourceType::Topic,
            &name,
        ) {
            grow(&ctx, &name, &topic, request.validate_only).await
        } else {
            Err((ResponseError::TopicAuthorizationFailed, String::new()))
        };
        let mut entry = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        match result {
            Ok(()) => {
                tracing::info!(topic = %name, count = topic.count, validate_only = request.validate_only, "created partitions");
            }
            Err((error, message)) => {
                tracing::info!(topic = %name, count = topic.count, "create partitions refused: {message}");
                entry.error_code = error.code();
                entry.error_message = (!message.is_empty()).then(|| StrBytes::from_string(message));
            }
        }
        response.results.push(entry);
    }
    response
}

async fn grow(
    ctx: &ShardContext,
    name: &str,
    topic: &create_partitions_request::CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), Refusal> {
    let Some(current) = ctx.metadata().topic(name).cloned() else {
        return Err((ResponseError::UnknownTopicOrPartition, String::new()));
    };
    if current.internal {
        return Err((
            ResponseError::InvalidRequest,
            format!("Topic {name} is internal."),
        ));
    }
    let existing = current.partitions.len() as i32;
    if topic.count == existing {
        return Err((
            ResponseError::InvalidPartitions,
            format!("Topic already has {existing} partition(s)."),
        ));
    }
    if topic.count < existing {
        return Err((
            ResponseError::InvalidPartitions,
            format!(
                "The topic {name} currently has {existing} partition(s); {} would not be an increase.",
                topic.count
            ),
        ));
    }
    if let Some(assignments) = &topic.assignments {
        let added = topic.count - existing;
        if assignments.len() as i32 != added {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
                    assignments.len()
                ),
            ));
        }
        for assignment in assignments {
            check_replica_assignment(&assignment.broker_ids, ctx.config.node_id, Some(1))?;
        }
    }
    if validate_only {
        return Ok(());
    }
    let name = name.to_string();
    let count = topic.count;
    shard::invoke_on(0, move |ctx| {
        Box::pin(async move {
            let store = ctx
                .topic_store
                .as_ref()
                .expect("shard 0 owns the topic store");
            let grown = store.borrow_mut().create_partitions(&name, count);
            grown.map_err(|e| match e {
                MetadataError::UnknownTopic(_) => {
                    (ResponseError::UnknownTopicOrPartition, String::new())
                }
                MetadataError::InvalidPartitions(n) => (
                    ResponseError::InvalidPartitions,
                    format!("invalid number of partitions {n}"),
                ),
                other => (ResponseError::KafkaStorageError, other.to_string()),
            })?;
            let image = store.borrow().image();
            shard::publish_metadata(image)
                .await
                .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))
        })
    })
    .await
}

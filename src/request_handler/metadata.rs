//! Metadata (key 3), v0-13: this broker as the only node, leader of every partition.
//!
//! Topics named in the request that do not exist are created when the request allows it (v4+)
//! and `auto.create.topics.enable` is true, with `num.partitions` partitions, before the answer
//! is sent, so clients see them at once. `__consumer_offsets` is listed in all-topics requests
//! (internal), `__transaction_state` only when named (Kafka creates it at the first
//! transactional InitProducerId, so a fresh cluster lists none).

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::admin::{create_topic, CreateTopicError};
use super::authorize::{self, CLUSTER_NAME};
use crate::metadata::{PartitionAssignment, TopicMetadata, CONSUMER_OFFSETS_TOPIC};
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::ShardContext;
use crate::transaction_coordinator::TRANSACTION_STATE_TOPIC_NAME;

/// Kafka's "authorized operations not requested" value.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let node = BrokerId(ctx.config.node_id);
    // Kafka answers with the endpoints of the listener the client connected on.
    let listener = &ctx.config.advertised_listener(&session.listener_name);
    let mut response = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(StrBytes::from_string(listener.host.clone()))
            .with_port(listener.port as i32)])
        .with_cluster_id(Some(StrBytes::from_string(
            ctx.metadata().cluster_id.clone(),
        )))
        .with_controller_id(node)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    // ACLs (issue 11), as KafkaApis.handleTopicMetadataRequest: cluster operations (v8-10)
    // only with DESCRIBE on the cluster (else 0); topic operations for every listed topic.
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations =
            if authorize::authorize_cluster(&ctx, &session, AclOperation::Describe) {
                authorize::authorized_operations(
                    &ctx,
                    &session,
                    ResourceType::Cluster,
                    CLUSTER_NAME,
                )
            } else {
                0
            };
    }
    let topic_operations = version >= 8 && request.include_topic_authorized_operations;
    let with_operations = |mut topic: MetadataResponseTopic| {
        if topic_operations && topic.error_code == 0 {
            let name = topic.name.as_ref().map_or("", |n| n.as_str());
            topic.topic_authorized_operations =
                authorize::authorized_operations(&ctx, &session, ResourceType::Topic, name);
        }
        topic
    };
    let may_describe = |name: &str| {
        authorize::authorize(
            &ctx,
            &session,
            AclOperation::Describe,
            ResourceType::Topic,
            name,
        )
    };
    // v0: an empty list means all topics; v1+: null means all.
    let requested = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let Some(requested) = requested else {
        let image = ctx.metadata();
        // Kafka lists every topic of its metadata cache, internal ones marked `is_internal`
        // (clients such as the Java AdminClient filter them out themselves).
        response.topics = image
            .topics
            .values()
            .filter(|t| !t.internal)
            .cloned()
            .chain(std::iter::once(consumer_offsets_topic(&ctx)))
            // A full listing leaves out the topics the client may not describe.
            .filter(|t| may_describe(&t.name))
            .map(|t| with_operations(topic_response(&t, node)))
            .collect();
        return response;
    };
    let auto_create =
        ctx.config.auto_create_topics_enable && (version < 4 || request.allow_auto_topic_creation);
    for wanted in requested {
        let image = ctx.metadata();
        // A request naming a topic by id (Metadata v10+) leaves the name null, or empty as the
        // Java AdminClient sends it; Kafka looks up by id whenever the id is set.
        let by_id =
            !wanted.topic_id.is_nil() && wanted.name.as_ref().is_none_or(|name| name.is_empty());
        let (name, found) = match &wanted.name {
            Some(name) if !by_id => (name.to_string(), image.topic(name.as_str()).cloned()),
            _ => {
                let found = image.topic_by_id(&wanted.topic_id).cloned();
                (
                    found.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
                    found,
                )
            }
        };
        let found = found
            .or_else(|| (name == CONSUMER_OFFSETS_TOPIC).then(|| consumer_offsets_topic(&ctx)))
            .or_else(|| {
                (name == TRANSACTION_STATE_TOPIC_NAME).then(|| transaction_state_topic(&ctx))
            });
        if !name.is_empty() && !may_describe(&name) {
            // Existence is not disclosed: by name without the id; by id (not secret) without
            // the name.
            let denied = if by_id {
                error_topic(
                    None,
                    wanted.topic_id,
                    ResponseError::TopicAuthorizationFailed,
                )
            } else {
                error_topic(
                    Some(name),
                    uuid::Uuid::nil(),
                    ResponseError::TopicAuthorizationFailed,
                )
            };
            response.topics.push(denied);
            continue;
        }
        let may_create = || {
            authorize::authorize_cluster(&ctx, &session, AclOperation::Create)
                || authorize::authorize(
                    &ctx,
                    &session,
                    AclOperation::Create,
                    ResourceType::Topic,
                    &name,
                )
        };
        let topic = match found {
            Some(topic) => topic_response(&topic, node),
            None if by_id || wanted.name.is_none() => {
                error_topic(None, wanted.topic_id, ResponseError::UnknownTopicId)
            }
            None if !auto_create => error_topic(
                Some(name),
                wanted.topic_id,
                ResponseError::UnknownTopicOrPartition,
            ),
            // Auto-creation needs CREATE on the cluster or on the topic.
            None if !may_create() => error_topic(
                Some(name),
                uuid::Uuid::nil(),
                ResponseError::TopicAuthorizationFailed,
            ),
            None => match create_topic(
                &ctx,
                &name,
                ctx.config.num_partitions,
                Default::default(),
                false,
            )
            .await
            {
                Ok(topic) => {
                    tracing::info!(topic = %name, partitions = topic.partitions.len(), "auto-created topic");
                    topic_response(&topic, node)
                }
                Err(CreateTopicError::Exists) => match ctx.metadata().topic(&name) {
                    Some(topic) => topic_response(topic, node),
                    None => error_topic(
                        Some(name),
                        wanted.topic_id,
                        ResponseError::LeaderNotAvailable,
                    ),
                },
                Err(e) => {
                    tracing::warn!(topic = %name, "auto-create failed: {e}");
                    error_topic(Some(name), wanted.topic_id, e.code())
                }
            },
        };
        response.topics.push(with_operations(topic));
    }
    response
}

/// `__consumer_offsets` as Kafka lists it when asked by name: internal, with
/// `offsets.topic.num.partitions` partitions. Its logs belong to the group coordinator, not to
/// the topic store, so it is described here; the topic id is a v5 UUID of the cluster id, stable
/// across restarts.
fn consumer_offsets_topic(ctx: &ShardContext) -> std::sync::Arc<TopicMetadata> {
    let cluster_id = ctx.metadata().cluster_id.clone();
    let name = format!("{cluster_id}/{CONSUMER_OFFSETS_TOPIC}");
    let partitions = ctx.config.offsets_topic_num_partitions.max(1);
    std::sync::Arc::new(TopicMetadata {
        name: CONSUMER_OFFSETS_TOPIC.to_string(),
        topic_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()),
        partitions: (0..partitions)
            .map(|partition| PartitionAssignment {
                partition,
                shard: partition as usize % ctx.shard_count,
                // -1: the group coordinator's logs carry no leader epoch, so clients skip
                // KIP-320 validation on it.
                leader_epoch: -1,
            })
            .collect(),
        configs: Default::default(),
        internal: true,
    })
}

/// `__transaction_state` when asked by name: internal, `transaction.state.log.num.partitions`
/// partitions, the transaction coordinators' logs (described like `__consumer_offsets`).
fn transaction_state_topic(ctx: &ShardContext) -> std::sync::Arc<TopicMetadata> {
    let cluster_id = ctx.metadata().cluster_id.clone();
    let name = format!("{cluster_id}/{TRANSACTION_STATE_TOPIC_NAME}");
    let partitions = ctx.config.transaction_state_log_num_partitions.max(1);
    std::sync::Arc::new(TopicMetadata {
        name: TRANSACTION_STATE_TOPIC_NAME.to_string(),
        topic_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()),
        partitions: (0..partitions)
            .map(|partition| PartitionAssignment {
                partition,
                shard: partition as usize % ctx.shard_count,
                leader_epoch: -1,
            })
            .collect(),
        configs: Default::default(),
        internal: true,
    })
}

fn topic_response(topic: &TopicMetadata, node: BrokerId) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic.internal)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
        .with_partitions(
            topic
                .partitions
                .iter()
                .map(|p| {
                    if crate::log::log_dirs::partition_offline(&topic.name, p.partition) {
                        return offline_partition(p.partition, p.leader_epoch, node);
                    }
                    MetadataResponsePartition::default()
                        .with_partition_index(p.partition)
                        .with_leader_id(node)
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}

/// A partition whose log dir is offline, as a single-node KRaft Kafka 4.1.2 answers once its
/// controller marked the dir offline (measured: results/2026-12-01-disk-faults.md):
/// LEADER_NOT_AVAILABLE, no leader, an empty ISR (the node moves to the eligible leader
/// replicas, KIP-966) and the node in `offline_replicas` (`KRaftMetadataCache.
/// getOfflineReplicas`: replicas whose directory is offline).
fn offline_partition(
    partition: i32,
    leader_epoch: i32,
    node: BrokerId,
) -> MetadataResponsePartition {
    MetadataResponsePartition::default()
        .with_error_code(ResponseError::LeaderNotAvailable.code())
        .with_partition_index(partition)
        .with_leader_id(BrokerId(-1))
        .with_leader_epoch(leader_epoch)
        .with_replica_nodes(vec![node])
        .with_isr_nodes(Vec::new())
        .with_offline_replicas(vec![node])
}

fn error_topic(
    name: Option<String>,
    topic_id: uuid::Uuid,
    error: ResponseError,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(topic_id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
